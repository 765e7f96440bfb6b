//! The settled leader's work outside failovers: a node back as a
//! master, a replica following the wrong master, the master's replication
//! history recorded in the committed state.

use super::{
    ask_info, fix_pending, follows, reconfigure, same_addr, Target, HISTORY_INFO_MS,
    HISTORY_REFRESH_GAP_MS, HISTORY_REFRESH_MS, LEADER_SETTLE_MS, REPROPOSE_MS,
};
use crate::core::event::EventKind;
use crate::core::group::{Command, ReplHistory};
use crate::core::instance::Role;
use crate::core::sentinel::{emit, prefix, Sentinel};
use crate::core::types::{Action, Millis};

impl Sentinel {
    /// The Raft leader, for at least `LEADER_SETTLE_MS`.
    pub(super) fn settled_leader(&self, now: Millis) -> bool {
        self.raft.is_leader
            && self
                .leader_since
                .is_some_and(|t| now.saturating_sub(t) >= LEADER_SETTLE_MS)
    }

    /// Sentinel's "master looks sane" before it reconfigures other nodes to
    /// follow it: at the committed address, up, and saying role:master in
    /// a recent INFO.
    pub(super) fn master_looks_sane(&self, mi: usize, now: Millis) -> bool {
        let m = &self.masters[mi];
        let Some(cm) = self.cmaster(&m.inst.name) else {
            return false;
        };
        let info_period = self.timing.info_period;
        same_addr(&m.inst.host, m.inst.port, &cm.host, cm.port)
            && !m.inst.s_down
            && !m.inst.o_down
            && m.inst.role_reported == Role::Master
            && m.inst
                .info_refresh
                .is_some_and(|t| now.saturating_sub(t) < info_period.saturating_mul(2))
    }

    /// Leader only, no failover running: a replica that reports role:master
    /// (a node back as a master; the old master of the last switch is
    /// `demote_after_switch`'s) is made a replica as soon as it answers
    /// (+convert-to-slave); a replica following the wrong master is
    /// re-pointed after failover-timeout (+fix-slave-config).
    pub(super) fn fix_replicas(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.settled_leader(now) || !self.replica_to_fix(mi) {
            return;
        }
        let name = self.masters[mi].inst.name.clone();
        let Some(cm) = self.cmaster(&name) else {
            return;
        };
        if cm.failover.is_some() {
            return;
        }
        let (host, port) = (cm.host.clone(), cm.port);
        let waiting = self
            .pending_switch(mi)
            .map(|sw| (sw.epoch, sw.host.clone(), sw.port));
        if !self.master_looks_sane(mi, now) {
            return;
        }
        let m = &mut self.masters[mi];
        let ma = m.addr(self.globals.announce_hostnames);
        let target = Target::of(m, &host, port, ma.announce);
        let timeout = m.failover_timeout;
        let demoted = m.fo.demotion.filter(|d| d.done).map(|d| d.epoch);
        for r in m.replicas.values_mut() {
            // The old master of the switch is `demote_after_switch`'s until
            // it follows a master.
            if let Some((e, h, p)) = &waiting {
                if demoted != Some(*e) && same_addr(&r.host, r.port, h, *p) {
                    continue;
                }
            }
            // Sent again only if an INFO at least FIX_RESEND_MS younger than
            // the last attempt still shows the problem.
            if !r.link.cmd_up || r.info_refresh.is_none() || fix_pending(r) {
                continue;
            }
            let kind = if r.role_reported == Role::Master {
                // Answers PING (nothing pending) and says it is a master.
                if r.link.act_ping_time.is_some() {
                    continue;
                }
                EventKind::ConvertToSlave
            } else {
                let wrong = r.slave_master_host.is_some() && !target.followed_by(r);
                let quiet = |t: Option<Millis>| t.is_none_or(|t| now.saturating_sub(t) > timeout);
                if !wrong
                    || now.saturating_sub(r.slave_conf_change_time) <= timeout
                    || !quiet(r.s_down_since)
                    || !quiet(r.o_down_since)
                    || r.s_down
                {
                    continue;
                }
                EventKind::FixSlaveConfig
            };
            r.fix_sent_at = Some(now);
            reconfigure(r, target.replicaof(), out);
            emit(out, kind, prefix(r, &ma), Some(&name));
            // Confirmation (and the role change) without waiting for the
            // periodic INFO.
            ask_info(r, out);
        }
    }

