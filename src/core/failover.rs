//! The failover engine, driven by committed Raft state (docs/design.md,
//! docs/failover.md). Pure like the rest of the core: it reads the committed
//! `GroupState` and the local Raft view fed in by the driver, and answers
//! with `Action`s (proposals, Redis reconfigurations, events).
//!
//! Split of roles:
//! - every daemon proposes its SDOWN opinion, derives ODOWN from the committed
//!   votes, publishes the committed steps it must publish (`+new-epoch`,
//!   `+vote-for-leader`, `+switch-master` once per committed epoch) and
//!   answers clients from committed state;
//! - the Raft leader starts failovers, drives the one it leads (selection on
//!   fresh INFO, promotion, replica reconfiguration), takes over a failover
//!   whose leader is gone, and demotes the old master once every daemon has
//!   published the switch (publish, then demote).
//!
//! Nothing is done to Redis for a step that is not committed: a step's
//! effects run when the step shows up in `Input::Committed`. Proposals may be
//! lost, so whatever is still wanted is re-proposed every `REPROPOSE_MS`
//! (`GroupState::apply` rejects stale or duplicate commands).

use indexmap::IndexMap;

use super::event::EventKind;
use super::sentinel::Sentinel;
use super::types::{Action, InstanceId, Millis};
use crate::core::group::Command;
use crate::core::group::{Phase, ReplHistory};

mod empty;
pub(crate) use empty::history_refusal;
#[cfg(test)]
pub(crate) use empty::BACK_EMPTY_PAUSE_MS;
mod fence;
mod fenced;
mod ingest;
mod reconf;
mod repair;
mod select;
mod start;
mod steps;
mod switch;
mod view;

/// A daemon that just became the Raft leader may not have applied the last
/// committed entries yet: for this long it does not correct Redis nodes from
/// its committed view (`fix_replicas`, the demotion after a switch), which
/// could be a switch behind and turn the new master into a replica of the
/// old one. Driving a failover needs no such wait: it acts only once its own
/// takeover is committed, which comes after everything before it.
pub(crate) const LEADER_SETTLE_MS: u64 = 1000;
/// A wanted proposal not yet seen committed is sent again after this long.
pub(crate) const REPROPOSE_MS: u64 = 250;
/// Selection waits this long at most for the replicas' fresh INFO.
pub(crate) const SELECT_INFO_WAIT_MS: u64 = 300;
/// INFO polling of a replica being promoted or reconfigured.
pub(crate) const POLL_MS: u64 = 100;
/// For this long after SLAVEOF is sent, a new INFO is asked as soon as the
/// previous one is answered (one in flight): the change usually shows within
/// a few milliseconds, and the link may answer an INFO sent with the
/// transaction before the transaction itself. Then every `POLL_MS`.
pub(crate) const FAST_POLL_WINDOW_MS: u64 = 1000;
/// INFO polling while a coordinated switchover waits for the replica.
pub(crate) const CATCHUP_POLL_MS: u64 = 50;
/// Minimum spacing of corrective SLAVEOFs to the same node.
const FIX_RESEND_MS: u64 = 1000;
/// Until the group's record of the master's history matches what the
/// master reports, the Raft leader asks its INFO this often.
pub(crate) const HISTORY_INFO_MS: u64 = 1000;
/// Once recorded, the master's offset is recorded again at most this often
/// while it moves, from the periodic INFO (sent every 10 s): one Raft entry
/// per written master per period, and after any restart the record's
/// offset is at most about this old — with few masters; see
/// `HISTORY_REFRESH_GAP_MS`.
pub(crate) const HISTORY_REFRESH_MS: u64 = 10_000;
/// The group's leader proposes such a refresh at most this often, for all
/// masters together: every monitored master's offset moves (the daemons'
/// hellos are PUBLISHed on it), so without this bound 200 idle masters
/// would cost 20 Raft entries a second. With more than
/// `HISTORY_REFRESH_MS / HISTORY_REFRESH_GAP_MS` masters a master's offset
/// is refreshed every `masters × HISTORY_REFRESH_GAP_MS` instead (200 s
/// at 200 masters). A new id, the first data and every failover are
/// recorded at once, whatever this says.
pub(crate) const HISTORY_REFRESH_GAP_MS: u64 = 1000;
/// After a switch, the old master is demoted (its clients killed) only once
/// every daemon of the group has published `+switch-master` — clients that
/// learn of a failover only from that message (Jedis) must have moved before
/// their connections drop — or once this long has passed since the leader
/// saw the switch committed (a daemon that missed the commit, cut off or
/// hung, is not waited for longer).
pub(crate) const SWITCH_PUBLISH_WAIT_MS: u64 = 2000;
/// Time given to subscribers after the last daemon's publication was seen
/// committed, before the old master's clients are killed: the message is
/// on the wire, the client's listener thread still has to act on it.
pub(crate) const SUBSCRIBER_GRACE_MS: u64 = 100;
/// `SENTINEL SIMULATE-FAILURE` bits (INFO `sentinel_simulate_failure_flags`).
pub const SIMFAILURE_CRASH_AFTER_ELECTION: u32 = 1;
pub const SIMFAILURE_CRASH_AFTER_PROMOTION: u32 = 2;

