//! Proposals that start things: the group's knowledge of a master, this
//! daemon's SDOWN opinion, automatic and manual failover starts, and the
//! takeover of a failover whose leader is gone.

use super::{leader_sees_down, ManualWant, REPROPOSE_MS};
use crate::core::detection::refusal_votes;
use crate::core::group::Command;
use crate::core::sentinel::Sentinel;
use crate::core::types::{Action, Millis};

impl Sentinel {
    /// A master this daemon monitors and the group does not: the leader
    /// registers it (the group must know a master to vote on it).
    pub(super) fn propose_monitor(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.raft.is_leader {
            return;
        }
        let m = &mut self.masters[mi];
        if m.fo
            .monitor_proposed
            .is_some_and(|t| now.saturating_sub(t) < 1000)
        {
            return;
        }
        m.fo.monitor_proposed = Some(now);
        out.push(Action::Propose(Command::Monitor {
            name: m.inst.name.clone(),
            host: m.inst.host.clone(),
            port: m.inst.port,
            quorum: m.quorum,
        }));
    }

    /// ODOWN = local SDOWN and committed down votes >= quorum.
    pub(crate) fn group_odown(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let Some(votes) = self.committed_down_votes(&self.masters[mi].inst.name) else {
            return;
        };
        let announce = self.globals.announce_hostnames;
        crate::core::sentinel::group_check_odown(&mut self.masters[mi], now, votes, announce, out);
    }

    /// Proposes this daemon's SDOWN opinion while the committed votes
    /// disagree with it (rate-limited).
    pub(super) fn propose_opinion(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let node = self.raft.node_id;
        // Only voters' opinions count (a learner's would be refused).
        let voter = self.committed.as_ref().is_some_and(|c| c.is_voter(node));
        if !self.raft.initialized || !voter {
            return;
        }
        let committed = self
            .cmaster(&self.masters[mi].inst.name)
            .is_some_and(|cm| cm.down_votes.contains(&node));
        let m = &mut self.masters[mi];
        let local = m.inst.s_down;
        if local == committed {
            m.fo.opinion = None;
            return;
        }
        let name = m.inst.name.clone();
        let due = match m.fo.opinion {
            Some((v, t)) => v != local || now.saturating_sub(t) >= REPROPOSE_MS,
            None => true,
        };
        if due {
            m.fo.opinion = Some((local, now));
            out.push(Action::Propose(Command::Opinion {
                name,
                node,
                down: local,
            }));
        }
    }

    /// A FailoverStart naming the Raft leader as the daemon that drives it
    /// (a SENTINEL FAILOVER received by a follower is forwarded to the
    /// leader; naming the leader spares a takeover). The epoch is above the
    /// local one too: a deployment migrated from redis-sentinel starts its
    /// group at epoch 0 while its config files carry the old epochs, and a
    /// switch must be newer than every daemon's config epoch to be applied.
    pub(super) fn start_command(
        &mut self,
        name: &str,
        manual: bool,
        coordinated: bool,
        force: bool,
    ) -> Command {
        let committed = self.committed.as_ref().map_or(0, |c| c.current_epoch);
        let local = self
            .masters
            .get(name)
            .map_or(0, |m| m.config_epoch)
            .max(self.current_epoch);
        let epoch = self.start_epoch(name, committed.max(local));
        Command::FailoverStart {
            name: name.to_string(),
            epoch,
            leader: self.raft.leader.unwrap_or(self.raft.node_id),
            manual,
            coordinated,
            force,
            by: Some(self.raft.node_id),
        }
    }

    /// Re-proposes a pending SENTINEL FAILOVER until a failover of the master
    /// is committed (or failover-timeout passes).
    pub(super) fn push_manual(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let Some(want) = self.masters[mi].fo.manual else {
            return;
        };
        let name = self.masters[mi].inst.name.clone();
        let busy = self.cfailover(&name).is_some();
        let timeout = self.masters[mi].failover_timeout;
        if busy || now.saturating_sub(want.since) > timeout {
            self.masters[mi].fo.manual = None;
            return;
        }
        if now.saturating_sub(want.proposed) < REPROPOSE_MS {
            return;
        }
        let cmd = self.start_command(&name, true, want.coordinated, want.force);
        out.push(Action::Propose(cmd));
        if let Some(w) = self.masters[mi].fo.manual.as_mut() {
            w.proposed = now;
        }
    }

