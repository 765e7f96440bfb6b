//! Consensus: the Raft group (openraft) through which daemons agree on each
//! master's address, epochs and failover steps.
//!
//! The replicated state machine itself (what a committed entry does) and the
//! formation and membership decisions are pure and live in the core
//! (`core::group`, `core::membership`); this module is their plumbing:
//! - `driver`: starts the node, forwards the core's proposals to the leader,
//!   feeds the core what was committed and where the node stands, and stops
//!   the daemon if openraft's core stops;
//! - `upkeep`: formation and membership, decided by the core, carried out;
//! - `node`: the node, its timing and its identity; `store`: openraft's log,
//!   vote and snapshot storage, on disk, checksummed, fsynced before anything
//!   is acknowledged;
//! - `network`, `rpc`, `trust`: the RPCs between daemons, their signatures and
//!   what they refuse.
//!
//! It reaches the daemon around it only through [`Host`].
//!
//! Why Raft at all: Sentinel's own election (one vote per epoch, majority of all
//! sentinels ever seen) lets two daemons disagree about the master for as long as
//! their hellos take to converge, and a split vote costs 2 × failover-timeout.
//! Here every decision that changes what clients are told is a committed log
//! entry, so every daemon answers from the same history.

pub mod contact;
pub mod driver;
pub mod handover;
pub mod network;
pub mod node;
pub mod rpc;
pub mod store;
pub mod trust;
pub mod upkeep;

#[cfg(test)]
mod peer_tests;

pub use crate::core::group::{Command, CommandResponse, GroupState, Member};

use crate::core::{Input, LinkAuth};

/// What the Raft plumbing needs from the daemon it runs in (the runtime
/// implements it): the core is handed what Raft decided, and the formation
/// reads a few facts the core knows. Nothing here reaches into the core's
/// state directly.
pub trait Host: Send + Sync + 'static {
    /// Feeds the core an input (a commit, a change of this node's place in
    /// the group) and carries out what it asks for, without waiting for
    /// config flushes: the caller must keep feeding commits meanwhile.
    fn feed(&self, input: Input);
    /// The credentials of Sentinel's peer links as they are now: RPCs
    /// authenticate with them, so `SENTINEL CONFIG SET sentinel-user /
    /// sentinel-pass` applies to the next one.
    fn peer_credentials(&self) -> LinkAuth;
    /// The sentinels discovered by hello (`host:port`, IPv6 in brackets).
    fn discovered_sentinels(&self) -> Vec<String>;
    /// Whether hellos can reach this daemon yet: a pubsub link to a master
    /// is up.
    fn hellos_reachable(&self) -> bool;
    /// The address of one monitored master: the local address of a
    /// connection to it is the one peers see.
    fn a_master(&self) -> Option<(String, u16)>;
}

openraft::declare_raft_types!(
    /// raftinel's openraft type configuration. A member's node data is its
    /// address and Sentinel runid (`Member`); memberships written with
    /// openraft's `BasicNode` (`{"addr": ...}`) read as members without a runid.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The group's cluster id as this daemon knows it: set once, when the data
/// directory is opened with one, or when the group is bootstrapped or joined
/// (a blank daemon learns it from its group). RPCs name it; until it is known
/// only `status` can be asked or answered.
#[derive(Debug, Clone, Default)]
pub struct ClusterId(std::sync::Arc<std::sync::OnceLock<String>>);

impl ClusterId {
    pub fn new(id: Option<String>) -> ClusterId {
        let c = ClusterId::default();
        if let Some(id) = id {
            let _ = c.0.set(id);
        }
        c
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Sets the id once; false if another one was set before.
    pub fn set(&self, id: &str) -> bool {
        self.0.get_or_init(|| id.to_string()) == id
    }
}
