//! What differs for a task on a remote host: nothing of this machine is mounted
//! there, so the task's working tree is a named volume, and git carries the rest.
//!
//! - At create, AnyCode makes the task branch and its mirror only
//!   (`create_task_mirror`), writes a bundle of the branch from the user's
//!   repository and seeds the volume with it through a helper container (no
//!   network, no capabilities) running `SEED_SCRIPT` with the bundle on its stdin.
//!   The task's container starts later on the seeded volume, queued or not.
//! - Work comes back exactly as locally (`taskrepo.rs`): snapshot, `git
//!   upload-pack` over an exec into the mirror, bring back. A stopped sandbox's git
//!   helper mounts the volume instead of a folder.
//! - Update from base first sends the base's new commits as a bundle
//!   (`BASE_FETCH_SCRIPT`), since the sandbox borrows no objects.
//! - The image is copied from the local engine when the host lacks it.
//! - Sandboxes there run as `1000:1000` (the image's `agent`, owner of the
//!   volume's `/workspace`): this machine's uids mean nothing there.
//!
//! Architecture Invariant: a remote task's container has no bind mount; its only
//! mount is its volume (`anycode-ws-<task id>`).

use crate::{blocking, Engine, Error, Project, Result, Task};
use anycode_core::LOCAL_HOST;
use anycode_git::taskrepo as tr;
use anycode_sandbox::SandboxHost;
use std::path::{Path, PathBuf};

/// The user sandboxes on remote hosts run as.
pub(crate) const REMOTE_USER: &str = "1000:1000";
/// Unpacks the `.worktreeinclude` copies (a tar on stdin) into the new working
/// tree and appends `$1` to its `info/exclude`, in the seed helper.
const INCLUDE_SCRIPT: &str = r#"set -eu
cd /workspace
tar -x -f - --no-same-owner
printf '%s' "$1" >> .git/info/exclude
"#;
/// Output kept of the seed and base-fetch scripts.
const SCRIPT_OUTPUT: usize = 64 * 1024;

/// The named volume holding a remote task's working tree.
pub(crate) fn volume_name(task_id: &str) -> String {
    format!("anycode-ws-{task_id}")
}

/// Whether the task's sandbox is on a remote host.
pub(crate) fn is_remote(task: &Task) -> bool {
    task.host != LOCAL_HOST
}

/// Makes the folder a bundle is written to.
fn make_parent(file: &Path) -> Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))
}

impl Engine {
    /// `<data dir>/tmp/<kind>-<task id>.bundle`: where a bundle for a remote
    /// sandbox is written before it is streamed there (removed after).
    fn bundle_path(&self, kind: &str, task_id: &str) -> PathBuf {
        self.inner.config.data_dir.join("tmp").join(format!("{kind}-{task_id}.bundle"))
    }

    /// The `uid:gid` the task's sandbox processes run as: the repository owner's
    /// locally, [`REMOTE_USER`] on a remote host.
    pub(crate) fn task_user(&self, task: &Task, project: &Project) -> String {
        if is_remote(task) {
            REMOTE_USER.to_string()
        } else {
            crate::taskrepo::sandbox_user(Path::new(&project.path))
        }
    }

    /// The task's mounts: a local task's folder and the user's objects (see
    /// `taskrepo::task_binds`), or a remote task's volume only.
    ///
    /// Errors: `INTERNAL` when the user's objects folder cannot be found.
    pub(crate) async fn task_binds_for(&self, task: &Task, project: &Project) -> Result<Vec<String>> {
        if is_remote(task) {
            return Ok(vec![anycode_sandbox::workspace_volume_bind(&volume_name(&task.id))?]);
        }
        let repo = PathBuf::from(&project.path);
        let objects = blocking(move || Ok(tr::objects_dir(&repo)?)).await?;
        Ok(crate::taskrepo::task_binds(&self.workspace_path(&project.id, &task.id), &objects))
    }

