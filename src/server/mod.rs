//! The RESP server on the sentinel port: framing, connections, limits, auth,
//! pub/sub, and one small module per command.

pub mod resp;
pub mod pubsub;
