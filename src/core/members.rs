//! The group's members as Sentinel sees them: the runid that names a Raft
//! node in events (`+vote-for-leader <runid>`, `+config-update-from`), the
//! peer daemons forgotten once they leave the group (so `SENTINEL
//! SENTINELS`, `num-other-sentinels` and the config rewrite stop listing
//! them), and the departed daemons a `SENTINEL RESET` asks the group to
//! remove: voters that hellos did not rediscover within a few hello periods.

use std::collections::{BTreeMap, BTreeSet};

use super::group::{node_id_from_myid, Member};
use super::{Action, Millis, Sentinel};

/// Hello periods a RESET waits for the peers to be rediscovered before it
/// asks the group to remove the voters that were not.
const RESET_REDISCOVERY_PERIODS: u64 = 5;

impl Sentinel {
    /// The Sentinel runid of Raft node `node`, as known to master `mi`: the
    /// myid its membership entry records, else (entries of earlier releases)
    /// the known sentinel whose runid gives that node id.
    pub(crate) fn runid_of_node(&self, mi: usize, node: u64) -> Option<String> {
        if let Some(r) = self.committed.as_ref().and_then(|c| c.runid_of(node)) {
            return Some(r.to_string());
        }
        self.masters
            .get_index(mi)?
            .1
            .sentinels
            .values()
            .filter_map(|s| s.runid.clone())
            .find(|r| node_id_from_myid(r) == Some(node))
    }

    /// Voters that left the group between two committed states are
    /// forgotten as peers, unless their daemon is still a voter under
    /// another node id (a new incarnation keeps its myid).
    pub(crate) fn members_left(
        &mut self,
        old: &BTreeMap<u64, Member>,
        new: &BTreeMap<u64, Member>,
        out: &mut Vec<Action>,
    ) {
        let staying: BTreeSet<&str> = new.values().map(|m| m.myid.as_str()).collect();
        let gone: Vec<(u64, &Member)> = old
            .iter()
            .filter(|(id, m)| !new.contains_key(id) && !staying.contains(m.myid.as_str()))
            .map(|(id, m)| (*id, m))
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut forgot = false;
        for m in self.masters.values_mut() {
            let before = m.sentinels.len();
            let mut dropped = Vec::new();
            m.sentinels.retain(|_, s| {
                let runid = s.runid.as_deref().unwrap_or("");
                let leaves = !runid.is_empty()
                    && !runid.eq_ignore_ascii_case(&self.myid)
                    && gone.iter().any(|(id, mem)| mem.is_daemon(*id, runid));
                if leaves {
                    dropped.push(s.id);
                }
                !leaves
            });
            forgot |= m.sentinels.len() != before;
            for id in dropped {
                self.owners.remove(&id);
                out.push(Action::Disconnect { id, link: None });
            }
        }
        if forgot {
            out.push(Action::Flush);
        }
    }

    /// `SENTINEL RESET` forgot the peers of the masters it reset: once they
    /// had a few hello periods to announce themselves again, the voters that
    /// did not are reported to the group (which removes them only if they
    /// are silent and the rest keeps a live majority).
    pub(crate) fn reset_rediscovery(&mut self, now: Millis) {
        let wait = self
            .timing
            .publish_period
            .saturating_mul(RESET_REDISCOVERY_PERIODS);
        self.forget_unseen_at = Some(now.saturating_add(wait));
    }

    /// On each tick: the rediscovery window of a RESET is over.
    pub(crate) fn forget_unseen(&mut self, now: Millis, out: &mut Vec<Action>) {
        if self.forget_unseen_at.is_none_or(|at| now < at) {
            return;
        }
        self.forget_unseen_at = None;
        let Some(voters) = self.committed.as_ref().map(|c| c.voters.clone()) else {
            return;
        };
        let me = self.raft.node_id;
        let seen: Vec<&str> = self
            .masters
            .values()
            .flat_map(|m| m.sentinels.values())
            .filter_map(|s| s.runid.as_deref())
            .collect();
        for (id, m) in &voters {
            let mine = m.is_daemon(*id, &self.myid);
            if *id == me || mine || seen.iter().any(|r| m.is_daemon(*id, r)) {
                continue;
            }
            out.push(Action::ForgetDaemon { node: *id });
        }
    }
}
