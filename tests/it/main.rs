//! All integration tests, in one test target (one link step).
//!
//! They start real `redis-server`/`redis-sentinel` processes and the daemon on
//! loopback. Set `RAFTINEL_IT_BIN=/usr/bin/redis-sentinel` to run the same
//! suite against the reference implementation (checks the tests themselves).

mod harness;

mod clients;
mod config;
mod differential;
mod monitoring;
