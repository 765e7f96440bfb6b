//! Query throughput and latency with redis-benchmark (`--csv`): SENTINEL GET-MASTER-ADDR-BY-NAME and PING,
//! 50 clients, with and without pipelining. Both daemons' topologies run at the same time and the runs are
//! alternated (A B, then B A, ...) so that machine noise falls on both.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::topo::{Bins, Kind, TopoSpec, Topology};

#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub kind: Kind,
    pub round: usize,
    pub test: String,
    pub pipeline: u32,
    pub clients: u32,
    pub requests: u64,
    pub rps: f64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub const TESTS: [(&str, &[&str]); 2] = [
    (
        "SENTINEL GET-MASTER-ADDR-BY-NAME",
        &["SENTINEL", "get-master-addr-by-name", "mymaster"],
    ),
    ("PING", &["PING"]),
];

/// Parses the data row of redis-benchmark's `--csv` output.
pub fn parse_csv(out: &str) -> Result<[f64; 7]> {
    let row = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with('"') && !l.starts_with("\"test\""))
        .ok_or_else(|| anyhow!("no data row in redis-benchmark output: {out:?}"))?;
    let fields: Vec<&str> = row.split("\",\"").map(|f| f.trim_matches('"')).collect();
    if fields.len() < 8 {
        bail!("redis-benchmark row has {} fields: {row}", fields.len());
    }
    let mut v = [0.0; 7];
    for (i, slot) in v.iter_mut().enumerate() {
        let f = fields.get(i + 1).copied().unwrap_or("");
        *slot = f
            .parse()
            .with_context(|| format!("redis-benchmark field {f:?} in {row}"))?;
    }
    Ok(v)
}

async fn bench_once(
    bins: &Bins,
    port: u16,
    args: &[&str],
    pipeline: u32,
    requests: u64,
) -> Result<[f64; 7]> {
    let mut cmd = tokio::process::Command::new(&bins.redis_benchmark);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-c", "50"])
        .args(["-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string(), "--csv"])
        .args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .map_err(|_| anyhow!("redis-benchmark did not finish within 300 s"))?
        .context("run redis-benchmark")?;
    if !out.status.success() {
        bail!(
            "redis-benchmark failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_csv(&String::from_utf8_lossy(&out.stdout))
}

pub async fn run(
    bins: &Bins,
    kinds: &[Kind],
    rounds: usize,
    requests: u64,
) -> Result<Vec<QueryResult>> {
    let spec = TopoSpec {
        masters: 1,
        replicas: 2,
        daemons: 3,
        quorum: 2,
        down_after_ms: 5000,
        failover_timeout_ms: 60_000,
    };
    let mut topos = Vec::new();
    for &k in kinds {
        let mut t = Topology::start(bins, k, &spec).await?;
        t.wait_ready(&spec, Duration::from_secs(30)).await?;
        topos.push(t);
    }
    let mut out = Vec::new();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..topos.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for (test, args) in TESTS {
            for pipeline in [1u32, 16] {
                for &i in &order {
                    let Some(t) = topos.get(i) else { continue };
                    let port = t.daemons.first().map(|d| d.port).unwrap_or(0);
                    let [rps, avg_ms, _min, p50_ms, p95_ms, p99_ms, max_ms] =
                        bench_once(bins, port, args, pipeline, requests).await?;
                    out.push(QueryResult {
                        kind: t.kind,
                        round,
                        test: test.to_string(),
                        pipeline,
                        clients: 50,
                        requests,
                        rps,
                        avg_ms,
                        p50_ms,
                        p95_ms,
                        p99_ms,
                        max_ms,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_csv;

    #[test]
    fn parses_redis_benchmark_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"PING\",\"153846.16\",\"3.599\",\"0.720\",\"4.559\",\"5.839\",\"5.935\",\"5.967\"\n";
        let v = parse_csv(out).expect("parse");
        assert!((v[0] - 153846.16).abs() < 1e-6);
        assert!((v[6] - 5.967).abs() < 1e-9);
        assert!(parse_csv("garbage").is_err());
    }
}
