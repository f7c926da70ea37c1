//! A container's Docker networks: AnyCode disconnects a sandbox of `allowlist` or
//! `none` mode from every network before it starts (it then has only loopback, and
//! reaches AnyCode through its relay), and connects one of `open` mode to Docker's
//! default `bridge`.

use crate::{is_not_found, Docker, Error, Result};
use bollard::network::{ConnectNetworkOptions, DisconnectNetworkOptions};

/// Docker's default network, the one `open` sandboxes use.
pub const DEFAULT_NETWORK: &str = "bridge";

impl Docker {
    /// [`Backend::container_networks`] on this engine.
    pub async fn container_networks(&self, id: &str) -> Result<Vec<String>> {
        let c = self.api.inspect_container(id, None).await.map_err(|e| if is_not_found(&e) { Error::NoSuchContainer(id.to_string()) } else { e.into() })?;
        let mut names: Vec<String> = c.network_settings.and_then(|n| n.networks).map(|n| n.into_keys().collect()).unwrap_or_default();
        names.sort();
        Ok(names)
    }

    /// [`Backend::network_connect`] on this engine.
    pub async fn network_connect(&self, id: &str, network: &str) -> Result<()> {
        if self.container_networks(id).await?.iter().any(|n| n == network) {
            return Ok(());
        }
        let opts = ConnectNetworkOptions::<String> { container: id.to_string(), ..Default::default() };
        self.api.connect_network(network, opts).await.map_err(|e| if is_not_found(&e) { Error::NoSuchContainer(id.to_string()) } else { e.into() })
    }

    /// [`Backend::network_disconnect`] on this engine.
    pub async fn network_disconnect(&self, id: &str, network: &str) -> Result<()> {
        let opts = DisconnectNetworkOptions::<String> { container: id.to_string(), force: true };
        match self.api.disconnect_network(network, opts).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::NoSuchContainer(id.to_string())),
            // "is not connected to network": nothing to do.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 403 | 500, message }) if message.contains("not connected") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Backend::network_isolate`] on this engine.
    pub async fn network_isolate(&self, id: &str) -> Result<()> {
        for n in self.container_networks(id).await? {
            self.network_disconnect(id, &n).await?;
        }
        Ok(())
    }
}
