//! A deterministic, seeded simulation of a raftinel group.
//!
//! N daemons (3 or 5) each run the real pure core ([`crate::core::Sentinel`],
//! driven through `Sentinel::new` and `handle`, plus the public SENTINEL
//! accessors a peer or client would use: `is_master_down_by_addr` for a peer's
//! question, `failover` for a client's SENTINEL FAILOVER, `master_addr`
//! (GET-MASTER-ADDR-BY-NAME) and `replicas_desc` (SENTINEL REPLICAS) for the
//! checks). Around them the simulator models what the driver connects them
//! to: Redis nodes with roles, run ids, replication ids and offsets, and a
//! write stream (`redis.rs`); the network (partitions between daemons and
//! between daemons and nodes, delays, loss on a link stalling that link like
//! TCP, per-link FIFO); the driver's link rules (`world.rs`); and the Raft
//! group (`raft.rs`, abstracted: one committed log, one leader per term on
//! the majority side, proposals lost on leader changes). No tokio, no
//! sockets, no threads: one `StdRng` seeded from the run's seed makes every
//! choice, so a failing seed replays exactly (`same_seed_same_run`).
//!
//! A random run: 300 steps of 10-200 ms with random faults (master crash and
//! restart empty or with its data, replica crash, hangs, daemon crash and
//! restart from its last flushed state, partitions, loss and delay, Raft
//! leadership moves, manual failovers, coordinated in half the runs), then
//! healing, 30 s of quiet time and the convergence checks. After every step
//! the invariants of `invariants.rs` are checked; a failure panics with the
//! seed, the step and the last events.
//!
//! Runs:
//! - `cargo test --lib sim` — seeds 1..=40 and the scripted scenarios
//!   (about 10 s in a debug build);
//! - `RAFTINEL_SIM_SEEDS=1000 cargo test --lib sim::tests::fixed_seeds -- --nocapture`
//!   — the longer run (seeds 1..=1000; every seed runs, failures are listed);
//! - `RAFTINEL_SIM_SEED=<seed> cargo test --lib sim::tests::fixed_seeds -- --nocapture`
//!   — one seed, e.g. to replay a failure; `RAFTINEL_SIM_TRACE=<lines>`
//!   keeps a longer trace of events (default 60 lines).

mod group;
mod invariants;
mod raft;
mod redis;
mod world;

use world::{SimConfig, World};

/// Steps of a random run before settling.
const STEPS: usize = 300;
/// Simulated quiet time after healing, before the convergence check.
const QUIET_MS: u64 = 30_000;

type Checker = fn(&World) -> invariants::Check;

/// The per-step invariants, by name.
const STEP_CHECKS: &[(&str, Checker)] = &[
    (
        "at_most_one_promotion_per_epoch",
        invariants::at_most_one_promotion_per_epoch,
    ),
    ("epochs_never_decrease", invariants::epochs_never_decrease),
    (
        "no_promotion_without_committed_decision",
        invariants::no_promotion_without_committed_decision,
    ),
    (
        "minority_never_promotes",
        invariants::minority_never_promotes,
    ),
    (
        "never_promote_empty_or_diverged_replica",
        invariants::never_promote_empty_or_diverged_replica,
    ),
    (
        "coordinated_switchover_loses_no_write",
        invariants::coordinated_switchover_loses_no_write,
    ),
    (
        "old_master_demoted_only_after_the_switch_is_published",
        invariants::old_master_demoted_only_after_the_switch_is_published,
    ),
    (
        "switch_published_once_after_the_committed_promotion",
        invariants::switch_published_once_after_the_committed_promotion,
    ),
];

fn fail(w: &World, name: &str, why: &str) -> ! {
    panic!(
        "simulation invariant `{name}` violated\n  {why}\n  seed={seed} step={step} t={now}ms daemons={d} replicas={r}\n  reproduce: RAFTINEL_SIM_SEED={seed} cargo test --lib sim::tests::fixed_seeds -- --nocapture\n  last events:\n{trace}",
        seed = w.seed,
        step = w.step,
        now = w.now,
        d = w.cfg.daemons,
        r = w.cfg.replicas,
        trace = w.trace_text()
    );
}

fn check_step(w: &mut World) {
    for (name, check) in STEP_CHECKS {
        if let Err(why) = check(w) {
            fail(w, name, &why);
        }
    }
    w.checked = w.promotions.len();
    invariants::mark_epochs(w);
}

fn run_for(w: &mut World, ms: u64) {
    let end = w.now + ms;
    while w.now < end {
        w.step_once();
        check_step(w);
    }
}

fn check_converged(w: &mut World) {
    // An entry committed in the last milliseconds (a periodic retry, a
    // history record) is still on its way to the daemons: let it land
    // before judging.
    for _ in 0..100 {
        let len = w.raft.len();
        if w.daemons
            .iter()
            .all(|d| !d.alive() || d.delivered_index == len)
        {
            break;
        }
        w.advance(10);
        check_step(w);
    }
    if let Err(why) = invariants::all_daemons_agree_on_the_committed_master(w) {
        fail(w, "all_daemons_agree_on_the_committed_master", &why);
    }
    if let Err(why) = invariants::redis_follows_the_committed_master(w) {
        fail(w, "redis_follows_the_committed_master", &why);
    }
}

/// What a run ended with, for scenario assertions and the summary line.
#[derive(Debug)]
pub(super) struct Outcome {
    pub promotions: usize,
    pub epochs: usize,
    pub commits: usize,
    pub sim_ms: u64,
    /// Coordinated switchovers whose promotion was checked for write loss.
    pub coordinated: usize,
    /// Events emitted by all daemons, by channel.
    pub events: std::collections::BTreeMap<&'static str, usize>,
}

fn outcome(w: &World) -> Outcome {
    let epochs: std::collections::BTreeSet<u64> = w
        .promotions
        .iter()
        .filter_map(|p| p.failover.as_ref().map(|f| f.epoch))
        .collect();
    Outcome {
        promotions: w.promotions.len(),
        epochs: epochs.len(),
        commits: w.raft.len(),
        sim_ms: w.now,
        coordinated: w.coordinated_checked,
        events: w.events.clone(),
    }
}

/// One random run: `steps` steps with faults, then heal, settle, quiet time
/// and the convergence check.
pub(super) fn run_seed(seed: u64, steps: usize) -> Outcome {
    run_seed_world(seed, steps).0
}

/// `run_seed`, returning the trace too (determinism test).
pub(super) fn run_seed_world(seed: u64, steps: usize) -> (Outcome, String) {
    let mut w = World::new(seed, SimConfig::random(seed));
    for _ in 0..steps {
        w.step_once();
        check_step(&mut w);
    }
    w.settle();
    run_for(&mut w, QUIET_MS);
    check_converged(&mut w);
    (outcome(&w), w.trace_text())
}

mod tests;
