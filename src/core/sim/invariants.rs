//! The invariants checked after every simulation step, one function each,
//! named after the property. Each returns `Err(explanation)` on violation;
//! the runner adds the seed, the step and the trace.
//!
//! Safety properties hold vacuously while no daemon promotes anything; the
//! convergence check runs once, after healing and quiet time.

use std::collections::{BTreeMap, BTreeSet};

use super::redis::RedisRole;
use super::world::{Promotion, SeenInfo, World, MASTER_NAME};
use crate::core::group::Phase;
use crate::core::group::{Command, CommandResponse};

pub(super) type Check = Result<(), String>;

fn new_promotions(w: &World) -> &[Promotion] {
    w.promotions.get(w.checked..).unwrap_or(&[])
}

/// Every `REPLICAOF NO ONE` ever sent names one target per committed epoch.
pub(super) fn at_most_one_promotion_per_epoch(w: &World) -> Check {
    let mut per_epoch: BTreeMap<u64, BTreeSet<Option<(String, u16)>>> = BTreeMap::new();
    for p in &w.promotions {
        let Some(f) = &p.failover else { continue };
        per_epoch
            .entry(f.epoch)
            .or_default()
            .insert(p.target.clone());
    }
    match per_epoch.iter().find(|(_, t)| t.len() > 1) {
        Some((e, targets)) => Err(format!(
            "epoch {e}: REPLICAOF NO ONE sent to {} different nodes: {targets:?}",
            targets.len()
        )),
        None => Ok(()),
    }
}

/// Epochs never go back: a daemon's current epoch within one incarnation and
/// across restarts (it restarts from what it flushed, which must carry every
/// epoch it acted in), the committed epoch each daemon sees, and the group's.
pub(super) fn epochs_never_decrease(w: &World) -> Check {
    let state = w.raft.committed();
    let config_epoch = state
        .masters
        .get(MASTER_NAME)
        .map(|m| m.config_epoch)
        .unwrap_or(0);
    let (ce, cfe) = w.committed_mark;
    if state.current_epoch < ce || config_epoch < cfe {
        return Err(format!(
            "group: committed (current epoch, config epoch) went from ({ce}, {cfe}) to ({}, {config_epoch})",
            state.current_epoch
        ));
    }
    for (d, dm) in w.daemons.iter().enumerate() {
        let Some(core) = &dm.core else { continue };
        let (inc, epoch, committed) = w.epoch_marks[d];
        if core.current_epoch() < epoch {
            let how = if inc == dm.incarnation {
                "while running"
            } else {
                "across a restart"
            };
            return Err(format!(
                "daemon d{d}: current epoch went from {epoch} to {} {how}",
                core.current_epoch()
            ));
        }
        let seen = w.daemon_state(d).map(|s| s.current_epoch);
        if let Some(c) = seen {
            if inc == dm.incarnation && c < committed {
                return Err(format!(
                    "daemon d{d}: committed epoch delivered went from {committed} to {c}"
                ));
            }
        }
    }
    Ok(())
}

/// Records the watermarks once every check of a step passed.
pub(super) fn mark_epochs(w: &mut World) {
    let state = w.raft.committed();
    let config_epoch = state
        .masters
        .get(MASTER_NAME)
        .map(|m| m.config_epoch)
        .unwrap_or(0);
    w.committed_mark = (state.current_epoch, config_epoch);
    for d in 0..w.daemons.len() {
        let Some(core) = &w.daemons[d].core else {
            continue;
        };
        let epoch = core.current_epoch();
        let committed = w.daemon_state(d).map(|s| s.current_epoch).unwrap_or(0);
        let inc = w.daemons[d].incarnation;
        let (_, e, c) = w.epoch_marks[d];
        w.epoch_marks[d] = (inc, e.max(epoch), c.max(committed));
    }
}

/// A daemon sends `REPLICAOF NO ONE` only to the replica named by a committed
/// failover step it has received (phase send-slaveof-noone or later), and
/// that step is an applied entry of the log.
pub(super) fn no_promotion_without_committed_decision(w: &World) -> Check {
    for p in new_promotions(w) {
        let Some(f) = &p.failover else {
            return Err(format!(
                "d{} sent REPLICAOF NO ONE to {:?} at step {} (t={}) with no committed failover in its view",
                p.daemon, p.target, p.step, p.at
            ));
        };
        if f.phase < Phase::SendSlaveofNoone || f.promoted != p.target || p.target.is_none() {
            return Err(format!(
                "d{} sent REPLICAOF NO ONE to {:?} at step {} but its committed failover is {f:?}",
                p.daemon, p.target, p.step
            ));
        }
        if decision_index(w, f.epoch, p.target.as_ref()).is_none() {
            return Err(format!(
                "d{} promoted {:?} in epoch {} with no applied FailoverPhase naming it in the log",
                p.daemon, p.target, f.epoch
            ));
        }
    }
    Ok(())
}

