//! The tray's content as plain data: [`tray_model`] turns the task list into what
//! the tray shows, and [`MenuAction::parse`] reads a clicked menu item's id back.
//! Both are pure, so the tray is tested without a desktop.

use anycode_engine::{Project, Task, TaskStatus};

/// What the tray shows, built by [`tray_model`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayModel {
    /// How many sandboxes run (tasks whose container runs: `running` and every agent
    /// state, see `TaskStatus::is_live`).
    pub running: usize,
    /// How many tasks want the user (`needs_approval`, `waiting_input`, `done`,
    /// `failed`).
    pub waiting: usize,
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
    /// Whether the agent waits for a permission decision (the menu then offers
    /// Allow and Deny).
    pub needs_approval: bool,
}

/// Longest task title shown in the menu, in characters (menus do not wrap).
pub const MAX_LABEL_TITLE: usize = 48;

/// Which tasks belong in the tray: running ones (in any agent state), ones being
/// created or waiting in the queue, and paused ones (they hold memory).
fn in_tray(t: &Task) -> bool {
    t.status.is_live() || matches!(t.status, TaskStatus::Creating | TaskStatus::Queued | TaskStatus::Paused)
}

/// A status in words for the menu, e.g. `needs approval`.
pub fn status_words(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::NeedsApproval => "needs approval",
        TaskStatus::WaitingInput => "waiting for input",
        other => other.as_str(),
    }
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
            TrayEntry {
                task_id: t.id.clone(),
                label: format!("{project} · {title} · {}", status_words(t.status)),
                needs_approval: t.status == TaskStatus::NeedsApproval,
            }
        })
        .collect();
    let running = tasks.iter().filter(|t| t.status.is_live()).count();
    let waiting = tasks.iter().filter(|t| t.status.needs_user()).count();
    let mut tooltip = match running {
        0 => "AnyCode: no sandbox running".to_string(),
        1 => "AnyCode: 1 sandbox running".to_string(),
        n => format!("AnyCode: {n} sandboxes running"),
    };
    if waiting > 0 {
        tooltip.push_str(&format!(", {waiting} waiting for you"));
    }
    let title = match (running, waiting) {
        (0, _) => String::new(),
        (r, 0) => r.to_string(),
        (r, w) => format!("{r} ({w}!)"),
    };
    TrayModel { running, waiting, title, tooltip, entries }
}

/// What a click on a tray menu item asks for. Item ids are [`MenuAction::id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    /// Show the window on this task.
    Open(String),
    /// Stop this task's sandbox.
    Stop(String),
    /// Allow the tool call this task's agent waits on.
    Allow(String),
    /// Deny the tool call this task's agent waits on.
    Deny(String),
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
            MenuAction::Allow(t) => format!("allow:{t}"),
            MenuAction::Deny(t) => format!("deny:{t}"),
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
                } else if let Some(t) = id.strip_prefix("allow:") {
                    MenuAction::Allow(task(t)?)
                } else if let Some(t) = id.strip_prefix("deny:") {
                    MenuAction::Deny(task(t)?)
                } else {
                    return None;
                }
            }
        })
    }
}

/// Something a task's agent did since the last look, for a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The task to open when the notification is clicked.
    pub task_id: String,
    /// e.g. `Agent exited`, `Needs approval`.
    pub title: String,
    /// e.g. `shop · Fix login: exit code 0`, `shop · Fix login: Bash: npm test`.
    pub body: String,
    /// Whether the notification offers Allow and Deny (a permission request).
    pub approval: bool,
}

/// Longest tool input shown in a notification, in characters.
pub const MAX_NOTICE_INPUT: usize = 120;

