//! Network policies (per task, per project) and the hosts the egress proxy refused
//! for each task. Kept in their own tables so task rows stay as they are.

use crate::{Error, Result, Store};
use anycode_core::{BlockedHost, NetworkPolicy, Task};
use rusqlite::{params, OptionalExtension};

fn parse(json: &str) -> Result<NetworkPolicy> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt(format!("network policy {json:?}: {e}")))
}

fn to_json(p: &NetworkPolicy) -> Result<String> {
    serde_json::to_string(p).map_err(|e| Error::Corrupt(e.to_string()))
}

/// What a task without a stored policy has: tasks from before network policies ran
/// on Docker's bridge with no proxy, so they keep `open`.
fn legacy() -> NetworkPolicy {
    NetworkPolicy { mode: anycode_core::NetworkMode::Open, allow: Default::default() }
}

impl Store {
    /// Sets a task's network policy.
    pub fn set_task_network(&self, task_id: &str, p: &NetworkPolicy) -> Result<()> {
        self.conn().execute(
            "INSERT INTO task_network (task_id, policy) VALUES (?1, ?2) ON CONFLICT(task_id) DO UPDATE SET policy = ?2",
            params![task_id, to_json(p)?],
        )?;
        Ok(())
    }

    /// A task's network policy (`open` for tasks made before policies existed).
    pub fn task_network(&self, task_id: &str) -> Result<NetworkPolicy> {
        let json: Option<String> = self.conn().query_row("SELECT policy FROM task_network WHERE task_id = ?1", [task_id], |r| r.get(0)).optional()?;
        json.map_or_else(|| Ok(legacy()), |j| parse(&j))
    }

    /// Fills in `network` of each task (one read of the table for a list, not a
    /// query per task: at 500 tasks the per-task queries were most of
    /// `GET /api/tasks`).
    pub(crate) fn fill_networks(&self, tasks: &mut [Task]) -> Result<()> {
        if let [t] = tasks {
            t.network = self.task_network(&t.id)?;
            return Ok(());
        }
        let stored: std::collections::HashMap<String, String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT task_id, policy FROM task_network")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?.collect::<rusqlite::Result<_>>()?;
            rows
        };
        // Most tasks keep the default policy: each distinct one is parsed once.
        let mut parsed: std::collections::HashMap<&str, NetworkPolicy> = std::collections::HashMap::new();
        for t in tasks {
            t.network = match stored.get(&t.id) {
                None => legacy(),
                Some(j) => match parsed.entry(j.as_str()) {
                    std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(parse(j)?).clone(),
                },
            };
        }
        Ok(())
    }

    /// A project's default network policy for new tasks, if one is set.
    pub fn project_network(&self, project_id: &str) -> Result<Option<NetworkPolicy>> {
        let json: Option<String> =
            self.conn().query_row("SELECT policy FROM project_network WHERE project_id = ?1", [project_id], |r| r.get(0)).optional()?;
        json.map(|j| parse(&j)).transpose()
    }

    /// Sets (or with `None` removes) a project's default network policy.
    pub fn set_project_network(&self, project_id: &str, p: Option<&NetworkPolicy>) -> Result<()> {
        match p {
            Some(p) => self.conn().execute(
                "INSERT INTO project_network (project_id, policy) VALUES (?1, ?2) ON CONFLICT(project_id) DO UPDATE SET policy = ?2",
                params![project_id, to_json(p)?],
            )?,
            None => self.conn().execute("DELETE FROM project_network WHERE project_id = ?1", [project_id])?,
        };
        Ok(())
    }

    /// Counts one refused request of `task_id` for `host` at `at` (RFC 3339).
    pub fn record_blocked(&self, task_id: &str, host: &str, at: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO task_blocked (task_id, host, count, last_at) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT(task_id, host) DO UPDATE SET count = count + 1, last_at = ?3",
            params![task_id, host, at],
        )?;
        Ok(())
    }

    /// The hosts refused for a task, most recent first.
    pub fn blocked_hosts(&self, task_id: &str) -> Result<Vec<BlockedHost>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT host, count, last_at FROM task_blocked WHERE task_id = ?1 ORDER BY last_at DESC, host")?;
        let rows = stmt.query_map([task_id], |r| Ok(BlockedHost { host: r.get(0)?, count: r.get::<_, i64>(1)? as u64, last_at: r.get(2)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets refused hosts of a task that are now allowed.
    pub fn clear_blocked(&self, task_id: &str, hosts: &[String]) -> Result<()> {
        let conn = self.conn();
        for h in hosts {
            conn.execute("DELETE FROM task_blocked WHERE task_id = ?1 AND host = ?2", params![task_id, h])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anycode_core::NetworkMode;

    #[test]
    fn policies_and_blocked_hosts_are_kept() {
        let s = Store::open_in_memory().unwrap();
        let p = anycode_core::Project { id: "p1".into(), name: "r".into(), path: "/r".into(), default_branch: "main".into() };
        s.insert_project(&p).unwrap();
        let t = crate::tests::sample_task("t1", "p1");
        s.insert_task(&t).unwrap();
        assert_eq!(s.task_network("t1").unwrap(), t.network, "stored with the task");
        s.conn().execute("DELETE FROM task_network", []).unwrap();
        assert_eq!(s.task_network("t1").unwrap().mode, NetworkMode::Open, "tasks from before keep today's behaviour");
        let pol = NetworkPolicy { mode: NetworkMode::Allowlist, allow: vec!["example.com".into()].into() };
        s.set_task_network("t1", &pol).unwrap();
        assert_eq!(s.task("t1").unwrap().unwrap().network, pol);
        assert_eq!(s.tasks(None).unwrap()[0].network, pol);
        assert_eq!(s.project_network("p1").unwrap(), None);
        s.set_project_network("p1", Some(&pol)).unwrap();
        assert_eq!(s.project_network("p1").unwrap(), Some(pol));
        s.set_project_network("p1", None).unwrap();
        assert_eq!(s.project_network("p1").unwrap(), None);
        s.record_blocked("t1", "example.net", "2026-01-01T00:00:00Z").unwrap();
        s.record_blocked("t1", "example.net", "2026-01-01T00:00:05Z").unwrap();
        s.record_blocked("t1", "evil.test", "2026-01-01T00:00:01Z").unwrap();
        let b = s.blocked_hosts("t1").unwrap();
        assert_eq!(b[0], BlockedHost { host: "example.net".into(), count: 2, last_at: "2026-01-01T00:00:05Z".into() });
        assert_eq!(b.len(), 2);
        s.clear_blocked("t1", &["evil.test".into()]).unwrap();
        assert_eq!(s.blocked_hosts("t1").unwrap().len(), 1);
        s.delete_task("t1").unwrap();
        assert!(s.blocked_hosts("t1").unwrap().is_empty());
    }
}
