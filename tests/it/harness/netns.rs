//! Pods in network namespaces, for partition tests.
//!
//! A [`Net`] is a small private network that exists only inside namespaces the
//! test made: one namespace per pod, a bridge namespace holding a Linux bridge,
//! and a client namespace that reaches every pod. Pods and the client are
//! joined to the bridge by veth pairs created directly between those
//! namespaces, so nothing is ever added to, or changed in, the host's own
//! network namespace. Addresses come from 198.18.0.0/24 (the range reserved
//! for network benchmarking, RFC 2544), which exists only on these veths.
//!
//! A [`Pod`] is a namespace, an address, a hostname (every namespace gets the
//! same hosts file, bind-mounted over /etc/hosts by `ip netns exec`), a
//! scratch directory and named processes, each started from a command line
//! and an environment and restartable as it was. The partition-test cluster
//! (`tests/it/netsafe.rs`) puts a redis-server and a daemon in each pod; a
//! rehearsal of rendered Kubernetes manifests can start the containers'
//! commands the same way.
//!
//! Nemeses cut links with `iptables` inside the pods' namespaces (packets are
//! dropped, as in a real partition, not refused), and act on processes with
//! signals. Names start with `rft-<pid>-<n>-`; everything is removed on drop,
//! panics included, and namespaces left by a test process that died without
//! unwinding are removed by the next [`Net::new`]. Needs root: without it the
//! tests print a skip line, or fail when `CI` is set.
//!
//! One `Net` at a time per test process (a lock): partition tests measure
//! timings and should not share two cores with each other.

use super::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// First three octets of every address of a `Net` (RFC 2544 range).
pub const SUBNET: &str = "198.18.0";
/// The client namespace's address.
pub const CLIENT_IP: &str = "198.18.0.2";
const NETNS_DIR: &str = "/run/netns";
const ETC_NETNS: &str = "/etc/netns";
const PREFIX: &str = "rft-";

/// Address of pod `i`.
pub fn pod_ip(i: usize) -> String {
    format!("{SUBNET}.{}", 11 + i)
}

/// The command line of a throwaway redis-server on `ip`:6379 in a pod (no
/// persistence), plus `extra` arguments.
pub fn redis_argv(ip: &str, extra: &[&str]) -> Vec<OsString> {
    let base = ["redis-server", "--port", "6379", "--bind", ip, "--save", ""];
    let more = ["--appendonly", "no", "--protected-mode", "no"];
    base.iter()
        .chain(more.iter())
        .chain(extra.iter())
        .map(OsString::from)
        .collect()
}

// ---------------------------------------------------------------- commands

/// Run a short administrative command (`ip`, `iptables`); its output or why it failed.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub fn must(program: &str, args: &[&str]) -> String {
    run(program, args).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether this process may build namespaces: root, `ip` and `iptables`.
/// Otherwise prints a skip line and returns false, or panics under CI.
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let missing: Vec<&str> = ["ip", "iptables"]
        .into_iter()
        .filter(|b| which(b).is_none())
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = if root {
        format!(
            "{} (Debian packages iproute2, iptables)",
            missing.join(", ")
        )
    } else {
        "root (network namespaces)".to_string()
    };
    !skip_or_fail(&format!("partition tests: {why}"))
}

// ---------------------------------------------------------------- namespaces

