//! The replicated state: per monitored master, its committed address, config
//! epoch, current failover and down opinions, plus the group's voters. Applying
//! an entry is a pure function of (state, command); the driver compares
//! committed state before and after to decide what to publish
//! (`+switch-master` once per committed epoch).
//!
//! `apply` is also where authority is checked, whatever the transport let
//! through: opinions only from voters, failover steps only from the daemon
//! leading that failover, a new master address only as the end of the
//! committed failover that promoted it, and never a script path. A refused
//! command changes nothing but the `refused` counter.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The Raft node id that releases before persisted identities gave a daemon:
/// the first 16 hex digits of its Sentinel myid. Kept for data directories
/// written by those releases, and to name the daemons of memberships that
/// recorded no myid.
pub fn node_id_from_myid(myid: &str) -> Option<u64> {
    u64::from_str_radix(myid.get(..16)?, 16).ok()
}

/// A daemon in the group's membership (openraft's node data): where peers
/// reach its sentinel port and its Sentinel runid (myid), by which events
/// name it. Memberships written by earlier releases hold only `addr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    pub addr: String,
    #[serde(default)]
    pub myid: String,
}

impl Member {
    pub fn new(addr: impl Into<String>, myid: impl Into<String>) -> Member {
        Member {
            addr: addr.into(),
            myid: myid.into(),
        }
    }

    /// Whether this member is the daemon with Sentinel runid `runid`.
    pub fn is_daemon(&self, id: u64, runid: &str) -> bool {
        if self.myid.is_empty() {
            node_id_from_myid(runid) == Some(id)
        } else {
            self.myid.eq_ignore_ascii_case(runid)
        }
    }
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr)
    }
}

/// Options whose values are paths on one machine: never set through the group.
pub const LOCAL_ONLY_OPTIONS: [&str; 2] = ["notification-script", "client-reconfig-script"];

/// Phase of a committed failover, in Sentinel's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    SelectSlave,
    SendSlaveofNoone,
    WaitPromotion,
    ReconfSlaves,
    UpdateConfig,
}

/// A failover as committed: which epoch, who leads it, whom it promotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failover {
    pub epoch: u64,
    /// Raft node id of the daemon driving it.
    pub leader: u64,
    pub promoted: Option<(String, u16)>,
    pub phase: Phase,
    /// Started by `SENTINEL FAILOVER` rather than ODOWN.
    pub manual: bool,
    /// Coordinated switchover: writes paused on the old master until the
    /// promoted replica has caught up.
    pub coordinated: bool,
    /// Selection ignores the history rules (`SENTINEL FAILOVER ... FORCE`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// The replication history the promoted replica took, from the INFO
    /// that confirmed its promotion (committed with `ReconfSlaves`).
    #[serde(default)]
    pub history: Option<ReplHistory>,
    /// Node ids of the daemons that published `+switch-master` for this
    /// epoch once the promotion was committed (`ReconfSlaves`), before the
    /// switch itself: every daemon but the failover's leader does, as
    /// Sentinel's observers do on the leader's hello. Carried into the
    /// switch record.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub published: BTreeSet<u64>,
}

impl Failover {
    /// The promotion is committed (`ReconfSlaves` on): the failover can
    /// only end with its switch, and clients are told the promoted replica.
    pub fn promotion_committed(&self) -> Option<&(String, u16)> {
        self.promoted
            .as_ref()
            .filter(|_| self.phase >= Phase::ReconfSlaves)
    }
}

/// A master's replication history as its INFO reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplHistory {
    /// `master_replid`: the id the node took at its promotion.
    pub replid: String,
    /// `master_replid2`: the history it continued (its old master's id).
    pub replid2: String,
    /// `master_repl_offset` at the promotion.
    pub offset: u64,
}

/// The old master of the last switch, kept until the Raft leader made it a
/// replica: it is left as it is (paused in a coordinated switchover, with
/// its clients otherwise) until every daemon has published `+switch-master`
/// (`published`) or a bound has passed, so subscribed clients move first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switched {
    /// The switch's config epoch.
    pub epoch: u64,
    /// The old master's address.
    pub host: String,
    pub port: u16,
    /// Writes were paused on it by a coordinated switchover.
    pub coordinated: bool,
    /// Node ids of the daemons that published `+switch-master` for `epoch`.
    pub published: BTreeSet<u64>,
}

/// One master as the group agrees on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedMaster {
    pub host: String,
    pub port: u16,
    pub quorum: u32,
    pub config_epoch: u64,
    pub failover: Option<Failover>,
    /// Node ids whose latest committed opinion is "master is down".
    pub down_votes: BTreeSet<u64>,
    /// Monitoring options replicated with MONITOR / SET (name -> value, in
    /// `SENTINEL SET` vocabulary, already validated by the proposer).
    pub options: BTreeMap<String, String>,
    /// The current master's replication history as recorded at its
    /// promotion (None for a master that was never promoted by the group).
    #[serde(default)]
    pub history: Option<ReplHistory>,
    /// The last switch's old master, while it waits for its demotion.
    #[serde(default)]
    pub switched: Option<Switched>,
    /// The master's history as the Raft leader last recorded it from the
    /// master's INFO (`RecordHistory`: its ids and the offset at which it
    /// first showed data on them); cleared by a switch. Selection judges
    /// replicas on it (then on `history`) when a daemon has not seen the
    /// master itself; `boot-redis` keeps to `history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<ReplHistory>,
    /// Why the last failover found no replica to promote (the history
    /// rule's refusals), until a switch or a new record of the master's
    /// history: the group waits for a node on the recorded history, or for
    /// `SENTINEL FAILOVER <master> FORCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
}

