//! Remote Docker hosts and which host each task's sandbox is on. Kept in their
//! own tables so task rows stay as they are; a task with no row is on the local
//! engine ([`anycode_core::LOCAL_HOST`]).

use crate::{Error, Result, Store};
use anycode_core::{Host, HostTls, Task, LOCAL_HOST};
use rusqlite::{params, OptionalExtension};

fn host_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Host, Option<String>)> {
    Ok((
        Host { id: r.get(0)?, name: r.get(1)?, endpoint: r.get(2)?, tls: None, max_running: r.get(4)? },
        r.get::<_, Option<String>>(3)?,
    ))
}

fn with_tls((mut h, tls): (Host, Option<String>)) -> Result<Host> {
    if let Some(j) = tls {
        h.tls = Some(serde_json::from_str::<HostTls>(&j).map_err(|e| Error::Corrupt(format!("host {} tls: {e}", h.id)))?);
    }
    Ok(h)
}

impl Store {
    /// Adds a host. Errors: [`Error::Conflict`] when its name is taken.
    pub fn insert_host(&self, h: &Host) -> Result<()> {
        let tls = h.tls.as_ref().map(serde_json::to_string).transpose().map_err(|e| Error::Corrupt(e.to_string()))?;
        let conn = self.conn();
        let taken: bool = conn.query_row("SELECT EXISTS(SELECT 1 FROM hosts WHERE name = ?1)", [&h.name], |r| r.get(0))?;
        if taken {
            return Err(Error::Conflict(format!("a host named {:?} exists already", h.name)));
        }
        conn.execute(
            "INSERT INTO hosts (id, name, endpoint, tls, max_running, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![h.id, h.name, h.endpoint, tls, h.max_running, anycode_core::now_rfc3339()],
        )?;
        Ok(())
    }

    /// Every remote host, oldest first.
    pub fn hosts(&self) -> Result<Vec<Host>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, name, endpoint, tls, max_running FROM hosts ORDER BY created_at, rowid")?;
        let rows = stmt.query_map([], host_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(with_tls).collect()
    }

    /// One remote host.
    pub fn host(&self, id: &str) -> Result<Option<Host>> {
        let row = self
            .conn()
            .query_row("SELECT id, name, endpoint, tls, max_running FROM hosts WHERE id = ?1", [id], host_from_row)
            .optional()?;
        row.map(with_tls).transpose()
    }

    /// Removes a host. Errors: [`Error::Conflict`] while tasks are on it.
    pub fn delete_host(&self, id: &str) -> Result<()> {
        let conn = self.conn();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM task_host WHERE host_id = ?1", [id], |r| r.get(0))?;
        if n > 0 {
            return Err(Error::Conflict(format!("{n} task(s) are on this host: delete them first")));
        }
        conn.execute("DELETE FROM hosts WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Records which host a task's sandbox is on.
    pub fn set_task_host(&self, task_id: &str, host_id: &str) -> Result<()> {
        let conn = self.conn();
        if host_id == LOCAL_HOST {
            conn.execute("DELETE FROM task_host WHERE task_id = ?1", [task_id])?;
        } else {
            conn.execute(
                "INSERT INTO task_host (task_id, host_id) VALUES (?1, ?2) ON CONFLICT(task_id) DO UPDATE SET host_id = ?2",
                params![task_id, host_id],
            )?;
        }
        Ok(())
    }

    /// Fills in `host` of each task (one read of the table, whatever the count).
    pub(crate) fn fill_hosts(&self, tasks: &mut [Task]) -> Result<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT task_id, host_id FROM task_host")?;
        let placed: std::collections::HashMap<String, String> =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?.collect::<rusqlite::Result<_>>()?;
        for t in tasks {
            t.host = placed.get(&t.id).cloned().unwrap_or_else(|| LOCAL_HOST.to_string());
        }
        Ok(())
    }

    /// How many tasks on host `host_id` are `running` (the host's `max_running`
    /// counts these).
    pub fn count_running_on_host(&self, host_id: &str) -> Result<u32> {
        let conn = self.conn();
        let n: i64 = if host_id == LOCAL_HOST {
            conn.query_row(
                "SELECT COUNT(*) FROM tasks WHERE status = 'running' AND id NOT IN (SELECT task_id FROM task_host)",
                [],
                |r| r.get(0),
            )?
        } else {
            conn.query_row(
                "SELECT COUNT(*) FROM tasks t JOIN task_host h ON h.task_id = t.id WHERE t.status = 'running' AND h.host_id = ?1",
                [host_id],
                |r| r.get(0),
            )?
        };
        Ok(n as u32)
    }
}
