//! The sentinel state: every monitored master with its replicas and peer
//! sentinels, epochs, and the rules applied to them.

/// Placeholder until the core lands (owner: core).
#[derive(Debug, Default)]
pub struct Sentinel {}
