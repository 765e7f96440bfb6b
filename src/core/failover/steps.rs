//! The leader's step machine for the failover it drives: entering each
//! committed phase, then the local sub-steps (link wait, coordinated
//! catch-up, promotion) until the next proposal.

use super::{
    answering, ask_info, instance_at, lift_pause, pause_writes, reconfigure, same_addr, Run, Sub,
    CATCHUP_POLL_MS, FAST_POLL_WINDOW_MS, POLL_MS, REPROPOSE_MS, SIMFAILURE_CRASH_AFTER_ELECTION,
    SIMFAILURE_CRASH_AFTER_PROMOTION,
};
use crate::core::event::EventKind;
use crate::core::group::{Command, Failover, Phase, ReplHistory};
use crate::core::instance::Role;
use crate::core::sentinel::{emit, prefix, Sentinel};
use crate::core::types::{Action, InstanceId, Millis};

impl Sentinel {
    /// Drives the failover this daemon leads: the entry work of each newly
    /// committed phase, the proposal still wanted, then the sub-step.
    pub(super) fn drive(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let me = self.raft.node_id;
        let f = match self.cfailover(&self.masters[mi].inst.name) {
            Some(f) if self.raft.is_leader && f.leader == me => f.clone(),
            other => {
                // Not ours (any more): keep the run only while its abort may
                // still be committed, so its event can be published. Taking
                // it back later is a new election (+elected-leader).
                let epoch = other.map(|f| f.epoch);
                let m = &mut self.masters[mi];
                if epoch.is_some_and(|e| e == m.fo.led_start) && m.fo.run.is_some() {
                    m.fo.led_start = 0;
                }
                if m.fo.run.as_ref().is_some_and(|r| r.abort.is_none()) {
                    m.fo.run = None;
                }
                return;
            }
        };
        let name = self.masters[mi].inst.name.clone();
        let mut run = match self.masters[mi].fo.run.take() {
            Some(r) if r.epoch == f.epoch => r,
            _ => Run::new(f.epoch, now, me),
        };
        if self.masters[mi].fo.led_start != f.epoch {
            // Taking over (or resuming after a restart): this daemon is now
            // the elected leader of the failover.
            self.masters[mi].fo.led_start = f.epoch;
            let ma = self.failover_maddr(mi);
            emit(
                out,
                EventKind::ElectedLeader,
                ma.master_prefix(),
                Some(&name),
            );
            if self.simfailure_flags & SIMFAILURE_CRASH_AFTER_ELECTION != 0 {
                out.push(Action::SimulatedCrash);
            }
        }
        if let Some((cmd, at)) = &mut run.want {
            if now.saturating_sub(*at) >= REPROPOSE_MS {
                out.push(Action::Propose(cmd.clone()));
                *at = now;
            }
        }
        if run.phase != Some(f.phase) {
            run.phase = Some(f.phase);
            run.since = now;
            run.want = None;
            run.abort = None;
            run.abort_detail = None;
            self.enter_phase(mi, &mut run, &f, now, out);
        }
        self.progress(mi, &mut run, &f, now, out);
        self.masters[mi].fo.run = Some(run);
    }

    pub(super) fn promoted_key(&self, mi: usize, f: &Failover) -> Option<String> {
        let (h, p) = f.promoted.as_ref()?;
        self.masters[mi]
            .replicas
            .iter()
            .find(|(_, r)| same_addr(&r.host, r.port, h, *p))
            .map(|(k, _)| k.clone())
    }

