//! Starting the local Raft node: its identity (from the data directory),
//! timeouts derived from down-after, and the storage; and what the leader
//! knows of its members' liveness.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{Config, Raft, SnapshotPolicy};
use tokio::time::Instant;

use super::network::{Network, PeerAuth};
use super::store::{self, IdentitySeed, OpenError, OpenReport};
use super::trust::GroupSecret;
use super::{ClusterId, TypeConfig};
use crate::core::group::{GroupState, Member};
use crate::core::membership::Liveness;

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

pub fn raft_config(down_after_ms: u64) -> Result<Config, StartError> {
    let (heartbeat, min, max) = raft_timing(down_after_ms);
    Config {
        cluster_name: "raftinel".to_string(),
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
    /// This daemon's Sentinel runid (recorded in its membership entry).
    pub myid: String,
    pub cluster_id: ClusterId,
    /// The data directory (its `raft/identity` records the cluster id).
    pub data_dir: PathBuf,
    /// Committed state as applied locally (updated after every apply).
    pub state: tokio::sync::watch::Receiver<GroupState>,
    /// The leader's probes of its members.
    pub probes: Arc<Mutex<Probes>>,
    /// Held while a membership change is decided and carried out: openraft
    /// refuses a change while another one is being committed.
    pub changes: Arc<tokio::sync::Mutex<()>>,
    /// The RPC client side (a clone of what openraft uses): links for the
    /// driver's own RPCs (probes, joins, forwarded proposals), and the
    /// peers' health.
    pub network: Network,
    pub policy: Arc<Policy>,
    /// Refused RPCs and membership changes (shared with the server, which
    /// counts the RPCs it refuses before the node runs too).
    pub counters: Arc<super::rpc::Counters>,
    /// When this node last heard from its leader (see `contact`).
    pub contact: Arc<super::contact::Contact>,
    /// The log index committed when the data directory was opened: the
    /// state is loaded once it is applied.
    pub committed_at_open: Option<u64>,
}

/// The static peer list: from `[raft] peers`, replaced at run time when the
/// `k8s` feature makes it follow the StatefulSet's `spec.replicas`. Read by
/// formation, the leader's admissions and the removal of unlisted voters.
#[derive(Debug, Clone, Default)]
pub struct PeerList(Arc<std::sync::RwLock<Option<Vec<String>>>>);

impl PeerList {
    pub fn new(peers: Option<Vec<String>>) -> PeerList {
        PeerList(Arc::new(std::sync::RwLock::new(peers)))
    }

    /// The list now (None: discovery by hello).
    pub fn get(&self) -> Option<Vec<String>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the list; whether it changed.
    pub fn set(&self, peers: Vec<String>) -> bool {
        let mut g = self.0.write().unwrap_or_else(|e| e.into_inner());
        let new = Some(peers);
        let changed = *g != new;
        *g = new;
        changed
    }
}

/// The membership rules this daemon applies when it leads.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The static peer list, when configured.
    pub peers: PeerList,
    /// A member that answered a probe within this window is live.
    pub live_window: Duration,
    pub housekeeping: crate::core::membership::Housekeeping,
}

impl Default for Policy {
    /// Discovery, a 3 s live window, no removal of unreachable voters.
    fn default() -> Self {
        Policy {
            peers: PeerList::default(),
            live_window: Duration::from_secs(3),
            housekeeping: crate::core::membership::Housekeeping {
                remove_unreachable_after: None,
                learner_grace: 30_000,
                unlisted_grace: 5_000,
            },
        }
    }
}

/// When each member last answered the leader's probe as itself.
#[derive(Debug, Default)]
pub struct Probes {
    /// When this node started probing (it became leader); None while it
    /// does not lead.
    pub since: Option<Instant>,
    pub last: HashMap<u64, Instant>,
}

