//! Test harness: real processes on loopback (modelled on garage's integration
//! tests). Every process gets its own temp dir and log file, is polled until it
//! answers PING, and is killed when its handle drops. Every wait is bounded.
//!
//! - `RedisNode`: a real `redis-server`.
//! - `OracleSentinel`: a real `redis-sentinel` 7.0.15, the reference.
//! - `Raftinel`: the daemon under test (`CARGO_BIN_EXE_raftinel`, or the
//!   program named by `RAFTINEL_IT_BIN`, which lets the suite itself be checked
//!   against a real `redis-sentinel`).
//! - `resp`: an independent RESP2/RESP3 client.

#![allow(dead_code)]

pub mod group;
pub mod history;
pub mod kube_api;
pub mod netns;
pub mod resp;

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use resp::{Conn, Reply, Resp};

pub const MASTER: &str = "mymaster";
/// Small down-after so detection tests stay quick.
pub const DOWN_AFTER_MS: u64 = 1000;
/// Upper bound for "eventually" in tests; generous so a loaded 2-core CI never flakes.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- waiting

/// Poll `pred` every 50 ms until it returns true or `timeout` passes.
/// Returns whether it became true.
pub fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        pause(Duration::from_millis(50));
    }
}

/// Poll `f` until it yields `Some`, or panic with `what` and the last state.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last state: {last}");
        }
        pause(Duration::from_millis(50));
    }
}

/// Sleep between polls (the only sleep in the suite; never used to assert timing).
fn pause(d: Duration) {
    std::thread::sleep(d);
}

// ---------------------------------------------------------------- ports

/// A free loopback port. Ports come from a per-process window below the
/// kernel's ephemeral range (so outbound connections never take them), and
/// each candidate is checked by binding it, so parallel tests and parallel
/// test processes do not collide.
pub fn free_port() -> u16 {
    static NEXT: OnceLock<AtomicU16> = OnceLock::new();
    const LOW: u16 = 12000;
    const HIGH: u16 = 32000;
    let next = NEXT.get_or_init(|| {
        let start = LOW as u32 + (std::process::id() % 400) * 50;
        AtomicU16::new(start as u16)
    });
    for _ in 0..(HIGH - LOW) {
        let mut p = next.fetch_add(1, Ordering::SeqCst);
        if p >= HIGH {
            // Wrap around; a concurrent caller may also wrap, which is harmless.
            let _ = next.compare_exchange(p + 1, LOW, Ordering::SeqCst, Ordering::SeqCst);
            p = LOW + (p - LOW) % (HIGH - LOW);
        }
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in {LOW}..{HIGH}");
}

/// True if something accepts TCP connections on the loopback port.
pub fn port_open(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

// ---------------------------------------------------------------- binaries

pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

fn require(bin: &str) -> PathBuf {
    which(bin).unwrap_or_else(|| {
        panic!("`{bin}` not found on PATH: install redis-server, redis-sentinel and redis-tools (.ci/run does)")
    })
}

/// The daemon under test.
pub fn raftinel_bin() -> PathBuf {
    match std::env::var_os("RAFTINEL_IT_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_raftinel")),
    }
}

/// Whether an optional external tool may be skipped: absent tools fail the
/// test under CI (`CI` set) and print a skip line otherwise.
pub fn skip_or_fail(what: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required when CI is set");
    }
    eprintln!("SKIPPED: {what} not available (set it up with .ci/run)");
    true
}

// ---------------------------------------------------------------- processes

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    child: Option<Child>,
    pub name: String,
}

