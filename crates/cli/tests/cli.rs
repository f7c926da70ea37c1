//! The `anycode` binary itself: `serve` survives `kill -9` with its sandboxes and
//! scrollback (issue 2, step 7), and `task` talks to a running server.

use anycode_testkit::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_anycode");

#[tokio::test(flavor = "multi_thread")]
async fn serve_survives_kill_9_with_running_sandbox_and_scrollback() {
    let fx = fixture();
    let (repo, data) = (fx.repo.clone(), fx.data.clone());

    let serve = ServeProcess::start(Path::new(BIN), &data, &["--project", repo.to_str().unwrap()]);
    let api = Api::new(&serve.base);
    let (_, projects) = api.req(reqwest::Method::GET, "/api/projects", None).await;
    assert_eq!(projects[0]["path"], repo.canonicalize().unwrap().to_str().unwrap(), "--project added the repository");
    let pid = projects[0]["id"].as_str().unwrap();
    let (st, t) = api.req(reqwest::Method::POST, &format!("/api/projects/{pid}/tasks"), Some(json!({"title": "durable", "agent": "shell"}))).await;
    assert_eq!(st, 201, "{t}");
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    let mut term = Term::connect(&serve.base, &term_id, TOKEN).await;
    term.run("export MARK=kept; echo before-kill-$((4+5))", "pre").await;
    drop(term);

    serve.kill9();
    assert_eq!(docker_inspect(&cid)["State"]["Running"], true, "the sandbox outlives the server");

    let serve = ServeProcess::start(Path::new(BIN), &data, &[]);
    let api = Api::new(&serve.base);
    let (_, t2) = api.req(reqwest::Method::GET, &format!("/api/tasks/{}", t["id"].as_str().unwrap()), None).await;
    assert_eq!(t2["status"], "running", "{t2}");
    let mut term = Term::connect(&serve.base, &term_id, TOKEN).await;
    term.wait_for(15, "scrollback after kill -9", |t| t.contains("before-kill-9")).await;
    // The same shell, not a new one: its variable is still set.
    term.run("echo mark=$MARK", "post").await;
    assert!(term.text().contains("mark=kept"), "{}", term.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn task_commands_talk_to_the_running_server() {
    let fx = fixture();
    let (repo, data) = (fx.repo.clone(), fx.data.clone());
    let serve = ServeProcess::start(Path::new(BIN), &data, &[]);
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["--url", &serve.base])
            .env("ANYCODE_TOKEN", TOKEN)
            .current_dir(&repo)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // `task new` in a repository adds it as a project and creates the task.
    let (code, out, err) = cli(&["task", "new", "From the CLI"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("anycode/from-the-cli") && out.contains("running"), "{out}");
    let id = out.split_whitespace().next().unwrap().to_string();
    let (code, out, _) = cli(&["task", "ls"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&id) && out.contains("From the CLI"), "{out}");
    let (code, out, _) = cli(&["task", "stop", &id]);
    assert_eq!(code, Some(0));
    assert!(out.contains("stopped"), "{out}");
    // Bad input: a clear message and a non-zero exit.
    let (code, _, err) = cli(&["task", "new", "x", "--branch", "bad..name"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a valid git branch name"), "{err}");
    let (code, _, err) = cli(&["task", "stop", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("task nope does not exist"), "{err}");
    let (code, _, _) = cli(&["task", "rm", &id]);
    assert_eq!(code, Some(0));
    // No server: says so.
    let out = Command::new(BIN).args(["task", "ls", "--url", "http://127.0.0.1:9"]).env("ANYCODE_TOKEN", TOKEN).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `anycode serve` running?"));
}

#[test]
fn doctor_reports_an_unreachable_docker_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("doctor")
        .env("ANYCODE_DATA_DIR", dir.path())
        .env("DOCKER_HOST", format!("unix://{}/none.sock", dir.path().display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  docker") && text.contains("fix:"), "{text}");
}

/// `anycode attach` in a real pseudo-terminal: raw mode, typing reaches the agent,
/// output comes back, Ctrl-] detaches and leaves the sandbox running.
#[tokio::test(flavor = "multi_thread")]
async fn attach_opens_the_agent_terminal_in_a_native_terminal_and_detaches() {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    use std::io::{Read, Write};
    let fx = fixture();
    let (repo, data) = (fx.repo.clone(), fx.data.clone());
    let serve = ServeProcess::start(Path::new(BIN), &data, &["--project", repo.to_str().unwrap()]);
    let api = Api::new(&serve.base);
    let (_, projects) = api.req(reqwest::Method::GET, "/api/projects", None).await;
    let pid = projects[0]["id"].as_str().unwrap();
    let (st, t) = api.req(reqwest::Method::POST, &format!("/api/projects/{pid}/tasks"), Some(json!({"title": "attach me", "agent": "shell"}))).await;
    assert_eq!(st, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let base = serve.base.clone();

    let screen = tokio::task::spawn_blocking(move || {
        let pty = native_pty_system().openpty(PtySize { rows: 30, cols: 100, pixel_width: 0, pixel_height: 0 }).unwrap();
        let mut cmd = CommandBuilder::new(BIN);
        cmd.args(["attach", &id, "--url", &base]);
        cmd.env("ANYCODE_TOKEN", TOKEN);
        let mut child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().unwrap();
        let mut writer = pty.master.take_writer().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let wait_for = |needle: &str, seen: &mut Vec<u8>| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !String::from_utf8_lossy(seen).contains(needle) {
                assert!(std::time::Instant::now() < deadline, "no {needle:?} in {}", String::from_utf8_lossy(seen));
                if let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
                    seen.extend_from_slice(&chunk);
                }
            }
        };
        wait_for("[attached to", &mut seen);
        writer.write_all(b"stty size; echo attached-$((6*7))\r").unwrap();
        wait_for("attached-42", &mut seen);
        writer.write_all(&[0x1d]).unwrap(); // Ctrl-]
        wait_for("[detached]", &mut seen);
        let status = child.wait().unwrap();
        assert!(status.success(), "attach exits 0 on detach");
        String::from_utf8_lossy(&seen).into_owned()
    })
    .await
    .unwrap();
    assert!(screen.contains("30 100"), "the native terminal's size reached the TTY: {screen}");
    let (_, t2) = api.req(reqwest::Method::GET, &format!("/api/tasks/{}", t["id"].as_str().unwrap()), None).await;
    assert_eq!(t2["status"], "running", "detaching leaves the sandbox running");
}

/// A settings file that cannot be used stops `serve` before it starts anything:
/// a message naming the file, the table and the key, and exit code 2.
#[test]
fn serve_refuses_a_bad_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    for (text, want) in [
        ("[agents.mine]\ncommand = [\"mine\"]\nprompt_patern = \"> $\"\n", "prompt_patern"),
        ("[agents.mine]\ntitle = \"no command\"\n", "command is missing"),
        ("[sandbox]\ncpu = 2\n", "cpu"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--no-open", "--no-build", "--port", "0"])
            .env("ANYCODE_CONFIG", &cfg)
            .env("ANYCODE_DATA_DIR", dir.path().join("data"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(&*cfg.to_string_lossy()) && err.contains(want), "{text}: {err}");
        assert!(!dir.path().join("data").join("anycode.db").exists(), "nothing started");
    }
    // doctor reports it as a failed check (and runs the others on the defaults).
    let out = Command::new(BIN).arg("doctor").env("ANYCODE_CONFIG", &cfg).env("ANYCODE_DATA_DIR", dir.path().join("data")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  settings") && text.contains("cpu"), "{text}");
}
