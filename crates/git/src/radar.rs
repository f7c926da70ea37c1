//! The conflict radar: would a task's work merge cleanly into its base right now,
//! which files would conflict, which files it touches; and "update from base".
//!
//! The check works in memory only, on objects: the task's work as of its last
//! snapshot (see `taskrepo`) is merged with the base by `merge_trees` into an
//! in-memory object store (libgit2's mempack). No file, index or object is written.
//! "Update from base" itself runs in the sandbox (`taskrepo::MERGE_SCRIPT`).

use crate::{open, Error, Result};
use git2::{BranchType, Oid, Repository};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// What [`merge_check`] found for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// Checks, in memory, whether `work_tree` (the task's work as a tree: its branch's
/// commits plus uncommitted changes) on top of commit `head` merges cleanly into
/// `base` (tip `base_oid`) as it is now, and which files it touches. The merge's
/// result goes to an in-memory object store (libgit2's mempack): nothing is written.
///
/// Errors: git errors (e.g. an object missing from `repo`).
pub(crate) fn check_commits(repo: &Repository, base: &str, base_oid: Oid, head: Oid, work_tree_id: Oid) -> Result<MergeCheck> {
    let odb = repo.odb()?;
    let _mempack = odb.add_new_mempack_backend(1000)?;
    let head_commit = repo.find_commit(head)?;
    let base_commit = repo.find_commit(base_oid)?;
    let work_tree = repo.find_tree(work_tree_id)?;
    let uncommitted = work_tree_id != head_commit.tree_id();
    let ancestor_oid = repo.merge_base(base_oid, head)?;
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
    let (ahead, behind) = repo.graph_ahead_behind(head, base_oid)?;
    let conflicts = if ancestor_oid == base_oid {
        Vec::new()
    } else {
        let merged = repo.merge_trees(&ancestor_tree, &base_commit.tree()?, &work_tree, None)?;
        conflict_paths(&merged)?
    };
    Ok(MergeCheck {
        base: base.to_string(),
        base_sha: base_oid.to_string(),
        head_sha: head.to_string(),
        ahead,
        behind,
        uncommitted,
        clean: conflicts.is_empty(),
        conflicts,
        changed: changed.into_iter().collect(),
    })
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
