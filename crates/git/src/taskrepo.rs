//! The task's repository: the sandbox's own git repository, AnyCode's mirror of it,
//! and the way work comes back into the user's repository.
//!
//! Nothing a sandbox writes is trusted (see SECURITY.md). So:
//!
//! - The sandbox works in a repository of its own, `<workspace>/.git`, made by
//!   [`create_task_repo`] in a folder under AnyCode's data dir. Its objects come from
//!   the user's repository through `objects/info/alternates`, which the sandbox sees
//!   read-only. The user's `.git` is never mounted writable, so no hook, config or
//!   ref the sandbox writes can reach the user's git, IDE or AnyCode.
//! - AnyCode never opens the sandbox's repository on the host after the sandbox
//!   started: no `.git` file, `core.worktree`, gitdir file, symlink or config of its
//!   making is ever followed. Work comes out through git's pack protocol only:
//!   [`SNAPSHOT_SCRIPT`] (run *in* the sandbox) records the working tree as a commit,
//!   and `git upload-pack` (also in the sandbox) serves it over the exec stream to
//!   [`fetch_into_mirror`], which indexes the pack (every object hashed and checked
//!   by libgit2) into AnyCode's own bare mirror (`refs/anycode/head`,
//!   `refs/anycode/snapshot`). The transport is a byte stream ([`PackStream`]), so a
//!   sandbox on a remote Docker engine uses the same path.
//! - Diff and the conflict radar read only the mirror's objects ([`task_diff`],
//!   [`mirror_merge_check`]): symlinks are blobs (shown as symlinks), and no file of
//!   the host is read.
//! - [`bring_back`] updates exactly one ref of the user's repository,
//!   `refs/heads/<task branch>`, from the mirror with libgit2 (which runs no hooks),
//!   and only when that is a fast-forward or the branch is where AnyCode last left it.

use crate::{current_branch, diff_between, open, Diff, Error, MergeCheck, Result};
use bytes::Bytes;
use git2::{BranchType, FetchOptions, Repository, RepositoryInitOptions};
/// A git object id (40 hex digits when shown).
pub use git2::Oid;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// Where the task's working tree is in the sandbox.
pub const SANDBOX_WORKDIR: &str = "/workspace";

/// The mirror's ref of the sandbox's task branch.
pub const MIRROR_HEAD: &str = "refs/anycode/head";
/// The mirror's ref of the last snapshot of the sandbox's working tree.
pub const MIRROR_SNAPSHOT: &str = "refs/anycode/snapshot";
/// The mirror's ref of where AnyCode last set the user's task branch.
pub const MIRROR_SYNCED: &str = "refs/anycode/synced";
/// The mirror's ref of the task's base commit (so fetches negotiate from it).
pub const MIRROR_BASE: &str = "refs/anycode/base";

/// The most bytes one fetch from a sandbox may bring (a pack of the work since the
/// base): 2 GiB. More is refused as [`Error::TaskRepoBroken`].
pub const MAX_FETCH_BYTES: u64 = 2 << 30;

/// `sh -c SNAPSHOT_SCRIPT snapshot <branch>`, run in the sandbox as its user with the
/// working tree as the current folder: records the working tree (tracked, changed
/// and untracked files; .gitignore honoured) as a commit whose parent is HEAD, under
/// `refs/anycode/snapshot`, through a temporary index (the real one is not touched),
/// and prints `anycode-snapshot <head> <snapshot>`. The snapshot's dates are fixed,
/// so the same work gives the same sha and an unchanged sandbox needs no fetch. The task branch must exist.
/// Exit code 3 with a sentence on stderr when the repository is unusable.
pub const SNAPSHOT_SCRIPT: &str = r#"set -eu
G="git -c core.fsmonitor=false -c core.hooksPath=/dev/null -c commit.gpgsign=false"
branch="$1"
$G rev-parse --verify -q "refs/heads/$branch^{commit}" >/dev/null || { echo "the task branch $branch is missing" >&2; exit 3; }
head=$($G rev-parse --verify -q 'HEAD^{commit}') || { echo "HEAD does not point at a commit" >&2; exit 3; }
gitdir=$($G rev-parse --git-dir) || exit 3
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.lock"' EXIT
cp "$gitdir/index" "$tmp" 2>/dev/null || rm -f "$tmp"
export GIT_INDEX_FILE="$tmp"
$G add -A
tree=$($G write-tree)
snap=$(GIT_AUTHOR_NAME=AnyCode GIT_AUTHOR_EMAIL=anycode@localhost GIT_COMMITTER_NAME=AnyCode GIT_COMMITTER_EMAIL=anycode@localhost \
  GIT_AUTHOR_DATE='@0 +0000' GIT_COMMITTER_DATE='@0 +0000' \
  $G commit-tree "$tree" -p "$head" -m "AnyCode: snapshot of the working tree")
$G update-ref refs/anycode/snapshot "$snap"
echo "anycode-snapshot $head $snap"
"#;

