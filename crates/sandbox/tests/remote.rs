#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Remote Docker hosts, against real engines: a second `dockerd` on this machine
//! (testkit's `SecondDockerd`) reached by `unix://`, `tcp://`, `tcp://` with TLS and
//! `ssh://` (through `docker system dial-stdio`), an image copied between engines,
//! Docker contexts made by the Docker CLI itself, and a task repository in a
//! volume seeded from a git bundle and brought back through the pack protocol.

use anycode_git::taskrepo as tr;
use anycode_sandbox::contexts::docker_contexts;
use anycode_sandbox::endpoint::{Endpoint, TlsPaths};
use anycode_sandbox::transfer::{copy_image, CopyProgress};
use anycode_sandbox::{ContainerSpec, Docker, Error, PipeChunk};
// testkit's engine-free module, included as is: the whole testkit would build the
// engine and the server (which depend on this crate) for these tests.
#[path = "../../testkit/src/dockerd.rs"]
#[allow(dead_code)]
mod dockerd;
use dockerd::{make_tls, SecondDockerd};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A small image the first engine has (pulled by the sandbox image's build).
const SMALL_IMAGE: &str = "debian:bookworm-slim";

/// Runs git in `dir`; panics with its stderr when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(["-c", "safe.directory=*"]).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A repository with a commit on `main` and a branch `dev` one commit ahead.
fn make_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README.md"), "# demo\n").unwrap();
    for step in [
        "init -q -b main",
        "config user.name Tester",
        "config user.email test@example.com",
        "add -A",
        "commit -q -m first",
        "checkout -q -b dev",
        "commit -q --allow-empty -m dev-work",
        "checkout -q main",
    ] {
        git(&repo, &step.split(' ').collect::<Vec<_>>());
    }
    repo
}

fn instance() -> String {
    format!("test{:08x}", std::process::id())
}

/// A `ssh` stand-in for `ssh://` tests: takes ssh's options and the host, then
/// runs the remote command (`docker system dial-stdio`) here against `socket`, so
/// the bytes go through the real dial-stdio of the Docker CLI.
fn fake_ssh(dir: &Path, socket: &str, log: &Path) -> PathBuf {
    let path = dir.join("ssh");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = -V ] && exit 0\necho \"$@\" >> '{}'\nwhile [ \"$1\" != -- ]; do shift; done\nshift 2\nDOCKER_HOST='{socket}' exec \"$@\"\n",
        log.display()
    );
    std::fs::write(&path, script).unwrap();
    Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    path
}

fn spec(name: &str, image: &str, binds: Vec<String>, user: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: image.into(),
        task_id: name.into(),
        project_id: "p".into(),
        cmd: vec!["sleep".into(), "600".into()],
        env: vec![],
        user: user.into(),
        binds,
        memory_bytes: 256 << 20,
        nano_cpus: 1_000_000_000,
        pids: 64,
    }
}

