//! Failover and planned-switchover trials. One trial = a fresh topology (1 master, 2 replicas, 3 daemons),
//! event subscribers on every daemon (`PSUBSCRIBE *`), address pollers (GET-MASTER-ADDR-BY-NAME every 10 ms on
//! every daemon) and the writer; then the trigger (SIGKILL / SIGSTOP of the master, or SENTINEL FAILOVER sent
//! to the first daemon) at t = 0 and a bounded wait. A trial that reaches its cap without a failover is
//! recorded as such, with `None` for what did not happen.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::resp::{call_once, Conn, V};
use crate::topo::{Bins, Kind, Readiness, TopoSpec, Topology};
use crate::writer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Trigger {
    #[serde(rename = "SIGKILL")]
    Kill,
    #[serde(rename = "SIGSTOP")]
    Stop,
    #[serde(rename = "SENTINEL FAILOVER")]
    Failover,
    #[serde(rename = "SENTINEL FAILOVER, coordinated-failover yes")]
    Coordinated,
    #[serde(rename = "SIGKILL, refused-down-after-milliseconds 250")]
    KillRefused,
}

/// raftinel's opt-in fast crash detection, as the bench sets it.
const REFUSED_SET: [&str; 5] = [
    "SENTINEL",
    "SET",
    "mymaster",
    "refused-down-after-milliseconds",
    "250",
];

impl Trigger {
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Kill => "SIGKILL",
            Trigger::Stop => "SIGSTOP",
            Trigger::Failover => "SENTINEL FAILOVER",
            Trigger::Coordinated => "SENTINEL FAILOVER, coordinated-failover yes",
            Trigger::KillRefused => "SIGKILL, refused-down-after-milliseconds 250",
        }
    }
}

/// One event received on a daemon's pub/sub stream.
#[derive(Debug, Clone, Serialize)]
pub struct Ev {
    pub daemon: usize,
    /// Milliseconds since the trigger (negative: before it).
    pub t_ms: f64,
    pub channel: String,
    pub payload: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    pub kind: Kind,
    pub trigger: Trigger,
    pub down_after_ms: u64,
    pub run: usize,
    pub cap_ms: u64,
    pub readiness: Readiness,
    /// Every daemon switched, answers the new address, and a write was acknowledged by the new master.
    pub completed: bool,
    pub outcome: String,
    pub command_reply: Option<String>,
    /// Times the command was sent (retried on NOGOODSLAVE / NOQUORUM), and the time from the first
    /// attempt to the last one (t = 0 is the last attempt).
    pub command_attempts: u32,
    pub command_retry_ms: Option<f64>,
    pub first_sdown_ms: Option<f64>,
    pub first_odown_ms: Option<f64>,
    pub switch_master_each_ms: Vec<Option<f64>>,
    pub switch_master_all_ms: Option<f64>,
    pub new_addr_each_ms: Vec<Option<f64>>,
    pub new_addr_all_ms: Option<f64>,
    pub first_write_new_master_ms: Option<f64>,
    pub last_write_old_master_ms: Option<f64>,
    pub write_pause_ms: Option<f64>,
    pub acked_writes: usize,
    pub failed_write_attempts: u64,
    pub lost_writes: Option<usize>,
    pub old_master_port: u16,
    pub new_master_port: Option<u16>,
    /// Which daemon exited during the trial, its status and the end of its log.
    pub daemon_exit: Option<String>,
    pub events: Vec<Ev>,
}

/// Per daemon: when it first answered a new master address, and that address's port.
type Polled = Arc<Mutex<Vec<Option<(Instant, u16)>>>>;

struct RawEv {
    daemon: usize,
    at: Instant,
    channel: String,
    payload: String,
}

/// Subscribes to `*` on `port` and forwards every message until `stop`. Returns once subscribed.
async fn subscribe(
    daemon: usize,
    port: u16,
    sink: Arc<Mutex<Vec<RawEv>>>,
    switch: Arc<watch::Sender<u64>>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut c = Conn::connect(port, Duration::from_secs(2)).await?;
    let first = c.call(&["PSUBSCRIBE", "*"], Duration::from_secs(2)).await?;
    if first.items().first().and_then(|v| v.text()).as_deref() != Some("psubscribe") {
        return Err(anyhow!(
            "daemon on port {port}: unexpected PSUBSCRIBE reply {first:?}"
        ));
    }
    Ok(tokio::spawn(async move {
        loop {
            let v = tokio::select! {
                _ = stop.cancelled() => return,
                v = c.read() => v,
            };
            let Ok(v) = v else { return };
            let at = Instant::now();
            let items = v.items();
            if items.first().and_then(V::text).as_deref() != Some("pmessage") {
                continue;
            }
            let channel = items.get(2).and_then(V::text).unwrap_or_default();
            let payload = items.get(3).and_then(V::text).unwrap_or_default();
            if channel == "+switch-master" {
                switch.send_modify(|n| *n += 1);
            }
            if let Ok(mut g) = sink.lock() {
                g.push(RawEv {
                    daemon,
                    at,
                    channel,
                    payload,
                });
            }
        }
    }))
}

