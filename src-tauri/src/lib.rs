//! AnyCode's desktop app: a Tauri 2 shell around the same engine and server that
//! `anycode serve` runs, in the same process (no second server, no Node.js).
//!
//! - [`run`] opens the engine, binds the server on 127.0.0.1 (port 7878, or a free
//!   port when it is taken; `ANYCODE_PORT` forces one, 0 = any), serves it on the
//!   app's tokio runtime and opens the window on a one-time login link
//!   (`/login?code=…`), which sets the session cookie: the token itself is never in
//!   a URL.
//! - Closing the window hides it; the app stays in the tray. Quit asks whether to
//!   stop the running sandboxes or leave them running (the engine reconciles them on
//!   the next start), then stops the server cleanly. SIGTERM/Ctrl-C quit the same
//!   way, leaving sandboxes running.
//! - [`tray`]: the tray's content as a pure function of the task list; the app
//!   follows the engine's task events and rebuilds the menu when the content
//!   changed, and notifies when an agent exits (clicking opens that task).
//! - Startup is `anycode serve`'s ([`anycode_server::launch`]): settings, engine,
//!   token, listener and banner.
//! - One instance per user (tauri-plugin-single-instance): launching it again shows
//!   the window; `anycode-desktop --open-task ID` shows that task.
//! - Commands for the webview: [`commands::server_url`] and [`commands::open_task`].
//! - [`memory`]: what bounds its memory (WebKit's cache model, malloc arenas).
//! - [`gl`]: whether WebKit uses GL (not on software-only GL such as llvmpipe).

pub mod gl;
pub mod memory;
pub mod tray;

use anycode_engine::{ApprovalDecision, Engine, TaskStatus};
use anycode_server::launch::{self, Listen};
use anycode_server::{AccessToken, LanControl, LoginCodes};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};
use tokio_util::sync::CancellationToken;
use tray::{notices, tray_model, MenuAction, Notice, TrayModel};

/// How often the tray looks at whether LAN mode was switched in the web UI.
pub const POLL: Duration = Duration::from_secs(2);
/// How long the tray gathers a burst of task events before reading the tasks.
pub const SETTLE: Duration = Duration::from_millis(150);
/// The label of the app's one window.
pub const MAIN_WINDOW: &str = "main";
const TRAY_ID: &str = "main";

/// The app's shared state (Tauri-managed).
pub struct Shell {
    /// The engine, shared with the server.
    pub engine: Engine,
    /// The server's base URL, e.g. `http://127.0.0.1:7878` (no trailing slash).
    pub base_url: String,
    /// The access token the server requires.
    pub token: AccessToken,
    /// Cancelling it stops the server (graceful: open WebSockets are closed).
    pub shutdown: CancellationToken,
    /// The server task, awaited on exit.
    server: Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
    /// The server's LAN mode ("Serve on local network"); `None` when this process
    /// does not run the server (the mock-runtime tests).
    lan: Option<LanControl>,
    /// Set once Quit was chosen, so a second Quit does not ask again.
    quitting: AtomicBool,
    /// The server's one-time login codes; `None` when this process does not run
    /// the server.
    login: Option<LoginCodes>,
}

impl Shell {
    /// State for a server already running at `base_url` (`server` is its task, if
    /// this process runs it).
    pub fn new(
        engine: Engine,
        base_url: String,
        token: AccessToken,
        shutdown: CancellationToken,
        server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
        lan: Option<LanControl>,
    ) -> Shell {
        Shell {
            engine,
            base_url,
            token,
            shutdown,
            server: Mutex::new(server),
            lan,
            quitting: AtomicBool::new(false),
            login: None,
        }
    }

    /// The same, with the server's login codes (for [`Shell::login_url`]).
    pub fn with_login(mut self, login: LoginCodes) -> Shell {
        self.login = Some(login);
        self
    }

    /// Whether the server serves on the local network now (the web UI's settings can
    /// change it too, so this asks the server rather than remembering the last click).
    pub fn lan_enabled(&self) -> bool {
        self.lan.as_ref().is_some_and(|l| l.status().enabled)
    }

    /// A URL that logs a browser in once: `<base>/login?code=<one-time code>` (the
    /// base alone when this process does not run the server).
    pub fn login_url(&self) -> String {
        match &self.login {
            Some(l) => l.url(&self.base_url),
            None => self.base_url.clone(),
        }
    }

