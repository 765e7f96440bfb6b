//! Pods of a rendered StatefulSet on this machine: what a kubelet and a
//! cluster network would give them, made of network namespaces and
//! processes.
//!
//! - The network: one namespace per pod, a bridge namespace joining them, a
//!   client namespace (where the "kubelet", the writer and the test's own
//!   connections live) on the same bridge. Veth pairs are created directly
//!   between those namespaces: nothing is added to the host's namespace.
//!   Addresses come from 198.18.1.0/24 (RFC 2544's benchmarking range), which
//!   exists only on these veths. Names start with `k8sd-<pid>-`; everything
//!   is removed on drop, and namespaces left by a test process that died are
//!   removed by the next run.
//! - DNS: every namespace gets a hosts file (`ip netns exec` mounts
//!   `/etc/netns/<ns>/hosts` over `/etc/hosts`) naming every pod by its FQDN
//!   through the headless Service; it is rewritten in place when a pod gets a
//!   new IP, as cluster DNS would answer.
//! - Containers: the rendered containers' commands run in the pod's
//!   namespace with the downward-API environment and the env the manifest
//!   sets. There is no mount namespace: each container's volume mounts
//!   (`mountPath` → the pod's volume, with `subPath`) are applied by
//!   rewriting those paths in the command line and in the ConfigMap files
//!   the container mounts, and `PATH` holds the images' programs (the built
//!   raftinel, redis-server, cp). The PersistentVolumeClaim is a directory
//!   per ordinal that outlives the pods; emptyDirs live with one pod.
//! - The kubelet: init containers one after the other, then the containers
//!   together; probes on their periods, thresholds and timeouts; on deletion
//!   both preStop hooks at once, then SIGTERM, and SIGKILL at the end of the
//!   grace period.
//!
//! The namespaces, their veth links, hosts files and cleanup are
//! `harness::netns`'s (shared with the partition tests); what is built on
//! them here is the rehearsal's own: it keeps to what the rendered manifests
//! need.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as J;

use crate::deploy::arr;
pub use crate::harness::netns::enter;
use crate::harness::netns::{attach, connect_in, must, run, sweep_stale, Netns};

pub const SUBNET: &str = "198.18.1";
/// The client namespace's address (the "kubelet", the writer, the API server).
pub const CLIENT_ADDR: &str = "198.18.1.250";

/// Whether namespaces can be made here (root, `ip netns`).
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    // Once per process: tests asking at the same time would race on the
    // probe's name.
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        let probe = format!("k8sd-{}-probe", std::process::id());
        let ok = run("ip", &["netns", "add", &probe]).is_ok();
        let _ = run("ip", &["netns", "del", &probe]);
        ok
    })
}

/// The namespaces and the name → address map.
pub struct Net {
    prefix: String,
    bridge: String,
    pub client: String,
    /// FQDN (and short name) → address, as DNS answers now.
    names: Mutex<BTreeMap<String, String>>,
    /// Every namespace made, deleted with its hosts file on drop.
    namespaces: Mutex<Vec<Netns>>,
    next_link: Mutex<u32>,
}

impl Net {
    pub fn new() -> Net {
        sweep_stale("k8sd-");
        // Several sets may run in one test process: each its own prefix.
        static SETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("k8sd-{}-{n}", std::process::id());
        let net = Net {
            bridge: format!("{prefix}-br"),
            client: format!("{prefix}-c"),
            prefix,
            names: Mutex::default(),
            namespaces: Mutex::default(),
            next_link: Mutex::new(0),
        };
        net.add_ns(&net.bridge.clone());
        must(
            "ip",
            &["-n", &net.bridge, "link", "add", "br0", "type", "bridge"],
        );
        must("ip", &["-n", &net.bridge, "link", "set", "br0", "up"]);
        let client = net.client.clone();
        net.add_ns(&client);
        net.attach(&client, CLIENT_ADDR);
        net
    }

    fn add_ns(&self, ns: &str) {
        let ns = Netns::create(ns);
        ns.write_hosts(&self.hosts_text());
        self.namespaces.lock().unwrap().push(ns);
    }

    /// Joins `ns` to the bridge with address `addr`.
    fn attach(&self, ns: &str, addr: &str) {
        let n = {
            let mut n = self.next_link.lock().unwrap();
            *n += 1;
            *n
        };
        attach(&self.bridge, ns, &format!("v{n}"), addr);
    }

    /// A namespace for a pod named `short` (`<sts>-<ordinal>`).
    pub fn pod_ns(&self, short: &str, addr: &str) -> String {
        let ns = format!("{}-{short}", self.prefix);
        self.add_ns(&ns);
        self.attach(&ns, addr);
        ns
    }