impl Probes {
    /// A member's liveness as of `now`, with `window` the live window.
    pub fn liveness(&self, id: u64, now: Instant, window: Duration) -> Liveness {
        let Some(since) = self.since else {
            return Liveness::Unknown;
        };
        let last = self.last.get(&id).copied();
        if last.is_some_and(|t| now.saturating_duration_since(t) <= window) {
            return Liveness::Live;
        }
        if now.saturating_duration_since(since) < window {
            return Liveness::Unknown;
        }
        let from = last.map_or(since, |t| t.max(since));
        Liveness::Silent(now.saturating_duration_since(from).as_millis() as u64)
    }
}

impl RaftNode {
    /// Opens the storage (giving the directory its identity, see
    /// `store::IdentitySeed`) and starts openraft. The node is not a member of
    /// any group until `bootstrap` or a join makes it one.
    pub async fn start(
        data_dir: &Path,
        seed: &IdentitySeed,
        myid: &str,
        down_after_ms: u64,
        auth: PeerAuth,
        policy: Policy,
    ) -> Result<(RaftNode, OpenReport), StartError> {
        let (tx, state) = tokio::sync::watch::channel(GroupState::default());
        let (log, sm, report) = store::open(data_dir, Arc::new(tx), seed)?;
        let identity = report
            .identity
            .clone()
            .ok_or_else(|| StartError::Raft("storage opened without an identity".into()))?;
        let config = Arc::new(raft_config(down_after_ms)?);
        let cluster_id = ClusterId::new(identity.cluster_id.clone());
        let network = Network::new(
            cluster_id.clone(),
            auth,
            Duration::from_millis(config.heartbeat_interval),
        );
        let id = identity.node_id;
        let raft = Raft::new(id, config, network.clone(), log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        Ok((
            RaftNode {
                raft,
                id,
                myid: myid.to_string(),
                cluster_id,
                data_dir: data_dir.to_path_buf(),
                state,
                probes: Arc::default(),
                changes: Arc::default(),
                network,
                policy: Arc::new(policy),
                counters: Arc::default(),
                contact: Arc::default(),
                committed_at_open: report.committed_index,
            },
            report,
        ))
    }

    /// This node's entry in a membership.
    pub fn member(&self, addr: &str) -> Member {
        Member::new(addr, self.myid.clone())
    }

    /// Fixes the group's cluster id for this node: persisted with the Raft
    /// data before anything is done in that group's name. Refused if the node
    /// already belongs to another cluster.
    pub fn adopt_cluster_id(&self, id: &str) -> Result<(), StartError> {
        match self.cluster_id.get() {
            Some(mine) if mine == id => return Ok(()),
            Some(mine) => {
                return Err(StartError::Raft(format!(
                    "this daemon belongs to cluster {mine:?}, not {id:?}"
                )))
            }
            None => {}
        }
        let identity = store::Identity {
            node_id: self.id,
            cluster_id: Some(id.to_string()),
        };
        store::save_identity(&self.data_dir, &identity).map_err(|e| {
            StartError::Raft(format!(
                "saving the cluster id in {}: {e}",
                self.data_dir.display()
            ))
        })?;
        if self.cluster_id.set(id) {
            Ok(())
        } else {
            Err(StartError::Raft("cluster id changed concurrently".into()))
        }
    }

    /// Makes this node the first member of a new cluster. Only ever called on
    /// one node of a deployment (see docs/design.md, "Group formation").
    pub async fn bootstrap(&self, addr: &str) -> Result<(), StartError> {
        let mut members = BTreeMap::new();
        members.insert(self.id, self.member(addr));
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

    /// The Raft state on disk at start has been applied (log replayed,
    /// snapshot installed).
    pub fn is_loaded(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let applied = m.last_applied.map(|l| l.index);
        self.committed_at_open.is_none_or(|c| applied >= Some(c))
    }

    /// How this node stands with its leader now (see `contact`).
    pub fn leader_contact(&self) -> super::contact::LeaderContact {
        use super::contact::LeaderContact;
        let (leader, quorum_ack, voters) = {
            let m = self.raft.metrics().borrow().clone();
            let voters = m.membership_config.membership().voter_ids().count();
            (m.current_leader, m.millis_since_quorum_ack, voters)
        };
        match leader {
            Some(l) if l == self.id => LeaderContact::Leading(match (quorum_ack, voters) {
                (Some(ms), _) => Some(Duration::from_millis(ms)),
                // A group of one is its own majority.
                (None, 1) => Some(Duration::ZERO),
                (None, _) => None,
            }),
            Some(l) => LeaderContact::Following(l, self.contact.since(l)),
            None => LeaderContact::NoLeader,
        }
    }

    /// The lease within which the leader must have been heard: the
    /// election timeout (its upper bound).
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.raft.config().election_timeout_max)
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
            assert!(raft_config(down_after).is_ok());
        }
    }

    #[test]
    fn liveness_from_probes() {
        let t0 = Instant::now();
        let w = Duration::from_secs(2);
        let mut p = Probes::default();
        assert_eq!(p.liveness(1, t0, w), Liveness::Unknown, "not leading");
        p.since = Some(t0);
        assert_eq!(
            p.liveness(1, t0 + Duration::from_secs(1), w),
            Liveness::Unknown
        );
        assert_eq!(
            p.liveness(1, t0 + Duration::from_secs(5), w),
            Liveness::Silent(5000)
        );
        p.last.insert(1, t0 + Duration::from_secs(4));
        assert_eq!(
            p.liveness(1, t0 + Duration::from_secs(5), w),
            Liveness::Live
        );
        assert_eq!(
            p.liveness(1, t0 + Duration::from_secs(10), w),
            Liveness::Silent(6000)
        );
    }

    /// A data directory written by the release before persisted identities
    /// (`tests/fixtures/raft-dir-before-identity`) is converted: the node id
    /// of its myid, the cluster id of its master names, its log replayed,
    /// its members read with no runid.
    #[tokio::test]
    async fn a_directory_of_the_previous_release_is_converted() {
        let myid = "7b9b5ab0a49d864c37b98fd1290a67efdccbaf5d";
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/raft-dir-before-identity/raft");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("raft")).unwrap();
        for f in ["log", "meta"] {
            std::fs::copy(fixture.join(f), dir.path().join("raft").join(f)).unwrap();
        }
        let seed = IdentitySeed {
            fresh_node_id: 7,
            configured_cluster_id: None,
            legacy_node_id: crate::core::group::node_id_from_myid(myid).unwrap(),
            legacy_cluster_id: "raftinel:mymaster".into(),
        };
        let auth = PeerAuth::fixed(None, crate::core::LinkAuth::default());
        let (node, report) =
            RaftNode::start(dir.path(), &seed, myid, 1000, auth, Policy::default())
                .await
                .unwrap();
        assert_eq!(report.identity_origin, store::IdentityOrigin::Converted);
        assert_eq!(node.id, 8_906_812_402_777_818_700);
        assert_eq!(node.cluster_id.get(), Some("raftinel:mymaster"));
        let mut rx = node.state.clone();
        let state = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|s| s.masters.contains_key("mymaster") && s.voters.len() == 3),
        )
        .await
        .expect("the log is replayed")
        .unwrap()
        .clone();
        let me = &state.voters[&node.id];
        assert_eq!(
            (me.addr.as_str(), me.myid.as_str()),
            ("127.0.0.1:39121", "")
        );
        assert!(state.is_voter(node.id));
        node.shutdown().await;
        // Converted once: the identity is on disk now.
        let identity: store::Identity = {
            let bytes = std::fs::read(dir.path().join("raft/identity")).unwrap();
            let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
            serde_json::from_slice(&bytes[nl + 1..]).unwrap()
        };
        assert_eq!(identity.node_id, node.id);
    }
}
