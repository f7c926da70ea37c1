//! The sandbox backend as the engine sees it: connecting lazily (and reconciling
//! on every new connection), health, and the sandbox image.
//!
//! Architecture Invariant: this is where the engine gets its
//! [`anycode_sandbox::SandboxHost`]; nothing outside the engine holds one, and no
//! crate but `anycode-sandbox` names bollard.

use crate::{BuildEvent, Engine, Result};
use anycode_sandbox::{Docker, SandboxHost};
use std::sync::Arc;
use std::time::Duration;

/// Docker's state as [`Engine::health`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerHealth {
    /// Whether the engine answered.
    pub ok: bool,
    /// The engine's version when it answered.
    pub version: Option<String>,
    /// What to do when it did not.
    pub error: Option<String>,
    /// Where it answered, e.g. `unix:///var/run/docker.sock`.
    pub endpoint: Option<String>,
}

impl Engine {
    /// The connected sandbox backend, connecting (and reconciling) first if needed.
    /// The engine's own: Docker stays behind the [`anycode_sandbox::Backend`] seam,
    /// and the server and CLI use [`Engine::connect`] and [`Engine::health`].
    ///
    /// A new connection's reconcile runs on a task of its own: the caller may hold
    /// a task's lock (a start, a stop, the governor's pause), which reconcile takes
    /// too. Only [`Engine::connect`], which holds none, waits for it.
    ///
    /// Errors: [`Error::DockerUnavailable`] with a sentence saying what to start.
    pub(crate) async fn docker(&self) -> Result<SandboxHost> {
        self.docker_reconciling(false).await
    }

    /// [`Engine::docker`]; a new connection's reconcile is awaited when `wait` (the
    /// caller holds no task lock), else spawned.
    async fn docker_reconciling(&self, wait: bool) -> Result<SandboxHost> {
        let mut guard = self.inner.docker.lock().await;
        let mut reconnect = false;
        if let Some(d) = guard.as_ref() {
            if d.ping(Duration::from_secs(3)).await.is_ok() {
                return Ok(d.clone());
            }
            *guard = None;
            reconnect = true;
        }
        let d: SandboxHost = Arc::new(Docker::connect(&self.inner.instance, self.inner.config.docker_host.as_deref()).await?);
        *guard = Some(d.clone());
        drop(guard);
        tracing::info!(endpoint = %d.endpoint(), reconnect, "connected to Docker");
        if wait {
            self.reconcile_connection(&d).await;
        } else {
            let (engine, d2) = (self.clone(), d.clone());
            tokio::spawn(async move { engine.reconcile_connection(&d2).await });
        }
        Ok(d)
    }

    /// Reconciles with a new connection, then counts it done ([`Engine::connect`]
    /// waits for the first).
    async fn reconcile_connection(&self, d: &SandboxHost) {
        if let Err(e) = self.reconcile_with(d).await {
            tracing::warn!(error = %e, "reconciling with Docker failed");
        }
        self.inner.reconciled.send_modify(|n| *n += 1);
    }

    /// Connects to Docker now (and reconciles tasks with its containers) instead of
    /// at first use; returns the endpoint it answered on, e.g.
    /// `unix:///var/run/docker.sock`.
    ///
    /// Errors: `DOCKER_UNAVAILABLE` with a sentence saying what to start.
    pub async fn connect(&self) -> Result<String> {
        let d = self.docker_reconciling(true).await?;
        // Another caller (the governor's first round) may have made the connection,
        // its reconcile running on its own task: serving before it is done would
        // hand viewers a terminal that is not attached yet.
        let mut done = self.inner.reconciled.subscribe();
        if tokio::time::timeout(Duration::from_secs(120), done.wait_for(|n| *n > 0)).await.is_err() {
            tracing::warn!("the first reconcile with Docker has not finished after 120 s; serving anyway");
        }
        Ok(d.endpoint().to_string())
    }

    /// Whether Docker answers, with its version or what to do.
    pub async fn health(&self) -> DockerHealth {
        match self.docker().await {
            Ok(d) => match d.version().await {
                Ok(v) => DockerHealth { ok: true, version: Some(v), error: None, endpoint: Some(d.endpoint().to_string()) },
                Err(e) => DockerHealth { ok: false, version: None, error: Some(e.to_string()), endpoint: Some(d.endpoint().to_string()) },
            },
            Err(e) => DockerHealth { ok: false, version: None, error: Some(e.to_string()), endpoint: None },
        }
    }

    /// Whether the sandbox image of this configuration ([`crate::sandbox_image_tag`])
    /// exists on the backend; returns its tag with the answer.
    ///
    /// Errors: `DOCKER_UNAVAILABLE`; the build inputs cannot be read.
    pub async fn image_ready(&self) -> Result<(String, bool)> {
        let tag = crate::sandbox_image_tag(&self.inner.config)?;
        let exists = self.docker().await?.image_exists(&tag).await?;
        Ok((tag, exists))
    }

    /// Makes sure the sandbox image exists (building it when missing or outdated,
    /// reporting progress) and returns its tag.
    pub async fn ensure_image(&self, mut progress: impl FnMut(BuildEvent) + Send) -> Result<String> {
        let docker = self.docker().await?;
        let mut guard = self.inner.image.lock().await;
        if let Some(tag) = guard.as_ref() {
            if docker.image_exists(tag).await? {
                return Ok(tag.clone());
            }
        }
        let cfg = &self.inner.config;
        let tag = docker.ensure_image(cfg.image.as_deref(), cfg.extra_ca_dir.as_deref(), &mut progress).await?;
        *guard = Some(tag.clone());
        Ok(tag)
    }
}
