//! A second Docker engine on this machine, standing in for a remote host.
//!
//! [`SecondDockerd::start`] runs the system's `dockerd` with everything of its own
//! under a temporary folder (`--data-root`, `--exec-root`, `--pidfile`, its own
//! managed containerd), its own bridge (`ip link add NAME type bridge`, an unused
//! `10.223.N.1/24`, `-b NAME --iptables=false --ip-masq=false`), and its API on a
//! Unix socket and on `tcp://127.0.0.1:PORT` (with TLS when asked). A privileged
//! Docker-in-Docker container cannot start on this machine, so this is the way to a
//! second engine. Dropping it stops the engine (SIGTERM, then SIGKILL after 20 s),
//! deletes the bridge, unmounts what is left under the folder and removes it.
//! Needs root (dockerd, `ip link`). The engine starts with no images.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Server-side TLS of a [`SecondDockerd`] (`--tlsverify`): PEM paths.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The CA clients' certificates must chain to.
    pub ca: PathBuf,
    /// The engine's certificate (naming `127.0.0.1` and `localhost`).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// A running second `dockerd` (see the module notes).
pub struct SecondDockerd {
    /// `unix:///…/docker.sock` of this engine.
    pub unix: String,
    /// `tcp://127.0.0.1:PORT` of this engine (TLS when started with it).
    pub tcp: String,
    /// The bridge's name (`acd…`).
    pub bridge: String,
    /// The temporary folder holding the engine's state, socket and log.
    pub root: PathBuf,
    child: Option<Child>,
    /// `dockerd`'s arguments, kept to start it again ([`SecondDockerd::restart`]).
    args: Vec<std::ffi::OsString>,
    /// Killed ([`SecondDockerd::kill`]) and not started since: its containerd and
    /// containers live on, and drop starts the engine to stop them all.
    killed: bool,
    _dir: tempfile::TempDir,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn run(cmd: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(cmd).args(args).stdin(Stdio::null()).output()
}

/// A `10.223.N.0/24` that no interface of this machine uses yet.
fn free_subnet() -> u8 {
    let used = run("ip", &["-4", "-o", "addr"]).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let start = (std::process::id() % 200) as u8;
    (0..250u16).map(|i| ((start as u16 + i) % 250 + 1) as u8).find(|n| !used.contains(&format!("10.223.{n}."))).unwrap_or(start)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(23750)
}

/// Whether the engine at the Unix socket `path` answers `GET /_ping` with `OK`.
fn pings(path: &Path) -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

impl SecondDockerd {
    /// Starts a second engine with a plain-TCP API and waits (up to 60 s) until it
    /// answers. Panics, with the engine's log, when it does not.
    pub fn start() -> SecondDockerd {
        SecondDockerd::start_with(None)
    }

