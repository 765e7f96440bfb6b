//! Nodes fenced by the operator (`SENTINEL SET <master> fenced-nodes
//! "<host:port> ..."`, or a pod annotation through the `k8s` feature): the
//! committed option is the fenced set. A fenced replica is never promoted
//! (`select_slave_as`); a fenced master is switched away from by the Raft
//! leader with a coordinated switchover (writes paused until the chosen
//! replica caught up), retried every failover-timeout while it stays the
//! master; the pod of a fenced node is not Ready (`pod::probe`). Clearing
//! the option lifts it.

use super::same_addr;
use crate::core::event::{Event, EventKind};
use crate::core::sentinel::Sentinel;
use crate::core::types::{split_addr, Action, Millis};

/// The option's value as addresses; None if one is not `host:port`.
pub(crate) fn parse_fenced(v: &str) -> Option<Vec<(String, u16)>> {
    let mut out: Vec<(String, u16)> = Vec::new();
    for a in v
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|a| !a.is_empty())
    {
        let (h, p) = split_addr(a).filter(|(_, p)| *p > 0)?;
        if h.is_empty() || h.contains(char::is_whitespace) {
            return None;
        }
        if !out.iter().any(|(oh, op)| same_addr(oh, *op, h, p)) {
            out.push((h.to_ascii_lowercase(), p));
        }
    }
    Some(out)
}

impl Sentinel {
    /// Whether the master `name` has `host:port` in its fenced set.
    pub fn is_fenced(&self, name: &str, host: &str, port: u16) -> bool {
        self.masters.get(name).is_some_and(|m| {
            m.fo.fenced
                .iter()
                .any(|(h, p)| same_addr(h, *p, host, port))
        })
    }

    /// The fenced set of master `name`, as `host:port` strings.
    pub fn fenced_nodes(&self, name: &str) -> Vec<String> {
        self.masters
            .get(name)
            .map(|m| {
                m.fo.fenced
                    .iter()
                    .map(|(h, p)| crate::core::event::format_addr(h, *p))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Raft leader, settled, no failover running: the committed master is
    /// fenced and answers, so a coordinated switchover away from it is
    /// asked (as SENTINEL FAILOVER would), at most once per failover-timeout.
    pub(super) fn switch_from_fenced(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.settled_leader(now) {
            return;
        }
        let m = &self.masters[mi];
        let Some(cm) = self.cmaster(&m.inst.name) else {
            return;
        };
        let fenced =
            m.fo.fenced
                .iter()
                .any(|(h, p)| same_addr(h, *p, &cm.host, cm.port));
        let recently =
            m.fo.fenced_switch
                .is_some_and(|t| now.saturating_sub(t) < m.failover_timeout);
        if !fenced || recently || cm.failover.is_some() || m.inst.s_down {
            return;
        }
        self.masters[mi].fo.fenced_switch = Some(now);
        let asked = self.manual_failover(mi, true, false, now, out);
        let m = &self.masters[mi];
        let mut ev = Event::new(
            EventKind::FencedMaster,
            m.prefix(self.globals.announce_hostnames),
            Some(&m.inst.name),
        );
        ev.detail = Some(match asked {
            Ok(()) => "switching over to a replica".into(),
            Err(e) => format!("no switchover yet: {}", e.0),
        });
        out.push(Action::Emit(ev));
    }
}
