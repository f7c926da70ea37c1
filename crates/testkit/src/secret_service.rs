//! A real, private Secret Service for keyring tests: its own D-Bus session bus and
//! an unlocked gnome-keyring-daemon in it, with the keyring files in a temporary
//! HOME, so tests neither see nor touch the user's keyring and can lock it freely.
//!
//! Needs `dbus-daemon`, `gnome-keyring-daemon` and `secret-tool` (Debian:
//! `dbus`, `gnome-keyring`, `libsecret-tools`; scripts/test.sh installs them).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of the test keyring's `login` collection.
pub const KEYRING_PASSWORD: &str = "anycode-test-keyring";

/// A private session bus with gnome-keyring's Secret Service; both are killed on drop.
pub struct SecretService {
    _dir: tempfile::TempDir,
    home: PathBuf,
    /// `unix:path=…` of the private bus: what `DBUS_SESSION_BUS_ADDRESS` must say.
    pub address: String,
    bus: Child,
    keyring: Option<Child>,
}

impl SecretService {
    /// Starts the bus and the keyring (its `login` collection unlocked), and points
    /// this process's `DBUS_SESSION_BUS_ADDRESS` at it. Panics with a hint when the
    /// programs are missing.
    ///
    /// The environment is per process: with nextest every test is its own process.
    pub fn start() -> SecretService {
        let s = SecretService::start_detached();
        std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &s.address);
        s
    }

    /// Like [`SecretService::start`] but leaves this process's environment alone
    /// (for child processes given [`SecretService::env`]).
    pub fn start_detached() -> SecretService {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_path_buf();
        for d in ["run", "data", "config", "cache"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let socket = home.join("bus");
        // The bus gets the private HOME too: services it starts by activation would
        // otherwise open the real user's keyring.
        let mut bus = env_for(Command::new("dbus-daemon"), &home)
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("dbus-daemon does not start ({e}): install dbus (scripts/test.sh does)"));
        let mut line = String::new();
        std::io::BufReader::new(bus.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let address = line.trim().to_string();
        assert!(address.starts_with("unix:"), "dbus-daemon printed {line:?}");
        let mut s = SecretService { _dir: dir, home, address, bus, keyring: None };
        s.start_keyring();
        s
    }

    fn command(&self, program: &str) -> Command {
        let mut c = env_for(Command::new(program), &self.home);
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        c
    }

    fn start_keyring(&mut self) {
        let mut child = self
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("gnome-keyring-daemon does not start ({e}): install gnome-keyring (scripts/test.sh does)"));
        {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(KEYRING_PASSWORD.as_bytes()).unwrap();
        }
        self.keyring = Some(child);
        // Ready once it owns the Secret Service's bus name (asking the service itself
        // earlier would start a second keyring daemon by D-Bus activation).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = self
                .command("dbus-send")
                .args(["--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus"])
                .args(["org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.secrets"])
                .output()
                .expect("dbus-send runs");
            if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
                break;
            }
            assert!(Instant::now() < deadline, "gnome-keyring-daemon did not come up on {}", self.address);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `secret-tool` against this Secret Service; its stdout when it succeeded.
    pub fn secret_tool(&self, args: &[&str]) -> Option<String> {
        let out = self.command("secret-tool").args(args).stdin(Stdio::null()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Locks the `login` collection, as a screen lock or a fresh login session does
    /// (the Secret Service's own `Lock` method: `secret-tool lock` waits forever here).
    pub fn lock(&self) {
        let out = self
            .command("dbus-send")
            .args(["--session", "--print-reply", "--reply-timeout=5000", "--dest=org.freedesktop.secrets", "/org/freedesktop/secrets"])
            .args(["org.freedesktop.Secret.Service.Lock", "array:objpath:/org/freedesktop/secrets/collection/login"])
            .output()
            .expect("dbus-send runs");
        assert!(out.status.success(), "locking the keyring failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Environment variables that point a child process at this Secret Service.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("DBUS_SESSION_BUS_ADDRESS".into(), self.address.clone())]
    }
}

fn env_for(mut c: Command, home: &std::path::Path) -> Command {
    c.env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    c
}

impl Drop for SecretService {
    fn drop(&mut self) {
        if let Some(k) = &mut self.keyring {
            let _ = k.kill();
            let _ = k.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

/// Credential sources that look only at the keyring entries under `service` (in
/// whatever Secret Service this process sees) and at Claude Code's login under
/// `claude_config_dir`: nothing from the environment, keyring calls bounded to 5 s.
pub fn credential_sources(service: &str, claude_config_dir: &std::path::Path) -> anycode_credentials::Sources {
    anycode_credentials::Sources {
        keyring_service: Some(service.to_string()),
        claude_config_dir: Some(claude_config_dir.to_path_buf()),
        env: vec![],
        keyring_timeout: Duration::from_secs(5),
    }
}
