//! The tray's content as plain data: [`tray_model`] turns the task list into what
//! the tray shows, and [`MenuAction::parse`] reads a clicked menu item's id back.
//! Both are pure, so the tray is tested without a desktop.

use anycode_engine::{Project, Task, TaskStatus};

/// What the tray shows, built by [`tray_model`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayModel {
    /// How many sandboxes run (tasks with status `running`).
    pub running: usize,
    /// The tray icon's title (shown next to the icon on macOS and Linux): the count
    /// of running sandboxes, empty when none runs.
    pub title: String,
    /// The tray icon's tooltip, e.g. `AnyCode: 2 sandboxes running`.
    pub tooltip: String,
    /// One entry per running task, in the engine's order (oldest first).
    pub entries: Vec<TrayEntry>,
}

/// One running task in the tray menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayEntry {
    /// The task's id (12 hex digits).
    pub task_id: String,
    /// `project · title · status`, e.g. `shop · Fix login · running`; the title is
    /// cut to [`MAX_LABEL_TITLE`] characters.
    pub label: String,
}

/// Longest task title shown in the menu, in characters (menus do not wrap).
pub const MAX_LABEL_TITLE: usize = 48;

/// Which tasks belong in the tray: running ones, and ones still being created (a
/// sandbox that is starting is already using the machine).
fn in_tray(t: &Task) -> bool {
    matches!(t.status, TaskStatus::Running | TaskStatus::Creating)
}

/// The tray for `tasks`, naming each task's project from `projects` (a task whose
/// project is unknown shows `?`).
pub fn tray_model(tasks: &[Task], projects: &[Project]) -> TrayModel {
    let entries: Vec<TrayEntry> = tasks
        .iter()
        .filter(|t| in_tray(t))
        .map(|t| {
            let project = projects.iter().find(|p| p.id == t.project_id).map_or("?", |p| p.name.as_str());
            let mut title: String = t.title.chars().take(MAX_LABEL_TITLE).collect();
            if t.title.chars().count() > MAX_LABEL_TITLE {
                title.push('…');
            }
            TrayEntry { task_id: t.id.clone(), label: format!("{project} · {title} · {}", t.status.as_str()) }
        })
        .collect();
    let running = tasks.iter().filter(|t| t.status == TaskStatus::Running).count();
    let tooltip = match running {
        0 => "AnyCode: no sandbox running".to_string(),
        1 => "AnyCode: 1 sandbox running".to_string(),
        n => format!("AnyCode: {n} sandboxes running"),
    };
    let title = if running == 0 { String::new() } else { running.to_string() };
    TrayModel { running, title, tooltip, entries }
}

/// What a click on a tray menu item asks for. Item ids are [`MenuAction::id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    /// Show the window on this task.
    Open(String),
    /// Stop this task's sandbox.
    Stop(String),
    /// Show the window.
    Show,
    /// Open the UI in the default browser.
    OpenInBrowser,
    /// Toggle serving on the local network.
    ToggleLan,
    /// Quit the app (asks about running sandboxes first).
    Quit,
}

impl MenuAction {
    /// The menu item id for this action: `open:<task>`, `stop:<task>`, `show`,
    /// `browser`, `lan`, `quit`.
    pub fn id(&self) -> String {
        match self {
            MenuAction::Open(t) => format!("open:{t}"),
            MenuAction::Stop(t) => format!("stop:{t}"),
            MenuAction::Show => "show".into(),
            MenuAction::OpenInBrowser => "browser".into(),
            MenuAction::ToggleLan => "lan".into(),
            MenuAction::Quit => "quit".into(),
        }
    }

    /// Reads a menu item id back; `None` for ids this menu never makes (e.g. the
    /// disabled task label items).
    pub fn parse(id: &str) -> Option<MenuAction> {
        let task = |t: &str| (!t.is_empty()).then(|| t.to_string());
        Some(match id {
            "show" => MenuAction::Show,
            "browser" => MenuAction::OpenInBrowser,
            "lan" => MenuAction::ToggleLan,
            "quit" => MenuAction::Quit,
            _ => {
                if let Some(t) = id.strip_prefix("open:") {
                    MenuAction::Open(task(t)?)
                } else if let Some(t) = id.strip_prefix("stop:") {
                    MenuAction::Stop(task(t)?)
                } else {
                    return None;
                }
            }
        })
    }
}

/// A task whose agent exited since the last look, for a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The task to open when the notification is clicked.
    pub task_id: String,
    /// e.g. `Agent exited`.
    pub title: String,
    /// e.g. `shop · Fix login: exit code 0`.
    pub body: String,
}

