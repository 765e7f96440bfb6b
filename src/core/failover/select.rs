//! Selection of the replica to promote: fresh INFO from both sides, then
//! Sentinel's rules plus the history rules; the choice is proposed with the
//! next phase.

use super::{answering, Run, Sub, SELECT_INFO_WAIT_MS};
use crate::core::event::EventKind;
use crate::core::group::{Command, Phase};
use crate::core::sentinel::Sentinel;
use crate::core::types::{Action, InstanceId, Millis};

impl Sentinel {
    /// Replica selection for a failover: Sentinel's rules plus the safety rules (never
    /// an empty replica while the master had data, never one whose
    /// replication history differs from the master's).
    pub(crate) fn select_for_failover(&self, mi: usize, now: Millis) -> Option<(String, u16)> {
        let m = self.masters.get_index(mi)?.1;
        let key = self.select_slave(&m.inst.name, now)?;
        let r = m.replicas.get(&key)?;
        Some((r.host.clone(), r.port))
    }

    /// Selection: once the replicas (and the master) answered the fresh
    /// INFO, or `SELECT_INFO_WAIT_MS` passed, the best replica is proposed
    /// with SendSlaveofNoone; none: -failover-abort-no-good-slave, with the
    /// history refusals for the log.
    pub(super) fn select_step(
        &mut self,
        mi: usize,
        run: &mut Run,
        waiting: Vec<(InstanceId, u64)>,
        at: Millis,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let name = self.masters[mi].inst.name.clone();
        let m = &self.masters[mi];
        // The master is waited for only while it answers PING.
        let still: Vec<(InstanceId, u64)> = waiting
            .into_iter()
            .filter(|(id, target)| {
                let master = (m.inst.id == *id && answering(&m.inst, now)).then_some(&m.inst);
                master
                    .or_else(|| m.replicas.values().find(|r| r.id == *id))
                    .is_some_and(|r| r.link.cmd_up && r.info_count < *target)
            })
            .collect();
        if !still.is_empty() && now.saturating_sub(at) < SELECT_INFO_WAIT_MS {
            run.sub = Sub::Asking { waiting: still, at };
            return;
        }
        match self.select_for_failover(mi, now) {
            None => {
                let refused = self.history_refusals(&name);
                let detail = (!refused.is_empty()).then(|| refused.join("; "));
                Self::propose_abort(
                    run,
                    &name,
                    (EventKind::FailoverAbortNoGoodSlave, detail),
                    now,
                    out,
                );
            }
            Some(addr) => {
                run.sub = Sub::Decided;
                run.propose(
                    Command::FailoverPhase {
                        name,
                        epoch: run.epoch,
                        phase: Phase::SendSlaveofNoone,
                        promoted: Some(addr),
                        history: None,
                        by: None,
                    },
                    now,
                    out,
                );
            }
        }
    }
}
