//! Fault injection for the integration tests, compiled into debug builds
//! only: `RAFTINEL_FAILPOINT=<name>` makes the point of that name fail, so a
//! test can check that the daemon stops, and says why, when a task panics or
//! the Raft core stops. A release build has no failpoint: [`hit`] is false.
//!
//! Points: `driver-panic` (the driver task panics at its first tick),
//! `raft-log-write` (every append to the Raft log fails).

/// Whether the failpoint `name` is set.
pub fn hit(name: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        static SET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        SET.get_or_init(|| std::env::var("RAFTINEL_FAILPOINT").ok())
            .as_deref()
            == Some(name)
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        false
    }
}
