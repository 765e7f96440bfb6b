//! The simulator's tests: a fixed, bounded set of random seeds (or the ones
//! named by `RAFTINEL_SIM_SEED` / `RAFTINEL_SIM_SEEDS`), and scripted
//! scenarios whose faults are fixed (the RNG still draws delays).

use super::world::{SimConfig, World};
use super::{check_converged, outcome, run_for, run_seed, run_seed_world, STEPS};

/// Seeds run by default (CI): bounded so the debug build stays well under 30 s.
const FIXED_SEEDS: u64 = 40;

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
                for (k, v) in &o.events {
                    *events.entry(*k).or_insert(0) += v;
                }
                if seeds.len() == 1 {
                    println!("seed {seed}: {o:?}");
                }
            }
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let head: Vec<&str> = msg.lines().take(3).collect();
                failed.push(format!("seed {seed}: {}", head.join(" | ")));
            }
        }
    }
    println!(
        "{} seeds x {STEPS} steps in {:.1?}: {commits} commits, {promotions} promotions in {epochs} epochs, {} s simulated",
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
    };
    World::new(seed, cfg)
}

/// Nothing fails: nobody promotes, everybody agrees on the configured master.
#[test]
fn quiet_group_never_fails_over() {
    for (seed, daemons) in [(101, 3), (102, 5)] {
        let mut w = scripted(seed, daemons, 2);
        run_for(&mut w, 20_000);
        check_converged(&w);
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