/// The master option that turns manual failovers into coordinated ones
/// (raftinel extension of SENTINEL SET).
pub const COORDINATED_OPTION: &str = "coordinated-failover";
/// raftinel's SENTINEL SET option: the master's fenced nodes (`host:port`,
/// separated by commas or spaces; empty: none). A fenced node is never
/// promoted, a fenced master is switched away from by a coordinated
/// switchover, and its pod is not Ready (`fenced.rs`; set from pod
/// annotations by the `k8s` feature).
pub const FENCED_OPTION: &str = "fenced-nodes";
pub(crate) use fenced::parse_fenced;

/// Per-master failover bookkeeping of this daemon (never persisted: after a
/// restart the committed state says where things stand).
#[derive(Debug, Clone, Default)]
pub struct Ctl {
    /// Epoch of the last committed failover start already published here.
    /// Starts at the persisted current epoch, so a replayed log does not
    /// publish old failovers again.
    pub start_seen: u64,
    /// Epoch whose leader-side start events this daemon emitted.
    pub led_start: u64,
    /// Last opinion proposed (down?) and when.
    pub opinion: Option<(bool, Millis)>,
    /// When the last committed failover of this master started (retry
    /// spacing: 2 × failover-timeout after a start, unless it succeeded).
    pub last_start: Option<Millis>,
    /// Last automatic FailoverStart proposal.
    pub start_proposed: Option<Millis>,
    /// Epoch of the last FailoverStart proposed for this master
    /// (`Sentinel::start_epoch`).
    pub start_epoch: u64,
    /// Last FailoverTakeover proposal (epoch, when).
    pub takeover_proposed: Option<(u64, Millis)>,
    /// Last Monitor proposal of a master the group does not know yet.
    pub monitor_proposed: Option<Millis>,
    /// A SENTINEL FAILOVER waiting to be committed.
    pub manual: Option<ManualWant>,
    /// `coordinated-failover no`: SENTINEL FAILOVER is Sentinel's plain
    /// failover. By default it is a coordinated switchover.
    pub plain_manual: bool,
    /// The committed switch whose old master waits for its demotion, as this
    /// daemon first saw it: (epoch, when).
    pub switch_seen: Option<(u64, Millis)>,
    /// When this daemon last proposed its `SwitchPublished` (epoch, when).
    pub publish_proposed: Option<(u64, Millis)>,
    /// Raft leader: the old master's demotion for the switch it names.
    pub demotion: Option<Demotion>,
    /// Nodes this daemon paused (CLIENT PAUSE WRITE) and has not unpaused
    /// yet: each is unpaused once it reports role:slave, whatever became of
    /// the failover or switch that paused it (a next failover may start
    /// before the demotion shows, and a paused node would hold every hello
    /// PUBLISH sent to it, then be seen down).
    pub paused: Vec<(String, u16)>,
    /// The failover this daemon drives (Raft leader named in it).
    pub run: Option<Run>,
    /// ODOWN was decided by Sentinel's peer-reply rule before this daemon
    /// could read the group's votes (master killed while the group formed).
    /// Set: `Some(None)`; once the committed votes take over: `Some(Some(t))`,
    /// the deadline until which the votes may catch up without a `-odown`
    /// (see `sentinel::group_check_odown`).
    pub classic_odown: Option<Option<Millis>>,
    /// The group's SET options (and quorum) as last seen committed: only a
    /// committed value that changed since is applied here, so a local SET
    /// not yet committed is not undone by an older committed value.
    pub seen_options: std::collections::BTreeMap<String, String>,
    /// Options set on this daemon and proposed, not seen committed yet
    /// (group key -> value, when).
    pub pending_options: std::collections::BTreeMap<String, (String, Millis)>,
    /// Raft leader: when it last proposed the master's history
    /// (`Command::RecordHistory`).
    pub history_proposed: Option<Millis>,
    /// This daemon's fence of the master's node (`fence.rs`).
    pub fence: Option<fence::Fence>,
    /// The committed `fenced-nodes` (`fenced.rs`).
    pub fenced: Vec<(String, u16)>,
    /// Raft leader: when it last asked for the switchover away from a
    /// fenced master.
    pub fenced_switch: Option<Millis>,
    /// The master back empty whose writes this daemon paused (`empty.rs`):
    /// its address and when the pause was last sent.
    pub back_empty_pause: Option<(String, u16, Millis)>,
}

