//! Clone and push over real git smart HTTP (`git http-backend` behind a loopback
//! server that checks the token with HTTP Basic auth): progress, private
//! repositories, a refused token, an unreachable host, rejected pushes (a
//! non-fast-forward and a pre-receive hook), upstream, and no token anywhere on disk.
// Test code: a panic is how a test fails (clippy.toml allows unwrap/expect in
// #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycode_git::{clone_repo, push_branch, CloneProgress, Error, HttpAuth};
use anycode_testkit::github::{files_containing, FakeGitHub};
use anycode_testkit::{git, make_repo};
use std::path::Path;

const TOKEN: &str = "ghp_testtoken0123456789abcdefABCDEF0123";
/// `Authorization` carrying [`TOKEN`]: `Basic base64("x-access-token:" + TOKEN)`.
const TOKEN_HEADER: &str = "Basic eC1hY2Nlc3MtdG9rZW46Z2hwX3Rlc3R0b2tlbjAxMjM0NTY3ODlhYmNkZWZBQkNERUYwMTIz";

fn clone(url: &str, dest: &Path, auth: Option<&HttpAuth>) -> (Result<anycode_git::RepoInfo, Error>, Vec<CloneProgress>) {
    let mut seen = Vec::new();
    let r = clone_repo(url, dest, auth, &mut |p| {
        seen.push(p.clone());
        true
    });
    (r, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn clone_public_and_private_with_progress_and_no_token_on_disk() {
    let hub = FakeGitHub::start(TOKEN).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = make_repo(tmp.path());
    git(&src, &["checkout", "-q", "-b", "trunk"]);
    std::fs::write(src.join("more.txt"), "x\n".repeat(1000)).unwrap();
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "more"]);
    hub.publish("octo", "hello", &src);
    let url = hub.clone_url("octo", "hello");

    // Public: no token needed; progress reported; the default branch is the remote's HEAD.
    let dest = tmp.path().join("clones/hello");
    let (r, seen) = tokio::task::spawn_blocking({
        let (url, dest) = (url.clone(), dest.clone());
        move || clone(&url, &dest, None)
    })
    .await
    .unwrap();
    let info = r.unwrap();
    assert_eq!(info.current_branch.as_deref(), Some("trunk"));
    assert!(dest.join("more.txt").exists());
    assert!(seen.iter().any(|p| p.phase == "receiving" && p.total_objects > 0), "{seen:?}");
    assert_eq!(seen.last().unwrap().phase, "done");
    let last = seen.iter().rev().find(|p| p.total_objects > 0).unwrap();
    assert_eq!(last.received_objects, last.total_objects);

    // Private: refused without a token, nothing left behind; cloned with it.
    hub.make_private("octo", "hello");
    let dest2 = tmp.path().join("clones/private");
    let (r, _) = tokio::task::spawn_blocking({
        let (url, dest2) = (url.clone(), dest2.clone());
        move || clone(&url, &dest2, None)
    })
    .await
    .unwrap();
    match r {
        Err(Error::AuthFailed { hint, .. }) => assert!(hint.contains("token"), "{hint}"),
        other => panic!("expected AuthFailed, got {other:?}"),
    }
    assert!(!dest2.exists(), "a failed clone leaves nothing behind");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("clones")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the first clone is there: {leftovers:?}");

    // A refused token: a clear error, no endless retry.
    let (r, _) = tokio::task::spawn_blocking({
        let (url, dest2) = (url.clone(), dest2.clone());
        let auth = HttpAuth::token("ghp_revoked", &hub.base);
        move || clone(&url, &dest2, Some(&auth))
    })
    .await
    .unwrap();
    match r {
        Err(e @ Error::AuthFailed { .. }) => assert!(e.to_string().contains("revoked"), "{e}"),
        other => panic!("expected AuthFailed, got {other:?}"),
    }
    assert!(!dest2.exists());
    let before = hub.git_requests().len();

    let (r, _) = tokio::task::spawn_blocking({
        let (url, dest2) = (url.clone(), dest2.clone());
        let auth = HttpAuth::token(TOKEN, &hub.base);
        move || clone(&url, &dest2, Some(&auth))
    })
    .await
    .unwrap();
    r.unwrap();
    assert!(dest2.join("README.md").exists());
    assert!(hub.git_requests()[before..].iter().any(|(_, p)| p.as_deref() == Some(TOKEN)), "the token went over Basic auth");
    assert!(files_containing(&dest2, TOKEN).is_empty(), "the token is nowhere in the clone (config, remotes)");
    assert_eq!(git(&dest2, &["remote", "get-url", "origin"]).trim(), url);

    // Into an existing non-empty folder: refused, the folder untouched.
    let (r, _) = tokio::task::spawn_blocking({
        let (url, dest2) = (url.clone(), dest2.clone());
        let auth = HttpAuth::token(TOKEN, &hub.base);
        move || clone(&url, &dest2, Some(&auth))
    })
    .await
    .unwrap();
    assert!(matches!(r, Err(Error::DestinationExists(_))), "{r:?}");
    assert!(dest2.join("README.md").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_host_and_unknown_repository() {
    let hub = FakeGitHub::start(TOKEN).await;
    let tmp = tempfile::tempdir().unwrap();
    // Port 9 on loopback: nothing listens there.
    let (r, _) = tokio::task::spawn_blocking({
        let dest = tmp.path().join("x");
        move || clone("http://127.0.0.1:9/octo/hello.git", &dest, None)
    })
    .await
    .unwrap();
    assert!(matches!(r, Err(Error::Unreachable { .. })), "{r:?}");
    assert!(!tmp.path().join("x").exists());
    let (r, _) = tokio::task::spawn_blocking({
        let dest = tmp.path().join("y");
        let url = hub.clone_url("octo", "missing");
        move || clone(&url, &dest, None)
    })
    .await
    .unwrap();
    assert!(matches!(r, Err(Error::RemoteNotFound(_))), "{r:?}");
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none(), "nothing left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_with_token_sets_upstream_and_reports_rejections() {
    let hub = FakeGitHub::start(TOKEN).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = make_repo(tmp.path());
    let bare = hub.publish("octo", "hello", &src);
    let url = hub.clone_url("octo", "hello");
    let work = tmp.path().join("work");
    tokio::task::spawn_blocking({
        let (url, work) = (url.clone(), work.clone());
        move || clone(&url, &work, None).0.unwrap()
    })
    .await
    .unwrap();
    git(&work, &["config", "user.name", "T"]);
    git(&work, &["config", "user.email", "t@example.com"]);
    git(&work, &["checkout", "-q", "-b", "anycode/feature"]);
    std::fs::write(work.join("feature.txt"), "new\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "feature"]);
    let push = |auth: Option<HttpAuth>| {
        let work = work.clone();
        tokio::task::spawn_blocking(move || push_branch(&work, "origin", "anycode/feature", auth.as_ref()))
    };

    // Without a token: the server asks for one.
    let r = push(None).await.unwrap();
    assert!(matches!(r, Err(Error::AuthFailed { .. })), "{r:?}");
    let r = push(Some(HttpAuth::token("wrong", &hub.base))).await.unwrap();
    assert!(matches!(r, Err(Error::AuthFailed { .. })), "{r:?}");

    // With it: on the remote, upstream set, no token on disk.
    let out = push(Some(HttpAuth::token(TOKEN, &hub.base))).await.unwrap().unwrap();
    let local_sha = git(&work, &["rev-parse", "anycode/feature"]).trim().to_string();
    assert_eq!(out.sha, local_sha);
    assert_eq!(out.upstream, "origin/anycode/feature");
    assert_eq!(git(&bare, &["rev-parse", "anycode/feature"]).trim(), local_sha);
    assert_eq!(git(&work, &["rev-parse", "--abbrev-ref", "anycode/feature@{upstream}"]).trim(), "origin/anycode/feature");
    assert!(files_containing(&work, TOKEN).is_empty(), "no token in .git/config or anywhere");

    // The branch deleted on the remote (merged and deleted on GitHub): pushing again
    // brings it back; nothing local is lost.
    git(&bare, &["branch", "-D", "anycode/feature"]);
    let again = push(Some(HttpAuth::token(TOKEN, &hub.base))).await.unwrap().unwrap();
    assert_eq!(again.sha, local_sha);
    assert_eq!(git(&bare, &["rev-parse", "anycode/feature"]).trim(), local_sha);

    // A non-fast-forward: someone else pushed to the branch. git2's push returns Ok;
    // AnyCode checks the ref's status and reports the rejection.
    let other = tmp.path().join("other");
    git(tmp.path(), &["clone", "-q", bare.to_str().unwrap(), other.to_str().unwrap()]);
    git(&other, &["checkout", "-q", "anycode/feature"]);
    std::fs::write(other.join("theirs.txt"), "theirs\n").unwrap();
    git(&other, &["add", "."]);
    git(&other, &["-c", "user.name=O", "-c", "user.email=o@example.com", "commit", "-q", "-m", "theirs"]);
    git(&other, &["push", "-q", "origin", "anycode/feature"]);
    let remote_before = git(&bare, &["rev-parse", "anycode/feature"]);
    git(&work, &["commit", "-q", "--amend", "-m", "feature, amended"]);
    match push(Some(HttpAuth::token(TOKEN, &hub.base))).await.unwrap() {
        Err(Error::PushRejected { refname, reason }) => {
            assert_eq!(refname, "refs/heads/anycode/feature");
            assert!(!reason.is_empty());
        }
        other => panic!("expected PushRejected, got {other:?}"),
    }
    assert_eq!(git(&bare, &["rev-parse", "anycode/feature"]), remote_before, "the remote branch is untouched");

    // A pre-receive hook that refuses everything.
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'policy: pushes are frozen' >&2\nexit 1\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    git(&work, &["checkout", "-q", "-b", "anycode/second"]);
    let r = tokio::task::spawn_blocking({
        let work = work.clone();
        let auth = HttpAuth::token(TOKEN, &hub.base);
        move || push_branch(&work, "origin", "anycode/second", Some(&auth))
    })
    .await
    .unwrap();
    match r {
        Err(e @ Error::PushRejected { .. }) => assert!(e.to_string().contains("refs/heads/anycode/second"), "{e}"),
        other => panic!("expected PushRejected, got {other:?}"),
    }
    assert!(git(&bare, &["branch", "--list", "anycode/second"]).trim().is_empty(), "the hook kept it out");
    // Nothing local was lost.
    assert!(work.join("feature.txt").exists());
}

/// A loopback HTTP server that answers every request 401 (asking for Basic
/// credentials) and records each request's `Authorization` header (`None` when
/// absent): a host that must never receive the GitHub token.
async fn recording_host() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request head per round; bodies are not expected before the 401.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end);
                    let auth = head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.trim().to_string()));
                    seen.lock().unwrap().push(auth);
                    let reply = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n";
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, seen)
}

