//! Footprint and idle CPU: RSS (VmRSS) and CPU time (utime+stime) of each of the 3 daemons of an idle
//! topology, sampled from /proc over a fixed window after the daemons have discovered everything.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use tokio::time::Instant;

use crate::procs::clk_tck;
use crate::topo::{Bins, Kind, Readiness, TopoSpec, Topology};

#[derive(Debug, Clone, Serialize)]
pub struct DaemonUsage {
    pub daemon: usize,
    pub rss_kb_end: u64,
    pub rss_kb_max: u64,
    pub cpu_ms: u64,
    /// CPU time / wall time, in percent of one core.
    pub cpu_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FootprintResult {
    pub kind: Kind,
    pub masters: usize,
    pub replicas_per_master: usize,
    pub window_s: f64,
    pub readiness: Readiness,
    pub daemons: Vec<DaemonUsage>,
    /// Daemons that exited, with status and log tail.
    pub daemon_exits: Vec<String>,
}

/// Samples every daemon of `topo` once a second for `window`.
pub async fn measure_usage(topo: &Topology, window: Duration) -> Result<(f64, Vec<DaemonUsage>)> {
    let tck = clk_tck();
    let start = Instant::now();
    let first: Vec<_> = topo.daemons.iter().map(|d| d.sample()).collect();
    let mut max_rss: Vec<u64> = first.iter().map(|s| s.map_or(0, |s| s.rss_kb)).collect();
    while start.elapsed() < window {
        let left = window.saturating_sub(start.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        for (i, d) in topo.daemons.iter().enumerate() {
            if let (Some(s), Some(m)) = (d.sample(), max_rss.get_mut(i)) {
                *m = (*m).max(s.rss_kb);
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let mut out = Vec::new();
    for (i, d) in topo.daemons.iter().enumerate() {
        let a = first
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| anyhow::anyhow!("{}: /proc not readable", d.name))?;
        // A daemon that died during the window is a result (see `Topology::exits`), not a bench failure.
        let Some(b) = d.sample() else { continue };
        let cpu_ms = b.cpu_ticks.saturating_sub(a.cpu_ticks) * 1000 / tck;
        out.push(DaemonUsage {
            daemon: i,
            rss_kb_end: b.rss_kb,
            rss_kb_max: max_rss.get(i).copied().unwrap_or(b.rss_kb).max(b.rss_kb),
            cpu_ms,
            cpu_pct: cpu_ms as f64 / (wall * 1000.0) * 100.0,
        });
    }
    Ok((wall, out))
}

pub async fn run(
    bins: &Bins,
    kind: Kind,
    masters: usize,
    replicas: usize,
    window: Duration,
) -> Result<FootprintResult> {
    let spec = TopoSpec {
        masters,
        replicas,
        daemons: 3,
        quorum: 2,
        down_after_ms: 5000,
        failover_timeout_ms: 60_000,
    };
    let mut topo = Topology::start(bins, kind, &spec).await?;
    let limit = Duration::from_secs(30 + masters as u64 / 2);
    let readiness = topo.wait_ready(&spec, limit).await?;
    // Startup work (first INFO, hellos) is over once ready; a short settle keeps it out of the window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (window_s, daemons) = measure_usage(&topo, window).await?;
    let daemon_exits = topo.exits();
    Ok(FootprintResult {
        kind,
        masters,
        replicas_per_master: replicas,
        window_s,
        readiness,
        daemons,
        daemon_exits,
    })
}
