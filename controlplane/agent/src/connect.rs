//! Channels to the control plane: a list of node addresses (`host:port`, `http://host:port`
//! or `https://host:port`, comma-separated on the command line) tried in turn, optional TLS
//! verified against a CA file, and the bearer token sent with every call.
//!
//! `aegis_controlplane::client` (aegisctl, the nodes' peer links) builds its channels with
//! [`ConnectConfig::lazy_channel`] too, so every client of the control plane connects the
//! same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Default time to wait for a TCP (and TLS) connection to one node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the control plane could not be reached or the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No address was given.
    #[error("no control-plane address given")]
    NoAddress,
    /// An address is not `host:port` or a URL.
    #[error("bad control-plane address {addr:?}: {reason}")]
    Address {
        /// The address given.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// The CA file could not be read.
    #[error("cannot read the CA certificate {}: {source}", path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The token cannot be sent as a header.
    #[error("the control-plane token contains characters that cannot be sent in a header")]
    Token,
    /// Every node refused or timed out.
    #[error("no control-plane node answered ({0})")]
    Unreachable(String),
}

/// How to reach and authenticate to the control plane.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// Node addresses, tried in order.
    pub addresses: Vec<String>,
    /// PEM CA certificate: connect with TLS and verify the server against it.
    pub ca: Option<Vec<u8>>,
    /// Bearer token sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Connect timeout per node.
    pub connect_timeout: Duration,
    /// Server name to verify in TLS (default: the host part of the address).
    pub tls_domain: Option<String>,
}

impl ConnectConfig {
    /// A configuration from a comma-separated address list, an optional token and an
    /// optional CA file (read now, so a bad path fails at start-up).
    pub fn new(
        addresses: &str,
        token: Option<String>,
        ca_file: Option<&Path>,
    ) -> Result<ConnectConfig, ConnectError> {
        let addresses: Vec<String> = addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if addresses.is_empty() {
            return Err(ConnectError::NoAddress);
        }
        let ca = match ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|source| ConnectError::Ca {
                path: path.to_path_buf(),
                source,
            })?),
            None => None,
        };
        let config = ConnectConfig {
            addresses,
            ca,
            token: token.filter(|t| !t.is_empty()),
            connect_timeout: CONNECT_TIMEOUT,
            tls_domain: None,
        };
        // Reject bad addresses and tokens now rather than on every retry.
        for addr in &config.addresses {
            config.endpoint(addr)?;
        }
        config.auth()?;
        Ok(config)
    }

    /// The endpoint of one node: TLS when a CA is configured or the scheme is https.
    fn endpoint(&self, addr: &str) -> Result<Endpoint, ConnectError> {
        let tls = self.ca.is_some() || addr.starts_with("https://");
        let url = if addr.contains("://") {
            addr.to_owned()
        } else if tls {
            format!("https://{addr}")
        } else {
            format!("http://{addr}")
        };
        let bad = |reason: String| ConnectError::Address {
            addr: addr.to_owned(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(url).map_err(|e| bad(e.to_string()))?;
        endpoint = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        if tls {
            let mut tls_config = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &self.ca {
                tls_config = tls_config.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some(domain) = &self.tls_domain {
                tls_config = tls_config.domain_name(domain.clone());
            }
            endpoint = endpoint
                .tls_config(tls_config)
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(endpoint)
    }

    /// A channel to `addr` that connects on first use (and reconnects after failures), with
    /// this configuration's TLS and token.
    pub fn lazy_channel(&self, addr: &str) -> Result<AuthChannel, ConnectError> {
        Ok(InterceptedService::new(
            self.endpoint(addr)?.connect_lazy(),
            self.auth()?,
        ))
    }

    fn auth(&self) -> Result<Auth, ConnectError> {
        match &self.token {
            Some(t) => Ok(Auth(Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| ConnectError::Token)?,
            ))),
            None => Ok(Auth(None)),
        }
    }
}

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel that adds the token.
pub type AuthChannel = InterceptedService<Channel, Auth>;

/// Hands out a connected channel, moving on to the next address when the caller reports
/// that the current one failed.
#[derive(Debug)]
pub struct Connector {
    config: ConnectConfig,
    /// The address tried first next time.
    next: usize,
    /// The channel in use and the address it goes to.
    current: Option<(AuthChannel, String)>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Auth(token)"
        } else {
            "Auth(none)"
        })
    }
}

impl Connector {
    /// A connector for `config` (nothing is connected yet).
    pub fn new(config: ConnectConfig) -> Connector {
        Connector {
            config,
            next: 0,
            current: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ConnectConfig {
        &self.config
    }

    /// The channel in use, or a new one to the first node (from the one after the last
    /// failure, round-robin) that accepts a connection.
    pub async fn channel(&mut self) -> Result<AuthChannel, ConnectError> {
        if let Some((ch, _)) = &self.current {
            return Ok(ch.clone());
        }
        let auth = self.config.auth()?;
        let n = self.config.addresses.len();
        let mut failures = Vec::new();
        for i in 0..n {
            let index = (self.next + i) % n;
            let addr = &self.config.addresses[index];
            let endpoint = self.config.endpoint(addr)?;
            match endpoint.connect().await {
                Ok(channel) => {
                    tracing::debug!(server = %addr, "connected to the control plane");
                    let ch = InterceptedService::new(channel, auth);
                    self.next = index;
                    self.current = Some((ch.clone(), addr.clone()));
                    return Ok(ch);
                }
                Err(e) => failures.push(format!("{addr}: {}", error_chain(&e))),
            }
        }
        Err(ConnectError::Unreachable(failures.join("; ")))
    }

    /// The address of the channel in use.
    pub fn current_address(&self) -> Option<&str> {
        self.current.as_ref().map(|(_, a)| a.as_str())
    }

    /// Drops the channel in use; the next [`channel`](Self::channel) starts with the
    /// following address.
    pub fn failed(&mut self) {
        if self.current.take().is_some() {
            self.next = (self.next + 1) % self.config.addresses.len().max(1);
        }
    }
}

/// An error with its sources, `a: b: c` (tonic's transport errors hide the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_address_lists() {
        let c = ConnectConfig::new(" 10.0.0.1:7400, ,10.0.0.2:7400", None, None).unwrap();
        assert_eq!(c.addresses, ["10.0.0.1:7400", "10.0.0.2:7400"]);
        assert!(matches!(
            ConnectConfig::new(" , ", None, None),
            Err(ConnectError::NoAddress)
        ));
        assert!(matches!(
            ConnectConfig::new("http://[bad", None, None),
            Err(ConnectError::Address { .. })
        ));
        assert!(matches!(
            ConnectConfig::new("a:1", Some("bad\ntoken".into()), None),
            Err(ConnectError::Token)
        ));
        let e = ConnectConfig::new("a:1", None, Some(Path::new("/nonexistent/ca.pem")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[tokio::test]
    async fn unreachable_names_every_address() {
        // Port 1 on loopback: refused at once.
        let mut c =
            Connector::new(ConnectConfig::new("127.0.0.1:1,127.0.0.1:2", None, None).unwrap());
        let e = c.channel().await.unwrap_err().to_string();
        assert!(
            e.contains("127.0.0.1:1") && e.contains("127.0.0.1:2"),
            "{e}"
        );
        assert!(c.current_address().is_none());
    }
}