/// Index in the log of the applied entry that chose `target` in `epoch`.
fn decision_index(w: &World, epoch: u64, target: Option<&(String, u16)>) -> Option<usize> {
    w.raft.log.iter().position(|e| {
        e.response == CommandResponse::Applied
            && matches!(&e.cmd, Command::FailoverPhase { name, epoch: ep, promoted: Some(addr), .. }
                if name == MASTER_NAME && *ep == epoch && Some(addr) == target)
    })
}

/// Failovers start only from the majority side, and only the daemon leading
/// the committed failover (or the current Raft leader taking it over) sends
/// the promotion.
pub(super) fn minority_never_promotes(w: &World) -> Check {
    for (i, e) in w.raft.log.iter().enumerate() {
        if let Command::FailoverStart { epoch, .. } = &e.cmd {
            if e.response == CommandResponse::Applied && !e.proposer_on_majority {
                return Err(format!(
                    "entry #{}: FailoverStart of epoch {epoch} proposed by d{:?} from a minority",
                    i + 1,
                    e.proposer
                ));
            }
        }
    }
    for p in new_promotions(w) {
        let Some(f) = &p.failover else { continue };
        if f.leader != p.node_id && !p.believed_leader {
            return Err(format!(
                "d{} (node {:x}) sent REPLICAOF NO ONE for epoch {} led by node {:x} without being Raft leader",
                p.daemon, p.node_id, f.epoch, f.leader
            ));
        }
    }
    Ok(())
}

/// A replica that is empty while the master had data, or whose replication
/// history is not the master's (neither its replid nor its replid2, nor the
/// history committed at the master's promotion), is never promoted. Flagged only when both hold: it was true of the real nodes when
/// the promotion was sent (and the target's history had not changed since the
/// decision), and the INFO the deciding daemon had received by then, from the
/// replica and from the master, showed it.
pub(super) fn never_promote_empty_or_diverged_replica(w: &World) -> Check {
    for p in new_promotions(w) {
        let (Some(f), Some(target), Some(master)) = (&p.failover, &p.target, &p.view_master) else {
            continue;
        };
        let (Some(rt), Some(mt)) = (&p.truth_target, &p.truth_master) else {
            continue;
        };
        let Some(i) = decision_index(w, f.epoch, Some(target)) else {
            continue;
        };
        let (Some(chooser), Some(&decided_at)) = (
            w.raft.log.get(i).and_then(|e| e.proposer),
            w.proposed_at.get(i),
        ) else {
            continue;
        };
        if rt.history_changed_at > decided_at {
            continue;
        }
        let last_seen = |addr: &(String, u16)| -> Option<&SeenInfo> {
            let n = w.node_by_addr(&addr.0, addr.1)?;
            w.daemons[chooser]
                .seen
                .get(&n)?
                .iter()
                .rev()
                .find(|s| s.at <= decided_at)
        };
        let (Some(r), Some(m)) = (last_seen(target), last_seen(master)) else {
            continue;
        };
        let empty = |r_off: u64, m_off: u64| r_off == 0 && m_off > 0;
        if empty(rt.offset, mt.offset) && empty(r.offset, m.offset) {
            return Err(format!(
                "epoch {}: d{chooser} chose {target:?} whose last INFO (t={}) showed offset 0 while the master's (t={}) showed {} (real offsets: replica {}, master {})",
                f.epoch, r.at, m.at, m.offset, rt.offset, mt.offset
            ));
        }
        // Same history, the master's previous one, or one that continued
        // the master's (the replica's replid2 is the master's replid: it
        // followed, or is, a promotion of that history).
        let diverged = |rid: &str, rid2: &str, m1: &str, m2: &str| {
            !m1.is_empty() && rid != m1 && rid != m2 && rid2 != m1
        };
        // The history committed at the master's promotion is what the
        // engine judges against until the master's own INFO reaches the
        // chooser: a replica on it continued the master's history (the
        // master may have restarted empty since, unseen).
        let committed = w
            .raft
            .states
            .get(i)
            .and_then(|st| st.masters.get(MASTER_NAME))
            .and_then(|cm| cm.history.clone());
        let on_committed =
            committed.is_some_and(|h| !diverged(&r.replid, &r.replid2, &h.replid, &h.replid2));
        if diverged(&rt.replid, &rt.replid2, &mt.replid, &mt.replid2)
            && diverged(&r.replid, &r.replid2, &m.replid, &m.replid2)
            && !on_committed
        {
            return Err(format!(
                "epoch {}: d{chooser} chose {target:?} with replid {} (INFO t={}) while the master {master:?} had {} / {} (INFO t={}); real: replica {} master {} / {}",
                f.epoch, r.replid, r.at, m.replid, m.replid2, m.at, rt.replid, mt.replid, mt.replid2
            ));
        }
    }
    Ok(())
}