/// `sh -c COMMIT_SCRIPT commit`, run in the sandbox: stages everything (.gitignore
/// honoured) and commits it with the message read from stdin, no hooks, no signing.
/// The identity comes from `GIT_AUTHOR_*`/`GIT_COMMITTER_*` in its environment.
pub const COMMIT_SCRIPT: &str = r#"set -eu
G="git -c core.fsmonitor=false -c core.hooksPath=/dev/null -c commit.gpgsign=false"
$G add -A
$G commit --no-verify -q -F -
"#;

/// `sh -c MERGE_SCRIPT merge <sha> <message>`, run in the sandbox: merges commit
/// `<sha>` (the base's tip, visible through the alternates) into the checked-out
/// branch, fast-forwarding when it can; no hooks, no signing.
pub const MERGE_SCRIPT: &str = r#"set -eu
G="git -c core.fsmonitor=false -c core.hooksPath=/dev/null -c commit.gpgsign=false"
$G merge --no-edit --no-verify -q -m "$2" "$1"
"#;

/// `sh -c SEED_SCRIPT seed <branch>`, run in a new sandbox whose `/workspace` is
/// an empty volume (a remote host, see [`create_task_mirror`]), with a bundle of
/// the task branch ([`write_seed_bundle`]) on stdin: makes the sandbox's own
/// repository there (no templates, so no sample hooks), fetches the branch from
/// the bundle, checks it out and removes the bundle. Prints
/// `anycode-seeded <head>`. Exit code 3 with a sentence on stderr when the
/// folder is not empty or the bundle lacks the branch.
pub const SEED_SCRIPT: &str = r#"set -eu
G="git -c core.fsmonitor=false -c core.hooksPath=/dev/null -c init.defaultBranch=anycode-seed"
branch="$1"
[ -z "$(ls -A .)" ] || { echo "the task's volume is not empty" >&2; exit 3; }
$G init -q --template= .
cat > .git/anycode-seed.bundle
trap 'rm -f .git/anycode-seed.bundle' EXIT
$G bundle verify -q .git/anycode-seed.bundle >/dev/null 2>&1 || { echo "the seed bundle is not a valid git bundle" >&2; exit 3; }
$G fetch -q --no-tags --update-head-ok .git/anycode-seed.bundle "+refs/heads/$branch:refs/heads/$branch" || { echo "the seed bundle has no branch $branch" >&2; exit 3; }
$G symbolic-ref HEAD "refs/heads/$branch"
$G reset -q --hard "refs/heads/$branch"
echo "anycode-seeded $($G rev-parse HEAD)"
"#;

/// Writes a git bundle of `refs/heads/<branch>` of the user's repository (its
/// whole history) to `out`, with the host's `git bundle create` (libgit2 makes no
/// bundles). The source is the user's repository, never a sandbox's. Checks that
/// the branch is at `expect` (the task's base sha), so the sandbox starts where
/// the task does. Returns the bundle's size in bytes.
///
/// Errors: [`Error::Io`] when git is missing or fails (its stderr), when the
/// branch moved away from `expect`.
pub fn write_seed_bundle(user_repo: &Path, branch: &str, expect: &str, out: &Path) -> Result<u64> {
    let repo = open(user_repo)?;
    let tip = repo.refname_to_id(&format!("refs/heads/{branch}")).map_err(|_| Error::UnknownBranch(branch.to_string()))?;
    if tip.to_string() != expect {
        return Err(Error::Io(format!("the branch {branch} is at {tip}, not at {expect}; the sandbox cannot start from it")));
    }
    let git_dir = repo.path().to_path_buf();
    drop(repo);
    bundle_create(&git_dir, out, &[format!("refs/heads/{branch}")])?;
    // The branch may have moved while git read it: the bundle must carry `expect`.
    let heads = std::process::Command::new("git")
        .args(["bundle", "list-heads"])
        .arg(out)
        .current_dir(out.parent().unwrap_or(Path::new("/")))
        .output()
        .map_err(|e| Error::Io(format!("running git bundle list-heads: {e}")))?;
    let listed = String::from_utf8_lossy(&heads.stdout);
    if !listed.lines().any(|l| l == format!("{expect} refs/heads/{branch}")) {
        return Err(Error::Io(format!("the bundle of {branch} does not hold {expect} (the branch moved while it was made)")));
    }
    std::fs::metadata(out).map(|m| m.len()).map_err(|e| Error::Io(format!("{}: {e}", out.display())))
}

/// `sh -c BASE_FETCH_SCRIPT fetchbase <base>`, run in a sandbox that borrows no
/// objects (a remote host) before a merge of its base: reads a bundle of the base
/// ([`write_base_bundle`]) from stdin and fetches it to `refs/anycode/base`, so the
/// base's commits are there for [`MERGE_SCRIPT`]; the bundle is removed after.
pub const BASE_FETCH_SCRIPT: &str = r#"set -eu
G="git -c core.fsmonitor=false -c core.hooksPath=/dev/null"
cat > .git/anycode-base.bundle
trap 'rm -f .git/anycode-base.bundle' EXIT
$G fetch -q --no-tags .git/anycode-base.bundle "+refs/heads/$1:refs/anycode/base"
"#;

