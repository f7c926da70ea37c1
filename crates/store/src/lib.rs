//! AnyCode's SQLite database (`<data_dir>/anycode.db`): projects, tasks and paired
//! devices (`devices.rs`).
//!
//! - Schema changes are [`rusqlite_migration`] steps in `MIGRATIONS`; never edit a
//!   shipped step, append a new one.
//! - Every call is blocking (rusqlite): async callers run it on
//!   `tokio::task::spawn_blocking`. [`Store`] is cheap to clone and shares one
//!   connection behind a mutex; WAL mode keeps readers of other processes unblocked.
//! - Secrets are never stored here.

use anycode_core::{Agent, Credential, PermissionMode, Project, PullRequestInfo, Task, TaskStatus};
use rusqlite::{params, Connection, OptionalExtension, Row};
use rusqlite_migration::{Migrations, M};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

mod approvals;
mod devices;
mod hosts;
mod review;
mod network;
mod setup;

pub use approvals::PendingApproval;
pub use review::StoredComment;

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed (disk full, file locked by another process, corrupt file).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// A stored value this version cannot read.
    #[error("corrupt database value: {0}")]
    Corrupt(String),
    /// A uniqueness rule was broken (the same repository added twice).
    #[error("{0}")]
    Conflict(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

const MIGRATIONS: &[M<'static>] = &[
    M::up(
    "CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        default_branch TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id),
        title TEXT NOT NULL,
        agent TEXT NOT NULL,
        branch TEXT NOT NULL,
        base TEXT NOT NULL,
        base_sha TEXT NOT NULL,
        prompt TEXT,
        status TEXT NOT NULL,
        exit_code INTEGER,
        error TEXT,
        container_id TEXT,
        worktree TEXT NOT NULL,
        agent_terminal_id TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX tasks_project ON tasks(project_id);",
    ),
    // Issue 4: a task's pull request on GitHub (number, URL, state, checks, review) as
    // JSON, in its own table so task rows stay as they are.
    M::up(
        "CREATE TABLE task_prs (
            task_id TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
            pr TEXT NOT NULL
        );",
    ),
    // Issue 5: which credential a task's agent gets, and what happened at its last
    // start. Never the secret itself.
    M::up(
        "ALTER TABLE tasks ADD COLUMN credential TEXT NOT NULL DEFAULT 'none';
         ALTER TABLE tasks ADD COLUMN credential_source TEXT;
         ALTER TABLE tasks ADD COLUMN credential_expires_at INTEGER;
         ALTER TABLE tasks ADD COLUMN credential_problem TEXT;",
    ),
    // Issue 3: per-task switch for recording the agent terminal.
    M::up("ALTER TABLE tasks ADD COLUMN record INTEGER NOT NULL DEFAULT 1;"),
    // Issue 7: devices paired from the local network. Only the SHA-256 of a device's
    // session secret is kept, so a copy of the database lets nobody in.
    M::up(
        "CREATE TABLE IF NOT EXISTS devices (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            session_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            last_seen TEXT
        );",
    ),
    // Issue 8: Claude Code's permission mode and the sandbox's caps, per task.
    M::up(
        "ALTER TABLE tasks ADD COLUMN permission_mode TEXT;
         ALTER TABLE tasks ADD COLUMN cpus REAL;
         ALTER TABLE tasks ADD COLUMN memory_mb INTEGER;",
    ),
    // Issue 8: the order of the run queue (a sequence number, meaningful while the
    // status is `queued`), so a restart keeps it.
    M::up("ALTER TABLE tasks ADD COLUMN queued_at INTEGER;"),
    // Issue 13: network policies ({mode, allow} as JSON) per task and per project, and
    // the hosts the egress proxy refused per task. Tasks made before keep `open`
    // (they ran on Docker's bridge with no proxy).
    M::up(
        "CREATE TABLE task_network (
            task_id TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
            policy TEXT NOT NULL
        );
        INSERT INTO task_network (task_id, policy) SELECT id, '{\"mode\":\"open\",\"allow\":[]}' FROM tasks;
        CREATE TABLE project_network (
            project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
            policy TEXT NOT NULL
        );
        CREATE TABLE task_blocked (
            task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            host TEXT NOT NULL,
            count INTEGER NOT NULL,
            last_at TEXT NOT NULL,
            PRIMARY KEY (task_id, host)
        );",
    ),
    // Issue 14: approvals waiting for Allow or Deny, so a killed AnyCode asks again.
    M::up(
        "CREATE TABLE pending_approvals (
            task_id TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
            tool TEXT NOT NULL,
            input TEXT NOT NULL,
            since TEXT NOT NULL
        );",
    ),
    // Issue 17: remote Docker hosts, and the host of each task not on the local
    // engine (tasks made before are all local).
    M::up(
        "CREATE TABLE hosts (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            endpoint TEXT NOT NULL,
            tls TEXT,
            max_running INTEGER,
            created_at TEXT NOT NULL
        );
        CREATE TABLE task_host (
            task_id TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
            host_id TEXT NOT NULL REFERENCES hosts(id)
        );",
    ),
    // Issue 16: the dev container setup of each task (status, exit code, whether
    // postCreateCommand ran, why it failed), and the GitHub issue a task started from.
    M::up(
        "CREATE TABLE task_setup (
            task_id TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
            status TEXT NOT NULL,
            exit_code INTEGER,
            error TEXT,
            created INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE task_issue (
            task_id TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            url TEXT NOT NULL
        );",
    ),
    // Issue 16: review comments on a task's changes, and when they were sent (with
    // the task branch's head and the work the owner saw then, to tell when a later
    // commit addressed them).
    M::up(
        "CREATE TABLE review_comments (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            line INTEGER NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            sent_head TEXT,
            sent_work TEXT
        );
        CREATE INDEX review_comments_task ON review_comments(task_id);",
    ),
];

