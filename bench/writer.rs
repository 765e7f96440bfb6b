//! The Sentinel-aware writer used for lost-write accounting and write-pause measurement. It behaves like a
//! typical client: ask the daemons for the master (GET-MASTER-ADDR-BY-NAME, first daemon that answers), open a
//! plain connection with the `redis` crate, `RPUSH` increasing sequence numbers, and re-resolve on any error
//! or when a `+switch-master` arrives. Every acknowledged write is recorded with the port that acknowledged it.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::resp::{call_once, V};

pub const KEY: &str = "raftinel-bench:writes";
const T_IO: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ack {
    pub seq: u64,
    pub port: u16,
    #[serde(skip)]
    pub at: Instant,
}

#[derive(Debug, Default)]
pub struct WriterLog {
    pub acks: Vec<Ack>,
    pub failed: u64,
    pub resolves: u64,
}

/// Asks each daemon in turn for the master address; the first answer wins.
pub async fn resolve(daemons: &[u16], name: &str) -> Option<u16> {
    for &p in daemons {
        if let Ok(v) = call_once(p, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name], T_IO).await {
            if let Some(port) = addr_port(&v) {
                return Some(port);
            }
        }
    }
    None
}

/// Port of a GET-MASTER-ADDR-BY-NAME reply.
pub fn addr_port(v: &V) -> Option<u16> {
    v.items()
        .get(1)
        .and_then(|p| p.text())
        .and_then(|p| p.parse().ok())
}

/// Runs until `stop` is cancelled; `switch` changes on every +switch-master seen by the event subscribers.
pub async fn run(
    daemons: Vec<u16>,
    name: String,
    mut switch: watch::Receiver<u64>,
    stop: CancellationToken,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut seq: u64 = 0;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(T_IO))
        .set_response_timeout(Some(T_IO));
    'outer: while !stop.is_cancelled() {
        log.resolves += 1;
        switch.borrow_and_update();
        let Some(port) = resolve(&daemons, &name).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let client = match redis::Client::open(format!("redis://127.0.0.1:{port}/")) {
            Ok(c) => c,
            Err(_) => break,
        };
        let con = tokio::select! {
            _ = stop.cancelled() => break,
            c = client.get_multiplexed_async_connection_with_config(&cfg) => c,
        };
        let mut con = match con {
            Ok(c) => c,
            Err(_) => {
                log.failed += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        loop {
            seq += 1;
            let cmd = redis::cmd("RPUSH").arg(KEY).arg(seq).clone();
            let r = tokio::select! {
                _ = stop.cancelled() => break 'outer,
                c = switch.changed() => match c {
                    Ok(()) => continue 'outer,
                    Err(_) => break 'outer,
                },
                r = cmd.query_async::<i64>(&mut con) => r,
            };
            match r {
                Ok(_) => log.acks.push(Ack {
                    seq,
                    port,
                    at: Instant::now(),
                }),
                Err(_) => {
                    log.failed += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue 'outer;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    log
}

/// Sequence numbers stored on the node at `port` (LRANGE of the list), bounded.
pub async fn stored(port: u16) -> Option<std::collections::HashSet<u64>> {
    let v = call_once(port, &["LRANGE", KEY, "0", "-1"], Duration::from_secs(5))
        .await
        .ok()?;
    Some(
        v.items()
            .iter()
            .filter_map(|x| x.text().and_then(|t| t.parse().ok()))
            .collect(),
    )
}
