//! A master back without its data. It rebooted (a new run id), started
//! empty (`ParsedInfo::started_empty`: no key loaded), and reports another
//! replication id than the one the group recorded for it with data: it
//! crashed without persistence and was restarted in place, before
//! down-after, so no failover replaced it. Its replicas reconnect and would
//! resynchronise from it, empty; Redis 7 sends them the empty dataset only
//! after `repl-diskless-sync-delay` (5 s by default), so until then they
//! still hold the recorded history.
//!
//! While a replica still does, the master is SDOWN at once (no down-after
//! to wait for: `+master-back-empty` says why), the group fails it over as
//! for any ODOWN, selection judges the replicas against the group's record
//! instead of the empty master's new id, and the leader does not record
//! that id. With no replica left on the record (nothing to save) the rule
//! lets go (`-master-back-empty`) and the record follows the master, as
//! before.
//!
//! Meanwhile every write it would acknowledge is lost at the switch: each
//! daemon that sees the rule hold pauses writes on it (`CLIENT PAUSE
//! <BACK_EMPTY_PAUSE_MS> WRITE`, `+fence`, sent again every third of that
//! while the rule or the failover lasts, then until it reports role:slave)
//! and holds its answers naming it (`Sentinel::master_addr_held`). A write
//! sent to it waits, and once it is demoted is refused with -READONLY or
//! its connection killed (the demotion's transaction). On
//! letting go the pause is lifted (`-fence`); if every daemon dies, it
//! lapses by itself.

use super::{ask_info, lift_pause, pause_writes, same_addr};
use crate::core::event::Event;
use crate::core::event::EventKind;
use crate::core::group::ReplHistory;
use crate::core::info::ParsedInfo;
use crate::core::instance::{Instance, Role};
use crate::core::sentinel::{Master, Sentinel};
use crate::core::types::{Action, Millis};

/// A replication history a replica is judged against: the master's latest
/// INFO, or the group's record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hist<'a> {
    pub replid: Option<&'a str>,
    pub replid2: Option<&'a str>,
    pub offset: u64,
}

