//! Data safety under partitions, crashes and cold starts, with real
//! processes in network namespaces (`harness::netns`): three pods, each a
//! redis-server (`pod-0` the first master) and a daemon — raftinel, or
//! redis-sentinel 7.0.15 for comparison — with down-after 1000 ms, quorum 2,
//! failover-timeout 10 s; two writers in the client namespace, Sentinel
//! clients asking the daemons in opposite orders; an observer in every pod;
//! and the checker of `harness::history` (writes lost, time with two nodes
//! acknowledging, writes acknowledged by an older master after a newer
//! promotion, empty masters, final convergence).
//!
//! The scenarios assert what a failover daemon must guarantee: no
//! acknowledged write lost (but those a node acknowledged in the last
//! `IN_FLIGHT_MS` before it was killed: replication is asynchronous), no write acknowledged by an old master after a
//! new one is promoted, no empty node serving as master once writes were
//! acknowledged (an empty node back as master is demoted within a second and
//! takes no write), no empty replica promoted, every daemon and node agreeing
//! at the end. When the master's pod is cut off with its clients, the writes
//! it acknowledged in the moments before its fence are lost
//! (`assert_fenced`): none after the promotion.
//!
//! Runs:
//! - CI: the harness's self-checks and every scenario (about 5 minutes on 2
//!   cores).
//! - Every scenario, both daemons, N runs, one table:
//!   `RAFTINEL_NETSAFE_RUNS=3 cargo test --release --test it netsafe::measure -- --ignored --nocapture`
//! - A randomized schedule of nemeses (seeded, at most an hour):
//!   `RAFTINEL_NEMESIS_SEED=7 RAFTINEL_NEMESIS_SECS=600 cargo test --release --test it netsafe::random_schedule -- --ignored --nocapture`
//!   (`RAFTINEL_NETSAFE_KIND=raftinel|sentinel` runs one daemon only).
//!
//! Needs root (namespaces, iptables): elsewhere a skip line, under CI a failure.

use crate::harness::history::*;
use crate::harness::netns::*;
use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::time::{Duration, Instant};

pub const REDIS_PORT: u16 = 6379;
pub const DAEMON_PORT: u16 = 26379;
pub const DOWN_AFTER: u64 = 1000;
const HOSTS: [&str; 3] = ["pod-0", "pod-1", "pod-2"];
/// Bound for forming, and for converging once every fault is healed.
const SETTLE: Duration = Duration::from_secs(60);

fn sleep(d: Duration) {
    std::thread::sleep(d);
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---------------------------------------------------------------- the cluster

/// How the redis-servers are configured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Redis {
    /// AOF with fsync at every write, so a restart "with its data" holds
    /// every write it acknowledged; otherwise no persistence at all.
    pub aof: bool,
    /// `min-replicas-to-write 1` and `min-replicas-max-lag 1`: a master
    /// that has not heard from any replica for over a second refuses writes.
    pub min_replicas: bool,
}

pub const VOLATILE: Redis = Redis {
    aof: false,
    min_replicas: false,
};
pub const AOF: Redis = Redis {
    aof: true,
    min_replicas: false,
};
pub const VOLATILE_MIN_REPLICAS: Redis = Redis {
    aof: false,
    min_replicas: true,
};

/// Three pods of a redis-server and a daemon.
pub struct Cluster {
    pub net: Net,
    pub kind: Kind,
    pub persist: Redis,
}

impl Cluster {
    pub fn new(kind: Kind, persist: Redis) -> Option<Cluster> {
        let net = Net::new(&HOSTS)?;
        let mut c = Cluster { net, kind, persist };
        for i in 0..HOSTS.len() {
            let p = &c.net.pods[i];
            fs::create_dir_all(p.path("redis")).unwrap();
            fs::create_dir_all(p.path("daemon")).unwrap();
            c.reset_redis_conf(i);
            let daemon_conf = c.daemon_conf(i);
            fs::write(c.net.pods[i].path("daemon/sentinel.conf"), daemon_conf).unwrap();
            let redis_argv = vec![
                OsString::from("redis-server"),
                c.net.pods[i].path("redis/redis.conf").into(),
            ];
            let bin = match kind {
                Kind::Raftinel => raftinel_bin(),
                Kind::Oracle => which("redis-sentinel").expect("redis-sentinel on PATH"),
            };
            let daemon_argv = vec![
                bin.into_os_string(),
                c.net.pods[i].path("daemon/sentinel.conf").into(),
            ];
            let pod = &mut c.net.pods[i];
            pod.spawn("redis", redis_argv, Vec::new());
            pod.wait_pong(REDIS_PORT, "redis");
            pod.spawn(
                "daemon",
                daemon_argv,
                vec![("RUST_BACKTRACE".into(), "1".into())],
            );
            pod.wait_pong(DAEMON_PORT, "daemon");
        }
        c.wait_formed();
        Some(c)
    }

    pub fn ip(&self, i: usize) -> String {
        self.net.pods[i].ip.clone()
    }

