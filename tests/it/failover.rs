//! Failover through Raft with real processes: three raftinel daemons (quorum
//! 2) watching one `redis-server` master and two replicas, down-after 1000 ms,
//! failover-timeout 10 s. Masters are SIGKILLed, SIGSTOPped, daemons killed or
//! restarted, manual and coordinated failovers requested, and writers (our own
//! and redis-py's `Sentinel`) run through them.
//!
//! Assertions are about outcomes — who is master, what every daemon answers
//! and publishes, which writes survive — never about how long it took; every
//! wait is bounded by a generous deadline. The daemons are managed here
//! (`Daemon`), not by the shared harness, because these tests restart a daemon
//! on the same directory after it stopped and read its Raft status; the rest
//! (ports, config text, RESP client, Redis nodes) is the harness's.

use crate::harness::resp::{as_message, Message};
use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous bound for a whole failover (or a group forming) on a loaded
/// 2-core CI machine running several of these tests at once.
const BOUND: Duration = Duration::from_secs(45);
const FAILOVER_TIMEOUT_MS: u64 = 10_000;
const QUORUM: u32 = 2;
fn monitor(port: u16) -> Monitor {
    Monitor {
        failover_timeout_ms: FAILOVER_TIMEOUT_MS,
        ..Monitor::new(port, QUORUM)
    }
}

// ---------------------------------------------------------------- daemons

/// A raftinel daemon whose process can be stopped and started again on the
/// same config file and directory (same myid, same Raft data).
struct Daemon {
    port: u16,
    dir: tempfile::TempDir,
    conf: PathBuf,
    child: Option<Child>,
    /// Number of starts so far; start `n` logs to `stdout-n.log`/`stderr-n.log`.
    starts: u32,
}

