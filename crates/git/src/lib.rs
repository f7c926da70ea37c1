//! AnyCode's git layer, on libgit2 (git2). Every call is blocking: async callers
//! run it on `tokio::task::spawn_blocking`.
//!
//! - [`inspect_repo`], [`branches`]: what the user added as a project.
//! - [`taskrepo`]: a task's own repository (the sandbox's, borrowing the user's
//!   objects read-only), AnyCode's mirror of it, the pack transport that brings the
//!   sandbox's work out, the diff and radar from the mirror, and [`taskrepo::bring_back`],
//!   which updates only the user's `refs/heads/<task branch>`. The host never opens a
//!   repository the sandbox can write.
//! - [`remote`]: cloning with progress ([`clone_repo`]) and pushing a branch
//!   ([`push_branch`], every ref's verdict checked) over HTTPS, with a token handed
//!   over only through libgit2's credential callback.
//! - [`radar`]: the conflict radar's in-memory merge; commits and diffstat of a branch
//!   for pull request bodies.

pub mod include;
pub mod radar;
pub mod remote;
pub mod taskrepo;
pub mod tree;

pub use radar::{commits_since, diffstat, MergeCheck, UpdateOutcome};
pub use remote::{branch_sha, clone_repo, https_url, is_partial_clone, push_branch, remote_url, strip_userinfo, token_refusal, CloneProgress, HttpAuth, PushOutcome};

use git2::{BranchType, Delta, DiffFindOptions, DiffOptions, Repository};
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Errors of the git layer. Messages are sentences a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path does not exist.
    #[error("{0} does not exist")]
    PathNotFound(String),
    /// The path exists but no git repository is there.
    #[error("{0} is not a git repository")]
    NotARepo(String),
    /// A bare repository has no working directory to branch from.
    #[error("{0} is a bare repository; add a repository with a working directory")]
    Bare(String),
    /// The base branch named does not exist.
    #[error("unknown base branch {0:?}")]
    UnknownBranch(String),
    /// The branch name breaks git's rules (`git check-ref-format --branch`).
    #[error("{0:?} is not a valid git branch name")]
    InvalidBranchName(String),
    /// The branch to create exists already.
    #[error("branch {0:?} already exists")]
    BranchExists(String),
    /// HEAD is detached or unborn and no base was given.
    #[error("the repository has no current branch (detached HEAD or no commits); name a base branch")]
    NoCurrentBranch,
    /// Nothing to commit.
    #[error("nothing to commit: the worktree has no changes")]
    NothingToCommit,
    /// The commit message is empty.
    #[error("the commit message is empty")]
    EmptyMessage,
    /// No user.name / user.email configured.
    #[error("git has no identity to commit with: run `git config --global user.name \"Your Name\"` and `git config --global user.email you@example.com`")]
    NoIdentity,
    /// The remote refused the credentials, or asked for some and none were set.
    #[error("authentication failed for {url}: {hint}")]
    AuthFailed {
        /// The remote's URL (without credentials).
        url: String,
        /// What to do.
        hint: String,
    },
    /// The remote has no such repository.
    #[error("{0} was not found: check the owner and name (a private repository needs a token with access to it)")]
    RemoteNotFound(String),
    /// The remote's host could not be reached.
    #[error("{url} is unreachable: {detail}")]
    Unreachable {
        /// The remote's URL (without credentials).
        url: String,
        /// libgit2's words.
        detail: String,
    },
    /// Another failure talking to a remote.
    #[error("{0}")]
    Remote(String),
    /// The remote rejected a pushed ref (non-fast-forward, a hook, a protected branch).
    #[error("the remote rejected {refname}: {reason}")]
    PushRejected {
        /// The ref, e.g. `refs/heads/anycode/fix-login`.
        refname: String,
        /// The remote's reason, e.g. `cannot lock ref` or `pre-receive hook declined`.
        reason: String,
    },
    /// The GitHub token was not sent to a remote: it goes only to the configured
    /// GitHub host over HTTPS (plain HTTP only on loopback), and that host's own
    /// git credentials (a credential helper in the user's git configuration) gave
    /// nothing.
    #[error("AnyCode sends the GitHub token only to {github} over HTTPS, and {url} {reason}: point the remote at {github}, or set up a git credential helper for that host (`git config --global credential.helper …`)")]
    TokenNotSent {
        /// The remote's URL (without credentials).
        url: String,
        /// The configured GitHub web host (`https://github.com/`).
        github: String,
        /// Why the token does not go there, e.g. "is another host".
        reason: String,
    },
    /// The repository has no remote of that name.
    #[error("the repository has no remote {0:?} to push to")]
    NoRemote(String),
    /// A clone's destination exists and is not an empty folder.
    #[error("{0} already exists and is not an empty folder: pick another folder")]
    DestinationExists(String),
    /// A clone was cancelled.
    #[error("the clone was cancelled")]
    Cancelled,
    /// The worktree has uncommitted changes, so it cannot be updated safely.
    #[error("the worktree has uncommitted changes ({}): commit or discard them first", list(.0))]
    Dirty(Vec<String>),
    /// Merging the base into the branch would conflict; nothing was changed.
    #[error("merging {base:?} into {branch:?} would conflict in {}: resolve it in the task's terminal (git merge {base})", list(.files))]
    MergeConflicts {
        /// The task branch.
        branch: String,
        /// The base branch.
        base: String,
        /// Conflicting paths.
        files: Vec<String>,
    },
    /// Anything else libgit2 reported.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// A filesystem operation around the worktree failed.
    #[error("{0}")]
    Io(String),
    /// The sandbox's repository cannot be read (the agent broke or removed it, or
    /// its git sent something AnyCode refuses). The message says what, in words
    /// that came partly from the sandbox (control characters removed).
    #[error("the task's repository in the sandbox cannot be used: {0}. Fix it in the task's terminal (e.g. `git status`), or delete the task: its branch keeps the work AnyCode last brought back")]
    TaskRepoBroken(String),
    /// The user's task branch moved since AnyCode last set it, and the sandbox's
    /// work is not a fast-forward of it: the branch is left as it is.
    #[error("branch {0:?} was changed outside the task and the sandbox's work does not build on it; merge or reset one of them (e.g. in the task's terminal: git pull your changes first)")]
    BranchDiverged(String),
}

