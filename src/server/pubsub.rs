//! Local pub/sub: channels and patterns subscribed by clients of this daemon.

/// Placeholder until the server lands (owner: server).
#[derive(Debug, Default)]
pub struct Hub {}