    pub(super) fn enter_phase(
        &mut self,
        mi: usize,
        run: &mut Run,
        f: &Failover,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let name = self.masters[mi].inst.name.clone();
        match f.phase {
            Phase::SelectSlave => {
                // Fresh facts of both sides: the replicas' INFO, and the
                // master's when it answers (its replication ids are what
                // the replicas' histories are judged against). A master
                // with a PING pending (hung: its connection stays up) is
                // not asked, nor waited for.
                let m = &mut self.masters[mi];
                let mut waiting: Vec<(InstanceId, u64)> = m
                    .replicas
                    .values_mut()
                    .filter_map(|r| ask_info(r, out).map(|t| (r.id, t)))
                    .collect();
                if answering(&m.inst, now) && !m.inst.link.info_inflight {
                    waiting.extend(ask_info(&mut m.inst, out).map(|t| (m.inst.id, t)));
                }
                run.sub = Sub::Asking { waiting, at: now };
            }
            Phase::SendSlaveofNoone | Phase::WaitPromotion => {
                let Some(key) = self.promoted_key(mi, f) else {
                    run.sub = Sub::WaitLink;
                    return;
                };
                let m = &self.masters[mi];
                let ma = m.addr(self.globals.announce_hostnames);
                if let Some(r) = m.replicas.get(&key) {
                    let p = prefix(r, &ma);
                    emit(out, EventKind::SelectedSlave, p.clone(), Some(&name));
                    emit(
                        out,
                        EventKind::FailoverStateSendSlaveofNoone,
                        p,
                        Some(&name),
                    );
                }
                run.sub = Sub::WaitLink;
            }
            Phase::ReconfSlaves | Phase::UpdateConfig => {
                let timeout = self.masters[mi].failover_timeout;
                let ma = self.failover_maddr(mi);
                emit(
                    out,
                    EventKind::FailoverStateReconfSlaves,
                    ma.master_prefix(),
                    Some(&name),
                );
                // The old master is left alone until after the switch (see
                // `demote_after_switch`). A coordinated switchover taken
                // over here pauses it again: the pause of the daemon that
                // led so far is not known to this one and may run out.
                let m = &mut self.masters[mi];
                let old = instance_at(&mut m.inst, &mut m.replicas, &ma.host, ma.port);
                if let Some(old) = old.filter(|o| o.link.cmd_up && !o.s_down) {
                    if f.coordinated && !run.paused {
                        pause_writes(&mut m.fo.paused, old, timeout, out);
                        run.paused = true;
                        run.paused_at = now;
                    }
                }
                run.reconf.clear();
                run.sub = Sub::Reconf;
            }
        }
    }

    /// The abort of the run proposed, with the reason's `detail` for the
    /// log line and the committed state.
    pub(super) fn propose_abort(
        run: &mut Run,
        name: &str,
        (kind, detail): (EventKind, Option<String>),
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        run.abort = Some(kind);
        run.abort_detail.clone_from(&detail);
        run.sub = Sub::Decided;
        run.propose(
            Command::FailoverAbort {
                name: name.to_string(),
                epoch: run.epoch,
                reason: kind.channel().to_string(),
                detail,
                by: None,
            },
            now,
            out,
        );
    }