/// Writes a bundle of `refs/heads/<base>` of the user's repository holding only
/// what the task branch lacks (everything after their merge base, which the
/// sandbox has since the task branch came from it), for [`BASE_FETCH_SCRIPT`].
/// Returns its size in bytes, or `None` when the base has nothing the task branch
/// lacks.
///
/// Errors: [`Error::UnknownBranch`]; [`Error::Io`] when git fails.
pub fn write_base_bundle(user_repo: &Path, base: &str, task_branch: &str, out: &Path) -> Result<Option<u64>> {
    let repo = open(user_repo)?;
    let base_tip = repo.refname_to_id(&format!("refs/heads/{base}")).map_err(|_| Error::UnknownBranch(base.to_string()))?;
    let task_tip = repo.refname_to_id(&format!("refs/heads/{task_branch}")).map_err(|_| Error::UnknownBranch(task_branch.to_string()))?;
    let have = repo.merge_base(base_tip, task_tip).ok();
    if have == Some(base_tip) {
        return Ok(None);
    }
    let git_dir = repo.path().to_path_buf();
    drop(repo);
    let mut revs = vec![format!("refs/heads/{base}")];
    revs.extend(have.map(|h| format!("^{h}")));
    bundle_create(&git_dir, out, &revs)?;
    std::fs::metadata(out).map(|m| Some(m.len())).map_err(|e| Error::Io(format!("{}: {e}", out.display())))
}

/// `git --git-dir <git_dir> bundle create -q <out> <revs…>` with the host's git
/// (libgit2 makes no bundles), with no repository taken from the environment.
///
/// Errors: [`Error::Io`] when git is missing or fails (its stderr).
fn bundle_create(git_dir: &Path, out: &Path, revs: &[String]) -> Result<()> {
    let output = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["bundle", "create", "-q"])
        .arg(out)
        .args(revs)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Io(format!("running git bundle create: {e}")))?;
    if !output.status.success() {
        return Err(Error::Io(format!("git bundle create failed: {}", String::from_utf8_lossy(&output.stderr).trim())));
    }
    Ok(())
}

/// Parses [`SEED_SCRIPT`]'s output: the sandbox's checked-out commit.
///
/// Errors: [`Error::TaskRepoBroken`] when no such line is there.
pub fn parse_seed_output(stdout: &[u8]) -> Result<Oid> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("anycode-seeded "))
        .and_then(|h| Oid::from_str(h.trim()).ok())
        .ok_or_else(|| Error::TaskRepoBroken("the sandbox did not report its seeded repository".into()))
}

/// Parses [`SNAPSHOT_SCRIPT`]'s last output line: `(head, snapshot)`.
///
/// Errors: [`Error::TaskRepoBroken`] when no such line is there.
pub fn parse_snapshot_output(stdout: &[u8]) -> Result<(Oid, Oid)> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().rev().find(|l| l.starts_with("anycode-snapshot ")).unwrap_or("");
    let mut parts = line.split(' ').skip(1);
    match (parts.next().map(Oid::from_str), parts.next().map(Oid::from_str)) {
        (Some(Ok(head)), Some(Ok(snap))) => Ok((head, snap)),
        _ => Err(Error::TaskRepoBroken("the sandbox did not report a snapshot of its working tree".into())),
    }
}

/// Text from a sandbox (git's stderr) made safe to show: control characters
/// dropped, at most 300 characters of its first lines.
pub fn sandbox_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    out = out.trim().to_string();
    if out.is_empty() {
        out = "no details".into();
    }
    out
}

/// The canonical `objects` folder of the repository at `user_repo` (its common git
/// dir's, for a repository that is itself a worktree): what a task repository
/// borrows through its alternates.
pub fn objects_dir(user_repo: &Path) -> Result<PathBuf> {
    let repo = open(user_repo)?;
    let objects = repo.commondir().join("objects");
    objects.canonicalize().map_err(|e| Error::Io(format!("{}: {e}", objects.display())))
}

/// Opens a repository at exactly `path` (a working tree AnyCode made, or the mirror)
/// without searching upwards or across filesystems, and checks that its git dir is
/// the expected one: never a `.git` file's target or another folder.
fn open_exact(path: &Path, bare: bool) -> Result<Repository> {
    let flags = git2::RepositoryOpenFlags::NO_SEARCH | if bare { git2::RepositoryOpenFlags::BARE } else { git2::RepositoryOpenFlags::empty() };
    let repo = Repository::open_ext(path, flags, std::iter::empty::<&std::ffi::OsStr>())?;
    let expected = if bare { path.to_path_buf() } else { path.join(".git") };
    let got = repo.path().canonicalize().map_err(|e| Error::Io(format!("{}: {e}", repo.path().display())))?;
    let want = expected.canonicalize().map_err(|e| Error::Io(format!("{}: {e}", expected.display())))?;
    if got != want {
        return Err(Error::TaskRepoBroken(format!("{} is not the repository AnyCode made", path.display())));
    }
    Ok(repo)
}

fn write_alternates(gitdir: &Path, objects: &Path) -> Result<()> {
    let file = gitdir.join("objects").join("info").join("alternates");
    std::fs::create_dir_all(file.parent().unwrap_or(gitdir)).map_err(|e| Error::Io(format!("{}: {e}", file.display())))?;
    std::fs::write(&file, format!("{}\n", objects.display())).map_err(|e| Error::Io(format!("{}: {e}", file.display())))
}

