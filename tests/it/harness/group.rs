//! A Raft group of three raftinel daemons over a real master and replicas,
//! shared by the failover and client tests. The daemons are managed here
//! (`Daemon`), not by `SentinelProc`, because tests restart a daemon on the
//! same directory after it stopped and read its Raft status.

use super::resp::{as_message, Message};
use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
/// Generous bound for a whole failover (or a group forming) on a loaded
/// 2-core CI machine running several of these tests at once.
pub const BOUND: Duration = Duration::from_secs(45);
pub const FAILOVER_TIMEOUT_MS: u64 = 10_000;
pub const QUORUM: u32 = 2;
pub fn monitor(port: u16) -> Monitor {
    Monitor {
        failover_timeout_ms: FAILOVER_TIMEOUT_MS,
        ..Monitor::new(port, QUORUM)
    }
}

// ---------------------------------------------------------------- daemons

/// A raftinel daemon whose process can be stopped and started again on the
/// same config file and directory (same myid, same Raft data).
pub struct Daemon {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub child: Option<Child>,
    /// Number of starts so far; start `n` logs to `stdout-n.log`/`stderr-n.log`.
    pub starts: u32,
    /// Environment variables of the process (e.g. `RAFTINEL_SECRET`).
    pub env: Vec<(String, String)>,
}

impl Daemon {
    pub fn start(m: &Monitor) -> Daemon {
        Self::start_with(m, &[])
    }

    /// Start with `extra` lines appended to its sentinel.conf (e.g. scripts,
    /// which Sentinel only accepts from the file by default).
    pub fn start_with(m: &Monitor, extra: &[String]) -> Daemon {
        Self::start_with_env(m, extra, Vec::new())
    }