impl Proc {
    pub fn spawn(mut cmd: Command, name: &str, stdout: &Path, stderr: &Path) -> Proc {
        let out = fs::File::create(stdout).expect("create stdout log");
        let err = fs::File::create(stderr).expect("create stderr log");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // Safety net: if the test process dies without unwinding, the
        // children die with the spawning (test) thread.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({:?}): {e}", cmd.get_program()));
        Proc {
            child: Some(child),
            name: name.into(),
        }
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Exit status if the process has exited (reaps it).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait up to `timeout` for exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            pause(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        let st = self.wait_exit(Duration::from_secs(10));
        if st.is_none() {
            self.kill();
        }
        self.child = None;
        st
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.is_some() && self.try_exit().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir")
}

/// Poll PING until `+PONG`, or panic with `diag()`.
pub fn wait_pong(port: u16, what: &str, mut alive: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Conn::connect(port) {
            // A password-protected server answers -NOAUTH: up all the same.
            match c.try_cmd(&["PING"], Duration::from_secs(2)) {
                Reply::Frame(Resp::Status(s)) if s == "PONG" => return,
                Reply::Frame(Resp::Error(e)) if e.starts_with("NOAUTH") => return,
                _ => {}
            }
        }
        if let Err(e) = alive() {
            panic!("{what} on port {port} exited before answering PING: {e}");
        }
        if Instant::now() >= deadline {
            panic!("{what} on port {port} did not answer PING within 20 s");
        }
        pause(Duration::from_millis(30));
    }
}

// ---------------------------------------------------------------- redis-server

/// A real `redis-server` on loopback.
pub struct RedisNode {
    pub port: u16,
    proc: Proc,
    dir: tempfile::TempDir,
    restarts: u32,
    extra: Vec<String>,
}

impl RedisNode {
    pub fn start() -> RedisNode {
        Self::start_with(&[])
    }

    /// Start with extra `redis-server` arguments (e.g. `--requirepass x`).
    pub fn start_with(extra: &[&str]) -> RedisNode {
        let dir = tempdir("it-redis-");
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let proc = Self::launch(port, dir.path(), &extra, 0);
        RedisNode {
            port,
            proc,
            dir,
            restarts: 0,
            extra,
        }
    }

    /// A node that replicates `master` (link not necessarily up yet).
    pub fn replica_of(master: &RedisNode) -> RedisNode {
        let node = RedisNode::start();
        let r = node
            .conn()
            .cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
        assert_eq!(r, Resp::Status("OK".into()), "REPLICAOF on {}", node.port);
        node
    }

    fn launch(port: u16, dir: &Path, extra: &[String], n: u32) -> Proc {
        let bin = require("redis-server");
        let log = dir.join(format!("redis-{n}.log"));
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .args(extra);
        let mut proc = Proc::spawn(
            cmd,
            "redis-server",
            &dir.join("stdout"),
            &dir.join("stderr"),
        );
        let log2 = log.clone();
        wait_pong(port, "redis-server", || match proc.try_exit() {
            Some(s) => Err(format!("{s}; log:\n{}", tail(&log2, 20))),
            None => Ok(()),
        });
        proc
    }

    pub fn conn(&self) -> Conn {
        Conn::open(self.port)
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid().expect("redis-server not running")
    }

    pub fn sigstop(&self) {
        self.proc.signal(libc::SIGSTOP);
    }

    pub fn sigcont(&self) {
        self.proc.signal(libc::SIGCONT);
    }

    pub fn sigkill(&mut self) {
        self.proc.kill();
    }

    /// Start again on the same port with `extra` arguments from now on.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|a| a.to_string()).collect();
        self.restart();
    }

    /// Start again on the same port (after `sigkill`); it gets a new run_id.
    pub fn restart(&mut self) {
        self.proc.kill();
        self.restarts += 1;
        self.proc = Self::launch(self.port, self.dir.path(), &self.extra, self.restarts);
    }

    pub fn info(&self, section: &str) -> String {
        self.conn()
            .cmd(&["INFO", section])
            .as_str()
            .unwrap_or_default()
    }

    pub fn run_id(&self) -> String {
        info_field(&self.info("server"), "run_id").unwrap_or_default()
    }

    /// One command on a new connection (`try_cmd_at`).
    pub fn try_cmd(&self, args: &[&str]) -> Result<Resp, String> {
        try_cmd_at(self.port, args, resp::READ_TIMEOUT)
    }