/// At most five paths, then how many more.
fn list(paths: &[String]) -> String {
    let mut s = paths.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if paths.len() > 5 {
        s.push_str(&format!(" and {} more", paths.len() - 5));
    }
    s
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What [`inspect_repo`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInfo {
    /// Canonical absolute path of the working directory.
    pub root: PathBuf,
    /// The working directory's folder name.
    pub name: String,
    /// The branch HEAD points at, `None` when detached or unborn (no commits yet).
    pub current_branch: Option<String>,
}

/// Local branches of a repository.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Branches {
    /// The branch HEAD points at, `None` when detached or unborn (no commits yet).
    pub current: Option<String>,
    /// Local branch names, sorted.
    pub branches: Vec<String>,
}

/// One changed file of a [`Diff`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FileDiff {
    /// Path relative to the worktree root, `/`-separated (the new path for renames).
    pub path: String,
    /// The path before a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// `added`, `modified`, `deleted` or `renamed`.
    pub status: &'static str,
    /// Lines added.
    pub additions: usize,
    /// Lines deleted.
    pub deletions: usize,
    /// True when git treats the file as binary (the patch then has no hunks).
    pub binary: bool,
    /// True when the file differs between the task branch's HEAD and the worktree
    /// or index, i.e. a commit would include it; false for changes already
    /// committed on the branch.
    pub uncommitted: bool,
    /// Unified diff of this file, starting with its `diff --git` header.
    pub patch: String,
}

/// The worktree's changes against the base.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Diff {
    /// The commit compared against: the merge base of the base branch and the task's
    /// HEAD (40 hex digits), as a pull request would show it.
    pub base: String,
    /// Changed files, sorted by path.
    pub files: Vec<FileDiff>,
}