    /// [`Daemon::start_with`], the process getting `env` too.
    pub fn start_with_env(m: &Monitor, extra: &[String], env: Vec<(String, String)>) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("it-failover-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        fs::write(
            &conf,
            sentinel_conf(port, dir.path(), std::slice::from_ref(m), extra),
        )
        .expect("write sentinel.conf");
        Self::first_launch(port, dir, conf, env)
    }

    /// The daemon on `port` with its directory and config file, started.
    fn first_launch(
        port: u16,
        dir: tempfile::TempDir,
        conf: PathBuf,
        env: Vec<(String, String)>,
    ) -> Daemon {
        let mut d = Daemon {
            port,
            dir,
            conf,
            child: None,
            starts: 0,
            env,
        };
        d.launch();
        d
    }

    /// A daemon configured by a raftinel.toml: the server and master lines
    /// of `sentinel_conf` with an admin listener (`admin-addr`), then `table`
    /// (e.g. a `[kubernetes]` table).
    pub fn start_toml(m: &Monitor, table: &str, env: Vec<(String, String)>) -> Daemon {
        Self::start_toml_on(free_port(), m, table, env)
    }

    /// [`Daemon::start_toml`] on sentinel port `port`.
    pub fn start_toml_on(
        port: u16,
        m: &Monitor,
        table: &str,
        env: Vec<(String, String)>,
    ) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("it-toml-")
            .tempdir()
            .expect("temp dir");
        let conf = dir.path().join("raftinel.toml");
        let text = format!(
            "[server]\nport = {port}\nbind = \"127.0.0.1\"\ndir = \"{}\"\n\
             admin-addr = \"127.0.0.1:{}\"\n\n\
             [[masters]]\nname = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\nquorum = {}\n\
             down-after-milliseconds = {}\nfailover-timeout = {}\n\n{table}\n",
            dir.path().display(),
            free_port(),
            m.name,
            m.port,
            m.quorum,
            m.down_after_ms,
            m.failover_timeout_ms
        );
        fs::write(&conf, text).expect("write raftinel.toml");
        Self::first_launch(port, dir, conf, env)
    }

    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "daemon {} already running", self.port);
        let n = self.starts;
        let out = fs::File::create(self.dir.path().join(format!("stdout-{n}.log"))).expect("log");
        let err = fs::File::create(self.dir.path().join(format!("stderr-{n}.log"))).expect("log");
        let mut cmd = Command::new(raftinel_bin());
        cmd.arg(&self.conf)
            .current_dir(self.dir.path())
            .env("RUST_BACKTRACE", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit (SIGKILL after 10 s).
    pub fn sigterm(&mut self) -> Option<ExitStatus> {
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

    pub fn conn(&self) -> Conn {
        Conn::open(self.port)
    }

    /// What the log of start `n` (0-based) says, stdout and stderr.
    pub fn log_of(&self, n: u32) -> String {
        let read = |f: String| fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        read(format!("stdout-{n}.log")) + &read(format!("stderr-{n}.log"))
    }

    pub fn log(&self) -> String {
        (0..self.starts).map(|n| self.log_of(n)).collect()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn bootstrapped(&self) -> bool {
        self.log().contains("raft: bootstrapped a new group")
    }

    pub fn myid(&self) -> String {
        self.conn()
            .cmd(&["SENTINEL", "MYID"])
            .as_str()
            .unwrap_or_default()
    }

    pub fn master_field(&self, field: &str) -> Option<String> {
        self.conn()
            .cmd(&["SENTINEL", "MASTER", MASTER])
            .field(field)
    }

    pub fn replicas(&self) -> Vec<Resp> {
        match self.conn().cmd(&["SENTINEL", "REPLICAS", MASTER]) {
            Resp::Array(v) => v,
            other => panic!("SENTINEL REPLICAS on {}: {}", self.port, other.pretty()),
        }
    }

    /// GET-MASTER-ADDR-BY-NAME as `ip:port`.
    pub fn master_addr(&self) -> String {
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
    pub fn raft_info(&self) -> Result<BTreeMap<String, String>, String> {
        let r = try_cmd_at(self.port, &["INFO", "raft"], Duration::from_secs(5))?;
        let text = r.as_str().ok_or_else(|| r.pretty())?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
            .collect())
    }

    /// In a group of three voters with a known leader: the leader's node id.
    pub fn raft_member_of_three(&self) -> Result<String, String> {
        let st = self.raft_info()?;
        let get = |k: &str| st.get(k).map(String::as_str).unwrap_or("");
        let leader = get("raft_leader_id");
        if get("raft_initialized") == "1" && get("raft_voters") == "3" && !leader.is_empty() {
            Ok(leader.to_string())
        } else {
            Err(format!("daemon {}: {st:?}", self.port))
        }
    }

    pub fn raft_node_id(&self) -> Option<String> {
        self.raft_info().ok()?.get("raft_node_id").cloned()
    }

    /// The Raft data files (`<dir>/raftinel-<myid prefix>/raft/`, the
    /// layout for a `dir` that several daemons may share) with their sizes.
    pub fn raft_files(&self) -> Vec<(String, u64)> {
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
pub struct Events {
    pub port: u16,
    pub conn: Conn,
    pub seen: Vec<Message>,
}

impl Events {
    pub fn new(d: &Daemon) -> Events {
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
    pub fn poll(&mut self, d: Duration) {
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

    pub fn find(&self, channel: &str, pred: &dyn Fn(&str) -> bool) -> Option<Message> {
        self.seen
            .iter()
            .find(|m| m.channel == channel && pred(&m.payload))
            .cloned()
    }

    pub fn count(&self, channel: &str) -> usize {
        self.seen.iter().filter(|m| m.channel == channel).count()
    }

    pub fn wait(
        &mut self,
        channel: &str,
        pred: &dyn Fn(&str) -> bool,
        timeout: Duration,
    ) -> Message {
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

    pub fn dump(&self) -> String {
        self.seen
            .iter()
            .map(|m| format!("  {} {}\n", m.channel, m.payload))
            .collect()
    }
}

/// Wait until some daemon published a matching message.
pub fn wait_any(
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

pub fn role(node: &RedisNode) -> String {
    role_at(node.port)
}

/// The first element of ROLE on 127.0.0.1:`port` on a new connection, or
/// what came instead (`try_cmd_at`).
pub fn role_at(port: u16) -> String {
    match try_cmd_at(port, &["ROLE"], Duration::from_secs(3)) {
        Ok(r) => r
            .items()
            .and_then(|i| i.first())
            .and_then(|k| k.as_str())
            .unwrap_or_else(|| r.pretty()),
        Err(e) => e,
    }
}

pub fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Parse a `+switch-master` payload into (old port, new port), checking the
/// name and the addresses' form.
pub fn parse_switch(payload: &str) -> (u16, u16) {
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
pub struct Group {
    pub topo: Topology,
    pub daemons: Vec<Daemon>,
    pub old_port: u16,
}

impl Group {
    pub fn new() -> Group {
        Self::with_replicas(2)
    }

    pub fn with_replicas(n: usize) -> Group {
        Self::with_conf(n, |_| Vec::new())
    }

    /// `n` replicas; daemon `i`'s sentinel.conf gets the lines `extra(i)`.
    pub fn with_conf(n: usize, extra: impl Fn(usize) -> Vec<String>) -> Group {
        Self::with_env(n, extra, |_| Vec::new())
    }

    /// [`Group::with_conf`], daemon `i`'s process getting the environment `env(i)`.
    pub fn with_env(
        n: usize,
        extra: impl Fn(usize) -> Vec<String>,
        env: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Group {
        let topo = Topology::new(n);
        let old_port = topo.master.port;
        let m = monitor(old_port);
        let daemons: Vec<Daemon> = (0..3)
            .map(|i| Daemon::start_with_env(&m, &extra(i), env(i)))
            .collect();
        let g = Group {
            topo,
            daemons,
            old_port,
        };
        g.wait_formed(&[0, 1, 2], n);
        g
    }

    /// A group of the daemons `start(i, monitor)` starts (i in 0..3) over
    /// `topo`, formed.
    pub fn with_daemons(topo: Topology, start: impl Fn(usize, &Monitor) -> Daemon) -> Group {
        let old_port = topo.master.port;
        let m = monitor(old_port);
        let n = topo.replicas.len();
        let daemons: Vec<Daemon> = (0..3).map(|i| start(i, &m)).collect();
        let g = Group {
            topo,
            daemons,
            old_port,
        };
        g.wait_formed(&[0, 1, 2], n);
        g
    }

    /// Index of the daemon that is the group's Raft leader.
    pub fn raft_leader(&self) -> usize {
        let leader = self.daemons[0]
            .raft_member_of_three()
            .expect("a leader is known");
        (0..self.daemons.len())
            .find(|&i| self.daemons[i].raft_node_id().as_ref() == Some(&leader))
            .expect("the leader is one of the daemons")
    }

    /// The daemons `idx` agree on one Raft leader, their group has the three
    /// voters, and each knows `replicas` healthy replicas and both peers.
    pub fn wait_formed(&self, idx: &[usize], replicas: usize) {
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
                    let healthy = list.iter().filter(|r| r.is_healthy_replica()).count();
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

    pub fn subscribe(&self, idx: &[usize]) -> Vec<Events> {
        idx.iter().map(|&i| Events::new(&self.daemons[i])).collect()
    }

    pub fn replica_ports(&self) -> Vec<u16> {
        self.topo.replicas.iter().map(|r| r.port).collect()
    }

    /// The failover from the old master is done as seen by daemons `idx`
    /// (whose events are `events`): each published `+switch-master` old → the
    /// same former replica, each answers that address, the promoted node is a
    /// master and the other replica follows it. Returns the new master's port.
    pub fn expect_failover(&self, idx: &[usize], events: &mut [Events]) -> u16 {
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
        let promoted = self.topo.node(new_port);
        wait_for(
            BOUND,
            "the promoted replica answers ROLE master",
            || match role(promoted).as_str() {
                "master" => Ok(()),
                other => Err(other.to_string()),
            },
        );
        for r in self.topo.replicas.iter().filter(|r| r.port != new_port) {
            r.wait_follows(new_port, BOUND);
        }
        new_port
    }

    /// The old master (running again) becomes a replica of `new_port`:
    /// `+convert-to-slave` on some daemon, ROLE slave, following the new master.
    pub fn expect_old_master_demoted(&self, events: &mut [Events], new_port: u16) {
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

    /// Sets `coordinated-failover <yes|no>` for the master on daemons `idx`.
    pub fn set_coordinated(&self, idx: &[usize], value: &str) {
        for &i in idx {
            let d = &self.daemons[i];
            assert_eq!(
                d.conn()
                    .cmd(&["SENTINEL", "SET", MASTER, "coordinated-failover", value]),
                Resp::Status("OK".into()),
                "SENTINEL SET coordinated-failover {value} on {}",
                d.port
            );
        }
    }

    /// A client connection to the old master, opened before a failover:
    /// `expect_killed_after_switch` waits for it to be killed.
    pub fn old_master_client(&self) -> Conn {
        let mut c = self.topo.master.conn();
        assert_eq!(c.cmd(&["PING"]), Resp::Status("PONG".into()));
        c
    }

    /// Publish, then demote: the client connection `c` to the old master is
    /// killed (its demotion's CLIENT KILL) only after every daemon of
    /// `events` published `+switch-master`. Causal, not timed: once the
    /// connection is seen closed, the messages published before the kill
    /// are already in the subscribers' sockets.
    pub fn expect_killed_after_switch(&self, c: &mut Conn, events: &mut [Events]) {
        match c.read_reply(BOUND) {
            Reply::Closed => {}
            other => panic!("the old master's client was not killed: {other:?}"),
        }
        for e in events.iter_mut() {
            e.poll(Duration::from_millis(100));
            assert!(
                e.find("+switch-master", &|_| true).is_some(),
                "daemon {}: the old master's clients were killed before its +switch-master; seen:\n{}",
                e.port,
                e.dump()
            );
        }
    }

    /// The old master reports ROLE slave and replicates `new_port`.
    pub fn expect_old_master_follows(&self, new_port: u16) {
        wait_for(BOUND, "the old master is a replica of the new one", || {
            let info = self.topo.master.try_replication_info()?;
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
pub fn expect_switch_once(g: &Group, idx: &[usize], events: &mut [Events]) {
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