    /// Moves a pod to a new address (a pod re-created elsewhere).
    pub fn readdress(&self, ns: &str, old: &str, new: &str) {
        must(
            "ip",
            &["-n", ns, "addr", "del", &format!("{old}/24"), "dev", "eth0"],
        );
        must(
            "ip",
            &["-n", ns, "addr", "add", &format!("{new}/24"), "dev", "eth0"],
        );
    }

    /// What DNS answers for `name` (an FQDN or a short pod name).
    pub fn resolve(&self, name: &str) -> Option<String> {
        if name.parse::<std::net::IpAddr>().is_ok() {
            return Some(name.to_string());
        }
        self.names
            .lock()
            .unwrap()
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    /// Sets `fqdn` (and its first label) to `addr` in every hosts file
    /// (rewritten in place: `ip netns exec` bind-mounts the file itself).
    pub fn set_name(&self, fqdn: &str, addr: Option<&str>) {
        {
            let mut names = self.names.lock().unwrap();
            let short = fqdn.split('.').next().unwrap_or(fqdn).to_string();
            for n in [fqdn.to_ascii_lowercase(), short] {
                match addr {
                    Some(a) => names.insert(n, a.to_string()),
                    None => names.remove(&n),
                };
            }
        }
        let text = self.hosts_text();
        for ns in self.namespaces.lock().unwrap().iter() {
            ns.write_hosts(&text);
        }
    }

    fn hosts_text(&self) -> String {
        let names = self.names.lock().unwrap();
        let mut by_addr: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (n, a) in names.iter() {
            by_addr.entry(a.as_str()).or_default().push(n.as_str());
        }
        let mut out = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (a, ns) in by_addr {
            // The FQDN first (the canonical name), then the short one.
            let mut ns = ns.clone();
            ns.sort_by_key(|n| std::cmp::Reverse(n.len()));
            out.push_str(&format!("{a} {}\n", ns.join(" ")));
        }
        out
    }

    /// A TCP connection from the client namespace.
    pub fn connect(&self, addr: &str, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
        let sa: SocketAddr = format!("{addr}:{port}")
            .parse()
            .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
        connect_in(&self.client, sa, timeout)
    }
}

// ---------------------------------------------------------------- containers

/// A probe as rendered.
#[derive(Debug, Clone)]
pub struct Probe {
    pub http: Option<(String, u16)>,
    pub tcp: Option<u16>,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
}

/// One container of the pod template.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub init: bool,
    /// An init container with `restartPolicy: Always` (a native sidecar).
    pub sidecar: bool,
    pub argv: Vec<String>,
    pub env: Vec<(String, J)>,
    pub mounts: Vec<(String, String, String)>,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    pub startup: Option<Probe>,
    pub prestop: Option<Vec<String>>,
}

fn port_of(c: &J, port: &J) -> u16 {
    if let Some(n) = port.as_u64() {
        return n as u16;
    }
    arr(&c["ports"])
        .iter()
        .find(|p| p["name"] == *port)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port {port} in {}", c["name"])) as u16
}

fn probe(c: &J, p: &J) -> Option<Probe> {
    if p.is_null() {
        return None;
    }
    let secs = |k: &str, d: u64| Duration::from_secs(p[k].as_u64().unwrap_or(d));
    Some(Probe {
        http: (!p["httpGet"].is_null()).then(|| {
            (
                p["httpGet"]["path"].as_str().unwrap_or("/").to_string(),
                port_of(c, &p["httpGet"]["port"]),
            )
        }),
        tcp: (!p["tcpSocket"].is_null()).then(|| port_of(c, &p["tcpSocket"]["port"])),
        period: secs("periodSeconds", 10),
        timeout: secs("timeoutSeconds", 1),
        failure_threshold: p["failureThreshold"].as_u64().unwrap_or(3) as u32,
    })
}

fn strs(v: &J) -> Vec<String> {
    arr(v)
        .iter()
        .map(|s| s.as_str().unwrap_or("").to_string())
        .collect()
}

