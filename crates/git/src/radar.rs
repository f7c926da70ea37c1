//! The conflict radar: would a task's work merge cleanly into its base right now,
//! which files would conflict, which files it touches; and "update from base".
//!
//! [`merge_check`] works in memory only: the worktree's current state (committed or
//! not) is turned into a tree in an in-memory object store (libgit2's mempack), and
//! merged with the base by `merge_trees`. No file of any worktree, no index and no
//! object of the repository is written.

use crate::{open, Error, Result};
use git2::{BranchType, Oid, Repository, StatusOptions};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// What [`merge_check`] found for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeCheck {
    /// The base branch checked against.
    pub base: String,
    /// Its tip (40 hex digits).
    pub base_sha: String,
    /// The task branch's tip (40 hex digits).
    pub head_sha: String,
    /// Commits on the task branch that the base lacks.
    pub ahead: usize,
    /// Commits on the base that the task branch lacks.
    pub behind: usize,
    /// True when the worktree has changes not committed yet; they are included in
    /// the check (the radar looks at the work as it is now).
    pub uncommitted: bool,
    /// True when merging the work into the base now would need no conflict resolution.
    pub clean: bool,
    /// Paths that would conflict, sorted, `/`-separated.
    pub conflicts: Vec<String>,
    /// Paths the work changes relative to the merge base (committed or not), sorted.
    pub changed: Vec<String>,
}

/// What [`update_from_base`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// The base has nothing the branch lacks.
    UpToDate {
        /// The branch's tip, unchanged.
        sha: String,
    },
    /// The branch had nothing of its own: it now points at the base's tip.
    FastForward {
        /// The new tip.
        sha: String,
    },
    /// A merge commit of the base into the branch was made.
    Merged {
        /// The merge commit.
        sha: String,
    },
}

fn base_tip(repo: &Repository, base: &str) -> Result<Oid> {
    repo.find_branch(base, BranchType::Local)
        .ok()
        .and_then(|b| b.get().target())
        .ok_or_else(|| Error::UnknownBranch(base.to_string()))
}

fn conflict_paths(index: &git2::Index) -> Result<Vec<String>> {
    let mut out = BTreeSet::new();
    for c in index.conflicts()? {
        let c = c?;
        for e in [c.our, c.their, c.ancestor].into_iter().flatten() {
            out.insert(String::from_utf8_lossy(&e.path).replace('\\', "/"));
        }
    }
    Ok(out.into_iter().collect())
}

