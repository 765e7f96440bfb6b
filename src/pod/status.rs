//! What the local daemon knows, as one serializable snapshot: the group
//! (cluster id, term, leader, voters, whether this daemon is a loaded voter
//! in touch with its leader) and, per master, the committed address and
//! history, the last failover, and every node and daemon as this daemon
//! sees it. `SENTINEL RAFT STATUS` returns it as JSON; `raftinel ctl status`
//! prints it; the probes, `boot-redis` and `ctl prestop` decide from it.
//!
//! It reads the core and the Raft node through [`snapshot`] only, so the
//! rest of the pod code does not depend on how they are laid out.

use serde::{Deserialize, Serialize};

use super::identity::Pod;
use crate::consensus::node::RaftNode;
use crate::core::group::ReplHistory;
use crate::core::instance::{Instance, Role};
use crate::core::Sentinel;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's Sentinel runid.
    pub myid: String,
    pub pod: Pod,
    /// The daemon's `announce-ip`: this pod's name, under which its Redis
    /// is known to the group.
    pub announce_ip: Option<String>,
    pub group: Group,
    pub masters: Vec<MasterStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The Raft node runs (false only in tools without a group).
    pub running: bool,
    pub cluster_id: Option<String>,
    pub node_id: Option<u64>,
    pub term: u64,
    pub leader: Option<Daemon>,
    pub voters: Vec<Daemon>,
    /// This daemon is a voter of the committed membership.
    pub voter: bool,
    /// The Raft state on disk at start has been applied.
    pub loaded: bool,
    /// Since when the leader was last heard (for the leader: acknowledged by
    /// a majority), in ms; None when it never was or no leader is known.
    pub leader_heard_ms: Option<u64>,
    /// The lease within which the leader must have been heard.
    pub lease_ms: u64,
}