/// A committed wait reason is kept to this many bytes (cut at a character
/// boundary): one line of refusals per replica, bounded in the state.
const WAIT_DETAIL_MAX: usize = 2048;

fn bounded_detail(d: &str) -> String {
    if d.len() <= WAIT_DETAIL_MAX {
        return d.to_string();
    }
    let mut end = WAIT_DETAIL_MAX;
    while !d.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &d[..end])
}

/// Commands carried by the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `SENTINEL MONITOR`, or a master from the config file at bootstrap.
    Monitor {
        name: String,
        host: String,
        port: u16,
        quorum: u32,
    },
    /// `SENTINEL REMOVE`.
    Remove { name: String },
    /// One `SENTINEL SET` option (quorum included).
    Set {
        name: String,
        option: String,
        value: String,
    },
    /// A daemon's opinion about a master (SDOWN or not).
    Opinion { name: String, node: u64, down: bool },
    /// A failover begins in `epoch`, led by `leader`.
    FailoverStart {
        name: String,
        epoch: u64,
        leader: u64,
        manual: bool,
        coordinated: bool,
        /// `SENTINEL FAILOVER <master> FORCE`: the operator accepts losing
        /// the recorded history; selection ignores the history rules.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
        /// The proposing daemon's node id (absent in entries of earlier
        /// releases; required of new proposals, see `Command::unsigned`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<u64>,
    },
    /// The failover of `epoch` moves to `phase`, optionally naming the replica
    /// or recording the history the promoted replica took.
    FailoverPhase {
        name: String,
        epoch: u64,
        phase: Phase,
        promoted: Option<(String, u16)>,
        #[serde(default)]
        history: Option<ReplHistory>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<u64>,
    },
    /// The failover of `epoch` is abandoned (reason is the Sentinel event name).
    FailoverAbort {
        name: String,
        epoch: u64,
        reason: String,
        /// Why no replica could be promoted (the history rule's refusals
        /// of `-failover-abort-no-good-slave`): shown by every daemon in
        /// `SENTINEL MASTER` while the master is down (`CommittedMaster::wait`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<u64>,
    },
    /// The Raft leader takes over the failover of `epoch` from the daemon that
    /// drove it (it lost the leadership or crashed): the failover resumes from
    /// its committed phase instead of waiting for failover-timeout.
    FailoverTakeover {
        name: String,
        epoch: u64,
        leader: u64,
    },
    /// The promoted replica is the master from now on: the address clients get.
    SwitchMaster {
        name: String,
        epoch: u64,
        host: String,
        port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<u64>,
    },
    /// Daemon `node` published `+switch-master` for the switch of `epoch`.
    SwitchPublished { name: String, epoch: u64, node: u64 },
    /// The master of `config_epoch` reports this replication history (the
    /// Raft leader records it when the master first shows data, when its
    /// id changes, and at most every few seconds as its offset moves): after
    /// any restart the group knows whether the master had data, and on
    /// which history, before any daemon has seen it again.
    RecordHistory {
        name: String,
        config_epoch: u64,
        history: ReplHistory,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<u64>,
    },
}

impl Command {
    /// The master a command is about (every command names one).
    pub fn master(&self) -> &str {
        match self {
            Command::Monitor { name, .. }
            | Command::Remove { name }
            | Command::Set { name, .. }
            | Command::Opinion { name, .. }
            | Command::FailoverStart { name, .. }
            | Command::FailoverPhase { name, .. }
            | Command::FailoverAbort { name, .. }
            | Command::FailoverTakeover { name, .. }
            | Command::SwitchMaster { name, .. }
            | Command::SwitchPublished { name, .. }
            | Command::RecordHistory { name, .. } => name,
        }
    }

    /// The command as proposed by daemon `node` (for the commands whose
    /// authority `apply` checks).
    pub fn signed(mut self, node: u64) -> Command {
        match &mut self {
            Command::FailoverStart { by, .. }
            | Command::FailoverPhase { by, .. }
            | Command::FailoverAbort { by, .. }
            | Command::SwitchMaster { by, .. }
            | Command::RecordHistory { by, .. } => *by = Some(node),
            _ => {}
        }
        self
    }

    /// A proposal from a daemon must say who proposes the commands whose
    /// authority `apply` checks; only log entries of earlier releases may
    /// lack it. True when it is missing.
    pub fn unsigned(&self) -> bool {
        match self {
            Command::FailoverStart { by, .. }
            | Command::FailoverPhase { by, .. }
            | Command::FailoverAbort { by, .. }
            | Command::SwitchMaster { by, .. }
            | Command::RecordHistory { by, .. } => by.is_none(),
            _ => false,
        }
    }
}

/// What applying a command did; returned to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CommandResponse {
    #[default]
    Applied,
    /// The command was valid when proposed but no longer is (e.g. a stale
    /// epoch, an unknown master): nothing changed.
    Rejected(String),
}

