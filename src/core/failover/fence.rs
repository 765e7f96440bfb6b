//! Fencing (docs/data-safety.md, "Fencing the old master"): a master keeps
//! taking writes only while the group can stand behind it.
//!
//! The daemon next to the committed master (its link to the node stays on
//! one host: `Link::same_host`) watches its own contact with the group
//! (`Input::GroupContact`, the Raft lease). Once it has lost the group it
//! asks every replica of that master a PING: if none answers within
//! `FENCE_PROBE_MS`, the pod is cut off from the rest, the others may be
//! promoting a replica right now, and it pauses writes on the master
//! (`CLIENT PAUSE <ms> WRITE`, sent again before it expires, `+fence`). A
//! write paused is never acknowledged by a master that is being replaced.
//!
//! A replica that answers means the cut is between daemons only (a peer
//! port filtered, a majority of daemons down): the replicas still follow the
//! master and nothing is paused; the probe is repeated every
//! `FENCE_REPROBE_MS` while the group stays out of reach.
//!
//! Back in touch for `FENCE_SETTLE_MS` (the committed state caught up), the
//! pause is lifted at once if the node is still the committed master and no
//! failover of it is under way (`-fence`); otherwise the node stays paused
//! until it reports role:slave (`release_paused`): once the switch is done,
//! this daemon makes it a replica of the committed master itself
//! (`+convert-to-slave`), and the writes it held are then refused with
//! -READONLY.
//!
//! The bound, from the cut: the lease (the election timeout, at most half of
//! down-after; the driver looks when it runs out), `FENCE_PROBE_MS` and the
//! driver's next report (every 50 ms in the first second out of touch). The
//! group promotes no replica before down-after has passed.

use super::super::detection::send_ping;
use super::super::event::{Event, EventKind};
use super::super::instance::{Instance, Role};
use super::super::sentinel::{emit, prefix, Master, Sentinel};
use super::super::types::{Action, Millis};
use super::{ask_info, convert_to_slave, fix_pending, lift_pause, pause_writes, same_addr};

/// How long the replicas have to answer the probe's PING.
pub(crate) const FENCE_PROBE_MS: u64 = 50;
/// While the group is out of reach and a replica answered, the probe is
/// repeated this often (the cut may widen).
pub(crate) const FENCE_REPROBE_MS: u64 = 1000;
/// Back in touch with the group this long before a pause is lifted: the
/// committed state has caught up with what happened meanwhile.
pub(crate) const FENCE_SETTLE_MS: u64 = 500;
/// INFO of a paused node that is no longer the master, until it reports
/// role:slave.
const FENCE_INFO_MS: u64 = 1000;

/// This daemon's fence of a master's node (`Ctl::fence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The node probed for, or paused.
    pub host: String,
    pub port: u16,
    /// When the replicas were last asked a PING.
    pub probe_at: Millis,
    /// When writes were last paused on the node (None: probing only).
    pub paused_at: Option<Millis>,
    /// Last INFO asked of the node once it is no longer the master.
    pub info_at: Millis,
}

/// The pause sent: it outlives a few renewals, and lapses by itself if this
/// daemon dies while the node is fenced.
pub(crate) fn fence_pause_ms(down_after: u64) -> u64 {
    down_after.saturating_mul(3).max(3000)
}

impl Sentinel {
    /// The group's contact as the driver sees it (the Raft lease): lost or
    /// regained now.
    pub(crate) fn group_contact(&mut self, now: Millis, in_touch: bool) {
        if in_touch {
            self.first_touch.get_or_insert(now);
            if self.group_lost_at.take().is_some() || self.group_back_at.is_none() {
                self.group_back_at = Some(now);
            }
        } else {
            self.group_lost_at.get_or_insert(now);
            self.group_back_at = None;
        }
    }

    /// One step of master `mi`'s fence (see the module's text).
    pub(super) fn fence_step(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if self.group_lost_at.is_none() && self.masters[mi].fo.fence.is_none() {
            return; // in touch, nothing fenced: the common case, kept cheap
        }
        let name = self.masters[mi].inst.name.clone();
        let cx = Cx {
            committed: self
                .cmaster(&name)
                .map(|cm| (cm.host.clone(), cm.port, cm.failover.is_some())),
            lost: self.group_lost_at,
            back: self.group_back_at,
            // A daemon just started has had no lease to hear its group in.
            started: now.saturating_sub(self.started_at),
            announce: self.globals.announce_hostnames,
            now,
        };
        let m = &mut self.masters[mi];
        m.fo.fence = match m.fo.fence.take() {
            None => start(m, &cx, out),
            Some(f) if f.paused_at.is_none() => probing(m, f, &cx, out),
            Some(f) => fenced(m, f, &cx, out),
        };
    }
}

/// What a fence step reads besides the master.
struct Cx {
    /// The committed master's address, and whether a failover of it is
    /// under way.
    committed: Option<(String, u16, bool)>,
    lost: Option<Millis>,
    back: Option<Millis>,
    started: Millis,
    announce: bool,
    now: Millis,
}

impl Cx {
    fn committed_at(&self, host: &str, port: u16) -> bool {
        self.committed
            .as_ref()
            .is_some_and(|(h, p, _)| same_addr(h, *p, host, port))
    }

    fn failover_under_way(&self) -> bool {
        self.committed.as_ref().is_some_and(|(_, _, fo)| *fo)
    }
}