impl Daemon {
    fn start(m: &Monitor) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("it-failover-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        fs::write(
            &conf,
            sentinel_conf(port, dir.path(), std::slice::from_ref(m), &[]),
        )
        .expect("write sentinel.conf");
        let mut d = Daemon {
            port,
            dir,
            conf,
            child: None,
            starts: 0,
        };
        d.launch();
        d
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "daemon {} already running", self.port);
        let n = self.starts;
        let out = fs::File::create(self.dir.path().join(format!("stdout-{n}.log"))).expect("log");
        let err = fs::File::create(self.dir.path().join(format!("stderr-{n}.log"))).expect("log");
        let mut cmd = Command::new(raftinel_bin());
        cmd.arg(&self.conf)
            .current_dir(self.dir.path())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // The daemons die with the test thread even if it does not unwind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("spawn raftinel"));
        self.starts += 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = Conn::connect(self.port) {
                if let Reply::Frame(Resp::Status(s)) = c.try_cmd(&["PING"], Duration::from_secs(2))
                {
                    if s == "PONG" {
                        return;
                    }
                }
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "daemon {} exited at start: {st}\n{}",
                    self.port,
                    self.log_tail(30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "daemon {} did not answer PING within 20 s\n{}",
                self.port,
                self.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit (SIGKILL after 10 s).
    fn sigterm(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        let mut c = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn conn(&self) -> Conn {
        Conn::open(self.port)
    }

    /// What the log of start `n` (0-based) says, stdout and stderr.
    fn log_of(&self, n: u32) -> String {
        let read = |f: String| fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        read(format!("stdout-{n}.log")) + &read(format!("stderr-{n}.log"))
    }

    fn log(&self) -> String {
        (0..self.starts).map(|n| self.log_of(n)).collect()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn bootstrapped(&self) -> bool {
        self.log().contains("raft: bootstrapped a new group")
    }

    fn myid(&self) -> String {
        self.conn()
            .cmd(&["SENTINEL", "MYID"])
            .as_str()
            .unwrap_or_default()
    }

    fn master_field(&self, field: &str) -> Option<String> {
        self.conn()
            .cmd(&["SENTINEL", "MASTER", MASTER])
            .field(field)
    }

    fn replicas(&self) -> Vec<Resp> {
        match self.conn().cmd(&["SENTINEL", "REPLICAS", MASTER]) {
            Resp::Array(v) => v,
            other => panic!("SENTINEL REPLICAS on {}: {}", self.port, other.pretty()),
        }
    }

    /// GET-MASTER-ADDR-BY-NAME as `ip:port`.
    fn master_addr(&self) -> String {
        let r = self
            .conn()
            .cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
        match r.items() {
            Some([ip, port]) => format!(
                "{}:{}",
                ip.as_str().unwrap_or_default(),
                port.as_str().unwrap_or_default()
            ),
            _ => format!("<{}>", r.pretty().trim_end()),
        }
    }

    /// The daemon's `INFO raft` section (raftinel extension) as key/values.
    fn raft_info(&self) -> Result<BTreeMap<String, String>, String> {
        let mut c = Conn::connect(self.port).map_err(|e| e.to_string())?;
        match c.try_cmd(&["INFO", "raft"], Duration::from_secs(5)) {
            Reply::Frame(r) => {
                let text = r.as_str().ok_or_else(|| r.pretty())?;
                Ok(text
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
                    .collect())
            }
            other => Err(other.describe()),
        }
    }

    /// In a group of three voters with a known leader: the leader's node id.
    fn raft_member_of_three(&self) -> Result<String, String> {
        let st = self.raft_info()?;
        let get = |k: &str| st.get(k).map(String::as_str).unwrap_or("");
        let leader = get("raft_leader_id");
        if get("raft_initialized") == "1" && get("raft_voters") == "3" && !leader.is_empty() {
            Ok(leader.to_string())
        } else {
            Err(format!("daemon {}: {st:?}", self.port))
        }
    }

    fn raft_node_id(&self) -> Option<String> {
        self.raft_info().ok()?.get("raft_node_id").cloned()
    }

    /// The Raft data files (`<dir>/raftinel-<myid prefix>/raft/`, the
    /// layout for a `dir` that several daemons may share) with their sizes.
    fn raft_files(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let roots = fs::read_dir(self.dir.path())
            .map(|rd| rd.filter_map(|e| e.ok()).collect::<Vec<_>>())
            .unwrap_or_default();
        for root in roots {
            let name = root.file_name().to_string_lossy().into_owned();
            if !name.starts_with("raftinel") {
                continue;
            }
            let Ok(rd) = fs::read_dir(root.path().join("raft")) else {
                continue;
            };
            for e in rd.filter_map(|e| e.ok()) {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((
                    format!("{name}/raft/{}", e.file_name().to_string_lossy()),
                    len,
                ));
            }
        }
        out.sort();
        out
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = writeln!(
                std::io::stderr(),
                "---- raftinel on port {} (dir {}, {} start(s)) ----\nlog tail:\n{}\nconfig:\n{}",
                self.port,
                self.dir.path().display(),
                self.starts,
                self.log_tail(60),
                fs::read_to_string(&self.conf).unwrap_or_default()
            );
        }
        self.signal(libc::SIGCONT);
        self.sigkill();
    }
}

// ---------------------------------------------------------------- events

/// Every pub/sub message one daemon published since `PSUBSCRIBE *`.
struct Events {
    port: u16,
    conn: Conn,
    seen: Vec<Message>,
}

impl Events {
    fn new(d: &Daemon) -> Events {
        let mut conn = d.conn();
        conn.send(&["PSUBSCRIBE", "*"]).expect("send PSUBSCRIBE");
        let r = conn.read();
        assert_eq!(
            r.items().and_then(|i| i.first()).and_then(|k| k.as_str()),
            Some("psubscribe".to_string()),
            "PSUBSCRIBE * confirmation: {}",
            r.pretty()
        );
        Events {
            port: d.port,
            conn,
            seen: Vec::new(),
        }
    }

    /// Read what arrives within `d` (at least one read).
    fn poll(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.conn.read_reply(left.max(Duration::from_millis(1))) {
                Reply::Frame(v) => self.seen.extend(as_message(&v)),
                Reply::Timeout | Reply::Closed => return,
            }
            if Instant::now() >= deadline {
                return;
            }
        }
    }

    fn find(&self, channel: &str, pred: &dyn Fn(&str) -> bool) -> Option<Message> {
        self.seen
            .iter()
            .find(|m| m.channel == channel && pred(&m.payload))
            .cloned()
    }

    fn count(&self, channel: &str) -> usize {
        self.seen.iter().filter(|m| m.channel == channel).count()
    }

    fn wait(&mut self, channel: &str, pred: &dyn Fn(&str) -> bool, timeout: Duration) -> Message {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.find(channel, pred) {
                return m;
            }
            if Instant::now() >= deadline {
                panic!(
                    "daemon {}: no matching {channel} within {timeout:?}; seen:\n{}",
                    self.port,
                    self.dump()
                );
            }
            self.poll(Duration::from_millis(200));
        }
    }

    fn dump(&self) -> String {
        self.seen
            .iter()
            .map(|m| format!("  {} {}\n", m.channel, m.payload))
            .collect()
    }
}