/// The Raft leader's progress in demoting the old master of the last switch
/// (local: a new leader starts over from the committed `Switched` record and
/// the old master's INFO).
#[derive(Debug, Clone, Copy, Default)]
pub struct Demotion {
    pub epoch: u64,
    /// Since when every daemon's publication is seen committed (or the
    /// daemons left out are out of reach).
    pub published_at: Option<Millis>,
    /// Last CLIENT PAUSE sent to the old master (coordinated).
    pub paused_at: Option<Millis>,
    /// The old master follows the new one: nothing more to do.
    pub done: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct ManualWant {
    pub coordinated: bool,
    /// The history rules waived (`SENTINEL FAILOVER <master> FORCE`).
    pub force: bool,
    pub since: Millis,
    pub proposed: Millis,
}

/// Per-replica reconfiguration state during `reconf_slaves`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconf {
    /// SLAVEOF sent at `at`; `count` = the replica's INFO count then.
    Sent {
        at: Millis,
        count: u64,
    },
    Inprog,
    Done,
}

impl Reconf {
    fn flag(self) -> &'static str {
        match self {
            Reconf::Sent { .. } => "reconf_sent",
            Reconf::Inprog => "reconf_inprog",
            Reconf::Done => "reconf_done",
        }
    }
}

/// Where the driving leader stands within the committed phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sub {
    /// Fresh INFO asked of these replicas (id, INFO count that answers it).
    Asking {
        waiting: Vec<(InstanceId, u64)>,
        at: Millis,
    },
    /// A proposal (next phase or abort) is out; waiting for its commit.
    Decided,
    /// The promoted replica's link is down: SLAVEOF NO ONE waits for it.
    WaitLink,
    /// Coordinated: writes paused on the old master; waiting for the replica
    /// to reach `offset`, the master's offset read after the pause: from the
    /// INFO pipelined with CLIENT PAUSE (`Input::PauseReply`), or, if that
    /// reply is late, from an INFO asked one poll period after the pause
    /// (`info_target` = the master INFO count that answers it).
    CatchUp {
        offset: Option<u64>,
        info_target: Option<u64>,
    },
    /// SLAVEOF NO ONE sent; waiting for an INFO after it saying role:master.
    WaitPromotion { count: u64 },
    /// Replicas being reconfigured.
    Reconf,
}

/// The failover this daemon drives.
#[derive(Debug, Clone)]
pub struct Run {
    pub epoch: u64,
    /// Committed phase whose entry work is done here (None: nothing yet).
    pub phase: Option<Phase>,
    pub sub: Sub,
    /// When the current phase (or promotion wait) began locally.
    pub since: Millis,
    /// The proposal being pushed until committed.
    pub want: Option<(Command, Millis)>,
    /// The abort event to publish when the proposed abort commits, and
    /// why (for its log line).
    pub abort: Option<EventKind>,
    pub abort_detail: Option<String>,
    pub reconf: IndexMap<String, Reconf>,
    /// Writes are paused on the old master (coordinated mode); they stay
    /// paused through the switch until the old master is demoted.
    pub paused: bool,
    /// When CLIENT PAUSE was last sent: it is sent again before it expires
    /// (its timeout is failover-timeout, and the steps after the pause may
    /// each take up to that).
    pub paused_at: Millis,
    pub last_poll: Millis,
    /// This daemon's node id: its proposals are signed with it.
    pub by: u64,
}