    /// The Raft leader starts a failover of a committed-ODOWN
    /// master when the group is a majority of the daemons it knows.
    pub(super) fn maybe_start(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.raft.is_leader {
            return;
        }
        let m = &self.masters[mi];
        let Some(cm) = self.cmaster(&m.inst.name) else {
            return;
        };
        // Committed ODOWN, and the leader sees the master down itself: a
        // stale committed vote (a daemon that crashed before retracting it)
        // must not start a failover of a master the leader can reach.
        let votes = refusal_votes(m, cm.down_votes.len(), self.raft.voters);
        if cm.failover.is_some()
            || votes < m.quorum.max(1) as usize
            || !leader_sees_down(&m.inst, now)
        {
            return;
        }
        let known = m.sentinels.len() + 1;
        if self.raft.voters < known / 2 + 1 {
            return;
        }
        let spacing = m.failover_timeout.saturating_mul(2);
        if m.fo
            .last_start
            .is_some_and(|t| now.saturating_sub(t) < spacing)
        {
            return;
        }
        if m.fo
            .start_proposed
            .is_some_and(|t| now.saturating_sub(t) < REPROPOSE_MS)
        {
            return;
        }
        let name = m.inst.name.clone();
        let cmd = self.start_command(&name, false, false, false);
        self.masters[mi].fo.start_proposed = Some(now);
        out.push(Action::Propose(cmd));
    }

    /// The Raft leader takes over a committed failover led by
    /// another daemon.
    pub(super) fn maybe_takeover(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.raft.is_leader {
            return;
        }
        let me = self.raft.node_id;
        let name = self.masters[mi].inst.name.clone();
        let Some(f) = self.cfailover(&name) else {
            return;
        };
        if f.leader == me {
            return;
        }
        let epoch = f.epoch;
        let fo = &mut self.masters[mi].fo;
        if fo
            .takeover_proposed
            .is_some_and(|(e, t)| e == epoch && now.saturating_sub(t) < REPROPOSE_MS)
        {
            return;
        }
        fo.takeover_proposed = Some((epoch, now));
        out.push(Action::Propose(Command::FailoverTakeover {
            name,
            epoch,
            leader: me,
        }));
    }

    /// SENTINEL FAILOVER: -INPROG, -NOGOODSLAVE, else propose a
    /// manual FailoverStart (re-proposed until committed) and answer +OK.
    /// `force`: `SENTINEL FAILOVER <master> FORCE`, the operator accepting
    /// the loss of the recorded history: the replica is chosen without the
    /// history rules (never one reporting role:master).
    pub(crate) fn manual_failover(
        &mut self,
        mi: usize,
        coordinated: bool,
        force: bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> Result<(), crate::core::commands::CmdError> {
        use crate::core::commands::CmdError;
        let name = self.masters[mi].inst.name.clone();
        let busy = match self.cmaster(&name) {
            Some(cm) => cm.failover.is_some(),
            None => self.masters[mi].failover_in_progress,
        } || self.masters[mi].fo.manual.is_some();
        if busy {
            return Err(CmdError("INPROG Failover already in progress".into()));
        }
        if self.select_slave_as(&name, now, !force).is_none() {
            return Err(CmdError(
                "NOGOODSLAVE No suitable replica to promote".into(),
            ));
        }
        if !self.raft.initialized || self.cmaster(&name).is_none() {
            return Err(CmdError(
                "NOQUORUM No Raft group: a failover cannot be committed now".into(),
            ));
        }
        // A planned switchover loses no acknowledged write unless the master
        // is set `coordinated-failover no` (Sentinel's plain failover) and
        // the command did not ask for it.
        // FORCE is plain: the master it replaces is usually gone, and a
        // coordinated switchover waits for it.
        let coordinated = !force && (coordinated || !self.masters[mi].fo.plain_manual);
        let cmd = self.start_command(&name, true, coordinated, force);
        out.push(Action::Propose(cmd));
        self.masters[mi].fo.manual = Some(ManualWant {
            coordinated,
            force,
            since: now,
            proposed: now,
        });
        Ok(())
    }
}