    /// The UI's URL of one task: `<base>/#/tasks/<id>`. Errors when `id` is not a task
    /// id (1 to 64 ASCII letters, digits, `-` or `_`), so nothing else lands in the URL.
    pub fn task_url(&self, id: &str) -> Result<String, String> {
        let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!("not a task id: {id:?}"));
        }
        Ok(format!("{}/#/tasks/{id}", self.base_url))
    }
}

/// The Tauri commands (in a module of their own: `#[tauri::command]` items at a
/// crate's root clash with the macros it generates).
pub mod commands {
    use super::{show_task, Shell};
    use tauri::{AppHandle, Runtime, State};

    /// The server's base URL, e.g. `http://127.0.0.1:7878`.
    #[tauri::command]
    pub fn server_url(shell: State<'_, Shell>) -> String {
        shell.base_url.clone()
    }

    /// Shows the window on task `id` and returns the URL it went to. Errors: not a
    /// task id, or no window.
    #[tauri::command]
    pub fn open_task<R: Runtime>(app: AppHandle<R>, id: String) -> Result<String, String> {
        show_task(&app, &id)
    }
}

/// Shows and focuses the main window, on task `id` when given.
fn show_task<R: Runtime>(app: &AppHandle<R>, id: &str) -> Result<String, String> {
    let shell = app.state::<Shell>();
    let url = shell.task_url(id)?;
    let window = app.get_webview_window(MAIN_WINDOW).ok_or("the window is gone")?;
    let parsed: tauri::Url = url.parse().map_err(|e| format!("{url}: {e}"))?;
    window.navigate(parsed).map_err(|e| e.to_string())?;
    show_window(app);
    Ok(url)
}

fn show_window<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Registers the commands, the state handling and the plugins on `builder`: what
/// both the real app and the tests build on.
pub fn builder<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![commands::server_url, commands::open_task])
}

