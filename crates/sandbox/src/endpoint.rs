//! Docker engines named the way the Docker CLI names them: `unix:///path`,
//! `tcp://host:port` (plain, or TLS with a CA, a client certificate and its key),
//! and `ssh://[user@]host[:port]`.
//!
//! An `ssh://` engine is reached as the Docker CLI reaches it: each connection is a
//! new `ssh … -- [user@]host docker system dial-stdio` child speaking HTTP over its
//! stdin and stdout. AnyCode listens on a Unix socket of its own (a 0700 temporary
//! folder) and pipes every accepted connection through such a child, so bollard and
//! the raw TTY streams ([`crate::hijack`]) see a plain Unix-socket engine. The
//! forwarder lives as long as the last clone of the [`Docker`] handle.
//!
//! TLS material is read from the given paths at connect time; the paths may be
//! logged and shown, their contents never are.

use crate::{hijack, Docker, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(unix)]
use std::sync::Mutex;
use std::time::Duration;
#[cfg(unix)]
use tokio::io::AsyncWriteExt;

/// How long a new engine has to answer its first ping (ssh included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The TLS files of a `tcp://` engine, as the Docker CLI's `--tlscacert`,
/// `--tlscert` and `--tlskey` (PEM files). The server's certificate must be signed
/// by `ca` and name the endpoint's host; `cert` and `key` authenticate AnyCode.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsPaths {
    /// The CA certificate(s) the engine's certificate must chain to.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// The client certificate's private key (only its path is ever shown).
    pub key: PathBuf,
}

impl std::fmt::Debug for TlsPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPaths").field("ca", &self.ca).field("cert", &self.cert).field("key", &self.key).finish()
    }
}

/// A Docker engine's address: `url` as `DOCKER_HOST` takes it, with TLS files for
/// `tcp://` engines that need them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `unix:///var/run/docker.sock`, `tcp://box:2376`, `ssh://user@box[:port]`.
    pub url: String,
    /// TLS files; only for `tcp://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPaths>,
}

/// What an endpoint URL names, after [`Endpoint::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Unix socket path.
    Unix(PathBuf),
    /// `host:port` over TCP (port 2375 by default, 2376 with TLS, as the Docker CLI).
    Tcp {
        /// Host name or address (IPv6 in brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// An engine behind SSH.
    Ssh {
        /// The remote user, when the URL names one.
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// SSH port, when the URL names one.
        port: Option<u16>,
    },
}

impl Endpoint {
    /// An endpoint without TLS.
    pub fn new(url: impl Into<String>) -> Endpoint {
        Endpoint { url: url.into(), tls: None }
    }

    /// Checks the URL and says what it names.
    ///
    /// Errors: [`Error::BadEndpoint`] for another scheme, a missing host or socket
    /// path, a path, query or password where none belongs, or TLS files on a
    /// non-`tcp://` endpoint.
    pub fn parse(&self) -> Result<Target> {
        let bad = |why: &str| {
            Error::BadEndpoint(format!(
                "{why} in Docker endpoint {:?}; use unix:///path/to/docker.sock, tcp://host:port (with TLS files for TLS) or ssh://user@host[:port]",
                self.url
            ))
        };
        let url = url::Url::parse(self.url.trim()).map_err(|e| bad(&format!("{e}")))?;
        if url.query().is_some() || url.fragment().is_some() || url.password().is_some() {
            return Err(bad("a password, query or fragment"));
        }
        if self.tls.is_some() && url.scheme() != "tcp" {
            return Err(bad("TLS files are only for tcp:// endpoints"));
        }
        match url.scheme() {
            "unix" => {
                if url.host_str().is_some_and(|h| !h.is_empty()) || url.path().len() < 2 {
                    return Err(bad("no socket path (three slashes: unix:///path)"));
                }
                Ok(Target::Unix(PathBuf::from(url.path())))
            }
            "tcp" => {
                let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
                if !matches!(url.path(), "" | "/") || !url.username().is_empty() {
                    return Err(bad("a path or user name"));
                }
                let port = url.port().unwrap_or(if self.tls.is_some() { 2376 } else { 2375 });
                Ok(Target::Tcp { host: host.to_string(), port })
            }
            "ssh" => {
                let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
                if !matches!(url.path(), "" | "/") {
                    return Err(bad("a path"));
                }
                let user = Some(url.username()).filter(|u| !u.is_empty()).map(str::to_string);
                if host.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
                    return Err(bad("a host or user starting with '-'"));
                }
                Ok(Target::Ssh { user, host: host.to_string(), port: url.port() })
            }
            other => Err(bad(&format!("the scheme {other}:// is not supported"))),
        }
    }
}

