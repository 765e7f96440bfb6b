//! Whether this daemon is in touch with its group's leader: the condition a
//! pod's readiness and the `raftinel_raft_has_leader` metric rest on.
//!
//! - A follower heard from the leader when it accepted an `append` (entries
//!   or a heartbeat) from it: recorded by the RPC handler.
//! - The leader heard from a majority when a quorum acknowledged it
//!   (openraft's `millis_since_quorum_ack`, refreshed at every turn of its
//!   loop, heartbeats included).
//!
//! The lease is the election timeout: a follower that heard nothing for that
//! long is about to start an election, and a leader that no majority
//! acknowledged for that long may already have been replaced.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// When a follower last accepted an `append` from a leader.
#[derive(Debug, Default)]
pub struct Contact {
    heard: Mutex<Option<(u64, Instant)>>,
}

impl Contact {
    /// An `append` from `leader` was accepted now.
    pub fn heard_from(&self, leader: u64) {
        *self.heard.lock().unwrap_or_else(|e| e.into_inner()) = Some((leader, Instant::now()));
    }

    /// How long ago this node last heard from `leader` (None: never).
    pub fn since(&self, leader: u64) -> Option<Duration> {
        let heard = *self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard
            .filter(|(l, _)| *l == leader)
            .map(|(_, at)| at.elapsed())
    }
}

/// How this node stands with its leader, as of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderContact {
    /// This node leads; a majority acknowledged it this long ago (None: not
    /// yet since it was elected).
    Leading(Option<Duration>),
    /// `leader` is known; its last `append` arrived this long ago (None:
    /// none since this process started).
    Following(u64, Option<Duration>),
    /// No leader is known (an election is under way, or this node is cut
    /// off and campaigning).
    NoLeader,
}

impl LeaderContact {
    /// How long ago the leader was last heard (for a leader: acknowledged by
    /// a majority); None when never.
    pub fn age(self) -> Option<Duration> {
        match self {
            LeaderContact::Leading(a) | LeaderContact::Following(_, a) => a,
            LeaderContact::NoLeader => None,
        }
    }

    /// Heard within `lease`.
    pub fn within(self, lease: Duration) -> bool {
        self.age().is_some_and(|a| a <= lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn contact_is_per_leader_and_ages() {
        let c = Contact::default();
        assert_eq!(c.since(1), None);
        c.heard_from(1);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(c.since(1), Some(Duration::from_millis(300)));
        assert_eq!(c.since(2), None, "another leader was never heard");
        let lc = LeaderContact::Following(1, c.since(1));
        assert!(lc.within(Duration::from_millis(300)));
        assert!(!lc.within(Duration::from_millis(299)));
        assert!(!LeaderContact::NoLeader.within(Duration::from_secs(60)));
        assert!(!LeaderContact::Leading(None).within(Duration::from_secs(60)));
    }
}
