//! `anycode github login|status|logout` against a real Secret Service (a private
//! D-Bus session with gnome-keyring) and a loopback GitHub stand-in, and
//! `anycode project add owner/name` against a real `anycode serve` that clones over
//! real git HTTP with a progress bar.

use anycode_testkit::github::{docs, FakeGitHub, Reply};
use anycode_testkit::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_anycode");
const GH_TOKEN: &str = "ghp_cli0123456789abcdefABCDEF0123456789";

/// Runs the CLI on a blocking thread (the GitHub stand-in runs on this runtime)
/// with `env`, the API base and keyring service; returns (success, stdout, stderr).
async fn cli(env: Vec<(String, String)>, args: &[&str], stdin: &str) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(&args)
            .envs(env)
            .env_remove("GITHUB_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_status_logout_with_the_os_keyring() {
    let hub = FakeGitHub::start(GH_TOKEN).await;
    let ss = SecretService::start_detached();
    let service = format!("anycode-cli-test-{}", std::process::id());
    let lookup = || ss.secret_tool(&["lookup", "service", &service, "username", "github-token"]);

    let mut env = ss.env();
    env.push(("ANYCODE_GITHUB_API".into(), hub.api.clone()));
    env.push(("ANYCODE_KEYRING_SERVICE".into(), service.clone()));
    // No `gh` from the developer's machine as a token source.
    env.push(("PATH".into(), "/usr/bin:/bin".into()));

    // A token GitHub refuses: not saved.
    hub.set("GET", "/user", Reply::json(401, docs::bad_credentials()));
    let (ok, _, err) = cli(env.clone(), &["github", "login", "--token-stdin"], "ghp_revoked\n").await;
    assert!(!ok);
    assert!(err.contains("refused the token"), "{err}");
    assert!(lookup().unwrap_or_default().is_empty(), "nothing saved");
    let (ok, _, err) = cli(env.clone(), &["github", "login", "--token-stdin"], "\n").await;
    assert!(!ok && err.contains("empty"), "{err}");

    // A good one: checked, saved in the keyring, found by `status`.
    hub.set("GET", "/user", Reply::json(200, docs::user("octocat")));
    let (ok, _, err) = cli(env.clone(), &["github", "login", "--token-stdin"], &format!("{GH_TOKEN}\n")).await;
    assert!(ok, "{err}");
    assert!(err.contains("octocat"), "{err}");
    assert_eq!(lookup().unwrap_or_default().trim(), GH_TOKEN, "in the OS keyring, under service/github-token");
    assert_eq!(hub.requests_to("GET", "/user").last().unwrap().auth(), Some(format!("Bearer {GH_TOKEN}").as_str()));
    let (ok, out, _) = cli(env.clone(), &["github", "status"], "").await;
    assert!(ok && out.contains("Keyring") && out.contains("octocat"), "{out}");
    assert!(!out.contains(GH_TOKEN), "status never prints the token");

    let (ok, _, err) = cli(env.clone(), &["github", "logout"], "").await;
    assert!(ok, "{err}");
    assert!(lookup().unwrap_or_default().is_empty(), "removed");
    let (ok, out, _) = cli(env.clone(), &["github", "status"], "").await;
    assert!(!ok && out.contains("no GitHub token"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn project_add_clones_from_github_with_progress() {
    let hub = FakeGitHub::start(GH_TOKEN).await;
    let src_dir = tempfile::tempdir().unwrap();
    let src = make_repo(src_dir.path());
    hub.publish("octo", "hello", &src);
    hub.on("GET", "/repos/octo/hello", Reply::json(200, docs::repo("octo", "hello", &hub.clone_url("octo", "hello"), "main", false)));
    // The serve process inherits this test process's environment (one process per
    // test under nextest).
    std::env::set_var("ANYCODE_GITHUB_API", &hub.api);
    std::env::remove_var("GITHUB_TOKEN");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let serve = ServeProcess::start(Path::new(BIN), &data, &[]);
    let env = vec![("ANYCODE_TOKEN".to_string(), TOKEN.to_string()), ("ANYCODE_URL".to_string(), serve.base.clone())];
    let (ok, out, err) = cli(env.clone(), &["project", "add", "octo/hello"], "").await;
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("cloning"), "{err}");
    assert!(out.contains("default branch main"), "{out}");
    let clone = data.join("repos/octo/hello");
    assert!(clone.join("README.md").exists());
    let (ok, out, _) = cli(env.clone(), &["project", "ls"], "").await;
    assert!(ok && out.contains("octo/hello") && out.contains("ready"), "{out}");

    // Unknown: a clear error, nothing made.
    let (ok, _, err) = cli(env.clone(), &["project", "add", "octo/missing"], "").await;
    assert!(!ok && err.contains("not found"), "{err}");
    assert!(!data.join("repos/octo/missing").exists());
    serve.kill9();
}

/// The GitHub flow in headless Chromium (frontend/e2e/github.test.mjs) against a real
/// `anycode serve` and the stand-in: save a token in the dialog, pick and import a
/// repository, create a task, see the radar, open a pull request.
#[tokio::test(flavor = "multi_thread")]
async fn browser_import_task_and_pull_request() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let frontend = root.join("frontend");
    assert!(frontend.join("node_modules/playwright-core").exists(), "run `npm --prefix frontend ci` first (scripts/test.sh does)");
    assert!(Path::new("/usr/bin/chromium").exists() || std::env::var("CHROMIUM").is_ok(), "install chromium (scripts/test.sh does) or set CHROMIUM");
    let hub = FakeGitHub::start(GH_TOKEN).await;
    let src_dir = tempfile::tempdir().unwrap();
    let src = make_repo(src_dir.path());
    hub.publish("octo", "hello", &src);
    let repo = docs::repo("octo", "hello", &hub.clone_url("octo", "hello"), "main", false);
    hub.on("GET", "/repos/octo/hello", Reply::json(200, repo.clone()));
    hub.on("GET", "/user", Reply::json(200, docs::user("octocat")));
    hub.on("GET", "/user/repos", Reply::json(200, serde_json::json!([repo])));
    let head = git(&src, &["rev-parse", "main"]).trim().to_string();
    hub.on("POST", "/repos/octo/hello/pulls", Reply::json(201, docs::pull("octo", "hello", 7, "anycode/add-a-feature", &head, "main", "open", false)));
    hub.on("GET", "/repos/octo/hello/pulls/7", Reply::json(200, docs::pull("octo", "hello", 7, "anycode/add-a-feature", &head, "main", "open", false)));
    // The issue the task starts from (GitHub lists pull requests among issues too).
    let issue = |number: u64, title: &str, pr: bool| {
        let mut i = serde_json::json!({"number": number, "title": title, "body": "The button does nothing.", "state": "open",
            "html_url": format!("https://github.com/octo/hello/issues/{number}")});
        if pr {
            i["pull_request"] = serde_json::json!({"url": "https://api.github.com/repos/octo/hello/pulls/3"});
        }
        i
    };
    hub.on("GET", "/repos/octo/hello/issues", Reply::json(200, serde_json::json!([issue(12, "Add a feature", false), issue(3, "A pull request", true)])));
    hub.on("GET", "/repos/octo/hello/issues/12", Reply::json(200, issue(12, "Add a feature", false)));

    std::env::set_var("ANYCODE_GITHUB_API", &hub.api);
    std::env::remove_var("GITHUB_TOKEN");
    // A private Secret Service for the token the browser saves.
    let ss = SecretService::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let _cleanup = Cleanup(anycode_engine::instance_id(&data));
    let serve = ServeProcess::start(Path::new(BIN), &data, &[]);
    let artifacts = root.join("artifacts/e2e");
    let url = serve.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--test", "e2e/github.test.mjs"])
            .current_dir(&frontend)
            .env("ANYCODE_E2E_GITHUB", "1")
            .env("ANYCODE_URL", url)
            .env("ANYCODE_TOKEN", TOKEN)
            .env("ANYCODE_GH_TOKEN", GH_TOKEN)
            .env("ANYCODE_ARTIFACTS", artifacts)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("# pass 1"), "browser test failed:\n{text}");
    // What the browser did reached "GitHub" as it should.
    let pr = hub.requests_to("POST", "/repos/octo/hello/pulls").pop().expect("a pull request was opened");
    assert_eq!(pr.body["head"], "anycode/add-a-feature");
    assert!(pr.body["body"].as_str().unwrap_or("").starts_with("Closes #12"), "the pull request closes the issue picked in the dialog: {}", pr.body);
    assert_eq!(pr.auth(), Some(format!("Bearer {GH_TOKEN}").as_str()));
    assert_eq!(git(&hub.root.join("octo/hello.git"), &["rev-parse", "anycode/add-a-feature"]).trim(), head, "pushed");
    drop(ss);
    serve.kill9();
}
