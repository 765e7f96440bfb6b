//! All integration tests, in one test target (one link step).
//!
//! They start real `redis-server`/`redis-sentinel` processes and the daemon on
//! loopback. Set `RAFTINEL_IT_BIN=/usr/bin/redis-sentinel` to run the same
//! suite against the reference implementation (checks the tests themselves).

// The integration tests drive real processes in real time from plain threads
// (no tokio runtime to pause): wall-clock deadlines and poll sleeps are the
// point here, so the daemon's one-clock lint does not apply.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod harness;

mod clients;
mod config;
mod differential;
mod failover;
mod monitoring;
