//! Ingesting a new committed state: the failover starts and aborts it
//! records, the options and switches it carries, published once here.

use super::{lift_pause, same_addr, Switch, SIMFAILURE_CRASH_AFTER_ELECTION};
use crate::core::event::EventKind;
use crate::core::group::{CommittedMaster, Failover};
use crate::core::sentinel::{emit, Sentinel};
use crate::core::types::{Action, Millis};

impl Sentinel {
    /// A new committed state from the local Raft node: publish what it
    /// changed, once (new epoch, votes, switch), then let the engine act on it.
    /// Returns the indices of the masters whose committed record changed or
    /// still had something to publish (the engine steps those at once, the
    /// others at the next tick). No copy of the whole state is made: with
    /// hundreds of masters a commit touches one or two of them.
    pub(crate) fn committed_in(
        &mut self,
        now: Millis,
        new: crate::core::group::GroupState,
        out: &mut Vec<Action>,
    ) -> Vec<usize> {
        let old = self.committed.replace(new);
        if let (Some(o), Some(n)) = (&old, &self.committed) {
            if o.voters != n.voters {
                let new_voters = n.voters.clone();
                self.members_left(&o.voters, &new_voters, out);
            }
        }
        let mut touched = Vec::new();
        for mi in 0..self.masters.len() {
            let m = &self.masters[mi];
            let Some(cm) = self.cmaster(&m.inst.name) else {
                continue;
            };
            let old_cm = old.as_ref().and_then(|o| o.masters.get(&m.inst.name));
            // What the per-master work below does for an unchanged record:
            // publish a start not seen yet, apply a newer switch, mirror the
            // failover flag. Anything else needs a change.
            let idle = old_cm == Some(cm)
                && cm
                    .failover
                    .as_ref()
                    .is_none_or(|f| f.epoch <= m.fo.start_seen)
                && cm.config_epoch <= m.config_epoch
                && self.promotion_to_publish(mi, cm).is_none()
                && m.failover_in_progress == cm.failover.is_some();
            if idle {
                continue;
            }
            touched.push(mi);
            let cm = cm.clone();
            let old_f = old_cm.and_then(|c| c.failover.clone());
            if let Some(of) = &old_f {
                let same = cm.failover.as_ref().is_some_and(|f| f.epoch == of.epoch);
                if !same && cm.config_epoch < of.epoch {
                    self.failover_aborted(mi, of, out);
                }
            }
            if let Some(f) = &cm.failover {
                if f.epoch > self.masters[mi].fo.start_seen {
                    self.failover_started(mi, f, now, out);
                }
            }
            self.apply_committed_options(mi, cm.quorum, &cm.options, now, out);
            if cm.config_epoch > self.masters[mi].config_epoch {
                let leader = old_f
                    .as_ref()
                    .filter(|f| f.epoch == cm.config_epoch)
                    .map(|f| f.leader);
                let to = Switch {
                    epoch: cm.config_epoch,
                    host: &cm.host,
                    port: cm.port,
                    leader,
                    history: cm.history.as_ref(),
                };
                self.switch_to(mi, to, now, out);
            }
            if let Some(f) = self.promotion_to_publish(mi, &cm) {
                let (host, port) = f.promoted.clone().unwrap_or_default();
                let to = Switch {
                    epoch: f.epoch,
                    host: &host,
                    port,
                    leader: Some(f.leader),
                    history: f.history.as_ref(),
                };
                self.switch_to(mi, to, now, out);
            }
            self.seed_history(mi, &cm);
            self.masters[mi].failover_in_progress = cm.failover.is_some();
        }
        let epoch = self.committed.as_ref().map_or(0, |c| c.current_epoch);
        if epoch > self.current_epoch {
            self.current_epoch = epoch;
            out.push(Action::Flush);
            emit(out, EventKind::NewEpoch, epoch.to_string(), None);
        }
        touched
    }

    /// A committed FailoverStart, seen for the first time here.
    pub(super) fn failover_started(
        &mut self,
        mi: usize,
        f: &Failover,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let me = self.raft.node_id;
        let myid = self.myid.clone();
        let leader_runid = self.runid_of_node(mi, f.leader);
        let name = self.masters[mi].inst.name.clone();
        if f.epoch > self.current_epoch {
            self.current_epoch = f.epoch;
            out.push(Action::Flush);
            emit(out, EventKind::NewEpoch, f.epoch.to_string(), Some(&name));
        }
        let m = &mut self.masters[mi];
        m.fo.start_seen = f.epoch;
        m.fo.last_start = Some(now);
        m.fo.manual = None;
        m.failover_start_time = now;
        m.failover_in_progress = true;
        let leads = self.raft.initialized && f.leader == me;
        let voted = if leads {
            m.fo.led_start = f.epoch;
            emit(
                out,
                EventKind::TryFailover,
                m.prefix(self.globals.announce_hostnames),
                Some(&name),
            );
            Some(myid)
        } else {
            leader_runid
        };
        if let Some(runid) = voted {
            m.leader = Some(runid.clone());
            m.leader_epoch = f.epoch;
            out.push(Action::Flush);
            emit(
                out,
                EventKind::VoteForLeader,
                format!("{runid} {}", f.epoch),
                Some(&name),
            );
        }
        if leads {
            emit(
                out,
                EventKind::ElectedLeader,
                m.prefix(self.globals.announce_hostnames),
                Some(&name),
            );
            if self.simfailure_flags & SIMFAILURE_CRASH_AFTER_ELECTION != 0 {
                out.push(Action::SimulatedCrash);
            }
            emit(
                out,
                EventKind::FailoverStateSelectSlave,
                m.prefix(self.globals.announce_hostnames),
                Some(&name),
            );
        }
    }

    /// The master's replication history as last recorded by the group (or
    /// committed at its promotion), where this daemon has none from the
    /// master's own INFO yet (right
    /// after the switch, or after a restart): its view of the promoted
    /// node as a replica may predate the promotion, and a master that dies
    /// before its first INFO here would leave that stale view for good.
    pub(super) fn seed_history(&mut self, mi: usize, cm: &CommittedMaster) {
        let m = &mut self.masters[mi];
        // The leader's latest record, else the promotion's.
        let Some(h) = cm.seen.as_ref().or(cm.history.as_ref()) else {
            return;
        };
        if m.inst.repl_id.is_some() || !same_addr(&m.inst.host, m.inst.port, &cm.host, cm.port) {
            return;
        }
        m.inst.repl_id = Some(h.replid.clone());
        m.inst.repl_id2 = Some(h.replid2.clone()).filter(|id| !id.is_empty());
        m.inst.repl_offset = Some(h.offset);
    }

    /// A committed failover vanished without a switch: it was aborted.
    pub(super) fn failover_aborted(&mut self, mi: usize, of: &Failover, out: &mut Vec<Action>) {
        let m = &mut self.masters[mi];
        m.failover_in_progress = false;
        if m.fo.run.as_ref().is_none_or(|r| r.epoch != of.epoch) {
            return;
        }
        let Some(run) = m.fo.run.take() else {
            return;
        };
        if let Some(kind) = run.abort {
            let mut ev = crate::core::event::Event::new(
                kind,
                m.prefix(self.globals.announce_hostnames),
                Some(&m.inst.name),
            );
            ev.detail = run.abort_detail;
            out.push(Action::Emit(ev));
        }
        if run.paused {
            lift_pause(&mut m.fo.paused, &mut m.inst, out);
        }
    }
}