impl Run {
    fn new(epoch: u64, now: Millis, by: u64) -> Run {
        Run {
            by,
            epoch,
            phase: None,
            sub: Sub::Decided,
            since: now,
            want: None,
            abort: None,
            abort_detail: None,
            reconf: IndexMap::new(),
            paused: false,
            paused_at: now,
            last_poll: now,
        }
    }

    fn propose(&mut self, cmd: Command, now: Millis, out: &mut Vec<Action>) {
        let cmd = cmd.signed(self.by);
        out.push(Action::Propose(cmd.clone()));
        self.want = Some((cmd, now));
    }
}

/// Sentinel's `failover-state` name of a committed phase.
fn phase_str(p: Phase) -> &'static str {
    match p {
        Phase::SelectSlave => "select_slave",
        Phase::SendSlaveofNoone => "send_slaveof_noone",
        Phase::WaitPromotion => "wait_promotion",
        Phase::ReconfSlaves => "reconf_slaves",
        Phase::UpdateConfig => "update_config",
    }
}

/// How long the leader's own PING must have been pending before it counts
/// as unanswered (a healthy master answers in well under a millisecond).
const PENDING_PING_EVIDENCE_MS: u64 = 100;

/// The leader sees the master down: SDOWN, or — with the group's quorum
/// already saying so — a PING pending for a while and nothing heard from it
/// for more than down-after. The second form matters when the master hangs
/// (SIGSTOP): each daemon's SDOWN comes down-after after its own first
/// unanswered PING, and the leader's PING may have gone out up to a ping
/// period after the others'; a master that answers it is never "down".
fn leader_sees_down(inst: &super::instance::Instance, now: Millis) -> bool {
    let l = &inst.link;
    inst.s_down
        || (l
            .act_ping_time
            .is_some_and(|a| now.saturating_sub(a) > PENDING_PING_EVIDENCE_MS)
            && now.saturating_sub(l.last_avail_time) > inst.down_after)
}

/// The node answers: its command link is up, it is not SDOWN and no PING
/// to it has been pending for long. A hung (SIGSTOPped) master keeps its
/// connection and accepts new ones, so the link alone says nothing.
pub(super) fn answering(inst: &super::instance::Instance, now: Millis) -> bool {
    inst.link.cmd_up
        && !inst.s_down
        && inst
            .link
            .act_ping_time
            .is_none_or(|t| now.saturating_sub(t) <= PENDING_PING_EVIDENCE_MS)
}

fn same_addr(h1: &str, p1: u16, h2: &str, p2: u16) -> bool {
    p1 == p2 && h1.eq_ignore_ascii_case(h2)
}

/// A master address replicas are told to follow: SLAVEOF sends it as shown
/// (`instance::announced`), so a replica may report either the name or the
/// IP it resolved to as its master, and either one means it follows.
struct Target {
    host: String,
    ip: Option<String>,
    port: u16,
    shown: String,
}

impl Target {
    fn of(m: &super::sentinel::Master, host: &str, port: u16, announce: bool) -> Target {
        Target {
            host: host.to_string(),
            ip: m.ip_of(host).map(str::to_string),
            port,
            shown: m.shown_host(host, announce).to_string(),
        }
    }

    /// `r`'s INFO says it replicates from this address.
    fn followed_by(&self, r: &super::instance::Instance) -> bool {
        follows(r, &self.host, self.ip.as_deref(), self.port)
    }

    /// The SLAVEOF arguments.
    fn replicaof(&self) -> Option<(String, u16)> {
        Some((self.shown.clone(), self.port))
    }
}

/// `r`'s INFO says it replicates from `host:port` (or `ip:port`, the IP
/// `host` resolved to).
fn follows(r: &super::instance::Instance, host: &str, ip: Option<&str>, port: u16) -> bool {
    r.slave_master_port == i64::from(port)
        && r.slave_master_host
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(host) || ip == Some(h))
}