fn ms_since(t0: Instant, t: Instant) -> f64 {
    if t >= t0 {
        (t - t0).as_secs_f64() * 1000.0
    } else {
        -((t0 - t).as_secs_f64() * 1000.0)
    }
}

pub async fn trial(
    bins: &Bins,
    kind: Kind,
    trigger: Trigger,
    down_after_ms: u64,
    cap: Duration,
    run: usize,
) -> Result<TrialResult> {
    let spec = TopoSpec {
        masters: 1,
        replicas: 2,
        daemons: 3,
        quorum: 2,
        down_after_ms,
        failover_timeout_ms: 10_000,
    };
    let mut topo = Topology::start(bins, kind, &spec).await?;
    let readiness = topo.wait_ready(&spec, Duration::from_secs(30)).await?;
    let name = "mymaster".to_string();
    let ports = topo.daemon_ports();
    let old_port = topo
        .groups
        .first()
        .map(|g| g.master.port)
        .ok_or_else(|| anyhow!("no master"))?;

    let stop = CancellationToken::new();
    let sink = Arc::new(Mutex::new(Vec::new()));
    let (switch_tx, switch_rx) = watch::channel(0u64);
    let switch_tx = Arc::new(switch_tx);
    let mut subs = Vec::new();
    for (i, &p) in ports.iter().enumerate() {
        subs.push(subscribe(i, p, sink.clone(), switch_tx.clone(), stop.clone()).await?);
    }
    let wstop = CancellationToken::new();
    let wtask = tokio::spawn(writer::run(
        ports.clone(),
        name.clone(),
        switch_rx,
        wstop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Address pollers: first time each daemon answers something other than the old master.
    let polled: Polled = Arc::new(Mutex::new(vec![None; ports.len()]));
    let mut pollers = Vec::new();
    for (i, &p) in ports.iter().enumerate() {
        let polled = polled.clone();
        let stop = stop.clone();
        let name = name.clone();
        pollers.push(tokio::spawn(async move {
            let mut conn: Option<Conn> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if conn.is_none() {
                    conn = Conn::connect(p, Duration::from_millis(200)).await.ok();
                }
                let Some(c) = conn.as_mut() else { continue };
                match c
                    .call(
                        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &name],
                        Duration::from_millis(200),
                    )
                    .await
                {
                    Ok(v) => {
                        if let Some(port) = writer::addr_port(&v) {
                            if port != old_port {
                                if let Ok(mut g) = polled.lock() {
                                    if let Some(slot) = g.get_mut(i) {
                                        *slot = Some((Instant::now(), port));
                                    }
                                }
                                return;
                            }
                        }
                    }
                    Err(_) => conn = None,
                }
            }
        }));
    }

    // The trigger.
    let mut command_reply = None;
    let mut command_attempts: u32 = 0;
    let mut command_retry_ms: Option<f64> = None;
    let mut refused = None;
    let mut t0 = Instant::now();
    match trigger {
        Trigger::Kill => topo.groups[0].master.signal(libc::SIGKILL)?,
        Trigger::Stop => topo.groups[0].master.signal(libc::SIGSTOP)?,
        Trigger::KillRefused => {
            // A raftinel option (replicated through its group), sent to
            // every daemon as an operator's script would; redis-sentinel
            // refuses it: nothing to time then.
            for &p in &ports {
                if let Ok(V::Error(e)) = call_once(p, &REFUSED_SET, Duration::from_secs(2)).await {
                    refused = Some(format!("{}: -{e}", REFUSED_SET.join(" ")));
                }
            }
            if refused.is_none() {
                // Every daemon applies the committed option.
                tokio::time::sleep(Duration::from_millis(500)).await;
                t0 = Instant::now();
                topo.groups[0].master.signal(libc::SIGKILL)?;
            }
        }
        Trigger::Failover | Trigger::Coordinated => {
            let args = ["SENTINEL", "FAILOVER", "mymaster"];
            if trigger == Trigger::Failover {
                // raftinel's SENTINEL FAILOVER is coordinated by default:
                // the plain case sets it back to Sentinel's failover first.
                // redis-sentinel refuses the option; its failover is plain.
                let set = ["SENTINEL", "SET", "mymaster", "coordinated-failover", "no"];
                for &p in &ports {
                    let _ = call_once(p, &set, Duration::from_secs(2)).await;
                }
            }
            if trigger == Trigger::Coordinated {
                // raftinel's coordinated mode is a per-master option
                // (replicated through its group); sent to every daemon as
                // an operator's script would. redis-sentinel has no such
                // mode and refuses the option: nothing to time then.
                let set = ["SENTINEL", "SET", "mymaster", "coordinated-failover", "yes"];
                for &p in &ports {
                    if let Ok(V::Error(e)) = call_once(p, &set, Duration::from_secs(2)).await {
                        refused = Some(format!(
                            "SENTINEL SET mymaster coordinated-failover yes: -{e}"
                        ));
                    }
                }
            }
            // NOGOODSLAVE right after startup is what redis-sentinel answers too, and raftinel answers
            // NOQUORUM until its Raft group is formed: like an operator, retry for a while, and record it.
            let first_try = Instant::now();
            let deadline = first_try + Duration::from_secs(15);
            while refused.is_none() {
                t0 = Instant::now();
                command_attempts += 1;
                let first = ports.first().copied().unwrap_or(0);
                let r = call_once(first, &args, Duration::from_secs(2)).await;
                let text = match &r {
                    Ok(V::Error(e)) => format!("-{e}"),
                    Ok(v) => v.text().unwrap_or_else(|| format!("{v:?}")),
                    Err(e) => format!("io error: {e}"),
                };
                command_reply = Some(text.clone());
                let retry = matches!(&r, Ok(V::Error(e))
                    if e.starts_with("NOGOODSLAVE") || e.starts_with("NOQUORUM"));
                command_retry_ms = Some(ms_since(first_try, t0));
                if retry && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                if !matches!(r, Ok(V::Simple(_))) {
                    refused = Some(text);
                }
                break;
            }
        }
    }

    // Bounded wait for: +switch-master on every daemon, new address everywhere, a write on the new master.
    let deadline = t0 + cap;
    let n = ports.len();
    let done = |now_done: &mut bool| {
        let switched: std::collections::HashSet<usize> = sink
            .lock()
            .map(|g| {
                g.iter()
                    .filter(|e| e.channel == "+switch-master" && e.at >= t0)
                    .map(|e| e.daemon)
                    .collect()
            })
            .unwrap_or_default();
        let addrs = polled
            .lock()
            .map(|g| g.iter().all(Option::is_some))
            .unwrap_or(false);
        *now_done = switched.len() == n && addrs;
    };
    let mut daemons_ok = true;
    let mut daemon_exit: Option<String> = None;
    if refused.is_none() {
        loop {
            let mut d = false;
            done(&mut d);
            if d {
                // The writer needs the new address too; give it until the cap.
                let acked_new = {
                    // Peek without stopping the writer: the ack list lives in the task; use the
                    // pollers' port and ask the new master for its list length instead.
                    let port = polled
                        .lock()
                        .ok()
                        .and_then(|g| g.iter().flatten().next().map(|x| x.1));
                    match port {
                        Some(p) => {
                            matches!(
                                call_once(p, &["LLEN", writer::KEY], Duration::from_millis(200))
                                    .await,
                                Ok(V::Integer(_))
                            ) && writer_progressed(p).await
                        }
                        None => false,
                    }
                };
                if acked_new {
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            for (i, dm) in topo.daemons.iter_mut().enumerate() {
                if let Some(status) = dm.exited() {
                    daemons_ok = false;
                    let tail = topo
                        .daemon_logs
                        .get(i)
                        .and_then(|p| std::fs::read_to_string(p).ok())
                        .map(|l| {
                            let lines: Vec<&str> = l.lines().collect();
                            lines[lines.len().saturating_sub(15)..].join("\n")
                        })
                        .unwrap_or_default();
                    daemon_exit = Some(format!(
                        "{} exited ({status}) at {:.0} ms; log tail:\n{tail}",
                        dm.name,
                        ms_since(t0, Instant::now())
                    ));
                }
            }
            if !daemons_ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Let the writer make a few more acknowledged writes on whatever it is connected to.
    tokio::time::sleep(Duration::from_millis(100)).await;
    wstop.cancel();
    let wlog = tokio::time::timeout(Duration::from_secs(5), wtask)
        .await
        .map_err(|_| anyhow!("writer did not stop"))?
        .map_err(|e| anyhow!("writer task: {e}"))?;
    stop.cancel();
    for h in subs.into_iter().chain(pollers) {
        let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
    }

    let raw = std::mem::take(&mut *sink.lock().map_err(|_| anyhow!("poisoned"))?);
    let events: Vec<Ev> = raw
        .iter()
        .map(|e| Ev {
            daemon: e.daemon,
            t_ms: ms_since(t0, e.at),
            channel: e.channel.clone(),
            payload: e.payload.clone(),
        })
        .collect();
    let first_of = |ch: &str| {
        events
            .iter()
            .filter(|e| e.channel == ch && e.t_ms >= 0.0 && e.payload.starts_with("master "))
            .map(|e| e.t_ms)
            .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.min(t))))
    };
    let first_sdown_ms = first_of("+sdown");
    let first_odown_ms = first_of("+odown");
    let switch_master_each_ms: Vec<Option<f64>> = (0..n)
        .map(|d| {
            events
                .iter()
                .find(|e| e.daemon == d && e.channel == "+switch-master" && e.t_ms >= 0.0)
                .map(|e| e.t_ms)
        })
        .collect();
    let all = |v: &[Option<f64>]| -> Option<f64> {
        v.iter()
            .try_fold(0.0f64, |a, x| x.map(|x| a.max(x)))
            .filter(|_| !v.is_empty())
    };
    let switch_master_all_ms = all(&switch_master_each_ms);
    let polled_v = polled.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    let new_addr_each_ms: Vec<Option<f64>> = polled_v
        .iter()
        .map(|x| x.map(|(t, _)| ms_since(t0, t)))
        .collect();
    let new_addr_all_ms = all(&new_addr_each_ms);
    let new_master_port = polled_v.iter().flatten().map(|x| x.1).next();

    let first_new = new_master_port.and_then(|p| {
        wlog.acks
            .iter()
            .find(|a| a.port == p && a.at >= t0)
            .map(|a| a.at)
    });
    let last_old = wlog
        .acks
        .iter()
        .filter(|a| a.port == old_port)
        .map(|a| a.at)
        .next_back();
    let first_write_new_master_ms = first_new.map(|t| ms_since(t0, t));
    let last_write_old_master_ms = last_old.map(|t| ms_since(t0, t));
    let write_pause_ms = match (first_new, last_old) {
        (Some(a), Some(b)) if a > b => Some((a - b).as_secs_f64() * 1000.0),
        _ => None,
    };
    let lost_writes = match (new_master_port, first_new) {
        (Some(p), Some(_)) => writer::stored(p)
            .await
            .map(|set| wlog.acks.iter().filter(|a| !set.contains(&a.seq)).count()),
        _ => None,
    };
    let completed = switch_master_all_ms.is_some()
        && new_addr_all_ms.is_some()
        && first_write_new_master_ms.is_some()
        && daemons_ok;
    let capsecs = cap.as_secs_f64();
    let outcome = if let Some(r) = &refused {
        format!("command refused: {r}")
    } else if !daemons_ok {
        "a daemon exited during the trial (see daemon_exit in the JSON)".to_string()
    } else if completed {
        "failed over".to_string()
    } else if switch_master_each_ms.iter().any(Option::is_some)
        || new_addr_each_ms.iter().any(Option::is_some)
    {
        format!(
            "incomplete within {capsecs:.0} s: +switch-master on {}/{n}, new address on {}/{n}, write on new master: {}",
            switch_master_each_ms.iter().flatten().count(),
            new_addr_each_ms.iter().flatten().count(),
            if first_write_new_master_ms.is_some() { "yes" } else { "no" }
        )
    } else {
        format!("no failover within {capsecs:.0} s")
    };
    Ok(TrialResult {
        kind,
        trigger,
        down_after_ms,
        run,
        cap_ms: cap.as_millis() as u64,
        readiness,
        completed,
        outcome,
        command_reply,
        command_attempts,
        command_retry_ms,
        first_sdown_ms,
        first_odown_ms,
        switch_master_each_ms,
        switch_master_all_ms,
        new_addr_each_ms,
        new_addr_all_ms,
        first_write_new_master_ms,
        last_write_old_master_ms,
        write_pause_ms,
        acked_writes: wlog.acks.len(),
        failed_write_attempts: wlog.failed,
        lost_writes,
        old_master_port: old_port,
        new_master_port,
        daemon_exit,
        events,
    })
}

/// True when the list on `port` grows within 300 ms, i.e. the writer is writing there.
async fn writer_progressed(port: u16) -> bool {
    let len = |v: std::io::Result<V>| match v {
        Ok(V::Integer(n)) => Some(n),
        _ => None,
    };
    let a = len(call_once(port, &["LLEN", writer::KEY], Duration::from_millis(200)).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        let b = len(call_once(port, &["LLEN", writer::KEY], Duration::from_millis(200)).await);
        if let (Some(a), Some(b)) = (a, b) {
            if b > a {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