/// A named network namespace, deleted (with its hosts file) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Create namespace `name` with its loopback up.
    pub fn create(name: &str) -> Netns {
        must("ip", &["netns", "add", name]);
        let ns = Netns { name: name.into() };
        must("ip", &["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `iptables <args>` inside the namespace.
    pub fn iptables(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", &self.name, "iptables", "-w"];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Move the calling thread into this namespace (sockets it opens from
    /// then on live there, and keep living there).
    pub fn enter(&self) -> io::Result<()> {
        enter(&self.name)
    }

    /// A TCP connection opened from inside this namespace.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        connect_in(&self.name, addr, timeout)
    }

    /// A RESP connection from inside this namespace.
    pub fn conn(&self, ip: &str, port: u16) -> io::Result<Conn> {
        conn_in(&self.name, ip, port)
    }

    /// Append `rules` (iptables `-A ...` lines of the filter table) in one
    /// atomic `iptables-restore`, so a cut takes effect all at once; with
    /// `flush`, they replace every rule of the table (none: all healed).
    pub fn iptables_restore(&self, rules: &[Vec<String>], flush: bool) -> Result<(), String> {
        use std::io::Write as _;
        let mut text = String::from("*filter\n");
        for r in rules {
            text += &r.join(" ");
            text.push('\n');
        }
        text += "COMMIT\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "iptables-restore", "-w"])
            .args(if flush { None } else { Some("--noflush") })
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("iptables-restore: {e}"))?;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .map_err(|e| format!("iptables-restore: {e}"))?;
        let out = child
            .wait_with_output()
            .map_err(|e| format!("iptables-restore: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "iptables-restore in {}: {}\n{text}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The hosts file `ip netns exec` bind-mounts over /etc/hosts for
    /// processes started in this namespace.
    /// Rewritten in place (same file), so running processes see the change.
    pub fn write_hosts(&self, text: &str) {
        let dir = Path::new(ETC_NETNS).join(&self.name);
        fs::create_dir_all(&dir).expect("create /etc/netns/<ns>");
        fs::write(dir.join("hosts"), text).expect("write hosts file");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
        let _ = fs::remove_dir_all(Path::new(ETC_NETNS).join(&self.name));
    }
}

/// Move the calling thread into namespace `ns` (sockets it opens from then
/// on live there, and keep living there).
pub fn enter(ns: &str) -> io::Result<()> {
    let f = fs::File::open(Path::new(NETNS_DIR).join(ns))?;
    // SAFETY: setns on an open namespace file descriptor; it changes only
    // the calling thread's network namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run `f` on a short-lived thread inside namespace `ns` (sockets it opens
/// stay in that namespace, and work from any thread afterwards).
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A TCP connection opened from inside namespace `ns` (the socket stays in
/// the namespace).
pub fn connect_in(ns: &str, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    in_ns(ns, || TcpStream::connect_timeout(&addr, timeout))?
}

/// Join namespace `ns` to the Linux bridge `br0` of namespace `bridge` with
/// a veth pair (`port` on the bridge side, `eth0` in `ns`) and give it
/// `addr`/24.
pub fn attach(bridge: &str, ns: &str, port: &str, addr: &str) {
    must(
        "ip",
        &[
            "-n", bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
    );
    must(
        "ip",
        &["-n", bridge, "link", "set", port, "master", "br0", "up"],
    );
    must(
        "ip",
        &[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ],
    );
    must("ip", &["-n", ns, "link", "set", "eth0", "up"]);
}

/// A RESP connection to `ip:port` from inside namespace `ns`.
pub fn conn_in(ns: &str, ip: &str, port: u16) -> io::Result<Conn> {
    let addr: SocketAddr = format!("{ip}:{port}")
        .parse()
        .map_err(|e| io::Error::other(format!("{ip}:{port}: {e}")))?;
    Conn::from_stream(connect_in(ns, addr, Duration::from_secs(1))?)
}

/// Remove namespaces (and hosts files) left by test processes that no longer
/// run: `<prefix><pid>-...` whose pid is gone.
pub fn sweep_stale(prefix: &str) {
    let Ok(rd) = fs::read_dir(NETNS_DIR) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", &name]);
            let _ = fs::remove_dir_all(Path::new(ETC_NETNS).join(&name));
        }
    }
}

/// Names of this process's namespaces that exist now (for self-checks).
pub fn own_namespaces() -> Vec<String> {
    let mine = format!("{PREFIX}{}-", std::process::id());
    fs::read_dir(NETNS_DIR)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&mine))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- processes

/// A process of a pod: its command line and environment, kept to restart it.
struct PodProc {
    argv: Vec<OsString>,
    env: Vec<(String, String)>,
    proc: Option<Proc>,
    starts: u32,
}

/// One pod: a namespace with an address and a hostname, a scratch
/// directory, and named processes started inside the namespace.
pub struct Pod {
    procs: BTreeMap<String, PodProc>,
    pub index: usize,
    pub host: String,
    pub ip: String,
    pub dir: tempfile::TempDir,
    pub ns: Netns,
}

impl Pod {
    /// A path in the pod's scratch directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Register process `name` (command line `argv`, environment `env`) and start it.
    pub fn spawn(&mut self, name: &str, argv: Vec<OsString>, env: Vec<(String, String)>) {
        assert!(!argv.is_empty(), "empty command line for {name}");
        self.procs.insert(
            name.into(),
            PodProc {
                argv,
                env,
                proc: None,
                starts: 0,
            },
        );
        self.start(name);
    }

    fn proc_mut(&mut self, name: &str) -> &mut PodProc {
        let host = self.host.clone();
        self.procs
            .get_mut(name)
            .unwrap_or_else(|| panic!("pod {host} has no process {name}"))
    }

    /// Start `name` again as it was registered (no-op if it runs).
    pub fn start(&mut self, name: &str) {
        let (ns, dir) = (self.ns.name.clone(), self.dir.path().to_path_buf());
        let p = self.proc_mut(name);
        if let Some(pr) = p.proc.as_mut() {
            if pr.running() {
                return;
            }
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .args(&p.argv)
            .current_dir(&dir)
            .envs(p.env.iter().map(|(k, v)| (k, v)));
        let n = p.starts;
        p.starts += 1;
        p.proc = Some(Proc::spawn(
            cmd,
            name,
            &dir.join(format!("{name}-{n}.out")),
            &dir.join(format!("{name}-{n}.err")),
        ));
    }

    /// SIGKILL `name` and reap it.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut pr) = self.proc_mut(name).proc.take() {
            pr.kill();
        }
    }

    /// SIGTERM `name`, waiting up to 10 s (then SIGKILL).
    pub fn stop(&mut self, name: &str) {
        if let Some(mut pr) = self.proc_mut(name).proc.take() {
            pr.terminate();
        }
    }

    pub fn signal(&mut self, name: &str, sig: i32) {
        if let Some(pr) = self.proc_mut(name).proc.as_ref() {
            pr.signal(sig);
        }
    }

    pub fn running(&mut self, name: &str) -> bool {
        self.proc_mut(name)
            .proc
            .as_mut()
            .is_some_and(|p| p.running())
    }

    /// A RESP connection to `port` on the pod's address, from inside the
    /// pod (unaffected by the partitions, which cut only the veth).
    pub fn conn(&self, port: u16) -> io::Result<Conn> {
        self.ns.conn(&self.ip, port)
    }

    /// Wait until something answers PING on `port` (bounded), or panic
    /// with the process logs.
    pub fn wait_pong(&mut self, port: u16, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = self.conn(port) {
                if matches!(c.try_cmd(&["PING"], Duration::from_secs(2)),
                    Reply::Frame(Resp::Status(s)) if s == "PONG")
                {
                    return;
                }
            }
            if !self.running(name) || Instant::now() >= deadline {
                panic!(
                    "{name} in pod {} did not answer PING on {port}\n{}",
                    self.host,
                    self.log_tail(name, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The last `lines` of every start of `name` (stdout then stderr).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let starts = self.procs.get(name).map(|p| p.starts).unwrap_or(0);
        let mut text = String::new();
        for n in 0..starts {
            for ext in ["out", "err"] {
                text += &fs::read_to_string(self.path(&format!("{name}-{n}.{ext}")))
                    .unwrap_or_default();
            }
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn names(&self) -> Vec<String> {
        self.procs.keys().cloned().collect()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for p in self.procs.values_mut() {
            if let Some(pr) = p.proc.as_ref() {
                pr.signal(libc::SIGCONT);
            }
            if let Some(mut pr) = p.proc.take() {
                pr.kill();
            }
        }
    }
}

// ---------------------------------------------------------------- the network

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static NETS: AtomicU32 = AtomicU32::new(0);

/// Pods, a client namespace and the bridge between them; the partitions
/// applied to them; a timeline of what the test did, on one clock (`t0`).
pub struct Net {
    pub pods: Vec<Pod>,
    pub client: Netns,
    bridge: Netns,
    pub t0: Instant,
    timeline: Mutex<Vec<(Duration, String)>>,
    _one: MutexGuard<'static, ()>,
}

impl Net {
    /// A network of pods named `hosts` (pod `i` at [`pod_ip`]`(i)`), or
    /// `None` when namespaces cannot be made here (skip line printed).
    pub fn new(hosts: &[&str]) -> Option<Net> {
        if !available() {
            return None;
        }
        let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        sweep_stale(PREFIX);
        let tag = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NETS.fetch_add(1, Ordering::SeqCst)
        );
        let bridge = Netns::create(&format!("{tag}-br"));
        bridge
            .ip(&["link", "add", "br0", "type", "bridge"])
            .unwrap();
        bridge.ip(&["link", "set", "br0", "up"]).unwrap();
        let attach = |ns: &Netns, port: &str, ip: &str| attach(&bridge.name, &ns.name, port, ip);
        let client = Netns::create(&format!("{tag}-client"));
        attach(&client, "c0", CLIENT_IP);
        let mut hosts_text = format!("127.0.0.1 localhost\n{CLIENT_IP} client\n");
        let mut pods = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let ns = Netns::create(&format!("{tag}-{host}"));
            let ip = pod_ip(i);
            attach(&ns, &format!("p{i}"), &ip);
            hosts_text += &format!("{ip} {host}\n");
            let dir = tempfile::Builder::new()
                .prefix(&format!("it-pod-{host}-"))
                .tempdir()
                .expect("pod dir");
            pods.push(Pod {
                procs: BTreeMap::new(),
                index: i,
                host: host.to_string(),
                ip,
                dir,
                ns,
            });
        }
        for ns in pods.iter().map(|p| &p.ns).chain([&client]) {
            ns.write_hosts(&hosts_text);
        }
        Some(Net {
            pods,
            client,
            bridge,
            t0: Instant::now(),
            timeline: Mutex::new(Vec::new()),
            _one: one,
        })
    }

    /// Milliseconds since `t0`.
    pub fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_millis() as u64
    }

    /// Record what the test does now (printed with the results).
    pub fn note(&self, what: &str) {
        let at = self.t0.elapsed();
        eprintln!("[{:>7} ms] {what}", at.as_millis());
        self.timeline.lock().unwrap().push((at, what.into()));
    }

    pub fn timeline(&self) -> Vec<(Duration, String)> {
        self.timeline.lock().unwrap().clone()
    }

    /// A RESP connection from the client namespace.
    pub fn client_conn(&self, ip: &str, port: u16) -> io::Result<Conn> {
        self.client.conn(ip, port)
    }

    // ------------------------------------------------------------ nemeses

    /// Remove every cut: all pods and the client reach each other again.
    pub fn heal(&self) {
        for p in &self.pods {
            p.ns.iptables_restore(&[], true)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        self.note("heal");
    }

    /// The rules dropping every packet between a pod and `peer_ip` (both
    /// directions, in the pod's namespace), or only those to and from
    /// `port` (the same port on both sides).
    fn drop_rules(peer_ip: &str, port: Option<u16>) -> Vec<Vec<String>> {
        let mut rules: Vec<Vec<&str>> = Vec::new();
        let port = port.map(|p| p.to_string());
        match &port {
            None => {
                rules.push(vec!["-A", "INPUT", "-s", peer_ip, "-j", "DROP"]);
                rules.push(vec!["-A", "OUTPUT", "-d", peer_ip, "-j", "DROP"]);
            }
            Some(p) => {
                // The peer's connections to the port here, and this pod's
                // connections to the same port on the peer, both ways.
                for (chain, addr_flag) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
                    for port_flag in ["--dport", "--sport"] {
                        rules.push(vec![
                            "-A", chain, addr_flag, peer_ip, "-p", "tcp", port_flag, p, "-j",
                            "DROP",
                        ]);
                    }
                }
            }
        }
        rules
            .into_iter()
            .map(|r| r.into_iter().map(String::from).collect())
            .collect()
    }

    /// Apply `cuts` (pod, peer address, port) pod by pod, each pod's at once.
    fn cut(&self, cuts: &[(usize, String, Option<u16>)]) {
        for pod in 0..self.pods.len() {
            let rules: Vec<Vec<String>> = cuts
                .iter()
                .filter(|c| c.0 == pod)
                .flat_map(|c| Self::drop_rules(&c.1, c.2))
                .collect();
            if !rules.is_empty() {
                self.pods[pod]
                    .ns
                    .iptables_restore(&rules, false)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    /// Cut `pod` off from the other pods; the client still reaches it if
    /// `client_reaches`.
    pub fn isolate(&self, pod: usize, client_reaches: bool) {
        let mut cuts: Vec<(usize, String, Option<u16>)> = (0..self.pods.len())
            .filter(|&o| o != pod)
            .map(|o| (pod, self.pods[o].ip.clone(), None))
            .collect();
        if !client_reaches {
            cuts.push((pod, CLIENT_IP.to_string(), None));
        }
        self.cut(&cuts);
        self.note(&format!(
            "cut {} off from the other pods{}",
            self.pods[pod].host,
            if client_reaches {
                " (client still reaches it)"
            } else {
                " and the client"
            }
        ));
    }

    /// Cut `port` on `pod` off from the same port on the other pods (e.g.
    /// one daemon from the other daemons; its redis stays reachable).
    pub fn isolate_port(&self, pod: usize, port: u16) {
        let cuts: Vec<(usize, String, Option<u16>)> = (0..self.pods.len())
            .filter(|&o| o != pod)
            .map(|o| (pod, self.pods[o].ip.clone(), Some(port)))
            .collect();
        self.cut(&cuts);
        self.note(&format!(
            "cut port {port} of {} off from the other pods",
            self.pods[pod].host
        ));
    }

    /// Partition the pods into `sides` (every pod on exactly one side); the
    /// client reaches every pod.
    pub fn partition(&self, sides: &[&[usize]]) {
        let mut cuts = Vec::new();
        for (a, side) in sides.iter().enumerate() {
            for (b, other) in sides.iter().enumerate() {
                if a != b {
                    for &p in side.iter() {
                        for &q in other.iter() {
                            cuts.push((p, self.pods[q].ip.clone(), None));
                        }
                    }
                }
            }
        }
        self.cut(&cuts);
        let text: Vec<String> = sides
            .iter()
            .map(|s| {
                s.iter()
                    .map(|&p| self.pods[p].host.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        self.note(&format!("partition {}", text.join(" | ")));
    }

    /// Whether `from`'s namespace reaches `port` on pod `to` now (a
    /// bounded connect; for the harness's own checks).
    pub fn reaches(&self, from: &Netns, to: usize, port: u16) -> bool {
        let addr: SocketAddr = format!("{}:{port}", self.pods[to].ip).parse().unwrap();
        from.connect(addr, Duration::from_millis(500)).is_ok()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.pods {
                for name in p.names() {
                    eprintln!(
                        "---- {name} in pod {} ({}) ----\n{}",
                        p.host,
                        p.dir.path().display(),
                        p.log_tail(&name, 40)
                    );
                }
            }
        }
        // Processes first (Pod's drop), then the namespaces.
        self.pods.clear();
        let _ = &self.bridge;
    }
}