    pub fn node(&self, i: usize) -> String {
        format!("{}:{REDIS_PORT}", self.ip(i))
    }

    /// The redis.conf of a fresh pod: `pod-0` master, the others its replicas.
    pub fn reset_redis_conf(&self, i: usize) {
        let p = &self.net.pods[i];
        let mut s = format!(
            "port {REDIS_PORT}\nbind {}\nprotected-mode no\ndaemonize no\ndir {}\nsave \"\"\n",
            p.ip,
            p.path("redis").display()
        );
        if self.persist.aof {
            s += "appendonly yes\nappendfsync always\n";
        } else {
            s += "appendonly no\n";
        }
        if self.persist.min_replicas {
            s += "min-replicas-to-write 1\nmin-replicas-max-lag 1\n";
        }
        if i != 0 {
            s += &format!("replicaof {} {REDIS_PORT}\n", self.ip(0));
        }
        fs::write(p.path("redis/redis.conf"), s).unwrap();
    }

    fn daemon_conf(&self, i: usize) -> String {
        let p = &self.net.pods[i];
        format!(
            "port {DAEMON_PORT}\nbind {}\ndaemonize no\ndir \"{}\"\n\
             sentinel monitor {MASTER} {} {REDIS_PORT} 2\n\
             sentinel down-after-milliseconds {MASTER} {DOWN_AFTER}\n\
             sentinel failover-timeout {MASTER} 10000\n",
            p.ip,
            p.path("daemon").display(),
            self.ip(0)
        )
    }

    /// Remove a pod's redis data (a new volume): files gone, redis.conf as
    /// a fresh pod gets it.
    pub fn wipe_redis(&self, i: usize) {
        let dir = self.net.pods[i].path("redis");
        for e in fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                let _ = fs::remove_dir_all(&p);
            } else {
                let _ = fs::remove_file(&p);
            }
        }
        self.reset_redis_conf(i);
        self.net
            .note(&format!("wiped the redis data of {}", HOSTS[i]));
    }

    pub fn start(&mut self, i: usize, what: &str) {
        let port = if what == "redis" {
            REDIS_PORT
        } else {
            DAEMON_PORT
        };
        self.net.pods[i].start(what);
        self.net.pods[i].wait_pong(port, what);
        self.net.note(&format!("started {what} of {}", HOSTS[i]));
    }

    pub fn kill(&mut self, i: usize, what: &str) {
        self.net.pods[i].kill(what);
        self.net.note(&format!("killed {what} of {}", HOSTS[i]));
    }

    pub fn stop(&mut self, i: usize, what: &str) {
        self.net.pods[i].stop(what);
        self.net.note(&format!("stopped {what} of {}", HOSTS[i]));
    }

    /// A pod's redis, then its daemon, started again.
    pub fn start_pod(&mut self, i: usize) {
        self.start(i, "redis");
        self.start(i, "daemon");
    }

    /// A pod's redis and daemon SIGKILLed.
    pub fn kill_pod(&mut self, i: usize) {
        self.kill(i, "redis");
        self.kill(i, "daemon");
    }

    pub fn signal(&mut self, i: usize, what: &str, sig: i32, name: &str) {
        self.net.pods[i].signal(what, sig);
        self.net.note(&format!("{name} {what} of {}", HOSTS[i]));
    }

    /// A command to a pod's daemon or redis from inside the pod.
    pub fn ask(&self, i: usize, port: u16, args: &[&str]) -> Result<Resp, String> {
        let mut c = self.net.pods[i].conn(port).map_err(|e| e.to_string())?;
        match c.try_cmd(args, Duration::from_secs(2)) {
            Reply::Frame(r) => Ok(r),
            other => Err(other.describe()),
        }
    }

    /// What daemon `i` names as master, `ip:port`.
    pub fn daemon_master(&self, i: usize) -> Result<String, String> {
        let r = self.ask(
            i,
            DAEMON_PORT,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER],
        )?;
        match r.items() {
            Some([ip, port]) => Ok(format!(
                "{}:{}",
                ip.as_str().unwrap_or_default(),
                port.as_str().unwrap_or_default()
            )),
            _ => Err(r.pretty()),
        }
    }

    fn wait_formed(&self) {
        wait_for(
            SETTLE,
            "the daemons know each other and both replicas, synced",
            || {
                // A replica still waiting for its first sync (Redis delays
                // it by repl-diskless-sync-delay, 5 s) holds nothing: a
                // master lost then has no replica to save it.
                for (i, host) in HOSTS.iter().enumerate().skip(1) {
                    let info = self.ask(i, REDIS_PORT, &["INFO", "replication"])?;
                    let info = info.as_str().unwrap_or_default();
                    let link = info_field(&info, "master_link_status").unwrap_or_default();
                    if link != "up" {
                        return Err(format!("{host} link {link}"));
                    }
                }
                for i in 0..HOSTS.len() {
                    let m = self.ask(i, DAEMON_PORT, &["SENTINEL", "MASTER", MASTER])?;
                    let (peers, replicas) = (m.field("num-other-sentinels"), m.field("num-slaves"));
                    if peers.as_deref() != Some("2") || replicas.as_deref() != Some("2") {
                        return Err(format!("daemon {i}: peers {peers:?} replicas {replicas:?}"));
                    }
                    if self.kind == Kind::Raftinel {
                        let info = self.ask(i, DAEMON_PORT, &["INFO", "raft"])?;
                        let text = info.as_str().unwrap_or_default();
                        let voters = info_field(&text, "raft_voters");
                        let leader = info_field(&text, "raft_leader_id").unwrap_or_default();
                        if voters.as_deref() != Some("3") || leader.is_empty() {
                            return Err(format!("daemon {i}: {text}"));
                        }
                    }
                }
                Ok(())
            },
        );
        self.net.note("the daemons formed");
    }

    /// Every daemon names one master, which says it is master, and every
    /// other node replicates it with its link up. The master, or why not.
    pub fn converged(&self) -> Result<String, String> {
        let mut named = BTreeSet::new();
        for i in 0..HOSTS.len() {
            named.insert(self.daemon_master(i)?);
        }
        if named.len() != 1 {
            return Err(format!("daemons name {named:?}"));
        }
        let master = named.into_iter().next().unwrap();
        for i in 0..HOSTS.len() {
            let info = self.ask(i, REDIS_PORT, &["INFO", "replication"])?;
            let info = info.as_str().unwrap_or_default();
            let role = info_field(&info, "role").unwrap_or_default();
            if self.node(i) == master {
                if role != "master" {
                    return Err(format!("{master} is named but is {role}"));
                }
            } else {
                let host = info_field(&info, "master_host").unwrap_or_default();
                let link = info_field(&info, "master_link_status").unwrap_or_default();
                if role != "slave" || format!("{host}:{REDIS_PORT}") != master || link != "up" {
                    return Err(format!(
                        "{} is {role} of {host} (link {link}), daemons name {master}",
                        self.node(i)
                    ));
                }
            }
        }
        Ok(master)
    }

    /// The values of each key on node `master`.
    fn read_keys(&self, master: &str, keys: &[String]) -> BTreeMap<String, BTreeSet<u64>> {
        let i = (0..HOSTS.len())
            .find(|&i| self.node(i) == master)
            .expect("the master is a pod");
        let mut c = self.net.pods[i]
            .conn(REDIS_PORT)
            .expect("connect to the master");
        keys.iter()
            .map(|k| {
                let r = c.cmd(&["LRANGE", k, "0", "-1"]);
                let vals = r
                    .items()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|v| v.as_str()?.parse().ok())
                    .collect();
                (k.clone(), vals)
            })
            .collect()
    }
}