/// The whole replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GroupState {
    pub masters: BTreeMap<String, CommittedMaster>,
    /// Highest epoch any committed failover used; epochs never decrease.
    pub current_epoch: u64,
    /// The voters of the latest applied membership (both configurations
    /// while a joint change is in progress), with their node data. Empty only
    /// before the first membership entry (never the case in a running group:
    /// a group's first entry is its membership).
    #[serde(default)]
    pub voters: BTreeMap<u64, Member>,
    /// Commands refused because their proposer had no authority for them.
    #[serde(default)]
    pub refused: u64,
}

impl GroupState {
    /// Records the voters of an applied membership entry. Down opinions of
    /// daemons that are no longer voters are dropped: a departed daemon's
    /// last opinion must not count towards ODOWN.
    pub fn apply_membership(&mut self, voters: BTreeMap<u64, Member>) {
        for m in self.masters.values_mut() {
            m.down_votes.retain(|n| voters.contains_key(n));
        }
        self.voters = voters;
    }

    /// Whether `node` may speak for the group (a voter; anyone before the
    /// first membership is known).
    pub fn is_voter(&self, node: u64) -> bool {
        self.voters.is_empty() || self.voters.contains_key(&node)
    }

    /// The Sentinel runid of voter `node`, when its membership recorded it.
    pub fn runid_of(&self, node: u64) -> Option<&str> {
        self.voters
            .get(&node)
            .map(|m| m.myid.as_str())
            .filter(|r| !r.is_empty())
    }

    /// Why `cmd` may not be applied by its proposer, if it may not.
    fn unauthorized(&self, cmd: &Command) -> Option<String> {
        let failover = |name: &str, epoch: u64| {
            self.masters
                .get(name)
                .and_then(|m| m.failover.as_ref())
                .filter(|f| f.epoch == epoch)
        };
        let not_voter = |n: u64| (!self.is_voter(n)).then(|| format!("node {n} is not a voter"));
        let not_leader = |name: &str, epoch: u64, by: Option<u64>| {
            let f = failover(name, epoch)?;
            let by = by?;
            (by != f.leader).then(|| {
                format!(
                    "node {by} does not lead the failover of epoch {epoch} (node {} does)",
                    f.leader
                )
            })
        };
        match cmd {
            Command::Set { option, .. } if LOCAL_ONLY_OPTIONS.contains(&option.as_str()) => {
                Some(format!("{option} is never set through the group"))
            }
            Command::Opinion { node, .. } => not_voter(*node),
            Command::FailoverStart { leader, by, .. } => {
                not_voter(*leader).or_else(|| by.and_then(not_voter))
            }
            Command::FailoverTakeover { leader, .. } => not_voter(*leader),
            Command::SwitchPublished { node, .. } => not_voter(*node),
            Command::RecordHistory { by, .. } => match by {
                Some(n) => not_voter(*n),
                None => Some("a history record must name its proposer".into()),
            },
            Command::FailoverPhase {
                name, epoch, by, ..
            }
            | Command::FailoverAbort {
                name, epoch, by, ..
            } => not_leader(name, *epoch, *by),
            Command::SwitchMaster {
                name,
                epoch,
                host,
                port,
                by,
            } => {
                let m = self.masters.get(name)?;
                // A stale switch is rejected below as before.
                if *epoch <= m.config_epoch {
                    return None;
                }
                let Some(f) = failover(name, *epoch) else {
                    return Some(format!("no committed failover of epoch {epoch}"));
                };
                if f.promoted.as_ref() != Some(&(host.clone(), *port)) {
                    return Some(format!(
                        "{host}:{port} is not the replica the failover of epoch {epoch} promoted"
                    ));
                }
                if f.promotion_committed().is_none() {
                    return Some(format!("the promotion of epoch {epoch} is not committed"));
                }
                not_leader(name, *epoch, *by)
            }
            _ => None,
        }
    }