/// The notifications due between two looks at the task list: one per task that was
/// `running` in `before` (id → status) and is `exited` in `now`. Tasks stopped by
/// the user or unseen before give none.
pub fn exit_notices(before: &std::collections::HashMap<String, TaskStatus>, now: &[Task], projects: &[Project]) -> Vec<Notice> {
    now.iter()
        .filter(|t| t.status == TaskStatus::Exited && before.get(&t.id) == Some(&TaskStatus::Running))
        .map(|t| {
            let project = projects.iter().find(|p| p.id == t.project_id).map_or("?", |p| p.name.as_str());
            let how = match t.exit_code {
                Some(c) => format!("exit code {c}"),
                None => "exited".to_string(),
            };
            Notice { task_id: t.id.clone(), title: "Agent exited".into(), body: format!("{project} · {}: {how}", t.title) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn project(id: &str, name: &str) -> Project {
        Project { id: id.into(), name: name.into(), path: format!("/src/{name}"), default_branch: "main".into() }
    }

    fn task(id: &str, project: &str, title: &str, status: TaskStatus) -> Task {
        serde_json::from_value(serde_json::json!({
            "id": id, "project_id": project, "title": title, "agent": "shell",
            "branch": format!("anycode/{id}"), "base": "main", "base_sha": "0".repeat(40),
            "prompt": null, "status": status.as_str(), "exit_code": null, "error": null,
            "container_id": null, "worktree": format!("/w/{id}"), "agent_terminal_id": format!("term-{id}"), "record": false,
            "created_at": "2025-01-01T00:00:00Z", "terminals": []
        }))
        .unwrap()
    }

    #[test]
    fn lists_running_and_creating_tasks_with_project_title_and_status() {
        let projects = [project("p1", "shop"), project("p2", "blog")];
        let tasks = [
            task("a", "p1", "Fix login", TaskStatus::Running),
            task("b", "p2", "Old work", TaskStatus::Stopped),
            task("c", "p2", "New post", TaskStatus::Creating),
            task("d", "p1", "Done", TaskStatus::Exited),
            task("e", "gone", "Orphan", TaskStatus::Running),
        ];
        let m = tray_model(&tasks, &projects);
        assert_eq!(m.running, 2);
        assert_eq!(m.title, "2");
        assert_eq!(m.tooltip, "AnyCode: 2 sandboxes running");
        let labels: Vec<(&str, &str)> = m.entries.iter().map(|e| (e.task_id.as_str(), e.label.as_str())).collect();
        assert_eq!(
            labels,
            [("a", "shop · Fix login · running"), ("c", "blog · New post · creating"), ("e", "? · Orphan · running")]
        );
    }

    #[test]
    fn empty_and_single_counts() {
        let m = tray_model(&[], &[]);
        assert_eq!((m.running, m.title.as_str(), m.tooltip.as_str()), (0, "", "AnyCode: no sandbox running"));
        assert!(m.entries.is_empty());
        let m = tray_model(&[task("a", "p", "x", TaskStatus::Running)], &[project("p", "shop")]);
        assert_eq!((m.running, m.title.as_str(), m.tooltip.as_str()), (1, "1", "AnyCode: 1 sandbox running"));
    }

    #[test]
    fn long_titles_are_cut_on_characters() {
        let long = "é".repeat(MAX_LABEL_TITLE + 10);
        let m = tray_model(&[task("a", "p", &long, TaskStatus::Running)], &[project("p", "shop")]);
        assert_eq!(m.entries[0].label, format!("shop · {}… · running", "é".repeat(MAX_LABEL_TITLE)));
    }

    #[test]
    fn menu_ids_round_trip_and_junk_is_rejected() {
        for a in [
            MenuAction::Open("abc".into()),
            MenuAction::Stop("abc".into()),
            MenuAction::Show,
            MenuAction::OpenInBrowser,
            MenuAction::ToggleLan,
            MenuAction::Quit,
        ] {
            assert_eq!(MenuAction::parse(&a.id()), Some(a));
        }
        for junk in ["", "open:", "stop:", "label:abc", "QUIT", "openabc"] {
            assert_eq!(MenuAction::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn notices_only_for_running_to_exited() {
        let projects = [project("p", "shop")];
        let before: HashMap<String, TaskStatus> = [
            ("a".to_string(), TaskStatus::Running),
            ("b".to_string(), TaskStatus::Running),
            ("c".to_string(), TaskStatus::Exited),
        ]
        .into();
        let mut a = task("a", "p", "Fix login", TaskStatus::Exited);
        a.exit_code = Some(3);
        let now = [
            a,
            task("b", "p", "Stopped by user", TaskStatus::Stopped),
            task("c", "p", "Already exited", TaskStatus::Exited),
            task("d", "p", "Never seen running", TaskStatus::Exited),
        ];
        let n = exit_notices(&before, &now, &projects);
        assert_eq!(
            n,
            [Notice { task_id: "a".into(), title: "Agent exited".into(), body: "shop · Fix login: exit code 3".into() }]
        );
    }
}
