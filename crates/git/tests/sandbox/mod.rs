#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A local stand-in of a sandbox for anycode-git's tests: the same scripts and
//! `git upload-pack` that AnyCode runs in a container, run here as local processes,
//! their stdio pumped into the same [`PackStream`] the engine feeds from an exec
//! stream. The host-side functions under test (fetch, bring back, diff, radar) see
//! exactly what they see in the product: a byte stream from a git they do not trust.
#![allow(dead_code)]

use anycode_git::taskrepo::{self as tr, PackStream};
use anycode_git::{Diff, Error, MergeCheck, Result};
use bytes::Bytes;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `<dir>/mirrors/<name>.git` for a task working tree `<dir>/worktrees/<name>`.
pub fn mirror_of(wt: &Path) -> PathBuf {
    let name = wt.file_name().unwrap().to_string_lossy().into_owned();
    wt.parent().unwrap().parent().unwrap().join("mirrors").join(format!("{name}.git"))
}

/// `<dir>/repo`: the user's repository of the fixtures.
pub fn user_repo_of(wt: &Path) -> PathBuf {
    wt.parent().unwrap().parent().unwrap().join("repo")
}

/// The task branch: what the task repository's HEAD named when first asked
/// (remembered next to the working tree, as the engine remembers it in its database,
/// so a sandbox that switches branches does not change it).
pub fn branch_of(wt: &Path) -> String {
    let memo = wt.with_extension("branch");
    if let Ok(b) = std::fs::read_to_string(&memo) {
        return b;
    }
    let head = std::fs::read_to_string(wt.join(".git/HEAD")).unwrap();
    let branch = head.trim().strip_prefix("ref: refs/heads/").unwrap().to_string();
    std::fs::write(&memo, &branch).unwrap();
    branch
}

/// Runs `sh -c <script> <name> <args…>` "in the sandbox" (the working tree).
pub fn run_script(wt: &Path, script: &str, name: &str, args: &[&str], env: &[(String, String)], stdin: &[u8]) -> Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(name)
        .args(args)
        .current_dir(wt)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `git upload-pack <wt>` as a child process behind a [`PackStream`] bounded by
/// `max_bytes`, as the engine pumps an exec stream.
pub fn upload_pack(wt: &Path, max_bytes: u64) -> (PackStream, std::process::Child) {
    let mut child = Command::new("git")
        .args(["-c", "core.fsmonitor=false", "upload-pack", "--timeout=60"])
        .arg(wt)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("git upload-pack");
    let (to_host, from_sandbox) = tokio::sync::mpsc::channel::<Bytes>(64);
    let (to_sandbox, mut from_host) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let mut out = child.stdout.take().unwrap();
    let mut input = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_host.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        while let Some(v) = from_host.blocking_recv() {
            if input.write_all(&v).and_then(|_| input.flush()).is_err() {
                break;
            }
        }
    });
    (PackStream::new(from_sandbox, to_sandbox, max_bytes), child)
}

/// Fetches the sandbox's branch and snapshot into the mirror.
pub fn fetch(wt: &Path) -> Result<tr::Fetched> {
    let (stream, mut child) = upload_pack(wt, tr::MAX_FETCH_BYTES);
    let r = tr::fetch_into_mirror(&mirror_of(wt), &branch_of(wt), stream);
    let _ = child.kill();
    let _ = child.wait();
    r
}

/// What the engine's sync does: snapshot in the sandbox, fetch, bring back.
pub fn sync(wt: &Path) -> Result<()> {
    let out = run_script(wt, tr::SNAPSHOT_SCRIPT, "snapshot", &[&branch_of(wt)], &[], b"");
    if !out.status.success() {
        return Err(Error::TaskRepoBroken(tr::sandbox_text(&out.stderr)));
    }
    tr::parse_snapshot_output(&out.stdout)?;
    fetch(wt)?;
    tr::bring_back(&user_repo_of(wt), &mirror_of(wt), &branch_of(wt))?;
    Ok(())
}

/// The engine's diff: sync, then the diff from the mirror.
pub fn diff(wt: &Path, base: &str, fallback: &str) -> Result<Diff> {
    sync(wt)?;
    tr::task_diff(&user_repo_of(wt), &mirror_of(wt), base, fallback)
}

/// The radar's check: sync, then the mirror's merge check.
pub fn merge_check(wt: &Path, base: &str) -> Result<MergeCheck> {
    sync(wt)?;
    tr::mirror_merge_check(&user_repo_of(wt), &mirror_of(wt), base)
}

/// The owner's identity as the environment of a git command in the sandbox.
pub fn identity_env(wt: &Path) -> Result<Vec<(String, String)>> {
    let (name, email) = tr::user_identity(&user_repo_of(wt))?;
    let mut env = Vec::new();
    for who in ["AUTHOR", "COMMITTER"] {
        env.push((format!("GIT_{who}_NAME"), name.clone()));
        env.push((format!("GIT_{who}_EMAIL"), email.clone()));
    }
    Ok(env)
}

/// The engine's commit: checks, `COMMIT_SCRIPT` in the sandbox, sync; the new sha.
pub fn commit_all(wt: &Path, message: &str) -> Result<String> {
    if message.trim().is_empty() {
        return Err(Error::EmptyMessage);
    }
    let env = identity_env(wt)?;
    sync(wt)?;
    if tr::uncommitted_in_mirror(&mirror_of(wt))?.is_empty() {
        return Err(Error::NothingToCommit);
    }
    let out = run_script(wt, tr::COMMIT_SCRIPT, "commit", &[], &env, message.as_bytes());
    if !out.status.success() {
        return Err(Error::TaskRepoBroken(tr::sandbox_text(&out.stderr)));
    }
    sync(wt)?;
    Ok(tr::mirror_refs(&mirror_of(wt))?.0.to_string())
}

/// Runs `git` in `dir` as user `T` (system config off, owner checks off) and
/// returns its trimmed stdout; panics when it fails.
pub fn git_t(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "safe.directory=*", "-c", "user.name=T", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Writes `s` at `p`, making its folders.
pub fn write_file(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

/// A temp folder (canonical path) holding `repo/`, a new repository on `main` with
/// user `T`'s identity in its config and no commit: `(guard, folder, repo)`.
pub fn temp_repo() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let repo = dir.join("repo");
    std::fs::create_dir(&repo).unwrap();
    git_t(&repo, &["init", "-q", "-b", "main"]);
    git_t(&repo, &["config", "user.name", "T"]);
    git_t(&repo, &["config", "user.email", "t@example.com"]);
    (tmp, dir, repo)
}
