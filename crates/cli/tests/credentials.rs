//! `anycode credentials set NAME --stdin | status | rm` and `anycode doctor`'s
//! credentials lines, with the real binary against a real Secret Service (issue 5).

use anycode_testkit::SecretService;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_anycode");

fn anycode(ss: &SecretService, home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("ANYCODE_DATA_DIR", home.join("data"))
        .env("ANYCODE_KEYRING_SERVICE", "anycode-cli-test")
        .env("CLAUDE_CONFIG_DIR", home.join("claude"))
        .env("DOCKER_HOST", format!("unix://{}/no-docker.sock", home.display()))
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in ss.env() {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn credentials_set_status_rm_and_doctor() {
    let ss = SecretService::start_detached();
    let home = tempfile::tempdir().unwrap();
    let key = "sk-ant-api03-CLITEST-0123456789abcdef-9876";

    // Nothing yet: status says so, with fixes.
    let out = anycode(&ss, home.path(), &["credentials", "status"], None);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("Anthropic API key: none found") && t.contains("fix: create a key"), "{t}");

    // set without --stdin refuses (a value on the command line would land in shell history).
    let out = anycode(&ss, home.path(), &["credentials", "set", "anthropic-api-key"], None);
    assert!(!out.status.success());
    assert!(text(&out).contains("--stdin"));
    // Bad input: a clear error, nothing saved.
    let out = anycode(&ss, home.path(), &["credentials", "set", "nope", "--stdin"], Some(key));
    assert!(!out.status.success() && text(&out).contains("unknown credential"), "{}", text(&out));
    let out = anycode(&ss, home.path(), &["credentials", "set", "anthropic-api-key", "--stdin"], Some("\n"));
    assert!(!out.status.success() && text(&out).contains("empty"), "{}", text(&out));

    // Piped in, with its newline: saved, shown only as sk-…9876.
    let out = anycode(&ss, home.path(), &["credentials", "set", "anthropic-api-key", "--stdin"], Some(&format!("{key}\n")));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sk-…9876") && !text(&out).contains("CLITEST"), "{}", text(&out));
    assert_eq!(ss.secret_tool(&["lookup", "service", "anycode-cli-test", "username", "anthropic-api-key"]).unwrap().trim(), key);

    let out = anycode(&ss, home.path(), &["credentials", "status", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = v["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "anthropic").unwrap().clone();
    assert_eq!((a["state"].as_str(), a["source"].as_str(), a["display"].as_str()), (Some("ok"), Some("keyring"), Some("sk-…9876")));

    // doctor reports the same, without the secret (it fails on Docker here, on purpose).
    let out = anycode(&ss, home.path(), &["doctor"], None);
    let t = text(&out);
    assert!(t.contains("ok    credentials: Anthropic API key: sk-…9876, from keyring anycode-cli-test/anthropic-api-key"), "{t}");
    assert!(t.contains("--    credentials: Claude subscription: none found") && t.contains("claude setup-token"), "{t}");
    assert!(!t.contains("CLITEST"));

    let out = anycode(&ss, home.path(), &["credentials", "rm", "anthropic-api-key"], None);
    assert!(out.status.success() && text(&out).contains("removed anthropic-api-key"), "{}", text(&out));
    let out = anycode(&ss, home.path(), &["credentials", "status"], None);
    assert!(text(&out).contains("Anthropic API key: none found"));
}