/// A task repository at `workspace` (made when `mkdir`, else in the existing
/// folder): no templates (so no sample hooks), alternates to `objects`, `branch` at
/// `tip` and HEAD on it. Nothing is checked out.
fn init_task_repo(workspace: &Path, objects: &Path, branch: &str, tip: Oid, mkdir: bool) -> Result<Repository> {
    let mut opts = RepositoryInitOptions::new();
    opts.no_reinit(true).mkdir(mkdir).mkpath(mkdir).external_template(false).initial_head(branch);
    let ws = Repository::init_opts(workspace, &opts)?;
    write_alternates(ws.path(), objects)?;
    drop(ws);
    let ws = open_exact(workspace, false)?;
    ws.reference(&format!("refs/heads/{branch}"), tip, true, "anycode: task branch")?;
    ws.set_head(&format!("refs/heads/{branch}"))?;
    Ok(ws)
}

/// AnyCode's bare mirror of a task at `mirror` (which must not exist), borrowing
/// `objects`, its refs at `tip`.
fn init_mirror(mirror: &Path, objects: &Path, tip: Oid) -> Result<()> {
    let mut opts = RepositoryInitOptions::new();
    opts.bare(true).no_reinit(true).mkdir(true).mkpath(true).external_template(false);
    let m = Repository::init_opts(mirror, &opts)?;
    write_alternates(m.path(), objects)?;
    drop(m);
    let m = open_exact(mirror, true)?;
    for r in [MIRROR_BASE, MIRROR_HEAD, MIRROR_SYNCED] {
        m.reference(r, tip, true, "anycode: task repository made")?;
    }
    Ok(())
}

/// Makes a task's repositories and branch: branch `branch` in the user's repository
/// at the tip of `base` (its current branch when `None`); at `workspace` (which must
/// not exist) a new repository on `branch` with that commit checked out, borrowing
/// the user's objects through its alternates; at `mirror` (which must not exist)
/// AnyCode's bare mirror of it. Returns `(base, base_sha)`.
///
/// Everything is made before any sandbox exists, from the user's objects only. On
/// failure whatever this call made is removed (branch, folders).
///
/// Errors: [`Error::NoCurrentBranch`], [`Error::UnknownBranch`],
/// [`Error::InvalidBranchName`], [`Error::BranchExists`], [`Error::Io`] when a
/// folder exists already.
pub fn create_task_repo(user_repo: &Path, base: Option<&str>, branch: &str, workspace: &Path, mirror: &Path) -> Result<(String, String)> {
    create_task_repo_at(user_repo, base, branch, Some(workspace), mirror)
}

/// [`create_task_repo`] for a sandbox on an engine that cannot mount AnyCode's
/// folders (a remote host): the branch and the mirror only. The sandbox's
/// repository is made in the sandbox, in a volume, from a bundle
/// ([`write_seed_bundle`], [`SEED_SCRIPT`]); work comes out of it as from any
/// sandbox ([`fetch_into_mirror`]). Returns `(base, base_sha)`.
///
/// Errors: as [`create_task_repo`].
pub fn create_task_mirror(user_repo: &Path, base: Option<&str>, branch: &str, mirror: &Path) -> Result<(String, String)> {
    create_task_repo_at(user_repo, base, branch, None, mirror)
}

fn create_task_repo_at(user_repo: &Path, base: Option<&str>, branch: &str, workspace: Option<&Path>, mirror: &Path) -> Result<(String, String)> {
    let repo = open(user_repo)?;
    let base = match base {
        Some(b) => b.to_string(),
        None => current_branch(&repo).ok_or(Error::NoCurrentBranch)?,
    };
    let base_commit = repo
        .find_branch(&base, BranchType::Local)
        .map_err(|_| Error::UnknownBranch(base.clone()))?
        .get()
        .peel_to_commit()
        .map_err(|_| Error::UnknownBranch(base.clone()))?;
    crate::check_new_branch(user_repo, branch)?;
    for p in workspace.into_iter().chain([mirror]) {
        if p.symlink_metadata().is_ok() {
            return Err(Error::Io(format!("{} already exists; a task's folder must be new", p.display())));
        }
    }
    let objects = objects_dir(user_repo)?;
    if objects.to_string_lossy().contains([':', ',', '\n']) {
        return Err(Error::Io(format!(
            "the repository's object folder {} has a ':' or ',' in its path, which Docker's mounts cannot carry; move the repository",
            objects.display()
        )));
    }
    let base_oid = base_commit.id();
    let mut new_branch = repo.branch(branch, &base_commit, false)?;
    let made = (|| -> Result<()> {
        // The sandbox's repository, the branch checked out.
        if let Some(workspace) = workspace {
            let ws = init_task_repo(workspace, &objects, branch, base_oid, true)?;
            let mut checkout = git2::build::CheckoutBuilder::new();
            checkout.force();
            ws.checkout_head(Some(&mut checkout))?;
        }
        init_mirror(mirror, &objects, base_oid)
    })();
    if let Err(e) = made {
        // Neither folder existed before this call (checked above).
        if let Some(workspace) = workspace {
            let _ = std::fs::remove_dir_all(workspace);
        }
        let _ = std::fs::remove_dir_all(mirror);
        let _ = new_branch.delete();
        return Err(e);
    }
    Ok((base, base_oid.to_string()))
}