/// Handle on the database; clones share one connection and one cached task list.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    list: Arc<Mutex<ListCache>>,
}

/// Every task as [`Store::tasks`] last read them, and the database's change counters
/// at that moment: valid while neither has moved.
#[derive(Default)]
struct ListCache {
    /// `(total_changes of our connection, PRAGMA data_version)` read before the
    /// tasks were: the tasks are at least as new as the key.
    key: Option<(u64, i64)>,
    tasks: Arc<Vec<Task>>,
}

/// The database's change counters: rows this connection changed
/// (`sqlite3_total_changes64`: every INSERT, UPDATE and DELETE, even one rolled
/// back) and `PRAGMA data_version`, which moves when another connection (another
/// process) commits.
fn change_key(conn: &Connection) -> Result<(u64, i64)> {
    Ok((conn.total_changes(), conn.query_row("PRAGMA data_version", [], |r| r.get(0))?))
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// Errors: [`Error::Sqlite`] when the file cannot be opened, [`Error::Migration`]
    /// when the schema cannot be brought up to date (e.g. a database from a newer version).
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), list: Default::default() })
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), list: Default::default() })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (statements
        // are atomic), so a poisoned lock is safe to take over.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a project. Errors: [`Error::Conflict`] when its path is already a project.
    pub fn insert_project(&self, p: &Project) -> Result<()> {
        let res = self.conn().execute(
            "INSERT INTO projects (id, name, path, default_branch, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.id, p.name, p.path, p.default_branch, anycode_core::now_rfc3339()],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(Error::Conflict(format!("{} is already a project", p.path)))
            }
            other => other.map(|_| ()).map_err(Error::from),
        }
    }

    /// All projects, oldest first.
    pub fn projects(&self) -> Result<Vec<Project>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, name, path, default_branch FROM projects ORDER BY created_at, rowid")?;
        let rows = stmt.query_map([], project_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One project, or `None`.
    pub fn project(&self, id: &str) -> Result<Option<Project>> {
        Ok(self
            .conn()
            .query_row("SELECT id, name, path, default_branch FROM projects WHERE id = ?1", [id], project_from_row)
            .optional()?)
    }

    /// Removes a project row (the caller checks it has no tasks). Returns whether it existed.
    pub fn delete_project(&self, id: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM projects WHERE id = ?1", [id])? > 0)
    }

    /// Adds a task.
    pub fn insert_task(&self, t: &Task) -> Result<()> {
        self.conn().execute(
            "INSERT INTO tasks (id, project_id, title, agent, branch, base, base_sha, prompt, status, exit_code,
                                error, container_id, worktree, agent_terminal_id, created_at,
                                credential, credential_source, credential_expires_at, credential_problem, record,
                                permission_mode, cpus, memory_mb)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
            params![
                t.id,
                t.project_id,
                t.title,
                t.agent.as_str(),
                t.branch,
                t.base,
                t.base_sha,
                t.prompt,
                t.status.as_str(),
                t.exit_code,
                t.error,
                t.container_id,
                t.worktree,
                t.agent_terminal_id,
                t.created_at,
                t.credential.as_str(),
                t.credential_source,
                t.credential_expires_at,
                t.credential_problem,
                t.record,
                t.permission_mode.map(|m| m.as_str()),
                t.cpus,
                t.memory_mb.map(|m| m as i64)
            ],
        )?;
        self.set_task_network(&t.id, &t.network)?;
        self.set_task_host(&t.id, &t.host)?;
        Ok(())
    }

    /// Tasks, oldest first; only those of `project` when given.
    ///
    /// Lists are served from a copy of every task kept since the last read, as long
    /// as nothing was written to the database since (by this process or another):
    /// at 500 tasks a list is then a clone, not a query and 500 network policies
    /// parsed (issue 14: `GET /api/tasks`).
    pub fn tasks(&self, project: Option<&str>) -> Result<Vec<Task>> {
        Ok(self.task_snapshot()?.iter().filter(|t| project.is_none_or(|p| t.project_id == p)).cloned().collect())
    }

    /// Every task, oldest first, as one shared copy: the same `Arc` until something
    /// is written to the database, so a caller that shows a page of tasks clones
    /// only those (see [`Store::tasks`]).
    pub fn task_snapshot(&self) -> Result<Arc<Vec<Task>>> {
        let key = change_key(&self.conn())?;
        {
            let cache = self.list.lock().unwrap_or_else(|p| p.into_inner());
            if cache.key == Some(key) {
                return Ok(cache.tasks.clone());
            }
        }
        let all = Arc::new(self.read_tasks()?);
        *self.list.lock().unwrap_or_else(|p| p.into_inner()) = ListCache { key: Some(key), tasks: all.clone() };
        Ok(all)
    }

    /// Every task, read from the database (oldest first).
    fn read_tasks(&self) -> Result<Vec<Task>> {
        let conn = self.conn();
        let sql = format!("SELECT {TASK_COLS} FROM tasks ORDER BY created_at, rowid");
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], task_from_row)?;
        let mut tasks: Vec<Task> = rows.map(|r| r.map_err(Error::from).and_then(|x| x)).collect::<Result<_>>()?;
        drop(stmt);
        drop(conn);
        self.fill_networks(&mut tasks)?;
        self.fill_hosts(&mut tasks)?;
        self.fill_setups(&mut tasks)?;
        Ok(tasks)
    }

    /// One task, or `None`.
    pub fn task(&self, id: &str) -> Result<Option<Task>> {
        let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE id = ?1");
        let mut task = self.conn().query_row(&sql, [id], task_from_row).optional()?.transpose()?;
        if let Some(t) = task.as_mut() {
            self.fill_networks(std::slice::from_mut(t))?;
            self.fill_hosts(std::slice::from_mut(t))?;
            self.fill_setups(std::slice::from_mut(t))?;
        }
        Ok(task)
    }

    /// Sets a task's status, exit code and error together (they describe one state).
    pub fn set_task_state(&self, id: &str, status: TaskStatus, exit_code: Option<i64>, error: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE tasks SET status = ?2, exit_code = ?3, error = ?4 WHERE id = ?1",
            params![id, status.as_str(), exit_code, error],
        )?;
        Ok(())
    }

    /// Puts a task in the run queue: status `queued` (exit code and error cleared),
    /// at the end of the queue unless it is queued already (then it keeps its place).
    pub fn enqueue_task(&self, id: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE tasks SET exit_code = NULL, error = NULL,
                 queued_at = CASE WHEN status = 'queued' AND queued_at IS NOT NULL THEN queued_at
                                  ELSE (SELECT COALESCE(MAX(queued_at), 0) + 1 FROM tasks) END,
                 status = 'queued'
             WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// The ids of queued tasks, first in line first (FIFO by when they queued).
    pub fn queued_task_ids(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM tasks WHERE status = 'queued' ORDER BY queued_at, created_at, rowid")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many tasks have the stored status `status`.
    pub fn count_tasks_with_status(&self, status: TaskStatus) -> Result<u32> {
        Ok(self.conn().query_row("SELECT COUNT(*) FROM tasks WHERE status = ?1", [status.as_str()], |r| r.get(0))?)
    }

    /// Records what the agent got at its last start: where its credential came from,
    /// when it expires (epoch ms), or why it got none. Never the secret.
    pub fn set_task_credential_state(&self, id: &str, source: Option<&str>, expires_at: Option<i64>, problem: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE tasks SET credential_source = ?2, credential_expires_at = ?3, credential_problem = ?4 WHERE id = ?1",
            params![id, source, expires_at, problem],
        )?;
        Ok(())
    }

    /// The pull request recorded for task `id`, or `None`.
    pub fn task_pr(&self, id: &str) -> Result<Option<PullRequestInfo>> {
        let json: Option<String> = self.conn().query_row("SELECT pr FROM task_prs WHERE task_id = ?1", [id], |r| r.get(0)).optional()?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| Error::Corrupt(format!("pull request of task {id}: {e}")))).transpose()
    }

    /// Every recorded pull request, by task id.
    pub fn task_prs(&self) -> Result<Vec<(String, PullRequestInfo)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT task_id, pr FROM task_prs")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            match serde_json::from_str(&json) {
                Ok(pr) => out.push((id, pr)),
                Err(e) => return Err(Error::Corrupt(format!("pull request of task {id}: {e}"))),
            }
        }
        Ok(out)
    }

    /// Records (or, with `None`, forgets) task `id`'s pull request.
    pub fn set_task_pr(&self, id: &str, pr: Option<&PullRequestInfo>) -> Result<()> {
        match pr {
            Some(pr) => {
                let json = serde_json::to_string(pr).map_err(|e| Error::Corrupt(e.to_string()))?;
                self.conn().execute(
                    "INSERT INTO task_prs (task_id, pr) VALUES (?1, ?2) ON CONFLICT(task_id) DO UPDATE SET pr = excluded.pr",
                    params![id, json],
                )?;
            }
            None => {
                self.conn().execute("DELETE FROM task_prs WHERE task_id = ?1", [id])?;
            }
        }
        Ok(())
    }

    /// Records the task's container id.
    pub fn set_task_container(&self, id: &str, container_id: Option<&str>) -> Result<()> {
        self.conn().execute("UPDATE tasks SET container_id = ?2 WHERE id = ?1", params![id, container_id])?;
        Ok(())
    }

    /// Removes a task row. Returns whether it existed.
    pub fn delete_task(&self, id: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM tasks WHERE id = ?1", [id])? > 0)
    }
}