pub(crate) fn open(path: &Path) -> Result<Repository> {
    disable_owner_validation();
    Ok(Repository::open(path)?)
}

fn disable_owner_validation() {
    static OWNER: Once = Once::new();
    OWNER.call_once(|| {
        // A project may belong to another user than the one AnyCode runs as (a
        // root-run AnyCode, a shared checkout), and libgit2 would then refuse it as
        // "not owned by the current user". AnyCode opens only repositories the user
        // added and its own mirrors: never a repository a sandbox can write (see
        // `taskrepo`), which is what owner validation guards against.
        // SAFETY: called once, before any other libgit2 call of this process.
        unsafe {
            let _ = git2::opts::set_verify_owner_validation(false);
        }
    });
}

/// Checks that `path` is a non-bare git repository and describes it.
///
/// Errors: [`Error::PathNotFound`], [`Error::NotARepo`], [`Error::Bare`].
pub fn inspect_repo(path: &Path) -> Result<RepoInfo> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(Error::PathNotFound(shown));
    }
    let repo = match open(path) {
        Ok(r) => r,
        Err(Error::Git(e)) if e.code() == git2::ErrorCode::NotFound => {
            // `open` does not look upwards: name the enclosing repository, if any, so
            // the user knows which folder to add instead.
            let enclosing = Repository::discover(path).ok().and_then(|r| r.workdir().and_then(|w| w.canonicalize().ok()));
            return Err(Error::NotARepo(match enclosing {
                Some(root) => format!("{shown} (it is inside the repository {})", root.display()),
                None => shown,
            }));
        }
        Err(e) => return Err(e),
    };
    let workdir = repo.workdir().ok_or_else(|| Error::Bare(shown.clone()))?;
    let root = workdir.canonicalize().map_err(|e| Error::Io(format!("{shown}: {e}")))?;
    // Only the repository's own top level may be a project, not a subfolder of it.
    let given = path.canonicalize().map_err(|e| Error::Io(format!("{shown}: {e}")))?;
    if given != root {
        return Err(Error::NotARepo(format!("{shown} (it is inside the repository {})", root.display())));
    }
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "repo".into());
    Ok(RepoInfo { root, name, current_branch: current_branch(&repo) })
}

/// The branch HEAD points at; `None` when HEAD is detached or unborn (the branch
/// has no commit yet, so there is nothing to branch from).
pub(crate) fn current_branch(repo: &Repository) -> Option<String> {
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target()?;
    repo.find_reference(target).ok()?;
    target.strip_prefix("refs/heads/").map(str::to_string)
}

/// Local branches and the current one.
pub fn branches(repo_path: &Path) -> Result<Branches> {
    let repo = open(repo_path)?;
    let mut names = Vec::new();
    for b in repo.branches(Some(BranchType::Local))? {
        let (b, _) = b?;
        if let Some(n) = b.name()? {
            names.push(n.to_string());
        }
    }
    names.sort();
    Ok(Branches { current: current_branch(&repo), branches: names })
}

/// Checks a new branch name against git's rules and the existing branches.
///
/// Errors: [`Error::InvalidBranchName`], [`Error::BranchExists`].
pub fn check_new_branch(repo_path: &Path, name: &str) -> Result<()> {
    // `name_is_valid` errs (rather than answering false) on a NUL byte.
    if name.starts_with('-') || !git2::Branch::name_is_valid(name).unwrap_or(false) {
        return Err(Error::InvalidBranchName(name.to_string()));
    }
    let repo = open(repo_path)?;
    if repo.find_branch(name, BranchType::Local).is_ok() {
        return Err(Error::BranchExists(name.to_string()));
    }
    Ok(())
}

