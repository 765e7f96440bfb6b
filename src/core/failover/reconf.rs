//! `reconf_slaves`: the replicas pointed at the promoted one within
//! parallel-syncs, the end of the failover and the SwitchMaster proposal.

use super::{
    ask_info, reconfigure, same_addr, Reconf, Run, Sub, Target, FAST_POLL_WINDOW_MS, POLL_MS,
};
use crate::core::event::EventKind;
use crate::core::group::{Command, Failover};
use crate::core::instance::Instance;
use crate::core::sentinel::{emit, prefix, MAddr, Master, Sentinel};
use crate::core::types::{Action, Millis};

/// What one step of `reconf_slaves` works with.
struct Step {
    /// The promoted replica: the new master every other replica follows.
    ph: String,
    pp: u16,
    /// The same, with what its name resolved to.
    to: Target,
    /// The master being replaced, as committed.
    oh: String,
    op: u16,
    /// The master as the leader's events name it.
    ma: MAddr,
    now: Millis,
}

impl Step {
    /// The promoted replica, and the master being replaced, are no replicas
    /// to reconfigure here (a daemon that switched on a peer's hello before
    /// it led this failover lists the old master among the replicas): the
    /// old master is demoted after the switch.
    fn skip(&self, r: &Instance) -> bool {
        same_addr(&r.host, r.port, &self.ph, self.pp)
            || same_addr(&r.host, r.port, &self.oh, self.op)
    }

    fn promoted(&self) -> Option<(String, u16)> {
        self.to.replicaof()
    }
}

impl Sentinel {
    /// `reconf_slaves` as Sentinel runs it, with fast INFO polling, then the end
    /// detection and the SwitchMaster proposal.
    pub(super) fn reconf_step(
        &mut self,
        mi: usize,
        run: &mut Run,
        f: &Failover,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((ph, pp)) = f.promoted.clone() else {
            return;
        };
        let slave_reconf_timeout = self.timing.slave_reconf_timeout;
        let (oh, op) = self
            .cmaster(&self.masters[mi].inst.name)
            .map(|cm| (cm.host.clone(), cm.port))
            .unwrap_or_default();
        let announce = self.globals.announce_hostnames;
        let step = Step {
            to: Target::of(&self.masters[mi], &ph, pp, announce),
            ph,
            pp,
            oh,
            op,
            ma: self.failover_maddr(mi),
            now,
        };
        let m = &mut self.masters[mi];
        reconf_progress(m, run, &step, out);
        reconf_send(m, run, &step, slave_reconf_timeout, out);
        reconf_poll(m, run, now, out);
        reconf_end(m, run, &step, out);
    }
}

/// INFO-driven transitions: a replica that points at the promoted one is in
/// progress, one whose link to it is up is done.
fn reconf_progress(m: &Master, run: &mut Run, step: &Step, out: &mut Vec<Action>) {
    let (ma, name) = (&step.ma, &step.ma.name);
    for (key, r) in m.replicas.iter() {
        let Some(state) = run.reconf.get(key).copied() else {
            continue;
        };
        let points = step.to.followed_by(r);
        let mut state = state;
        if let Reconf::Sent { count, .. } = state {
            if r.info_count > count && points {
                state = Reconf::Inprog;
                emit(out, EventKind::SlaveReconfInprog, prefix(r, ma), Some(name));
            }
        }
        if state == Reconf::Inprog && r.slave_master_link_up {
            state = Reconf::Done;
            emit(out, EventKind::SlaveReconfDone, prefix(r, ma), Some(name));
        }
        run.reconf.insert(key.clone(), state);
    }
}