/// Pushes `anycode/x` of `work` to its `origin` with the token for `hub`.
async fn push_x(work: &Path, hub: &FakeGitHub) -> Result<anycode_git::PushOutcome, Error> {
    let work = work.to_path_buf();
    let auth = HttpAuth::token(TOKEN, &hub.base);
    tokio::task::spawn_blocking(move || push_branch(&work, "origin", "anycode/x", Some(&auth))).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_never_goes_to_another_host_whatever_the_remote_says() {
    let hub = FakeGitHub::start(TOKEN).await;
    let (other, seen) = recording_host().await;
    let tmp = tempfile::tempdir().unwrap();
    let work = make_repo(tmp.path());
    git(&work, &["checkout", "-q", "-b", "anycode/x"]);
    let other_port = other.trim_end_matches('/').rsplit(':').next().unwrap().to_string();
    // The remote URL as a hostile sandbox could set it: another host, with the
    // GitHub host as user name, as a path, and `insteadOf` sending the GitHub URL
    // elsewhere.
    let cases: Vec<(String, Vec<(&str, String)>)> = vec![
        (format!("{other}octo/hello.git"), vec![]),
        (format!("http://x-access-token@127.0.0.1:{other_port}/octo/hello.git"), vec![]),
        (format!("http://{}@127.0.0.1:{other_port}/octo/hello.git", hub.base.trim_start_matches("http://").trim_end_matches('/')), vec![]),
        (hub.clone_url("octo", "hello"), vec![("url.".to_string() + &other + ".insteadOf", hub.base.clone())].into_iter().map(|(k, v)| (Box::leak(k.into_boxed_str()) as &str, v)).collect()),
        (format!("http://localhost:{other_port}/octo/hello.git"), vec![]),
    ];
    for (url, config) in cases {
        let _ = std::process::Command::new("git").args(["-C", work.to_str().unwrap(), "remote", "remove", "origin"]).output();
        git(&work, &["remote", "add", "origin", &url]);
        for (k, v) in &config {
            git(&work, &["config", k, v]);
        }
        let before = seen.lock().unwrap().len();
        match push_x(&work, &hub).await {
            Err(e @ Error::TokenNotSent { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&hub.base) && msg.contains("credential helper") && !msg.contains(TOKEN), "{msg}");
            }
            other => panic!("{url}: expected TokenNotSent, got {other:?}"),
        }
        let after = seen.lock().unwrap().clone();
        assert!(after.len() > before, "{url}: the other host was asked");
        for auth in &after[before..] {
            assert_ne!(auth.as_deref(), Some(TOKEN_HEADER), "{url}: the token went to {other}");
        }
        for (k, _) in &config {
            git(&work, &["config", "--unset", k]);
        }
    }
    // A password of the remote's own in its URL is that host's credential: libgit2
    // sends it, and the token still stays home.
    git(&work, &["remote", "set-url", "origin", &format!("http://me:own-password@127.0.0.1:{other_port}/octo/hello.git")]);
    let before = seen.lock().unwrap().len();
    let r = push_x(&work, &hub).await;
    assert!(matches!(r, Err(Error::AuthFailed { .. }) | Err(Error::TokenNotSent { .. })), "{r:?}");
    // base64("x-access-token:" + TOKEN) never appears; the URL's own does.
    let after = seen.lock().unwrap().clone();
    assert!(after[before..].iter().all(|a| a.as_deref() != Some(TOKEN_HEADER)), "{after:?}");
    assert!(after[before..].iter().any(|a| a.as_deref() == Some("Basic bWU6b3duLXBhc3N3b3Jk")), "{after:?}");
}
