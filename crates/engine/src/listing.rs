//! Task lists at scale (issue 14): filtered by project and status, a page at a
//! time, and decorated (terminals, agent state, usage, pull request) in one pass
//! whatever the number of tasks and terminals.

use crate::{blocking, Engine, Error, Result, Task, TaskStatus};
use std::collections::HashMap;

/// Most tasks one page may hold.
pub const MAX_PAGE: usize = 1000;

/// Which tasks [`Engine::list_tasks`] returns.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this project's tasks (its id).
    pub project: Option<String>,
    /// Only tasks in one of these states, as shown (an agent's `needs_approval` is a
    /// running task's); every state when empty.
    pub statuses: Vec<TaskStatus>,
    /// At most this many tasks (1 to [`MAX_PAGE`]); all when `None`.
    pub limit: Option<usize>,
    /// Skip this many matching tasks first (oldest first).
    pub offset: usize,
}

/// One page of tasks and how many match in all.
#[derive(Debug, Clone)]
pub struct TaskPage {
    /// The page, oldest first.
    pub tasks: Vec<Task>,
    /// Tasks matching the filter, over all pages.
    pub total: usize,
}

impl TaskFilter {
    /// Parses the query forms: `statuses` a comma-separated list of state names,
    /// `limit` 1 to [`MAX_PAGE`].
    ///
    /// Errors: `INVALID_INPUT` naming the bad value and the valid ones.
    pub fn parse(project: Option<String>, statuses: Option<&str>, limit: Option<&str>, offset: Option<&str>) -> Result<TaskFilter> {
        let mut f = TaskFilter { project: project.filter(|p| !p.is_empty()), ..Default::default() };
        for s in statuses.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let st = s.parse::<TaskStatus>().map_err(|_| {
                let valid: Vec<&str> = TaskStatus::ALL.iter().map(|t| t.as_str()).collect();
                Error::Invalid(format!("unknown status {:?}: use one or more of {}, separated by commas", s.chars().take(40).collect::<String>(), valid.join(", ")))
            })?;
            f.statuses.push(st);
        }
        if let Some(l) = limit {
            match l.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => f.limit = Some(n),
                _ => return Err(Error::Invalid(format!("limit must be a whole number from 1 to {MAX_PAGE}"))),
            }
        }
        if let Some(o) = offset {
            f.offset = o.trim().parse::<usize>().map_err(|_| Error::Invalid("offset must be a whole number, 0 or more".into()))?;
        }
        Ok(f)
    }
}

impl Engine {
    /// The tasks matching `filter` (oldest first), one page of them, decorated as
    /// [`Engine::task`] does, and how many match in all.
    ///
    /// Errors: `PROJECT_NOT_FOUND` for an unknown project; database errors.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<TaskPage> {
        if let Some(p) = &filter.project {
            self.project(p).await?;
        }
        let store = self.inner.store.clone();
        let (all, prs) = blocking(move || Ok((store.task_snapshot()?, store.task_prs()?))).await?;
        // Filtered and paged on the shared copy (the status as shown: an agent's
        // state over a running task's); only the page is cloned and decorated.
        let matching: Vec<&Task> = {
            let states = self.inner.agent_states.lock().unwrap_or_else(|p| p.into_inner());
            let shown = |t: &Task| match states.get(&t.id) {
                Some(s) if t.status == TaskStatus::Running => s.status,
                _ => t.status,
            };
            all.iter()
                .filter(|t| filter.project.as_ref().is_none_or(|p| &t.project_id == p))
                .filter(|t| filter.statuses.is_empty() || filter.statuses.contains(&shown(t)))
                .collect()
        };
        let total = matching.len();
        let mut page: Vec<Task> = matching.into_iter().skip(filter.offset).take(filter.limit.unwrap_or(usize::MAX)).cloned().collect();
        self.decorate_without_prs(&mut page);
        let mut prs: HashMap<String, _> = prs.into_iter().collect();
        for t in &mut page {
            t.pr = prs.remove(&t.id);
        }
        Ok(TaskPage { tasks: page, total })
    }

    /// Terminals, agent states and usage of many tasks, the terminal registry read
    /// once (not once per task).
    pub(crate) fn decorate_without_prs(&self, tasks: &mut [Task]) {
        let mut by_task = self.inner.terminals.infos_by_task();
        for t in tasks.iter_mut() {
            t.terminals = crate::terminals::with_agent(t, by_task.remove(&t.id).unwrap_or_default());
            self.overlay_agent_state(t);
            self.overlay_governor(t);
            if t.setup.status != anycode_core::SetupStatus::None {
                t.setup.log_url = Some(crate::devcontainer::log_path_url(&t.id));
            }
            self.overlay_host(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_with_clear_errors() {
        let f = TaskFilter::parse(Some("p1".into()), Some("running, needs_approval"), Some("50"), Some("100")).unwrap();
        assert_eq!(f.project.as_deref(), Some("p1"));
        assert_eq!(f.statuses, vec![TaskStatus::Running, TaskStatus::NeedsApproval]);
        assert_eq!((f.limit, f.offset), (Some(50), 100));
        let all = TaskFilter::parse(Some(String::new()), Some(""), None, None).unwrap();
        assert!(all.project.is_none() && all.statuses.is_empty() && all.limit.is_none() && all.offset == 0);
        for (st, l, o) in [(Some("runing"), None, None), (None, Some("0"), None), (None, Some("1001"), None), (None, Some("x"), None), (None, None, Some("-1"))] {
            let e = TaskFilter::parse(None, st, l, o).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{e}");
        }
        let e = TaskFilter::parse(None, Some("runing"), None, None).unwrap_err().to_string();
        assert!(e.contains("needs_approval") && e.contains("runing"), "{e}");
    }
}
