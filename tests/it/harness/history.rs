//! What a partition test records and how it is judged.
//!
//! - [`Writers`]: application writers in the client namespace, each a real
//!   Sentinel client (the `redis` crate's `sentinel` module) that asks the
//!   daemons for the master, `RPUSH`es increasing numbers to its own key, and
//!   records every acknowledged write with its time and the address of the
//!   node that acknowledged it. Like an application that follows
//!   `+switch-master`, a writer asks the daemons again every
//!   `resolve_every` and moves when they name another node; after any error
//!   it asks again. Writers list the daemons in different orders, as
//!   different application instances would.
//! - [`Observer`]: one thread per pod, inside the pod's namespace (so cuts do
//!   not blind it), sampling the pod's redis every 50 ms: role, master,
//!   replication ids, key count. It records changes only.
//! - [`judge`]: acknowledged writes missing from the final master (and when
//!   they were acknowledged), the time during which two nodes acknowledged
//!   writes, writes acknowledged by an older master after a newer one was
//!   promoted, nodes that served as master while empty after writes had been
//!   acknowledged (an empty node promoted, or a master back empty), and the
//!   promotions seen.
//!
//! Every time is in milliseconds since the `Net`'s `t0`.

use super::netns::{conn_in, enter, Net};
use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bound of one call of a writer (lookup, connect, write).
const CALL: Duration = Duration::from_millis(1000);
/// Bound of one reply from a redis node to a writer.
const REPLY: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------- writers

#[derive(Clone, Debug)]
pub struct Ack {
    pub seq: u64,
    pub at: Instant,
    /// `ip:port` of the node that acknowledged it.
    pub node: String,
}

#[derive(Default, Debug)]
pub struct WriterLog {
    pub key: String,
    pub acks: Vec<Ack>,
    /// Writes that got an error or no reply (not acknowledged; may or may
    /// not have been applied).
    pub failed: u64,
    /// Lookups that named no master.
    pub lookups_failed: u64,
}

/// One writer: its key and the daemons (`ip`, port) in the order it asks them.
#[derive(Clone, Debug)]
pub struct WriterSpec {
    pub key: String,
    pub sentinels: Vec<(String, u16)>,
    pub resolve_every: Duration,
}

pub struct Writers {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<WriterLog>>,
}

impl Writers {
    /// Start `specs` in the client namespace of `net`.
    pub fn start(net: &Net, specs: Vec<WriterSpec>) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = specs
            .into_iter()
            .map(|spec| {
                let ns = net.client.name.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    enter(&ns).expect("enter the client namespace");
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("writer runtime");
                    rt.block_on(write_loop(spec, stop))
                })
            })
            .collect();
        Writers { stop, handles }
    }

    pub fn finish(mut self) -> Vec<WriterLog> {
        self.stop.store(true, Ordering::SeqCst);
        self.handles
            .drain(..)
            .map(|h| h.join().expect("writer thread"))
            .collect()
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn sentinel_client(spec: &WriterSpec, rotate: usize) -> Option<redis::sentinel::SentinelClient> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let n = spec.sentinels.len();
    let addrs = (0..n).map(|i| {
        let (ip, port) = &spec.sentinels[(i + rotate) % n];
        redis::ConnectionAddr::Tcp(ip.clone(), *port)
    });
    SentinelClientBuilder::new(addrs, MASTER, SentinelServerType::Master)
        .and_then(|b| b.build())
        .ok()
}

fn node_of(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(ip, port) => format!("{ip}:{port}"),
        other => format!("{other:?}"),
    }
}