impl Group {
    /// The leader was heard within the lease.
    pub fn has_leader(&self) -> bool {
        self.leader.is_some() && self.leader_heard_ms.is_some_and(|ms| ms <= self.lease_ms)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daemon {
    pub id: u64,
    pub addr: String,
    pub myid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::core::event::format_addr(&self.host, self.port))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterStatus {
    pub name: String,
    /// The address the group committed (None: no committed state yet).
    pub committed: Option<Addr>,
    /// The address in the daemon's configuration (the master of a new set).
    pub configured: Addr,
    pub config_epoch: u64,
    /// The replication history the group recorded for the master.
    pub history: Option<ReplHistory>,
    /// A failover in progress: `epoch`, phase, promoted replica.
    pub failover: Option<String>,
    pub last_failover: Option<LastFailover>,
    /// The committed master is this pod's Redis.
    pub this_pod: bool,
    /// The committed `fenced-nodes` (`host:port`).
    #[serde(default)]
    pub fenced: Vec<String>,
    pub nodes: Vec<Node>,
    pub sentinels: Vec<Peer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFailover {
    pub epoch: u64,
    pub from: Option<String>,
    pub to: String,
    /// Seconds since this daemon saw it start (None: before it started).
    pub seconds_ago: Option<u64>,
}

/// A Redis node as this daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub addr: String,
    /// `master` (the monitored master) or `replica`.
    pub kind: String,
    /// The role its last INFO reported.
    pub role: String,
    /// Both links up.
    pub link: bool,
    /// A replica's own link to its master (`master_link_status:up`).
    pub master_link: Option<bool>,
    /// The master's offset minus the replica's, from the last INFO replies.
    pub lag_bytes: Option<u64>,
    /// `ok`, `sdown` or `odown`.
    pub health: String,
    /// This pod's Redis.
    pub this_pod: bool,
}

/// A peer daemon as this daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub runid: String,
    pub addr: String,
    pub health: String,
}

/// Whether `host` names this pod's Redis: the daemon's announce-ip (the
/// pod's DNS name), or, without one, a loopback address.
pub fn is_this_pod(host: &str, announce_ip: Option<&str>) -> bool {
    match announce_ip {
        Some(a) => host.eq_ignore_ascii_case(a),
        None => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
    }
}

fn health(i: &Instance) -> String {
    if i.o_down {
        "odown"
    } else if i.s_down {
        "sdown"
    } else {
        "ok"
    }
    .to_string()
}

fn role(r: Role) -> String {
    match r {
        Role::Master => "master",
        Role::Slave => "replica",
        Role::Unknown => "unknown",
    }
    .to_string()
}

/// The snapshot of the daemon behind `h`, as of now.
pub fn snapshot(h: &super::Handles) -> Status {
    let raft = h.raft.get();
    let now = h.core.now();
    snapshot_of(&h.core.lock(), now, raft)
}

/// The snapshot of the core `core` (at `now` on its clock) and the Raft
/// node `raft`, if it runs.
pub fn snapshot_of(core: &Sentinel, now: crate::core::Millis, raft: Option<&RaftNode>) -> Status {
    let pod = Pod::from_env();
    let group = group(raft);
    let committed = raft
        .map(|n| n.state.borrow().clone())
        .filter(|s| !s.masters.is_empty() || !s.voters.is_empty());
    let announce_ip = core.globals().announce_ip.clone().filter(|a| !a.is_empty());
    let announced = announce_ip.as_deref();
    let masters = core
        .masters
        .iter()
        .map(|(name, m)| {
            let cm = committed.as_ref().and_then(|c| c.masters.get(name));
            let committed_addr = cm.map(|c| Addr {
                host: c.host.clone(),
                port: c.port,
            });
            let master_offset = m.inst.repl_offset;
            let mut nodes = vec![Node {
                addr: crate::core::event::format_addr(&m.inst.host, m.inst.port),
                kind: "master".into(),
                role: role(m.inst.role_reported),
                link: !m.inst.link.disconnected(),
                master_link: None,
                lag_bytes: None,
                health: health(&m.inst),
                this_pod: is_this_pod(&m.inst.host, announced),
            }];
            nodes.extend(m.replicas.values().map(|r| Node {
                addr: crate::core::event::format_addr(&r.host, r.port),
                kind: "replica".into(),
                role: role(r.role_reported),
                link: !r.link.disconnected(),
                master_link: Some(r.slave_master_link_up),
                lag_bytes: master_offset.map(|mo| mo.saturating_sub(r.slave_repl_offset)),
                health: health(r),
                this_pod: is_this_pod(&r.host, announced),
            }));
            let sentinels = m
                .sentinels
                .values()
                .map(|s| Peer {
                    runid: s.runid.clone().unwrap_or_default(),
                    addr: crate::core::event::format_addr(&s.host, s.port),
                    health: health(s),
                })
                .collect();
            let config_epoch = cm.map_or(m.config_epoch, |c| c.config_epoch);
            let last_failover = (config_epoch > 0).then(|| LastFailover {
                epoch: config_epoch,
                from: cm
                    .and_then(|c| c.switched.as_ref())
                    .filter(|s| s.epoch == config_epoch)
                    .map(|s| crate::core::event::format_addr(&s.host, s.port)),
                to: committed_addr
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| crate::core::event::format_addr(&m.inst.host, m.inst.port)),
                seconds_ago: (m.failover_start_time > 0)
                    .then(|| now.saturating_sub(m.failover_start_time) / 1000),
            });
            MasterStatus {
                name: name.clone(),
                fenced: core.fenced_nodes(name),
                this_pod: committed_addr
                    .as_ref()
                    .is_some_and(|a| is_this_pod(&a.host, announced)),
                configured: Addr {
                    host: m.inst.host.clone(),
                    port: m.inst.port,
                },
                committed: committed_addr,
                config_epoch,
                history: cm.and_then(|c| c.history.clone()),
                failover: cm.and_then(|c| c.failover.as_ref()).map(|f| {
                    let promoted = f
                        .promoted
                        .as_ref()
                        .map(|(h, p)| {
                            format!(" promoting {}", crate::core::event::format_addr(h, *p))
                        })
                        .unwrap_or_default();
                    format!(
                        "epoch {} {:?} led by node {}{promoted}",
                        f.epoch, f.phase, f.leader
                    )
                }),
                last_failover,
                nodes,
                sentinels,
            }
        })
        .collect();
    Status {
        myid: core.myid().to_string(),
        pod,
        announce_ip,
        group,
        masters,
    }
}

fn group(raft: Option<&RaftNode>) -> Group {
    let Some(node) = raft else {
        return Group::default();
    };
    let m = node.raft.metrics().borrow().clone();
    let state = node.state.borrow().clone();
    let daemon = |id: u64| Daemon {
        id,
        addr: m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default(),
        myid: state.runid_of(id).unwrap_or_default().to_string(),
    };
    let contact = node.leader_contact();
    Group {
        running: true,
        cluster_id: node.cluster_id.get().map(str::to_string),
        node_id: Some(node.id),
        term: m.current_term,
        leader: m.current_leader.map(daemon),
        voters: m
            .membership_config
            .membership()
            .voter_ids()
            .map(daemon)
            .collect(),
        voter: node.is_voter(),
        loaded: node.is_loaded(),
        leader_heard_ms: contact.age().map(|a| a.as_millis() as u64),
        lease_ms: node.lease().as_millis() as u64,
    }
}
