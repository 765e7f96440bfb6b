//! raftinel-bench: measures redis-sentinel 7.0.15 and raftinel side by side on loopback (same topology, same
//! generated sentinel.conf, same machine, same run) and writes JSON, a Markdown report and one SVG failover
//! timeline per daemon. See BENCHMARKS.md. Exit status is non-zero only when the program itself fails (a
//! process does not start, a parse error); a daemon that does not fail over is a result.

mod failover;
mod footprint;
mod procs;
mod query;
mod report;
mod resp;
mod scale;
mod stats;
mod topo;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use serde::Serialize;

use failover::{TrialResult, Trigger};
use topo::{Bins, Kind};

/// Side-by-side benchmark of redis-sentinel and raftinel.
#[derive(Debug, Parser, Clone, Serialize)]
#[command(name = "raftinel-bench")]
struct Args {
    /// One short run of each measurement with tiny sizes (CI).
    #[arg(long)]
    smoke: bool,
    /// Runs per failover/switchover cell and rounds of redis-benchmark.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Output directory (JSON, report.md, SVG timelines).
    #[arg(long, default_value = "bench/out")]
    out: PathBuf,
    /// The raftinel binary (default: next to this program).
    #[arg(long)]
    raftinel: Option<PathBuf>,
    #[arg(long, default_value = "redis-sentinel")]
    redis_sentinel: PathBuf,
    #[arg(long, default_value = "redis-server")]
    redis_server: PathBuf,
    #[arg(long, default_value = "redis-benchmark")]
    redis_benchmark: PathBuf,
    /// Measurements to run, comma-separated: failover,switchover,footprint,query,scale.
    #[arg(long, default_value = "failover,switchover,footprint,query,scale")]
    only: String,
    /// Daemons to measure, comma-separated: redis-sentinel,raftinel.
    #[arg(long, default_value = "redis-sentinel,raftinel")]
    daemons: String,
    /// Triggers of the failover trials, comma-separated: kill,stop,kill-refused.
    #[arg(long, default_value = "kill,stop,kill-refused")]
    triggers: String,
    /// down-after-milliseconds values for the failover trials.
    #[arg(long, value_delimiter = ',')]
    down_after: Option<Vec<u64>>,
    /// Cap of one failover trial after the trigger, beyond down-after (seconds).
    #[arg(long)]
    failover_cap_s: Option<u64>,
    /// Idle window of the footprint measurement (seconds).
    #[arg(long)]
    footprint_s: Option<u64>,
    /// Masters of the "many masters" footprint measurements (one topology
    /// each, 1 replica per master).
    #[arg(long, value_delimiter = ',')]
    footprint_masters: Option<Vec<usize>>,
    /// Masters (1 replica each) of the scale measurement.
    #[arg(long)]
    scale_masters: Option<usize>,
    /// Masters killed at once in the scale measurement.
    #[arg(long)]
    scale_kill: Option<usize>,
    /// Idle CPU window of the scale measurement (seconds).
    #[arg(long)]
    scale_window_s: Option<u64>,
    /// down-after-milliseconds of the scale measurement.
    #[arg(long)]
    scale_down_after: Option<u64>,
    /// Cap of the scale failover (seconds).
    #[arg(long)]
    scale_cap_s: Option<u64>,
    /// redis-benchmark -n.
    #[arg(long)]
    requests: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_mib: u64,
    pub kernel: String,
    pub redis_sentinel_version: String,
    pub redis_server_version: String,
    pub redis_benchmark_version: String,
    pub raftinel_version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub runs: usize,
    pub down_after_ms: Vec<u64>,
    pub failover_cap_extra_s: u64,
    pub footprint_s: u64,
    pub footprint_masters: Vec<usize>,
    pub scale_masters: usize,
    pub scale_kill: usize,
    pub scale_window_s: u64,
    pub scale_down_after_ms: u64,
    pub scale_cap_s: u64,
    pub requests: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub command: String,
    pub smoke: bool,
    pub machine: Machine,
    pub bins: Bins,
    pub config: Config,
    pub failover: Vec<TrialResult>,
    pub switchover: Vec<TrialResult>,
    pub footprint: Vec<footprint::FootprintResult>,
    pub query: Vec<query::QueryResult>,
    pub scale: Vec<scale::ScaleResult>,
}