/// The instance at `host:port` among a master's (`inst`) and its replicas.
fn instance_at<'a>(
    inst: &'a mut super::instance::Instance,
    replicas: &'a mut IndexMap<String, super::instance::Instance>,
    host: &str,
    port: u16,
) -> Option<&'a mut super::instance::Instance> {
    if same_addr(&inst.host, inst.port, host, port) {
        return Some(inst);
    }
    replicas
        .values_mut()
        .find(|r| same_addr(&r.host, r.port, host, port))
}

/// Asks INFO on the command link if it is up; returns the INFO count whose
/// arrival answers this request (replies come back in order).
pub(crate) fn ask_info(inst: &mut super::instance::Instance, out: &mut Vec<Action>) -> Option<u64> {
    if !inst.link.cmd_up {
        return None;
    }
    let target = inst.info_count + 1 + u64::from(inst.link.info_inflight);
    super::detection::send_info(inst, out);
    Some(target)
}

/// A corrective SLAVEOF was sent to `inst` and no INFO at least
/// `FIX_RESEND_MS` younger than it has shown the problem still there: not
/// sent again yet.
fn fix_pending(inst: &super::instance::Instance) -> bool {
    inst.fix_sent_at.is_some_and(|t| {
        inst.info_refresh
            .is_none_or(|i| i < t.saturating_add(FIX_RESEND_MS))
    })
}

/// `+convert-to-slave`: a node reporting role:master made a replica of
/// `to` (the reconfiguration transaction), and its INFO asked, which shows
/// the new role.
fn convert_to_slave(
    inst: &mut super::instance::Instance,
    to: (String, u16),
    ma: &super::sentinel::MAddr,
    now: Millis,
    out: &mut Vec<Action>,
) {
    inst.fix_sent_at = Some(now);
    reconfigure(inst, Some(to), out);
    let ev = super::sentinel::prefix(inst, ma);
    super::sentinel::emit(out, EventKind::ConvertToSlave, ev, Some(&ma.name));
    ask_info(inst, out);
}

/// A switch of a master to a newer config epoch, as `Sentinel::switch_to`
/// applies it.
struct Switch<'a> {
    epoch: u64,
    host: &'a str,
    port: u16,
    /// The daemon that led the failover, when known.
    leader: Option<u64>,
    /// The history the promoted replica took at its promotion.
    history: Option<&'a ReplHistory>,
}

/// What the failover engine adds to an instance description.
#[derive(Debug, Clone, Default)]
pub(crate) struct DescExtras {
    pub failover_state: Option<&'static str>,
}

impl Sentinel {
    /// A new Raft view. A change of leadership forgets the proposal rate
    /// limits: proposals in flight to the old leader are likely lost, and a
    /// new leader must act at once (speed rule of the design).
    pub(crate) fn raft_in(&mut self, now: Millis, view: super::types::RaftView) {
        if view.is_leader && !self.raft.is_leader {
            self.leader_since = Some(now);
        } else if !view.is_leader {
            self.leader_since = None;
        }
        if view != self.raft {
            for m in self.masters.values_mut() {
                m.fo.start_proposed = None;
                m.fo.takeover_proposed = None;
                m.fo.opinion = None;
                if let Some(w) = m.fo.manual.as_mut() {
                    w.proposed = 0;
                }
                if let Some((_, at)) = m.fo.run.as_mut().and_then(|r| r.want.as_mut()) {
                    *at = 0;
                }
            }
        }
        self.raft = view;
    }

    /// The engine's step, after every input that can move it.
    pub(crate) fn failover_step(&mut self, now: Millis, out: &mut Vec<Action>) {
        for mi in 0..self.masters.len() {
            self.failover_step_master(mi, now, out);
        }
    }