    /// `INFO replication`, through `try_cmd`.
    pub fn try_replication_info(&self) -> Result<String, String> {
        self.try_cmd(&["INFO", "replication"])
            .map(|r| r.as_str().unwrap_or_default())
    }

    /// Waits until this node replicates the node on `master` with its link up.
    pub fn wait_follows(&self, master: u16, timeout: Duration) {
        wait_for(
            timeout,
            &format!("node {} follows {master}", self.port),
            || {
                let info = self.try_replication_info()?;
                if info_field(&info, "master_port") == Some(master.to_string())
                    && info_field(&info, "master_link_status").as_deref() == Some("up")
                {
                    Ok(())
                } else {
                    Err(info)
                }
            },
        );
    }

    /// Waits until this replica reports `master_link_status:up`.
    pub fn wait_link_up(&self) {
        wait_for(EVENTUALLY, "replica link up", || {
            let info = self.try_replication_info()?;
            if info_field(&info, "master_link_status").as_deref() == Some("up") {
                Ok(())
            } else {
                Err(info)
            }
        });
    }
}

/// One command to 127.0.0.1:`port` on a new connection; `Err` says what
/// came instead of a reply. For waits that poll a node a daemon may
/// reconfigure meanwhile: its transaction ends with `CLIENT KILL TYPE normal`
/// (as redis-sentinel's does), which closes a connection open at that moment.
pub fn try_cmd_at(port: u16, args: &[&str], timeout: Duration) -> Result<Resp, String> {
    let mut c = Conn::connect(port).map_err(|e| format!("node {port}: {e}"))?;
    match c.try_cmd(args, timeout) {
        Reply::Frame(r) => Ok(r),
        other => Err(format!("node {port}: {}", other.describe())),
    }
}

/// Value of `key:` in an INFO text.
pub fn info_field(info: &str, key: &str) -> Option<String> {
    info.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim_end().to_string())
    })
}

/// 1 master + 2 replicas with their links up.
pub struct Topology {
    pub master: RedisNode,
    pub replicas: Vec<RedisNode>,
}

impl Topology {
    pub fn new(replicas: usize) -> Topology {
        let master = RedisNode::start();
        let replicas: Vec<RedisNode> = (0..replicas)
            .map(|_| RedisNode::replica_of(&master))
            .collect();
        for r in &replicas {
            r.wait_link_up();
        }
        Topology { master, replicas }
    }

    /// The Redis node (master or replica as started) listening on `port`.
    pub fn node(&self, port: u16) -> &RedisNode {
        std::iter::once(&self.master)
            .chain(self.replicas.iter())
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no Redis node on port {port}"))
    }

    pub fn node_mut(&mut self, port: u16) -> &mut RedisNode {
        std::iter::once(&mut self.master)
            .chain(self.replicas.iter_mut())
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no Redis node on port {port}"))
    }
}

// ---------------------------------------------------------------- sentinel.conf

/// One `sentinel monitor` block.
#[derive(Clone, Debug)]
pub struct Monitor {
    pub name: String,
    pub port: u16,
    pub quorum: u32,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
}

impl Monitor {
    pub fn new(port: u16, quorum: u32) -> Monitor {
        Monitor {
            name: MASTER.into(),
            port,
            quorum,
            down_after_ms: DOWN_AFTER_MS,
            failover_timeout_ms: 180_000,
        }
    }
}

/// The text of a sentinel.conf for a daemon on `port`.
pub fn sentinel_conf(port: u16, dir: &Path, monitors: &[Monitor], extra: &[String]) -> String {
    let mut s = String::new();
    s.push_str(&format!("port {port}\n"));
    s.push_str("bind 127.0.0.1\n");
    s.push_str("daemonize no\n");
    s.push_str(&format!("dir \"{}\"\n", dir.display()));
    for m in monitors {
        s.push_str(&format!(
            "sentinel monitor {} 127.0.0.1 {} {}\n",
            m.name, m.port, m.quorum
        ));
        s.push_str(&format!(
            "sentinel down-after-milliseconds {} {}\n",
            m.name, m.down_after_ms
        ));
        s.push_str(&format!(
            "sentinel failover-timeout {} {}\n",
            m.name, m.failover_timeout_ms
        ));
    }
    for line in extra {
        s.push_str(line);
        s.push('\n');
    }
    s
}

