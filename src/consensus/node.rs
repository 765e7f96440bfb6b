//! Starting the local Raft node: ids, timeouts derived from down-after, and
//! the storage in the data directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft, SnapshotPolicy};

use super::network::{Network, PeerAuth};
use super::store::{self, OpenError, OpenReport};
use super::trust::GroupSecret;
use super::TypeConfig;
use crate::core::group::GroupState;

/// Raft timing derived from down-after-milliseconds, so that a Raft leader
/// lost together with the Redis master is replaced well before the master is
/// declared down: the election timeout is a quarter to a half of down-after,
/// heartbeats a third of the minimum election timeout.
pub fn raft_timing(down_after_ms: u64) -> (u64, u64, u64) {
    let min = (down_after_ms / 4).clamp(150, 3000);
    let max = (down_after_ms / 2).max(min + 50).min(6000);
    // openraft bounds each heartbeat RPC by the heartbeat interval: below
    // ~100 ms a busy 2-core machine times them out for nothing.
    let heartbeat = (min / 3).max(100).min(min - 1);
    (heartbeat, min, max)
}

pub fn raft_config(cluster_id: &str, down_after_ms: u64) -> Result<Config, StartError> {
    let (heartbeat, min, max) = raft_timing(down_after_ms);
    Config {
        cluster_name: cluster_id.to_string(),
        heartbeat_interval: heartbeat,
        election_timeout_min: min,
        election_timeout_max: max,
        install_snapshot_timeout: 2000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: 200,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartError::Config(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("raft storage: {0}")]
    Storage(#[from] OpenError),
    #[error("raft configuration: {0}")]
    Config(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// The local node and the state it has applied.
#[derive(Clone)]
pub struct RaftNode {
    pub raft: Raft<TypeConfig>,
    pub id: u64,
    pub cluster_id: String,
    /// Committed state as applied locally (updated after every apply).
    pub state: tokio::sync::watch::Receiver<GroupState>,
    /// The RPC client side (a clone of what openraft uses): links for the
    /// driver's own RPCs, and the peers' health.
    pub network: Network,
}

impl RaftNode {
    /// Opens the storage and starts openraft. The node is not a member of any
    /// cluster until `bootstrap` or a join makes it one.
    pub async fn start(
        data_dir: &Path,
        id: u64,
        cluster_id: &str,
        down_after_ms: u64,
        auth: PeerAuth,
    ) -> Result<(RaftNode, OpenReport), StartError> {
        let (tx, state) = tokio::sync::watch::channel(GroupState::default());
        let (log, sm, report) = store::open(data_dir, Arc::new(tx))?;
        let config = Arc::new(raft_config(cluster_id, down_after_ms)?);
        let network = Network::new(
            cluster_id,
            auth,
            Duration::from_millis(config.heartbeat_interval),
        );
        let raft = Raft::new(id, config, network.clone(), log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        Ok((
            RaftNode {
                raft,
                id,
                cluster_id: cluster_id.to_string(),
                state,
                network,
            },
            report,
        ))
    }

    /// Makes this node the first member of a new cluster. Only ever called on
    /// one node of a deployment (see docs/design.md, "Bootstrap").
    pub async fn bootstrap(&self, addr: &str) -> Result<(), StartError> {
        let mut members = BTreeMap::new();
        members.insert(self.id, BasicNode::new(addr));
        self.raft
            .initialize(members)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))
    }

    /// Whether this node has ever been part of a cluster (its storage holds a
    /// membership).
    pub fn is_initialized(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some()
    }

    /// Whether this node is a voter of its group (a learner added by a join
    /// whose promotion failed is not yet: it must ask again).
    pub fn is_voter(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let is_voter = m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.id);
        is_voter
    }

    /// Whether this node holds no Raft state at all right now (no log entry,
    /// no term): only such a node may present itself as new to the group.
    pub fn is_blank(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.last_log_index.is_none() && m.current_term == 0
    }

    /// The group secret RPCs are signed with, if any.
    pub fn secret(&self) -> Option<&GroupSecret> {
        self.network.auth().secret()
    }

    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    pub async fn shutdown(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.raft.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_times_out_well_inside_down_after() {
        for down_after in [1000, 3000, 5000, 30000] {
            let (hb, min, max) = raft_timing(down_after);
            assert!(hb < min && min < max);
            assert!(
                max <= down_after / 2 || down_after < 400,
                "{down_after}: {max}"
            );
            assert!(raft_config("c", down_after).is_ok());
        }
    }
}