// ---------------------------------------------------------------- a run

/// What a scenario does to the cluster while the writers run; everything is
/// healed and every process started again afterwards.
pub type Nemesis = fn(&mut Cluster);

/// Run `nemesis` on a fresh cluster of `kind` with writers and observer,
/// heal, wait for convergence, judge. `None` when namespaces are not
/// available here.
pub fn run(kind: Kind, persist: Redis, nemesis: Nemesis) -> Option<Outcome> {
    let mut c = Cluster::new(kind, persist)?;
    let observer = Observer::start(&c.net, REDIS_PORT);
    let daemons: Vec<(String, u16)> = (0..HOSTS.len()).map(|i| (c.ip(i), DAEMON_PORT)).collect();
    let reversed: Vec<(String, u16)> = daemons.iter().rev().cloned().collect();
    let specs = vec![
        WriterSpec {
            key: "w:a".into(),
            sentinels: daemons,
            resolve_every: Duration::from_millis(250),
        },
        WriterSpec {
            key: "w:b".into(),
            sentinels: reversed,
            resolve_every: Duration::from_millis(250),
        },
    ];
    let keys: Vec<String> = specs.iter().map(|s| s.key.clone()).collect();
    let writers = Writers::start(&c.net, specs);
    sleep(secs(2.0));
    c.net.note("nemesis starts");
    let nemesis_ms = c.net.ms(Instant::now());
    nemesis(&mut c);
    c.net.heal();
    for i in 0..HOSTS.len() {
        for what in ["redis", "daemon"] {
            c.net.pods[i].signal(what, libc::SIGCONT);
            if !c.net.pods[i].running(what) {
                c.start(i, what);
            }
        }
    }
    let converged = wait_until(SETTLE, || c.converged().is_ok());
    let master = c.converged();
    c.net.note(&format!("converged: {master:?}"));
    // Writes go on a little on the final master, then stop.
    sleep(secs(if converged { 1.0 } else { 0.0 }));
    let logs = writers.finish();
    let obs = observer.finish();
    let (final_master, present) = match &master {
        Ok(m) => {
            // Let the replicas take the last writes, then read the master.
            sleep(secs(0.5));
            (m.clone(), c.read_keys(m, &keys))
        }
        Err(e) => (format!("not converged: {e}"), BTreeMap::new()),
    };
    if std::env::var_os("RAFTINEL_NETSAFE_OBS").is_some() {
        for o in &obs {
            eprintln!("  obs {:>7} ms {} {:?}", c.net.ms(o.at), o.node, o.state);
        }
    }
    let mut out = judge(&c.net, &logs, &obs, &final_master, &present);
    out.nemesis_ms = nemesis_ms;
    out.cuts = c
        .net
        .timeline()
        .iter()
        .filter(|(_, what)| {
            (what.starts_with("cut ") && !what.starts_with("cut port"))
                || what.starts_with("partition")
        })
        .map(|(at, _)| at.as_millis() as u64)
        .collect();
    let count = |what: &str| -> usize {
        (0..HOSTS.len())
            .map(|i| {
                c.net.pods[i]
                    .log_tail("daemon", usize::MAX)
                    .matches(what)
                    .count()
            })
            .sum()
    };
    out.kills = c
        .net
        .timeline()
        .iter()
        .filter_map(|(at, what)| {
            let pod = what.strip_prefix("killed redis of ")?;
            let i = HOSTS.iter().position(|h| *h == pod)?;
            Some((at.as_millis() as u64, format!("{}:{REDIS_PORT}", c.ip(i))))
        })
        .collect();
    out.tilts = count("+tilt");
    out.fences = count("+fence");
    eprintln!(
        "---- {kind:?}, redis {persist:?}; timeline:\n{}\n{}",
        c.net
            .timeline()
            .iter()
            .map(|(t, w)| format!("  {:>7} ms {w}\n", t.as_millis()))
            .collect::<String>(),
        out.summary()
    );
    Some(out)
}