/// Runs the desktop app until Quit. Errors: the data dir cannot be opened, the
/// token cannot be read, no port can be bound, or the window system failed.
pub fn run() -> anyhow::Result<()> {
    // Before any thread starts.
    memory::limit_malloc_arenas();
    launch::init_tracing("anycode_desktop=info,anycode_engine=info,anycode_server=info,warn");
    // Also before any thread starts, and before GTK: it sets WebKit's environment.
    let gl = gl::prepare();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    // Tauri's own tasks and ours share this runtime.
    tauri::async_runtime::set(rt.handle().clone());

    let first_task = open_task_arg(std::env::args().skip(1));
    let app = builder(tauri::Builder::default())
        // First, so a second launch exits before it does anything else.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| match open_task_arg(argv.into_iter().skip(1)) {
            Some(id) => {
                if let Err(e) = show_task(app, &id) {
                    tracing::warn!(task = id, error = %e, "opening the task failed");
                }
            }
            None => show_window(app),
        }))
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| {
            // Only now, after the single-instance plugin let this launch through, is
            // the data dir opened and the server (which reconciles sandboxes) started.
            app.manage(tauri::async_runtime::block_on(start_server())?);
            let handle = app.handle().clone();
            let shell = app.state::<Shell>();
            let mut url = shell.login_url();
            if let Some(id) = &first_task {
                match shell.task_url(id) {
                    // The login redirect keeps the fragment, so the UI opens on the task.
                    Ok(_) => url.push_str(&format!("#/tasks/{id}")),
                    Err(e) => tracing::warn!(error = %e, "ignoring --open-task"),
                }
            }
            let url: tauri::Url = url.parse()?;
            let mut window = WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::External(url))
                .title("AnyCode")
                .inner_size(1280.0, 800.0)
                .min_inner_size(640.0, 400.0);
            if let Ok(json) = std::env::var(memory::STORAGE_PRESET_ENV) {
                match memory::storage_preset_script(&json) {
                    Ok(script) => window = window.initialization_script(script),
                    Err(e) => tracing::warn!(error = %e, "ignoring the localStorage preset"),
                }
            }
            let window = window.build()?;
            gl::apply(&window, gl);
            memory::tune_webview(&window, memory::CacheModel::from_env());
            build_tray(&handle)?;
            tauri::async_runtime::spawn(watch_tasks(handle.clone()));
            tauri::async_runtime::spawn(async move {
                anycode_server::shutdown_signal().await;
                tracing::info!("signal received: quitting, sandboxes keep running");
                handle.exit(0);
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps the app (and its sandboxes) in the tray.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .build(tauri::generate_context!())
        .context("starting the window system")?;

    app.run(move |app, event| match event {
        // Only an explicit exit (Quit, a signal) ends the app; the last window going
        // away does not.
        tauri::RunEvent::ExitRequested { api, code: None, .. } => api.prevent_exit(),
        tauri::RunEvent::Exit => {
            let Some(shell) = app.try_state::<Shell>() else { return };
            shell.shutdown.cancel();
            let server = shell.server.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(server) = server {
                // Give open requests and WebSockets a moment to close.
                match rt.block_on(async move { tokio::time::timeout(Duration::from_secs(5), server).await }) {
                    Ok(Ok(Ok(()))) => tracing::info!("server stopped"),
                    Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
                    Err(_) => tracing::warn!("server did not stop within 5 s"),
                }
            }
        }
        _ => {}
    });
    Ok(())
}

/// Starts AnyCode the way `anycode serve` does ([`launch`]) and spawns the server
/// on the current runtime.
async fn start_server() -> anyhow::Result<Shell> {
    // The settings file too: a bad one stops the app with its message (shown by main).
    let config = launch::load_config()?;
    let listen = match std::env::var("ANYCODE_PORT") {
        Ok(p) => Listen::Exact([127, 0, 0, 1].into(), p.parse().with_context(|| format!("ANYCODE_PORT={p:?} is not a port number"))?),
        Err(_) => Listen::LoopbackPreferDefault,
    };
    let launched = launch::launch(config, listen, vec![]).await?;
    // Scripts (and the CI test) read this line to find the server.
    println!("{}", launched.banner());
    let shutdown = CancellationToken::new();
    let lan = launched.server.lan();
    let login = launched.server.login_codes();
    let server = tokio::spawn(launched.server.run(shutdown.clone().cancelled_owned()));
    tracing::info!(base_url = %launched.base_url, "server started");
    Ok(Shell::new(launched.engine, launched.base_url, launched.token, shutdown, Some(server), Some(lan)).with_login(login))
}

/// The task id of `--open-task ID` (or `--open-task=ID`) among the arguments.
pub fn open_task_arg(args: impl IntoIterator<Item = String>) -> Option<String> {
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--open-task" {
            return args.next();
        }
        if let Some(id) = a.strip_prefix("--open-task=") {
            return Some(id.to_string());
        }
    }
    None
}

// ----- tray -----

fn build_tray<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let model = tray_model(&[], &[]);
    let icon = tauri::image::Image::from_bytes(include_bytes!("../icons/tray.png"))?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon)
        .tooltip(&model.tooltip)
        .menu(&tray_menu(app, &model, false)?)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    Ok(())
}