/// Removes the registration an older AnyCode made for a task's worktree in the
/// user's repository (`<common git dir>/worktrees/<name>`), by that known path only:
/// its `gitdir` file (which the sandbox could write) is never followed, and no
/// working tree is pruned. Missing is fine.
pub fn remove_legacy_registration(repo_path: &Path, worktree_name: &str) -> Result<()> {
    if !repo_path.exists() {
        return Ok(());
    }
    let repo = open(repo_path)?;
    let mut parts = Path::new(worktree_name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(n)), None) if n == worktree_name => {}
        _ => return Err(Error::Io(format!("{worktree_name:?} is not a valid worktree name"))),
    }
    let dir = repo.commondir().join("worktrees").join(worktree_name);
    if dir.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::Io(format!("removing {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Deletes a local branch (used to undo a failed task creation).
pub fn delete_branch(repo_path: &Path, branch: &str) -> Result<()> {
    let repo = open(repo_path)?;
    if let Ok(mut b) = repo.find_branch(branch, BranchType::Local) {
        b.delete()?;
    }
    Ok(())
}

/// The most bytes of a file whose patch is shown; larger files are treated as
/// binary (no hunks), so a sandbox cannot make a diff answer huge.
pub const MAX_PATCH_FILE_BYTES: i64 = 1 << 20;

/// The changes from commit `base` to commit `work`, each file marked uncommitted
/// when it also differs between `head` and `work`. Objects only: no working tree.
pub(crate) fn diff_between(repo: &Repository, base_oid: git2::Oid, head: git2::Oid, work: git2::Oid) -> Result<Diff> {
    let base_tree = repo.find_commit(base_oid)?.tree()?;
    let work_tree = repo.find_commit(work)?.tree()?;
    let head_tree = repo.find_commit(head)?.tree()?;
    let mut opts = DiffOptions::new();
    opts.include_typechange(true).max_size(MAX_PATCH_FILE_BYTES);
    let mut diff = repo.diff_tree_to_tree(Some(&base_tree), Some(&work_tree), Some(&mut opts))?;
    // Paths a commit would include: HEAD against the working tree's snapshot.
    let pending = repo.diff_tree_to_tree(Some(&head_tree), Some(&work_tree), None)?;
    let mut uncommitted = HashSet::new();
    for delta in pending.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(p) = file.path() {
                uncommitted.insert(p.to_path_buf());
            }
        }
    }
    let mut find = DiffFindOptions::new();
    find.renames(true);
    diff.find_similar(Some(&mut find))?;
    let mut files = Vec::new();
    for idx in 0..diff.deltas().len() {
        let Some(delta) = diff.get_delta(idx) else { continue };
        let status = match delta.status() {
            Delta::Added | Delta::Untracked | Delta::Copied => "added",
            Delta::Deleted => "deleted",
            Delta::Renamed => "renamed",
            Delta::Modified | Delta::Typechange => "modified",
            _ => continue,
        };
        let is_uncommitted = [delta.old_file(), delta.new_file()].iter().any(|f| f.path().is_some_and(|p| uncommitted.contains(p)));
        let path_of = |f: git2::DiffFile<'_>| f.path().map(|p| p.to_string_lossy().replace('\\', "/"));
        let new_path = path_of(delta.new_file());
        let old_path = path_of(delta.old_file());
        let path = match status {
            "deleted" => old_path.clone(),
            _ => new_path.clone(),
        }
        .unwrap_or_default();
        let (mut additions, mut deletions, mut patch_text, mut binary) = (0, 0, String::new(), delta.flags().is_binary());
        if let Some(mut patch) = git2::Patch::from_diff(&diff, idx)? {
            let (_, a, d) = patch.line_stats()?;
            additions = a;
            deletions = d;
            let buf = patch.to_buf()?;
            patch_text = String::from_utf8_lossy(&buf).into_owned();
            binary |= patch.delta().flags().is_binary();
        }
        files.push(FileDiff {
            old_path: (status == "renamed").then(|| old_path.unwrap_or_default()),
            path,
            status,
            additions,
            deletions,
            binary,
            uncommitted: is_uncommitted,
            patch: patch_text,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Diff { base: base_oid.to_string(), files })
}