/// Whether a lost write acknowledged by `node` at `at` was in flight when
/// that node was killed: acknowledged at most `IN_FLIGHT_MS` before the
/// kill's note. Replication is asynchronous: Redis writes the reply and the
/// replication stream in the same event-loop turn, in no set order, and a
/// process killed with unread input on a socket resets it, discarding what
/// it had not sent.
fn in_flight_at_crash(out: &Outcome, at: u64, node: &str) -> bool {
    out.kills
        .iter()
        .any(|(k, n)| n == node && at <= *k && *k <= at + IN_FLIGHT_MS)
}

/// The guarantees, each a panic with the figures. Writes in flight when the
/// node that acknowledged them was killed (`in_flight_at_crash`) are
/// reported in the figures, not counted against a guarantee.
pub fn assert_safe(out: &Outcome) {
    let lost = out
        .lost
        .iter()
        .any(|(at, n)| !in_flight_at_crash(out, *at, n));
    let broken = [
        (
            out.final_master.starts_with("not converged"),
            "no convergence",
        ),
        (lost, "acknowledged writes lost"),
        (
            !out.stale_acks.is_empty(),
            "an old master acknowledged writes after a newer promotion",
        ),
        (
            !served_empty(out).is_empty(),
            "an empty node served as master",
        ),
        (
            !out.empty_promotions.is_empty(),
            "an empty replica was promoted",
        ),
        (out.acked == 0, "no write acknowledged at all"),
    ];
    for (bad, what) in broken {
        assert!(!bad, "{what}: {}", out.summary());
    }
}

/// How long a node back empty as master may stay so before it is demoted
/// (a node that restarts without its data starts as what its config says):
/// 0.15–0.25 s measured in release builds, 1.2 s once in a debug build on
/// the loaded 2-core CI machine; redis-sentinel leaves it 10.5 s. Whether
/// it served is judged first by the writes it acknowledged (all lost).
pub const EMPTY_MASTER_BOUND_MS: u64 = 3 * DOWN_AFTER;

/// The empty masters that served: one that acknowledged a write lost since
/// (a daemon named it, or a client stayed on it), or stayed master longer
/// than `EMPTY_MASTER_BOUND_MS`. One demoted at once, named by no daemon,
/// loses nothing and replaces no data.
pub fn served_empty(out: &Outcome) -> Vec<&(u64, u64, String)> {
    out.empty_masters
        .iter()
        .filter(|(from, until, node)| {
            until.saturating_sub(*from) > EMPTY_MASTER_BOUND_MS
                || out.lost.iter().any(|(at, n)| n == node && at >= from)
        })
        .collect()
}

/// How soon after its pod is cut off an old master stops acknowledging
/// writes (the daemon next to it pauses them: docs/data-safety.md).
pub const FENCE_BOUND_MS: u64 = DOWN_AFTER / 2 + 250;

/// A write acknowledged this long before a cut's or a kill's note may still
/// have been on its way to the replicas when the packets stopped or the
/// process died (the note is written just after; replication is
/// asynchronous).
const IN_FLIGHT_MS: u64 = 50;

