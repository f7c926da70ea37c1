//! Reading files of a commit straight from the user's repository (libgit2 blobs),
//! never from a working tree: what a task's sandbox can write is never read here.
//! Used for the project's dev container (`.devcontainer/devcontainer.json` of the
//! task's base commit, and the Docker build context of its Dockerfile).

use crate::{open, Error, Result};
use git2::{ObjectType, Oid, TreeWalkMode, TreeWalkResult};
use std::path::Path;

/// The blob at `path` (`/`-separated, relative to the root) in `commit` of the
/// repository at `repo`: `Ok(None)` when the commit has no such file (or it is a
/// folder, a symlink or a submodule).
///
/// Errors: git errors; [`Error::Io`] when the blob is larger than `max_bytes`.
pub fn read_blob_at(repo: &Path, commit: &str, path: &str, max_bytes: usize) -> Result<Option<Vec<u8>>> {
    let r = open(repo)?;
    let tree = r.find_commit(Oid::from_str(commit)?)?.tree()?;
    let entry = match tree.get_path(Path::new(path)) {
        Ok(e) => e,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // 0o120000 is a symlink, 0o160000 a submodule: only regular files count.
    if entry.kind() != Some(ObjectType::Blob) || entry.filemode() == 0o120000 {
        return Ok(None);
    }
    let blob = r.find_blob(entry.id())?;
    if blob.size() > max_bytes {
        return Err(Error::Io(format!("{path} is larger than {max_bytes} bytes")));
    }
    Ok(Some(blob.content().to_vec()))
}

/// A tar archive of the folder `dir` (`""` or `.` for the root) of `commit`: the
/// Docker build context of a project's Dockerfile, taken from the commit rather
/// than from a working tree. Files keep their executable bit, symlinks stay
/// symlinks (their targets are not followed), submodules are left out.
///
/// `extra` files (path, bytes) are appended after the folder's (e.g. a Dockerfile
/// from elsewhere in the commit).
///
/// Errors: git errors; [`Error::Io`] when `dir` is not a folder of the commit or
/// the files come to more than `max_bytes`.
pub fn tar_tree_at(repo: &Path, commit: &str, dir: &str, max_bytes: u64, extra: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let r = open(repo)?;
    let root = r.find_commit(Oid::from_str(commit)?)?.tree()?;
    let dir = dir.trim_matches('/');
    let tree = if dir.is_empty() || dir == "." {
        root
    } else {
        let e = root.get_path(Path::new(dir)).map_err(|_| Error::Io(format!("the commit has no folder {dir}")))?;
        if e.kind() != Some(ObjectType::Tree) {
            return Err(Error::Io(format!("{dir} is not a folder in the commit")));
        }
        r.find_tree(e.id())?
    };
    let mut out = tar::Builder::new(Vec::new());
    let mut total = 0u64;
    let mut failure: Option<Error> = None;
    tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
        let Some(name) = entry.name() else { return TreeWalkResult::Skip };
        let path = format!("{parent}{name}");
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        let res = match (entry.kind(), entry.filemode()) {
            (Some(ObjectType::Tree), _) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                out.append_data(&mut header, format!("{path}/"), std::io::empty())
            }
            (Some(ObjectType::Blob), mode) => match r.find_blob(entry.id()) {
                Ok(blob) => {
                    total += blob.size() as u64;
                    if total > max_bytes {
                        failure = Some(Error::Io(format!("the build context is larger than {max_bytes} bytes")));
                        return TreeWalkResult::Abort;
                    }
                    if mode == 0o120000 {
                        header.set_entry_type(tar::EntryType::Symlink);
                        header.set_size(0);
                        header.set_mode(0o777);
                        let target = String::from_utf8_lossy(blob.content()).into_owned();
                        out.append_link(&mut header, &path, target)
                    } else {
                        header.set_size(blob.size() as u64);
                        header.set_mode(if mode == 0o100755 { 0o755 } else { 0o644 });
                        out.append_data(&mut header, &path, blob.content())
                    }
                }
                Err(e) => {
                    failure = Some(e.into());
                    return TreeWalkResult::Abort;
                }
            },
            // Submodules (commits) are not part of the context.
            _ => return TreeWalkResult::Skip,
        };
        match res {
            Ok(()) => TreeWalkResult::Ok,
            Err(e) => {
                failure = Some(Error::Io(format!("archiving {path}: {e}")));
                TreeWalkResult::Abort
            }
        }
    })
    .or_else(|e| if failure.is_some() { Ok(()) } else { Err(e) })?;
    if let Some(e) = failure {
        return Err(e);
    }
    for (path, data) in extra {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        out.append_data(&mut header, path, data.as_slice()).map_err(|e| Error::Io(format!("archiving {path}: {e}")))?;
    }
    out.into_inner().map_err(|e| Error::Io(format!("archiving the build context: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git").arg("-C").arg(dir).args(args).status().unwrap().success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn reads_the_commit_not_the_working_tree() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path();
        git(repo, &["init", "-q"]);
        git(repo, &["config", "user.email", "t@example.com"]);
        git(repo, &["config", "user.name", "T"]);
        std::fs::create_dir_all(repo.join(".devcontainer/ctx")).unwrap();
        std::fs::write(repo.join(".devcontainer/devcontainer.json"), "{\"image\": \"a\"}").unwrap();
        std::fs::write(repo.join(".devcontainer/ctx/run.sh"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", repo.join(".devcontainer/ctx/link")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(repo.join(".devcontainer/ctx/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        git(repo, &["add", "."]);
        git(repo, &["commit", "-qm", "c"]);
        let sha = String::from_utf8(Command::new("git").arg("-C").arg(repo).args(["rev-parse", "HEAD"]).output().unwrap().stdout).unwrap();
        let sha = sha.trim();
        // A later change of the working tree is not what is read.
        std::fs::write(repo.join(".devcontainer/devcontainer.json"), "{\"image\": \"changed\"}").unwrap();
        std::fs::write(repo.join(".devcontainer/ctx/extra"), "x").unwrap();
        assert_eq!(read_blob_at(repo, sha, ".devcontainer/devcontainer.json", 1000).unwrap().unwrap(), b"{\"image\": \"a\"}");
        assert_eq!(read_blob_at(repo, sha, ".devcontainer/none.json", 1000).unwrap(), None);
        assert_eq!(read_blob_at(repo, sha, ".devcontainer", 1000).unwrap(), None, "a folder");
        assert_eq!(read_blob_at(repo, sha, ".devcontainer/ctx/link", 1000).unwrap(), None, "a symlink");
        assert!(read_blob_at(repo, sha, ".devcontainer/devcontainer.json", 3).is_err());

        let tar = tar_tree_at(repo, sha, ".devcontainer/ctx", 1 << 20, &[]).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let h = e.header();
            seen.push((p, h.entry_type().is_symlink(), h.mode().unwrap() & 0o111 != 0));
        }
        seen.sort();
        assert_eq!(seen, vec![("link".to_string(), true, true), ("run.sh".to_string(), false, true)]);
        assert!(tar_tree_at(repo, sha, "nope", 1 << 20, &[]).is_err());
        assert!(tar_tree_at(repo, sha, "", 4, &[]).is_err(), "past the size limit");
    }
}