    /// Whether `fix_replicas` may have a replica to fix: one that reports
    /// role:master, or one that follows another address than the committed
    /// master's. Read without building anything, as it runs at every step of
    /// every master; `fix_replicas` decides.
    fn replica_to_fix(&self, mi: usize) -> bool {
        let m = &self.masters[mi];
        let Some(cm) = self.cmaster(&m.inst.name) else {
            return false;
        };
        // The IP is looked for only when the name does not match.
        let follows_cm = |r| {
            follows(r, &cm.host, None, cm.port) || follows(r, &cm.host, m.ip_of(&cm.host), cm.port)
        };
        m.replicas.values().any(|r| {
            r.link.cmd_up
                && r.info_refresh.is_some()
                && !fix_pending(r)
                && (r.role_reported == Role::Master
                    || (r.slave_master_host.is_some() && !follows_cm(r)))
        })
    }

    /// Leader only, no failover running, the master sane: its replication
    /// history is recorded in the committed state when it first shows data
    /// or reports another id than the records' (re-proposed every
    /// `REPROPOSE_MS` until committed), and its offset again at most every
    /// `HISTORY_REFRESH_MS` (`masters × HISTORY_REFRESH_GAP_MS` with many
    /// masters; one refresh per gap for the whole group) once it moved
    /// (`CommittedMaster::seen`, apart from the promotion's `history` that
    /// `boot-redis` keeps to). Until the
    /// record matches, the INFO of a master with replicas, and of its
    /// replicas, is asked every `HISTORY_INFO_MS` (the periodic one comes
    /// every 10 s).
    pub(super) fn record_history(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.settled_leader(now) {
            return;
        }
        let m = &self.masters[mi];
        let Some(cm) = self.cmaster(&m.inst.name) else {
            return;
        };
        // A master back empty keeps the record of the data it lost.
        if cm.failover.is_some() || m.inst.back_empty.is_some() {
            return;
        }
        let recorded = |id: &str| {
            [&cm.seen, &cm.history]
                .iter()
                .any(|h| h.as_ref().is_some_and(|h| h.replid == id))
        };
        if m.inst.repl_id.as_deref().is_some_and(recorded) {
            // On the recorded id: the offset is refreshed from the periodic
            // INFO, at most every `HISTORY_REFRESH_MS`, once it moved.
            let record = cm
                .seen
                .as_ref()
                .filter(|h| m.inst.repl_id.as_deref() == Some(h.replid.as_str()));
            let moved = m
                .inst
                .repl_offset
                .is_some_and(|o| record.is_none_or(|h| o > h.offset));
            let every = HISTORY_REFRESH_MS.max(self.masters.len() as u64 * HISTORY_REFRESH_GAP_MS);
            let lately = |t: Option<Millis>| t.is_some_and(|t| now.saturating_sub(t) < every);
            let group_lately = self
                .history_refreshed_at
                .is_some_and(|t| now.saturating_sub(t) < HISTORY_REFRESH_GAP_MS);
            if moved
                && !lately(m.fo.history_proposed)
                && !group_lately
                && self.propose_history(mi, now, out)
            {
                self.history_refreshed_at = Some(now);
            }
            return;
        }
        // Only with replicas (a master without replicas has nothing to
        // protect, and idle ones cost no INFO), and the replicas' INFO with
        // it: a fresh master offset beside a replica's INFO from before its
        // first sync would make that replica look empty to selection.
        let stale = |i: &crate::core::instance::Instance| {
            i.link.cmd_up
                && !i.link.info_inflight
                && i.info_refresh
                    .is_none_or(|t| now.saturating_sub(t) >= HISTORY_INFO_MS)
        };
        if stale(&m.inst)
            && !m.replicas.is_empty()
            && same_addr(&m.inst.host, m.inst.port, &cm.host, cm.port)
        {
            let m = &mut self.masters[mi];
            ask_info(&mut m.inst, out);
            for r in m.replicas.values_mut() {
                if stale(r) {
                    ask_info(r, out);
                }
            }
            return;
        }
        let proposed_lately =
            m.fo.history_proposed
                .is_some_and(|t| now.saturating_sub(t) < REPROPOSE_MS);
        if !proposed_lately {
            self.propose_history(mi, now, out);
        }
    }

    /// The master's ids and offset from its latest INFO proposed as the
    /// group's record, when it looks sane and shows data.
    /// Whether it was proposed.
    fn propose_history(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) -> bool {
        if !self.master_looks_sane(mi, now) {
            return false;
        }
        let m = &self.masters[mi];
        let Some(cm) = self.cmaster(&m.inst.name) else {
            return false;
        };
        let (Some(replid), Some(offset)) = (m.inst.repl_id.clone(), m.inst.repl_offset) else {
            return false;
        };
        if offset == 0 {
            return false;
        }
        let cmd = Command::RecordHistory {
            name: m.inst.name.clone(),
            config_epoch: cm.config_epoch,
            history: ReplHistory {
                replid,
                replid2: m.inst.repl_id2.clone().unwrap_or_default(),
                offset,
            },
            by: None,
        }
        .signed(self.raft.node_id);
        self.masters[mi].fo.history_proposed = Some(now);
        out.push(Action::Propose(cmd));
        true
    }
}