    /// [`SecondDockerd::start`] with its TCP API behind TLS that verifies clients
    /// (`--tlsverify`) when `tls` is given.
    pub fn start_with(tls: Option<&ServerTls>) -> SecondDockerd {
        let dir = tempfile::Builder::new().prefix("anycode-dockerd-").tempdir().expect("a temp dir");
        let root = dir.path().to_path_buf();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let bridge = format!("acd{:x}{n}", std::process::id() % 0xfffff);
        let subnet = free_subnet();
        let cidr = format!("10.223.{subnet}.1/24");
        for args in [
            vec!["link", "add", bridge.as_str(), "type", "bridge"],
            vec!["addr", "add", cidr.as_str(), "dev", bridge.as_str()],
            vec!["link", "set", bridge.as_str(), "up"],
        ] {
            let out = run("ip", &args).expect("ip runs");
            if !out.status.success() {
                let _ = run("ip", &["link", "del", &bridge]);
                panic!("ip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        let sock = root.join("docker.sock");
        let port = free_port();
        let (unix, tcp) = (format!("unix://{}", sock.display()), format!("tcp://127.0.0.1:{port}"));
        let mut args: Vec<std::ffi::OsString> = vec!["--data-root".into(), root.join("data").into()];
        args.extend(["--exec-root".into(), root.join("exec").into(), "--pidfile".into(), root.join("docker.pid").into()]);
        for a in ["-H", &unix, "-H", &tcp, "-b", &bridge, "--iptables=false", "--ip-masq=false"] {
            args.push(a.into());
        }
        for a in ["--storage-driver", "overlay2", "--log-level", "warn", "--userland-proxy=false"] {
            args.push(a.into());
        }
        if let Some(t) = tls {
            args.extend(["--tlsverify".into(), "--tlscacert".into(), t.ca.clone().into(), "--tlscert".into(), t.cert.clone().into()]);
            args.extend(["--tlskey".into(), t.key.clone().into()]);
        }
        let mut me = SecondDockerd { unix, tcp, bridge, root, child: None, args, killed: false, _dir: dir };
        if let Err(e) = me.spawn() {
            panic!("{e}");
        }
        me
    }

    /// Runs `dockerd` with this engine's arguments (its log appended to) and waits
    /// (up to 60 s) until it answers. Errors: what went wrong, with the log's tail.
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.root.join("dockerd.log")).map_err(|e| e.to_string())?;
        let out = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("dockerd").args(&self.args).stdin(Stdio::null()).stdout(out).stderr(log).spawn();
        self.child = Some(child.map_err(|e| format!("dockerd cannot be started: {e}"))?);
        self.killed = false;
        let sock = self.root.join("docker.sock");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pings(&sock) {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log = self.log();
                let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                return Err(format!("the second dockerd did not come up ({exited:?}):\n{tail}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// `systemctl restart docker` for this engine: [`SecondDockerd::stop`] (its
    /// containers are stopped as a stopping engine stops them), then the same
    /// engine, same state, started again and answering. Blocking (seconds).
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// `kill -9` of the engine process only: its containers run on under their
    /// shims (and its containerd) until it is started again
    /// ([`SecondDockerd::start_again`]).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.killed = true;
        }
    }

    /// Starts the engine again after [`SecondDockerd::kill`] or
    /// [`SecondDockerd::stop`] and waits until it answers; does nothing while it runs.
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            if let Err(e) = self.spawn() {
                panic!("{e}");
            }
        }
    }

    /// Copies `image` from the machine's engine to this one (`docker save | docker
    /// -H TCP load`); panics when that fails (the image missing on the machine's).
    pub fn load_image(&self, image: &str) {
        let script = format!("docker save {image} | docker -H {} load -q", self.tcp);
        let out = Command::new("sh").arg("-ec").arg(&script).stdin(Stdio::null()).output().expect("sh runs");
        assert!(out.status.success(), "copying {image} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The engine's log so far (for failing tests).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }

    /// Stops the engine process (SIGTERM, SIGKILL after 20 s) and waits for it;
    /// the folder and bridge stay until drop. Used to test a host that stops
    /// answering.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = run("kill", &["-TERM", &child.id().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}

impl Drop for SecondDockerd {
    fn drop(&mut self) {
        if self.killed {
            // Its containerd and containers outlived it: a started engine stops them.
            let _ = self.spawn();
        }
        self.stop();
        let _ = run("ip", &["link", "del", &self.bridge]);
        // Mounts dockerd left (overlay layers, its exec root's netns, shm): deepest
        // first, lazily, so the folder can go.
        let root = self.root.to_string_lossy().into_owned();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = run("umount", &["-l", &m]);
        }
    }
}

/// TLS material for a [`SecondDockerd`] and its client, made with the `openssl`
/// CLI in `dir`: a CA, the engine's certificate (for `127.0.0.1` and `localhost`)
/// and a client certificate. Returns the server side and the client's
/// `(ca, cert, key)` paths.
pub fn make_tls(dir: &Path) -> (ServerTls, (PathBuf, PathBuf, PathBuf)) {
    let sh = |script: &str| {
        let out = Command::new("sh").arg("-ec").arg(script).current_dir(dir).output().expect("sh runs");
        assert!(out.status.success(), "openssl failed: {}", String::from_utf8_lossy(&out.stderr));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=anycode-test-ca 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=localhost 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 2 -extfile server.ext 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj /CN=anycode-client 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\\n' > client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 2 -extfile client.ext 2>/dev/null");
    (
        ServerTls { ca: dir.join("ca.pem"), cert: dir.join("server-cert.pem"), key: dir.join("server-key.pem") },
        (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem")),
    )
}