const TASK_COLS: &str = "id, project_id, title, agent, branch, base, base_sha, prompt, status, exit_code, error, \
                         container_id, worktree, agent_terminal_id, created_at, \
                         credential, credential_source, credential_expires_at, credential_problem, record, \
                         permission_mode, cpus, memory_mb";

fn project_from_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project { id: r.get(0)?, name: r.get(1)?, path: r.get(2)?, default_branch: r.get(3)? })
}

fn task_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Task>> {
    let agent: String = r.get(3)?;
    let status: String = r.get(8)?;
    let agent = match agent.parse::<Agent>() {
        Ok(a) => a,
        Err(e) => return Ok(Err(Error::Corrupt(e.to_string()))),
    };
    let status = match status.parse::<TaskStatus>() {
        Ok(s) => s,
        Err(e) => return Ok(Err(Error::Corrupt(e.to_string()))),
    };
    let credential: String = r.get(15)?;
    let credential = match credential.parse::<Credential>() {
        Ok(c) => c,
        Err(e) => return Ok(Err(Error::Corrupt(e.to_string()))),
    };
    let permission_mode: Option<String> = r.get(20)?;
    let permission_mode = match permission_mode.map(|m| m.parse::<PermissionMode>()).transpose() {
        Ok(m) => m,
        Err(e) => return Ok(Err(Error::Corrupt(e.to_string()))),
    };
    let memory_mb: Option<i64> = r.get(22)?;
    Ok(Ok(Task {
        id: r.get(0)?,
        project_id: r.get(1)?,
        title: r.get(2)?,
        agent,
        branch: r.get(4)?,
        base: r.get(5)?,
        base_sha: r.get(6)?,
        prompt: r.get(7)?,
        status,
        exit_code: r.get(9)?,
        error: r.get(10)?,
        container_id: r.get(11)?,
        worktree: r.get(12)?,
        agent_terminal_id: r.get(13)?,
        terminals: Vec::new(),
        created_at: r.get(14)?,
        credential,
        credential_source: r.get(16)?,
        credential_expires_at: r.get(17)?,
        credential_problem: r.get(18)?,
        record: r.get(19)?,
        pr: None,
        permission_mode,
        cpus: r.get(21)?,
        memory_mb: memory_mb.map(|m| m.max(0) as u64),
        attention: None,
        usage: None,
        queue_position: None,
        network: Default::default(),
        messages: Vec::new(),
        host: anycode_core::LOCAL_HOST.to_string(),
        host_error: None,
        setup: Default::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        Project { id: "p1".into(), name: "repo".into(), path: "/tmp/repo".into(), default_branch: "main".into() }
    }

    fn task() -> Task {
        sample_task("t1", "p1")
    }

    pub(crate) fn sample_task(id: &str, project_id: &str) -> Task {
        Task {
            id: id.into(),
            project_id: project_id.into(),
            title: "Fix it".into(),
            agent: Agent::shell(),
            branch: "anycode/fix-it".into(),
            base: "main".into(),
            base_sha: "0".repeat(40),
            prompt: None,
            status: TaskStatus::Creating,
            exit_code: None,
            error: None,
            container_id: None,
            worktree: "/tmp/wt".into(),
            agent_terminal_id: "a1".into(),
            record: true,
            terminals: vec![],
            created_at: "2026-11-21T00:00:00Z".into(),
            credential: Credential::Subscription,
            credential_source: None,
            credential_expires_at: None,
            credential_problem: None,
            pr: None,
            permission_mode: Some(PermissionMode::AcceptEdits),
            cpus: Some(1.5),
            memory_mb: Some(2048),
            attention: None,
            usage: None,
            queue_position: None,
            network: Default::default(),
            messages: Vec::new(),
            host: anycode_core::LOCAL_HOST.to_string(),
            host_error: None,
            setup: Default::default(),
        }
    }

    #[test]
    fn migrations_are_valid() {
        Migrations::from_slice(MIGRATIONS).validate().expect("valid migrations");
    }

    #[test]
    fn round_trip_and_state_changes() {
        let s = Store::open_in_memory().unwrap();
        s.insert_project(&project()).unwrap();
        assert!(matches!(s.insert_project(&Project { id: "p2".into(), ..project() }), Err(Error::Conflict(_))));
        s.insert_task(&task()).unwrap();
        s.set_task_state("t1", TaskStatus::Exited, Some(3), None).unwrap();
        s.set_task_container("t1", Some("abc")).unwrap();
        let t = s.task("t1").unwrap().unwrap();
        assert_eq!(t.status, TaskStatus::Exited);
        assert_eq!(t.exit_code, Some(3));
        assert_eq!(t.container_id.as_deref(), Some("abc"));
        assert_eq!(t.credential, Credential::Subscription);
        s.set_task_credential_state("t1", Some("keyring anycode/claude-token"), Some(1_800_000_000_000), None).unwrap();
        let t = s.task("t1").unwrap().unwrap();
        assert_eq!(t.credential_source.as_deref(), Some("keyring anycode/claude-token"));
        assert_eq!(t.credential_expires_at, Some(1_800_000_000_000));
        s.set_task_credential_state("t1", None, None, Some("none found")).unwrap();
        assert_eq!(s.task("t1").unwrap().unwrap().credential_problem.as_deref(), Some("none found"));
        assert_eq!(s.tasks(Some("p1")).unwrap().len(), 1);
        assert_eq!(s.tasks(Some("nope")).unwrap().len(), 0);
        let pr = PullRequestInfo {
            repo: "octo/hello".into(),
            number: 7,
            url: "https://github.com/octo/hello/pull/7".into(),
            state: "open".into(),
            draft: false,
            checks: Some("pending".into()),
            review: None,
            mergeable: None,
            refreshed_at: "2026-11-21T00:00:00Z".into(),
            refresh_error: None,
        };
        s.set_task_pr("t1", Some(&pr)).unwrap();
        s.set_task_pr("t1", Some(&PullRequestInfo { state: "merged".into(), ..pr.clone() })).unwrap();
        assert_eq!(s.task_pr("t1").unwrap().unwrap().state, "merged");
        assert_eq!(s.task_prs().unwrap().len(), 1);
        assert!(s.task_pr("nope").unwrap().is_none());
        assert!(s.delete_task("t1").unwrap());
        assert!(s.delete_project("p1").unwrap());
        assert!(s.projects().unwrap().is_empty());
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        Store::open(&path).unwrap().insert_project(&project()).unwrap();
        assert_eq!(Store::open(&path).unwrap().projects().unwrap(), vec![project()]);
    }

    #[test]
    fn a_cached_list_follows_every_write_of_ours_and_of_other_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let s = Store::open(&path).unwrap();
        s.insert_project(&project()).unwrap();
        s.insert_project(&Project { id: "p2".into(), path: "/tmp/other".into(), ..project() }).unwrap();
        s.insert_task(&task()).unwrap();
        s.insert_task(&Task { id: "t2".into(), project_id: "p2".into(), agent_terminal_id: "a2".into(), ..task() }).unwrap();
        let status = |s: &Store| s.tasks(None).unwrap().iter().map(|t| (t.id.clone(), t.status)).collect::<Vec<_>>();
        assert_eq!(status(&s), vec![("t1".into(), TaskStatus::Creating), ("t2".into(), TaskStatus::Creating)]);
        // Served from the copy now, filtered by project like the query was.
        assert_eq!(s.tasks(Some("p2")).unwrap().iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t2"]);
        // Our own writes, to the task row and to a side table.
        s.set_task_state("t1", TaskStatus::Exited, Some(1), None).unwrap();
        assert_eq!(status(&s)[0], ("t1".into(), TaskStatus::Exited));
        let policy = anycode_core::NetworkPolicy { mode: anycode_core::NetworkMode::None, allow: Default::default() };
        s.set_task_network("t2", &policy).unwrap();
        assert_eq!(s.tasks(Some("p2")).unwrap()[0].network, policy);
        s.delete_task("t1").unwrap();
        assert_eq!(status(&s), vec![("t2".into(), TaskStatus::Creating)]);
        // Another connection (another process) commits.
        let other = Store::open(&path).unwrap();
        other.set_task_state("t2", TaskStatus::Stopped, None, None).unwrap();
        assert_eq!(status(&s), vec![("t2".into(), TaskStatus::Stopped)]);
        other.insert_task(&Task { id: "t3".into(), agent_terminal_id: "a3".into(), ..task() }).unwrap();
        assert_eq!(s.tasks(Some("p1")).unwrap().iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t3"]);
    }

    #[test]
    fn queue_is_fifo_and_keeps_places() {
        let s = Store::open_in_memory().unwrap();
        s.insert_project(&project()).unwrap();
        for id in ["a", "b", "c"] {
            s.insert_task(&Task { id: id.into(), agent_terminal_id: format!("t{id}"), ..task() }).unwrap();
        }
        s.enqueue_task("c").unwrap();
        s.enqueue_task("a").unwrap();
        s.enqueue_task("b").unwrap();
        assert_eq!(s.queued_task_ids().unwrap(), vec!["c", "a", "b"]);
        // Queuing again keeps the place; leaving and coming back goes to the end.
        s.enqueue_task("c").unwrap();
        assert_eq!(s.queued_task_ids().unwrap(), vec!["c", "a", "b"]);
        s.set_task_state("c", TaskStatus::Running, None, None).unwrap();
        assert_eq!(s.count_tasks_with_status(TaskStatus::Running).unwrap(), 1);
        s.enqueue_task("c").unwrap();
        assert_eq!(s.queued_task_ids().unwrap(), vec!["a", "b", "c"]);
        assert_eq!(s.task("a").unwrap().unwrap().status, TaskStatus::Queued);
    }
}