    /// Makes sure image `tag` (built on the local engine) exists on the host of
    /// `docker`: a remote host lacking it gets a copy from the local engine
    /// (`docker save` streamed into `docker load`), one copy per host at a time.
    ///
    /// Errors: `IMAGE_COPY_FAILED`, `DOCKER_UNAVAILABLE`, engine errors.
    pub(crate) async fn image_on(&self, docker: &SandboxHost, host_id: &str, tag: &str) -> Result<()> {
        if host_id == LOCAL_HOST || docker.image_exists(tag).await? {
            return Ok(());
        }
        let lock = {
            let mut locks = self.inner.image_copies.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(host_id.to_string()).or_default().clone()
        };
        let _one = lock.lock().await;
        if docker.image_exists(tag).await? {
            return Ok(());
        }
        let local = self.docker().await?;
        let started = std::time::Instant::now();
        let mut last_mb = 0u64;
        tracing::info!(host = host_id, image = tag, "copying the sandbox image to a remote host");
        let copy = |status: &str, copied_bytes: u64, total_bytes: u64, error: Option<String>| anycode_core::ImageCopy {
            tag: tag.to_string(),
            status: status.to_string(),
            copied_bytes,
            total_bytes,
            error,
        };
        self.set_image_copy(host_id, copy("copying", 0, 0, None));
        let mut last = (0u64, 0u64);
        let mut progress = |p: anycode_sandbox::transfer::CopyProgress| {
            last = (p.copied_bytes, p.total_bytes);
            let mb = p.copied_bytes >> 20;
            if mb >= last_mb + 16 || p.copied_bytes == 0 {
                last_mb = mb;
                self.set_image_copy(host_id, copy("copying", p.copied_bytes, p.total_bytes, None));
                tracing::debug!(host = host_id, image = tag, copied_mb = mb, total_mb = p.total_bytes >> 20, "copying the sandbox image");
            }
        };
        let result = local.copy_image_to(docker.as_ref(), tag, &mut progress).await;
        match &result {
            Ok(()) => {
                self.set_image_copy(host_id, copy("done", last.0, last.1, None));
                tracing::info!(host = host_id, image = tag, secs = started.elapsed().as_secs_f64(), mb = last.0 >> 20, "sandbox image copied");
            }
            Err(e) => self.set_image_copy(host_id, copy("failed", last.0, last.1, Some(e.to_string()))),
        }
        Ok(result?)
    }

    /// Seeds a remote task's volume with the task branch of the user's
    /// repository at `expect` (its tip), through a helper container of `image`
    /// with the volume and no network. When `existing_ok`, a volume that already
    /// holds a repository is left as it is (a container re-made on a kept volume).
    ///
    /// Errors: `TASK_REPO_BROKEN` when the seed script fails; git and engine errors.
    pub(crate) async fn seed_volume(&self, docker: &SandboxHost, task: &Task, project: &Project, image: &str, expect: &str, existing_ok: bool) -> Result<()> {
        let bundle = self.bundle_path("seed", &task.id);
        let (repo, branch, exp, out) = (PathBuf::from(&project.path), task.branch.clone(), expect.to_string(), bundle.clone());
        let size = blocking(move || {
            make_parent(&out)?;
            Ok(tr::write_seed_bundle(&repo, &branch, &exp, &out)?)
        })
        .await?;
        let result = async {
            docker.create_volume(&volume_name(&task.id), &task.id).await?;
            let binds = vec![anycode_sandbox::workspace_volume_bind(&volume_name(&task.id))?];
            let helper = docker.start_helper(&format!("anycode-seed-{}", task.id), image, &task.id, REMOTE_USER, binds).await?;
            let cmd = ["sh", "-c", tr::SEED_SCRIPT, "seed", &task.branch].map(String::from).to_vec();
            let seeded = match tokio::fs::File::open(&bundle).await {
                Ok(file) => docker.exec_output_from(&helper, cmd, REMOTE_USER, vec![], Box::new(file), SCRIPT_OUTPUT).await.map_err(Error::from),
                Err(e) => Err(Error::Internal(format!("{}: {e}", bundle.display()))),
            };
            // A new working tree gets the owner's `.worktreeinclude` files, as a
            // local one does (a failure is logged, never fatal).
            if !existing_ok && seeded.as_ref().is_ok_and(|o| o.exit_code == 0) {
                self.include_into_volume(docker, &helper, task, project).await;
            }
            if let Err(e) = docker.remove(&helper).await {
                tracing::warn!(task = %task.id, error = %e, "removing the seed helper failed");
            }
            let out = seeded?;
            match out.exit_code {
                0 => {
                    let head = tr::parse_seed_output(&out.stdout)?;
                    tracing::info!(task = %task.id, %head, bundle_bytes = size, "seeded the sandbox's repository on its host");
                    Ok(())
                }
                3 if existing_ok && tr::sandbox_text(&out.stderr).contains("not empty") => Ok(()),
                _ => Err(anycode_git::Error::TaskRepoBroken(format!("seeding the sandbox's repository failed: {}", tr::sandbox_text(&out.stderr))).into()),
            }
        }
        .await;
        let _ = tokio::fs::remove_file(&bundle).await;
        result
    }