/// Removes a task's working tree and mirror folders, by their known paths (never
/// following a symlink: `remove_dir_all` removes links, not their targets). Missing
/// folders are fine. The branch in the user's repository stays.
pub fn remove_task_repo(workspace: &Path, mirror: &Path) -> Result<()> {
    for p in [workspace, mirror] {
        match p.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).map_err(|e| Error::Io(format!("removing {}: {e}", p.display())))?,
            Ok(_) => std::fs::remove_file(p).map_err(|e| Error::Io(format!("removing {}: {e}", p.display())))?,
            Err(_) => {}
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ transport

/// One pack-protocol connection to a `git upload-pack` (or `receive-pack`) running
/// elsewhere, as two channels: bytes from it and bytes to it. The engine pumps an
/// exec stream into these; tests pump a local child process.
///
/// Reads are bounded by `max_bytes` ([`MAX_FETCH_BYTES`] by default): a sandbox that
/// sends more gets the fetch refused. Closing (dropping) the sender side of
/// `from_remote` ends the stream, which is how a caller's timeout stops a fetch.
pub struct PackStream {
    from_remote: tokio::sync::mpsc::Receiver<Bytes>,
    to_remote: tokio::sync::mpsc::Sender<Vec<u8>>,
    pending: Bytes,
    read: u64,
    max_bytes: u64,
}

impl PackStream {
    /// A stream over these channels, at most `max_bytes` read.
    pub fn new(from_remote: tokio::sync::mpsc::Receiver<Bytes>, to_remote: tokio::sync::mpsc::Sender<Vec<u8>>, max_bytes: u64) -> PackStream {
        PackStream { from_remote, to_remote, pending: Bytes::new(), read: 0, max_bytes }
    }
}

impl Read for PackStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            match self.from_remote.blocking_recv() {
                Some(b) => self.pending = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        let _ = self.pending.split_to(n);
        self.read += n as u64;
        if self.read > self.max_bytes {
            return Err(std::io::Error::other(format!("the sandbox sent more than {} bytes", self.max_bytes)));
        }
        Ok(n)
    }
}

impl Write for PackStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.to_remote.blocking_send(buf.to_vec()).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the sandbox's git closed its input"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const SCHEME: &str = "anycode-pack";

/// Connections waiting for libgit2 to ask for them, by the key in their URL.
static WAITING: Mutex<Option<HashMap<String, PackStream>>> = Mutex::new(None);
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

struct Subtransport;

impl git2::transport::SmartSubtransport for Subtransport {
    fn action(&self, url: &str, _action: git2::transport::Service) -> std::result::Result<Box<dyn git2::transport::SmartSubtransportStream>, git2::Error> {
        let key = url.strip_prefix(&format!("{SCHEME}://")).unwrap_or("");
        let stream = WAITING.lock().unwrap_or_else(|p| p.into_inner()).as_mut().and_then(|m| m.remove(key));
        match stream {
            Some(s) => Ok(Box::new(s)),
            None => Err(git2::Error::from_str("no connection to the sandbox's git is waiting")),
        }
    }

    fn close(&self) -> std::result::Result<(), git2::Error> {
        Ok(())
    }
}

/// Registers AnyCode's pack transport with libgit2 (once per process). Call it
/// before other libgit2 work starts (the engine does so when it opens); later calls
/// do nothing.
pub fn init_transport() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registration happens once, inside `call_once`, which every user of
        // the transport goes through before creating a remote on it.
        let res = unsafe {
            git2::transport::register(SCHEME, |remote| git2::transport::Transport::smart(remote, false, Subtransport))
        };
        if let Err(e) = res {
            // Fetching from sandboxes then fails with libgit2's "unsupported URL".
            eprintln!("anycode-git: registering the pack transport failed: {e}");
        }
    });
}

/// Removes a connection nobody used (the fetch failed before asking for it).
struct Parked(String);
impl Drop for Parked {
    fn drop(&mut self) {
        if let Some(m) = WAITING.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            m.remove(&self.0);
        }
    }
}

/// What [`fetch_into_mirror`] found in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// The sandbox's task branch.
    pub head: Oid,
    /// The sandbox's last snapshot of its working tree.
    pub snapshot: Option<Oid>,
}