    /// Applies one committed command. Deterministic: every daemon applying the
    /// same log reaches the same state.
    pub fn apply(&mut self, cmd: &Command) -> CommandResponse {
        use CommandResponse::{Applied, Rejected};
        if let Some(why) = self.unauthorized(cmd) {
            self.refused += 1;
            return Rejected(format!("not authorized: {why}"));
        }
        match cmd {
            Command::Monitor {
                name,
                host,
                port,
                quorum,
            } => self.apply_monitor(name, host, *port, *quorum),
            Command::Remove { name } => match self.masters.remove(name) {
                Some(_) => Applied,
                None => Rejected("No such master with that name".into()),
            },
            Command::Set {
                name,
                option,
                value,
            } => self.apply_set(name, option, value),
            Command::Opinion { name, node, down } => {
                let Some(m) = self.masters.get_mut(name) else {
                    return Rejected("No such master with that name".into());
                };
                if *down {
                    m.down_votes.insert(*node);
                } else {
                    m.down_votes.remove(node);
                }
                Applied
            }
            Command::FailoverStart {
                name,
                epoch,
                leader,
                manual,
                coordinated,
                force,
                ..
            } => self.apply_failover_start(name, *epoch, *leader, (*manual, *coordinated, *force)),
            Command::FailoverPhase {
                name,
                epoch,
                phase,
                promoted,
                history,
                ..
            } => {
                let Some(f) = self.failover_mut(name, *epoch) else {
                    return Rejected(format!("no failover of epoch {epoch}"));
                };
                if *phase < f.phase {
                    return Rejected(format!("phase {phase:?} is behind {:?}", f.phase));
                }
                f.phase = *phase;
                if promoted.is_some() {
                    f.promoted = promoted.clone();
                }
                if history.is_some() {
                    f.history = history.clone();
                }
                Applied
            }
            Command::FailoverTakeover {
                name,
                epoch,
                leader,
            } => {
                let Some(f) = self.failover_mut(name, *epoch) else {
                    return Rejected(format!("no failover of epoch {epoch}"));
                };
                if f.leader == *leader {
                    return Rejected(format!("failover of epoch {epoch} already led by {leader}"));
                }
                f.leader = *leader;
                Applied
            }
            Command::FailoverAbort {
                name,
                epoch,
                detail,
                ..
            } => self.apply_failover_abort(name, *epoch, detail.as_deref()),
            Command::SwitchMaster {
                name,
                epoch,
                host,
                port,
                ..
            } => self.apply_switch_master(name, *epoch, host, *port),
            Command::SwitchPublished { name, epoch, node } => {
                self.apply_switch_published(name, *epoch, *node)
            }
            Command::RecordHistory {
                name,
                config_epoch,
                history,
                ..
            } => self.apply_record_history(name, *config_epoch, history),
        }
    }

    /// The master's history, when it is still the master of `config_epoch`,
    /// no failover is running, it has data, and it is news (another id, or
    /// a higher offset on the same one): a record never goes back to less.
    fn apply_record_history(
        &mut self,
        name: &str,
        config_epoch: u64,
        history: &ReplHistory,
    ) -> CommandResponse {
        use CommandResponse::{Applied, Rejected};
        let Some(m) = self.masters.get_mut(name) else {
            return Rejected("No such master with that name".into());
        };
        if config_epoch != m.config_epoch {
            return Rejected(format!(
                "config epoch {config_epoch} is not the master's ({})",
                m.config_epoch
            ));
        }
        if m.failover.is_some() {
            return Rejected("a failover is in progress".into());
        }
        if history.offset == 0 {
            return Rejected("offset 0: no data to record".into());
        }
        if let Some(h) = &m.seen {
            if h.replid == history.replid && history.offset <= h.offset {
                return Rejected(format!(
                    "offset {} is not past {}",
                    history.offset, h.offset
                ));
            }
        }
        m.seen = Some(history.clone());
        m.wait = None;
        Applied
    }

    /// A master the group starts to monitor; a second one of the same name is
    /// refused.
    fn apply_monitor(&mut self, name: &str, host: &str, port: u16, quorum: u32) -> CommandResponse {
        if self.masters.contains_key(name) {
            return CommandResponse::Rejected("Duplicate master name.".into());
        }
        self.masters.insert(
            name.to_string(),
            CommittedMaster {
                host: host.to_string(),
                port,
                quorum,
                config_epoch: 0,
                failover: None,
                down_votes: BTreeSet::new(),
                options: BTreeMap::new(),
                history: None,
                switched: None,
                seen: None,
                wait: None,
            },
        );
        CommandResponse::Applied
    }

    /// A SENTINEL SET option (quorum checked here; an empty value removes it).
    fn apply_set(&mut self, name: &str, option: &str, value: &str) -> CommandResponse {
        let Some(m) = self.masters.get_mut(name) else {
            return CommandResponse::Rejected("No such master with that name".into());
        };
        if option == "quorum" {
            match value.parse::<u32>() {
                Ok(q) if q > 0 => m.quorum = q,
                _ => {
                    return CommandResponse::Rejected(format!(
                        "Invalid argument '{value}' for SENTINEL SET 'quorum'"
                    ))
                }
            }
        } else if value.is_empty() {
            m.options.remove(option);
        } else {
            m.options.insert(option.to_string(), value.to_string());
        }
        CommandResponse::Applied
    }

    /// A failover of a newer epoch, when none is running; the group's epoch
    /// moves to it.
    fn apply_failover_start(
        &mut self,
        name: &str,
        epoch: u64,
        leader: u64,
        (manual, coordinated, force): (bool, bool, bool),
    ) -> CommandResponse {
        use CommandResponse::{Applied, Rejected};
        let current = self.current_epoch;
        let Some(m) = self.masters.get_mut(name) else {
            return Rejected("No such master with that name".into());
        };
        if m.failover.is_some() {
            return Rejected("INPROG Failover already in progress".into());
        }
        if epoch <= current {
            return Rejected(format!("stale epoch {epoch} <= {current}"));
        }
        m.failover = Some(Failover {
            epoch,
            leader,
            promoted: None,
            phase: Phase::SelectSlave,
            manual,
            coordinated,
            force,
            history: None,
            published: BTreeSet::new(),
        });
        self.current_epoch = epoch;
        Applied
    }