/// The guarantees when the master's pod is cut off with its clients: those
/// of [`assert_safe`], but for the writes the old master acknowledged in the
/// moments before its fence and could not replicate: each lost write was
/// acknowledged at most `FENCE_BOUND_MS` after the cut. None is acknowledged
/// by it after the promotion.
pub fn assert_fenced(out: &Outcome) {
    let starts = std::iter::once(out.nemesis_ms).chain(out.cuts.iter().copied());
    let bounds: Vec<u64> = starts.collect();
    let late: Vec<_> = out
        .lost
        .iter()
        .filter(|(at, _)| {
            !bounds
                .iter()
                .any(|c| *c <= *at + IN_FLIGHT_MS && *at <= c + FENCE_BOUND_MS)
        })
        .collect();
    assert!(
        late.is_empty(),
        "writes acknowledged more than {FENCE_BOUND_MS} ms after a cut lost ({} of them, the first {:?}): {}",
        late.len(),
        late.first(),
        out.summary()
    );
    let mut rest = out.clone();
    rest.lost.clear();
    assert_safe(&rest);
}

/// The guarantees when the master restarts in place without its data,
/// before down-after: those of [`assert_safe`], but for the writes the empty
/// master acknowledged before a daemon read its INFO and paused it (a
/// restart cannot be told before; docs/data-safety.md). Each lost write was
/// acknowledged by the restarted node within `EMPTY_MASTER_BOUND_MS` of its
/// kill; the history before the kill survives, on a promoted replica.
pub fn assert_restart_window(out: &Outcome) {
    let restarted = out.kills.first().cloned().expect("the master was killed");
    let outside: Vec<_> = out
        .lost
        .iter()
        .filter(|(at, n)| {
            let in_window = *n == restarted.1
                && restarted.0 <= *at
                && *at <= restarted.0 + EMPTY_MASTER_BOUND_MS;
            !in_window && !in_flight_at_crash(out, *at, n)
        })
        .collect();
    assert!(
        outside.is_empty(),
        "writes lost other than the empty master's in its first {EMPTY_MASTER_BOUND_MS} ms ({} of them, the first {:?}): {}",
        outside.len(),
        outside.first(),
        out.summary()
    );
    assert!(
        out.final_master != restarted.1 && !out.promotions.is_empty(),
        "the master back empty was not failed over: {}",
        out.summary()
    );
    let mut rest = out.clone();
    rest.lost.clear();
    rest.empty_masters.retain(|(from, until, n)| {
        !(*n == restarted.1 && *from >= restarted.0 && until - from <= EMPTY_MASTER_BOUND_MS)
    });
    assert_safe(&rest);
}

// ---------------------------------------------------------------- nemeses

/// The master's pod (redis + daemon) cut off from the other pods for 10 s,
/// the client still reaching it.
fn isolated_master_pod(c: &mut Cluster) {
    c.net.isolate(0, true);
    sleep(secs(10.0));
}

/// The master's redis and daemon SIGKILLed, started again after 10 s on
/// their original files (no persistence: redis comes back empty).
fn master_killed_and_back(c: &mut Cluster) {
    c.kill_pod(0);
    sleep(secs(10.0));
    c.start_pod(0);
    sleep(secs(5.0));
}

/// The master's redis SIGKILLed and started again at once, before
/// down-after, without its data (no persistence); its daemon stays up.
fn master_restarted_empty(c: &mut Cluster) {
    c.kill(0, "redis");
    c.start(0, "redis");
    sleep(secs(8.0));
}

/// Every pod stopped; the replicas come back without their data, then,
/// 10 s later, the old master with its data.
fn cold_start_replicas_empty(c: &mut Cluster) {
    restart_all(c, &[1, 2], &[1, 2], Some(0), 5.0);
}

/// The master's pod cut off five times for 1.5 × down-after, healed 2 s
/// between the cuts.
fn flapping_master_pod(c: &mut Cluster) {
    for _ in 0..5 {
        c.net.isolate(0, true);
        sleep(Duration::from_millis(DOWN_AFTER * 3 / 2));
        c.net.heal();
        sleep(secs(2.0));
    }
}

/// Only the master's daemon cut off from the other daemons for 10 s (its
/// redis reachable by everyone).
fn master_daemon_cut_off(c: &mut Cluster) {
    c.net.isolate_port(0, DAEMON_PORT);
    sleep(secs(10.0));
}

/// Every node and daemon stopped, started again with their data: the old
/// master's pod last, 10 s after the others.
fn restart_old_master_last(c: &mut Cluster) {
    restart_all(c, &[1, 2], &[], Some(0), 5.0);
}

/// The same, the old master's pod first.
fn restart_old_master_first(c: &mut Cluster) {
    restart_all(c, &[0, 1, 2], &[], None, 5.0);
}

/// The same, the old master's pod never back during the run (it comes back
/// only for the final convergence check).
fn restart_old_master_never(c: &mut Cluster) {
    restart_all(c, &[2, 1], &[], None, 20.0);
}

