//! The desktop app's Tauri commands, run on Tauri's mock runtime with a real engine
//! on a temporary data dir (no window system needed).

use anycode_desktop::{builder, Shell, MAIN_WINDOW};
use anycode_engine::{Config, Engine};
use anycode_server::AccessToken;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{Manager, WebviewUrl, WebviewWindow, WebviewWindowBuilder};
use tokio_util::sync::CancellationToken;

const BASE: &str = "http://127.0.0.1:7878";

fn app(dir: &tempfile::TempDir) -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let engine = tauri::async_runtime::block_on(Engine::open(Config::with_data_dir(dir.path()))).unwrap();
    let shell = Shell::new(engine, BASE.into(), AccessToken::new("secret-token"), CancellationToken::new(), None, None);
    let app = builder(mock_builder()).manage(shell).build(mock_context(noop_assets())).unwrap();
    let start: tauri::Url = format!("{BASE}/").parse().unwrap();
    let window = WebviewWindowBuilder::new(&app, MAIN_WINDOW, WebviewUrl::External(start)).build().unwrap();
    (app, window)
}

fn invoke(window: &WebviewWindow<MockRuntime>, cmd: &str, args: serde_json::Value) -> Result<serde_json::Value, serde_json::Value> {
    get_ipc_response(
        window,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|r| r.deserialize::<serde_json::Value>().unwrap())
}

#[test]
fn server_url_is_the_base_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, window) = app(&dir);
    assert_eq!(invoke(&window, "server_url", serde_json::json!({})), Ok(serde_json::json!(BASE)));
}

#[test]
fn open_task_navigates_the_window_to_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let (app, window) = app(&dir);
    let got = invoke(&window, "open_task", serde_json::json!({ "id": "0123456789ab" }));
    assert_eq!(got, Ok(serde_json::json!(format!("{BASE}/#/tasks/0123456789ab"))));
    let w = app.get_webview_window(MAIN_WINDOW).unwrap();
    assert_eq!(w.url().unwrap().as_str(), format!("{BASE}/#/tasks/0123456789ab"));
}

#[test]
fn open_task_rejects_what_is_not_a_task_id_and_stays_put() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, window) = app(&dir);
    let before = window.url().unwrap();
    for bad in ["", "../api/tasks", "a b", "x?token=1", "#/", &"a".repeat(65)] {
        let got = invoke(&window, "open_task", serde_json::json!({ "id": bad }));
        let err = got.expect_err(bad);
        assert!(err.as_str().unwrap_or_default().contains("not a task id"), "{bad}: {err}");
        assert_eq!(window.url().unwrap(), before, "{bad}");
    }
    // A missing argument is an error too, not a panic.
    assert!(invoke(&window, "open_task", serde_json::json!({})).is_err());
}

#[test]
fn login_links_are_one_time_codes_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let engine = tauri::async_runtime::block_on(Engine::open(Config::with_data_dir(dir.path()))).unwrap();
    let codes = anycode_server::LoginCodes::new(std::time::Duration::from_secs(120));
    let shell = Shell::new(engine, BASE.into(), AccessToken::new("secret-token"), CancellationToken::new(), None, None).with_login(codes.clone());
    let (a, b) = (shell.login_url(), shell.login_url());
    assert!(a.starts_with(&format!("{BASE}/login?code=")) && !a.contains("secret-token"), "{a}");
    assert_ne!(a, b, "a new code each time");
    let code = a.rsplit('=').next().unwrap();
    assert_eq!(codes.redeem(code), Ok(()));
    assert!(codes.redeem(code).is_err());
}
