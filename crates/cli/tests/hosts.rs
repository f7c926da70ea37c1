#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `anycode host add | ls | rm | contexts` and `anycode task new --host`, with the
//! real binary against a real server and a real second Docker engine (testkit's
//! `SecondDockerd`, its TCP API behind TLS, its Unix socket offered as a Docker
//! context made by the Docker CLI itself). Needs root (dockerd, `ip link`).

use anycode_testkit::dockerd::make_tls;
use anycode_testkit::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_anycode");

/// Runs `anycode ARGS --url BASE` in `cwd`; returns (exit code, stdout, stderr).
fn cli(base: &str, cwd: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).args(["--url", base]).env("ANYCODE_TOKEN", TOKEN).current_dir(cwd).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The `host ls` table's line of host `name`.
fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("no row {name} in\n{table}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn host_commands_add_list_and_remove_hosts_of_a_running_server() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let tls_dir = tmp.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let (server_tls, _) = make_tls(&tls_dir);
    let second = SecondDockerd::start_with(Some(&server_tls));

    // Docker contexts the server offers: the second engine's Unix socket, and one
    // AnyCode refuses (it would not check the engine's certificate).
    let config = tmp.path().join("docker-config");
    for args in [
        vec!["context", "create", "unixbox", "--description", "the second engine", "--docker", &format!("host={}", second.unix)],
        vec!["context", "create", "careless", "--docker", "host=tcp://box.invalid:2376,skip-tls-verify=true"],
    ] {
        let made = Command::new("docker").env("DOCKER_CONFIG", &config).args(&args).output().unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    let config_s = config.to_string_lossy().into_owned();
    let serve = ServeProcess::start_with_env(Path::new(BIN), &fx.data, &[], &[("DOCKER_CONFIG", &config_s)]);
    let base = serve.base.clone();

    // Only `local` at first.
    let (code, out, err) = cli(&base, &fx.repo, &["host", "ls"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("NAME") && out.contains("RUNNING/MAX"), "{out}");
    assert!(row(&out, "local").contains("reachable"), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");

    // tcp:// with TLS, the files given relative to this shell's folder: the server
    // keeps absolute paths (it does not run in this folder).
    let (code, out, err) = cli(
        &base,
        &tls_dir,
        &["host", "add", "box", &second.tcp, "--tls-ca", "ca.pem", "--tls-cert", "cert.pem", "--tls-key", "key.pem", "--max-running", "2"],
    );
    assert_eq!(code, Some(0), "{out}{err}\n{}", second.log());
    assert!(row(&out, "box").contains("reachable") && row(&out, "box").contains(&second.tcp), "{out}");
    assert!(err.contains("--host box"), "{err}");

    let (code, out, _) = cli(&base, &fx.repo, &["host", "ls"]);
    assert_eq!(code, Some(0));
    let boxrow = row(&out, "box");
    assert!(boxrow.contains("0/2") && boxrow.contains("GiB") && boxrow.contains(" reachable "), "{out}");
    let (code, out, _) = cli(&base, &fx.repo, &["host", "ls", "--json"]);
    assert_eq!(code, Some(0));
    let hosts: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(hosts.iter().map(|h| h["name"].as_str().unwrap()).collect::<Vec<_>>(), ["local", "box"]);
    let h = &hosts[1];
    assert_eq!((h["status"].as_str(), h["max_running"].as_u64(), h["endpoint"].as_str()), (Some("reachable"), Some(2), Some(second.tcp.as_str())));
    assert!(h["cpus"].as_u64().unwrap() >= 1 && h["memory_bytes"].as_u64().unwrap() > 1 << 28, "{h}");
    assert_eq!(h["tls"]["key"].as_str().unwrap(), tls_dir.join("key.pem").canonicalize().unwrap().to_str().unwrap());
    assert!(!out.contains("PRIVATE KEY"), "only paths, never a key");

    // Errors: the server's code and message, exit code 1.
    let (code, _, err) = cli(&base, &tls_dir, &["host", "add", "box", &second.tcp, "--tls-ca", "ca.pem", "--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("ALREADY_EXISTS") && err.contains("\"box\""), "{err}");
    let (code, _, err) = cli(&base, &fx.repo, &["host", "add", "gone", "tcp://127.0.0.1:9"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("HOST_UNREACHABLE: host gone does not answer"), "{err}");
    let (code, _, err) = cli(&base, &fx.repo, &["host", "add", "odd", "http://box"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("BAD_ENDPOINT"), "{err}");
    let (code, _, err) = cli(&base, &fx.repo, &["host", "add", "local", "tcp://127.0.0.1:9"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("INVALID_INPUT") && err.contains("`local`"), "{err}");
    let (code, _, err) = cli(&base, &tls_dir, &["host", "add", "x", &second.tcp, "--tls-ca", "ca.pem", "--tls-cert", "cert.pem", "--tls-key", "nope.pem"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nope.pem"), "a missing TLS file is named: {err}");
    // Wrong arguments: clap's usage error (exit 2) before any request.
    for args in [vec!["host", "add", "x"], vec!["host", "add", "x", "tcp://h:1", "--tls-ca", "ca.pem"], vec!["host", "add", "x", "tcp://h:1", "--context", "c"]] {
        let (code, _, err) = cli(&base, &tls_dir, &args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }

    // Contexts: listed with what is wrong with one; one is added by name.
    let (code, out, err) = cli(&base, &fx.repo, &["host", "contexts"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(row(&out, "unixbox").contains(&second.unix) && row(&out, "unixbox").contains("the second engine"), "{out}");
    assert!(row(&out, "careless").contains("cannot be used"), "{out}");
    let (_, out, _) = cli(&base, &fx.repo, &["host", "contexts", "--json"]);
    let ctxs: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(ctxs.len(), 2, "{out}");
    let (code, _, err) = cli(&base, &fx.repo, &["host", "add", "careful", "--context", "careless"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("INVALID_INPUT") && err.contains("cannot be used"), "{err}");
    let (code, out, err) = cli(&base, &fx.repo, &["host", "add", "viactx", "--context", "unixbox"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(row(&out, "viactx").contains(&second.unix) && row(&out, "viactx").contains("reachable"), "{out}");

    // `task new --host` reaches the server: a host that does not exist is refused
    // (without --host the same task would be created).
    let (code, _, err) = cli(&base, &fx.repo, &["task", "new", "Elsewhere", "--host", "nowhere"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("INVALID_INPUT") && err.contains("no host \"nowhere\""), "{err}");

    // Remove: by name; `local` and unknown hosts are refused.
    let (code, _, err) = cli(&base, &fx.repo, &["host", "rm", "local"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("CONFLICT"), "{err}");
    let (code, _, err) = cli(&base, &fx.repo, &["host", "rm", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("HOST_NOT_FOUND"), "{err}");
    for name in ["box", "viactx"] {
        let (code, _, err) = cli(&base, &fx.repo, &["host", "rm", name]);
        assert_eq!(code, Some(0), "{err}");
        assert!(err.contains(&format!("host {name} removed")), "{err}");
    }
    let (_, out, _) = cli(&base, &fx.repo, &["host", "ls"]);
    assert_eq!(out.lines().count(), 2, "only local is left: {out}");

    // An unreachable host: listed with why.
    let (code, out, err) = cli(&base, &tls_dir, &["host", "add", "box", &second.tcp, "--tls-ca", "ca.pem", "--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let mut second = second;
    second.stop();
    let (code, out, _) = cli(&base, &fx.repo, &["host", "ls"]);
    assert_eq!(code, Some(0));
    assert!(row(&out, "box").contains("unreachable"), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("box: ") && l.contains("does not answer")), "the reason is shown: {out}");
    drop(serve);
}