// ---------------------------------------------------------------- sentinels

/// Which program serves a sentinel port.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Oracle,
    Raftinel,
}

/// A sentinel process (real `redis-sentinel` or the daemon under test) with
/// its config file, stdout/stderr logs and temp dir.
pub struct SentinelProc {
    pub kind: Kind,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    proc: Proc,
    starts: u32,
    /// Extra command-line words after the config file (e.g. `--port N`).
    args: Vec<String>,
}

pub type OracleSentinel = SentinelProc;
pub type Raftinel = SentinelProc;

impl SentinelProc {
    /// A real redis-sentinel monitoring `monitors`.
    pub fn oracle(monitors: &[Monitor]) -> SentinelProc {
        Self::with_conf(Kind::Oracle, |port, dir| {
            sentinel_conf(port, dir, monitors, &[])
        })
    }

    /// The daemon under test monitoring `monitors`.
    pub fn raftinel(monitors: &[Monitor]) -> SentinelProc {
        Self::with_conf(Kind::Raftinel, |port, dir| {
            sentinel_conf(port, dir, monitors, &[])
        })
    }

    /// Start `kind` with the config text produced by `conf(port, dir)`.
    pub fn with_conf(kind: Kind, conf: impl FnOnce(u16, &Path) -> String) -> SentinelProc {
        let dir = tempdir(match kind {
            Kind::Oracle => "it-oracle-",
            Kind::Raftinel => "it-raftinel-",
        });
        let port = free_port();
        let path = dir.path().join("sentinel.conf");
        fs::write(&path, conf(port, dir.path())).expect("write sentinel.conf");
        let mut s = Self::spawn_unchecked(kind, port, dir, path);
        s.wait_ready();
        s
    }

    /// Start without waiting for readiness (for tests of failing starts).
    pub fn spawn_unchecked(
        kind: Kind,
        port: u16,
        dir: tempfile::TempDir,
        conf: PathBuf,
    ) -> SentinelProc {
        Self::spawn_with_args(kind, port, dir, conf, Vec::new())
    }

    /// Start with extra command-line words after the config file; `port` is
    /// where the process is expected to listen.
    pub fn spawn_with_args(
        kind: Kind,
        port: u16,
        dir: tempfile::TempDir,
        conf: PathBuf,
        args: Vec<String>,
    ) -> SentinelProc {
        let proc = Self::launch(kind, dir.path(), &conf, &args, 0);
        SentinelProc {
            kind,
            port,
            dir,
            conf,
            proc,
            starts: 0,
            args,
        }
    }

    fn launch(kind: Kind, dir: &Path, conf: &Path, args: &[String], n: u32) -> Proc {
        let (bin, name) = match kind {
            Kind::Oracle => (require("redis-sentinel"), "redis-sentinel"),
            Kind::Raftinel => (raftinel_bin(), "raftinel"),
        };
        let mut cmd = Command::new(bin);
        cmd.arg(conf).args(args).current_dir(dir);
        if kind == Kind::Raftinel {
            cmd.env("RUST_BACKTRACE", "1");
        }
        Proc::spawn(
            cmd,
            name,
            &dir.join(format!("stdout-{n}.log")),
            &dir.join(format!("stderr-{n}.log")),
        )
    }

    pub fn wait_ready(&mut self) {
        let port = self.port;
        let what = format!("{:?} sentinel", self.kind);
        let (out, err) = (self.stdout_path(), self.stderr_path());
        let proc = &mut self.proc;
        wait_pong(port, &what, || match proc.try_exit() {
            Some(s) => Err(format!(
                "{s}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                tail(&out, 30),
                tail(&err, 30)
            )),
            None => Ok(()),
        });
    }