impl Docker {
    /// Connects to the engine at `endpoint` (see the module notes), negotiates the
    /// API version and checks that it answers a ping within 20 s. `instance` scopes
    /// the containers this handle lists and owns, as in [`Docker::connect`]. `ssh://`
    /// runs `ssh` from `PATH` (see [`Docker::connect_endpoint_with_ssh`]).
    ///
    /// Errors: [`Error::BadEndpoint`]; [`Error::TlsFiles`] (a file unreadable or not
    /// PEM, named by path); [`Error::SshMissing`]; [`Error::Unreachable`] (no answer,
    /// refused, TLS handshake failed, ssh failed: with ssh's last words).
    pub async fn connect_endpoint(instance: &str, endpoint: &Endpoint) -> Result<Docker> {
        Docker::connect_endpoint_with_ssh(instance, endpoint, Path::new("ssh")).await
    }

    /// [`Docker::connect_endpoint`] with the `ssh` program to run for `ssh://`
    /// endpoints (a path, or a name looked up in `PATH`). It is run as
    /// `ssh -o BatchMode=yes -o ConnectTimeout=20 -T [-l user] [-p port] -- host docker system dial-stdio`,
    /// so the user's `~/.ssh/config`, agent and known hosts apply, and it never asks
    /// for a password.
    pub async fn connect_endpoint_with_ssh(instance: &str, endpoint: &Endpoint, ssh: &Path) -> Result<Docker> {
        let target = endpoint.parse()?;
        let shown = endpoint.url.trim().to_string();
        let unreachable = |reason: String| Error::Unreachable { endpoint: shown.clone(), reason };
        let (api, raw, forwarder) = match &target {
            #[cfg(unix)]
            Target::Unix(path) => {
                let s = path.to_string_lossy();
                let api = bollard::Docker::connect_with_socket(&s, 120, bollard::API_DEFAULT_VERSION).map_err(|e| unreachable(e.to_string()))?;
                (api, hijack::Endpoint::Unix(s.into_owned()), None)
            }
            #[cfg(not(unix))]
            Target::Unix(_) | Target::Ssh { .. } => return Err(Error::BadEndpoint("unix:// and ssh:// endpoints need a Unix system".into())),
            Target::Tcp { host, port } => {
                let addr = format!("{host}:{port}");
                match &endpoint.tls {
                    None => {
                        let api = bollard::Docker::connect_with_http(&format!("http://{addr}"), 120, bollard::API_DEFAULT_VERSION)
                            .map_err(|e| unreachable(e.to_string()))?;
                        (api, hijack::Endpoint::Tcp(addr), None)
                    }
                    Some(tls) => {
                        let config = tls_config(tls)?;
                        let server_name = rustls_pki_types::ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
                            .map_err(|e| Error::BadEndpoint(format!("{host} is not a host name TLS can check: {e}")))?;
                        // bollard's TLS client takes the process's default provider;
                        // the workspace enables two, so one must be chosen.
                        if rustls::crypto::CryptoProvider::get_default().is_none() {
                            let _ = rustls::crypto::ring::default_provider().install_default();
                        }
                        let api = bollard::Docker::connect_with_ssl(
                            &format!("https://{addr}"),
                            &tls.key,
                            &tls.cert,
                            &tls.ca,
                            120,
                            bollard::API_DEFAULT_VERSION,
                        )
                        .map_err(|e| unreachable(format!("setting up TLS: {e}")))?;
                        (api, hijack::Endpoint::Tls { addr, server_name, config }, None)
                    }
                }
            }
            #[cfg(unix)]
            Target::Ssh { user, host, port } => {
                let fwd = SshForwarder::start(ssh, user.as_deref(), host, *port).await?;
                let sock = fwd.socket.to_string_lossy().into_owned();
                let api = bollard::Docker::connect_with_socket(&sock, 120, bollard::API_DEFAULT_VERSION).map_err(|e| unreachable(e.to_string()))?;
                (api, hijack::Endpoint::Unix(sock), Some(Arc::new(fwd)))
            }
        };
        let attempt = async {
            let api = api.negotiate_version().await?;
            api.ping().await?;
            Ok::<_, bollard::errors::Error>(api)
        };
        let said = |fwd: &Option<Arc<SshForwarder>>| {
            #[cfg(unix)]
            return fwd.as_ref().map(|f| f.last_stderr()).filter(|s| !s.is_empty()).map(|s| format!(" (ssh said: {s})")).unwrap_or_default();
            #[cfg(not(unix))]
            return { let _ = fwd; String::new() };
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(api)) => Ok(Docker { api, instance: instance.to_string(), raw: Some(raw), endpoint: shown, _forwarder: forwarder, no_pty_holder: Default::default() }),
            Ok(Err(e)) => Err(unreachable(format!("{}{}", error_chain(&e), said(&forwarder)))),
            Err(_) => Err(unreachable(format!("no answer within {} s{}", CONNECT_TIMEOUT.as_secs(), said(&forwarder)))),
        }
    }
}

/// An error with its sources, one sentence (bollard's top-level messages, such as
/// "error trying to connect", hide the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

/// Reads a PEM file. Errors name the path, never the contents.
fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::TlsFiles(format!("the TLS {what} file {} cannot be read: {e}", path.display())))
}

