//! Approvals waiting for Allow or Deny (table `pending_approvals`, issue 14): one per
//! task, the tool and its input as the agent asked, and since when. Kept so that
//! after AnyCode is killed (`kill -9`) the question is asked again at the next start
//! rather than forgotten; removed once answered, timed out or the sandbox stopped.

use crate::{Error, Result, Store};
use rusqlite::params;

/// One waiting approval as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingApproval {
    /// The task whose agent asks.
    pub task_id: String,
    /// The tool, e.g. `Bash`.
    pub tool: String,
    /// The tool's input as the agent sent it (JSON).
    pub input: serde_json::Value,
    /// When it was first asked (RFC 3339 UTC).
    pub since: String,
}

impl Store {
    /// Records (or replaces) the task's waiting approval.
    pub fn set_pending_approval(&self, p: &PendingApproval) -> Result<()> {
        self.conn().execute(
            "INSERT INTO pending_approvals (task_id, tool, input, since) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(task_id) DO UPDATE SET tool = excluded.tool, input = excluded.input, since = excluded.since",
            params![p.task_id, p.tool, p.input.to_string(), p.since],
        )?;
        Ok(())
    }

    /// Forgets the task's waiting approval (answered, timed out, or its sandbox
    /// stopped). Returns whether there was one.
    pub fn clear_pending_approval(&self, task_id: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM pending_approvals WHERE task_id = ?1", [task_id])? > 0)
    }

    /// Every waiting approval, oldest first. Errors: [`Error::Corrupt`] for an input
    /// that is not JSON.
    pub fn pending_approvals(&self) -> Result<Vec<PendingApproval>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT task_id, tool, input, since FROM pending_approvals ORDER BY since, rowid")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (task_id, tool, input, since) = row?;
            let input = serde_json::from_str(&input).map_err(|e| Error::Corrupt(format!("approval input of task {task_id}: {e}")))?;
            out.push(PendingApproval { task_id, tool, input, since });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_waiting_approval_per_task_kept_replaced_and_cleared() {
        let s = Store::open_in_memory().unwrap();
        // No task rows here: the task reference is checked elsewhere.
        s.conn().execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let a = PendingApproval { task_id: "t1".into(), tool: "Bash".into(), input: serde_json::json!({"command": "ls"}), since: "2026-01-01T00:00:00Z".into() };
        s.set_pending_approval(&a).unwrap();
        let b = PendingApproval { tool: "Edit".into(), input: serde_json::json!({"file": "x"}), ..a.clone() };
        s.set_pending_approval(&b).unwrap();
        assert_eq!(s.pending_approvals().unwrap(), vec![b]);
        assert!(s.clear_pending_approval("t1").unwrap());
        assert!(!s.clear_pending_approval("t1").unwrap());
        assert!(s.pending_approvals().unwrap().is_empty());
    }
}
