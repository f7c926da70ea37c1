//! `.worktreeinclude` at task create (the git side is `anycode_git::include`): the
//! owner's ignored files it names are copied into the task's new working tree
//! before its sandbox exists. A failure leaves the task without the copies and is
//! logged; it never fails the creation.

use std::path::Path;

/// Copies what the owner's `.worktreeinclude` names from `repo`'s checkout into
/// `worktree` (base commit `base_sha`) and logs what was copied and skipped.
/// Blocking (git2 and file copies): call it inside `blocking`.
pub(crate) fn copy_included(task_id: &str, repo: &Path, worktree: &Path, base_sha: &str) {
    let Ok(base) = anycode_git::taskrepo::Oid::from_str(base_sha) else { return };
    match anycode_git::include::copy_worktree_include(repo, worktree, base) {
        Ok(got) if got.copied.is_empty() && got.skipped.is_empty() => {}
        Ok(got) => {
            tracing::info!(task = %task_id, copied = got.copied.len(), bytes = got.bytes, files = ?got.copied, "copied the files .worktreeinclude names");
            for (path, why) in &got.skipped {
                tracing::info!(task = %task_id, %path, %why, ".worktreeinclude: not copied");
            }
        }
        Err(e) => tracing::warn!(task = %task_id, error = %e, ".worktreeinclude: nothing copied"),
    }
}