    /// The end of a failover without a switch.
    fn apply_failover_abort(
        &mut self,
        name: &str,
        epoch: u64,
        detail: Option<&str>,
    ) -> CommandResponse {
        let Some(f) = self.failover_mut(name, epoch) else {
            return CommandResponse::Rejected(format!("no failover of epoch {epoch}"));
        };
        // Once the promotion is committed, daemons publish the
        // switch and clients are sent to the promoted replica: the
        // failover can only end with its switch (Sentinel does not
        // abort after the promotion either).
        if f.promotion_committed().is_some() {
            return CommandResponse::Rejected(format!(
                "the promotion of epoch {epoch} is committed: the failover cannot be aborted"
            ));
        }
        if let Some(m) = self.masters.get_mut(name) {
            m.failover = None;
            m.wait = detail.map(bounded_detail);
        }
        CommandResponse::Applied
    }

    /// The master's new address and config epoch; the old address is kept
    /// in `switched`, with who published, until its demotion.
    fn apply_switch_master(
        &mut self,
        name: &str,
        epoch: u64,
        host: &str,
        port: u16,
    ) -> CommandResponse {
        let Some(m) = self.masters.get_mut(name) else {
            return CommandResponse::Rejected("No such master with that name".into());
        };
        if epoch <= m.config_epoch {
            return CommandResponse::Rejected(format!(
                "stale config epoch {epoch} <= {}",
                m.config_epoch
            ));
        }
        let mut failover = m.failover.take().filter(|f| f.epoch == epoch);
        let moved = !(m.host.eq_ignore_ascii_case(host) && m.port == port);
        m.switched = moved.then(|| Switched {
            epoch,
            host: std::mem::replace(&mut m.host, host.to_string()),
            port: m.port,
            coordinated: failover.as_ref().is_some_and(|f| f.coordinated),
            published: failover
                .as_mut()
                .map(|f| std::mem::take(&mut f.published))
                .unwrap_or_default(),
        });
        m.history = failover.and_then(|f| f.history);
        m.seen = None;
        m.wait = None;
        m.port = port;
        m.config_epoch = epoch;
        m.down_votes.clear();
        self.current_epoch = self.current_epoch.max(epoch);
        CommandResponse::Applied
    }

    /// The switch of `epoch`, or its failover once the promotion is
    /// committed (daemons publish from then on).
    fn apply_switch_published(&mut self, name: &str, epoch: u64, node: u64) -> CommandResponse {
        let Some(m) = self.masters.get_mut(name) else {
            return CommandResponse::Rejected("No such master with that name".into());
        };
        let published = match (&mut m.switched, &mut m.failover) {
            (Some(sw), _) if sw.epoch == epoch => &mut sw.published,
            (_, Some(f)) if f.epoch == epoch && f.promotion_committed().is_some() => {
                &mut f.published
            }
            _ => return CommandResponse::Rejected(format!("no pending switch of epoch {epoch}")),
        };
        if !published.insert(node) {
            return CommandResponse::Rejected(format!(
                "node {node} already published epoch {epoch}"
            ));
        }
        CommandResponse::Applied
    }