/// Every pod's redis and daemon stopped (SIGTERM); 2 s later the pods of
/// `order` started again in that order, those of `wiped` without their
/// redis data; then `last`, 10 s after them; then `settle` seconds.
fn restart_all(
    c: &mut Cluster,
    order: &[usize],
    wiped: &[usize],
    last: Option<usize>,
    settle: f64,
) {
    // The daemons first: the processes stop one after the other (each
    // waited for), and a master stopped while daemons still run would be
    // failed over during the shutdown, which is not the scenario.
    for i in 0..3 {
        c.stop(i, "daemon");
    }
    for i in 0..3 {
        c.stop(i, "redis");
    }
    sleep(secs(2.0));
    for &i in order {
        if wiped.contains(&i) {
            c.wipe_redis(i);
        }
        c.start_pod(i);
    }
    if let Some(i) = last {
        sleep(secs(10.0));
        c.start_pod(i);
    }
    sleep(secs(settle));
}

/// After a failover away from a killed master, the remaining replica is
/// restarted with the `replicaof` of a fresh pod (the old master); the old
/// master comes back 10 s later.
fn stale_replicaof(c: &mut Cluster) {
    c.kill(0, "redis");
    let promoted = wait_for(SETTLE, "a replica promoted", || {
        c.daemon_master(1)
            .ok()
            .filter(|m| *m != c.node(0))
            .ok_or_else(|| "no failover yet".to_string())
    });
    let other = if promoted == c.node(1) { 2 } else { 1 };
    c.stop(other, "redis");
    c.reset_redis_conf(other);
    c.net.note(&format!(
        "{} gets replicaof {} (stale)",
        HOSTS[other],
        c.node(0)
    ));
    c.start(other, "redis");
    sleep(secs(10.0));
    c.start(0, "redis");
    sleep(secs(5.0));
}

/// The master and the first replica (redis and daemon each) SIGKILLed
/// together, back after 10 s with their data.
fn master_and_first_replica_down(c: &mut Cluster) {
    for i in [0, 1] {
        c.kill_pod(i);
    }
    sleep(secs(10.0));
    for i in [0, 1] {
        c.start_pod(i);
    }
    sleep(secs(5.0));
}

/// Every scenario: name, redis settings, nemesis.
pub const SCENARIOS: &[(&str, Redis, Nemesis)] = &[
    ("isolated_master_pod", VOLATILE, isolated_master_pod),
    ("master_killed_and_back", VOLATILE, master_killed_and_back),
    ("master_restarted_empty", VOLATILE, master_restarted_empty),
    ("cold_start_replicas_empty", AOF, cold_start_replicas_empty),
    ("flapping_master_pod", VOLATILE, flapping_master_pod),
    ("master_daemon_cut_off", VOLATILE, master_daemon_cut_off),
    (
        "isolated_master_pod_min_replicas",
        VOLATILE_MIN_REPLICAS,
        isolated_master_pod,
    ),
    ("restart_old_master_last", AOF, restart_old_master_last),
    ("restart_old_master_first", AOF, restart_old_master_first),
    ("restart_old_master_never", AOF, restart_old_master_never),
    ("stale_replicaof", AOF, stale_replicaof),
    (
        "master_and_first_replica_down",
        AOF,
        master_and_first_replica_down,
    ),
];