/// The TLS client configuration of the raw TTY connections: only `tls.ca` is
/// trusted (as the Docker CLI with `--tlsverify`), and the client certificate is
/// presented. Also checks every file before bollard reads them.
fn tls_config(tls: &TlsPaths) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, path: &Path, why: String| Error::TlsFiles(format!("the TLS {what} file {} is not usable: {why}", path.display()));
    let ca_pem = read_pem("CA", &tls.ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        let cert = cert.map_err(|e| bad("CA", &tls.ca, e.to_string()))?;
        roots.add(cert).map_err(|e| bad("CA", &tls.ca, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("CA", &tls.ca, "no PEM certificate in it".into()));
    }
    let cert_pem = read_pem("certificate", &tls.cert)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&cert_pem).collect::<std::result::Result<_, _>>().map_err(|e| bad("certificate", &tls.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("certificate", &tls.cert, "no PEM certificate in it".into()));
    }
    let key_pem = read_pem("key", &tls.key)?;
    // The parser's messages may quote lines of the file: none of the key's is shown.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| bad("key", &tls.key, "not a PEM private key (PKCS#8, PKCS#1 or SEC1)".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsFiles(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| Error::TlsFiles(format!("the TLS certificate {} and key {} do not go together: {e}", tls.cert.display(), tls.key.display())))?;
    Ok(Arc::new(config))
}

/// Nothing to forward on systems without Unix sockets.
#[cfg(not(unix))]
pub(crate) struct SshForwarder;

/// A Unix socket whose every connection is piped through a new
/// `ssh … docker system dial-stdio`. Dropping it stops accepting, kills the
/// children of open connections and removes the socket's folder.
#[cfg(unix)]
pub(crate) struct SshForwarder {
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
    last_stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

#[cfg(unix)]
impl Drop for SshForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(unix)]
impl SshForwarder {
    async fn start(ssh: &Path, user: Option<&str>, host: &str, port: Option<u16>) -> Result<SshForwarder> {
        // `ssh -V` answers without connecting anywhere: is the program there?
        match tokio::process::Command::new(ssh).arg("-V").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::SshMissing(format!(
                    "ssh:// endpoints need the OpenSSH client, and {} was not found; install it (e.g. `apt-get install openssh-client`) or use tcp:// with TLS",
                    ssh.display()
                )))
            }
            Err(e) => return Err(Error::SshMissing(format!("{} cannot be run: {e}", ssh.display()))),
        }
        let dir = tempfile::Builder::new().prefix("anycode-ssh-").tempdir().map_err(|e| Error::Io(format!("a folder for the ssh forwarder: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::Io(format!("{}: {e}", dir.path().display())))?;
        }
        let socket = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&socket).map_err(|e| Error::Io(format!("listening on {}: {e}", socket.display())))?;
        let mut args: Vec<String> = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-T"].map(String::from).to_vec();
        if let Some(u) = user {
            args.extend(["-l".into(), u.to_string()]);
        }
        if let Some(p) = port {
            args.extend(["-p".into(), p.to_string()]);
        }
        args.extend(["--".into(), host.to_string(), "docker".into(), "system".into(), "dial-stdio".into()]);
        let last_stderr = Arc::new(Mutex::new(String::new()));
        let (program, said) = (ssh.to_path_buf(), last_stderr.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((conn, _)) => {
                            conns.spawn(pipe_through_ssh(conn, program.clone(), args.clone(), said.clone()));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the ssh forwarder stopped accepting");
                            break;
                        }
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(SshForwarder { socket, task, last_stderr, _dir: dir })
    }

    /// ssh's last stderr line of any connection (e.g. `Permission denied (publickey).`).
    fn last_stderr(&self) -> String {
        self.last_stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(unix)]
/// One forwarded connection: a new ssh child, bytes both ways until either side
/// ends. The child is killed when the connection (or the forwarder) goes.
async fn pipe_through_ssh(conn: tokio::net::UnixStream, ssh: PathBuf, args: Vec<String>, said: Arc<Mutex<String>>) {
    use tokio::io::AsyncBufReadExt;
    let child = tokio::process::Command::new(&ssh)
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            *said.lock().unwrap_or_else(|p| p.into_inner()) = format!("{} cannot be run: {e}", ssh.display());
            return;
        }
    };
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take()) else {
        return;
    };
    let errs = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line: String = line.chars().filter(|c| !c.is_control()).take(300).collect();
            if !line.trim().is_empty() {
                tracing::debug!(ssh = %line, "ssh forwarder");
                *said.lock().unwrap_or_else(|p| p.into_inner()) = line;
            }
        }
    });
    let (mut rd, mut wr) = conn.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut rd, &mut stdin).await;
        let _ = stdin.shutdown().await;
        drop(stdin);
    };
    let down = async {
        let _ = tokio::io::copy(&mut stdout, &mut wr).await;
        let _ = wr.shutdown().await;
    };
    // The engine's answer ending (ssh exited) ends the connection; the client
    // closing its side closes ssh's stdin, and dial-stdio then ends too.
    tokio::join!(up, down);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    errs.abort();
}