/// The tray menu for `model`: a header, one submenu (Open, Stop) per running task,
/// then the app's items.
fn tray_menu<R: Runtime>(app: &AppHandle<R>, model: &TrayModel, lan: bool) -> tauri::Result<Menu<R>> {
    let menu = Menu::new(app)?;
    let header = match model.running {
        0 => "No sandbox running".to_string(),
        1 => "1 sandbox running".to_string(),
        n => format!("{n} sandboxes running"),
    };
    menu.append(&MenuItem::with_id(app, "header", header, false, None::<&str>)?)?;
    for e in &model.entries {
        let open = MenuItem::with_id(app, MenuAction::Open(e.task_id.clone()).id(), "Open", true, None::<&str>)?;
        let stop = MenuItem::with_id(app, MenuAction::Stop(e.task_id.clone()).id(), "Stop", true, None::<&str>)?;
        let allow = MenuItem::with_id(app, MenuAction::Allow(e.task_id.clone()).id(), "Allow", true, None::<&str>)?;
        let deny = MenuItem::with_id(app, MenuAction::Deny(e.task_id.clone()).id(), "Deny", true, None::<&str>)?;
        let items: Vec<&dyn IsMenuItem<R>> = if e.needs_approval { vec![&allow, &deny, &open, &stop] } else { vec![&open, &stop] };
        menu.append(&Submenu::with_items(app, &e.label, true, &items)?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, MenuAction::Show.id(), "Show AnyCode", true, None::<&str>)?)?;
    menu.append(&MenuItem::with_id(app, MenuAction::OpenInBrowser.id(), "Open in browser", true, None::<&str>)?)?;
    menu.append(&CheckMenuItem::with_id(app, MenuAction::ToggleLan.id(), "Serve on local network", true, lan, None::<&str>)?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, MenuAction::Quit.id(), "Quit AnyCode", true, None::<&str>)?)?;
    Ok(menu)
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    let Some(action) = MenuAction::parse(id) else { return };
    match action {
        MenuAction::Open(task) => {
            if let Err(e) = show_task(app, &task) {
                tracing::warn!(task, error = %e, "opening the task failed");
            }
        }
        MenuAction::Allow(task) => decide(app, task, true),
        MenuAction::Deny(task) => decide(app, task, false),
        MenuAction::Stop(task) => {
            let engine = app.state::<Shell>().engine.clone();
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = engine.stop_task(&task).await {
                    error_dialog(&app, &format!("Stopping the task failed: {e}"));
                }
                refresh_tray(&app).await;
            });
        }
        MenuAction::Show => show_window(app),
        MenuAction::OpenInBrowser => {
            let url = app.state::<Shell>().login_url();
            if let Err(e) = webbrowser::open(&url) {
                error_dialog(app, &format!("Opening the browser failed: {e}"));
            }
        }
        MenuAction::ToggleLan => {
            let shell = app.state::<Shell>();
            let lan = shell.lan.clone();
            let want = !shell.lan_enabled();
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                match set_lan_serving(lan, want).await {
                    Ok(Some(url)) => info_dialog(&app, &format!("AnyCode is now reachable on the local network at {url}.\n\nPair a phone from Settings in the AnyCode window: it shows a QR code.")),
                    Ok(None) => {}
                    Err(e) => error_dialog(&app, &e),
                }
                // The check mark toggles itself on click: put it back in line with the state.
                refresh_tray(&app).await;
            });
        }
        MenuAction::Quit => quit(app),
    }
}

/// Answers the permission request `task`'s agent waits on (from the tray menu or a
/// notification's Allow/Deny); a failure (no request pending any more) is shown.
fn decide<R: Runtime>(app: &AppHandle<R>, task: String, allow: bool) {
    let engine = app.state::<Shell>().engine.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let decision = if allow { ApprovalDecision::Allow } else { ApprovalDecision::Deny { message: Some("Denied from the AnyCode tray".into()) } };
        let result = engine.decide_approval(&task, decision).await.map(|_| ()).map_err(|e| e.to_string());
        if let Err(e) = result {
            error_dialog(&app, &format!("Answering the permission request failed: {e}"));
        }
        refresh_tray(&app).await;
    });
}

/// Turns serving on the local network on or off; on success when turned on, the
/// first LAN URL (for the notice). Errors (no local-network address, a port that
/// cannot be listened on) are worded for a dialog; nothing changed then.
async fn set_lan_serving(lan: Option<LanControl>, on: bool) -> Result<Option<String>, String> {
    let Some(lan) = lan else { return Err("This window does not run the server.".into()) };
    if on {
        let status = lan.enable().await.map_err(|e| format!("Serving on the local network failed: {e}"))?;
        Ok(status.urls.into_iter().next())
    } else {
        lan.disable().await;
        Ok(None)
    }
}

fn error_dialog<R: Runtime>(app: &AppHandle<R>, message: &str) {
    message_dialog(app, message, tauri_plugin_dialog::MessageDialogKind::Error);
}

fn info_dialog<R: Runtime>(app: &AppHandle<R>, message: &str) {
    message_dialog(app, message, tauri_plugin_dialog::MessageDialogKind::Info);
}

fn message_dialog<R: Runtime>(app: &AppHandle<R>, message: &str, kind: tauri_plugin_dialog::MessageDialogKind) {
    use tauri_plugin_dialog::DialogExt;
    app.dialog().message(message).title("AnyCode").kind(kind).show(|_| {});
}