/// Out of touch: a probe starts if this daemon sits next to the committed
/// master and there is a replica the others could promote.
fn start(m: &mut Master, cx: &Cx, out: &mut Vec<Action>) -> Option<Fence> {
    let local = cx.committed_at(&m.inst.host, m.inst.port)
        && m.inst.link.cmd_up
        && m.inst.link.same_host
        && m.inst.role_reported == Role::Master
        && !m.replicas.is_empty();
    if cx.lost.is_none() || !local || cx.started < m.inst.down_after / 2 {
        return None;
    }
    probe(m.replicas.values_mut(), cx.now, out);
    Some(Fence {
        host: m.inst.host.clone(),
        port: m.inst.port,
        probe_at: cx.now,
        paused_at: None,
        info_at: cx.now,
    })
}

/// Probing: dropped once back in touch or no longer next to the node; a
/// replica's answer keeps the master writable (probed again every
/// `FENCE_REPROBE_MS`); none within `FENCE_PROBE_MS` fences it.
fn probing(m: &mut Master, mut f: Fence, cx: &Cx, out: &mut Vec<Action>) -> Option<Fence> {
    let now = cx.now;
    let still = cx.lost.is_some()
        && same_addr(&f.host, f.port, &m.inst.host, m.inst.port)
        && m.inst.link.cmd_up;
    if !still {
        return None;
    }
    if now.saturating_sub(f.probe_at) < FENCE_PROBE_MS {
        return Some(f);
    }
    let answered = m
        .replicas
        .values()
        .any(|r| r.link.cmd_up && r.link.last_pong_time >= f.probe_at);
    if answered {
        if now.saturating_sub(f.probe_at) >= FENCE_REPROBE_MS {
            probe(m.replicas.values_mut(), now, out);
            f.probe_at = now;
        }
        return Some(f);
    }
    let pause_ms = fence_pause_ms(m.inst.down_after);
    pause_writes(&mut m.fo.paused, &mut m.inst, pause_ms, out);
    f.paused_at = Some(now);
    let mut ev = Event::new(EventKind::Fence, m.prefix(cx.announce), Some(&m.inst.name));
    ev.detail = Some(format!(
        "out of touch with the group for {} ms and no replica answered: writes paused",
        now.saturating_sub(cx.lost.unwrap_or(now))
    ));
    out.push(Action::Emit(ev));
    Some(f)
}

/// Fenced: lifted when back in touch and still the group's master; else
/// kept (renewed) until the node follows the committed master, which this
/// daemon makes it do once the switch is done.
fn fenced(m: &mut Master, mut f: Fence, cx: &Cx, out: &mut Vec<Action>) -> Option<Fence> {
    let now = cx.now;
    let name = m.inst.name.clone();
    let at = |i: &Instance| same_addr(&i.host, i.port, &f.host, f.port);
    if !m
        .fo
        .paused
        .iter()
        .any(|(h, p)| same_addr(h, *p, &f.host, f.port))
    {
        // Released by `release_paused`: it reports role:slave.
        let ma = m.addr(cx.announce);
        let what = m
            .replicas
            .values()
            .find(|i| at(i))
            .map_or_else(|| m.prefix(cx.announce), |r| prefix(r, &ma));
        emit(out, EventKind::FenceLifted, what, Some(&name));
        return None;
    }
    let settled = cx
        .back
        .is_some_and(|b| now.saturating_sub(b) >= FENCE_SETTLE_MS);
    let is_master = at(&m.inst);
    let committed_here = cx.committed_at(&f.host, f.port);
    if settled && is_master && committed_here && !cx.failover_under_way() && m.inst.link.cmd_up {
        lift_pause(&mut m.fo.paused, &mut m.inst, out);
        let mut ev = Event::new(EventKind::FenceLifted, m.prefix(cx.announce), Some(&name));
        ev.detail = Some("back in touch with the group, still its master".into());
        out.push(Action::Emit(ev));
        return None;
    }
    // Replaced: the switch is done (no failover under way), and this
    // daemon, whose link to it holds no hello, makes it a replica of the
    // committed master (the others' hellos wait behind the pause, so their
    // links see it down and their leader would not demote it).
    let replaced = settled
        && !is_master
        && cx.committed.is_some()
        && !committed_here
        && !cx.failover_under_way();
    let pause_ms = fence_pause_ms(m.inst.down_after);
    let ma = m.addr(cx.announce);
    let node = std::iter::once(&mut m.inst)
        .chain(m.replicas.values_mut())
        .find(|i| at(i))
        .filter(|i| i.link.cmd_up);
    let Some(node) = node else {
        return Some(f);
    };
    if f.paused_at
        .is_some_and(|t| now.saturating_sub(t) >= pause_ms / 3)
    {
        pause_writes(&mut m.fo.paused, node, pause_ms, out);
        f.paused_at = Some(now);
    }
    // Sent again only after an INFO younger than the last attempt still
    // shows it a master.
    let master = node.info_refresh.is_some() && node.role_reported == Role::Master;
    if replaced && master && !fix_pending(node) {
        convert_to_slave(node, (ma.shown.clone(), ma.port), &ma, now, out);
        f.info_at = now;
    }
    if !is_master && now.saturating_sub(f.info_at) >= FENCE_INFO_MS {
        ask_info(node, out);
        f.info_at = now;
    }
    Some(f)
}

/// A PING to every replica whose link is up.
fn probe<'a>(replicas: impl Iterator<Item = &'a mut Instance>, now: Millis, out: &mut Vec<Action>) {
    for r in replicas.filter(|r| r.link.cmd_up) {
        send_ping(r, now, out);
    }
}
