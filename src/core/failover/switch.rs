//! Publication and switch: `+switch-master` once per epoch on every daemon,
//! the report that it was published, and the leader's demotion of the old
//! master once every daemon published (publish, then demote).

use super::{
    answering, convert_to_slave, fix_pending, lift_pause, pause_writes, same_addr, Demotion,
    Switch, REPROPOSE_MS, SUBSCRIBER_GRACE_MS, SWITCH_PUBLISH_WAIT_MS,
};
use crate::core::event::EventKind;
use crate::core::group::{node_id_from_myid, Command, CommittedMaster, Failover, Switched};
use crate::core::instance::Role;
use crate::core::sentinel::{emit, prefix, Sentinel};
use crate::core::types::{Action, Millis};

impl Sentinel {
    /// The committed failover of `cm` whose switch this daemon publishes
    /// now, ahead of the switch itself: its promotion is committed
    /// (`ReconfSlaves`), this daemon has not switched to that epoch, and it
    /// does not lead the failover. As Sentinel's observers switch on the
    /// leader's hello once the promoted replica confirmed (the leader
    /// announces it from then on), while the leader publishes
    /// `+switch-master` only after `+failover-end`.
    pub(super) fn promotion_to_publish<'a>(
        &self,
        mi: usize,
        cm: &'a CommittedMaster,
    ) -> Option<&'a Failover> {
        let f = cm.failover.as_ref()?;
        f.promotion_committed()?;
        let leads = self.raft.initialized && f.leader == self.raft.node_id;
        (f.epoch > self.masters[mi].config_epoch && !leads).then_some(f)
    }

    /// This daemon switches master `mi` to a newer epoch: a committed
    /// SwitchMaster, or (observers) a committed promotion. Sentinel's
    /// `+config-update-from` (observers, when the leader is known) and
    /// `+switch-master`, the master reset with `+slave` per replica (old
    /// master included), a config flush, and the observer
    /// client-reconfig-script; once per epoch (the config epoch says what
    /// was published).
    pub(super) fn switch_to(
        &mut self,
        mi: usize,
        to: Switch<'_>,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let e = to.epoch;
        let led = self.raft.initialized && to.leader == Some(self.raft.node_id);
        let name = self.masters[mi].inst.name.clone();
        if e > self.current_epoch {
            self.current_epoch = e;
            out.push(Action::Flush);
            emit(out, EventKind::NewEpoch, e.to_string(), Some(&name));
        }
        let m = &mut self.masters[mi];
        m.config_epoch = e;
        m.fo.run = None;
        m.inst.link.hold_hello = false;
        m.fo.last_start = None;
        let ma = m.addr(self.globals.announce_hostnames);
        if same_addr(&ma.host, ma.port, to.host, to.port) {
            out.push(Action::Flush);
            return;
        }
        let leader_runid = to.leader.and_then(|l| self.runid_of_node(mi, l));
        let m = &mut self.masters[mi];
        if !led {
            let from = leader_runid.and_then(|r| {
                m.sentinels.values().find(|s| {
                    s.runid
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(&r))
                })
            });
            if let Some(si) = from {
                emit(
                    out,
                    EventKind::ConfigUpdateFrom,
                    prefix(si, &ma),
                    Some(&name),
                );
            }
        }
        let to_shown = m.shown_host(to.host, ma.announce).to_string();
        emit(
            out,
            EventKind::SwitchMaster,
            format!(
                "{} {} {} {} {}",
                ma.name, ma.shown, ma.port, to_shown, to.port
            ),
            Some(&name),
        );
        let script = m.client_reconfig_script.clone();
        self.switch_master_addr(mi, to.host, to.port, now, out);
        if let Some(h) = to.history {
            // What the leader read when the promotion was confirmed, not
            // this daemon's last INFO of the node as a replica.
            let i = &mut self.masters[mi].inst;
            i.repl_id = Some(h.replid.clone());
            i.repl_id2 = Some(h.replid2.clone()).filter(|id| !id.is_empty());
            i.repl_offset = Some(h.offset);
        }
        if let (false, Some(script)) = (led, script) {
            out.push(crate::core::sentinel::reconfig_script(
                script, &ma, "observer", &to_shown, to.port,
            ));
        }
    }

    /// The committed switch whose old master still waits for its demotion
    /// (the record of the current config epoch).
    pub(super) fn pending_switch(&self, mi: usize) -> Option<&Switched> {
        let cm = self.cmaster(&self.masters[mi].inst.name)?;
        cm.switched
            .as_ref()
            .filter(|sw| sw.epoch == cm.config_epoch)
    }

    /// Every daemon: once it has published `+switch-master` for the
    /// committed switch, or for a failover whose promotion is committed
    /// (its own config epoch reached that epoch), it says so in the log
    /// (`SwitchPublished`), until that is committed.
    pub(super) fn report_published(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let me = self.raft.node_id;
        let initialized = self.raft.initialized;
        if let Some(epoch) = self.pending_switch(mi).map(|sw| sw.epoch) {
            let m = &mut self.masters[mi];
            if m.fo.switch_seen.is_none_or(|(e, _)| e != epoch) {
                m.fo.switch_seen = Some((epoch, now));
            }
        }
        let name = &self.masters[mi].inst.name;
        let due = self
            .pending_switch(mi)
            .map(|sw| (sw.epoch, &sw.published))
            .or_else(|| {
                self.cfailover(name)
                    .filter(|f| f.promotion_committed().is_some())
                    .map(|f| (f.epoch, &f.published))
            });
        let Some((epoch, done)) = due.map(|(e, p)| (e, p.contains(&me))) else {
            return;
        };
        let m = &mut self.masters[mi];
        if done || !initialized || m.config_epoch < epoch {
            return;
        }
        if m.fo
            .publish_proposed
            .is_some_and(|(e, t)| e == epoch && now.saturating_sub(t) < REPROPOSE_MS)
        {
            return;
        }
        m.fo.publish_proposed = Some((epoch, now));
        out.push(Action::Propose(Command::SwitchPublished {
            name: m.inst.name.clone(),
            epoch,
            node: me,
        }));
    }

    /// Whether every daemon that can have published the switch did: every
    /// voter of the group either said so, or is a peer this daemon knows
    /// and cannot reach (no command link to it: crashed, restarting, cut
    /// off; it cannot get the commit from this leader either, and is not
    /// waited for). A voter this daemon does not know (no hello from it yet)
    /// or a hung one (its link still up) is waited for, up to the bound.
    pub(super) fn switch_published_everywhere(&self, mi: usize, sw: &Switched) -> bool {
        let me = self.raft.node_id;
        if !sw.published.contains(&me) {
            return false;
        }
        // Every voter of the committed membership published, or is a peer
        // this daemon has no link to (it cannot publish to anyone either).
        // Learners are not counted: they are not in the membership's voters.
        let Some(voters) = self
            .committed
            .as_ref()
            .map(|c| &c.voters)
            .filter(|v| !v.is_empty())
        else {
            // No membership recorded yet (a group formed by an earlier
            // release): count the voters, and the peers out of reach by the
            // node id their runid gives.
            let unreachable = self.masters[mi]
                .sentinels
                .values()
                .filter(|s| !s.link.cmd_up)
                .filter_map(|s| s.runid.as_deref().and_then(node_id_from_myid))
                .filter(|n| !sw.published.contains(n))
                .collect::<std::collections::BTreeSet<u64>>()
                .len();
            return sw.published.len() + unreachable >= self.raft.voters.max(1);
        };
        let sentinels = &self.masters[mi].sentinels;
        voters.iter().all(|(id, member)| {
            sw.published.contains(id)
                || sentinels.values().any(|s| {
                    !s.link.cmd_up
                        && s.runid
                            .as_deref()
                            .is_some_and(|runid| member.is_daemon(*id, runid))
                })
        })
    }

    /// Every daemon, once it switched in a coordinated switchover (at its
    /// committed promotion, or at the switch): no hello PUBLISH to the old
    /// master until it reports role:slave — it may still be paused, and
    /// a paused PUBLISH would hold every later command of the link (its
    /// PINGs too: the node would be seen down, and a new leader could not
    /// demote it until the pause ran out).
    pub(super) fn hold_hellos_to_paused(&mut self, mi: usize) {
        // The old master of the switch, and that of the coordinated
        // failover whose promotion this daemon published already (its view
        // lists the old master among the replicas).
        let name = &self.masters[mi].inst.name;
        let switched = self
            .pending_switch(mi)
            .filter(|sw| sw.coordinated)
            .map(|sw| (sw.host.clone(), sw.port));
        let promoted = self.cmaster(name).and_then(|cm| {
            cm.failover
                .as_ref()
                .filter(|f| f.coordinated && f.promotion_committed().is_some())
                .map(|_| (cm.host.clone(), cm.port))
        });
        for (host, port) in switched.into_iter().chain(promoted) {
            let key = crate::core::event::format_addr(&host, port);
            if let Some(r) = self.masters[mi].replicas.get_mut(&key) {
                r.link.hold_hello = !(r.info_refresh.is_some() && r.role_reported == Role::Slave);
            }
        }
    }

    /// Raft leader, after a switch: the old master is demoted (REPLICAOF in
    /// the transaction that kills its clients, `+convert-to-slave`) only
    /// once every daemon published `+switch-master` and subscribers had
    /// `SUBSCRIBER_GRACE_MS`, or `SWITCH_PUBLISH_WAIT_MS` after the switch:
    /// a client that learns of a failover only from that message would
    /// otherwise reconnect to the demoted node and stay there. Until then a
    /// coordinated switchover keeps it paused (CLIENT PAUSE sent again
    /// before it expires, hellos held); a plain one leaves it its clients.
    /// Once its INFO says role:slave, a paused one is unpaused.
    pub(super) fn demote_after_switch(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.settled_leader(now) {
            return;
        }
        let Some(sw) = self.pending_switch(mi).cloned() else {
            return;
        };
        let everywhere = self.switch_published_everywhere(mi, &sw);
        let sane = self.master_looks_sane(mi, now);
        let name = self.masters[mi].inst.name.clone();
        // Another failover running (the new master died already): nothing
        // is reconfigured meanwhile — the node may even be its candidate —
        // and a pause left on the old master ends by itself within
        // failover-timeout. That failover's switch replaces the record.
        if self.cfailover(&name).is_some() {
            return;
        }
        let m = &mut self.masters[mi];
        let mut d = match m.fo.demotion {
            Some(d) if d.epoch == sw.epoch => d,
            _ => Demotion {
                epoch: sw.epoch,
                ..Demotion::default()
            },
        };
        let key = crate::core::event::format_addr(&sw.host, sw.port);
        let timeout = m.failover_timeout;
        let ma = m.addr(self.globals.announce_hostnames);
        // SLAVEOF the master as shown.
        let (to_host, to_port) = (ma.shown.clone(), ma.port);
        let seen = m.fo.switch_seen.map_or(now, |(_, t)| t);
        let Some(r) = m.replicas.get_mut(&key).filter(|_| !d.done) else {
            return;
        };
        if r.info_refresh.is_some() && r.role_reported == Role::Slave {
            // It follows a master already (demoted here, or by a leader
            // before this one); a wrong one is `fix_replicas`' business.
            if sw.coordinated {
                lift_pause(&mut m.fo.paused, r, out);
            }
            d.done = true;
            m.fo.demotion = Some(d);
            return;
        }
        // Since when it has held (not latched: a peer whose link was down
        // for a moment is waited for again once it is back).
        d.published_at = if everywhere {
            d.published_at.or(Some(now))
        } else {
            None
        };
        let ready = d
            .published_at
            .is_some_and(|t| now.saturating_sub(t) >= SUBSCRIBER_GRACE_MS)
            || now.saturating_sub(seen) >= SWITCH_PUBLISH_WAIT_MS;
        // Answers PING (none pending for long) and says it is a master.
        let answers =
            answering(r, now) && r.info_refresh.is_some() && r.role_reported == Role::Master;
        if ready && answers && sane {
            // Sent again only after an INFO at least FIX_RESEND_MS younger
            // than the last attempt still shows it a master; the INFO after
            // the transaction shows the new role (then the unpause follows).
            if !fix_pending(r) {
                convert_to_slave(r, (to_host, to_port), &ma, now, out);
            }
        } else if sw.coordinated && answers {
            // Kept paused while it waits.
            let due = d
                .paused_at
                .is_none_or(|t| now.saturating_sub(t) >= timeout / 3);
            if due {
                pause_writes(&mut m.fo.paused, r, timeout, out);
                d.paused_at = Some(now);
            }
        }
        m.fo.demotion = Some(d);
    }

    /// CLIENT UNPAUSE to every node this daemon paused that now reports
    /// role:slave (its writes get -READONLY from then on).
    pub(super) fn release_paused(&mut self, mi: usize, out: &mut Vec<Action>) {
        let m = &mut self.masters[mi];
        if m.fo.paused.is_empty() {
            return;
        }
        let mut released = Vec::new();
        for (h, p) in &m.fo.paused {
            let inst = std::iter::once(&mut m.inst)
                .chain(m.replicas.values_mut())
                .find(|i| same_addr(&i.host, i.port, h, *p));
            let Some(i) = inst else {
                continue;
            };
            if i.link.cmd_up && i.info_refresh.is_some() && i.role_reported == Role::Slave {
                i.link.hold_hello = false;
                out.push(Action::Unpause { id: i.id });
                released.push((h.clone(), *p));
            }
        }
        m.fo.paused.retain(|a| !released.contains(a));
    }
}
