//! Outbound links to Redis masters, replicas and peer sentinels (tokio + the
//! `redis` crate). Every command carries a timeout; results flow back to the
//! core as `core::Input`s.