/// The notifications due between two looks at the task list (`before`: id →
/// status): a task's agent that exited while it ran, and one that came to want the
/// user (`needs_approval` with the tool and its command or input, `waiting_input`,
/// `done`, `failed` with the reason). Tasks stopped by the user, unchanged or
/// unseen before give none.
pub fn notices(before: &std::collections::HashMap<String, TaskStatus>, now: &[Task], projects: &[Project]) -> Vec<Notice> {
    now.iter()
        .filter_map(|t| {
            let was = *before.get(&t.id)?;
            if was == t.status {
                return None;
            }
            let project = projects.iter().find(|p| p.id == t.project_id).map_or("?", |p| p.name.as_str());
            let what = |s: String| format!("{project} · {}: {s}", t.title);
            let message = || t.attention.as_ref().and_then(|a| a.message.clone());
            let (title, body, approval) = match t.status {
                TaskStatus::Exited if was.is_live() => {
                    let how = t.exit_code.map_or("exited".to_string(), |c| format!("exit code {c}"));
                    ("Agent exited", what(how), false)
                }
                TaskStatus::NeedsApproval => {
                    let tool = t.attention.as_ref().and_then(|a| a.tool.clone()).unwrap_or_else(|| "a tool".into());
                    let input = t.attention.as_ref().and_then(|a| a.input.as_ref()).map(input_summary).unwrap_or_default();
                    let body = if input.is_empty() { tool } else { format!("{tool}: {input}") };
                    ("Needs approval", what(body), true)
                }
                TaskStatus::WaitingInput => ("Waiting for your input", what(message().unwrap_or_else(|| "the agent asks".into())), false),
                TaskStatus::Done => ("Finished", what("the agent finished its turn".into()), false),
                TaskStatus::Failed => ("Failed", what(message().unwrap_or_else(|| "the agent's turn failed".into())), false),
                _ => return None,
            };
            Some(Notice { task_id: t.id.clone(), title: title.into(), body, approval })
        })
        .collect()
}

/// A tool input in one line: its `command`, `file_path` or `url` when it has one,
/// else the JSON; cut to [`MAX_NOTICE_INPUT`] characters.
fn input_summary(input: &serde_json::Value) -> String {
    let text = ["command", "file_path", "url", "pattern"]
        .iter()
        .find_map(|k| input.get(k).and_then(|v| v.as_str()).map(str::to_string))
        .unwrap_or_else(|| input.to_string());
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut: String = one_line.chars().take(MAX_NOTICE_INPUT).collect();
    if one_line.chars().count() > MAX_NOTICE_INPUT {
        cut.push('…');
    }
    cut
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
            MenuAction::Allow("abc".into()),
            MenuAction::Deny("abc".into()),
            MenuAction::Show,
            MenuAction::OpenInBrowser,
            MenuAction::ToggleLan,
            MenuAction::Quit,
        ] {
            assert_eq!(MenuAction::parse(&a.id()), Some(a));
        }
        for junk in ["", "open:", "stop:", "allow:", "deny:", "label:abc", "QUIT", "openabc"] {
            assert_eq!(MenuAction::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn notices_for_exits_and_for_what_wants_the_user() {
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
        let n = notices(&before, &now, &projects);
        assert_eq!(
            n,
            [Notice { task_id: "a".into(), title: "Agent exited".into(), body: "shop · Fix login: exit code 3".into(), approval: false }]
        );

        // Agent states: each change into a state that wants the user gives one notice.
        let before: HashMap<String, TaskStatus> = [
            ("a".to_string(), TaskStatus::Running),
            ("b".to_string(), TaskStatus::Running),
            ("c".to_string(), TaskStatus::NeedsApproval),
            ("d".to_string(), TaskStatus::Starting),
            ("e".to_string(), TaskStatus::Running),
        ]
        .into();
        let mut a = task("a", "p", "Fix login", TaskStatus::NeedsApproval);
        a.attention = Some(anycode_engine::Attention {
            tool: Some("Bash".into()),
            input: Some(serde_json::json!({"command": "npm   test\n--watch=false", "description": "run tests"})),
            message: None,
            since: "2026-11-21T00:00:00Z".into(),
        });
        let mut e = task("e", "p", "Docs", TaskStatus::Failed);
        e.attention = Some(anycode_engine::Attention { message: Some("rate_limit".into()), since: "x".into(), ..Default::default() });
        let now = [
            a,
            task("b", "p", "Refactor", TaskStatus::Done),
            task("c", "p", "Still asking", TaskStatus::NeedsApproval),
            task("d", "p", "Fresh", TaskStatus::WaitingInput),
            e,
        ];
        let n = notices(&before, &now, &projects);
        let got: Vec<(&str, &str, &str, bool)> = n.iter().map(|n| (n.task_id.as_str(), n.title.as_str(), n.body.as_str(), n.approval)).collect();
        assert_eq!(
            got,
            [
                ("a", "Needs approval", "shop · Fix login: Bash: npm test --watch=false", true),
                ("b", "Finished", "shop · Refactor: the agent finished its turn", false),
                ("d", "Waiting for your input", "shop · Fresh: the agent asks", false),
                ("e", "Failed", "shop · Docs: rate_limit", false),
            ]
        );
    }
}
