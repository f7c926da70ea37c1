//! A second Docker engine of the test's own, to kill and restart without touching
//! the machine's (which other people and tests use).
//!
//! [`SecondDockerd::start`] makes a bridge of its own (`ip link add NAME type bridge`,
//! an address in `10.222.0.0/16`, up) and runs `dockerd` with its own `--data-root`,
//! `--exec-root`, `--pidfile`, a unix socket in a temporary directory, `-b NAME`,
//! `--iptables=false --ip-masq=false` and user networks from `10.223.0.0/16`; it
//! starts its own containerd. Point AnyCode at it with [`SecondDockerd::host`] (as
//! `DOCKER_HOST` or `Config::docker_host`).
//!
//! Images: it has none. [`SecondDockerd::load_image`] copies one from the machine's
//! engine (`docker save | docker -H … load`, about 90 s for the 1.9 GB sandbox
//! image on a loaded 2-core machine). To pay that once per machine rather than once
//! per test, [`SecondDockerd::start_cached`] keeps the data root under
//! `$TMPDIR/anycode-testkit-dockerd/<key>` between runs (images only: the test's
//! containers are removed on drop), locked (`flock`) while one engine uses it; a
//! second concurrent user gets a fresh temporary root instead.
//!
//! [`SecondDockerd::kill`] is `kill -9` (containers keep running under their shims
//! until the engine comes back and, without live-restore, stops them, exit 137);
//! [`SecondDockerd::stop`] is what `systemctl stop docker` does (SIGTERM: the engine
//! stops its containers, then exits); [`SecondDockerd::start_again`] runs it again on
//! the same roots. On drop: its containers are removed, the engine stopped (killed
//! after 20 s), mounts under its roots unmounted, the bridge deleted, temporary
//! directories removed. Needs root (as the rest of the Docker tests on Linux).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A private `dockerd` (see the module's documentation).
pub struct SecondDockerd {
    /// Temporary directory holding the exec root, socket, pid file and log (and the
    /// data root unless cached).
    dir: Option<tempfile::TempDir>,
    data_root: PathBuf,
    /// Held while this engine uses a cached data root.
    _lock: Option<File>,
    bridge: String,
    child: Option<Child>,
}

fn sh(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd} runs: {e}"))
}

impl SecondDockerd {
    /// A new engine with a fresh, temporary data root (no images).
    pub fn start() -> SecondDockerd {
        Self::start_in(None)
    }

    /// A new engine whose data root (images only) is kept between runs under the
    /// name `key` (e.g. the image's ID), so [`SecondDockerd::load_image`] has nothing
    /// to do the second time. Falls back to a temporary root when another engine uses
    /// that one now.
    pub fn start_cached(key: &str) -> SecondDockerd {
        let root = std::env::temp_dir().join("anycode-testkit-dockerd").join(key);
        std::fs::create_dir_all(&root).expect("cache dir");
        let lock = File::create(root.join("lock")).expect("lock file");
        match lock.try_lock() {
            Ok(()) => Self::start_in(Some((root.join("data"), lock))),
            Err(_) => Self::start_in(None),
        }
    }

    fn start_in(cached: Option<(PathBuf, File)>) -> SecondDockerd {
        // Short paths: the containerd sockets under the exec root must fit a sun_path.
        let dir = tempfile::Builder::new().prefix("acd").tempdir_in("/tmp").expect("temp dir");
        let (data_root, lock) = match cached {
            Some((d, l)) => (d, Some(l)),
            None => (dir.path().join("data"), None),
        };
        // A bridge and a /24 of its own, picked at random among free ones.
        let n = u16::from_str_radix(&anycode_core::new_id()[..4], 16).unwrap_or(1);
        let bridge = format!("acd{:x}", n);
        let mut made = false;
        for i in 0..50u16 {
            let third = (n.wrapping_add(i * 7) % 250) + 2;
            let out = sh("ip", &["link", "add", &bridge, "type", "bridge"]);
            assert!(out.status.success() || made, "ip link add {bridge}: {}", String::from_utf8_lossy(&out.stderr));
            made = true;
            let addr = format!("10.222.{third}.1/24");
            let taken = String::from_utf8_lossy(&sh("ip", &["-4", "addr"]).stdout).contains(&format!("10.222.{third}."));
            if !taken && sh("ip", &["addr", "add", &addr, "dev", &bridge]).status.success() {
                break;
            }
        }
        let up = sh("ip", &["link", "set", &bridge, "up"]);
        assert!(up.status.success(), "ip link set {bridge} up: {}", String::from_utf8_lossy(&up.stderr));
        let mut d = SecondDockerd { dir: Some(dir), data_root, _lock: lock, bridge, child: None };
        d.start_again();
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.as_ref().map(|d| d.path().join(name)).unwrap_or_default()
    }

