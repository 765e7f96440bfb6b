//! The simulator's tests: a fixed, bounded set of random seeds (or the ones
//! named by `RAFTINEL_SIM_SEED` / `RAFTINEL_SIM_SEEDS`), and scripted
//! scenarios whose faults are fixed (the RNG still draws delays).

use super::redis::RedisRole;
use super::world::{SimConfig, World, DOWN_AFTER};
use super::{check_converged, check_step, outcome, run_for, run_seed, run_seed_world, STEPS};

/// Seeds run by default (CI): bounded so the debug build stays well under 30 s.
const FIXED_SEEDS: u64 = 40;

/// The message of a caught panic.
fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn seeds_from_env() -> Vec<u64> {
    if let Some(s) = std::env::var("RAFTINEL_SIM_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return vec![s];
    }
    let n = std::env::var("RAFTINEL_SIM_SEEDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(FIXED_SEEDS);
    (1..=n).collect()
}

#[test]
// The wall clock only reports how long this test took to run.
#[allow(clippy::disallowed_types)]
fn fixed_seeds() {
    let seeds = seeds_from_env();
    let (mut promotions, mut epochs, mut commits, mut sim_ms) = (0, 0, 0, 0);
    let mut coordinated = 0;
    let mut failed = Vec::new();
    let mut events = std::collections::BTreeMap::new();
    let started = std::time::Instant::now();
    for &seed in &seeds {
        // Every seed runs even after a failure, so a long run lists them all.
        match std::panic::catch_unwind(|| run_seed(seed, STEPS)) {
            Ok(o) => {
                promotions += o.promotions;
                epochs += o.epochs;
                commits += o.commits;
                sim_ms += o.sim_ms;
                coordinated += o.coordinated;
                for (k, v) in &o.events {
                    *events.entry(*k).or_insert(0) += v;
                }
                if seeds.len() == 1 {
                    println!("seed {seed}: {o:?}");
                }
            }
            Err(e) => {
                let msg = panic_text(&e);
                let head: Vec<&str> = msg.lines().take(3).collect();
                failed.push(format!("seed {seed}: {}", head.join(" | ")));
            }
        }
    }
    println!(
        "{} seeds x {STEPS} steps in {:.1?}: {commits} commits, {promotions} promotions in {epochs} epochs ({coordinated} coordinated checked), {} s simulated",
        seeds.len(),
        started.elapsed(),
        sim_ms / 1000
    );
    let failovers: Vec<String> = events
        .iter()
        .filter(|(k, _)| k.contains("failover") || k.contains("switch") || k.contains("odown"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("failover events: {}", failovers.join(" "));
    assert!(
        failed.is_empty(),
        "{} of {} seeds failed:\n{}",
        failed.len(),
        seeds.len(),
        failed.join("\n")
    );
}

/// A seed replays exactly: same events, same outcome (nothing may depend on
/// hash order, addresses or the wall clock).
#[test]
fn same_seed_same_run() {
    for seed in [3, 130] {
        let (a, ta) = run_seed_world(seed, 150);
        let (b, tb) = run_seed_world(seed, 150);
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "seed {seed}");
        assert_eq!(ta, tb, "seed {seed}");
    }
}

fn scripted(seed: u64, daemons: usize, replicas: usize) -> World {
    let cfg = SimConfig {
        daemons,
        replicas,
        faults: false,
        coordinated: false,
    };
    let mut w = World::new(seed, cfg);
    // Scripted runs choose priorities explicitly (random runs draw them).
    for n in w.nodes.iter_mut() {
        n.priority = 100;
    }
    w
}

/// Nothing fails: nobody promotes, everybody agrees on the configured master.
#[test]
fn quiet_group_never_fails_over() {
    for (seed, daemons) in [(101, 3), (102, 5)] {
        let mut w = scripted(seed, daemons, 2);
        run_for(&mut w, 20_000);
        check_converged(&mut w);
        assert_eq!(outcome(&w).promotions, 0, "seed {seed}");
        assert_eq!(
            World::expected_master(&w.raft.committed()).map(|a| a.1),
            Some(6379)
        );
    }
}

/// Two of three daemons die together with the master: the survivor is a
/// minority and must never promote.
#[test]
fn two_of_three_daemons_killed_no_promotion() {
    let mut w = scripted(201, 3, 2);
    run_for(&mut w, 5_000);
    w.crash_daemon(0);
    w.crash_daemon(1);
    if let Some(n) = w.master_node() {
        w.crash_node(n);
    }
    run_for(&mut w, 20_000);
    assert_eq!(
        w.promotions.len(),
        0,
        "minority promoted:\n{}",
        w.trace_text()
    );
}

/// A daemon partitioned alone with the master down sees it SDOWN and may
/// propose, but its proposals never commit and it promotes nothing.
#[test]
fn isolated_daemon_never_promotes() {
    let mut w = scripted(301, 5, 3);
    run_for(&mut w, 5_000);
    for d in 0..5 {
        w.daemons[d].side = u8::from(d == 4);
    }
    // Everyone but daemon 4 is also cut from the Redis nodes.
    for d in 0..4 {
        for n in 0..w.nodes.len() {
            w.cut.push((d, n));
        }
    }
    if let Some(n) = w.master_node() {
        w.crash_node(n);
    }
    run_for(&mut w, 15_000);
    assert_eq!(w.promotions.len(), 0, "promoted:\n{}", w.trace_text());
}

/// Advances in 10 ms steps (invariants checked after each) until `done`
/// holds; returns the time it took, or None after `limit_ms`.
fn run_until_true(w: &mut World, limit_ms: u64, done: impl Fn(&World) -> bool) -> Option<u64> {
    let start = w.now;
    while w.now - start < limit_ms {
        w.advance(10);
        check_step(w);
        if done(w) {
            return Some(w.now - start);
        }
    }
    None
}

/// Every running daemon answers the same master, different from `old`, and
/// it is the committed one.
fn all_answer_new_master(w: &World, old: &(String, u16)) -> bool {
    let expected = World::expected_master(&w.raft.committed());
    let answers = w.answers();
    expected.as_ref().is_some_and(|e| e != old)
        && !answers.is_empty()
        && answers.iter().all(|a| a == &expected)
}

/// Kills the master of a healthy group; returns the failover latency (death
/// to every daemon answering the new master) after checking the outcome:
/// one promotion epoch, the promoted node is a Redis master, the other live
/// replicas follow it, everybody converged.
fn master_killed(seed: u64, daemons: usize, replicas: usize) -> u64 {
    let mut w = scripted(seed, daemons, replicas);
    run_for(&mut w, 5_000);
    let old = ("10.0.0.1".to_string(), 6379);
    let Some(n) = w.master_node() else {
        panic!("seed {seed}: no committed master node");
    };
    w.crash_node(n);
    let Some(took) = run_until_true(&mut w, 15_000, |w| all_answer_new_master(w, &old)) else {
        panic!(
            "seed {seed}: no failover within 15 s of the master's death; answers {:?}\n{}",
            w.answers(),
            w.trace_text()
        );
    };
    if std::env::var_os("RAFTINEL_SIM_VERBOSE").is_some() {
        println!("seed {seed}: failover in {took} ms\n{}", w.trace_text());
    }
    run_for(&mut w, 10_000);
    check_converged(&mut w);
    let o = outcome(&w);
    assert_eq!(
        o.epochs, 1,
        "seed {seed}: promotions in {} epochs",
        o.epochs
    );
    let Some(m) = w.master_node() else {
        panic!("seed {seed}: committed master is not a node");
    };
    let (h, p) = w.nodes[m].addr();
    assert_eq!(w.nodes[m].role, RedisRole::Master, "seed {seed}");
    for (i, r) in w.nodes.iter().enumerate() {
        if i != m && !r.crashed {
            assert_eq!(
                r.role,
                RedisRole::Replica(h.clone(), p),
                "seed {seed}: node n{i} does not follow the new master\n{}",
                w.trace_text()
            );
        }
    }
    took
}

/// The master dies, every daemon healthy: exactly one promotion, every daemon
/// answers the promoted replica, the other replica follows it. Also reports
/// the failover latency over a few seeds (aimed at: down-after +
/// ~100 ms at the median).
#[test]
fn master_killed_all_daemons_healthy() {
    let mut took: Vec<u64> = (0..10)
        .map(|i| master_killed(400 + i, if i % 2 == 0 { 3 } else { 5 }, 2))
        .collect();
    took.sort_unstable();
    let median = took[took.len() / 2];
    println!("failover latency (ms, death to all daemons answering): {took:?}, median {median}");
    assert!(
        median <= DOWN_AFTER + 1_000,
        "median failover latency {median} ms with down-after {DOWN_AFTER} ms: {took:?}"
    );
}

/// The Raft leader daemon dies together with the master: a new leader is
/// elected and the failover still happens; the dead daemon, restarted, agrees.
#[test]
fn leader_daemon_killed_with_the_master() {
    for (seed, daemons) in [(501, 3), (502, 5)] {
        let mut w = scripted(seed, daemons, 2);
        run_for(&mut w, 5_000);
        let old = ("10.0.0.1".to_string(), 6379);
        let Some(leader) = w.raft.leader else {
            panic!("seed {seed}: no Raft leader after warm-up");
        };
        w.crash_daemon(leader);
        if let Some(n) = w.master_node() {
            w.crash_node(n);
        }
        let took = run_until_true(&mut w, 15_000, |w| all_answer_new_master(w, &old));
        assert!(
            took.is_some(),
            "seed {seed}: no failover without the leader daemon; answers {:?}\n{}",
            w.answers(),
            w.trace_text()
        );
        w.restart_daemon(leader);
        run_for(&mut w, 10_000);
        check_converged(&mut w);
        assert_eq!(outcome(&w).epochs, 1, "seed {seed}");
    }
}

/// After a failover the old master comes back with its data: it is turned
/// into a replica of the new master and nothing else is promoted.
#[test]
fn old_master_returning_is_converted() {
    let mut w = scripted(601, 3, 2);
    run_for(&mut w, 5_000);
    let old = ("10.0.0.1".to_string(), 6379);
    w.crash_node(0);
    let took = run_until_true(&mut w, 15_000, |w| all_answer_new_master(w, &old));
    assert!(took.is_some(), "no failover\n{}", w.trace_text());
    w.restart_node(0, false);
    run_for(&mut w, 10_000);
    check_converged(&mut w);
    let Some(m) = w.master_node() else {
        panic!("no committed master node");
    };
    let (h, p) = w.nodes[m].addr();
    assert_eq!(
        w.nodes[0].role,
        RedisRole::Replica(h, p),
        "old master not converted\n{}",
        w.trace_text()
    );
    assert_eq!(outcome(&w).epochs, 1);
}

fn config_epoch(w: &World) -> u64 {
    w.raft
        .committed()
        .masters
        .get(super::world::MASTER_NAME)
        .map(|m| m.config_epoch)
        .unwrap_or(0)
}

fn in_reconf(w: &World) -> bool {
    w.raft
        .committed()
        .masters
        .get(super::world::MASTER_NAME)
        .and_then(|m| m.failover.as_ref())
        .is_some_and(|f| f.phase >= crate::core::group::Phase::ReconfSlaves)
}

/// Two failovers in a row, then the newest master, which no daemon could
/// read as a master, dies while the first master comes back with its old
/// data: that node was never a replica of the committed master and must not
/// be promoted.
#[test]
fn stale_old_master_is_never_promoted() {
    let mut w = scripted(701, 3, 3);
    // n3 is never promotable: the candidates are n1 and n2, then n0.
    w.nodes[3].priority = 0;
    run_for(&mut w, 5_000);
    w.crash_node(0);
    assert!(run_until_true(&mut w, 15_000, |w| config_epoch(w) == 1).is_some());
    let Some(x) = w.master_node() else {
        panic!("no master after the first failover")
    };
    run_for(&mut w, 3_000);
    w.crash_node(x);
    // The next master is cut off from every daemon as soon as the group
    // reconfigures to it, so no daemon reads its INFO as a master.
    assert!(
        run_until_true(&mut w, 15_000, in_reconf).is_some(),
        "second failover did not start\n{}",
        w.trace_text()
    );
    let Some(y) = w.master_node() else {
        panic!("no master in the second failover")
    };
    for d in 0..w.daemons.len() {
        w.cut.push((d, y));
    }
    assert!(
        run_until_true(&mut w, 15_000, |w| config_epoch(w) == 2).is_some(),
        "second failover did not finish\n{}",
        w.trace_text()
    );
    w.crash_node(y);
    w.cut.clear();
    w.restart_node(0, false);
    run_for(&mut w, 20_000);
}

/// A coordinated switchover (SENTINEL FAILOVER with `coordinated-failover
/// yes`) while everything is healthy and writes keep coming: one promotion,
/// no acknowledged write lost, the old master follows the new one, unpaused.
#[test]
fn coordinated_switchover_loses_no_write() {
    for (seed, daemons) in [(801, 3), (802, 5)] {
        let cfg = SimConfig {
            daemons,
            replicas: 2,
            faults: false,
            coordinated: true,
        };
        let mut w = World::new(seed, cfg);
        for n in w.nodes.iter_mut() {
            n.priority = 100;
        }
        run_for(&mut w, 5_000);
        let old = ("10.0.0.1".to_string(), 6379);
        w.manual_failover(1);
        let took = run_until_true(&mut w, 10_000, |w| all_answer_new_master(w, &old));
        assert!(
            took.is_some(),
            "seed {seed}: no switchover\n{}",
            w.trace_text()
        );
        run_for(&mut w, 5_000);
        check_converged(&mut w);
        assert_eq!(outcome(&w).epochs, 1, "seed {seed}");
        assert_eq!(w.coordinated_checked, 1, "seed {seed}");
        let Some(m) = w.master_node() else {
            panic!("seed {seed}: no committed master node");
        };
        let (h, p) = w.nodes[m].addr();
        assert_eq!(w.nodes[0].role, RedisRole::Replica(h, p), "seed {seed}");
        let paused = w.nodes[0].paused_until.is_some_and(|t| w.now < t);
        assert!(
            !paused,
            "seed {seed}: old master still paused\n{}",
            w.trace_text()
        );
    }
}

/// Formation and membership (`sim::group`): the fixed seeds (or the ones
/// named by `RAFTINEL_SIM_SEED` / `RAFTINEL_SIM_SEEDS`), 400 faulty steps of
/// 500 ms each, then healing and convergence.
#[test]
fn membership_seeds() {
    let seeds = seeds_from_env();
    let (mut changes, mut forged, mut bootstraps) = (0, 0, 0);
    let mut failed = Vec::new();
    for &seed in &seeds {
        let r = std::panic::catch_unwind(|| {
            let mut w = super::group::GroupWorld::new(seed);
            for _ in 0..400 {
                w.step(true);
            }
            w.settle();
            (w.changes, w.refused_forged, w.bootstraps)
        });
        match r {
            Ok((c, f, b)) => {
                changes += c;
                forged += f;
                bootstraps += b;
            }
            Err(e) => {
                let msg = panic_text(&e);
                if seeds.len() == 1 {
                    println!("{msg}");
                }
                let head: Vec<&str> = msg.lines().take(2).collect();
                failed.push(format!("seed {seed}: {}", head.join(" | ")));
            }
        }
    }
    println!(
        "membership: {} seeds: {changes} membership changes, {bootstraps} bootstraps, {forged} forged commands refused",
        seeds.len()
    );
    assert!(
        failed.is_empty(),
        "{} seed(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// The replica history rule judged on fresh facts: a plain manual failover
/// promotes n1; the old master n0, ahead of it, resyncs in full (its
/// replid2 is cleared); the other replica dies, then the new master dies
/// about 3 s after the switch, before its periodic INFO reached the daemons,
/// and the failover is led by a daemon that did not lead the switch (its
/// last INFO of n1 may predate the promotion). n0, the only live replica and
/// on n1's history, must be promoted: it was refused before (the leader
/// compared n0's id with n1's id as a replica, and aborted with
/// `-failover-abort-no-good-slave` every 2 × failover-timeout).
#[test]
fn fully_resynced_old_master_is_promoted_after_a_manual_failover() {
    for seed in [901, 902, 903, 904] {
        let mut w = scripted(seed, 3, 2);
        w.nodes[1].priority = 50;
        run_for(&mut w, 5_000);
        let Some(first) = w.raft.leader else {
            panic!("seed {seed}: no Raft leader after warm-up");
        };
        w.manual_failover(first);
        let n1 = RedisRole::Replica("10.0.0.2".into(), 6379);
        let resynced = run_until_true(&mut w, 10_000, |w| {
            config_epoch(w) == 1 && w.nodes[0].role == n1 && w.nodes[0].link_up
        });
        assert!(
            resynced.is_some(),
            "seed {seed}: no switch\n{}",
            w.trace_text()
        );
        assert_eq!(
            w.nodes[0].replid2,
            super::redis::NO_REPLID,
            "seed {seed}: n0 was expected to resync in full"
        );
        w.crash_node(2);
        // The failover of n1 is led by another daemon: the one whose view
        // of n1's history is the stalest, if any is stale.
        let real = w.nodes[1].replid.clone();
        let stale = (0..w.daemons.len())
            .filter(|&d| d != first)
            .max_by_key(|&d| {
                let core = w.daemons[d].core.as_ref();
                let view = core.and_then(|c| c.masters.get(super::world::MASTER_NAME));
                u8::from(view.is_some_and(|m| m.inst.repl_id.as_deref() != Some(real.as_str())))
            });
        let Some(next) = stale else {
            panic!("seed {seed}: no other daemon");
        };
        w.raft.leader = Some(next);
        w.raft.term += 1;
        run_for(&mut w, 3_000);
        w.crash_node(1);
        let old = ("10.0.0.2".to_string(), 6379);
        let took = run_until_true(&mut w, 15_000, |w| all_answer_new_master(w, &old));
        assert!(
            took.is_some(),
            "seed {seed}: n0, on n1's history, not promoted; events {:?}\n{}",
            outcome(&w).events,
            w.trace_text()
        );
        assert_eq!(
            World::expected_master(&w.raft.committed()),
            Some(("10.0.0.1".to_string(), 6379)),
            "seed {seed}"
        );
    }
}