/// SLAVEOF to the next replicas within parallel-syncs; one sent more than
/// `slave_reconf_timeout` ago is given up (-slave-reconf-sent-timeout).
fn reconf_send(
    m: &mut Master,
    run: &mut Run,
    step: &Step,
    slave_reconf_timeout: u64,
    out: &mut Vec<Action>,
) {
    let (ma, name, now) = (&step.ma, &step.ma.name, step.now);
    let mut in_progress = run
        .reconf
        .values()
        .filter(|s| matches!(s, Reconf::Sent { .. } | Reconf::Inprog))
        .count();
    let parallel = m.parallel_syncs.max(1) as usize;
    for (key, r) in m.replicas.iter_mut() {
        if in_progress >= parallel {
            break;
        }
        if step.skip(r) {
            continue;
        }
        let state = run.reconf.get(key).copied();
        if state == Some(Reconf::Done) {
            continue;
        }
        if let Some(Reconf::Sent { at, .. }) = state {
            if now.saturating_sub(at) > slave_reconf_timeout {
                emit(
                    out,
                    EventKind::SlaveReconfSentTimeout,
                    prefix(r, ma),
                    Some(name),
                );
                run.reconf.insert(key.clone(), Reconf::Done);
            }
            continue;
        }
        if state == Some(Reconf::Inprog) || r.link.disconnected() {
            continue;
        }
        reconfigure(r, step.promoted(), out);
        run.reconf.insert(
            key.clone(),
            Reconf::Sent {
                at: now,
                count: r.info_count,
            },
        );
        emit(out, EventKind::SlaveReconfSent, prefix(r, ma), Some(name));
        in_progress += 1;
    }
}

/// INFO of the replicas being reconfigured: at once for
/// `FAST_POLL_WINDOW_MS` after the phase began, then every `POLL_MS`.
fn reconf_poll(m: &mut Master, run: &mut Run, now: Millis, out: &mut Vec<Action>) {
    let fast = now.saturating_sub(run.since) < FAST_POLL_WINDOW_MS;
    let due = now.saturating_sub(run.last_poll) >= POLL_MS;
    if fast || due {
        run.last_poll = now;
        for (key, r) in m.replicas.iter_mut() {
            let busy = matches!(
                run.reconf.get(key),
                Some(Reconf::Sent { .. } | Reconf::Inprog)
            );
            if busy && !r.link.info_inflight {
                ask_info(r, out);
            }
        }
    }
}

/// End detection: every replica that is up is done, or failover-timeout
/// passed (+failover-end-for-timeout, and SLAVEOF to the replicas never
/// sent one); then +failover-end and the SwitchMaster proposal.
fn reconf_end(m: &mut Master, run: &mut Run, step: &Step, out: &mut Vec<Action>) {
    let (ma, name, now) = (&step.ma, &step.ma.name, step.now);
    // The promoted replica is the master of this daemon's view if it
    // published the switch before it took over.
    let promoted_down = std::iter::once(&m.inst)
        .chain(m.replicas.values())
        .any(|r| same_addr(&r.host, r.port, &step.ph, step.pp) && r.s_down);
    if promoted_down {
        return;
    }
    let pending = m
        .replicas
        .iter()
        .filter(|(k, r)| !step.skip(r) && !r.s_down && run.reconf.get(*k) != Some(&Reconf::Done))
        .count();
    let timed_out = now.saturating_sub(run.since) > m.failover_timeout;
    // Coordinated: the old master stays paused through the switch; it
    // is demoted, then unpaused, once the switch is published.
    if pending > 0 && !timed_out {
        return;
    }
    if timed_out {
        emit(
            out,
            EventKind::FailoverEndForTimeout,
            ma.master_prefix(),
            Some(name),
        );
    }
    emit(out, EventKind::FailoverEnd, ma.master_prefix(), Some(name));
    if timed_out {
        for (key, r) in m.replicas.iter_mut() {
            if step.skip(r)
                || matches!(
                    run.reconf.get(key),
                    Some(Reconf::Done | Reconf::Sent { .. })
                )
                || r.link.disconnected()
            {
                continue;
            }
            reconfigure(r, step.promoted(), out);
            emit(out, EventKind::SlaveReconfSentBe, prefix(r, ma), Some(name));
            run.reconf.insert(
                key.clone(),
                Reconf::Sent {
                    at: now,
                    count: r.info_count,
                },
            );
        }
    }
    run.sub = Sub::Decided;
    run.propose(
        Command::SwitchMaster {
            name: name.clone(),
            epoch: run.epoch,
            host: step.ph.clone(),
            port: step.pp,
            by: None,
        },
        now,
        out,
    );
}