    fn failover_mut(&mut self, name: &str, epoch: u64) -> Option<&mut Failover> {
        self.masters
            .get_mut(name)?
            .failover
            .as_mut()
            .filter(|f| f.epoch == epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitored() -> GroupState {
        let mut s = GroupState::default();
        s.apply(&Command::Monitor {
            name: "m".into(),
            host: "127.0.0.1".into(),
            port: 6379,
            quorum: 2,
        });
        s
    }

    #[test]
    fn ids_come_from_myid() {
        assert_eq!(
            node_id_from_myid("55612eaa002986434ec916ab8760956e7119a840"),
            Some(0x55612eaa00298643)
        );
        assert_eq!(node_id_from_myid("xyz"), None);
    }

    /// A history record names a voter as its proposer, is about the
    /// master of its config epoch, outside failovers, with data, and never
    /// goes back to less on the same id.
    #[test]
    fn history_records_only_move_forward() {
        let mut s = monitored();
        let rec = |epoch: u64, replid: &str, offset: u64, by: Option<u64>| Command::RecordHistory {
            name: "m".into(),
            config_epoch: epoch,
            history: ReplHistory {
                replid: replid.into(),
                replid2: "-".into(),
                offset,
            },
            by,
        };
        let rejected = |r: CommandResponse| matches!(r, CommandResponse::Rejected(_));
        assert!(rejected(s.apply(&rec(0, "a", 10, None))));
        assert!(rejected(s.apply(&rec(0, "a", 0, Some(1)))));
        assert!(rejected(s.apply(&rec(1, "a", 10, Some(1)))));
        assert_eq!(s.apply(&rec(0, "a", 10, Some(1))), CommandResponse::Applied);
        assert!(rejected(s.apply(&rec(0, "a", 10, Some(1)))));
        assert!(rejected(s.apply(&rec(0, "a", 5, Some(1)))));
        assert_eq!(s.apply(&rec(0, "a", 20, Some(1))), CommandResponse::Applied);
        // Another id (the master restarted, or was promoted elsewhere).
        assert_eq!(s.apply(&rec(0, "b", 3, Some(1))), CommandResponse::Applied);
        assert_eq!(s.masters["m"].seen.as_ref().map(|h| h.offset), Some(3));
        assert!(
            s.masters["m"].history.is_none(),
            "the promotion record is apart"
        );
        s.apply(&Command::FailoverStart {
            name: "m".into(),
            epoch: 1,
            leader: 1,
            manual: false,
            coordinated: false,
            force: false,
            by: Some(1),
        });
        assert!(rejected(s.apply(&rec(0, "b", 30, Some(1)))));
        // Only voters, once the membership is known.
        s.apply_membership(BTreeMap::from([(1, Member::default())]));
        s.masters.get_mut("m").unwrap().failover = None;
        assert!(rejected(s.apply(&rec(0, "b", 30, Some(2)))));
        assert_eq!(s.apply(&rec(0, "b", 30, Some(1))), CommandResponse::Applied);
    }

    /// An automatic failover of master `m` in `epoch`, led by node 1.
    fn start(epoch: u64) -> Command {
        Command::FailoverStart {
            name: "m".into(),
            epoch,
            leader: 1,
            manual: false,
            coordinated: false,
            force: false,
            by: None,
        }
    }

    /// A no-good-slave abort's detail is the committed wait reason until
    /// the master's history is recorded again or a switch; it is bounded.
    #[test]
    fn the_wait_reason_lasts_until_a_record_or_a_switch() {
        let mut s = monitored();
        let abort = |epoch, detail: Option<String>| Command::FailoverAbort {
            name: "m".into(),
            epoch,
            reason: "-failover-abort-no-good-slave".into(),
            detail,
            by: None,
        };
        s.apply(&start(1));
        s.apply(&abort(1, Some("slave 10.0.0.2:6379: offset 0".into())));
        assert_eq!(
            s.masters["m"].wait.as_deref(),
            Some("slave 10.0.0.2:6379: offset 0")
        );
        let rec = Command::RecordHistory {
            name: "m".into(),
            config_epoch: 0,
            history: ReplHistory {
                replid: "a".into(),
                replid2: "-".into(),
                offset: 10,
            },
            by: Some(1),
        };
        assert_eq!(s.apply(&rec), CommandResponse::Applied);
        assert_eq!(s.masters["m"].wait, None);
        s.apply(&start(2));
        s.apply(&abort(2, Some("é".repeat(5000))));
        let w = s.masters["m"].wait.clone().unwrap_or_default();
        assert!(
            w.len() <= WAIT_DETAIL_MAX + 3 && w.ends_with("..."),
            "{}",
            w.len()
        );
        s.apply(&start(3));
        s.apply(&abort(3, None));
        assert_eq!(s.masters["m"].wait, None, "a timeout abort says no more");
    }

    #[test]
    fn epochs_never_decrease_and_one_failover_per_epoch() {
        let mut s = monitored();
        assert_eq!(s.apply(&start(1)), CommandResponse::Applied);
        assert!(matches!(s.apply(&start(2)), CommandResponse::Rejected(_)));
        s.apply(&Command::FailoverAbort {
            name: "m".into(),
            epoch: 1,
            reason: "-failover-abort-no-good-slave".into(),
            detail: None,
            by: None,
        });
        assert!(matches!(s.apply(&start(1)), CommandResponse::Rejected(_)));
        assert_eq!(s.apply(&start(2)), CommandResponse::Applied);
        assert_eq!(s.current_epoch, 2);
    }

    #[test]
    fn takeover_changes_the_leader_of_the_running_failover_only() {
        let mut s = monitored();
        s.apply(&Command::FailoverStart {
            name: "m".into(),
            epoch: 1,
            leader: 1,
            manual: false,
            coordinated: false,
            force: false,
            by: None,
        });
        let take = |epoch, leader| Command::FailoverTakeover {
            name: "m".into(),
            epoch,
            leader,
        };
        assert!(matches!(s.apply(&take(2, 2)), CommandResponse::Rejected(_)));
        assert_eq!(s.apply(&take(1, 2)), CommandResponse::Applied);
        assert!(matches!(s.apply(&take(1, 2)), CommandResponse::Rejected(_)));
        assert_eq!(s.masters["m"].failover.as_ref().map(|f| f.leader), Some(2));
    }

    /// Entries and snapshots written before the history and the switch
    /// record existed still load.
    #[test]
    fn state_and_commands_of_older_versions_deserialize() {
        let old_state = r#"{"masters":{"m":{"host":"h","port":1,"quorum":2,"config_epoch":3,"failover":{"epoch":4,"leader":7,"promoted":null,"phase":"SelectSlave","manual":false,"coordinated":false},"down_votes":[],"options":{}}},"current_epoch":4}"#;
        let s: GroupState = serde_json::from_str(old_state).expect("old state");
        let m = &s.masters["m"];
        assert_eq!((m.history.as_ref(), m.switched.as_ref()), (None, None));
        assert_eq!(m.failover.as_ref().map(|f| f.history.is_none()), Some(true));
        let old_cmd =
            r#"{"FailoverPhase":{"name":"m","epoch":4,"phase":"ReconfSlaves","promoted":null}}"#;
        let c: Command = serde_json::from_str(old_cmd).expect("old command");
        assert!(matches!(c, Command::FailoverPhase { history: None, .. }));
    }

    /// The switch records the history taken at promotion and the old master
    /// until every daemon said it published the switch: from the committed
    /// promotion on (observers publish then), and after the switch.
    #[test]
    fn switch_records_the_history_and_who_published() {
        let mut s = monitored();
        s.apply(&Command::FailoverStart {
            name: "m".into(),
            epoch: 1,
            leader: 1,
            manual: true,
            coordinated: true,
            force: false,
            by: Some(1),
        });
        let published = |epoch, node| Command::SwitchPublished {
            name: "m".into(),
            epoch,
            node,
        };
        let phase = |phase, history| Command::FailoverPhase {
            name: "m".into(),
            epoch: 1,
            phase,
            promoted: Some(("127.0.0.1".into(), 6380)),
            history,
            by: Some(1),
        };
        // Chosen, not yet promoted: nothing to publish.
        s.apply(&phase(Phase::SendSlaveofNoone, None));
        assert!(matches!(
            s.apply(&published(1, 2)),
            CommandResponse::Rejected(_)
        ));
        let h = ReplHistory {
            replid: "b".into(),
            replid2: "a".into(),
            offset: 10,
        };
        s.apply(&phase(Phase::ReconfSlaves, Some(h.clone())));
        assert_eq!(s.apply(&published(1, 2)), CommandResponse::Applied);
        assert!(matches!(
            s.apply(&published(1, 2)),
            CommandResponse::Rejected(_)
        ));
        s.apply(&Command::SwitchMaster {
            name: "m".into(),
            epoch: 1,
            host: "127.0.0.1".into(),
            port: 6380,
            by: Some(1),
        });
        let m = &s.masters["m"];
        assert_eq!(m.history.as_ref(), Some(&h));
        let sw = m.switched.clone().expect("switch record");
        assert_eq!(
            (sw.host.as_str(), sw.port, sw.coordinated),
            ("127.0.0.1", 6379, true)
        );
        assert_eq!(sw.published, BTreeSet::from([2]), "carried over");
        assert_eq!(s.apply(&published(1, 1)), CommandResponse::Applied);
        assert!(matches!(
            s.apply(&published(1, 1)),
            CommandResponse::Rejected(_)
        ));
        assert!(matches!(
            s.apply(&published(1, 2)),
            CommandResponse::Rejected(_)
        ));
        assert!(matches!(
            s.apply(&published(2, 2)),
            CommandResponse::Rejected(_)
        ));
        assert_eq!(s.apply(&published(1, 3)), CommandResponse::Applied);
        let ids: Vec<u64> = s.masters["m"]
            .switched
            .as_ref()
            .unwrap()
            .published
            .iter()
            .copied()
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    /// Once the promotion is committed the failover ends only with its
    /// switch: an abort is refused (by its leader too), and a switch
    /// before it is not authorized.
    #[test]
    fn no_abort_and_only_a_switch_after_the_committed_promotion() {
        let mut s = monitored();
        promoting(&mut s, 1);
        let abort = Command::FailoverAbort {
            name: "m".into(),
            epoch: 1,
            reason: "-failover-abort-slave-timeout".into(),
            detail: None,
            by: Some(1),
        };
        assert!(matches!(
            s.apply(&switch(1, 6380, Some(1))),
            CommandResponse::Rejected(r) if r.contains("not committed")
        ));
        assert_eq!(s.refused, 1);
        s.apply(&Command::FailoverPhase {
            name: "m".into(),
            epoch: 1,
            phase: Phase::ReconfSlaves,
            promoted: None,
            history: None,
            by: Some(1),
        });
        assert!(matches!(
            s.apply(&abort),
            CommandResponse::Rejected(r) if r.contains("cannot be aborted")
        ));
        assert!(s.masters["m"].failover.is_some());
        assert_eq!(s.apply(&switch(1, 6380, Some(1))), CommandResponse::Applied);
    }

    fn switch(epoch: u64, port: u16, by: Option<u64>) -> Command {
        Command::SwitchMaster {
            name: "m".into(),
            epoch,
            host: "127.0.0.1".into(),
            port,
            by,
        }
    }

    /// A failover of `epoch` led by node 1 that chose 127.0.0.1:6380.
    fn promoting(s: &mut GroupState, epoch: u64) {
        let ok = |r| assert_eq!(r, CommandResponse::Applied);
        ok(s.apply(&Command::FailoverStart {
            name: "m".into(),
            epoch,
            leader: 1,
            manual: false,
            coordinated: false,
            force: false,
            by: Some(1),
        }));
        ok(s.apply(&Command::FailoverPhase {
            name: "m".into(),
            epoch,
            phase: Phase::SendSlaveofNoone,
            promoted: Some(("127.0.0.1".into(), 6380)),
            history: None,
            by: Some(1),
        }));
    }

    /// `promoting`, and the promotion confirmed (`ReconfSlaves`).
    fn promoted(s: &mut GroupState, epoch: u64) {
        promoting(s, epoch);
        let r = s.apply(&Command::FailoverPhase {
            name: "m".into(),
            epoch,
            phase: Phase::ReconfSlaves,
            promoted: None,
            history: None,
            by: Some(1),
        });
        assert_eq!(r, CommandResponse::Applied);
    }

    #[test]
    fn switch_master_moves_the_address_once_per_epoch() {
        let mut s = monitored();
        promoted(&mut s, 3);
        assert_eq!(s.apply(&switch(3, 6380, Some(1))), CommandResponse::Applied);
        assert!(matches!(
            s.apply(&switch(3, 6381, Some(1))),
            CommandResponse::Rejected(_)
        ));
        let m = &s.masters["m"];
        assert_eq!((m.port, m.config_epoch), (6380, 3));
        assert_eq!(s.refused, 0, "a stale switch is not an authority failure");
    }

    fn voters(ids: &[u64]) -> BTreeMap<u64, Member> {
        ids.iter()
            .map(|&i| (i, Member::new(format!("h:{i}"), format!("{i:040x}"))))
            .collect()
    }

    #[test]
    fn a_switch_to_anything_but_the_promoted_replica_is_refused_and_counted() {
        let mut s = monitored();
        s.apply_membership(voters(&[1, 2, 3]));
        // No failover at all: a switch a forged or replayed command could carry.
        let forged = Command::SwitchMaster {
            name: "m".into(),
            epoch: 9,
            host: "127.0.0.1".into(),
            port: 1,
            by: Some(2),
        };
        assert!(
            matches!(s.apply(&forged), CommandResponse::Rejected(r) if r.starts_with("not authorized"))
        );
        promoted(&mut s, 4);
        // Another address than the promoted replica's.
        assert!(matches!(
            s.apply(&switch(4, 6381, Some(1))),
            CommandResponse::Rejected(_)
        ));
        // The promoted replica, but proposed by a daemon not leading it.
        assert!(matches!(
            s.apply(&switch(4, 6380, Some(2))),
            CommandResponse::Rejected(_)
        ));
        assert_eq!(s.refused, 3);
        assert_eq!(s.masters["m"].port, 6379, "nothing changed");
        assert_eq!(s.apply(&switch(4, 6380, Some(1))), CommandResponse::Applied);
    }

    #[test]
    fn phases_and_aborts_only_from_the_failover_leader() {
        let mut s = monitored();
        s.apply_membership(voters(&[1, 2, 3]));
        promoting(&mut s, 2);
        let abort = |by| Command::FailoverAbort {
            name: "m".into(),
            epoch: 2,
            reason: "-failover-abort-no-good-slave".into(),
            detail: None,
            by,
        };
        assert!(matches!(
            s.apply(&abort(Some(3))),
            CommandResponse::Rejected(_)
        ));
        let phase = Command::FailoverPhase {
            name: "m".into(),
            epoch: 2,
            phase: Phase::ReconfSlaves,
            promoted: Some(("10.0.0.9".into(), 1)),
            history: None,
            by: Some(2),
        };
        assert!(matches!(s.apply(&phase), CommandResponse::Rejected(_)));
        assert_eq!(s.refused, 2);
        assert!(s.masters["m"].failover.is_some());
        // Entries of earlier releases carry no proposer and still apply.
        assert_eq!(s.apply(&abort(None)), CommandResponse::Applied);
    }

    #[test]
    fn opinions_and_leaders_only_from_voters_and_no_script_through_the_group() {
        let mut s = monitored();
        s.apply_membership(voters(&[1, 2, 3]));
        let opinion = |node| Command::Opinion {
            name: "m".into(),
            node,
            down: true,
        };
        assert_eq!(s.apply(&opinion(2)), CommandResponse::Applied);
        assert!(matches!(s.apply(&opinion(7)), CommandResponse::Rejected(_)));
        let start = Command::FailoverStart {
            name: "m".into(),
            epoch: 1,
            leader: 7,
            manual: true,
            coordinated: false,
            force: false,
            by: Some(1),
        };
        assert!(matches!(s.apply(&start), CommandResponse::Rejected(_)));
        let take = Command::FailoverTakeover {
            name: "m".into(),
            epoch: 1,
            leader: 7,
        };
        assert!(matches!(s.apply(&take), CommandResponse::Rejected(_)));
        for option in LOCAL_ONLY_OPTIONS {
            let set = Command::Set {
                name: "m".into(),
                option: option.into(),
                value: "/tmp/x.sh".into(),
            };
            assert!(matches!(s.apply(&set), CommandResponse::Rejected(_)));
        }
        assert_eq!(s.refused, 5);
        assert!(s.masters["m"].options.is_empty());
        assert_eq!(s.masters["m"].down_votes.len(), 1);
        // A voter that leaves takes its opinion with it.
        s.apply_membership(voters(&[1, 3]));
        assert!(s.masters["m"].down_votes.is_empty());
    }

    #[test]
    fn members_written_by_earlier_releases_read_with_an_empty_myid() {
        let old: BTreeMap<u64, Member> =
            serde_json::from_str(r#"{"6148914691236517205":{"addr":"10.0.0.1:26379"}}"#).unwrap();
        let m = &old[&0x5555_5555_5555_5555];
        assert_eq!(m.addr, "10.0.0.1:26379");
        assert!(m.myid.is_empty());
        assert!(m.is_daemon(
            0x5555_5555_5555_5555,
            "5555555555555555aaaaaaaaaaaaaaaaaaaaaaaa"
        ));
        // Entries of earlier releases: no proposer fields.
        let cmd: Command =
            serde_json::from_str(r#"{"SwitchMaster":{"name":"m","epoch":1,"host":"h","port":1}}"#)
                .unwrap();
        assert!(cmd.unsigned());
    }
}