/// Fetches the sandbox's task branch and its snapshot ref over `stream` (connected
/// to `git upload-pack` of the sandbox's repository) into the mirror at `mirror`,
/// as [`MIRROR_HEAD`] and [`MIRROR_SNAPSHOT`]. Every object is indexed and checked
/// by libgit2; nothing but those two refs of the mirror changes. No FETCH_HEAD.
///
/// Errors: [`Error::TaskRepoBroken`] when the sandbox's git fails, sends a bad pack,
/// too much, or lacks the branch.
pub fn fetch_into_mirror(mirror: &Path, branch: &str, stream: PackStream) -> Result<Fetched> {
    init_transport();
    let m = open_exact(mirror, true)?;
    let key = format!("{}-{}", std::process::id(), NEXT_KEY.fetch_add(1, Ordering::Relaxed));
    WAITING.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(HashMap::new).insert(key.clone(), stream);
    let _parked = Parked(key.clone());
    let mut remote = m.remote_anonymous(&format!("{SCHEME}://{key}"))?;
    let mut opts = FetchOptions::new();
    opts.update_fetchhead(false).download_tags(git2::AutotagOption::None);
    let specs = [format!("+refs/heads/{branch}:{MIRROR_HEAD}"), format!("+{MIRROR_SNAPSHOT}:{MIRROR_SNAPSHOT}")];
    remote
        .fetch(&specs, Some(&mut opts), Some("anycode: from the sandbox"))
        .map_err(|e| Error::TaskRepoBroken(format!("fetching from the sandbox failed: {}", e.message())))?;
    // Which refs the sandbox advertised: a missing task branch is an error (the old
    // mirror ref would otherwise pass for the sandbox's current work).
    let advertised: Vec<String> = remote.list().map(|l| l.iter().map(|h| h.name().to_string()).collect()).unwrap_or_default();
    if !advertised.iter().any(|n| n == &format!("refs/heads/{branch}")) {
        return Err(Error::TaskRepoBroken(format!("the sandbox's repository has no branch {branch}")));
    }
    let head = m.refname_to_id(MIRROR_HEAD)?;
    let snapshot = if advertised.iter().any(|n| n == MIRROR_SNAPSHOT) { m.refname_to_id(MIRROR_SNAPSHOT).ok() } else { None };
    Ok(Fetched { head, snapshot })
}

/// The mirror's refs: `(head, snapshot)`; the snapshot when one was fetched.
pub fn mirror_refs(mirror: &Path) -> Result<(Oid, Option<Oid>)> {
    let m = open_exact(mirror, true)?;
    Ok((m.refname_to_id(MIRROR_HEAD)?, m.refname_to_id(MIRROR_SNAPSHOT).ok()))
}

/// What [`bring_back`] did to the user's task branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroughtBack {
    /// The branch already pointed at the sandbox's work.
    Unchanged(String),
    /// The branch now points at this commit.
    Updated(String),
}