    /// Copies the owner's `.worktreeinclude` files into a new remote working tree
    /// through the seed helper `helper` (no network, the volume at `/workspace`,
    /// nothing of a sandbox's there yet): staged here, sent as a tar, listed in the
    /// task repository's `info/exclude`. Failures are logged.
    async fn include_into_volume(&self, docker: &SandboxHost, helper: &str, task: &Task, project: &Project) {
        let stage = self.bundle_path("include", &task.id).with_extension("d");
        let (repo, dir, base) = (PathBuf::from(&project.path), stage.clone(), task.base_sha.clone());
        let staged = blocking(move || {
            let _ = std::fs::remove_dir_all(&dir);
            let base = tr::Oid::from_str(&base).map_err(anycode_git::Error::from)?;
            Ok(anycode_git::include::worktree_include_tar(&repo, &dir, base)?)
        })
        .await;
        let _ = tokio::fs::remove_dir_all(&stage).await;
        let (tar, exclude, got) = match staged {
            Ok(s) => s,
            Err(e) => return tracing::warn!(task = %task.id, error = %e, ".worktreeinclude: nothing copied"),
        };
        for (path, why) in &got.skipped {
            tracing::info!(task = %task.id, %path, %why, ".worktreeinclude: not copied");
        }
        if got.copied.is_empty() {
            return;
        }
        let cmd = ["sh", "-c", INCLUDE_SCRIPT, "include", &exclude].map(String::from).to_vec();
        match docker.exec_output_from(helper, cmd, REMOTE_USER, vec![], Box::new(std::io::Cursor::new(tar)), SCRIPT_OUTPUT).await {
            Ok(o) if o.exit_code == 0 => {
                tracing::info!(task = %task.id, copied = got.copied.len(), bytes = got.bytes, files = ?got.copied, "copied the files .worktreeinclude names to the remote working tree")
            }
            Ok(o) => tracing::warn!(task = %task.id, error = %tr::sandbox_text(&o.stderr), ".worktreeinclude: the copy on the host failed"),
            Err(e) => tracing::warn!(task = %task.id, error = %e, ".worktreeinclude: the copy on the host failed"),
        }
    }

    /// Before a merge of the base in a remote sandbox: sends the base's commits the
    /// task branch lacks as a bundle, fetched to `refs/anycode/base` in the
    /// sandbox. Nothing to send is fine.
    ///
    /// Errors: `TASK_REPO_BROKEN` when the sandbox's fetch fails; git and engine errors.
    pub(crate) async fn send_base(&self, docker: &SandboxHost, cid: &str, task: &Task, project: &Project) -> Result<()> {
        let bundle = self.bundle_path("base", &task.id);
        let (repo, base, branch, out) = (PathBuf::from(&project.path), task.base.clone(), task.branch.clone(), bundle.clone());
        let size = blocking(move || {
            make_parent(&out)?;
            Ok(tr::write_base_bundle(&repo, &base, &branch, &out)?)
        })
        .await?;
        if size.is_none() {
            return Ok(());
        }
        let result = async {
            let file = tokio::fs::File::open(&bundle).await.map_err(|e| Error::Internal(format!("{}: {e}", bundle.display())))?;
            let cmd = ["sh", "-c", tr::BASE_FETCH_SCRIPT, "fetchbase", &task.base].map(String::from).to_vec();
            let out = docker.exec_output_from(cid, cmd, REMOTE_USER, vec![], Box::new(file), SCRIPT_OUTPUT).await?;
            if out.exit_code != 0 {
                return Err(anycode_git::Error::TaskRepoBroken(format!("sending {} to the sandbox failed: {}", task.base, tr::sandbox_text(&out.stderr))).into());
            }
            Ok(())
        }
        .await;
        let _ = tokio::fs::remove_file(&bundle).await;
        result
    }
}
