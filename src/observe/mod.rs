//! Observability: the one place where a core `Event` becomes a log line, a
//! metric increment and a pub/sub message; logging setup; the admin HTTP
//! listener serving Prometheus `/metrics`; the script runner.

pub mod admin;
pub mod log;
pub mod scripts;
