//! [`Control`] implementations for Docker's two kinds of TTY: a container's main
//! process (attach) and an exec session.

use anycode_sandbox::{PtyResizer, SandboxHost};
use anycode_terminal::Control;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::time::Duration;

/// The container's main process.
pub(crate) struct ContainerControl {
    pub docker: SandboxHost,
    pub id: String,
    /// True when attached before `start`: the exit to wait for is the next one, not
    /// the "not running" state the container is in until it starts.
    pub before_start: bool,
}

impl Control for ContainerControl {
    fn resize(&self, cols: u16, rows: u16) -> BoxFuture<'static, ()> {
        let (d, id) = (self.docker.clone(), self.id.clone());
        async move {
            if let Err(e) = d.resize(&id, cols, rows).await {
                tracing::debug!(container = %id, error = %e, "resize failed");
            }
        }
        .boxed()
    }

    fn wait_exit(&self) -> BoxFuture<'static, Option<i64>> {
        // Docker's attach stream does not always end when the container stops
        // (seen with Docker Desktop), so the container's end is watched on its own.
        let (d, id, next) = (self.docker.clone(), self.id.clone(), self.before_start);
        async move {
            loop {
                match d.wait(&id, next).await {
                    Ok(code) => return code,
                    Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
                }
            }
        }
        .boxed()
    }

    fn exit_code(&self) -> BoxFuture<'static, Option<i64>> {
        let (d, id) = (self.docker.clone(), self.id.clone());
        async move { tokio::time::timeout(Duration::from_secs(10), d.wait(&id, false)).await.ok().and_then(|r| r.ok()).flatten() }
            .boxed()
    }
}

/// An exec session.
pub(crate) struct ExecControl {
    pub docker: SandboxHost,
    pub exec_id: String,
    /// The PTY held in the sandbox (`anycode-pty`), when it is; Docker's exec resize
    /// otherwise.
    pub pty: Option<PtyResizer>,
}

impl Control for ExecControl {
    fn resize(&self, cols: u16, rows: u16) -> BoxFuture<'static, ()> {
        if let Some(pty) = &self.pty {
            // Ordered with the terminal's input on the holder's stdin; nothing to wait for.
            pty.resize(cols, rows);
            return futures_util::future::ready(()).boxed();
        }
        let (d, id) = (self.docker.clone(), self.exec_id.clone());
        async move {
            if let Err(e) = d.resize_exec(&id, cols, rows).await {
                tracing::debug!(exec = %id, error = %e, "resize failed");
            }
        }
        .boxed()
    }

    fn wait_exit(&self) -> BoxFuture<'static, Option<i64>> {
        // An exec stream reliably ends with its process.
        futures_util::future::pending().boxed()
    }

    fn exit_code(&self) -> BoxFuture<'static, Option<i64>> {
        let (d, id) = (self.docker.clone(), self.exec_id.clone());
        async move {
            for _ in 0..20 {
                match d.exec_exit_code(&id).await {
                    Ok(Some(c)) => return Some(c),
                    Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(_) => return None,
                }
            }
            None
        }
        .boxed()
    }
}