    pub fn stdout_path(&self) -> PathBuf {
        self.dir.path().join(format!("stdout-{}.log", self.starts))
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join(format!("stderr-{}.log", self.starts))
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    pub fn conf_text(&self) -> String {
        fs::read_to_string(&self.conf).unwrap_or_default()
    }

    pub fn conn(&self) -> Conn {
        Conn::open(self.port)
    }

    pub fn sigstop(&self) {
        self.proc.signal(libc::SIGSTOP);
    }

    pub fn sigcont(&self) {
        self.proc.signal(libc::SIGCONT);
    }

    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.proc.terminate()
    }

    /// Stop (SIGTERM) and start again with the same config file and port.
    pub fn restart(&mut self) {
        self.stop();
        wait_until(Duration::from_secs(10), || !port_open(self.port));
        self.starts += 1;
        self.proc = Self::launch(
            self.kind,
            self.dir.path(),
            &self.conf,
            &self.args,
            self.starts,
        );
        self.wait_ready();
    }

    pub fn myid(&self) -> String {
        self.conn()
            .cmd(&["SENTINEL", "MYID"])
            .as_str()
            .unwrap_or_default()
    }

    /// `SENTINEL <sub> <master>` as a list of descriptions.
    pub fn descriptions(&self, sub: &str, master: &str) -> Vec<Resp> {
        match self.conn().cmd(&["SENTINEL", sub, master]) {
            Resp::Array(v) => v,
            other => panic!(
                "SENTINEL {sub} {master} on {}: {}",
                self.port,
                other.pretty()
            ),
        }
    }

    pub fn master_field(&self, master: &str, field: &str) -> Option<String> {
        self.conn()
            .cmd(&["SENTINEL", "MASTER", master])
            .field(field)
    }

    /// A `PSUBSCRIBE *` connection (after `HELLO 3` if `resp3`), confirmed.
    pub fn psubscribe_all(&self, resp3: bool) -> Conn {
        let mut c = self.conn();
        if resp3 {
            let hello = c.cmd(&["HELLO", "3"]);
            assert!(matches!(hello, Resp::Map(_)), "HELLO 3: {}", hello.pretty());
        }
        c.send(&["PSUBSCRIBE", "*"]).expect("send PSUBSCRIBE");
        let r = c.read();
        let items = r.items().unwrap_or_default();
        assert!(
            items.len() == 3 && items[0].as_str().as_deref() == Some("psubscribe"),
            "bad PSUBSCRIBE * confirmation: {}",
            r.pretty()
        );
        c
    }

    /// A subscription connection, confirmed.
    pub fn subscribe(&self, channels: &[&str]) -> Conn {
        let mut c = self.conn();
        let mut args = vec!["SUBSCRIBE"];
        args.extend_from_slice(channels);
        c.send(&args).expect("send SUBSCRIBE");
        for ch in channels {
            let r = c.read();
            let items = r.items().unwrap_or_default();
            assert!(
                items.len() == 3 && items[0].as_str().as_deref() == Some("subscribe"),
                "bad SUBSCRIBE {ch} confirmation: {}",
                r.pretty()
            );
        }
        c
    }
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = writeln!(
                std::io::stderr(),
                "---- {:?} on port {} (dir {}) ----\nstdout tail:\n{}\nstderr tail:\n{}\nconfig:\n{}",
                self.kind,
                self.port,
                self.dir.path().display(),
                tail(&self.stdout_path(), 40),
                tail(&self.stderr_path(), 20),
                self.conf_text()
            );
        }
        self.proc.kill();
    }
}

/// Wait until a predicate over a sentinel's replies holds; errors describe state.
pub fn eventually(what: &str, f: impl FnMut() -> Result<(), String>) {
    wait_for(EVENTUALLY, what, f)
}
