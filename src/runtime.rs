//! The driver: owns the core behind a mutex, ticks it, feeds it link results,
//! and executes its actions (links, events, config flushes).
//!
//! [`Shared`] is the handle every part of the daemon holds: the RESP server's
//! command handlers lock `core` for a short, synchronous critical section
//! (never across an `.await`), get back a reply plus `Action`s, and hand the
//! actions to [`Shared::execute`].

use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::core::{Action, Millis, Sentinel};
use crate::server::pubsub::Hub;

/// Why a config flush failed (SENTINEL SET/MONITOR/... then answer
/// `-ERR Failed to save config file. Check server logs.`).
#[derive(Debug, thiserror::Error)]
#[error("failed to save config file: {0}")]
pub struct FlushError(pub String);

pub struct Shared {
    /// The core state machine. Lock briefly; never hold across `.await`.
    pub core: Mutex<Sentinel>,
    /// Local pub/sub: events are published here for SUBSCRIBE/PSUBSCRIBE clients.
    pub hub: Hub,
    /// Generic server configuration (port, auth, limits, ...).
    pub server: Mutex<ServerConfig>,
    /// Origin of the monotonic clock given to the core.
    pub started: Instant,
    /// Link-level actions go to the driver task.
    pub driver_tx: mpsc::UnboundedSender<Action>,
    /// Cancelled on SHUTDOWN, SIGTERM or SIGINT: everything drains and exits.
    pub shutdown: CancellationToken,
}

impl Shared {
    /// Monotonic milliseconds for the core (tokio's clock: pausable in tests).
    pub fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }
}