fn machine(bins: &Bins) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem_mib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024);
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        mem_mib,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        redis_sentinel_version: procs::version_of(&bins.redis_sentinel),
        redis_server_version: procs::version_of(&bins.redis_server),
        redis_benchmark_version: procs::version_of(&bins.redis_benchmark),
        raftinel_version: procs::version_of(&bins.raftinel),
    }
}

fn resolve_bin(p: &std::path::Path) -> Result<PathBuf> {
    if p.components().count() > 1 {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("{} not found", p.display());
    }
    let name = p.to_string_lossy();
    procs::which(&name).ok_or_else(|| anyhow!("{name} not found on PATH"))
}

fn write_outputs(res: &Results, out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let json = serde_json::to_string_pretty(res)?;
    std::fs::write(out.join("results.json"), json)?;
    std::fs::write(out.join("report.md"), report::markdown(res))?;
    for k in report::kinds() {
        if let Some(t) = report::timeline_pick(res, k) {
            std::fs::write(
                out.join(format!("timeline-{}.svg", k.name())),
                report::timeline_svg(t),
            )?;
        }
    }
    Ok(())
}

fn log(msg: &str) {
    eprintln!("[raftinel-bench] {msg}");
}

async fn run(args: Args) -> Result<()> {
    let raftinel = match &args.raftinel {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("no directory for the current executable"))?
            .join("raftinel"),
    };
    let bins = Bins {
        redis_server: resolve_bin(&args.redis_server)?,
        redis_sentinel: resolve_bin(&args.redis_sentinel)?,
        redis_benchmark: resolve_bin(&args.redis_benchmark)?,
        raftinel: resolve_bin(&raftinel)?,
    };
    let smoke = args.smoke;
    let runs = if smoke { 1 } else { args.runs.max(1) };
    let config = Config {
        runs,
        down_after_ms: args.down_after.clone().unwrap_or_else(|| {
            if smoke {
                vec![1000]
            } else {
                vec![1000, 5000]
            }
        }),
        failover_cap_extra_s: args.failover_cap_s.unwrap_or(if smoke { 6 } else { 20 }),
        footprint_s: args.footprint_s.unwrap_or(if smoke { 2 } else { 60 }),
        footprint_masters: args.footprint_masters.clone().unwrap_or_else(|| {
            if smoke {
                vec![5]
            } else {
                vec![100, 200]
            }
        }),
        scale_masters: args.scale_masters.unwrap_or(if smoke { 5 } else { 200 }),
        scale_kill: args.scale_kill.unwrap_or(if smoke { 2 } else { 20 }),
        scale_window_s: args.scale_window_s.unwrap_or(if smoke { 2 } else { 60 }),
        scale_down_after_ms: args
            .scale_down_after
            .unwrap_or(if smoke { 2000 } else { 5000 }),
        scale_cap_s: args.scale_cap_s.unwrap_or(if smoke { 12 } else { 90 }),
        requests: args.requests.unwrap_or(if smoke { 2000 } else { 200_000 }),
    };
    let mut kinds = Vec::new();
    for d in args
        .daemons
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        kinds.push(match d {
            "redis-sentinel" => Kind::RedisSentinel,
            "raftinel" => Kind::Raftinel,
            other => bail!("unknown daemon {other:?} (redis-sentinel, raftinel)"),
        });
    }
    let only: Vec<&str> = args.only.split(',').map(str::trim).collect();
    for o in &only {
        if !["failover", "switchover", "footprint", "query", "scale"].contains(o) {
            bail!("unknown measurement {o:?}");
        }
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut res = Results {
        command,
        smoke,
        machine: machine(&bins),
        bins: bins.clone(),
        config: config.clone(),
        failover: Vec::new(),
        switchover: Vec::new(),
        footprint: Vec::new(),
        query: Vec::new(),
        scale: Vec::new(),
    };
    let out = args.out.clone();

    if only.contains(&"failover") {
        let wanted: Vec<&str> = args.triggers.split(',').map(str::trim).collect();
        let triggers = [
            ("kill", Trigger::Kill),
            ("stop", Trigger::Stop),
            ("kill-refused", Trigger::KillRefused),
        ];
        if let Some(bad) = wanted
            .iter()
            .find(|w| !triggers.iter().any(|(n, _)| n == *w))
        {
            bail!("--triggers: unknown trigger {bad:?} (kill, stop, kill-refused)");
        }
        let triggers = triggers
            .into_iter()
            .filter(|(n, _)| wanted.contains(n))
            .map(|(_, t)| t);
        for &da in &config.down_after_ms {
            for trig in triggers.clone() {
                for run in 0..runs {
                    for &k in &kinds {
                        let cap = Duration::from_millis(da)
                            + Duration::from_secs(config.failover_cap_extra_s);
                        let t = failover::trial(&bins, k, trig, da, cap, run).await?;
                        log(&format!(
                            "failover {} {} down-after {da} run {run}: {}; +odown {:?} ms, +switch-master all {:?} ms, new addr all {:?} ms, first write {:?} ms, lost {:?}",
                            k.name(), trig.label(), t.outcome, t.first_odown_ms.map(|x| x.round()),
                            t.switch_master_all_ms.map(|x| x.round()), t.new_addr_all_ms.map(|x| x.round()),
                            t.first_write_new_master_ms.map(|x| x.round()), t.lost_writes
                        ));
                        res.failover.push(t);
                    }
                }
            }
        }
        write_outputs(&res, &out)?;
    }
    if only.contains(&"switchover") {
        let da = 5000;
        for trig in [Trigger::Failover, Trigger::Coordinated] {
            for run in 0..runs {
                for &k in &kinds {
                    let cap = Duration::from_secs(config.failover_cap_extra_s.max(5) + 3);
                    let t = failover::trial(&bins, k, trig, da, cap, run).await?;
                    log(&format!(
                        "switchover {} {} run {run}: {} (reply {:?}); pause {:?} ms, lost {:?}",
                        k.name(),
                        trig.label(),
                        t.outcome,
                        t.command_reply,
                        t.write_pause_ms.map(|x| x.round()),
                        t.lost_writes
                    ));
                    res.switchover.push(t);
                }
            }
        }
        write_outputs(&res, &out)?;
    }
    if only.contains(&"footprint") {
        let window = Duration::from_secs(config.footprint_s);
        let setups = std::iter::once((1usize, 2usize))
            .chain(config.footprint_masters.iter().map(|&m| (m, 1)));
        for (masters, replicas) in setups {
            for &k in &kinds {
                let f = footprint::run(&bins, k, masters, replicas, window).await?;
                log(&format!(
                    "footprint {} {masters} masters: {}",
                    k.name(),
                    f.daemons
                        .iter()
                        .map(|d| format!("cpu {:.2}% rss {} kB", d.cpu_pct, d.rss_kb_max))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                res.footprint.push(f);
            }
        }
        write_outputs(&res, &out)?;
    }
    if only.contains(&"query") {
        let q = query::run(&bins, &kinds, runs, config.requests).await?;
        for r in &q {
            log(&format!(
                "query {} {} -P {} round {}: {:.0} rps, p50 {} ms, p99 {} ms",
                r.kind.name(),
                r.test,
                r.pipeline,
                r.round,
                r.rps,
                r.p50_ms,
                r.p99_ms
            ));
        }
        res.query = q;
        write_outputs(&res, &out)?;
    }
    if only.contains(&"scale") {
        for &k in &kinds {
            let s = scale::run(
                &bins,
                k,
                config.scale_masters,
                config.scale_kill,
                config.scale_down_after_ms,
                Duration::from_secs(config.scale_window_s),
                Duration::from_secs(config.scale_cap_s),
            )
            .await?;
            log(&format!(
                "scale {} {} masters: cpu {}; {} ; all switched (events) {:?} ms, (addresses) {:?} ms",
                k.name(),
                s.masters,
                s.daemons.iter().map(|d| format!("{:.2}%", d.cpu_pct)).collect::<Vec<_>>().join(" "),
                s.outcome,
                s.all_switch_events_ms.map(|x| x.round()),
                s.all_new_addr_ms.map(|x| x.round())
            ));
            res.scale.push(s);
        }
        write_outputs(&res, &out)?;
    }
    write_outputs(&res, &out)?;
    log(&format!("results in {}", out.display()));
    Ok(())
}

fn main() {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raftinel-bench: runtime: {e}");
            std::process::exit(2);
        }
    };
    let r = rt.block_on(run(args));
    // Children are killed by their Drop impls inside `run`; shut the runtime down promptly.
    rt.shutdown_timeout(Duration::from_secs(2));
    if let Err(e) = r {
        eprintln!("raftinel-bench: {e:#}");
        std::process::exit(1);
    }
}