fn scenario(name: &str) -> (Redis, Nemesis) {
    SCENARIOS
        .iter()
        .find(|s| s.0 == name)
        .map(|s| (s.1, s.2))
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

/// Run scenario `name` against raftinel, print its figures, assert the
/// guarantees.
fn check(name: &str) {
    let (persist, nemesis) = scenario(name);
    if let Some(out) = run(Kind::Raftinel, persist, nemesis) {
        eprintln!("RESULT {name} Raftinel: {}", out.line());
        assert_safe(&out);
    }
}

/// [`check`] with [`assert_fenced`].
fn check_fenced(name: &str) {
    let (persist, nemesis) = scenario(name);
    if let Some(out) = run(Kind::Raftinel, persist, nemesis) {
        eprintln!("RESULT {name} Raftinel: {}", out.line());
        assert_fenced(&out);
    }
}

// ---------------------------------------------------------------- self-checks

/// The cuts do what they say, both ways, and healing undoes them; the
/// namespaces and their hosts files are gone after the drop.
#[test]
fn harness_cuts_and_heals() {
    let Some(mut net) = Net::new(&HOSTS) else {
        return;
    };
    let names: Vec<String> = own_namespaces();
    assert_eq!(names.len(), 5, "pods, client and bridge: {names:?}");
    for i in 0..3 {
        let dir = net.pods[i].path("redis");
        fs::create_dir_all(&dir).unwrap();
        let argv = crate::harness::netns::redis_argv(&net.pods[i].ip, &[]);
        net.pods[i].spawn("redis", argv, Vec::new());
        net.pods[i].wait_pong(REDIS_PORT, "redis");
    }
    let reach = |net: &Net| -> Vec<bool> {
        // client -> 0, 1, 2; pod-1 -> 0; pod-2 -> 0; pod-1 -> 2
        vec![
            net.reaches(&net.client, 0, REDIS_PORT),
            net.reaches(&net.client, 1, REDIS_PORT),
            net.reaches(&net.client, 2, REDIS_PORT),
            net.reaches(&net.pods[1].ns, 0, REDIS_PORT),
            net.reaches(&net.pods[2].ns, 0, REDIS_PORT),
            net.reaches(&net.pods[1].ns, 2, REDIS_PORT),
        ]
    };
    assert_eq!(reach(&net), vec![true; 6], "healthy network");
    // The hosts file is the one processes in the pods see.
    let hosts = fs::read_to_string(format!("/etc/netns/{}/hosts", net.pods[0].ns.name)).unwrap();
    assert!(hosts.contains(&format!("{} pod-1", pod_ip(1))), "{hosts}");

    net.isolate(0, true);
    assert_eq!(reach(&net), vec![true, true, true, false, false, true]);
    net.heal();
    net.isolate(0, false);
    assert_eq!(reach(&net), vec![false, true, true, false, false, true]);
    net.heal();
    net.partition(&[&[0, 1], &[2]]);
    assert_eq!(reach(&net), vec![true, true, true, true, false, false]);
    net.heal();
    // A port cut: the redis port of pod-0 from the other pods only.
    net.isolate_port(0, REDIS_PORT);
    assert_eq!(reach(&net), vec![true, true, true, false, false, true]);
    net.heal();
    assert_eq!(reach(&net), vec![true; 6], "healed");

    // Signals and restarts reach the process in the pod.
    net.pods[1].signal("redis", libc::SIGSTOP);
    let mut c = net.pods[1].conn(REDIS_PORT).unwrap();
    assert!(matches!(
        c.try_cmd(&["PING"], Duration::from_millis(500)),
        Reply::Timeout
    ));
    net.pods[1].signal("redis", libc::SIGCONT);
    assert!(matches!(
        c.read_reply(Duration::from_secs(5)),
        Reply::Frame(_)
    ));
    net.pods[1].kill("redis");
    assert!(!net.pods[1].running("redis"));
    net.pods[1].start("redis");
    net.pods[1].wait_pong(REDIS_PORT, "redis");
    drop(net);
    assert!(own_namespaces().is_empty(), "left: {:?}", own_namespaces());
    for n in names {
        assert!(!std::path::Path::new(&format!("/etc/netns/{n}")).exists());
    }
}

/// A test that panics inside a `Net` leaves no namespace and no process.
#[test]
fn harness_cleans_up_after_a_panic() {
    if !available() {
        return;
    }
    let pid = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut net = Net::new(&["pod-0"]).expect("available");
        net.pods[0].spawn("sleeper", vec!["sleep".into(), "600".into()], Vec::new());
        // The sleeper's pid, found through the namespace's process list
        // once `ip netns exec` has entered the namespace.
        let ns = net.pods[0].ns.name.clone();
        *pid.lock().unwrap() = Some(wait_for(
            Duration::from_secs(5),
            "the sleeper in the pod",
            || {
                let pids = std::process::Command::new("ip")
                    .args(["netns", "pids", &ns])
                    .output()
                    .map_err(|e| e.to_string())?;
                String::from_utf8_lossy(&pids.stdout)
                    .split_whitespace()
                    .next()
                    .map(|s| s.to_string())
                    .ok_or_else(|| "no process in the namespace yet".to_string())
            },
        ));
        panic!("deliberate");
    }));
    assert!(r.is_err());
    assert!(own_namespaces().is_empty(), "left: {:?}", own_namespaces());
    let pid = pid.lock().unwrap().clone().expect("the sleeper ran");
    assert!(
        wait_until(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "process {pid} survived"
    );
}

// ---------------------------------------------------------------- scenarios

/// Only the master's daemon cut off from the other daemons: no failover,
/// nothing lost, the daemon rejoins.
#[test]
fn master_daemon_cut_off_changes_nothing() {
    let (persist, nemesis) = scenario("master_daemon_cut_off");
    let Some(out) = run(Kind::Raftinel, persist, nemesis) else {
        return;
    };
    assert_safe(&out);
    assert!(out.promotions.is_empty(), "{}", out.summary());
    // A replica answered its daemon's probe: no write was paused.
    assert_eq!(out.fences, 0, "{}", out.summary());
}

/// The master's pod cut off with its clients: fenced within the bound,
/// nothing acknowledged by it once another node is promoted.
#[test]
fn isolated_master_pod_is_fenced() {
    check_fenced("isolated_master_pod");
}

/// The master's redis and daemon killed, back without data after the
/// failover: its daemon names no master before it heard the group, so no
/// client writes to the empty node, which is demoted within a second.
#[test]
fn master_back_empty_after_a_crash_serves_no_write() {
    check("master_killed_and_back");
}

/// The master's redis restarted at once without its data: the group fails
/// it over to a replica still on its history; only what the empty node
/// acknowledged before it was paused is lost (redis-sentinel: the replicas
/// resync from it and every key is lost).
#[test]
fn master_restarted_empty_keeps_its_history() {
    let (persist, nemesis) = scenario("master_restarted_empty");
    if let Some(out) = run(Kind::Raftinel, persist, nemesis) {
        eprintln!("RESULT master_restarted_empty Raftinel: {}", out.line());
        assert_restart_window(&out);
    }
}

