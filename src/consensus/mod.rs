//! Consensus: the Raft group (openraft) through which daemons agree on each
//! master's address, epochs and failover steps.
//!
//! The replicated state machine itself (what a committed entry does) is pure
//! and lives in the core (`crate::core::group`); this module is its plumbing.
//! - `store`: openraft's log, vote and snapshot storage, on disk, checksummed,
//!   fsynced before anything is acknowledged.
//!
//! Why Raft at all: Sentinel's own election (one vote per epoch, majority of all
//! sentinels ever seen) lets two daemons disagree about the master for as long as
//! their hellos take to converge, and a split vote costs 2 × failover-timeout.
//! Here every decision that changes what clients are told is a committed log
//! entry, so every daemon answers from the same history.

pub mod driver;
pub mod network;
pub mod node;
pub mod rpc;
pub mod store;
pub mod trust;

#[cfg(test)]
mod peer_tests;

pub use crate::core::group::{Command, CommandResponse, GroupState};

openraft::declare_raft_types!(
    /// raftinel's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