/// Quit: asks whether to stop the running sandboxes (if any), then exits; the
/// server is stopped on the way out (see [`run`]).
fn quit<R: Runtime>(app: &AppHandle<R>) {
    use tauri_plugin_dialog::{DialogExt, MessageDialogButtons};
    let shell = app.state::<Shell>();
    if shell.quitting.swap(true, Ordering::SeqCst) {
        return;
    }
    let engine = shell.engine.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let running: Vec<String> = match engine.tasks(None).await {
            Ok(ts) => ts.into_iter().filter(|t| t.status.is_live() || t.status == TaskStatus::Paused).map(|t| t.id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "listing tasks before quitting failed");
                vec![]
            }
        };
        if running.is_empty() {
            app.exit(0);
            return;
        }
        let n = running.len();
        let what = if n == 1 { "1 sandbox is".to_string() } else { format!("{n} sandboxes are") };
        let app2 = app.clone();
        app.dialog()
            .message(format!(
                "{what} running. Stop them before quitting?\n\nSandboxes left running keep working; AnyCode finds them again on its next start."
            ))
            .title("Quit AnyCode")
            .buttons(MessageDialogButtons::YesNoCancelCustom(STOP_AND_QUIT.into(), LEAVE_AND_QUIT.into(), "Cancel".into()))
            .show_with_result(move |result| {
                let choice = quit_choice(&result);
                tracing::info!(?choice, "quit");
                tauri::async_runtime::spawn(async move {
                    match choice {
                        QuitChoice::Cancel => {
                            app2.state::<Shell>().quitting.store(false, Ordering::SeqCst);
                            return;
                        }
                        QuitChoice::StopSandboxes => {
                            for id in running {
                                if let Err(e) = engine.stop_task(&id).await {
                                    tracing::warn!(task = id, error = %e, "stopping a sandbox on quit failed");
                                }
                            }
                        }
                        QuitChoice::LeaveRunning => {}
                    }
                    app2.exit(0);
                });
            });
    });
}

const STOP_AND_QUIT: &str = "Stop them and quit";
const LEAVE_AND_QUIT: &str = "Leave them running and quit";

/// What the user chose in the Quit dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitChoice {
    /// Stop the running sandboxes, then quit.
    StopSandboxes,
    /// Quit and leave the sandboxes running.
    LeaveRunning,
    /// Do not quit.
    Cancel,
}

/// Reads the Quit dialog's answer (platforms report custom buttons either as
/// Yes/No or by their label); closing the dialog cancels.
pub fn quit_choice(result: &tauri_plugin_dialog::MessageDialogResult) -> QuitChoice {
    use tauri_plugin_dialog::MessageDialogResult as R;
    match result {
        R::Yes | R::Ok => QuitChoice::StopSandboxes,
        R::No => QuitChoice::LeaveRunning,
        R::Custom(label) if label == STOP_AND_QUIT => QuitChoice::StopSandboxes,
        R::Custom(label) if label == LEAVE_AND_QUIT => QuitChoice::LeaveRunning,
        R::Custom(_) | R::Cancel => QuitChoice::Cancel,
    }
}