/// Checks, in memory, whether the work in `worktree` (its branch's commits plus
/// uncommitted changes, untracked files included, .gitignore honoured) merges
/// cleanly into local branch `base` as it is now, and which files it touches.
/// Nothing on disk is written (see the module's notes).
///
/// Errors: [`Error::UnknownBranch`] when `base` no longer exists; git errors.
pub fn merge_check(worktree: &Path, base: &str) -> Result<MergeCheck> {
    let repo = open(worktree)?;
    // Objects written below (blobs of uncommitted files, trees) go to memory: the
    // mempack backend has the highest priority, and is never flushed to disk.
    let odb = repo.odb()?;
    let _mempack = odb.add_new_mempack_backend(1000)?;
    let head = repo.head()?.peel_to_commit()?;
    let base_oid = base_tip(&repo, base)?;
    let base_commit = repo.find_commit(base_oid)?;

    // The worktree as a tree: the index (never written back) plus every change.
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.update_all(["*"], None)?;
    let work_tree_id = index.write_tree()?;
    let work_tree = repo.find_tree(work_tree_id)?;
    let uncommitted = work_tree_id != head.tree_id();

    let ancestor_oid = repo.merge_base(base_oid, head.id())?;
    let ancestor_tree = repo.find_commit(ancestor_oid)?.tree()?;
    let diff = repo.diff_tree_to_tree(Some(&ancestor_tree), Some(&work_tree), None)?;
    let mut changed = BTreeSet::new();
    for d in diff.deltas() {
        for f in [d.old_file(), d.new_file()] {
            if let Some(p) = f.path() {
                changed.insert(p.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let (ahead, behind) = repo.graph_ahead_behind(head.id(), base_oid)?;
    let conflicts = if ancestor_oid == base_oid {
        Vec::new()
    } else {
        let merged = repo.merge_trees(&ancestor_tree, &base_commit.tree()?, &work_tree, None)?;
        conflict_paths(&merged)?
    };
    Ok(MergeCheck {
        base: base.to_string(),
        base_sha: base_oid.to_string(),
        head_sha: head.id().to_string(),
        ahead,
        behind,
        uncommitted,
        clean: conflicts.is_empty(),
        conflicts,
        changed: changed.into_iter().collect(),
    })
}

/// Paths with uncommitted changes in `worktree` (untracked included, ignored not).
pub fn uncommitted_paths(worktree: &Path) -> Result<Vec<String>> {
    let repo = open(worktree)?;
    let mut opts = StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    let statuses = repo.statuses(Some(&mut opts))?;
    let mut out: Vec<String> = statuses.iter().filter_map(|s| s.path().map(str::to_string)).collect();
    out.sort();
    Ok(out)
}

/// Brings local branch `base` into the task branch checked out in `worktree`:
/// nothing when the branch already has it, a fast-forward when the branch has no
/// commits of its own, else a merge commit (with the user's git identity). Only
/// when that is clean: a worktree with uncommitted changes is refused (they could be
/// lost or mixed into the merge), and so is a merge with conflicts; in both cases
/// nothing is changed.
///
/// Errors: [`Error::Dirty`], [`Error::MergeConflicts`], [`Error::UnknownBranch`],
/// [`Error::NoIdentity`].
pub fn update_from_base(worktree: &Path, base: &str) -> Result<UpdateOutcome> {
    let dirty = uncommitted_paths(worktree)?;
    if !dirty.is_empty() {
        return Err(Error::Dirty(dirty));
    }
    let repo = open(worktree)?;
    let head_ref = repo.head()?;
    let branch_ref = head_ref.name().map(str::to_string).ok_or_else(|| Error::Io("the worktree's HEAD has no name".into()))?;
    let branch = head_ref.shorthand().unwrap_or(&branch_ref).to_string();
    let head = head_ref.peel_to_commit()?;
    let base_oid = base_tip(&repo, base)?;
    let ancestor = repo.merge_base(base_oid, head.id())?;
    if ancestor == base_oid {
        return Ok(UpdateOutcome::UpToDate { sha: head.id().to_string() });
    }
    let base_commit = repo.find_commit(base_oid)?;
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.safe();
    if ancestor == head.id() {
        repo.checkout_tree(base_commit.as_object(), Some(&mut checkout))?;
        repo.reference(&branch_ref, base_oid, true, &format!("update from base: fast-forward to {base}"))?;
        return Ok(UpdateOutcome::FastForward { sha: base_oid.to_string() });
    }
    let mut merged = repo.merge_commits(&head, &base_commit, None)?;
    if merged.has_conflicts() {
        return Err(Error::MergeConflicts { branch, base: base.to_string(), files: conflict_paths(&merged)? });
    }
    let sig = repo.signature().map_err(|_| Error::NoIdentity)?;
    let tree = repo.find_tree(merged.write_tree_to(&repo)?)?;
    repo.checkout_tree(tree.as_object(), Some(&mut checkout))?;
    let message = format!("Merge branch '{base}' into {branch}");
    let oid = repo.commit(Some("HEAD"), &sig, &sig, &message, &tree, &[&head, &base_commit])?;
    Ok(UpdateOutcome::Merged { sha: oid.to_string() })
}

/// The commits on `branch` that `base` lacks, newest first: `(short sha, subject)`,
/// at most `limit`.
pub fn commits_since(repo_path: &Path, base: &str, branch: &str, limit: usize) -> Result<Vec<(String, String)>> {
    let repo = open(repo_path)?;
    let head = repo.find_branch(branch, BranchType::Local).map_err(|_| Error::UnknownBranch(branch.to_string()))?;
    let head = head.get().target().ok_or_else(|| Error::UnknownBranch(branch.to_string()))?;
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    if let Ok(b) = base_tip(&repo, base) {
        walk.hide(b)?;
    }
    let mut out = Vec::new();
    for oid in walk.take(limit) {
        let c = repo.find_commit(oid?)?;
        out.push((c.id().to_string()[..7].to_string(), c.summary().unwrap_or("").to_string()));
    }
    Ok(out)
}

/// Per-file line counts of `branch` against its merge base with `base`:
/// `(path, additions, deletions)`, sorted by path.
pub fn diffstat(repo_path: &Path, base: &str, branch: &str) -> Result<Vec<(String, usize, usize)>> {
    let repo = open(repo_path)?;
    let head = repo.find_branch(branch, BranchType::Local).map_err(|_| Error::UnknownBranch(branch.to_string()))?;
    let head = head.get().peel_to_commit()?;
    let from = match base_tip(&repo, base) {
        Ok(b) => repo.find_commit(repo.merge_base(b, head.id())?)?.tree()?,
        Err(_) => return Ok(Vec::new()),
    };
    let diff = repo.diff_tree_to_tree(Some(&from), Some(&head.tree()?), None)?;
    let mut out = Vec::new();
    for idx in 0..diff.deltas().len() {
        let Some(delta) = diff.get_delta(idx) else { continue };
        let path = delta.new_file().path().or(delta.old_file().path()).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
        let (a, d) = match git2::Patch::from_diff(&diff, idx)? {
            Some(p) => {
                let (_, a, d) = p.line_stats()?;
                (a, d)
            }
            None => (0, 0),
        };
        out.push((path, a, d));
    }
    out.sort();
    Ok(out)
}
