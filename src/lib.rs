//! raftinel: a Redis failover daemon, drop-in compatible with redis-sentinel
//! 7.0.15 on the wire, in its config file and in its events.
//!
//! Layout (a reader looking for where things happen):
//! - `core/`    the pure state machine: detection, hello, epochs, failover
//!   decisions. Decides `+sdown`, `+switch-master`, ...
//! - `links/`   outbound connections to Redis nodes and peer daemons.
//! - `runtime`  the driver: feeds inputs to the core, executes its actions.
//! - `server/`  the RESP server on 26379 and every command it answers.
//! - `observe/` events -> log lines, metrics, pub/sub; the admin HTTP listener.
//! - `config/`  sentinel.conf / raftinel.toml, validation, crash-safe rewrite.
//! - `resp/`    the RESP codec: frames, request parsing, reply reading.
//! - `k8s/`     the Kubernetes API (cargo feature `k8s`): role labels, Events.

pub mod cli;
pub mod config;
pub mod consensus;
pub mod core;
pub mod demo;
pub mod failpoint;
#[cfg(feature = "k8s")]
pub mod k8s;
#[cfg(test)]
mod layers;
pub mod links;
pub mod observe;
pub mod pod;
pub mod resp;
pub mod runtime;
pub mod server;
#[cfg(test)]
mod testutil;