    /// `-failover-abort-slave-timeout` once the current step has waited
    /// more than `timeout` since it began; whether it aborted.
    pub(super) fn abort_on_timeout(
        run: &mut Run,
        name: &str,
        timeout: u64,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> bool {
        let late = now.saturating_sub(run.since) > timeout;
        if late {
            Self::propose_abort(
                run,
                name,
                (EventKind::FailoverAbortSlaveTimeout, None),
                now,
                out,
            );
        }
        late
    }

    /// The driving leader's work within the committed phase, by local
    /// sub-step; CLIENT PAUSE is renewed first when it is due.
    pub(super) fn progress(
        &mut self,
        mi: usize,
        run: &mut Run,
        f: &Failover,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        self.refresh_pause(mi, run, now, out);
        match run.sub.clone() {
            Sub::Decided => {}
            Sub::Asking { waiting, at } => self.select_step(mi, run, waiting, at, now, out),
            Sub::WaitLink => self.wait_link_step(mi, run, f, now, out),
            Sub::CatchUp { .. } => self.catch_up_step(mi, run, f, now, out),
            Sub::WaitPromotion { count } => self.wait_promotion_step(mi, run, f, count, now, out),
            Sub::Reconf => self.reconf_step(mi, run, f, now, out),
        }
    }

    /// The promoted replica's link must be up for SLAVEOF NO ONE; a
    /// coordinated switchover first pauses writes on the old master (the
    /// promotion then waits for the replica to catch up).
    fn wait_link_step(
        &mut self,
        mi: usize,
        run: &mut Run,
        f: &Failover,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let name = self.masters[mi].inst.name.clone();
        let timeout = self.masters[mi].failover_timeout;
        let key = self.promoted_key(mi, f);
        let up = key
            .as_ref()
            .and_then(|k| self.masters[mi].replicas.get(k))
            .is_some_and(|r| r.link.cmd_up);
        if !up {
            Self::abort_on_timeout(run, &name, timeout, now, out);
            return;
        }
        let Some(key) = key else {
            return;
        };
        if f.coordinated && !run.paused {
            let m = &mut self.masters[mi];
            if !m.inst.link.cmd_up {
                // A link that is merely down (reset by a switch, a
                // partition between us and a master that still takes
                // writes) is no reason to skip the pause: only a
                // master the group agrees is down (ODOWN from the
                // committed votes) is promoted over unpaused;
                // otherwise wait for the link, and give up at
                // failover-timeout.
                if m.inst.o_down {
                    self.promote(mi, run, &key, now, out);
                } else {
                    Self::abort_on_timeout(run, &name, timeout, now, out);
                }
                return;
            }
            // No hello PUBLISH on the master's link from now on (a
            // paused PUBLISH would hold every later command of the
            // link); one already in flight is waited for.
            m.inst.link.hold_hello = true;
            if m.inst.link.hello_inflight {
                if Self::abort_on_timeout(run, &name, timeout, now, out) {
                    m.inst.link.hold_hello = false;
                }
                return;
            }
            pause_writes(&mut m.fo.paused, &mut m.inst, timeout, out);
            run.paused = true;
            run.paused_at = now;
            run.last_poll = now;
            run.since = now;
            run.sub = Sub::CatchUp {
                offset: None,
                info_target: None,
            };
            return;
        }
        self.promote(mi, run, &key, now, out);
    }

    /// Coordinated: the replica is promoted once it has every byte the
    /// paused master had (the master's offset from the pause's INFO, or
    /// from one asked a poll period later), within failover-timeout.
    fn catch_up_step(
        &mut self,
        mi: usize,
        run: &mut Run,
        f: &Failover,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Sub::CatchUp {
            mut offset,
            info_target,
        } = run.sub.clone()
        else {
            return;
        };
        let name = self.masters[mi].inst.name.clone();
        let timeout = self.masters[mi].failover_timeout;
        let Some(key) = self.promoted_key(mi, f) else {
            return;
        };
        let m = &mut self.masters[mi];
        if offset.is_none() && info_target.is_some_and(|t| m.inst.info_count >= t) {
            offset = m.inst.repl_offset;
            run.sub = Sub::CatchUp {
                offset,
                info_target,
            };
        }
        // The same history (a replica that resynced from a master
        // restarted empty counts offsets of another history), and
        // every byte the paused master had.
        let master_replid = m.inst.repl_id.clone();
        let caught_up = offset.is_some_and(|o| {
            m.replicas.get(&key).is_some_and(|r| {
                r.slave_repl_offset >= o
                    && master_replid
                        .as_ref()
                        .is_none_or(|id| r.repl_id.as_ref() == Some(id))
            })
        });
        if caught_up {
            self.promote(mi, run, &key, now, out);
            return;
        }
        if Self::abort_on_timeout(run, &name, timeout, now, out) {
            return;
        }
        if now.saturating_sub(run.last_poll) >= CATCHUP_POLL_MS {
            run.last_poll = now;
            if offset.is_none() && info_target.is_none() {
                let t = ask_info(&mut m.inst, out);
                run.sub = Sub::CatchUp {
                    offset,
                    info_target: t,
                };
            }
            if let Some(r) = m.replicas.get_mut(&key) {
                if !r.link.info_inflight {
                    ask_info(r, out);
                }
            }
        }
    }

    /// SLAVEOF NO ONE was sent: once an INFO after it says role:master,
    /// +promoted-slave and the ReconfSlaves proposal with the history the
    /// replica took; INFO is polled fast meanwhile.
    fn wait_promotion_step(
        &mut self,
        mi: usize,
        run: &mut Run,
        f: &Failover,
        count: u64,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let name = self.masters[mi].inst.name.clone();
        let timeout = self.masters[mi].failover_timeout;
        let Some(key) = self.promoted_key(mi, f) else {
            return;
        };
        let crash_after_promotion = self.simfailure_flags & SIMFAILURE_CRASH_AFTER_PROMOTION != 0;
        let m = &mut self.masters[mi];
        let ma = m.addr(self.globals.announce_hostnames);
        let Some(r) = m.replicas.get_mut(&key) else {
            return;
        };
        if r.info_count > count && r.role_reported == Role::Master {
            let p = prefix(r, &ma);
            let (to_host, to_port) = (r.shown_host(ma.announce).to_string(), r.port);
            emit(out, EventKind::PromotedSlave, p, Some(&name));
            if crash_after_promotion {
                out.push(Action::SimulatedCrash);
            }
            if let Some(script) = m.client_reconfig_script.clone() {
                out.push(crate::core::sentinel::reconfig_script(
                    script, &ma, "leader", &to_host, to_port,
                ));
            }
            // The history it took is committed with the phase: every
            // daemon judges replicas against it after the switch,
            // whatever INFO of it each one happened to see.
            let history = r.repl_id.clone().map(|replid| ReplHistory {
                replid,
                replid2: r.repl_id2.clone().unwrap_or_default(),
                offset: r.repl_offset.unwrap_or(0),
            });
            // The old master is not touched here, paused or not: it
            // is demoted after the switch is published.
            run.sub = Sub::Decided;
            run.propose(
                Command::FailoverPhase {
                    name,
                    epoch: run.epoch,
                    phase: Phase::ReconfSlaves,
                    promoted: None,
                    history,
                    by: None,
                },
                now,
                out,
            );
            return;
        }
        if Self::abort_on_timeout(run, &name, timeout, now, out) {
            return;
        }
        let fast = now.saturating_sub(run.since) < FAST_POLL_WINDOW_MS;
        let due = now.saturating_sub(run.last_poll) >= POLL_MS;
        if (fast || due) && !r.link.info_inflight {
            run.last_poll = now;
            ask_info(r, out);
        }
    }

    /// Coordinated: CLIENT PAUSE again on the old master before the last
    /// one runs out (its timeout is failover-timeout; catch-up, promotion
    /// and the replicas' reconfiguration may each take up to that, and the
    /// old master stays paused until it is demoted after the switch).
    pub(super) fn refresh_pause(
        &mut self,
        mi: usize,
        run: &mut Run,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let timeout = self.masters[mi].failover_timeout;
        if !run.paused || now.saturating_sub(run.paused_at) < timeout / 3 {
            return;
        }
        let ma = self.failover_maddr(mi);
        let m = &mut self.masters[mi];
        let old = instance_at(&mut m.inst, &mut m.replicas, &ma.host, ma.port);
        if let Some(old) = old.filter(|o| o.link.cmd_up) {
            pause_writes(&mut m.fo.paused, old, timeout, out);
            run.paused_at = now;
        }
    }

    /// The old master's offset, read right after CLIENT PAUSE (coordinated
    /// mode): the replica must reach it before it is promoted.
    pub(crate) fn pause_reply(
        &mut self,
        now: Millis,
        id: InstanceId,
        info: Option<String>,
        out: &mut Vec<Action>,
    ) {
        let Some((mi, slot)) = self.locate(id) else {
            return;
        };
        // A pause sent again after the switch (the old master is a replica
        // of the record by then) needs no answer beyond its bookkeeping.
        if let Some(inst) = self.slot_mut(mi, slot) {
            inst.link.reply_received();
        }
        let m = &mut self.masters[mi];
        if m.inst.id != id {
            return;
        }
        let Some(mut run) = m.fo.run.take() else {
            return;
        };
        if let Sub::CatchUp {
            offset: None,
            info_target,
        } = run.sub
        {
            let parsed = info.as_deref().map(|t| crate::core::info::parse(t, true));
            let offset = parsed.as_ref().and_then(|p| p.master_repl_offset);
            match offset {
                Some(o) => {
                    m.inst.repl_offset = Some(o);
                    if let Some(id) = parsed.and_then(|p| p.master_replid) {
                        m.inst.repl_id = Some(id);
                    }
                    run.sub = Sub::CatchUp {
                        offset: Some(o),
                        info_target,
                    };
                    run.last_poll = now.saturating_sub(CATCHUP_POLL_MS);
                }
                None => {
                    // Not paused (refused, timed out): no guarantee can be
                    // given, so no promotion.
                    let name = m.inst.name.clone();
                    Self::propose_abort(
                        &mut run,
                        &name,
                        (EventKind::FailoverAbortSlaveTimeout, None),
                        now,
                        out,
                    );
                }
            }
        }
        self.masters[mi].fo.run = Some(run);
    }

    /// SLAVEOF NO ONE to the chosen replica, then wait for it to say
    /// role:master on an INFO asked right away.
    pub(super) fn promote(
        &mut self,
        mi: usize,
        run: &mut Run,
        key: &str,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let m = &mut self.masters[mi];
        let ma = m.addr(self.globals.announce_hostnames);
        let Some(r) = m.replicas.get_mut(key) else {
            return;
        };
        let count = r.info_count;
        // A node still paused by an earlier switchover must take writes
        // once it is the master.
        if m.fo
            .paused
            .iter()
            .any(|(h, p)| same_addr(h, *p, &r.host, r.port))
        {
            lift_pause(&mut m.fo.paused, r, out);
        }
        reconfigure(r, None, out);
        emit(
            out,
            EventKind::FailoverStateWaitPromotion,
            prefix(r, &ma),
            Some(&ma.name),
        );
        ask_info(r, out);
        run.last_poll = now;
        run.since = now;
        run.sub = Sub::WaitPromotion { count };
    }
}