/// A TTY exec over the raw (hijacked) connection of `docker`: its output must
/// carry the computed `hello-42`, so the bytes came from the container.
async fn tty_roundtrip(docker: &Docker, cid: &str) {
    let (_exec, mut tty) = docker.exec(cid, vec!["sh".into(), "-c".into(), "read x; echo \"got-$x-$((6*7))\"".into()], "0", vec![], 80, 24, true).await.unwrap();
    tty.input.write_all(b"ping\n").await.unwrap();
    tty.input.flush().await.unwrap();
    let mut seen = Vec::new();
    let read = async {
        while let Some(chunk) = tty.output.next().await {
            seen.extend_from_slice(&chunk.unwrap());
            if String::from_utf8_lossy(&seen).contains("got-ping-42") {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.unwrap_or_else(|_| panic!("no echo over {}: {:?}", docker.endpoint, String::from_utf8_lossy(&seen)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_by_unix_ssh_and_tls_with_the_image_copied_and_a_context() {
    let tmp = tempfile::tempdir().unwrap();
    let (server_tls, (ca, cert, key)) = make_tls(tmp.path());
    let second = SecondDockerd::start_with(Some(&server_tls));
    let local = Docker::connect(&instance(), None).await.unwrap();

    // unix://
    let by_unix = Docker::connect_endpoint(&instance(), &Endpoint::new(&second.unix)).await.unwrap();
    assert_eq!(by_unix.endpoint, second.unix);
    let images = std::process::Command::new("docker").args(["-H", &second.unix, "images", "-q"]).output().unwrap();
    assert!(images.status.success() && images.stdout.is_empty(), "a fresh engine has no images");

    // The image, copied from the first engine through the two APIs.
    let mut seen: Vec<CopyProgress> = Vec::new();
    let started = std::time::Instant::now();
    copy_image(&local, &by_unix, SMALL_IMAGE, |p| seen.push(p)).await.unwrap();
    let last = *seen.last().unwrap();
    eprintln!("copied {} of {} bytes in {:?} ({} progress calls)", last.copied_bytes, last.total_bytes, started.elapsed(), seen.len());
    assert!(seen.len() > 2, "progress came as it went: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].copied_bytes <= w[1].copied_bytes));
    assert!(last.total_bytes > 10 << 20 && last.copied_bytes >= last.total_bytes / 2, "{last:?}");
    assert!(by_unix.image_exists(SMALL_IMAGE).await.unwrap());
    // A missing image is said so.
    assert!(matches!(copy_image(&local, &by_unix, "anycode-no-such-image:1", |_| {}).await, Err(Error::NoImage(_))));

    let cid = by_unix.create_container(&spec("anycode-remote-test", SMALL_IMAGE, vec![], "0")).await.unwrap();
    by_unix.start(&cid).await.unwrap();
    assert!(local.inspect(&cid).await.unwrap().is_none(), "the container is on the second engine only");
    tty_roundtrip(&by_unix, &cid).await;

    // ssh://, through a new `docker system dial-stdio` per connection.
    let ssh_log = tmp.path().join("ssh.log");
    let ssh = fake_ssh(tmp.path(), &second.unix, &ssh_log);
    let by_ssh = Docker::connect_endpoint_with_ssh(&instance(), &Endpoint::new("ssh://agent@box.example:2222"), &ssh).await.unwrap();
    assert_eq!(by_ssh.endpoint, "ssh://agent@box.example:2222");
    assert!(by_ssh.inspect(&cid).await.unwrap().is_some_and(|c| c.running));
    tty_roundtrip(&by_ssh, &cid).await;
    let args = std::fs::read_to_string(&ssh_log).unwrap();
    assert!(args.lines().all(|l| l.ends_with("-l agent -p 2222 -- box.example docker system dial-stdio")), "{args}");
    assert!(args.lines().count() >= 2, "one ssh per connection: {args}");

    // tcp:// with TLS, also named by a context the Docker CLI made.
    let tls = TlsPaths { ca: ca.clone(), cert: cert.clone(), key: key.clone() };
    let by_tls = Docker::connect_endpoint(&instance(), &Endpoint { url: second.tcp.clone(), tls: Some(tls) }).await.unwrap();
    tty_roundtrip(&by_tls, &cid).await;
    let config = tmp.path().join("docker-config");
    let host = format!("host={},ca={},cert={},key={}", second.tcp, ca.display(), cert.display(), key.display());
    let made = Command::new("docker").env("DOCKER_CONFIG", &config).args(["context", "create", "second", "--description", "the second engine", "--docker", &host]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let used = Command::new("docker").env("DOCKER_CONFIG", &config).args(["context", "use", "second"]).output().unwrap();
    assert!(used.status.success(), "{}", String::from_utf8_lossy(&used.stderr));
    let contexts = docker_contexts(&config).unwrap();
    assert_eq!(contexts.len(), 1, "{contexts:?}");
    let c = &contexts[0];
    assert_eq!((c.name.as_str(), c.description.as_str(), c.current, c.problem.as_deref()), ("second", "the second engine", true, None));
    let ctx_tls = c.endpoint.tls.clone().expect("the context's TLS files");
    assert!(ctx_tls.key.starts_with(config.join("contexts/tls")), "the CLI's copy: {:?}", ctx_tls.key);
    let by_context = Docker::connect_endpoint(&instance(), &c.endpoint).await.unwrap();
    tty_roundtrip(&by_context, &cid).await;

    // Without a client certificate the engine refuses: unreachable, with the reason.
    let other = tempfile::tempdir().unwrap();
    let (_, (_, wrong_cert, wrong_key)) = make_tls(other.path());
    let refused = Docker::connect_endpoint(&instance(), &Endpoint { url: second.tcp.clone(), tls: Some(TlsPaths { ca: ca.clone(), cert: wrong_cert, key: wrong_key }) }).await;
    assert!(matches!(refused, Err(Error::Unreachable { .. })), "{:?}", refused.err());

    by_unix.remove(&cid).await.unwrap();
    drop((by_ssh, by_tls, by_context));
}

#[tokio::test]
async fn bad_endpoints_say_what_is_wrong_and_never_show_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (url, tls) in [("http://box:2375", false), ("tcp://", false), ("unix://", false), ("ssh://box/path", false), ("ssh://-oProxyCommand=x", false), ("unix:///s.sock", true), ("tcp://u:pw@box:1", false)] {
        let ep = Endpoint {
            url: url.into(),
            tls: tls.then(|| TlsPaths { ca: "/ca.pem".into(), cert: "/cert.pem".into(), key: "/key.pem".into() }),
        };
        let r = Docker::connect_endpoint("x", &ep).await;
        assert!(matches!(r, Err(Error::BadEndpoint(_))), "{url}: {:?}", r.err());
    }
    // Nothing listens on port 1.
    let r = Docker::connect_endpoint("x", &Endpoint::new("tcp://127.0.0.1:1")).await;
    match r {
        Err(Error::Unreachable { endpoint, reason }) => assert!(endpoint == "tcp://127.0.0.1:1" && !reason.is_empty()),
        other => panic!("{:?}", other.err()),
    }
    // No ssh program.
    let r = Docker::connect_endpoint_with_ssh("x", &Endpoint::new("ssh://box"), Path::new("/nonexistent/ssh")).await;
    assert!(matches!(r, Err(Error::SshMissing(_))), "{:?}", r.err());
    // ssh that fails: its words are in the error.
    let failing = tmp.path().join("ssh-fails");
    std::fs::write(&failing, "#!/bin/sh\n[ \"$1\" = -V ] && exit 0\necho 'agent@box: Permission denied (publickey).' >&2\nexit 255\n").unwrap();
    Command::new("chmod").arg("+x").arg(&failing).status().unwrap();
    match Docker::connect_endpoint_with_ssh("x", &Endpoint::new("ssh://agent@box"), &failing).await {
        Err(Error::Unreachable { reason, .. }) => assert!(reason.contains("Permission denied (publickey)"), "{reason}"),
        other => panic!("{:?}", other.err()),
    }
    // TLS files: missing, and a key that is not PEM (its contents never shown).
    let (_, (ca, cert, _)) = make_tls(tmp.path());
    let missing = Endpoint { url: "tcp://127.0.0.1:1".into(), tls: Some(TlsPaths { ca: ca.clone(), cert: cert.clone(), key: tmp.path().join("nope.pem") }) };
    match Docker::connect_endpoint("x", &missing).await {
        Err(Error::TlsFiles(m)) => assert!(m.contains("nope.pem"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    let bad_key = tmp.path().join("bad-key.pem");
    std::fs::write(&bad_key, "-----BEGIN PRIVATE KEY-----\nSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n").unwrap();
    let bad = Endpoint { url: "tcp://127.0.0.1:1".into(), tls: Some(TlsPaths { ca, cert, key: bad_key }) };
    match Docker::connect_endpoint("x", &bad).await {
        Err(Error::TlsFiles(m)) => assert!(m.contains("bad-key.pem") && !m.contains("SECRET"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    assert!(!format!("{bad:?}").contains("SECRET"));
}

#[tokio::test]
async fn contexts_in_the_cli_format_and_broken_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path();
    assert!(docker_contexts(config).unwrap().is_empty(), "no folder, no contexts");
    let made = Command::new("docker").env("DOCKER_CONFIG", config).args(["context", "create", "box", "--docker", "host=ssh://me@box:2222"]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // A context with only a CA (the CLI allows it; AnyCode needs a client certificate too).
    let (_, (ca, _, _)) = make_tls(tmp.path());
    let made = Command::new("docker")
        .env("DOCKER_CONFIG", config)
        .args(["context", "create", "ca-only", "--docker", &format!("host=tcp://box:2376,ca={}", ca.display())])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let list = docker_contexts(config).unwrap();
    let names: Vec<_> = list.iter().map(|c| (c.name.as_str(), c.endpoint.url.as_str(), c.current, c.problem.is_some())).collect();
    assert_eq!(names, vec![("box", "ssh://me@box:2222", false, false), ("ca-only", "tcp://box:2376", false, true)]);
    // A meta.json that is not the CLI's: the error names the file.
    let broken = config.join("contexts/meta/0000/meta.json");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(&broken, "{\"Name\": 3}").unwrap();
    match docker_contexts(config) {
        Err(Error::Context(m)) => assert!(m.contains("0000/meta.json"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// Runs `cmd` in the container with its output pumped into a [`tr::PackStream`]
/// (what the engine's fetch does) and fetches the sandbox's work into `mirror`.
async fn fetch_over_exec(docker: &Docker, cid: &str, user: &str, mirror: PathBuf, branch: String) -> tr::Fetched {
    let cmd = ["git", "upload-pack", "--timeout=60", tr::SANDBOX_WORKDIR].map(String::from).to_vec();
    let pipe = docker.exec_pipe(cid, cmd, user, vec![], tr::SANDBOX_WORKDIR).await.unwrap();
    let (to_host, from_sandbox) = tokio::sync::mpsc::channel(64);
    let (to_sandbox, mut from_host) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let mut output = pipe.output;
    let reader = tokio::spawn(async move {
        while let Some(Ok(chunk)) = output.next().await {
            if let PipeChunk::Stdout(b) = chunk {
                if to_host.send(b).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut input = pipe.input;
    let writer = tokio::spawn(async move {
        while let Some(v) = from_host.recv().await {
            if input.write_all(&v).await.is_err() {
                break;
            }
        }
        let _ = input.shutdown().await;
    });
    let stream = tr::PackStream::new(from_sandbox, to_sandbox, tr::MAX_FETCH_BYTES);
    let fetched = tokio::task::spawn_blocking(move || tr::fetch_into_mirror(&mirror, &branch, stream)).await.unwrap().unwrap();
    reader.abort();
    writer.abort();
    fetched
}

async fn sh_in(docker: &Docker, cid: &str, user: &str, script: &str, args: &[&str], env: Vec<String>) -> anycode_sandbox::ExecOutput {
    let mut cmd = vec!["sh".to_string(), "-c".into(), script.into(), "sh".into()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let out = docker.exec_output(cid, cmd, user, env, b"", 1 << 20).await.unwrap();
    assert_eq!(out.exit_code, 0, "{script}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_repository_in_a_volume_seeded_from_a_bundle_and_brought_back() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = make_repo(tmp.path());
    let docker = Docker::connect(&instance(), None).await.unwrap();
    // Any sandbox image has git and a /workspace of uid 1000: the last one built,
    // else this tree's.
    let image = match docker.ensure_image(Some("anycode-sandbox:latest"), None, &mut |_| {}).await {
        Ok(tag) => tag,
        Err(_) => docker.ensure_image(None, None, &mut |_| {}).await.unwrap(),
    };
    let (branch, mirror) = ("anycode/in-a-volume".to_string(), tmp.path().join("mirror.git"));
    let (base, base_sha) = tr::create_task_mirror(&repo, Some("main"), &branch, &mirror).unwrap();
    assert_eq!(base, "main");
    let bundle = tmp.path().join("seed.bundle");
    let size = tr::write_seed_bundle(&repo, &branch, &base_sha, &bundle).unwrap();
    assert!(size > 0);
    // The branch moved: no bundle from a tip other than the task's base.
    assert!(tr::write_seed_bundle(&repo, "dev", &base_sha, &tmp.path().join("x.bundle")).is_err());

    let name = format!("anycode-voltest-{}", std::process::id());
    docker.create_volume(&name, &name).await.unwrap();
    let bind = anycode_sandbox::workspace_volume_bind(&name).unwrap();
    assert!(anycode_sandbox::workspace_volume_bind("/etc").is_err());
    let user = "1000:1000";
    let cid = docker.create_container(&spec(&name, &image, vec![bind], user)).await.unwrap();
    let result = async {
        // No network, as a sandbox in `none` mode: git needs none here.
        docker.network_isolate(&cid).await.unwrap();
        docker.start(&cid).await.unwrap();
        // As `docker inspect` shows it: only volume mounts, nothing of this machine.
        let out = std::process::Command::new("docker").args(["inspect", "-f", "{{range .Mounts}}{{.Type}} {{end}}", &cid]).output().unwrap();
        let types = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert!(out.status.success() && !types.is_empty() && types.iter().all(|t| t == "volume"), "no bind mount: {types:?}");

        // Seed: the bundle goes in over the exec's stdin.
        let seed_cmd = ["sh", "-c", tr::SEED_SCRIPT, "seed", &branch].map(String::from).to_vec();
        let file = tokio::fs::File::open(&bundle).await.unwrap();
        let out = docker.exec_output_from(&cid, seed_cmd.clone(), user, vec![], file, 1 << 20).await.unwrap();
        assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(tr::parse_seed_output(&out.stdout).unwrap().to_string(), base_sha);
        // A second seed into the now full volume is refused.
        let again = docker.exec_output_from(&cid, seed_cmd, user, vec![], tokio::fs::File::open(&bundle).await.unwrap(), 1 << 20).await.unwrap();
        assert_eq!(again.exit_code, 3, "{}", String::from_utf8_lossy(&again.stderr));

        // The agent works: a new file and a change.
        sh_in(&docker, &cid, user, "echo fresh > new.txt && echo changed >> README.md", &[], vec![]).await;
        // Brought out as the engine does: snapshot, upload-pack over exec, diff from the mirror.
        let snap = sh_in(&docker, &cid, user, tr::SNAPSHOT_SCRIPT, &[&branch], vec![]).await;
        let (head, snapshot) = tr::parse_snapshot_output(&snap.stdout).unwrap();
        assert_eq!(head.to_string(), base_sha);
        let fetched = fetch_over_exec(&docker, &cid, user, mirror.clone(), branch.clone()).await;
        assert_eq!(fetched.snapshot, Some(snapshot));
        let diff = tr::task_diff(&repo, &mirror, "main", &base_sha).unwrap();
        let paths: Vec<String> = diff.files.iter().map(|f| f.path.clone()).collect();
        assert!(paths.contains(&"new.txt".to_string()) && paths.contains(&"README.md".to_string()), "{paths:?}");

        // Commit in the sandbox, then bring back onto the user's branch.
        let identity = ["GIT_AUTHOR_NAME=Test User", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_COMMITTER_NAME=Test User", "GIT_COMMITTER_EMAIL=test@example.com"].map(String::from).to_vec();
        let cmd = vec!["sh".to_string(), "-c".into(), tr::COMMIT_SCRIPT.into(), "commit".into()];
        let out = docker.exec_output(&cid, cmd, user, identity, b"from the volume\n", 1 << 20).await.unwrap();
        assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
        sh_in(&docker, &cid, user, tr::SNAPSHOT_SCRIPT, &[&branch], vec![]).await;
        fetch_over_exec(&docker, &cid, user, mirror.clone(), branch.clone()).await;
        let back = tr::bring_back(&repo, &mirror, &branch).unwrap();
        assert!(matches!(back, tr::BroughtBack::Updated(_)), "{back:?}");
        assert_eq!(git(&repo, &["show", &format!("{branch}:new.txt")]), "fresh\n");
        assert_eq!(git(&repo, &["log", "-1", "--format=%s", &branch]).trim(), "from the volume");
    };
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    docker.remove(&cid).await.unwrap();
    docker.remove_volume(&name).await.unwrap();
    assert!(!docker.managed_volumes().await.unwrap().contains(&name));
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}