/// After healing and quiet time: every daemon answers the same master, it is
/// the committed one, and every daemon has received the whole log.
pub(super) fn all_daemons_agree_on_the_committed_master(w: &World) -> Check {
    let state = w.raft.committed();
    let Some(expected) = World::expected_master(&state) else {
        return Err("the committed state has no master".into());
    };
    for (d, dm) in w.daemons.iter().enumerate() {
        let Some(core) = &dm.core else {
            return Err(format!("d{d} is not running after settling"));
        };
        if dm.delivered_index != w.raft.len() {
            return Err(format!(
                "d{d} has committed index {} of {}",
                dm.delivered_index,
                w.raft.len()
            ));
        }
        let answer = core.master_addr(MASTER_NAME);
        if answer.as_ref() != Some(&expected) {
            return Err(format!(
                "d{d} answers {answer:?} but the committed master is {expected:?}"
            ));
        }
    }
    Ok(())
}

/// A coordinated (planned) switchover loses no acknowledged write: the
/// promotion lands while the old master is paused and the promoted replica
/// has its whole offset (checked by the simulator when the promotion lands).
pub(super) fn coordinated_switchover_loses_no_write(w: &World) -> Check {
    match w.write_loss.first() {
        Some(p) => Err(p.clone()),
        None => Ok(()),
    }
}

/// After healing and quiet time, Redis agrees with the group: when the
/// committed master is up, it is a master, and every other running node that
/// the Raft leader knows as a replica (its SENTINEL REPLICAS) replicates it:
/// old masters converted, stray replicas fixed (the leader alone acts on
/// Redis). A node the leader never discovered (its master died before any
/// INFO listed it) is out of reach, as with redis-sentinel.
pub(super) fn redis_follows_the_committed_master(w: &World) -> Check {
    let Some(m) = w.master_node() else {
        return Ok(());
    };
    if !w.nodes[m].serving(w.now) {
        return Ok(());
    }
    let (h, p) = w.nodes[m].addr();
    if w.nodes[m].role != RedisRole::Master {
        return Err(format!(
            "the committed master n{m} ({h}:{p}) is {:?}",
            w.nodes[m].role
        ));
    }
    let mut known = BTreeSet::new();
    let leader = w.raft.leader.and_then(|l| w.daemons[l].core.as_ref());
    if let Some(core) = leader {
        for r in core.replicas_desc(MASTER_NAME, w.now).unwrap_or_default() {
            let field = |k: &str| r.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
            if let (Some(ip), Some(port)) = (field("ip"), field("port")) {
                known.insert((ip, port));
            }
        }
    }
    for (i, n) in w.nodes.iter().enumerate() {
        if i == m || n.crashed || !known.contains(&(n.host.clone(), n.port.to_string())) {
            continue;
        }
        if n.role != RedisRole::Replica(h.clone(), p) {
            return Err(format!(
                "node n{i} ({}) is {:?}, not a replica of the committed master {h}:{p}",
                n.host, n.role
            ));
        }
    }
    Ok(())
}

/// Publish, then demote: the master a failover replaces is never made a
/// replica before the switch is committed, and after it only once every
/// daemon that stayed alive and on the majority side since the switch's
/// commit, and that the demoting daemon reaches, published `+switch-master`
/// (or had last told its clients the new master already), unless the
/// bound passed (checked by the simulator when the REPLICAOF is sent).
pub(super) fn old_master_demoted_only_after_the_switch_is_published(w: &World) -> Check {
    match w.early_demotions.first() {
        Some(p) => Err(p.clone()),
        None => Ok(()),
    }
}

/// A daemon publishes `+switch-master` for an epoch only once its promotion
/// is committed (observers from the committed `ReconfSlaves` on, the leader
/// at the switch), and once (checked by the simulator at each publication).
pub(super) fn switch_published_once_after_the_committed_promotion(w: &World) -> Check {
    match w.bad_publications.first() {
        Some(p) => Err(p.clone()),
        None => Ok(()),
    }
}
