//! Scale: one group of 3 daemons monitoring M masters (1 replica each). First the idle CPU and RSS of each
//! daemon, then K masters are SIGKILLed at once and the bench waits (bounded) until every daemon has emitted
//! `+switch-master` for, and answers the new address of, every killed master.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::Serialize;
use tokio::time::Instant;

use crate::footprint::{measure_usage, DaemonUsage};
use crate::resp::{call_once, Conn, V};
use crate::topo::{Bins, Kind, Readiness, TopoSpec, Topology};
use crate::writer::addr_port;

#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    pub kind: Kind,
    pub masters: usize,
    pub down_after_ms: u64,
    pub readiness: Readiness,
    pub window_s: f64,
    pub daemons: Vec<DaemonUsage>,
    pub killed: usize,
    pub cap_ms: u64,
    /// Masters (of the killed ones) for which every daemon emitted +switch-master.
    pub switched_events: usize,
    /// Masters for which every daemon answers a new address.
    pub switched_addr: usize,
    pub all_switch_events_ms: Option<f64>,
    pub all_new_addr_ms: Option<f64>,
    pub outcome: String,
    /// Daemons that exited, with status and log tail.
    pub daemon_exits: Vec<String>,
    /// TILT and failover-abort events seen after the kill.
    pub notable_events: Vec<String>,
}

pub async fn run(
    bins: &Bins,
    kind: Kind,
    masters: usize,
    kill: usize,
    down_after_ms: u64,
    window: Duration,
    cap: Duration,
) -> Result<ScaleResult> {
    let spec = TopoSpec {
        masters,
        replicas: 1,
        daemons: 3,
        quorum: 2,
        down_after_ms,
        failover_timeout_ms: 10_000,
    };
    let mut topo = Topology::start(bins, kind, &spec).await?;
    let readiness = topo
        .wait_ready(&spec, Duration::from_secs(30 + masters as u64 / 2))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (window_s, daemons) = measure_usage(&topo, window).await?;

    let kill = kill.min(topo.groups.len());
    let killed: Vec<(String, u16)> = topo.groups[..kill]
        .iter()
        .map(|g| (g.name.clone(), g.master.port))
        .collect();
    let names: HashSet<String> = killed.iter().map(|k| k.0.clone()).collect();
    let ports = topo.daemon_ports();
    let n = ports.len();

    // Event subscribers: (daemon, master) -> first +switch-master time.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, Instant)>();
    let notable: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let mut subs = Vec::new();
    for (i, &p) in ports.iter().enumerate() {
        // A daemon that already died is reported through `daemon_exits`; the others are still measured.
        let Ok(mut c) = Conn::connect(p, Duration::from_secs(2)).await else {
            continue;
        };
        if c.call(&["PSUBSCRIBE", "*"], Duration::from_secs(2))
            .await
            .is_err()
        {
            continue;
        }
        let tx = tx.clone();
        let notable = notable.clone();
        subs.push(tokio::spawn(async move {
            while let Ok(v) = c.read().await {
                let items = v.items();
                if items.first().and_then(V::text).as_deref() != Some("pmessage") {
                    continue;
                }
                let channel = items.get(2).and_then(V::text).unwrap_or_default();
                let payload = items.get(3).and_then(V::text).unwrap_or_default();
                if channel == "+switch-master" {
                    let name = payload.split(' ').next().unwrap_or("").to_string();
                    if tx.send((i, name, Instant::now())).is_err() {
                        return;
                    }
                } else if channel.contains("tilt") || channel.starts_with("-failover-abort") {
                    // Why a failover did not happen (TILT, aborted elections) is part of the result.
                    if let Ok(mut g) = notable.lock() {
                        if g.len() < 200 {
                            g.push(format!("daemon {} {channel} {payload}", i + 1));
                        }
                    }
                }
            }
        }));
    }
    drop(tx);

    let t0 = Instant::now();
    for g in &topo.groups[..kill] {
        g.master.signal(libc::SIGKILL)?;
    }
    let deadline = t0 + cap;
    let mut ev: HashMap<(usize, String), Instant> = HashMap::new();
    let mut addr: HashMap<(usize, String), Instant> = HashMap::new();
    loop {
        while let Ok((d, name, at)) = rx.try_recv() {
            if names.contains(&name) {
                ev.entry((d, name)).or_insert(at);
            }
        }
        for (d, &p) in ports.iter().enumerate() {
            for (name, old) in &killed {
                if addr.contains_key(&(d, name.clone())) {
                    continue;
                }
                let r = call_once(
                    p,
                    &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name],
                    Duration::from_millis(300),
                )
                .await;
                if let Ok(v) = r {
                    if addr_port(&v).is_some_and(|np| np != *old) {
                        addr.insert((d, name.clone()), Instant::now());
                    }
                }
            }
        }
        if (ev.len() == n * kill && addr.len() == n * kill) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in subs {
        s.abort();
    }
    let daemon_exits = topo.exits();
    let per_master = |m: &HashMap<(usize, String), Instant>| -> (usize, Option<f64>) {
        let mut count = 0;
        let mut last: Option<Instant> = None;
        let mut all = true;
        for (name, _) in &killed {
            let ts: Vec<Instant> = (0..n)
                .filter_map(|d| m.get(&(d, name.clone())).copied())
                .collect();
            if ts.len() == n {
                count += 1;
                let mx = ts.iter().copied().max();
                last = match (last, mx) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            } else {
                all = false;
            }
        }
        let t = last
            .filter(|_| all && kill > 0)
            .map(|t| (t - t0).as_secs_f64() * 1000.0);
        (count, t)
    };
    let (switched_events, all_switch_events_ms) = per_master(&ev);
    let (switched_addr, all_new_addr_ms) = per_master(&addr);
    let capsecs = cap.as_secs_f64();
    let exited = if daemon_exits.is_empty() {
        String::new()
    } else {
        format!("{} daemon(s) exited; ", daemon_exits.len())
    };
    let outcome = exited
        + &if switched_events == kill && switched_addr == kill {
            format!("all {kill} switched")
        } else if switched_events == 0 && switched_addr == 0 {
            format!("no failover within {capsecs:.0} s")
        } else {
            format!(
            "within {capsecs:.0} s: {switched_events}/{kill} switched (events), {switched_addr}/{kill} (addresses)"
        )
        };
    if topo.daemons.is_empty() {
        return Err(anyhow!("no daemons"));
    }
    Ok(ScaleResult {
        kind,
        masters,
        down_after_ms,
        readiness,
        window_s,
        daemons,
        killed: kill,
        cap_ms: cap.as_millis() as u64,
        switched_events,
        switched_addr,
        all_switch_events_ms,
        all_new_addr_ms,
        outcome,
        daemon_exits,
        notable_events: notable.lock().map(|g| g.clone()).unwrap_or_default(),
    })
}