/// Wait until some daemon published a matching message.
fn wait_any(
    events: &mut [&mut Events],
    channel: &str,
    pred: &dyn Fn(&str) -> bool,
    timeout: Duration,
) -> Message {
    let deadline = Instant::now() + timeout;
    loop {
        for e in events.iter_mut() {
            if let Some(m) = e.find(channel, pred) {
                return m;
            }
        }
        if Instant::now() >= deadline {
            let all: String = events
                .iter()
                .map(|e| format!("daemon {}:\n{}", e.port, e.dump()))
                .collect();
            panic!("no daemon published a matching {channel} within {timeout:?}; seen:\n{all}");
        }
        for e in events.iter_mut() {
            e.poll(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------- redis side

fn role(node: &RedisNode) -> String {
    match Conn::connect(node.port) {
        Ok(mut c) => match c.try_cmd(&["ROLE"], Duration::from_secs(3)) {
            Reply::Frame(r) => r
                .items()
                .and_then(|i| i.first())
                .and_then(|k| k.as_str())
                .unwrap_or_else(|| r.pretty()),
            other => other.describe(),
        },
        Err(e) => format!("<connect: {e}>"),
    }
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Parse a `+switch-master` payload into (old port, new port), checking the
/// name and the addresses' form.
fn parse_switch(payload: &str) -> (u16, u16) {
    let f: Vec<&str> = payload.split(' ').collect();
    let port = |s: &str| {
        s.parse::<u16>()
            .unwrap_or_else(|_| panic!("bad port in +switch-master {payload:?}"))
    };
    assert!(
        f.len() == 5 && f[0] == MASTER && f[1] == "127.0.0.1" && f[3] == "127.0.0.1",
        "+switch-master payload: {payload:?}"
    );
    (port(f[2]), port(f[4]))
}

// ---------------------------------------------------------------- the group

/// One master, two replicas with their links up, three daemons in one Raft
/// group that all know both replicas (healthy) and both peers.
struct Group {
    topo: Topology,
    daemons: Vec<Daemon>,
    old_port: u16,
}

impl Group {
    fn new() -> Group {
        Self::with_replicas(2)
    }

    fn with_replicas(n: usize) -> Group {
        let topo = Topology::new(n);
        let old_port = topo.master.port;
        let m = monitor(old_port);
        let daemons: Vec<Daemon> = (0..3).map(|_| Daemon::start(&m)).collect();
        let g = Group {
            topo,
            daemons,
            old_port,
        };
        g.wait_formed(&[0, 1, 2], n);
        g
    }

    /// The daemons `idx` agree on one Raft leader, their group has the three
    /// voters, and each knows `replicas` healthy replicas and both peers.
    fn wait_formed(&self, idx: &[usize], replicas: usize) {
        wait_for(BOUND, "the three daemons form one Raft group", || {
            let mut leaders = BTreeSet::new();
            for &i in idx {
                leaders.insert(self.daemons[i].raft_member_of_three()?);
            }
            if leaders.len() == 1 {
                Ok(())
            } else {
                Err(format!("leaders differ: {leaders:?}"))
            }
        });
        for &i in idx {
            let d = &self.daemons[i];
            wait_for(
                BOUND,
                &format!("daemon {} knows the replicas and peers", d.port),
                || {
                    let list = d.replicas();
                    let healthy = list
                        .iter()
                        .filter(|r| {
                            r.field("flags").as_deref() == Some("slave")
                                && r.field("master-link-status").as_deref() == Some("ok")
                        })
                        .count();
                    let peers = d.master_field("num-other-sentinels");
                    if healthy == replicas
                        && list.len() == replicas
                        && peers.as_deref() == Some("2")
                    {
                        Ok(())
                    } else {
                        Err(format!(
                            "num-other-sentinels {peers:?}, replicas:\n{}",
                            list.iter().map(|r| r.pretty()).collect::<String>()
                        ))
                    }
                },
            );
        }
    }

    fn subscribe(&self, idx: &[usize]) -> Vec<Events> {
        idx.iter().map(|&i| Events::new(&self.daemons[i])).collect()
    }

    fn replica_ports(&self) -> Vec<u16> {
        self.topo.replicas.iter().map(|r| r.port).collect()
    }

    /// The failover from the old master is done as seen by daemons `idx`
    /// (whose events are `events`): each published `+switch-master` old → the
    /// same former replica, each answers that address, the promoted node is a
    /// master and the other replica follows it. Returns the new master's port.
    fn expect_failover(&self, idx: &[usize], events: &mut [Events]) -> u16 {
        let mut news = BTreeSet::new();
        for e in events.iter_mut() {
            let m = e.wait("+switch-master", &|_| true, BOUND);
            let (old, new) = parse_switch(&m.payload);
            assert_eq!(old, self.old_port, "daemon {}: {}", e.port, m.payload);
            news.insert(new);
        }
        assert_eq!(
            news.len(),
            1,
            "daemons published different new masters: {news:?}"
        );
        let new_port = *news.iter().next().unwrap_or(&0);
        assert!(
            self.replica_ports().contains(&new_port),
            "new master {new_port} is not one of the former replicas {:?}",
            self.replica_ports()
        );
        for &i in idx {
            let d = &self.daemons[i];
            wait_for(
                BOUND,
                &format!("daemon {} answers the new master", d.port),
                || {
                    let a = d.master_addr();
                    if a == addr(new_port) {
                        Ok(())
                    } else {
                        Err(a)
                    }
                },
            );
        }
        let promoted = self
            .topo
            .replicas
            .iter()
            .find(|r| r.port == new_port)
            .expect("promoted replica");
        wait_for(
            BOUND,
            "the promoted replica answers ROLE master",
            || match role(promoted).as_str() {
                "master" => Ok(()),
                other => Err(other.to_string()),
            },
        );
        for r in self.topo.replicas.iter().filter(|r| r.port != new_port) {
            wait_for(
                BOUND,
                &format!("replica {} follows the new master", r.port),
                || {
                    let info = r.info("replication");
                    if info_field(&info, "master_port") == Some(new_port.to_string())
                        && info_field(&info, "master_link_status").as_deref() == Some("up")
                    {
                        Ok(())
                    } else {
                        Err(info)
                    }
                },
            );
        }
        new_port
    }

    /// The old master (running again) becomes a replica of `new_port`:
    /// `+convert-to-slave` on some daemon, ROLE slave, following the new master.
    fn expect_old_master_demoted(&self, events: &mut [Events], new_port: u16) {
        let old = addr(self.old_port);
        let mut refs: Vec<&mut Events> = events.iter_mut().collect();
        wait_any(
            &mut refs,
            "+convert-to-slave",
            &|p| p.contains(&format!("slave {old} ")),
            BOUND,
        );
        self.expect_old_master_follows(new_port);
    }

    /// The old master reports ROLE slave and replicates `new_port`.
    fn expect_old_master_follows(&self, new_port: u16) {
        wait_for(BOUND, "the old master is a replica of the new one", || {
            let info = self.topo.master.info("replication");
            if info_field(&info, "role").as_deref() == Some("slave")
                && info_field(&info, "master_port") == Some(new_port.to_string())
            {
                Ok(())
            } else {
                Err(info)
            }
        });
        assert_eq!(role(&self.topo.master), "slave", "ROLE of the old master");
    }
}

/// After a failover: each daemon published `+switch-master` exactly once,
/// and all report the same config epoch (>= 1) for the master.
fn expect_switch_once(g: &Group, idx: &[usize], events: &mut [Events]) {
    for e in events.iter_mut() {
        e.poll(Duration::from_millis(1500));
        assert_eq!(
            e.count("+switch-master"),
            1,
            "daemon {}: +switch-master must be published once per epoch; seen:\n{}",
            e.port,
            e.dump()
        );
    }
    let epochs: BTreeSet<String> = idx
        .iter()
        .map(|&i| {
            g.daemons[i]
                .master_field("config-epoch")
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(epochs.len(), 1, "daemons' config-epoch differ: {epochs:?}");
    let e = epochs.iter().next().cloned().unwrap_or_default();
    assert!(
        e.parse::<u64>().unwrap_or(0) >= 1,
        "config-epoch after a failover: {e:?}"
    );
}

// ---------------------------------------------------------------- tests

/// Case 1: Master SIGKILLed: every daemon switches once to the same former
/// replica, the data nodes follow, the restarted old master is demoted.
#[test]
fn sigkill_master_fails_over() {
    let mut g = Group::new();
    let mut ev = g.subscribe(&[0, 1, 2]);
    g.topo.master.sigkill();
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    // Every daemon publishes what the log committed; SDOWN is each daemon's
    // own view (a slow observer may switch before its own down-after), but
    // the committed down votes mean at least `quorum` daemons saw it.
    for e in &ev {
        for ch in ["+new-epoch", "+vote-for-leader"] {
            assert!(
                e.count(ch) >= 1,
                "daemon {} published no {ch}:\n{}",
                e.port,
                e.dump()
            );
        }
    }
    let sdown = format!("master {MASTER} 127.0.0.1 {}", g.old_port);
    let saw = |ch: &str| {
        ev.iter()
            .filter(|e| e.find(ch, &|p| p.starts_with(&sdown)).is_some())
            .count()
    };
    let all: String = ev
        .iter()
        .map(|e| format!("daemon {}:\n{}", e.port, e.dump()))
        .collect();
    assert!(
        saw("+sdown") >= QUORUM as usize,
        "+sdown on fewer than quorum daemons:\n{all}"
    );
    assert!(saw("+odown") >= 1, "+odown on no daemon:\n{all}");
    g.topo.master.restart();
    g.expect_old_master_demoted(&mut ev, new_port);
    expect_switch_once(&g, &[0, 1, 2], &mut ev);
    let want = format!("sentinel monitor {MASTER} 127.0.0.1 {new_port} {QUORUM}");
    for d in &g.daemons {
        wait_for(
            BOUND,
            &format!("daemon {} persisted the new master", d.port),
            || {
                let text = fs::read_to_string(&d.conf).unwrap_or_default();
                if text.lines().any(|l| l == want) {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        );
    }
}

/// Case 2: Master SIGSTOPped: the same failover; SIGCONT → the old master is demoted.
#[test]
fn sigstop_master_fails_over_and_is_demoted_on_sigcont() {
    let g = Group::new();
    let mut ev = g.subscribe(&[0, 1, 2]);
    g.topo.master.sigstop();
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    g.topo.master.sigcont();
    g.expect_old_master_demoted(&mut ev, new_port);
    expect_switch_once(&g, &[0, 1, 2], &mut ev);
}

/// Case 3: Two of three daemons killed, then the master: the survivor is a
/// minority and never fails over; it keeps answering the old master.
#[test]
fn minority_never_fails_over() {
    let mut g = Group::new();
    let mut ev = g.subscribe(&[2]);
    g.daemons[0].sigkill();
    g.daemons[1].sigkill();
    g.topo.master.sigkill();
    let old = addr(g.old_port);
    let sdown = format!("master {MASTER} 127.0.0.1 {}", g.old_port);
    ev[0].wait("+sdown", &|p| p == sdown, BOUND);
    // Observe well beyond down-after (the failover would have been done by
    // then with a majority): nothing may change.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert_eq!(
            g.daemons[2].master_addr(),
            old,
            "the minority daemon changed the master address"
        );
        for r in &g.topo.replicas {
            assert_eq!(role(r), "slave", "replica {} was promoted", r.port);
        }
        ev[0].poll(Duration::from_millis(250));
    }
    for ch in [
        "+switch-master",
        "+selected-slave",
        "+promoted-slave",
        "+failover-state-send-slaveof-noone",
    ] {
        assert_eq!(
            ev[0].count(ch),
            0,
            "the minority daemon published {ch}:\n{}",
            ev[0].dump()
        );
    }
}

/// Case 4: A daemon stopped (SIGTERM) during a failover and started again on the
/// same config and dir keeps its myid and Raft state and agrees on the new master.
#[test]
fn restarted_daemon_keeps_identity_and_catches_up() {
    let mut g = Group::new();
    // Restart a daemon that joined (the bootstrapping one is test 5's).
    let k = (0..3)
        .find(|&i| !g.daemons[i].bootstrapped())
        .expect("two daemons joined the group");
    let others: Vec<usize> = (0..3).filter(|&i| i != k).collect();
    let myid = g.daemons[k].myid();
    let raft_id = g.daemons[k].raft_node_id();
    assert!(raft_id.is_some(), "raft status of daemon {k}");
    let st = g.daemons[k].sigterm();
    assert!(
        st.is_some_and(|s| s.success()),
        "daemon exits cleanly on SIGTERM: {st:?}"
    );
    let files = g.daemons[k].raft_files();
    assert!(
        files.iter().any(|(_, len)| *len > 0),
        "Raft data under <dir>/raftinel*/raft/ after a stop: {files:?}"
    );

    let mut ev = g.subscribe(&others);
    g.topo.master.sigkill();
    let new_port = g.expect_failover(&others, &mut ev);

    g.daemons[k].launch();
    let d = &g.daemons[k];
    assert_eq!(d.myid(), myid, "myid survives a restart");
    wait_for(BOUND, "the restarted daemon answers the new master", || {
        let a = d.master_addr();
        if a == addr(new_port) {
            Ok(())
        } else {
            Err(a)
        }
    });
    wait_for(BOUND, "the restarted daemon is back in the group", || {
        d.raft_member_of_three().map(|_| ())
    });
    assert_eq!(d.raft_node_id(), raft_id, "Raft node id survives a restart");
    let second = d.log_of(1);
    assert!(
        !second.contains("raft: bootstrapped") && !second.contains("raft: joined the group"),
        "a restarted member neither bootstraps nor joins again:\n{second}"
    );
    wait_for(BOUND, "all three daemons report one config epoch", || {
        let epochs: BTreeSet<String> = (0..3)
            .map(|i| {
                g.daemons[i]
                    .master_field("config-epoch")
                    .unwrap_or_default()
            })
            .collect();
        if epochs.len() == 1 {
            Ok(())
        } else {
            Err(format!("{epochs:?}"))
        }
    });
    // The restart caused no second failover.
    for i in 0..3 {
        assert_eq!(g.daemons[i].master_addr(), addr(new_port));
    }
    let promoted = g
        .topo
        .replicas
        .iter()
        .find(|r| r.port == new_port)
        .expect("promoted");
    assert_eq!(role(promoted), "master");
}

/// Case 5: The Raft leader killed together with the master: the two survivors
/// elect a new leader and fail over.
#[test]
fn raft_leader_killed_with_master() {
    let mut g = Group::new();
    let leader = g.daemons[0]
        .raft_member_of_three()
        .expect("a leader is known");
    let l = (0..3)
        .find(|&i| g.daemons[i].raft_node_id().as_ref() == Some(&leader))
        .expect("the leader is one of the three daemons");
    let survivors: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let mut ev = g.subscribe(&survivors);
    g.daemons[l].sigkill();
    g.topo.master.sigkill();
    let _new_port = g.expect_failover(&survivors, &mut ev);
    expect_switch_once(&g, &survivors, &mut ev);
}

/// Send `SENTINEL FAILOVER` until the group can take it: `-NOQUORUM` only
/// means the master is not registered in the group yet.
fn request_failover(d: &Daemon) -> Resp {
    wait_for(BOUND, "SENTINEL FAILOVER accepted or refused", || {
        let r = d.conn().cmd(&["SENTINEL", "FAILOVER", MASTER]);
        match &r {
            Resp::Error(e) if e.starts_with("NOQUORUM") => Err(e.clone()),
            _ => Ok(r),
        }
    })
}

/// Case 6: `SENTINEL FAILOVER`: +OK, -INPROG while it runs, every daemon switches,
/// the old (running) master is demoted.
#[test]
fn manual_failover_switches_every_daemon() {
    let g = Group::new();
    let mut ev = g.subscribe(&[0, 1, 2]);
    let mut c = g.daemons[1].conn();
    let first = request_failover(&g.daemons[1]);
    assert_eq!(first, Resp::Status("OK".into()), "SENTINEL FAILOVER");
    assert_eq!(
        c.cmd(&["SENTINEL", "FAILOVER", MASTER]),
        Resp::Error("INPROG Failover already in progress".into()),
        "a second SENTINEL FAILOVER while the first runs"
    );
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    g.expect_old_master_demoted(&mut ev, new_port);
    expect_switch_once(&g, &[0, 1, 2], &mut ev);
}

/// Case 6b: `SENTINEL FAILOVER` with no suitable replica (the only one has
/// replica-priority 0): -NOGOODSLAVE, nothing changes.
#[test]
fn manual_failover_without_good_replica() {
    let g = Group::with_replicas(1);
    let r = &g.topo.replicas[0];
    assert_eq!(
        r.conn().cmd(&["CONFIG", "SET", "replica-priority", "0"]),
        Resp::Status("OK".into())
    );
    for d in &g.daemons {
        wait_for(BOUND, "daemons see replica-priority 0", || {
            let p = d.replicas().first().and_then(|r| r.field("slave-priority"));
            if p.as_deref() == Some("0") {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        });
    }
    assert_eq!(
        g.daemons[0].conn().cmd(&["SENTINEL", "FAILOVER", MASTER]),
        Resp::Error("NOGOODSLAVE No suitable replica to promote".into())
    );
    for d in &g.daemons {
        assert_eq!(d.master_addr(), addr(g.old_port));
    }
    assert_eq!(role(&g.topo.master), "master");
    assert_eq!(role(r), "slave");
}

/// A writer: acknowledged `RPUSH`es of increasing integers (and `INCR`s)
/// against the master named by a daemon, re-resolving on any error.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<WriterLog>,
}

#[derive(Default, Debug)]
struct WriterLog {
    /// (value pushed, port that acknowledged it)
    pushed: Vec<(u64, u16)>,
    /// Largest acknowledged INCR reply.
    max_incr: i64,
    errors: Vec<String>,
}

const LIST: &str = "it-failover-list";
const COUNTER: &str = "it-failover-counter";

impl Writer {
    fn start(sentinel_port: u16) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut log = WriterLog::default();
            let mut next = 0u64;
            let mut conn: Option<Conn> = None;
            while !flag.load(Ordering::SeqCst) {
                if conn.is_none() {
                    let a = Conn::connect(sentinel_port).ok().and_then(|mut s| {
                        match s.try_cmd(
                            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER],
                            Duration::from_secs(2),
                        ) {
                            Reply::Frame(r) => r
                                .items()
                                .and_then(|i| i.get(1))
                                .and_then(|p| p.as_str())
                                .and_then(|p| p.parse::<u16>().ok()),
                            _ => None,
                        }
                    });
                    conn = a.and_then(|p| Conn::connect(p).ok());
                    if conn.is_none() {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let port = c.port;
                next += 1;
                let v = next.to_string();
                let pushed = c.try_cmd(&["RPUSH", LIST, &v], Duration::from_secs(2));
                let incr = match &pushed {
                    Reply::Frame(Resp::Int(_)) => {
                        log.pushed.push((next, port));
                        c.try_cmd(&["INCR", COUNTER], Duration::from_secs(2))
                    }
                    other => other.clone(),
                };
                match incr {
                    Reply::Frame(Resp::Int(n)) => log.max_incr = log.max_incr.max(n),
                    other => {
                        if log.errors.len() < 50 {
                            log.errors
                                .push(format!("{port}: {}", other.describe().trim_end()));
                        }
                        conn = None;
                    }
                }
            }
            log
        });
        Writer { stop, handle }
    }

    fn finish(self) -> WriterLog {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("writer thread")
    }
}

/// Case 7: Coordinated manual failover: writes paused on the old master until
/// the replica caught up, so every acknowledged write is on the new master.
#[test]
fn coordinated_failover_loses_no_acknowledged_write() {
    let g = Group::new();
    for d in &g.daemons {
        assert_eq!(
            d.conn()
                .cmd(&["SENTINEL", "SET", MASTER, "coordinated-failover", "yes"]),
            Resp::Status("OK".into()),
            "SENTINEL SET coordinated-failover on {}",
            d.port
        );
    }
    let mut ev = g.subscribe(&[0, 1, 2]);
    let writer = Writer::start(g.daemons[0].port);
    // Some writes acknowledged by the old master before the switch.
    wait_for(BOUND, "writes acknowledged by the old master", || {
        match g.topo.master.conn().cmd(&["LLEN", LIST]).as_int() {
            Some(n) if n >= 200 => Ok(()),
            other => Err(format!("LLEN {other:?}")),
        }
    });
    let first = request_failover(&g.daemons[2]);
    assert_eq!(first, Resp::Status("OK".into()), "SENTINEL FAILOVER");
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    let new_master = g
        .topo
        .replicas
        .iter()
        .find(|r| r.port == new_port)
        .expect("promoted");
    // The writer reached the new master and wrote there for a while.
    let before = new_master.conn().cmd(&["LLEN", LIST]).as_int().unwrap_or(0);
    wait_for(
        BOUND,
        "the writer writes to the new master",
        || match new_master.conn().cmd(&["LLEN", LIST]).as_int() {
            Some(n) if n >= before + 200 => Ok(()),
            other => Err(format!("LLEN {other:?} (before {before})")),
        },
    );
    let log = writer.finish();
    let on_old = log.pushed.iter().filter(|(_, p)| *p == g.old_port).count();
    let on_new = log.pushed.iter().filter(|(_, p)| *p == new_port).count();
    assert!(
        on_old > 0 && on_new > 0,
        "writes acknowledged by the old ({on_old}) and the new ({on_new}) master"
    );
    let list = new_master.conn().cmd(&["LRANGE", LIST, "0", "-1"]);
    let have: BTreeSet<u64> = list
        .items()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
        .collect();
    let lost: Vec<&(u64, u16)> = log
        .pushed
        .iter()
        .filter(|(v, _)| !have.contains(v))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged RPUSH(es) missing on the new master {new_port} (value, acknowledging port), first ones: {:?}; writer errors: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)],
        log.errors
    );
    let counter = new_master
        .conn()
        .cmd(&["GET", COUNTER])
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    assert!(
        counter >= log.max_incr,
        "counter on the new master {counter} < largest acknowledged INCR {}",
        log.max_incr
    );
    // The coordinated procedure itself turns the old master into a replica
    // of the new one (no `+convert-to-slave`: it never came back as a master).
    g.expect_old_master_follows(new_port);
    // It was paused for writes (CLIENT PAUSE) and released (CLIENT UNPAUSE).
    wait_for(BOUND, "the old master was paused and unpaused", || {
        let stats = g.topo.master.info("commandstats");
        let calls = |cmd: &str| {
            info_field(&stats, &format!("cmdstat_client|{cmd}"))
                .and_then(|v| {
                    v.split(',')
                        .find_map(|kv| kv.strip_prefix("calls="))
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        if calls("pause") >= 1 && calls("unpause") >= 1 {
            Ok(())
        } else {
            Err(stats)
        }
    });
    expect_switch_once(&g, &[0, 1, 2], &mut ev);
}

/// Case 8: redis-py's `Sentinel` writing through an unplanned failover reaches
/// the new master: its writes succeed again afterwards.
#[test]
fn redis_py_writer_follows_unplanned_failover() {
    let Some(py) = std::env::var_os("RAFTINEL_PYTHON").map(PathBuf::from) else {
        skip_or_fail("RAFTINEL_PYTHON (a python with redis==8.1.0)");
        return;
    };
    let mut g = Group::new();
    let mut ev = g.subscribe(&[0, 1, 2]);
    let out = tempfile::Builder::new()
        .prefix("it-failover-py-")
        .tempdir()
        .expect("temp dir");
    let stdout = out.path().join("stdout");
    let stderr = out.path().join("stderr");
    let ports: Vec<String> = g.daemons.iter().map(|d| d.port.to_string()).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/failover_writer.py");
    let mut child = Command::new(py)
        .arg(script)
        .args(["--sentinel-ports", &ports.join(",")])
        .args(["--master-name", MASTER])
        .args(["--initial-master", &addr(g.old_port)])
        .args(["--key", "it-failover-py"])
        .args(["--deadline", "90"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).expect("stdout"))
        .stderr(fs::File::create(&stderr).expect("stderr"))
        .spawn()
        .expect("spawn the redis-py writer");
    let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
    let ready = wait_until(BOUND, || {
        read(&stdout).contains("READY") || child.try_wait().ok().flatten().is_some()
    });
    assert!(
        ready && read(&stdout).contains("READY"),
        "redis-py writer did not start writing\n--- stdout ---\n{}\n--- stderr ---\n{}",
        read(&stdout),
        read(&stderr)
    );
    g.topo.master.sigkill();
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    let mut status = None;
    wait_until(Duration::from_secs(120), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = read(&stdout);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "redis-py writer failed (None = killed)\n--- stdout ---\n{text}\n--- stderr ---\n{}",
        read(&stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.split(' ').nth(1) == Some(addr(new_port).as_str())),
        "redis-py writes reached {} after the failover:\n{text}",
        addr(new_port)
    );
}
