//! The sandbox image: built from `sandbox-image/` (embedded in the binary at
//! compile time) plus the host's extra CA certificates, tagged
//! `anycode-sandbox:<16 hex digits of a sha256 over every input>`, so a changed
//! Dockerfile or a new CA gives a new tag and the old image is not used.

use crate::{Docker, Error, Result};
use bollard::image::{BuildImageOptions, TagImageOptions};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(rust_embed::Embed)]
#[folder = "../../sandbox-image/"]
struct SandboxFiles;

/// Repository part of the image tags AnyCode builds.
pub const IMAGE_REPO: &str = "anycode-sandbox";

/// One line of build progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// The image with this tag exists; nothing to build.
    UpToDate(String),
    /// A build of this tag starts.
    Started(String),
    /// A line of Docker's build output (`Step 3/15 : RUN …`, command output).
    Line(String),
    /// The build finished.
    Done(String),
}

/// The inputs of the image build: (path in the build context, bytes), sorted.
pub fn build_context_files(extra_ca_dir: Option<&Path>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files: Vec<(String, Vec<u8>)> = SandboxFiles::iter()
        .filter(|p| !(p.starts_with("extra-ca/") && p.ends_with(".crt")))
        .filter_map(|p| SandboxFiles::get(&p).map(|f| (p.to_string(), f.data.into_owned())))
        .collect();
    if let Some(dir) = extra_ca_dir {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "crt") && p.is_file() {
                    let data = std::fs::read(&p).map_err(|e| Error::Io(format!("reading {}: {e}", p.display())))?;
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    files.push((format!("extra-ca/{name}"), data));
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The tag that the given inputs build to: `anycode-sandbox:<hash16>`.
pub fn image_tag(files: &[(String, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    for (path, data) in files {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    let digest = hex::encode(h.finalize());
    format!("{IMAGE_REPO}:{}", &digest[..16])
}

fn tar_context(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        b.append_data(&mut header, path, data.as_slice()).map_err(|e| Error::Io(e.to_string()))?;
    }
    b.into_inner().map_err(|e| Error::Io(e.to_string()))
}

impl Docker {

    /// Builds `files` (a build context with a `Dockerfile`) as `tag`, reporting
    /// [`BuildEvent::Started`] and each output line (not `Done`).
    async fn build(&self, tag: &str, files: &[(String, Vec<u8>)], progress: &mut (dyn FnMut(BuildEvent) + Send)) -> Result<()> {
        self.build_tar(tag, tar_context(files)?, "Dockerfile", &[], progress).await
    }

    /// [`crate::Backend::build_image`] on this engine, without the `Done` event.
    pub(crate) async fn build_tar(
        &self,
        tag: &str,
        body: Vec<u8>,
        dockerfile: &str,
        args: &[(String, String)],
        progress: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<()> {
        progress(BuildEvent::Started(tag.to_string()));
        let mut buildargs: std::collections::HashMap<String, String> = args.iter().cloned().collect();
        #[cfg(unix)]
        {
            // Not a secret: proxies must reach the build so apt and npm work behind them.
            for k in ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"] {
                if let Ok(v) = std::env::var(k) {
                    buildargs.insert(k.to_string(), v);
                }
            }
        }
        let opts = BuildImageOptions::<String> {
            t: tag.to_string(),
            dockerfile: dockerfile.to_string(),
            rm: true,
            forcerm: true,
            buildargs,
            ..Default::default()
        };
        let mut stream = self.api.build_image(opts, None, Some(body.into()));
        let mut tail: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(e) => return Err(Error::Build(format!("{e}\n{}", tail.join("\n")))),
            };
            if let Some(err) = info.error {
                return Err(Error::Build(format!("{err}\n{}", tail.join("\n"))));
            }
            if let Some(line) = info.stream {
                for l in line.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                    tail.push(l.to_string());
                    if tail.len() > 20 {
                        tail.remove(0);
                    }
                    progress(BuildEvent::Line(l.to_string()));
                }
            }
        }
        if !self.image_exists(tag).await? {
            return Err(Error::Build(format!("the build ended without an image\n{}", tail.join("\n"))));
        }
        Ok(())
    }
}

impl Docker {
    /// [`Backend::image_exists`] on this engine.
    pub async fn image_exists(&self, tag: &str) -> Result<bool> {
        match self.api.inspect_image(tag).await {
            Ok(_) => Ok(true),
            Err(e) if crate::is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Backend::ensure_image`] on this engine.
    pub async fn ensure_image(
        &self,
        configured: Option<&str>,
        extra_ca_dir: Option<&Path>,
        progress: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<String> {
        if let Some(tag) = configured {
            return if self.image_exists(tag).await? { Ok(tag.to_string()) } else { Err(Error::NoImage(tag.to_string())) };
        }
        let files = build_context_files(extra_ca_dir)?;
        let tag = image_tag(&files);
        if self.image_exists(&tag).await? {
            progress(BuildEvent::UpToDate(tag.clone()));
            return Ok(tag);
        }
        self.build(&tag, &files, progress).await?;
        let latest = TagImageOptions { repo: IMAGE_REPO, tag: "latest" };
        self.api.tag_image(&tag, Some(latest)).await?;
        progress(BuildEvent::Done(tag.clone()));
        Ok(tag)
    }

    /// [`Backend::ensure_variant`] on this engine.
    pub async fn ensure_variant(&self, tag: &str, dockerfile: &str, progress: &mut (dyn FnMut(BuildEvent) + Send)) -> Result<()> {
        if self.image_exists(tag).await? {
            progress(BuildEvent::UpToDate(tag.to_string()));
            return Ok(());
        }
        let files = vec![("Dockerfile".to_string(), dockerfile.as_bytes().to_vec())];
        self.build(tag, &files, progress).await?;
        progress(BuildEvent::Done(tag.to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_changes_with_inputs() {
        let a = vec![("Dockerfile".to_string(), b"FROM x".to_vec())];
        let b = vec![("Dockerfile".to_string(), b"FROM y".to_vec())];
        assert_ne!(image_tag(&a), image_tag(&b));
        assert_eq!(image_tag(&a), image_tag(&a.clone()));
        assert!(image_tag(&a).starts_with("anycode-sandbox:"));
    }

    #[test]
    fn embedded_context_has_the_dockerfile() {
        let files = build_context_files(None).unwrap();
        assert!(files.iter().any(|(p, d)| p == "Dockerfile" && d.starts_with(b"#")));
        assert!(files.iter().any(|(p, _)| p == "home/.claude.json"));
    }
}