    /// Whether nothing of master `mi`'s failover is under way: no failover
    /// (committed, or driven here), no switch waiting for its old master's
    /// demotion, no node paused, no fence, no SENTINEL FAILOVER waiting, the
    /// master neither SDOWN nor ODOWN, no opinion of this daemon's waiting
    /// to be committed, the group's votes not showing it down, no wait for a
    /// replica on the recorded history. The steps that only follow a
    /// failover (`failover_step_master`) have nothing to do for a quiet
    /// master; and a PING or PUBLISH reply, or a known peer's hello, about
    /// one is not followed by a step at all: the tick steps every master
    /// (every 100 ms), and at idle those replies are most of the inputs.
    pub(crate) fn quiet(&self, mi: usize) -> bool {
        let Some(m) = self.masters.get_index(mi).map(|(_, m)| m) else {
            return true;
        };
        let f = &m.fo;
        if m.failover_in_progress
            || m.inst.s_down
            || m.inst.o_down
            || f.run.is_some()
            || f.manual.is_some()
            || f.opinion.is_some()
            || f.fence.is_some()
            || f.classic_odown.is_some()
            || !f.paused.is_empty()
        {
            return false;
        }
        match self.cmaster(&m.inst.name) {
            Some(cm) => {
                cm.failover.is_none()
                    && cm.down_votes.is_empty()
                    && cm.wait.is_none()
                    && cm
                        .switched
                        .as_ref()
                        .is_none_or(|sw| sw.epoch != cm.config_epoch)
            }
            None => false,
        }
    }

    /// The engine's step for one master (`Sentinel::handle` steps only the
    /// masters an input is about; every master on each tick).
    pub(crate) fn failover_step_master(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if self.committed.is_none() || mi >= self.masters.len() {
            return;
        }
        if self.cmaster(&self.masters[mi].inst.name).is_none() {
            self.propose_monitor(mi, now, out);
            return;
        }
        // The steps that start or follow a failover or switch have nothing
        // to do for a quiet master (each returns at once then; skipped, they
        // cost no lookups). Fencing, the leader's repairs and records, and
        // the fenced set's switch are driven by time and run at every step.
        if !self.quiet(mi) {
            self.group_odown(mi, now, out);
            self.propose_opinion(mi, now, out);
            self.push_manual(mi, now, out);
            self.maybe_start(mi, now, out);
            self.maybe_takeover(mi, now, out);
            self.drive(mi, now, out);
            self.report_published(mi, now, out);
            self.hold_hellos_to_paused(mi);
            self.demote_after_switch(mi, now, out);
            self.release_paused(mi, out);
        }
        self.fence_step(mi, now, out);
        self.back_empty_fence(mi, now, out);
        self.fix_replicas(mi, now, out);
        self.record_history(mi, now, out);
        self.switch_from_fenced(mi, now, out);
    }
}

/// The reconfiguration transaction to `inst`. Its `CLIENT KILL TYPE pubsub`
/// drops this daemon's own pubsub link to the node: reconnect it at the
/// next tick rather than a reconnect period after the last connect, or the
/// node counts as disconnected (skipped by `reconf_slaves`, its PINGs held)
/// for up to a second.
fn reconfigure(
    inst: &mut super::instance::Instance,
    replicaof: Option<(String, u16)>,
    out: &mut Vec<Action>,
) {
    inst.link.last_reconn_time = None;
    out.push(Action::Reconfigure {
        id: inst.id,
        replicaof,
    });
}

/// The pause on `inst` lifted (CLIENT UNPAUSE if its link is up): no longer
/// in `paused`, its hellos sent again.
fn lift_pause(
    paused: &mut Vec<(String, u16)>,
    inst: &mut super::instance::Instance,
    out: &mut Vec<Action>,
) {
    paused.retain(|(h, p)| !same_addr(h, *p, &inst.host, inst.port));
    inst.link.hold_hello = false;
    if inst.link.cmd_up {
        out.push(Action::Unpause { id: inst.id });
    }
}

/// `CLIENT PAUSE <ms> WRITE` (with its INFO) on a master being switched
/// over; no hello PUBLISH on that link meanwhile (a paused PUBLISH would hold
/// every later command of the link).
fn pause_writes(
    paused: &mut Vec<(String, u16)>,
    inst: &mut super::instance::Instance,
    ms: u64,
    out: &mut Vec<Action>,
) {
    if !paused
        .iter()
        .any(|(h, p)| same_addr(h, *p, &inst.host, inst.port))
    {
        paused.push((inst.host.clone(), inst.port));
    }
    inst.link.hold_hello = true;
    inst.link.pending += 1;
    out.push(Action::PauseWrites { id: inst.id, ms });
}