/// Sets `refs/heads/<branch>` of the user's repository to the mirror's
/// [`MIRROR_HEAD`], fetching the objects from the mirror (AnyCode's own repository)
/// with libgit2: no hook runs, no other ref, config or file of the user's repository
/// changes, and no FETCH_HEAD is written. Done only when it is a fast-forward, when
/// the branch is where AnyCode last left it ([`MIRROR_SYNCED`]), or when the branch
/// is gone (it is made again); otherwise the user moved the branch and it is left
/// alone.
///
/// Errors: [`Error::BranchDiverged`]; git errors.
pub fn bring_back(user_repo: &Path, mirror: &Path, branch: &str) -> Result<BroughtBack> {
    let m = open_exact(mirror, true)?;
    let new = m.refname_to_id(MIRROR_HEAD)?;
    let last = m.refname_to_id(MIRROR_SYNCED).ok();
    let repo = open(user_repo)?;
    let refname = format!("refs/heads/{branch}");
    let current = repo.refname_to_id(&refname).ok();
    if current == Some(new) {
        return Ok(BroughtBack::Unchanged(new.to_string()));
    }
    let allowed = match current {
        None => true,
        Some(cur) if Some(cur) == last => true,
        // A fast-forward: the mirror has the new commits, and (through its
        // alternates) the user's.
        Some(cur) => m.graph_descendant_of(new, cur).unwrap_or(false),
    };
    if !allowed {
        return Err(Error::BranchDiverged(branch.to_string()));
    }
    // The new objects go over as one pack built from the mirror (everything the new
    // tip reaches that the user's branches do not) and written into the user's
    // object store by libgit2's pack writer, which indexes and checks it. No remote,
    // no FETCH_HEAD, no hook.
    let mut walk = m.revwalk()?;
    walk.push(new)?;
    for r in repo.references()?.flatten() {
        if let Some(id) = r.target() {
            if m.find_commit(id).is_ok() {
                walk.hide(id)?;
            }
        }
    }
    let mut builder = m.packbuilder()?;
    builder.insert_walk(&mut walk)?;
    if builder.object_count() > 0 {
        let odb = repo.odb()?;
        let mut writer = odb.packwriter()?;
        let mut failed: Option<std::io::Error> = None;
        builder.foreach(|chunk| match writer.write_all(chunk) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        if let Some(e) = failed {
            return Err(Error::Io(format!("writing the task's objects into the repository: {e}")));
        }
        writer.commit()?;
    }
    // Compare-and-swap: the branch is set only if it is still what was checked above.
    match current {
        Some(cur) => repo.reference_matching(&refname, new, true, cur, "anycode: the sandbox's work")?,
        None => repo.reference(&refname, new, false, "anycode: the sandbox's work")?,
    };
    m.reference(MIRROR_SYNCED, new, true, "anycode: brought back")?;
    Ok(BroughtBack::Updated(new.to_string()))
}

/// The tip of local branch `base` in the user's repository.
fn user_base_tip(user_repo: &Path, base: &str) -> Option<Oid> {
    let repo = open(user_repo).ok()?;
    let tip = repo.find_branch(base, BranchType::Local).ok()?.get().target();
    tip
}

/// The task's changes against its base, from the mirror alone: the merge base of
/// the user's `base` tip (or `fallback_base_sha` when that branch is gone) and the
/// sandbox's HEAD, against the last snapshot of its working tree (or its branch when
/// there is none yet). [`crate::FileDiff::uncommitted`] marks what the snapshot has
/// beyond HEAD. No file outside the mirror is read.
///
/// Errors: git errors (a mirror AnyCode did not make is [`Error::TaskRepoBroken`]).
pub fn task_diff(user_repo: &Path, mirror: &Path, base: &str, fallback_base_sha: &str) -> Result<Diff> {
    let m = open_exact(mirror, true)?;
    let (head, snapshot) = (m.refname_to_id(MIRROR_HEAD)?, m.refname_to_id(MIRROR_SNAPSHOT).ok());
    // The snapshot's parent is the sandbox's HEAD when it was taken.
    let (head, work) = match snapshot.and_then(|s| m.find_commit(s).ok()) {
        Some(s) => (s.parent_id(0).unwrap_or(head), s.id()),
        None => (head, head),
    };
    let base_oid = user_base_tip(user_repo, base)
        .and_then(|tip| m.merge_base(tip, head).ok())
        .map(Ok)
        .unwrap_or_else(|| Oid::from_str(fallback_base_sha))?;
    diff_between(&m, base_oid, head, work)
}

/// The conflict radar for a task, from the mirror alone (in memory; nothing is
/// written): the sandbox's work as of its last snapshot against the user's `base`
/// as it is now.
///
/// Errors: [`Error::UnknownBranch`] when `base` is gone; git errors.
pub fn mirror_merge_check(user_repo: &Path, mirror: &Path, base: &str) -> Result<MergeCheck> {
    let m = open_exact(mirror, true)?;
    let branch_head = m.refname_to_id(MIRROR_HEAD)?;
    let (head, work) = match m.refname_to_id(MIRROR_SNAPSHOT).ok().and_then(|s| m.find_commit(s).ok()) {
        Some(s) => (s.parent_id(0).unwrap_or(branch_head), s.id()),
        None => (branch_head, branch_head),
    };
    let base_oid = user_base_tip(user_repo, base).ok_or_else(|| Error::UnknownBranch(base.to_string()))?;
    let work_tree = m.find_commit(work)?.tree_id();
    crate::radar::check_commits(&m, base, base_oid, head, work_tree)
}

/// Whether the sandbox's last snapshot differs from its HEAD (uncommitted work), and
/// the paths that differ, sorted.
pub fn uncommitted_in_mirror(mirror: &Path) -> Result<Vec<String>> {
    let m = open_exact(mirror, true)?;
    let Some(snap) = m.refname_to_id(MIRROR_SNAPSHOT).ok().and_then(|s| m.find_commit(s).ok()) else {
        return Ok(Vec::new());
    };
    let Ok(parent) = snap.parent(0) else { return Ok(Vec::new()) };
    let diff = m.diff_tree_to_tree(Some(&parent.tree()?), Some(&snap.tree()?), None)?;
    let mut out = std::collections::BTreeSet::new();
    for d in diff.deltas() {
        for f in [d.old_file(), d.new_file()] {
            if let Some(p) = f.path() {
                out.insert(p.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The user's git identity (`user.name`, `user.email` of the repository's config,
/// then the global one), for commits AnyCode makes in the sandbox.
///
/// Errors: [`Error::NoIdentity`].
pub fn user_identity(user_repo: &Path) -> Result<(String, String)> {
    let repo = open(user_repo)?;
    let sig = repo.signature().map_err(|_| Error::NoIdentity)?;
    match (sig.name(), sig.email()) {
        (Some(n), Some(e)) => Ok((n.to_string(), e.to_string())),
        _ => Err(Error::NoIdentity),
    }
}

/// The tip of the user's local branch `base`, 40 hex digits.
///
/// Errors: [`Error::UnknownBranch`].
pub fn base_tip_sha(user_repo: &Path, base: &str) -> Result<String> {
    user_base_tip(user_repo, base).map(|o| o.to_string()).ok_or_else(|| Error::UnknownBranch(base.to_string()))
}

/// Whether `workspace` is a worktree of an older AnyCode (its `.git` is a file
/// naming a folder of the user's repository) rather than a task repository.
pub fn is_legacy_worktree(workspace: &Path) -> bool {
    workspace.join(".git").symlink_metadata().is_ok_and(|m| m.is_file())
}

/// Replaces the `.git` of an older AnyCode's task worktree at `workspace` (a file
/// naming a folder of the user's repository, which the sandbox could rewrite) with a
/// repository of the task's own on `branch` at the user's branch tip, borrowing the
/// user's objects, its index read from that commit (the working files stay as they
/// are, uncommitted work included), and makes the mirror at `mirror` (replacing one
/// that is there). Nothing of the old `.git` is read or followed.
///
/// Errors: [`Error::UnknownBranch`] when the user's branch is gone; git and I/O errors.
pub fn migrate_legacy_worktree(user_repo: &Path, workspace: &Path, mirror: &Path, branch: &str) -> Result<()> {
    let objects = objects_dir(user_repo)?;
    let tip = {
        let repo = open(user_repo)?;
        let id = repo.refname_to_id(&format!("refs/heads/{branch}")).map_err(|_| Error::UnknownBranch(branch.to_string()))?;
        id
    };
    let dotgit = workspace.join(".git");
    match dotgit.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&dotgit),
        Ok(_) => std::fs::remove_file(&dotgit),
        Err(_) => Ok(()),
    }
    .map_err(|e| Error::Io(format!("removing {}: {e}", dotgit.display())))?;
    let ws = init_task_repo(workspace, &objects, branch, tip, false)?;
    let tree = ws.find_commit(tip)?.tree()?;
    let mut index = ws.index()?;
    index.read_tree(&tree)?;
    index.write()?;
    if mirror.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(mirror).map_err(|e| Error::Io(format!("removing {}: {e}", mirror.display())))?;
    }
    init_mirror(mirror, &objects, tip)?;
    Ok(())
}

/// The mirror's task head and the commit of the work the owner sees: the sandbox's
/// last snapshot of its working tree, or the head when there is none. Both 40 hex
/// digits.
///
/// Errors: git errors (no mirror, no head).
pub fn work_commits(mirror: &Path) -> Result<(String, String)> {
    let m = open_exact(mirror, true)?;
    let head = m.refname_to_id(MIRROR_HEAD)?;
    let work = m.refname_to_id(MIRROR_SNAPSHOT).ok().filter(|s| m.find_commit(*s).is_ok()).unwrap_or(head);
    Ok((head.to_string(), work.to_string()))
}

/// The number of lines of `path` (relative, `/`-separated) in commit `work` of the
/// mirror; `None` when the commit has no such file, or it is not a regular text
/// file (a directory, a symlink, a submodule, a binary).
///
/// Errors: git errors (an unknown commit).
pub fn file_lines_at(mirror: &Path, work: &str, path: &str) -> Result<Option<u32>> {
    let m = open_exact(mirror, true)?;
    let tree = m.find_commit(Oid::from_str(work)?)?.tree()?;
    let Ok(entry) = tree.get_path(Path::new(path)) else { return Ok(None) };
    if entry.kind() != Some(git2::ObjectType::Blob) || entry.filemode() == 0o120000 {
        return Ok(None);
    }
    let blob = m.find_blob(entry.id())?;
    if blob.is_binary() {
        return Ok(None);
    }
    let content = blob.content();
    let newlines = content.iter().filter(|b| **b == b'\n').count();
    let lines = if content.last().is_some_and(|b| *b != b'\n') { newlines + 1 } else { newlines };
    Ok(Some(u32::try_from(lines).unwrap_or(u32::MAX)))
}

/// Line ranges of a file: `(first line, line count)` each.
pub type LineRanges = Vec<(u32, u32)>;

/// The mirror's task head (40 hex digits), and for each `(from, path)` of `queries`
/// the line ranges of `path` that changed from commit `from`'s tree to that head, as
/// `(first line, line count)` on `from`'s side (a pure insertion after line `n` is
/// `(n, 0)`; a file the head lacks is one range over all of it). Empty when nothing
/// changed it, and for a `from` the mirror does not have. The mirror is opened once
/// and each `(from, path)` diffed once. Reads only the mirror (AnyCode's own
/// repository), never a sandbox's.
///
/// Errors: git errors (no mirror, no head).
pub fn lines_changed_since(mirror: &Path, queries: &[(&str, &str)]) -> Result<(String, Vec<LineRanges>)> {
    let m = open_exact(mirror, true)?;
    let head = m.refname_to_id(MIRROR_HEAD)?;
    let new = m.find_commit(head)?.tree()?;
    let mut done: HashMap<(&str, &str), LineRanges> = HashMap::new();
    let mut out = Vec::with_capacity(queries.len());
    for &(from, path) in queries {
        if let Some(r) = done.get(&(from, path)) {
            out.push(r.clone());
            continue;
        }
        let old = Oid::from_str(from).ok().filter(|f| *f != head).and_then(|f| m.find_commit(f).ok()).and_then(|c| c.tree().ok());
        let mut ranges = Vec::new();
        if let Some(old) = old {
            let mut opts = git2::DiffOptions::new();
            opts.pathspec(path).disable_pathspec_match(true).context_lines(0);
            let diff = m.diff_tree_to_tree(Some(&old), Some(&new), Some(&mut opts))?;
            diff.foreach(
                &mut |_, _| true,
                None,
                Some(&mut |_, h| {
                    ranges.push((h.old_start(), h.old_lines()));
                    true
                }),
                None,
            )?;
        }
        done.insert((from, path), ranges.clone());
        out.push(ranges);
    }
    Ok((head.to_string(), out))
}