/// Follows the engine's task events ([`Engine::events`]): after each burst of
/// changes (gathered for [`SETTLE`]) it reads the tasks once, updates the tray when
/// its content changed and notifies about agents that exited or came to want the
/// user. LAN mode, switched in the web UI, is looked at every [`POLL`] (a flag
/// read, no engine call).
async fn watch_tasks<R: Runtime>(app: AppHandle<R>) {
    let engine = app.state::<Shell>().engine.clone();
    // Subscribed before the first read, so no change falls between the two.
    let mut events = engine.events();
    let mut seen: Option<HashMap<String, TaskStatus>> = None;
    let mut last: Option<(TrayModel, bool)> = None;
    let mut lan_tick = tokio::time::interval(POLL);
    let mut changed = true;
    loop {
        if changed {
            match tokio::try_join!(engine.tasks(None), engine.projects()) {
                Ok((tasks, projects)) => {
                    if let Some(before) = &seen {
                        for n in notices(before, &tasks, &projects) {
                            notify(&app, n);
                        }
                    }
                    seen = Some(tasks.iter().map(|t| (t.id.clone(), t.status)).collect());
                    let model = tray_model(&tasks, &projects);
                    let lan = app.state::<Shell>().lan_enabled();
                    if last.as_ref() != Some(&(model.clone(), lan)) {
                        apply_tray(&app, &model, lan);
                        last = Some((model, lan));
                    }
                }
                Err(e) => tracing::debug!(error = %e, "listing tasks for the tray failed"),
            }
        }
        changed = tokio::select! {
            ev = events.recv() => match ev {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // A burst (a task starting sends several) is read once.
                    tokio::time::sleep(SETTLE).await;
                    while events.try_recv().is_ok() {}
                    true
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = lan_tick.tick() => {
                let lan = app.state::<Shell>().lan_enabled();
                if let Some((model, was)) = last.take() {
                    if was != lan {
                        apply_tray(&app, &model, lan);
                    }
                    last = Some((model, lan));
                }
                false
            }
        };
    }
}

async fn refresh_tray<R: Runtime>(app: &AppHandle<R>) {
    let engine = app.state::<Shell>().engine.clone();
    if let Ok((tasks, projects)) = tokio::try_join!(engine.tasks(None), engine.projects()) {
        let lan = app.state::<Shell>().lan_enabled();
        apply_tray(app, &tray_model(&tasks, &projects), lan);
    }
}

fn apply_tray<R: Runtime>(app: &AppHandle<R>, model: &TrayModel, lan: bool) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else { return };
    let result = tray_menu(app, model, lan).and_then(|menu| {
        tray.set_menu(Some(menu))?;
        tray.set_tooltip(Some(&model.tooltip))?;
        tray.set_title(Some(&model.title))
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "updating the tray failed");
    }
}

/// Shows `n` natively; clicking it opens the task (on Linux through the
/// notification server's default action; elsewhere the plugin shows it, and a click
/// brings the app forward).
fn notify<R: Runtime>(app: &AppHandle<R>, n: Notice) {
    tracing::info!(task = n.task_id, body = n.body, "notifying");
    #[cfg(target_os = "linux")]
    {
        let app = app.clone();
        // wait_for_action blocks until the notification is clicked or closed.
        std::thread::spawn(move || {
            let mut note = notify_rust::Notification::new();
            note.appname("AnyCode").summary(&n.title).body(&n.body).action("default", "Open");
            if n.approval {
                note.action("allow", "Allow").action("deny", "Deny");
            }
            match note.show() {
                Ok(handle) => handle.wait_for_action(|action| match action {
                    "default" => {
                        let _ = show_task(&app, &n.task_id);
                    }
                    "allow" => decide(&app, n.task_id.clone(), true),
                    "deny" => decide(&app, n.task_id.clone(), false),
                    _ => {}
                }),
                Err(e) => tracing::warn!(error = %e, "no notification server"),
            }
        });
    }
    #[cfg(not(target_os = "linux"))]
    {
        use tauri_plugin_notification::NotificationExt;
        if let Err(e) = app.notification().builder().title(&n.title).body(&n.body).show() {
            tracing::warn!(error = %e, "showing a notification failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tauri_plugin_dialog::MessageDialogResult as R;

    #[test]
    fn quit_dialog_answers() {
        assert_eq!(quit_choice(&R::Yes), QuitChoice::StopSandboxes);
        assert_eq!(quit_choice(&R::Custom(STOP_AND_QUIT.into())), QuitChoice::StopSandboxes);
        assert_eq!(quit_choice(&R::No), QuitChoice::LeaveRunning);
        assert_eq!(quit_choice(&R::Custom(LEAVE_AND_QUIT.into())), QuitChoice::LeaveRunning);
        assert_eq!(quit_choice(&R::Cancel), QuitChoice::Cancel);
        assert_eq!(quit_choice(&R::Custom("Cancel".into())), QuitChoice::Cancel);
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn open_task_argument_forms() {
        assert_eq!(open_task_arg(args(&["--open-task", "abc"])), Some("abc".into()));
        assert_eq!(open_task_arg(args(&["-v", "--open-task=abc"])), Some("abc".into()));
        assert_eq!(open_task_arg(args(&["--open-task"])), None);
        assert_eq!(open_task_arg(args(&["abc"])), None);
        assert_eq!(open_task_arg(args(&[])), None);
    }
}