async fn write_loop(spec: WriterSpec, stop: Arc<AtomicBool>) -> WriterLog {
    let mut log = WriterLog {
        key: spec.key.clone(),
        ..WriterLog::default()
    };
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REPLY))
        .set_response_timeout(Some(REPLY));
    // A lookup that hangs (a daemon whose packets are dropped) is cut short
    // and the daemons are asked again in a rotated order, by a new client:
    // the crate keeps its connections to the daemons.
    let mut rotate = 0;
    let mut sc = sentinel_client(&spec, rotate).expect("sentinel client");
    let mut seq = 0u64;
    let mut next: Option<redis::Client> = None;
    while !stop.load(Ordering::SeqCst) {
        let client = match next.take() {
            Some(c) => c,
            None => match tokio::time::timeout(CALL, sc.async_get_client()).await {
                Ok(Ok(c)) => c,
                other => {
                    log.lookups_failed += 1;
                    if other.is_err() {
                        rotate += 1;
                        sc = sentinel_client(&spec, rotate).expect("sentinel client");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let node = node_of(&client);
        let mut conn = match tokio::time::timeout(
            CALL,
            client.get_multiplexed_async_connection_with_config(&cfg),
        )
        .await
        {
            Ok(Ok(c)) => c,
            _ => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let mut asked = tokio::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if asked.elapsed() >= spec.resolve_every {
                asked = tokio::time::Instant::now();
                if let Ok(Ok(c)) = tokio::time::timeout(CALL, sc.async_get_client()).await {
                    if node_of(&c) != node {
                        next = Some(c);
                        break;
                    }
                }
            }
            seq += 1;
            let r = tokio::time::timeout(
                CALL,
                redis::cmd("RPUSH")
                    .arg(&spec.key)
                    .arg(seq)
                    .query_async::<i64>(&mut conn),
            )
            .await;
            match r {
                Ok(Ok(_)) => log.acks.push(Ack {
                    seq,
                    at: Instant::now(),
                    node: node.clone(),
                }),
                _ => {
                    log.failed += 1;
                    break;
                }
            }
        }
    }
    log
}

// ---------------------------------------------------------------- observer

/// What one sample of a node showed.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeState {
    /// `master`, `slave`, `down` (refused) or `silent` (no answer).
    pub role: String,
    pub master_host: String,
    pub link_up: bool,
    pub replid: String,
    pub replid2: String,
    pub keys: i64,
}

impl NodeState {
    fn down(role: &str) -> NodeState {
        NodeState {
            role: role.into(),
            master_host: String::new(),
            link_up: false,
            replid: String::new(),
            replid2: String::new(),
            keys: 0,
        }
    }

    /// Equal for the record: the key count matters only as empty or not.
    fn same(&self, o: &NodeState) -> bool {
        self.role == o.role
            && self.master_host == o.master_host
            && self.link_up == o.link_up
            && self.replid == o.replid
            && self.replid2 == o.replid2
            && (self.keys == 0) == (o.keys == 0)
    }
}

#[derive(Clone, Debug)]
pub struct Obs {
    pub at: Instant,
    /// `ip:port` of the node.
    pub node: String,
    pub state: NodeState,
}

pub struct Observer {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Obs>>>,
    handles: Vec<JoinHandle<()>>,
}

fn sample(c: &mut Conn) -> Option<NodeState> {
    let info = match c.try_cmd(&["INFO", "replication"], Duration::from_secs(1)) {
        Reply::Frame(r) => r.as_str()?,
        _ => return None,
    };
    let keys = match c.try_cmd(&["DBSIZE"], Duration::from_secs(1)) {
        Reply::Frame(r) => r.as_int()?,
        _ => return None,
    };
    let f = |k: &str| info_field(&info, k).unwrap_or_default();
    Some(NodeState {
        role: f("role"),
        master_host: f("master_host"),
        link_up: f("master_link_status") == "up",
        replid: f("master_replid"),
        replid2: f("master_replid2"),
        keys,
    })
}

impl Observer {
    /// Watch the redis on `port` in every pod of `net`.
    pub fn start(net: &Net, port: u16) -> Observer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handles = net
            .pods
            .iter()
            .map(|p| {
                let (ns, ip) = (p.ns.name.clone(), p.ip.clone());
                let (stop, log) = (stop.clone(), log.clone());
                std::thread::spawn(move || {
                    let node = format!("{ip}:{port}");
                    let mut conn: Option<Conn> = None;
                    let mut last: Option<NodeState> = None;
                    while !stop.load(Ordering::SeqCst) {
                        if conn.is_none() {
                            conn = conn_in(&ns, &ip, port).ok();
                        }
                        let state = match conn.as_mut() {
                            None => NodeState::down("down"),
                            Some(c) => match sample(c) {
                                Some(s) => s,
                                None => {
                                    conn = None;
                                    NodeState::down("silent")
                                }
                            },
                        };
                        if last.as_ref().is_none_or(|l| !l.same(&state)) {
                            log.lock().unwrap().push(Obs {
                                at: Instant::now(),
                                node: node.clone(),
                                state: state.clone(),
                            });
                            last = Some(state);
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })
            })
            .collect();
        Observer { stop, log, handles }
    }

    pub fn finish(mut self) -> Vec<Obs> {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        let mut v = self.log.lock().unwrap().clone();
        v.sort_by_key(|o| o.at);
        v
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------- checker

/// The verdict on one run.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub acked: usize,
    pub failed: u64,
    /// Acknowledged writes missing from the final master: (ack time ms, node).
    pub lost: Vec<(u64, String)>,
    /// Milliseconds during which two nodes acknowledged writes.
    pub dual_ack_ms: u64,
    /// Writes acknowledged by a node after another node had been promoted
    /// (replica to master) later than it: (ack time ms, node).
    pub stale_acks: Vec<(u64, String)>,
    /// Replica-to-master transitions seen: (ms, node).
    pub promotions: Vec<(u64, String)>,
    /// Nodes seen as master while empty after writes had been
    /// acknowledged: (from ms, until ms, node); `until` = `from` when it
    /// was still so at the end.
    pub empty_masters: Vec<(u64, u64, String)>,
    /// Replicas promoted while their last sample showed no keys, after
    /// writes had been acknowledged: (ms, node). Writers fill such a node
    /// within a sample, so this catches what `empty_masters` can miss.
    pub empty_promotions: Vec<(u64, String)>,
    /// The master every daemon agreed on at the end, or why there was none.
    pub final_master: String,
    /// `+tilt` lines in the daemons' logs (a starved redis-sentinel stops
    /// acting for 30 s).
    pub tilts: usize,
    /// `+fence` lines in the daemons' logs (writes paused on a master).
    pub fences: usize,
    /// When the fault began (ms on the run's clock), for figures relative
    /// to it.
    pub nemesis_ms: u64,
    /// When a pod was cut off from the others while the client still
    /// reached pods (isolations, partitions), ms on the run's clock: the
    /// starts of the fence's bound.
    pub cuts: Vec<u64>,
    /// When a node's redis was killed (ms on the run's clock, node): what
    /// it acknowledged in the moments before may not have left it.
    pub kills: Vec<(u64, String)>,
}

fn ms(net: &Net, at: Instant) -> u64 {
    net.ms(at)
}

/// Judge a run: `final_master` is the node every daemon named once healed,
/// `present` the values each writer's key holds there.
pub fn judge(
    net: &Net,
    writers: &[WriterLog],
    obs: &[Obs],
    final_master: &str,
    present: &BTreeMap<String, BTreeSet<u64>>,
) -> Outcome {
    let mut out = Outcome {
        final_master: final_master.into(),
        ..Outcome::default()
    };
    let mut acks: Vec<&Ack> = writers.iter().flat_map(|w| w.acks.iter()).collect();
    acks.sort_by_key(|a| a.at);
    out.acked = acks.len();
    out.failed = writers.iter().map(|w| w.failed).sum();
    for w in writers {
        let have = present.get(&w.key);
        for a in &w.acks {
            if !have.is_some_and(|h| h.contains(&a.seq)) {
                out.lost.push((ms(net, a.at), a.node.clone()));
            }
        }
    }
    out.lost.sort();

    // Promotions (replica to master), and the initial master.
    let mut role: BTreeMap<&str, &str> = BTreeMap::new();
    let mut promoted_at: Vec<(Instant, String)> = Vec::new();
    let first_ack = acks.first().map(|a| a.at);
    let mut empty_open: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // A node's last answered role, and whether it was down (refused
    // connections: restarted) since; a slow answer changes neither.
    let mut restarted: BTreeSet<&str> = BTreeSet::new();
    // A node's key count in its last answered sample.
    let mut last_keys: BTreeMap<&str, i64> = BTreeMap::new();
    for o in obs {
        let is_master = o.state.role == "master";
        // An empty master lasts from the sample that showed it to the next
        // sample of that node that differs (states are recorded on change).
        let empty_master = is_master && o.state.keys == 0 && first_ack.is_some_and(|f| f < o.at);
        match (empty_master, empty_open.get(&o.node)) {
            (true, None) => {
                empty_open.insert(o.node.clone(), (ms(net, o.at), ms(net, o.at)));
            }
            (false, Some(_)) => {
                let (a, _) = empty_open.remove(&o.node).unwrap();
                out.empty_masters.push((a, ms(net, o.at), o.node.clone()));
            }
            _ => {}
        }
        let before = match o.state.role.as_str() {
            "silent" => continue,
            "down" => {
                restarted.insert(&o.node);
                continue;
            }
            r => role.insert(&o.node, r),
        };
        let keys_before = last_keys.insert(&o.node, o.state.keys);
        let was_down = restarted.remove(o.node.as_str());
        if is_master && (before != Some("master") || was_down) {
            // A promotion: the initial master, or a replica made master
            // without a restart in between.
            let fresh = before.is_none() || (before == Some("slave") && !was_down);
            if fresh {
                promoted_at.push((o.at, o.node.clone()));
                if before.is_some() {
                    out.promotions.push((ms(net, o.at), o.node.clone()));
                    if keys_before == Some(0) && first_ack.is_some_and(|f| f < o.at) {
                        out.empty_promotions.push((ms(net, o.at), o.node.clone()));
                    }
                }
            }
        }
    }
    for (node, (a, b)) in empty_open {
        out.empty_masters.push((a, b, node));
    }

    // Stale acknowledgements: the acknowledging node is not the most
    // recently promoted master at that time. The observer sees a promotion
    // up to a sample late, so a node's own promotion counts from `LAG`
    // before it was seen.
    const LAG: Duration = Duration::from_secs(1);
    for a in &acks {
        let mine = promoted_at
            .iter()
            .filter(|(t, n)| *n == a.node && *t <= a.at + LAG)
            .map(|(t, _)| *t)
            .max();
        let newer = promoted_at
            .iter()
            .any(|(t, n)| *n != a.node && *t <= a.at && mine.is_none_or(|m| *t > m));
        if newer {
            out.stale_acks.push((ms(net, a.at), a.node.clone()));
        }
    }

    // Time during which two nodes acknowledged writes: per node, runs of
    // acks with gaps under 250 ms; the time covered by runs of two nodes.
    let gap = Duration::from_millis(250);
    let mut runs: Vec<(Instant, Instant, &str)> = Vec::new();
    let mut by_node: BTreeMap<&str, Vec<Instant>> = BTreeMap::new();
    for a in &acks {
        by_node.entry(&a.node).or_default().push(a.at);
    }
    for (node, times) in &by_node {
        let mut start = times[0];
        let mut end = times[0];
        for &t in &times[1..] {
            if t.duration_since(end) > gap {
                runs.push((start, end, node));
                start = t;
            }
            end = t;
        }
        runs.push((start, end, node));
    }
    let mut edges: Vec<(Instant, i32, &str)> = Vec::new();
    for (a, b, n) in &runs {
        edges.push((*a, 1, n));
        edges.push((*b, -1, n));
    }
    edges.sort_by_key(|e| (e.0, -e.1));
    let mut active: BTreeMap<&str, i32> = BTreeMap::new();
    let mut dual = Duration::ZERO;
    let mut prev: Option<Instant> = None;
    for (t, d, n) in edges {
        if let Some(p) = prev {
            if active.values().filter(|&&c| c > 0).count() >= 2 {
                dual += t.duration_since(p);
            }
        }
        *active.entry(n).or_default() += d;
        prev = Some(t);
    }
    out.dual_ack_ms = dual.as_millis() as u64;
    out
}

/// `[a..b ms]` of a sorted list of times, with a count.
fn span(v: &[(u64, String)]) -> String {
    match (v.first(), v.last()) {
        (Some(a), Some(b)) => {
            let nodes: BTreeSet<&str> = v.iter().map(|(_, n)| n.as_str()).collect();
            format!(
                "{} (acknowledged {}..{} ms by {})",
                v.len(),
                a.0,
                b.0,
                nodes.into_iter().collect::<Vec<_>>().join(",")
            )
        }
        _ => "0".into(),
    }
}

impl Outcome {
    /// The figures of one run on one line, times relative to the start of
    /// the fault: the first promotion, until when writes were acknowledged
    /// after a newer promotion, how long empty nodes served as masters.
    pub fn line(&self) -> String {
        let rel = |t: u64| t as i64 - self.nemesis_ms as i64;
        let promotions: Vec<String> = self
            .promotions
            .iter()
            .map(|(t, n)| format!("{n}@{}", rel(*t)))
            .collect();
        let stale = match (self.stale_acks.first(), self.stale_acks.last()) {
            (Some(a), Some(b)) => {
                format!("{} ({}..{} ms)", self.stale_acks.len(), rel(a.0), rel(b.0))
            }
            _ => "0".into(),
        };
        let lost = match (self.lost.first(), self.lost.last()) {
            (Some(a), Some(b)) => format!("{} ({}..{} ms)", self.lost.len(), rel(a.0), rel(b.0)),
            _ => "0".into(),
        };
        let empty: Vec<String> = self
            .empty_masters
            .iter()
            .map(|(a, b, n)| format!("{n}@{} for {} ms", rel(*a), b - a))
            .chain(
                self.empty_promotions
                    .iter()
                    .map(|(t, n)| format!("{n} promoted empty @{}", rel(*t))),
            )
            .collect();
        format!(
            "acked {} lost {lost} dual {} ms stale {stale} promotions [{}] empty-masters [{}] tilt {} fences {} final {}",
            self.acked,
            self.dual_ack_ms,
            promotions.join(" "),
            empty.join(" "),
            self.tilts,
            self.fences,
            self.final_master
        )
    }

    /// One paragraph for the test output and the benchmark notes.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "acknowledged {}, failed {}, lost {}",
            self.acked,
            self.failed,
            span(&self.lost)
        );
        let _ = writeln!(
            s,
            "two nodes acknowledging: {} ms; acknowledged by an older master after a newer promotion: {}",
            self.dual_ack_ms,
            span(&self.stale_acks)
        );
        let _ = writeln!(s, "promotions: {:?}", self.promotions);
        let _ = writeln!(
            s,
            "empty masters (first ms, last ms, node): {:?}; empty replicas promoted: {:?}",
            self.empty_masters, self.empty_promotions
        );
        let _ = write!(
            s,
            "final master: {}; daemons in TILT: {}; +fence lines: {}",
            self.final_master, self.tilts, self.fences
        );
        s
    }
}