impl Container {
    pub fn of(c: &J, init: bool) -> Container {
        let mut argv = strs(&c["command"]);
        argv.extend(strs(&c["args"]));
        Container {
            name: c["name"].as_str().unwrap_or("").to_string(),
            init,
            sidecar: init && c["restartPolicy"] == "Always",
            argv,
            env: arr(&c["env"])
                .iter()
                .map(|e| (e["name"].as_str().unwrap_or("").to_string(), e.clone()))
                .collect(),
            mounts: arr(&c["volumeMounts"])
                .iter()
                .map(|m| {
                    (
                        m["mountPath"].as_str().unwrap_or("").to_string(),
                        m["name"].as_str().unwrap_or("").to_string(),
                        m["subPath"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect(),
            readiness: probe(c, &c["readinessProbe"]),
            liveness: probe(c, &c["livenessProbe"]),
            startup: probe(c, &c["startupProbe"]),
            prestop: (!c["lifecycle"]["preStop"]["exec"].is_null())
                .then(|| strs(&c["lifecycle"]["preStop"]["exec"]["command"])),
        }
    }
}

/// Replaces the container paths in `text` by the host paths they are
/// mounted from (`map`, longest first): a path counts where it starts at
/// the beginning, after a space, `=` or a quote, and ends at the end, a
/// `/`, a space or a quote.
pub fn map_paths(text: &str, map: &[(String, PathBuf)]) -> String {
    let mut out = text.to_string();
    for (from, to) in map {
        let to = to.to_string_lossy();
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        let mut at_start = true;
        while let Some(i) = rest.find(from.as_str()) {
            let before = if i == 0 {
                if at_start {
                    None
                } else {
                    result.chars().last()
                }
            } else {
                rest[..i].chars().last()
            };
            let after = rest[i + from.len()..].chars().next();
            let starts = before.is_none_or(|c| c == ' ' || c == '"' || c == '=' || c == '\n');
            let ends = after.is_none_or(|c| c == '/' || c == ' ' || c == '"' || c == '\n');
            result.push_str(&rest[..i]);
            if starts && ends {
                result.push_str(&to);
            } else {
                result.push_str(from);
            }
            rest = &rest[i + from.len()..];
            at_start = false;
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// A running container's process.
pub struct Running {
    pub child: Child,
}

/// The output of a command run to its end (a hook, an init container).
#[derive(Debug, Clone)]
pub struct Finished {
    pub code: Option<i32>,
    pub output: String,
    pub took: Duration,
}

/// Waits for `child` until `deadline`; kills it then.
pub fn wait_until(child: &mut Child, deadline: Instant) -> (Option<ExitStatus>, bool) {
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return (Some(st), false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return (child.wait().ok(), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill on the pid of a child this process has not reaped.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Runs `argv` in namespace `ns` with `env`; stdout and stderr to `log`.
pub fn spawn_in(ns: &str, argv: &[String], env: &[(String, String)], log: &Path) -> Child {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    let err = out.try_clone().expect("dup log");
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {argv:?} in {ns}: {e}"))
}

/// Runs `argv` in `ns` to its end (killed at `deadline`), capturing its
/// output.
pub fn run_in(ns: &str, argv: &[String], env: &[(String, String)], deadline: Instant) -> Finished {
    let started = Instant::now();
    let tmp = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = spawn_in(ns, argv, env, tmp.path());
    let (status, _) = wait_until(&mut child, deadline);
    let mut output = String::new();
    let _ = fs::File::open(tmp.path()).and_then(|mut f| f.read_to_string(&mut output));
    Finished {
        code: status.and_then(|s| s.code()),
        output,
        took: started.elapsed(),
    }
}

/// One HTTP GET as the kubelet sends it; the status code.
pub fn http_get(
    stream: TcpStream,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let mut s = stream;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-probe/1.29\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad HTTP reply {:?}", buf.lines().next()))?;
    let body = buf.split_once("\r\n\r\n").map_or("", |(_, b)| b.trim());
    Ok((code, body.to_string()))
}

/// A shared, timestamped log of what happened (printed when a check fails).
#[derive(Clone, Default)]
pub struct Timeline {
    start: Arc<Mutex<Option<Instant>>>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Timeline {
    pub fn note(&self, what: impl Into<String>) {
        let start = *self.start.lock().unwrap().get_or_insert_with(Instant::now);
        let line = format!("{:>8.3}s {}", start.elapsed().as_secs_f64(), what.into());
        eprintln!("rehearsal: {line}");
        self.lines.lock().unwrap().push(line);
    }

    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_mapped_as_whole_paths() {
        let map = vec![
            ("/etc/raftinel".to_string(), PathBuf::from("/x/cfg")),
            ("/data".to_string(), PathBuf::from("/x/pvc/raftinel")),
        ];
        assert_eq!(
            map_paths("dir = \"/data\"\ndata-dir = \"/data\"", &map),
            "dir = \"/x/pvc/raftinel\"\ndata-dir = \"/x/pvc/raftinel\""
        );
        assert_eq!(
            map_paths("/etc/raftinel/raftinel.toml", &map),
            "/x/cfg/raftinel.toml"
        );
        assert_eq!(map_paths("dir /data\n", &map), "dir /x/pvc/raftinel\n");
        assert_eq!(
            map_paths("/database /data2 a/data", &map),
            "/database /data2 a/data"
        );
    }
}
