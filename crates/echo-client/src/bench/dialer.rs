//! Opening a bench connection: the address resolved once, then for each
//! connection TCP (or a UDP socket), the PROXY header, TLS and the greeting,
//! all within the timeout. The run opens its connections with it, and, with
//! [`reconnect`](super::BenchConfig::reconnect), opens them again with it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ClientError;
use crate::greeting;
use crate::mode::Mode;
use crate::proxy::ProxyProtocol;
use crate::tls::Connector;
use crate::transport::{self, Dial, Link};

/// Everything needed to open one more connection of a run.
#[derive(Debug)]
pub(super) struct Dialer {
    /// The address as the user gave it, for error messages and TLS.
    addr: String,
    /// What it resolved to, once for the run.
    candidates: Arc<[SocketAddr]>,
    mode: Mode,
    timeout: Duration,
    expect_greeting: bool,
    proxy: Option<ProxyProtocol>,
    /// The TLS settings, their files read once for every connection.
    tls: Option<Connector>,
}

/// A connection just opened.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) link: Link,
    /// The server instance that greeted it, if greetings are expected.
    pub(super) instance: Option<String>,
}

impl Dialer {
    /// Resolves the address of `config`, within its timeout, and reads its
    /// TLS files.
    pub(super) async fn new(config: &super::BenchConfig) -> Result<Self, ClientError> {
        let candidates = tokio::time::timeout(config.timeout, transport::resolve(&config.addr))
            .await
            .map_err(|_elapsed| ClientError::connect_timeout(&config.addr, config.timeout))??;
        let tls = config
            .tls
            .as_ref()
            .map(|tls| tls.connector(&config.addr))
            .transpose()?;
        Ok(Self {
            addr: config.addr.clone(),
            candidates: candidates.into(),
            mode: config.mode,
            timeout: config.timeout,
            expect_greeting: config.expect_greeting,
            proxy: config.proxy_protocol,
            tls,
        })
    }

    /// Opens one connection, and reads its greeting if one is expected:
    /// each within the timeout.
    pub(super) async fn open(&self) -> Result<Opened, ClientError> {
        let dial = Dial {
            mode: self.mode,
            proxy: self.proxy.as_ref(),
            tls: self.tls.as_ref(),
        };
        let opening = transport::open(&self.addr, &self.candidates, dial);
        let mut link = tokio::time::timeout(self.timeout, opening)
            .await
            .unwrap_or_else(|_elapsed| {
                Err(ClientError::connect_timeout(&self.addr, self.timeout))
            })?;
        // The greeting, like an echo, gets a timeout of its own.
        let instance = if self.expect_greeting {
            let greeting =
                greeting::receive(&mut link.receiver, &self.addr, self.mode, self.timeout).await?;
            Some(greeting.instance)
        } else {
            None
        };
        Ok(Opened { link, instance })
    }
}
