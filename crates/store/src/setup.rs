//! The dev container setup of each task (issue 16), and the GitHub issue a task
//! started from, in their own tables so task rows stay as they are. A task without
//! a setup row has no setup (`none`).

use crate::{Result, Store};
use anycode_core::{SetupStatus, Task, TaskSetup};
use rusqlite::{params, OptionalExtension};

/// A `task_setup` row's state (`log_url` is left to the engine).
fn setup_of(status: &str, exit_code: Option<i64>, error: Option<String>) -> TaskSetup {
    TaskSetup { status: SetupStatus::parse(status).unwrap_or_default(), exit_code, log_url: None, error }
}

impl Store {
    /// Sets a task's setup status, exit code and error together (they describe one
    /// state); `created` is true once `postCreateCommand` ran (it never becomes
    /// false again).
    pub fn set_task_setup(&self, task_id: &str, status: SetupStatus, exit_code: Option<i64>, error: Option<&str>, created: bool) -> Result<()> {
        self.conn().execute(
            "INSERT INTO task_setup (task_id, status, exit_code, error, created) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(task_id) DO UPDATE SET status = ?2, exit_code = ?3, error = ?4, created = MAX(created, ?5)",
            params![task_id, status.as_str(), exit_code, error, created],
        )?;
        Ok(())
    }

    /// A task's setup and whether its `postCreateCommand` ran. `log_url` is left
    /// empty (the engine fills it in).
    pub fn task_setup(&self, task_id: &str) -> Result<(TaskSetup, bool)> {
        let row: Option<(String, Option<i64>, Option<String>, bool)> = self
            .conn()
            .query_row("SELECT status, exit_code, error, created FROM task_setup WHERE task_id = ?1", [task_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        Ok(match row {
            Some((status, exit_code, error, created)) => (setup_of(&status, exit_code, error), created),
            None => (TaskSetup::default(), false),
        })
    }

    /// Records the GitHub issue (number, page) a task started from.
    pub fn set_task_issue(&self, task_id: &str, number: u64, url: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO task_issue (task_id, number, url) VALUES (?1, ?2, ?3) ON CONFLICT(task_id) DO UPDATE SET number = ?2, url = ?3",
            params![task_id, number as i64, url],
        )?;
        Ok(())
    }

    /// The GitHub issue (number, page) a task started from, if any.
    pub fn task_issue(&self, task_id: &str) -> Result<Option<(u64, String)>> {
        Ok(self
            .conn()
            .query_row("SELECT number, url FROM task_issue WHERE task_id = ?1", [task_id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .optional()?)
    }

    /// Fills in `setup` of each task (one read of the table for a list, not a query
    /// per task).
    pub(crate) fn fill_setups(&self, tasks: &mut [Task]) -> Result<()> {
        if let [t] = tasks {
            t.setup = self.task_setup(&t.id)?.0;
            return Ok(());
        }
        let mut stored: std::collections::HashMap<String, TaskSetup> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT task_id, status, exit_code, error FROM task_setup")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, setup_of(&r.get::<_, String>(1)?, r.get(2)?, r.get(3)?))))?
                .collect::<rusqlite::Result<_>>()?;
            rows
        };
        for t in tasks {
            t.setup = stored.remove(&t.id).unwrap_or_default();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_state_is_kept_and_created_stays_true() {
        let s = Store::open_in_memory().unwrap();
        let p = anycode_core::Project { id: "p1".into(), name: "r".into(), path: "/r".into(), default_branch: "main".into() };
        s.insert_project(&p).unwrap();
        let t = crate::tests::sample_task("t1", "p1");
        s.insert_task(&t).unwrap();
        assert_eq!(s.task_setup(&t.id).unwrap(), (TaskSetup::default(), false));
        s.set_task_setup(&t.id, SetupStatus::Failed, Some(3), Some("x"), true).unwrap();
        s.set_task_setup(&t.id, SetupStatus::Running, None, None, false).unwrap();
        let (setup, created) = s.task_setup(&t.id).unwrap();
        assert_eq!((setup.status, setup.exit_code, created), (SetupStatus::Running, None, true));
        assert_eq!(s.task(&t.id).unwrap().unwrap().setup.status, SetupStatus::Running);
        assert_eq!(s.tasks(Some(&p.id)).unwrap()[0].setup.status, SetupStatus::Running);
        // A list reads each side table once: every task gets its own row's values.
        let t2 = crate::tests::sample_task("t2", "p1");
        s.insert_task(&t2).unwrap();
        let policy = anycode_core::NetworkPolicy { mode: anycode_core::NetworkMode::None, allow: Default::default() };
        s.set_task_network(&t2.id, &policy).unwrap();
        let listed = s.tasks(None).unwrap();
        let by_id = |id: &str| listed.iter().find(|x| x.id == id).unwrap().clone();
        assert_eq!(by_id("t1").setup.status, SetupStatus::Running);
        assert_eq!(by_id("t2").setup, TaskSetup::default());
        assert_eq!(by_id("t2").network, policy);
        assert_eq!(by_id("t1").network, s.task_network("t1").unwrap(), "the same as read alone");
        assert_eq!(s.task_issue(&t.id).unwrap(), None);
        s.set_task_issue(&t.id, 7, "https://github.com/o/n/issues/7").unwrap();
        assert_eq!(s.task_issue(&t.id).unwrap(), Some((7, "https://github.com/o/n/issues/7".into())));
    }
}