#[test]
fn cold_start_never_promotes_an_empty_replica() {
    check("cold_start_replicas_empty");
}

#[test]
fn flapping_master_pod_is_fenced() {
    check_fenced("flapping_master_pod");
}

#[test]
fn restart_with_old_master_last_loses_nothing() {
    check("restart_old_master_last");
}

#[test]
fn restart_with_old_master_first_loses_nothing() {
    check("restart_old_master_first");
}

#[test]
fn restart_without_old_master_loses_nothing() {
    check("restart_old_master_never");
}

#[test]
fn stale_replicaof_loses_nothing() {
    check("stale_replicaof");
}

#[test]
fn master_and_first_replica_down_loses_nothing() {
    check("master_and_first_replica_down");
}

// ---------------------------------------------------------------- long runs

fn kind_from_env() -> Vec<Kind> {
    match std::env::var("RAFTINEL_NETSAFE_KIND").as_deref() {
        Ok("sentinel") => vec![Kind::Oracle],
        Ok("raftinel") => vec![Kind::Raftinel],
        _ => vec![Kind::Raftinel, Kind::Oracle],
    }
}

/// Every scenario (or those named in `RAFTINEL_NETSAFE_ONLY`, comma
/// separated) for both daemons, `RAFTINEL_NETSAFE_RUNS` times; one line per
/// run, for BENCHMARKS.md.
#[test]
#[ignore = "measurement: several minutes per run of every scenario"]
fn measure() {
    if !available() {
        return;
    }
    let runs: usize = std::env::var("RAFTINEL_NETSAFE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let only: Option<Vec<String>> = std::env::var("RAFTINEL_NETSAFE_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let mut lines = Vec::new();
    for (name, persist, nemesis) in SCENARIOS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        for kind in kind_from_env() {
            for r in 0..runs {
                let out = run(kind, *persist, *nemesis).expect("available");
                let line = format!("{name} {kind:?} run {r}: {}", out.line());
                eprintln!("RESULT {line}");
                lines.push(line);
            }
        }
    }
    eprintln!("==== results\n{}", lines.join("\n"));
}

/// The longest randomized schedule (an hour): the run always ends by itself.
const MAX_NEMESIS_SECS: u64 = 3600;

/// A seeded random schedule of nemeses for `RAFTINEL_NEMESIS_SECS` (default
/// 120, at most `MAX_NEMESIS_SECS`) seconds, then healed and judged with the
/// same guarantees.
#[test]
#[ignore = "long randomized run; see the module comment"]
fn random_schedule() {
    if !available() {
        return;
    }
    // Every daemon runs the schedule and reports before raftinel's run is
    // judged (redis-sentinel's is reported only).
    let mut judged = None;
    for kind in kind_from_env() {
        let out = run(kind, AOF, random_nemesis).expect("available");
        eprintln!("RESULT random_schedule {kind:?}: {}", out.line());
        if kind == Kind::Raftinel {
            judged = Some(out);
        }
    }
    // A cut master pod acknowledges writes until its fence (the bound);
    // nothing else may be lost.
    if let Some(out) = judged {
        assert_fenced(&out);
    }
}

fn random_nemesis(c: &mut Cluster) {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("RAFTINEL_NEMESIS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let total = Duration::from_secs(
        std::env::var("RAFTINEL_NEMESIS_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120)
            .min(MAX_NEMESIS_SECS),
    );
    c.net
        .note(&format!("random schedule, seed {seed}, {total:?}"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let end = Instant::now() + total;
    while Instant::now() < end {
        let pod = rng.gen_range(0..3);
        let hold = Duration::from_millis(rng.gen_range(500..6000));
        match rng.gen_range(0..7) {
            0 => c.net.isolate(pod, rng.gen_bool(0.5)),
            1 => {
                let others: Vec<usize> = (0..3).filter(|&p| p != pod).collect();
                c.net.partition(&[&[pod], &others]);
            }
            2 => c.net.isolate_port(pod, DAEMON_PORT),
            3 => {
                let what = if rng.gen_bool(0.5) { "redis" } else { "daemon" };
                c.signal(pod, what, libc::SIGSTOP, "SIGSTOP");
                sleep(hold);
                c.signal(pod, what, libc::SIGCONT, "SIGCONT");
            }
            4 => {
                let what = if rng.gen_bool(0.5) { "redis" } else { "daemon" };
                c.kill(pod, what);
                sleep(hold);
                c.start(pod, what);
            }
            5 => {
                c.kill_pod(pod);
                if rng.gen_bool(0.3) {
                    c.wipe_redis(pod);
                }
                sleep(hold);
                c.start_pod(pod);
            }
            _ => {
                for _ in 0..rng.gen_range(2..5) {
                    c.net.isolate(pod, true);
                    sleep(Duration::from_millis(rng.gen_range(500..2000)));
                    c.net.heal();
                    sleep(Duration::from_millis(rng.gen_range(500..2000)));
                }
            }
        }
        sleep(hold);
        c.net.heal();
        sleep(Duration::from_millis(rng.gen_range(500..4000)));
    }
}
