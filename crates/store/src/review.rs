//! Review comments on a task's changes (see the engine's `review.rs`).

use crate::{Result, Store};
use anycode_core::ReviewComment;
use rusqlite::params;

/// A stored review comment with the task head it was sent at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredComment {
    /// The comment (`addressed` is false here: the engine works it out).
    pub comment: ReviewComment,
    /// The task branch's head when it was sent (40 hex digits).
    pub sent_head: Option<String>,
    /// The commit of the work the owner commented on (the sandbox's snapshot of its
    /// working tree, or the head) when it was sent (40 hex digits).
    pub sent_work: Option<String>,
}

impl Store {
    /// Adds a review comment to task `task_id`.
    ///
    /// Errors: SQLite errors (an unknown task breaks the foreign key).
    pub fn insert_comment(&self, task_id: &str, c: &ReviewComment) -> Result<()> {
        self.conn().execute(
            "INSERT INTO review_comments (id, task_id, path, line, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![c.id, task_id, c.path, c.line, c.body, c.created_at],
        )?;
        Ok(())
    }

    /// The task's review comments, oldest first.
    pub fn comments(&self, task_id: &str) -> Result<Vec<StoredComment>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, path, line, body, created_at, sent_at, sent_head, sent_work FROM review_comments WHERE task_id = ?1 ORDER BY created_at, rowid",
        )?;
        let rows = stmt.query_map([task_id], |r| {
            Ok(StoredComment {
                comment: ReviewComment {
                    id: r.get(0)?,
                    path: r.get(1)?,
                    line: r.get(2)?,
                    body: r.get(3)?,
                    created_at: r.get(4)?,
                    sent_at: r.get(5)?,
                    addressed: false,
                },
                sent_head: r.get(6)?,
                sent_work: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Removes one of the task's comments; returns whether it was there.
    pub fn delete_comment(&self, task_id: &str, id: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM review_comments WHERE task_id = ?1 AND id = ?2", params![task_id, id])? > 0)
    }

    /// Marks these comments of the task sent at `at`, with the task head `head` and
    /// the commit of the work commented on, `work`.
    pub fn mark_comments_sent(&self, task_id: &str, ids: &[String], at: &str, head: &str, work: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for id in ids {
            tx.execute(
                "UPDATE review_comments SET sent_at = ?1, sent_head = ?2, sent_work = ?3 WHERE task_id = ?4 AND id = ?5",
                params![at, head, work, task_id, id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
