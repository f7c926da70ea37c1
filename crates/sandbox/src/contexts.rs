//! The user's Docker contexts (`docker context ls`), read from the Docker CLI's
//! files: `<config>/contexts/meta/<id>/meta.json` (the name and the `docker`
//! endpoint's `Host`), TLS material in `<config>/contexts/tls/<id>/docker/`
//! (`ca.pem`, `cert.pem`, `key.pem`), and the current context in
//! `<config>/config.json` (`currentContext`). `<config>` is `$DOCKER_CONFIG`, else
//! `~/.docker` ([`docker_config_dir`]). The implicit `default` context (the local
//! engine) has no files and is not listed. Only paths are read here: key files are
//! never opened.

use crate::endpoint::{Endpoint, TlsPaths};
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One Docker context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerContext {
    /// The context's name, as `docker context ls` shows it.
    pub name: String,
    /// Its description (may be empty).
    pub description: String,
    /// Its Docker endpoint, with the TLS files when the context has all three.
    pub endpoint: Endpoint,
    /// `SkipTLSVerify` of the context: AnyCode does not connect without checking
    /// the engine's certificate, so such a context is listed with a [`DockerContext::problem`].
    pub skip_tls_verify: bool,
    /// Whether it is the CLI's current context (`currentContext`).
    pub current: bool,
    /// Why AnyCode cannot use it as it is (e.g. only some TLS files), if so.
    pub problem: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Meta {
    name: String,
    #[serde(default)]
    metadata: Option<MetaMetadata>,
    #[serde(default)]
    endpoints: HashMap<String, MetaEndpoint>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct MetaMetadata {
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetaEndpoint {
    #[serde(default)]
    host: String,
    #[serde(default, rename = "SkipTLSVerify")]
    skip_tls_verify: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CliConfig {
    #[serde(default)]
    current_context: Option<String>,
}

/// The Docker CLI's configuration folder: `$DOCKER_CONFIG`, else `~/.docker`.
/// `None` when neither is known.
pub fn docker_config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".docker"))
}

/// The contexts under `config_dir` (see the module notes), sorted by name. A
/// missing folder is no contexts. A context without a `docker` endpoint (e.g. a
/// Kubernetes-only one) is left out.
///
/// Errors: [`Error::Context`] naming the file, when `config.json` or a
/// `meta.json` is unreadable or not the CLI's format.
pub fn docker_contexts(config_dir: &Path) -> Result<Vec<DockerContext>> {
    let current = read_current(config_dir)?;
    let meta_root = config_dir.join("contexts").join("meta");
    let entries = match std::fs::read_dir(&meta_root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Context(format!("{}: {e}", meta_root.display()))),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::Context(format!("{}: {e}", meta_root.display())))?;
        let id = entry.file_name();
        let file = entry.path().join("meta.json");
        let text = match std::fs::read(&file) {
            Ok(t) => t,
            // A folder without meta.json is not a context (the CLI skips it too).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::Context(format!("{}: {e}", file.display()))),
        };
        let meta: Meta = serde_json::from_slice(&text).map_err(|e| Error::Context(format!("{} is not a Docker context's meta.json: {e}", file.display())))?;
        let Some(docker) = meta.endpoints.get("docker") else { continue };
        let tls_dir = config_dir.join("contexts").join("tls").join(&id).join("docker");
        let (ca, cert, key) = (tls_dir.join("ca.pem"), tls_dir.join("cert.pem"), tls_dir.join("key.pem"));
        let present = [&ca, &cert, &key].iter().filter(|p| p.is_file()).count();
        let mut problem = None;
        let tls = match present {
            3 => Some(TlsPaths { ca, cert, key }),
            0 => None,
            _ => {
                problem = Some(format!(
                    "context {} has only some of ca.pem, cert.pem and key.pem in {}; AnyCode needs all three for TLS",
                    meta.name,
                    tls_dir.display()
                ));
                None
            }
        };
        if docker.skip_tls_verify {
            problem = Some(format!("context {} skips verifying the engine's TLS certificate, which AnyCode does not do; give it a CA", meta.name));
        }
        let endpoint = Endpoint { url: docker.host.clone(), tls };
        if problem.is_none() {
            if let Err(e) = endpoint.parse() {
                problem = Some(e.to_string());
            }
        }
        out.push(DockerContext {
            current: current.as_deref() == Some(meta.name.as_str()),
            description: meta.metadata.unwrap_or_default().description,
            name: meta.name,
            endpoint,
            skip_tls_verify: docker.skip_tls_verify,
            problem,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn read_current(config_dir: &Path) -> Result<Option<String>> {
    let file = config_dir.join("config.json");
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Context(format!("{}: {e}", file.display()))),
    };
    let cfg: CliConfig = serde_json::from_slice(&text).map_err(|e| Error::Context(format!("{} is not the Docker CLI's config.json: {e}", file.display())))?;
    Ok(cfg.current_context.filter(|c| !c.is_empty() && c != "default"))
}