impl<'a> Hist<'a> {
    pub(crate) fn of(inst: &'a Instance) -> Hist<'a> {
        Hist {
            replid: inst.repl_id.as_deref(),
            replid2: inst.repl_id2.as_deref(),
            offset: inst.repl_offset.unwrap_or(0),
        }
    }

    pub(crate) fn recorded(h: &'a ReplHistory) -> Hist<'a> {
        Hist {
            replid: Some(h.replid.as_str()),
            replid2: Some(h.replid2.as_str()).filter(|id| !id.is_empty()),
            offset: h.offset,
        }
    }
}

/// The failover's safety rules: never promote a replica that is empty while
/// the master had data, nor one whose replication history (replid) is
/// neither of the master's known ones, nor one that reports itself a
/// master (it replicates nothing of ours: a node restarted without its
/// replica configuration, often empty, or another master). Unknown values
/// do not exclude. The master's ids (`h`) are those of its latest INFO, or
/// the ones committed at its promotion until its first INFO here, or the
/// group's record while it is back empty (`Sentinel::judged_history`).
/// Returns why the replica is refused.
pub(crate) fn history_refusal(h: Hist<'_>, r: &Instance) -> Option<String> {
    if r.role_reported == Role::Master {
        return Some("reports role:master".into());
    }
    let m_off = h.offset;
    if m_off > 0 && r.slave_repl_offset == 0 {
        return Some(format!("offset 0 while the master's offset is {m_off}"));
    }
    let (Some(m1), Some(rid)) = (h.replid, &r.repl_id) else {
        return None;
    };
    let m2 = h.replid2.unwrap_or("-");
    let continues = rid == m1
        || rid == m2
        // A replica that continued the master's known history under a
        // newer id (its replid2 is the master's id): it follows a
        // promotion of that history.
        || r.repl_id2.as_deref() == Some(m1);
    (!continues).then(|| {
        format!(
            "replid {rid} replid2 {} offset {} is not the master's history (replid {m1} replid2 {m2} offset {m_off})",
            r.repl_id2.as_deref().unwrap_or("-"),
            r.slave_repl_offset,
        )
    })
}

fn on_record(id: &str, h: &ReplHistory) -> bool {
    id == h.replid || (!h.replid2.is_empty() && id == h.replid2)
}

impl Sentinel {
    /// The group's record of master `m`'s history while it is back empty.
    fn back_empty_record(&self, m: &Master) -> Option<&ReplHistory> {
        m.inst.back_empty.as_ref()?;
        let cm = self.cmaster(&m.inst.name)?;
        cm.seen.as_ref().or(cm.history.as_ref())
    }

    /// The history master `m`'s replicas are judged against: the group's
    /// record while the master is back empty, else its latest INFO.
    pub(crate) fn judged_history<'a>(&'a self, m: &'a Master) -> Hist<'a> {
        match self.back_empty_record(m) {
            Some(h) => Hist::recorded(h),
            None => Hist::of(&m.inst),
        }
    }

    /// Whether master `mi` is back empty while a replica still holds the
    /// recorded history (something to save): see [`not_holding`].
    pub(crate) fn back_empty_holds(&self, mi: usize) -> bool {
        let Some((_, m)) = self.masters.get_index(mi) else {
            return false;
        };
        let Some(h) = self.back_empty_record(m) else {
            return false;
        };
        let since = m.inst.back_empty.unwrap_or(0);
        m.replicas
            .values()
            .any(|r| not_holding(h, r, since).is_none())
    }

    /// Judges master `mi`'s INFO (`p`; `rebooted`: its run id just
    /// changed): marks it back empty, or lets go once it reports an id on
    /// the record again.
    pub(crate) fn judge_back_empty(
        &mut self,
        mi: usize,
        p: &ParsedInfo,
        rebooted: bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((_, m)) = self.masters.get_index(mi) else {
            return;
        };
        let announce = self.globals.announce_hostnames;
        let record = self
            .cmaster(&m.inst.name)
            .filter(|cm| same_addr(&m.inst.host, m.inst.port, &cm.host, cm.port))
            .and_then(|cm| cm.seen.as_ref().or(cm.history.as_ref()))
            .filter(|h| h.offset > 0)
            .cloned();
        let Some(id) = p.master_replid.as_deref() else {
            return;
        };
        let Some(h) = record else {
            return;
        };
        let m = &mut self.masters[mi];
        match &m.inst.back_empty {
            None if rebooted && p.started_empty() && !on_record(id, &h) => {
                m.inst.back_empty = Some(now);
                // What the replicas hold now, not what they held when this
                // daemon last asked.
                for r in m.replicas.values_mut() {
                    if !r.link.info_inflight {
                        ask_info(r, out);
                    }
                }
                let detail = format!(
                    "rebooted without data on replid {id}; the group recorded replid {} offset {}",
                    h.replid, h.offset
                );
                out.push(back_empty_event(
                    m,
                    announce,
                    EventKind::MasterBackEmpty,
                    detail,
                ));
            }
            Some(_) if on_record(id, &h) => {
                m.inst.back_empty = None;
                let detail = format!("back on the recorded replid {id}");
                out.push(back_empty_event(
                    m,
                    announce,
                    EventKind::MasterBackEmptyCleared,
                    detail,
                ));
            }
            _ => {}
        }
    }

    /// At each tick: whether the back-empty rule makes master `mi` SDOWN.
    /// With nothing left to save and no failover of it committed, the rule
    /// lets go.
    pub(crate) fn back_empty_tick(&mut self, mi: usize, out: &mut Vec<Action>) -> bool {
        let Some((_, m)) = self.masters.get_index(mi) else {
            return false;
        };
        if m.inst.back_empty.is_none() {
            return false;
        }
        if self.back_empty_holds(mi) {
            return true;
        }
        if self.cfailover(&m.inst.name).is_some() {
            return false;
        }
        let announce = self.globals.announce_hostnames;
        let since = m.inst.back_empty.unwrap_or(0);
        let why: Vec<String> = match self.back_empty_record(m) {
            Some(h) => m
                .replicas
                .iter()
                .map(|(k, r)| {
                    let reason = not_holding(h, r, since).unwrap_or_default();
                    format!("slave {k}: {reason}")
                })
                .collect(),
            None => Vec::new(),
        };
        let m = &mut self.masters[mi];
        m.inst.back_empty = None;
        let detail = format!(
            "no replica holds the recorded history any more: {}",
            why.join("; ")
        );
        out.push(back_empty_event(
            m,
            announce,
            EventKind::MasterBackEmptyCleared,
            detail,
        ));
        false
    }
}

/// The pause a daemon puts on a master back empty: it lapses this soon if
/// the daemon dies; sent again every third of it.
pub(crate) const BACK_EMPTY_PAUSE_MS: u64 = 3000;

impl Sentinel {
    /// One step of the pause on master `mi` back empty (module text).
    pub(super) fn back_empty_fence(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let Some((_, m)) = self.masters.get_index(mi) else {
            return;
        };
        if m.inst.back_empty.is_none() && m.fo.back_empty_pause.is_none() {
            return; // the common case, kept cheap
        }
        // Paused while the rule holds, kept until it lets go.
        let wanted = m.inst.back_empty.is_some();
        let start = m.fo.back_empty_pause.is_none()
            && wanted
            && m.inst.link.cmd_up
            && (self.back_empty_holds(mi) || self.cfailover(&m.inst.name).is_some());
        let announce = self.globals.announce_hostnames;
        let m = &mut self.masters[mi];
        let Some((host, port, at)) = m.fo.back_empty_pause.clone() else {
            if start {
                pause_writes(&mut m.fo.paused, &mut m.inst, BACK_EMPTY_PAUSE_MS, out);
                m.fo.back_empty_pause = Some((m.inst.host.clone(), m.inst.port, now));
                let detail = "back without its data while a replica holds the recorded history: writes paused";
                out.push(back_empty_event(
                    m,
                    announce,
                    EventKind::Fence,
                    detail.into(),
                ));
            }
            return;
        };
        let is_master = same_addr(&m.inst.host, m.inst.port, &host, port);
        // Still wanted: the master while the rule or its failover lasts;
        // after the switch, the old master until it reports role:slave
        // (`release_paused` lifts the pause then).
        let node = if is_master {
            Some(&mut m.inst).filter(|_| wanted)
        } else {
            m.replicas
                .values_mut()
                .find(|r| same_addr(&r.host, r.port, &host, port))
                .filter(|r| !(r.info_refresh.is_some() && r.role_reported == Role::Slave))
        };
        match node {
            Some(node) => {
                if node.link.cmd_up && now.saturating_sub(at) >= BACK_EMPTY_PAUSE_MS / 3 {
                    pause_writes(&mut m.fo.paused, node, BACK_EMPTY_PAUSE_MS, out);
                    m.fo.back_empty_pause = Some((host, port, now));
                }
            }
            None if is_master => {
                // Let go: nothing left to save.
                m.fo.back_empty_pause = None;
                lift_pause(&mut m.fo.paused, &mut m.inst, out);
                let detail = "no replica to save: writes resumed".into();
                out.push(back_empty_event(
                    m,
                    announce,
                    EventKind::FenceLifted,
                    detail,
                ));
            }
            None => {
                // Demoted (or gone): `release_paused` lifts the pause.
                m.fo.back_empty_pause = None;
            }
        }
    }

    /// Master `name`'s address as `master_addr` gives it, and whether an
    /// answer naming it waits: this daemon paused it (back empty) and would
    /// name it still. The query path's check, on the same lookup.
    pub fn master_addr_held(&self, name: &str) -> (Option<(String, u16)>, bool) {
        let Some(m) = self.masters.get(name) else {
            return (None, false);
        };
        let addr = self.client_addr(m);
        let held =
            m.fo.back_empty_pause
                .as_ref()
                .is_some_and(|(h, p, _)| same_addr(h, *p, &addr.0, addr.1));
        (Some(self.show(m, addr)), held)
    }
}

/// Why replica `r` does not hold the recorded history `h` of a master back
/// empty since `since` (None: it holds it): it must answer, may be promoted
/// (priority not 0), and be on the record; one that has not answered an
/// INFO since the master was seen back counts as holding it (this daemon's
/// last INFO of it may be from before its first sync, and its INFO was
/// asked then).
fn not_holding(h: &ReplHistory, r: &Instance, since: Millis) -> Option<String> {
    if r.s_down {
        return Some("down".into());
    }
    if r.link.disconnected() {
        return Some("not connected".into());
    }
    if r.slave_priority == 0 {
        return Some("replica-priority 0".into());
    }
    if r.info_refresh.is_none_or(|t| t < since) {
        return None;
    }
    history_refusal(Hist::recorded(h), r)
}

/// An event about master `m` with why for the log: `+master-back-empty`,
/// `-master-back-empty`, and `+fence` / `-fence` for its pause.
fn back_empty_event(m: &Master, announce: bool, kind: EventKind, detail: String) -> Action {
    let mut ev = Event::new(kind, m.prefix(announce), Some(&m.inst.name));
    ev.detail = Some(detail);
    Action::Emit(ev)
}