    /// `unix:///tmp/acd…/sock`: the value for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.path("sock").display())
    }

    /// The engine's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    /// Starts the engine on the same roots (after [`SecondDockerd::kill`] or
    /// [`SecondDockerd::stop`]) and waits until it answers (60 s at most).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the engine runs already");
        // A pid file left by kill -9 would stop it.
        let _ = std::fs::remove_file(self.path("pid"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.path("log")).expect("log file");
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(self.path("exec"))
            .arg("--pidfile")
            .arg(self.path("pid"))
            .args(["-H", &self.host(), "-b", &self.bridge, "--iptables=false", "--ip-masq=false"])
            .args(["--default-address-pool", "base=10.223.0.0/16,size=24"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dockerd starts (is it installed, and are we root?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.docker(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "the second dockerd did not answer within 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `docker -H <this engine> ARGS`.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker").args(["-H", &self.host()]).args(args).output().expect("docker runs")
    }

    /// Makes `image` (a name:tag of the machine's engine) available here, copying it
    /// (`docker save | docker load`) unless this engine has it already.
    pub fn load_image(&self, image: &str) {
        if self.docker(&["image", "inspect", image]).status.success() {
            return;
        }
        let mut save = Command::new("docker").args(["save", image]).stdout(Stdio::piped()).spawn().expect("docker save");
        let out = Command::new("docker")
            .args(["-H", &self.host(), "load"])
            .stdin(save.stdout.take().expect("pipe"))
            .output()
            .expect("docker load");
        assert!(save.wait().expect("docker save ends").success(), "docker save {image} failed");
        assert!(out.status.success(), "docker load failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `kill -9` of the engine (its containerd goes with it; containers keep running
    /// under their shims until the engine comes back).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as `systemctl stop docker`: the engine stops its containers, then
    /// exits. Waits for it (60 s at most, then kills it).
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        let _ = sh("kill", &["-TERM", &c.id().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// `stop` then `start_again`, as `systemctl restart docker`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Kills (by pid) the containerd shims whose command line names `exec_root`:
    /// those of containers that outlived a killed engine.
    fn kill_shims(exec_root: &Path) {
        let needle = exec_root.to_string_lossy().to_string();
        let Ok(procs) = std::fs::read_dir("/proc") else { return };
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim") && cmdline.contains(&needle) {
                let _ = sh("kill", &["-9", &pid.to_string()]);
            }
        }
    }

    /// Unmounts whatever is still mounted under `root` (overlays, network
    /// namespaces), deepest first.
    fn unmount_under(root: &Path) {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let prefix = root.to_string_lossy().to_string();
        let mut points: Vec<&str> = mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|p| p.starts_with(&prefix)).collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = sh("umount", &["-l", p]);
        }
    }
}

impl Drop for SecondDockerd {
    fn drop(&mut self) {
        if self.child.is_none() && self.dir.is_some() {
            // Down (killed or stopped by the test): up once more so its containers go.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.start_again()));
        }
        let ids = self.docker(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout).split_whitespace().map(str::to_string).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        let _ = self.docker(&["network", "prune", "-f"]);
        self.stop();
        // Shims of containers that outlived a killed engine.
        Self::kill_shims(&self.path("exec"));
        if let Some(dir) = self.dir.take() {
            Self::unmount_under(dir.path());
            Self::unmount_under(&self.data_root);
            let _ = sh("ip", &["link", "del", &self.bridge]);
            drop(dir);
        }
    }
}
