//! Review comments: the owner comments on lines of a task's changes (the Changes
//! panel), then sends them to the agent as one message.
//!
//! - A comment names a file of the work the owner sees (the sandbox's last snapshot
//!   of its working tree, or the branch head) and a line of it (1-based, the new
//!   side of the diff). Both are checked against AnyCode's mirror of the task's
//!   repository, never against files a sandbox can change under us.
//! - **Send to agent** types every unsent comment as one message,
//!   `Review comments on your changes:` followed by a `path:line: comment` line
//!   each, through the message rule of `messages.rs` (typed now, or queued while the
//!   agent is busy). The comments are marked sent with the branch head and the work
//!   commit of that moment.
//! - A sent comment is **addressed** once the branch head moved past the head it was
//!   sent at and the changes from the work it was made on to the new head touch its
//!   line or the [`ADDRESSED_WITHIN`] lines around it (or remove its file). Worked
//!   out on each read from the mirror; nothing is stored.
//!
//! The text comes from the owner, never from a sandbox; the same checks as messages
//! apply (no control characters).

use crate::{blocking, Engine, Error, MessageSent, Result, ReviewComment};
use anycode_git::taskrepo as tr;

/// The longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 4_000;
/// The most comments on one task.
pub const MAX_COMMENTS: usize = 200;
/// A later commit that changes a line this close to a comment's (in lines, either
/// side) addresses it.
pub const ADDRESSED_WITHIN: u32 = 3;
/// The first line of the message that carries the comments.
pub const REVIEW_HEADER: &str = "Review comments on your changes:";

/// A new review comment (`POST /api/tasks/{id}/comments`).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// The file, relative to the repository root, `/`-separated, as the Changes
    /// panel lists it.
    pub path: String,
    /// The line, 1-based, in the file as the task's work has it now (the new side
    /// of the diff).
    pub line: u32,
    /// The comment: plain text, at most [`MAX_COMMENT_CHARS`] characters.
    pub body: String,
}

/// A path as a comment may name it: relative, `/`-separated, no `.`/`..`
/// components, no control characters, at most 1,024 bytes.
fn check_path(path: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Invalid(format!("the comment's path {path:?} {why}: give the file's path as the Changes panel lists it, e.g. src/main.rs")));
    if path.is_empty() || path.len() > 1024 {
        return bad("is empty or longer than 1,024 bytes");
    }
    if path.starts_with('/') || path.contains('\\') || path.chars().any(char::is_control) {
        return bad("is not a relative /-separated path");
    }
    if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return bad("has an empty, . or .. component");
    }
    Ok(())
}

/// The comment's text checked like a message's, and at most [`MAX_COMMENT_CHARS`].
fn check_body(body: &str) -> Result<String> {
    let body = crate::messages::check_text(body)?;
    if body.chars().count() > MAX_COMMENT_CHARS {
        return Err(Error::Invalid(format!("the comment is longer than {MAX_COMMENT_CHARS} characters: shorten it, or send it as a message")));
    }
    Ok(body)
}

/// The message for these comments: the header, then `path:line: comment` a line
/// each (a comment's own newlines become spaces, so each stays on its line).
pub fn review_message(comments: &[ReviewComment]) -> String {
    let mut out = String::from(REVIEW_HEADER);
    for c in comments {
        let body = c.body.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!("\n- {}:{}: {}", c.path, c.line, body));
    }
    out
}

/// Whether `line` is within [`ADDRESSED_WITHIN`] of one of `ranges` (`(first line,
/// count)` on the old side; a count of 0 is an insertion after `first`).
fn touches(line: u32, ranges: &[(u32, u32)]) -> bool {
    ranges.iter().any(|&(start, count)| {
        let (lo, hi) = if count == 0 { (start, start + 1) } else { (start, start + count - 1) };
        line + ADDRESSED_WITHIN >= lo && line <= hi + ADDRESSED_WITHIN
    })
}

impl Engine {
    /// The task's review comments, oldest first, with `addressed` worked out from
    /// the mirror as of the last time the work was brought out of the sandbox.
    ///
    /// Errors: `TASK_NOT_FOUND`.
    pub async fn comments(&self, task_id: &str) -> Result<Vec<ReviewComment>> {
        let task = self.task(task_id).await?;
        let id = task.id.clone();
        let stored = self.db(move |s| Ok(s.comments(&id)?)).await?;
        let mirror = self.mirror_path(&task.id);
        blocking(move || {
            // Only sent comments can be addressed; the mirror is read once for all.
            let queries: Vec<(&str, &str)> =
                stored.iter().filter_map(|s| Some((s.sent_work.as_deref()?, s.comment.path.as_str()))).collect();
            let changed = if queries.is_empty() { None } else { tr::lines_changed_since(&mirror, &queries).ok() };
            let mut ranges = changed.as_ref().map(|(_, r)| r.iter());
            Ok(stored
                .iter()
                .map(|s| {
                    let mut c = s.comment.clone();
                    // The same comments, in the same order, as `queries`.
                    if s.sent_work.is_some() {
                        let r = ranges.as_mut().and_then(|it| it.next());
                        // Addressed only by a commit made after the sending.
                        let moved = changed.as_ref().is_some_and(|(head, _)| Some(head) != s.sent_head.as_ref());
                        c.addressed = moved && r.is_some_and(|r| touches(c.line, r));
                    }
                    c
                })
                .collect())
        })
        .await
    }

