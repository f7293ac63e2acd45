//! Clients of the hosts' dataplanes (`DataplaneDiagnostics` at each host's heartbeat
//! `diag_address`), cached by address: a lazily connecting channel that carries the control
//! plane's bearer token (the one the dataplanes present to it, and check in turn). Entries
//! for addresses no host reports any more are dropped by [`Dataplanes::retain`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aegis_api::dataplane::v1::dataplane_diagnostics_client::DataplaneDiagnosticsClient;
use tonic::Status;

use crate::client::{channel, AuthChannel, ClientConfig};
use crate::server::node::lock;

/// A dataplane's diagnostics client.
pub type DataplaneClient = DataplaneDiagnosticsClient<AuthChannel>;

/// Time to open a TCP connection to a dataplane.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The cache.
pub struct Dataplanes {
    config: ClientConfig,
    clients: Mutex<HashMap<String, DataplaneClient>>,
}

impl Dataplanes {
    /// Clients that present `token` (plain TCP: the diagnostics listener serves no TLS).
    pub fn new(token: Option<String>) -> Self {
        Dataplanes {
            config: ClientConfig {
                token,
                connect_timeout: Some(CONNECT_TIMEOUT),
                ..ClientConfig::default()
            },
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client of the dataplane at `addr` ("IP:PORT"), made on first use.
    pub fn client(&self, addr: &str) -> Result<DataplaneClient, Status> {
        let mut clients = lock(&self.clients);
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let ch = channel(addr, &self.config).map_err(|e| Status::internal(e.to_string()))?;
        let c = DataplaneDiagnosticsClient::new(ch);
        clients.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    /// Forgets the clients of addresses `keep` refuses.
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        lock(&self.clients).retain(|a, _| keep(a));
    }

    /// Clients cached.
    pub fn len(&self) -> usize {
        lock(&self.clients).len()
    }

    /// No client cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_client_per_address_until_forgotten() {
        let d = Dataplanes::new(Some("tok".into()));
        d.client("10.99.0.11:7401").unwrap();
        d.client("10.99.0.11:7401").unwrap();
        d.client("10.99.0.12:7401").unwrap();
        assert_eq!(d.len(), 2);
        d.retain(&|a| a == "10.99.0.12:7401");
        assert_eq!(d.len(), 1);
        assert!(d.client("not an address").is_err());
    }
}