    /// Adds a review comment on a line of the task's work, brought out of the
    /// sandbox first when it runs.
    ///
    /// Errors: `TASK_NOT_FOUND`; `INVALID_INPUT` for a bad path or text, a file the
    /// work lacks (or a binary or symlink), a line past its end, or
    /// [`MAX_COMMENTS`] comments already; `TASK_REPO_BROKEN`.
    pub async fn add_comment(&self, task_id: &str, new: NewComment) -> Result<ReviewComment> {
        check_path(&new.path)?;
        let body = check_body(&new.body)?;
        if new.line == 0 {
            return Err(Error::Invalid("the comment's line is 0: lines count from 1".into()));
        }
        let task = self.task(task_id).await?;
        self.check_task_repo(&task)?;
        self.sync_task(&task).await?;
        let mirror = self.mirror_path(&task.id);
        let path = new.path.clone();
        let lines = blocking(move || {
            let (_, work) = tr::work_commits(&mirror)?;
            Ok(tr::file_lines_at(&mirror, &work, &path)?)
        })
        .await?;
        match lines {
            None => return Err(Error::Invalid(format!("the task's work has no text file {}: comment on a file the Changes panel shows", new.path))),
            Some(n) if new.line > n => {
                return Err(Error::Invalid(format!("{} has {n} lines, so there is no line {}: refresh the diff and comment again", new.path, new.line)));
            }
            Some(_) => {}
        }
        let comment = ReviewComment {
            id: anycode_core::new_id(),
            path: new.path,
            line: new.line,
            body,
            created_at: anycode_core::now_rfc3339(),
            sent_at: None,
            addressed: false,
        };
        let (id, c) = (task.id.clone(), comment.clone());
        self.db(move |s| {
            if s.comments(&id)?.len() >= MAX_COMMENTS {
                return Err(Error::Invalid(format!("task {id} has {MAX_COMMENTS} review comments already: send or delete some first")));
            }
            Ok(s.insert_comment(&id, &c)?)
        })
        .await?;
        self.task_changed(&task.id);
        Ok(comment)
    }

    /// Deletes one of the task's review comments (sent or not).
    ///
    /// Errors: `TASK_NOT_FOUND`, `COMMENT_NOT_FOUND`.
    pub async fn delete_comment(&self, task_id: &str, comment_id: &str) -> Result<()> {
        let task = self.task(task_id).await?;
        let (id, cid) = (task.id.clone(), comment_id.to_string());
        if !self.db(move |s| Ok(s.delete_comment(&id, &cid)?)).await? {
            return Err(Error::NotFound { what: "comment", id: comment_id.to_string() });
        }
        self.task_changed(&task.id);
        Ok(())
    }

    /// Sends every unsent review comment to the agent as one message (see the
    /// module's notes) and marks them sent. Returns what the message rule did.
    ///
    /// Errors: `TASK_NOT_FOUND`, `INVALID_INPUT` when no comment is unsent or the
    /// message would be too long, `TASK_NOT_RUNNING`, `CONFLICT` (a full queue),
    /// `TASK_REPO_BROKEN`.
    pub async fn send_comments(&self, task_id: &str) -> Result<MessageSent> {
        let task = self.task(task_id).await?;
        let id = task.id.clone();
        let unsent: Vec<ReviewComment> =
            self.db(move |s| Ok(s.comments(&id)?)).await?.into_iter().map(|s| s.comment).filter(|c| c.sent_at.is_none()).collect();
        if unsent.is_empty() {
            return Err(Error::Invalid("no review comment waits to be sent: comment on lines in the Changes panel first".into()));
        }
        self.check_task_repo(&task)?;
        self.sync_task(&task).await?;
        let mirror = self.mirror_path(&task.id);
        let (head, work) = blocking(move || Ok(tr::work_commits(&mirror)?)).await?;
        let sent = self.send_message(&task.id, &review_message(&unsent)).await?;
        let ids: Vec<String> = unsent.iter().map(|c| c.id.clone()).collect();
        let (id, at) = (task.id.clone(), anycode_core::now_rfc3339());
        self.db(move |s| Ok(s.mark_comments_sent(&id, &ids, &at, &head, &work)?)).await?;
        self.task_changed(&task.id);
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        for ok in ["a.rs", "src/main.rs", "dir/.env.example"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\b", "a\nb", "dir/"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_message_lists_path_line_comment() {
        let c = |path: &str, line, body: &str| ReviewComment {
            id: "x".into(),
            path: path.into(),
            line,
            body: body.into(),
            created_at: String::new(),
            sent_at: None,
            addressed: false,
        };
        assert_eq!(
            review_message(&[c("src/a.rs", 3, "use a match here"), c("b.md", 10, "typo:\nteh")]),
            "Review comments on your changes:\n- src/a.rs:3: use a match here\n- b.md:10: typo: teh"
        );
    }

    #[test]
    fn a_change_near_the_line_addresses_it() {
        assert!(touches(10, &[(10, 1)]));
        assert!(touches(10, &[(13, 2)]));
        assert!(touches(10, &[(6, 2)]), "lines 6-7: 7 is within 3 of 10");
        assert!(!touches(10, &[(14, 1)]));
        assert!(!touches(10, &[(1, 6)]));
        assert!(touches(10, &[(12, 0)]), "an insertion after line 12");
        assert!(!touches(10, &[]));
    }
}
