//! The pod rehearsal: the rendered StatefulSet (`deploy/overlays/dev`) run
//! pod by pod on this machine, as a cluster would run it (see `pods` for
//! what stands in for the kubelet, the network and DNS), under a
//! Sentinel-aware client writing throughout.
//!
//! Played, in order, each with its checks:
//! 1. the set starts from nothing (all pods in parallel): pod 0 is the
//!    master; every container Ready;
//! 2. the master's pod is deleted (preStop hooks, SIGTERM, SIGKILL at the
//!    grace period) and comes back: the switchover commits before the pod
//!    stops, 0 acknowledged writes lost;
//! 3. a pod comes back with a new IP (its name now resolves elsewhere);
//! 4. a pod comes back with its PersistentVolumeClaim wiped: a new Raft
//!    incarnation replaces its old voter, its Redis resyncs;
//! 5. every pod is deleted at once and started again (a cold start): no
//!    daemon is ready before the group has a leader, no Redis elects itself,
//!    no empty node is promoted, the set recovers on its own;
//! 6. a rolling restart of every pod (highest ordinal first, each waited for
//!    Ready and minReadySeconds): 0 acknowledged writes lost;
//! 7. scale 3 → 5 → 3 as kustomize would render it (replicas and the peer
//!    list changed together, so the ConfigMap's hash changes and every pod
//!    rolls): the group ends with exactly the listed voters.
//!
//! Throughout: never two Ready masters (a Redis Ready as `role:master`),
//! no liveness failure; afterwards every daemon names the same master. In
//! steps 2 to 4 the other pods' daemons never leave readiness.
//!
//! The pieces (namespaces, processes, kubelet, writer) are this module's
//! own (`pods`), kept to what the rendered manifests need: when the shared
//! network-namespace harness lands, they fold into it.
//!
//! Needs root, `ip netns`, kubectl (as `deploy`) and redis-server; without
//! them it prints a skip line, or fails when `CI` is set. Bounded: every
//! wait has a deadline, the whole run takes a few minutes.

mod migrate;
mod pods;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as J;

use crate::deploy::{arr, objects, variant, variants, Set};
use crate::harness::kube_api::FakeApi;
use crate::harness::resp::{Conn, Reply, Resp};
use crate::harness::{raftinel_bin, skip_or_fail, which};
use pods::*;

const NAMESPACE: &str = "rehearsal";
const MASTER: &str = "mymaster";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What the kubelet knows of one pod.
#[derive(Default)]
struct PodState {
    terminating: bool,
    /// Per container: Ready.
    ready: BTreeMap<String, bool>,
    /// Per container: the startup probe succeeded (or there is none).
    started: BTreeMap<String, bool>,
    /// Consecutive failures per (container, probe kind).
    failures: BTreeMap<(String, &'static str), u32>,
    /// When each (container, probe kind) last ran.
    last: BTreeMap<(String, &'static str), Instant>,
    /// The last readiness failure of each container (its reason).
    why: BTreeMap<String, String>,
}

/// A pod as the kubelet sees it.
struct KPod {
    name: String,
    addr: String,
    containers: Vec<Container>,
    state: Arc<Mutex<PodState>>,
}

/// What the kubelet and the writer found wrong or noteworthy.
#[derive(Default)]
struct Findings {
    two_ready_masters: Vec<String>,
    liveness_failures: Vec<String>,
    /// (pod, container, Ready) changes, in order.
    flips: Vec<(Instant, String, String, bool)>,
}

/// A preStop hook to run.
struct Hook {
    pod: String,
    container: String,
    ns: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

/// One pod incarnation's processes.
struct Pod {
    ordinal: usize,
    name: String,
    ns: String,
    addr: String,
    run_dir: PathBuf,
    procs: BTreeMap<String, Running>,
    state: Arc<Mutex<PodState>>,
}

struct Rehearsal {
    net: Arc<Net>,
    tl: Timeline,
    root: tempfile::TempDir,
    bin_dir: PathBuf,
    sts: String,
    headless: String,
    containers: Vec<Container>,
    volumes: Vec<J>,
    /// ConfigMap volume name → file → content (as rendered, or as re-rendered
    /// for a new replica count).
    configmaps: BTreeMap<String, BTreeMap<String, String>>,
    grace: Duration,
    min_ready: Duration,
    replicas: usize,
    pods: Vec<Option<Pod>>,
    /// Addresses in use by pods, and the next free one.
    next_addr: u8,
    kubelet: Arc<Mutex<Vec<KPod>>>,
    findings: Arc<Mutex<Findings>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    secret: String,
    incarnation: u64,
    /// With components/kubernetes-api: the in-test API server in the client
    /// namespace, holding the set's pods as the cluster would.
    api: Option<FakeApi>,
    /// The pod template's labels (a re-created pod gets these again).
    pod_labels: Vec<(String, String)>,
}

/// Where the in-test API server listens (the client namespace, as the
/// cluster's API endpoint is outside the pods).
const API_PORT: u16 = 6443;

impl Rehearsal {
    fn fqdn(&self, ordinal: usize) -> String {
        format!(
            "{}-{ordinal}.{}.{NAMESPACE}.svc.cluster.local",
            self.sts, self.headless
        )
    }

    fn new(docs: &[J]) -> Rehearsal {
        let set = Set::of(docs);
        let pod = set.pod;
        let containers: Vec<Container> = arr(&pod["initContainers"])
            .iter()
            .map(|c| Container::of(c, true))
            .chain(
                arr(&pod["containers"])
                    .iter()
                    .map(|c| Container::of(c, false)),
            )
            .collect();
        let volumes: Vec<J> = arr(&pod["volumes"]).to_vec();
        let mut configmaps = BTreeMap::new();
        for v in &volumes {
            let Some(cm) = v["configMap"]["name"].as_str() else {
                continue;
            };
            let obj = objects(docs, "ConfigMap")
                .into_iter()
                .find(|o| o["metadata"]["name"] == cm)
                .unwrap_or_else(|| panic!("ConfigMap {cm} not rendered"));
            let files: BTreeMap<String, String> = obj["data"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            configmaps.insert(v["name"].as_str().unwrap_or("").to_string(), files);
        }
        let root = tempfile::Builder::new()
            .prefix("it-rehearsal-")
            .tempdir()
            .expect("temp dir");
        // The images' programs: the built raftinel as `raftinel`, and the
        // host's redis-server and cp.
        let bin_dir = root.path().join("bin");
        fs::create_dir_all(&bin_dir).unwrap();
        std::os::unix::fs::symlink(raftinel_bin(), bin_dir.join("raftinel")).unwrap();
        let net = Arc::new(Net::new());
        let pod_labels: Vec<(String, String)> = set.sts["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        // components/kubernetes-api (its Role): the API server the daemons
        // talk to, listening in the client namespace.
        let api = objects(docs, "Role")
            .iter()
            .any(|r| r["metadata"]["name"] == "raftinel")
            .then(|| {
                let client = net.client.clone();
                let listener = std::thread::spawn(move || {
                    enter(&client).expect("enter the client namespace");
                    std::net::TcpListener::bind((CLIENT_ADDR, API_PORT)).expect("bind the API port")
                })
                .join()
                .expect("bind thread");
                let api = FakeApi::start_on(listener, NAMESPACE);
                api.add_statefulset(
                    set.sts["metadata"]["name"].as_str().unwrap_or(""),
                    set.replicas as i32,
                );
                api
            });
        Rehearsal {
            net,
            tl: Timeline::default(),
            bin_dir,
            sts: set.sts["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            headless: set.headless().to_string(),
            containers,
            volumes,
            configmaps,
            grace: secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30)),
            min_ready: secs(set.sts["spec"]["minReadySeconds"].as_u64().unwrap_or(0)),
            replicas: set.replicas as usize,
            pods: Vec::new(),
            next_addr: 10,
            kubelet: Arc::default(),
            findings: Arc::default(),
            stop: Arc::default(),
            threads: Vec::new(),
            secret: "rehearsal-group-secret-0123456789".into(),
            root,
            incarnation: 0,
            api,
            pod_labels,
        }
    }

    fn log_dir(&self) -> PathBuf {
        self.root.path().join("logs")
    }

    /// The container environment: downward API, values (with `$(VAR)`),
    /// the group secret, PATH.
    fn env_of(&self, c: &Container, p: &Pod) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![(
            "PATH".into(),
            format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                self.bin_dir.display()
            ),
        )];
        for (name, e) in &c.env {
            let value = if let Some(field) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                match field {
                    "metadata.name" => p.name.clone(),
                    "metadata.namespace" => NAMESPACE.into(),
                    "status.podIP" => p.addr.clone(),
                    // Every pod of the rehearsal runs on this one machine.
                    "spec.nodeName" => "node-0".into(),
                    other => panic!("downward API field {other} not simulated"),
                }
            } else if !e["valueFrom"]["secretKeyRef"].is_null() {
                self.secret.clone()
            } else {
                let mut v = e["value"].as_str().unwrap_or("").to_string();
                for (k, val) in env.clone() {
                    v = v.replace(&format!("$({k})"), &val);
                }
                v
            };
            env.push((name.clone(), value));
        }
        env
    }

    /// Container path → host path, for container `c` of pod `p`.
    fn mounts_of(&self, c: &Container, p: &Pod) -> Vec<(String, PathBuf)> {
        let mut map = Vec::new();
        for (path, vol, sub) in &c.mounts {
            let v = self
                .volumes
                .iter()
                .find(|v| v["name"] == vol.as_str())
                .cloned()
                .unwrap_or(J::Null);
            let mut host = if v["configMap"].is_object() {
                p.run_dir.join(&c.name).join("cm").join(vol)
            } else if v["emptyDir"].is_object() {
                p.run_dir.join("vol").join(vol)
            } else {
                // A volumeClaimTemplate: the PVC of this ordinal.
                self.pvc(p.ordinal).join(vol)
            };
            if !sub.is_empty() {
                host = host.join(sub);
            }
            fs::create_dir_all(&host).unwrap();
            map.push((path.clone(), host));
        }
        // The raftinel image's binary (the install-raftinel init container
        // copies it from there).
        map.push(("/usr/local/bin/raftinel".into(), raftinel_bin()));
        map.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        map
    }

    fn pvc(&self, ordinal: usize) -> PathBuf {
        self.root.path().join("pvc").join(ordinal.to_string())
    }

    /// The ConfigMap files container `c` mounts, written with its paths.
    fn write_configmaps(&self, c: &Container, p: &Pod, map: &[(String, PathBuf)]) {
        for (_, vol, _) in &c.mounts {
            if let Some(files) = self.configmaps.get(vol) {
                let dir = p.run_dir.join(&c.name).join("cm").join(vol);
                fs::create_dir_all(&dir).unwrap();
                for (name, text) in files {
                    let mut text = map_paths(text, map);
                    // The in-cluster endpoint, as the service account would
                    // give it: the [kubernetes] table is the file's last.
                    if self.api.is_some() && text.contains("\n[kubernetes]\n") {
                        text.push_str(&format!("api-url = \"http://{CLIENT_ADDR}:{API_PORT}\"\n"));
                    }
                    fs::write(dir.join(name), text).unwrap();
                }
            }
        }
    }

    fn argv_of(c: &Container, map: &[(String, PathBuf)]) -> Vec<String> {
        c.argv.iter().map(|a| map_paths(a, map)).collect()
    }

    /// Creates (or re-creates) pod `ordinal` and starts it: init containers
    /// in order, then the containers.
    fn start_pod(&mut self, ordinal: usize, new_addr: bool) {
        let name = format!("{}-{ordinal}", self.sts);
        self.incarnation += 1;
        while self.pods.len() <= ordinal {
            self.pods.push(None);
        }
        let (ns, addr) = match self.pods[ordinal].take() {
            Some(old) if !new_addr => (old.ns, old.addr),
            Some(old) => {
                let addr = self.fresh_addr();
                self.net.readdress(&old.ns, &old.addr, &addr);
                (old.ns, addr)
            }
            None => {
                let addr = self.fresh_addr();
                (self.net.pod_ns(&name, &addr), addr)
            }
        };
        self.net.set_name(&self.fqdn(ordinal), Some(&addr));
        let run_dir = self
            .root
            .path()
            .join("pods")
            .join(format!("{name}.{}", self.incarnation));
        fs::create_dir_all(&run_dir).unwrap();
        fs::create_dir_all(self.log_dir()).unwrap();
        let mut pod = Pod {
            ordinal,
            name: name.clone(),
            ns,
            addr: addr.clone(),
            run_dir,
            procs: BTreeMap::new(),
            state: Arc::default(),
        };
        self.tl.note(format!("{name}: created at {addr}"));
        if let Some(api) = &self.api {
            // A re-created pod is a new object, with the template's labels.
            api.delete_pod(&name);
            let labels: Vec<(&str, &str)> = self
                .pod_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            api.add_pod(&name, &labels);
        }
        let containers = self.containers.clone();
        for c in &containers {
            let map = self.mounts_of(c, &pod);
            self.write_configmaps(c, &pod, &map);
            let argv = Self::argv_of(c, &map);
            let env = self.env_of(c, &pod);
            let log = self
                .log_dir()
                .join(format!("{name}.{}.{}.log", self.incarnation, c.name));
            if c.init && !c.sidecar {
                let done = run_in(&pod.ns, &argv, &env, Instant::now() + secs(30));
                assert_eq!(
                    done.code,
                    Some(0),
                    "{name}: init container {} failed: {}",
                    c.name,
                    done.output
                );
                continue;
            }
            let child = spawn_in(&pod.ns, &argv, &env, &log);
            pod.procs.insert(c.name.clone(), Running { child });
            let mut st = pod.state.lock().unwrap();
            st.ready.insert(c.name.clone(), false);
            st.started.insert(c.name.clone(), c.startup.is_none());
        }
        self.kubelet.lock().unwrap().push(KPod {
            name: name.clone(),
            addr,
            containers: containers
                .iter()
                .filter(|c| !c.init || c.sidecar)
                .cloned()
                .collect(),
            state: pod.state.clone(),
        });
        self.pods[ordinal] = Some(pod);
    }

    fn fresh_addr(&mut self) -> String {
        self.next_addr += 1;
        assert!(self.next_addr < 240, "out of addresses");
        format!("{SUBNET}.{}", self.next_addr)
    }

    /// Deletes pod `ordinal`: both preStop hooks at once, then SIGTERM, then
    /// SIGKILL at the grace period (`graceful`); or SIGKILL at once. Returns
    /// the hooks' results.
    fn delete_pod(&mut self, ordinal: usize, graceful: bool) -> Vec<(String, Finished)> {
        self.delete_pods(&[ordinal], graceful)
    }

    /// Deletes pods at once (as the StatefulSet controller does with the
    /// Parallel policy): every preStop hook of every pod together, then
    /// SIGTERM to every container (native sidecars after the others), then
    /// SIGKILL at the grace period.
    fn delete_pods(&mut self, ordinals: &[usize], graceful: bool) -> Vec<(String, Finished)> {
        let mut pods: Vec<Pod> = ordinals
            .iter()
            .map(|&o| self.pods[o].take().expect("pod exists"))
            .collect();
        let deadline = Instant::now() + self.grace;
        for p in &pods {
            p.state.lock().unwrap().terminating = true;
        }
        self.kubelet
            .lock()
            .unwrap()
            .retain(|k| !pods.iter().any(|p| p.name == k.name));
        let mut results = Vec::new();
        if graceful {
            let hooks: Vec<Hook> = pods.iter().flat_map(|p| self.hooks_of(p)).collect();
            for p in &pods {
                self.tl.note(format!("{}: deleted (preStop hooks)", p.name));
            }
            results = std::thread::scope(|s| {
                let handles: Vec<_> = hooks
                    .iter()
                    .map(|h| {
                        let who = format!("{}/{}", h.pod, h.container);
                        (
                            who,
                            s.spawn(move || run_in(&h.ns, &h.argv, &h.env, deadline)),
                        )
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(n, h)| (n, h.join().expect("hook thread")))
                    .collect::<Vec<_>>()
            });
            for (who, f) in &results {
                self.tl.note(format!(
                    "{who}: preStop exited {:?} after {:.1}s: {}",
                    f.code,
                    f.took.as_secs_f64(),
                    f.output.trim().replace('\n', " | ")
                ));
            }
            // Containers first, native sidecars after them.
            for sidecars in [false, true] {
                let names: Vec<String> = self
                    .containers
                    .iter()
                    .filter(|c| c.sidecar == sidecars)
                    .map(|c| c.name.clone())
                    .collect();
                for p in &pods {
                    for n in names.iter().filter(|n| p.procs.contains_key(*n)) {
                        signal(&p.procs[n].child, libc::SIGTERM);
                    }
                }
                for p in &mut pods {
                    for n in &names {
                        let Some(r) = p.procs.get_mut(n) else {
                            continue;
                        };
                        let (st, killed) = wait_until(&mut r.child, deadline);
                        self.tl.note(format!(
                            "{}: {n} ended {st:?}{}",
                            p.name,
                            if killed {
                                " (SIGKILL at the grace period)"
                            } else {
                                ""
                            }
                        ));
                    }
                }
            }
        } else {
            for p in &mut pods {
                self.tl.note(format!("{}: killed (SIGKILL)", p.name));
                for r in p.procs.values_mut() {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                }
            }
        }
        // Kept for their namespaces: the next incarnation reuses them.
        for (o, p) in ordinals.iter().zip(pods) {
            self.pods[*o] = Some(Pod {
                procs: BTreeMap::new(),
                state: Arc::default(),
                ..p
            });
        }
        results
    }

    /// The preStop hooks of a pod's running containers.
    fn hooks_of(&self, p: &Pod) -> Vec<Hook> {
        self.containers
            .iter()
            .filter(|c| p.procs.contains_key(&c.name))
            .filter_map(|c| {
                let hook = c.prestop.as_ref()?;
                let map = self.mounts_of(c, p);
                Some(Hook {
                    pod: p.name.clone(),
                    container: c.name.clone(),
                    ns: p.ns.clone(),
                    argv: hook.iter().map(|a| map_paths(a, &map)).collect(),
                    env: self.env_of(c, p),
                })
            })
            .collect()
    }

    /// Removes a pod for good (scale in): its namespace stays, unused.
    fn forget_pod(&mut self, ordinal: usize) {
        if let Some(p) = self.pods.get_mut(ordinal).and_then(Option::take) {
            self.net.set_name(&self.fqdn(ordinal), None);
            drop(p);
        }
    }

    fn running(&self) -> Vec<usize> {
        self.pods
            .iter()
            .enumerate()
            .filter(|(_, p)| p.as_ref().is_some_and(|p| !p.procs.is_empty()))
            .map(|(i, _)| i)
            .collect()
    }

    fn all_ready(&self, ordinal: usize) -> bool {
        let Some(p) = self.pods.get(ordinal).and_then(Option::as_ref) else {
            return false;
        };
        let st = p.state.lock().unwrap();
        !st.terminating && !st.ready.is_empty() && st.ready.values().all(|r| *r)
    }

    fn why_not_ready(&self) -> String {
        let mut out = Vec::new();
        for p in self.pods.iter().flatten() {
            let st = p.state.lock().unwrap();
            for (c, r) in &st.ready {
                if !r {
                    out.push(format!(
                        "{}/{c}: {}",
                        p.name,
                        st.why
                            .get(c)
                            .map(String::as_str)
                            .unwrap_or("not probed yet")
                    ));
                }
            }
        }
        out.join("; ")
    }

    /// Waits until every running pod is Ready (all containers).
    fn wait_all_ready(&self, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        loop {
            let running = self.running();
            if !running.is_empty() && running.iter().all(|&o| self.all_ready(o)) {
                self.tl.note(format!("all pods Ready ({what})"));
                return;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "not every pod Ready within {within:?} ({what}): {}",
                    self.why_not_ready()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the kubelet watched for the whole run: never two Ready
    /// masters, no liveness failure.
    fn check_throughout(&self) {
        let f = self.findings.lock().unwrap();
        let (two, live) = (f.two_ready_masters.clone(), f.liveness_failures.clone());
        drop(f);
        if !two.is_empty() {
            self.fail(&format!("two Ready masters: {two:?}"));
        }
        if !live.is_empty() {
            self.fail(&format!("liveness failures: {live:?}"));
        }
    }

    fn fail(&self, what: &str) -> ! {
        let mut logs = String::new();
        if let Ok(dir) = fs::read_dir(self.log_dir()) {
            let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
            // The set's daemons last and longest: a failure's output is
            // often shown by its head and tail only.
            let ours = |f: &PathBuf| {
                let n = f.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with(&format!("{}-", self.sts)) && n.contains(".raftinel")
            };
            files.sort_by_key(|f| (ours(f), f.clone()));
            for f in files {
                let text = fs::read_to_string(&f).unwrap_or_default();
                let n = if ours(&f) { 40 } else { 12 };
                let tail: Vec<&str> = text.lines().rev().take(n).collect();
                logs.push_str(&format!(
                    "\n--- {}\n{}",
                    f.file_name().unwrap().to_string_lossy(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
        }
        panic!(
            "{what}\n--- timeline\n{}{logs}\n--- state\n{}",
            self.tl.text(),
            self.state_dump()
        );
    }

    /// Each daemon's view of the master and each pod's replication, for a
    /// failure's output.
    fn state_dump(&self) -> String {
        let mut out = String::new();
        for o in self.running() {
            let addr = &self.pods[o].as_ref().unwrap().addr;
            let m = self.cmd(addr, 26379, &["SENTINEL", "MASTER", MASTER]);
            let fields: Vec<String> = ["ip", "port", "flags", "num-slaves", "failover-state"]
                .iter()
                .map(|k| {
                    let v = m.as_ref().and_then(|m| m.field(k));
                    format!("{k}={}", v.unwrap_or_default())
                })
                .collect();
            let info = self
                .cmd(addr, 6379, &["INFO", "replication"])
                .and_then(|r| r.as_str())
                .unwrap_or_default();
            let repl: Vec<&str> = info
                .lines()
                .filter(|l| {
                    [
                        "role",
                        "master_host",
                        "master_link_status",
                        "slave",
                        "connected_slaves",
                    ]
                    .iter()
                    .any(|k| l.starts_with(k))
                })
                .collect();
            out.push_str(&format!(
                "pod {o}: daemon {}; redis {}\n",
                fields.join(" "),
                repl.join(" ")
            ));
        }
        out
    }

    // ------------------------------------------------------------ queries

    fn conn(&self, addr: &str, port: u16) -> Option<Conn> {
        let s = self.net.connect(addr, port, secs(2)).ok()?;
        Conn::from_stream(s).ok()
    }

    fn cmd(&self, addr: &str, port: u16, args: &[&str]) -> Option<Resp> {
        match self.conn(addr, port)?.try_cmd(args, secs(3)) {
            Reply::Frame(r) => Some(r),
            _ => None,
        }
    }

    /// Every running daemon's answer to GET-MASTER-ADDR-BY-NAME.
    fn masters_named(&self) -> Vec<(String, Option<String>)> {
        self.running()
            .into_iter()
            .map(|o| {
                let p = self.pods[o].as_ref().unwrap();
                let a = self
                    .cmd(
                        &p.addr,
                        26379,
                        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER],
                    )
                    .and_then(|r| r.items().and_then(|i| i.first()?.as_str()));
                (p.name.clone(), a)
            })
            .collect()
    }

    /// The master every daemon names (they must agree), waited for.
    fn agreed_master(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let named = self.masters_named();
            let names: BTreeSet<Option<String>> = named.iter().map(|(_, a)| a.clone()).collect();
            if names.len() == 1 {
                if let Some(Some(m)) = names.into_iter().next() {
                    return m;
                }
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "the daemons do not agree on the master: {named:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn ordinal_of(&self, fqdn: &str) -> usize {
        fqdn.split('.')
            .next()
            .and_then(|s| s.rsplit('-').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a pod name: {fqdn}"))
    }

    fn http(&self, ordinal: usize, path: &str) -> Result<u16, String> {
        let p = self.pods[ordinal].as_ref().unwrap();
        let s = self
            .net
            .connect(&p.addr, 9479, secs(2))
            .map_err(|e| e.to_string())?;
        http_get(s, &p.addr, path, secs(2)).map(|(code, _)| code)
    }

    fn voters(&self, ordinal: usize) -> Option<usize> {
        let p = self.pods[ordinal].as_ref()?;
        let st = self.cmd(&p.addr, 26379, &["SENTINEL", "RAFT", "STATUS"])?;
        let json: J = serde_json::from_str(&st.as_str()?).ok()?;
        Some(arr(&json["group"]["voters"]).len())
    }

    // ------------------------------------------------------------ re-rendering

    /// The ConfigMap as kustomize renders it for `replicas` pods: the peer
    /// list names pods 0..replicas-1.
    fn rerender(&mut self, replicas: usize) {
        let cm = self
            .configmaps
            .values_mut()
            .find(|f| f.contains_key("raftinel.toml"))
            .expect("the raftinel.toml ConfigMap");
        let text = cm["raftinel.toml"].clone();
        let start = text.find("peers = [").expect("peers in raftinel.toml");
        let end = start + text[start..].find(']').expect("end of peers");
        let first = text[start..end]
            .lines()
            .nth(1)
            .expect("a first peer")
            .trim()
            .trim_end_matches(',')
            .to_string();
        let zero = format!("{}-0.", self.sts);
        let peers: Vec<String> = (0..replicas)
            .map(|i| {
                format!(
                    "  {},",
                    first.replacen(&zero, &format!("{}-{i}.", self.sts), 1)
                )
            })
            .collect();
        let new = format!(
            "{}peers = [\n{}\n{}",
            &text[..start],
            peers.join("\n"),
            &text[end..]
        );
        cm.insert("raftinel.toml".into(), new);
        self.replicas = replicas;
    }

    // ------------------------------------------------------------ background

    fn start_kubelet(&mut self) {
        let pods = self.kubelet.clone();
        let findings = self.findings.clone();
        let stop = self.stop.clone();
        let client = self.net.client.clone();
        let tl = self.tl.clone();
        self.threads.push(std::thread::spawn(move || {
            enter(&client).expect("enter the client namespace");
            while !stop.load(Ordering::Relaxed) {
                kubelet_round(&pods.lock().unwrap(), &findings, &tl);
                std::thread::sleep(Duration::from_millis(250));
            }
        }));
    }
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for p in self.pods.iter_mut().flatten() {
            for r in p.procs.values_mut() {
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One pass of the kubelet over every pod: the probes that are due, and
/// the two-Ready-masters check.
fn kubelet_round(pods: &[KPod], findings: &Mutex<Findings>, tl: &Timeline) {
    let now = Instant::now();
    let mut ready_masters = Vec::new();
    for p in pods {
        for c in &p.containers {
            for (kind, probe) in [
                ("startup", &c.startup),
                ("liveness", &c.liveness),
                ("readiness", &c.readiness),
            ] {
                let Some(probe) = probe else { continue };
                let key = (c.name.clone(), kind);
                {
                    let st = p.state.lock().unwrap();
                    if st.terminating {
                        continue;
                    }
                    let started = st.started.get(&c.name).copied().unwrap_or(true);
                    if (kind == "startup" && started) || (kind != "startup" && !started) {
                        continue;
                    }
                    if st.last.get(&key).is_some_and(|t| now - *t < probe.period) {
                        continue;
                    }
                }
                let result = run_probe(&p.addr, probe);
                let mut st = p.state.lock().unwrap();
                st.last.insert(key.clone(), now);
                let fails = st.failures.entry(key.clone()).or_insert(0);
                match &result {
                    Ok(()) => *fails = 0,
                    Err(_) => *fails += 1,
                }
                let fails = *fails;
                match kind {
                    "startup" => {
                        if result.is_ok() {
                            st.started.insert(c.name.clone(), true);
                        }
                    }
                    "liveness" => {
                        if fails >= probe.failure_threshold {
                            let why = format!(
                                "{}/{}: liveness failed {fails} times: {result:?}",
                                p.name, c.name
                            );
                            tl.note(&why);
                            findings.lock().unwrap().liveness_failures.push(why);
                        }
                    }
                    _ => {
                        let was = st.ready.get(&c.name).copied().unwrap_or(false);
                        let now_ready = match &result {
                            Ok(()) => true,
                            Err(_) => was && fails < probe.failure_threshold,
                        };
                        if let Err(e) = &result {
                            st.why.insert(c.name.clone(), e.clone());
                        }
                        if now_ready != was {
                            st.ready.insert(c.name.clone(), now_ready);
                            tl.note(format!(
                                "{}/{}: {}{}",
                                p.name,
                                c.name,
                                if now_ready { "Ready" } else { "not Ready" },
                                result
                                    .as_ref()
                                    .err()
                                    .map(|e| format!(" ({e})"))
                                    .unwrap_or_default()
                            ));
                            findings.lock().unwrap().flips.push((
                                Instant::now(),
                                p.name.clone(),
                                c.name.clone(),
                                now_ready,
                            ));
                        }
                    }
                }
            }
        }
        let redis_ready = {
            let st = p.state.lock().unwrap();
            !st.terminating && st.ready.get("redis").copied().unwrap_or(false)
        };
        if redis_ready {
            let role = std::net::TcpStream::connect_timeout(
                &format!("{}:6379", p.addr).parse().unwrap(),
                secs(1),
            )
            .ok()
            .and_then(|s| Conn::from_stream(s).ok())
            .and_then(|mut c| match c.try_cmd(&["ROLE"], secs(1)) {
                Reply::Frame(r) => r.items().and_then(|i| i.first()?.as_str()),
                _ => None,
            });
            if role.as_deref() == Some("master") {
                ready_masters.push(p.name.clone());
            }
        }
    }
    if ready_masters.len() > 1 {
        let line = format!("two Ready masters: {ready_masters:?}");
        tl.note(&line);
        findings.lock().unwrap().two_ready_masters.push(line);
    }
}

fn run_probe(addr: &str, p: &Probe) -> Result<(), String> {
    if let Some((path, port)) = &p.http {
        let s = std::net::TcpStream::connect_timeout(
            &format!("{addr}:{port}").parse().unwrap(),
            p.timeout,
        )
        .map_err(|e| format!("connect: {e}"))?;
        let (code, body) = http_get(s, addr, path, p.timeout)?;
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            // The body says why (the daemon's probes answer "not ready: …").
            Err(format!(
                "HTTP {code}: {}",
                body.lines().next().unwrap_or("")
            ))
        };
    }
    if let Some(port) = p.tcp {
        return std::net::TcpStream::connect_timeout(
            &format!("{addr}:{port}").parse().unwrap(),
            p.timeout,
        )
        .map(|_| ())
        .map_err(|e| format!("connect: {e}"));
    }
    Ok(())
}

// ---------------------------------------------------------------- the writer

/// A Sentinel-aware client writing throughout: asks the daemons for the
/// master (any pod, as through the client Service), writes there, and
/// records every acknowledged write.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    errors: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(net: Arc<Net>, pods: Vec<String>, from: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(0));
        let (s, a, e) = (stop.clone(), acked.clone(), errors.clone());
        let thread = std::thread::spawn(move || {
            enter(&net.client).expect("enter the client namespace");
            let mut n = from;
            let mut master: Option<Conn> = None;
            let mut turn = 0usize;
            while !s.load(Ordering::Relaxed) {
                if master.is_none() {
                    turn += 1;
                    let pod = &pods[turn % pods.len()];
                    let Some(addr) = net.resolve(pod) else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let named = std::net::TcpStream::connect_timeout(
                        &format!("{addr}:26379").parse().unwrap(),
                        secs(1),
                    )
                    .ok()
                    .and_then(|s| Conn::from_stream(s).ok())
                    .and_then(|mut c| {
                        match c.try_cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER], secs(1)) {
                            Reply::Frame(r) => r.items().and_then(|i| i.first()?.as_str()),
                            _ => None,
                        }
                    });
                    master = named.and_then(|m| net.resolve(&m)).and_then(|ip| {
                        let s = std::net::TcpStream::connect_timeout(
                            &format!("{ip}:6379").parse().unwrap(),
                            secs(1),
                        )
                        .ok()?;
                        Conn::from_stream(s).ok()
                    });
                    if master.is_none() {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
                let c = master.as_mut().unwrap();
                n += 1;
                let key = format!("k:{n}");
                match c.try_cmd(&["SET", &key, &n.to_string()], secs(2)) {
                    Reply::Frame(Resp::Status(ok)) if ok == "OK" => a.lock().unwrap().push(n),
                    _ => {
                        *e.lock().unwrap() += 1;
                        master = None;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                std::thread::sleep(Duration::from_millis(4));
            }
        });
        Writer {
            stop,
            acked,
            errors,
            thread: Some(thread),
        }
    }

    /// Stops; the acknowledged writes, the errors and the next key number.
    fn finish(mut self) -> (Vec<u64>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        let errors = *self.errors.lock().unwrap();
        (acked, errors)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Rehearsal {
    fn writer(&self, from: u64) -> Writer {
        let pods: Vec<String> = (0..self.replicas).map(|o| self.fqdn(o)).collect();
        Writer::start(self.net.clone(), pods, from)
    }

    /// The acknowledged keys missing from the master every daemon names.
    fn lost(&self, acked: &[u64]) -> Vec<u64> {
        let master = self.agreed_master(secs(30));
        let addr = self.net.resolve(&master).expect("master resolves");
        let mut c = self.conn(&addr, 6379).expect("connect to the master");
        let mut lost = Vec::new();
        for chunk in acked.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|n| format!("k:{n}")).collect();
            let mut args = vec!["MGET"];
            args.extend(keys.iter().map(String::as_str));
            let r = c.cmd(&args);
            for (n, v) in chunk.iter().zip(r.items().unwrap_or(&[])) {
                if v.as_str().is_none() {
                    lost.push(*n);
                }
            }
        }
        lost
    }

    fn dbsize(&self, ordinal: usize) -> Option<i64> {
        let p = self.pods[ordinal].as_ref()?;
        self.cmd(&p.addr, 6379, &["DBSIZE"])?.as_int()
    }

    /// Readiness changes of `container` on pods other than `except` since
    /// `since` that went to not Ready.
    fn lost_readiness(&self, container: &str, except: &[String], since: Instant) -> Vec<String> {
        self.findings
            .lock()
            .unwrap()
            .flips
            .iter()
            .filter(|(t, pod, c, ready)| {
                *t >= since && c == container && !ready && !except.contains(pod)
            })
            .map(|(_, pod, _, _)| pod.clone())
            .collect()
    }

    /// The daemons of the pods other than `replaced` stayed Ready since
    /// `since`: a planned deletion of one pod (a leader handing over
    /// included) leaves the others' group with a leader, so `/readyz` has
    /// no reason to fail there.
    fn survivors_stayed_ready(&self, replaced: usize, since: Instant, what: &str) {
        let name = format!("{}-{replaced}", self.sts);
        let dropped = self.lost_readiness("raftinel", &[name], since);
        if !dropped.is_empty() {
            self.fail(&format!(
                "{what}: daemons of other pods left readiness: {dropped:?}"
            ));
        }
    }

    /// A rolling update of pods `0..n`, highest ordinal first, each waited
    /// for until every pod is Ready and then for minReadySeconds.
    fn roll(&mut self, n: usize, what: &str) {
        for o in (0..n).rev() {
            self.replace_pod(o, false, false);
            self.wait_all_ready(secs(120), what);
            std::thread::sleep(self.min_ready);
        }
    }

    /// Waits (up to 60 s) until each of the daemons of pods `0..n` counts
    /// `n` voters.
    fn wait_voters(&self, n: usize, what: &str) {
        let deadline = Instant::now() + secs(60);
        while (0..n).any(|o| self.voters(o) != Some(n)) {
            if Instant::now() >= deadline {
                let v: Vec<_> = (0..n).map(|o| self.voters(o)).collect();
                self.fail(&format!("{what} the group has voters {v:?}"));
            }
            std::thread::sleep(secs(1));
        }
    }

    /// A planned deletion and re-creation of pod `ordinal` (optionally at a
    /// new address or with its volume wiped); waits until all are Ready.
    fn replace_pod(
        &mut self,
        ordinal: usize,
        new_addr: bool,
        wipe: bool,
    ) -> Vec<(String, Finished)> {
        let hooks = self.delete_pod(ordinal, true);
        if wipe {
            let pvc = self.pvc(ordinal);
            fs::remove_dir_all(&pvc).unwrap();
            fs::create_dir_all(&pvc).unwrap();
            self.tl.note(format!(
                "{}-{ordinal}: PersistentVolumeClaim wiped",
                self.sts
            ));
        }
        self.start_pod(ordinal, new_addr);
        hooks
    }
}

// ---------------------------------------------------------------- the test

/// Runs `f` (a planned operation) under the writer, waits until every pod
/// is Ready again, and checks that no acknowledged write was lost. Returns
/// when the operation started.
fn planned(
    r: &mut Rehearsal,
    next_key: &mut u64,
    what: &str,
    f: &mut dyn FnMut(&mut Rehearsal),
) -> Instant {
    let w = r.writer(*next_key);
    std::thread::sleep(secs(2));
    let since = Instant::now();
    f(r);
    r.wait_all_ready(secs(120), what);
    std::thread::sleep(secs(2));
    let (acked, errors) = w.finish();
    *next_key = acked.last().copied().unwrap_or(*next_key) + 1_000_000;
    let lost = r.lost(&acked);
    r.tl.note(format!(
        "{what}: {} writes acknowledged, {errors} refused or failed, {} lost",
        acked.len(),
        lost.len()
    ));
    assert!(acked.len() > 100, "{what}: the writer made little progress");
    if !lost.is_empty() {
        r.fail(&format!(
            "{what}: {} acknowledged writes lost: {:?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        ));
    }
    since
}

/// The rendered variants, or None where a rehearsal cannot run here
/// (root, `ip netns`, redis-server, kubectl): skipped, or failed under CI.
fn rehearsable() -> Option<&'static [crate::deploy::Variant]> {
    if !available() {
        skip_or_fail("root and ip netns (network namespaces)");
        return None;
    }
    if which("redis-server").is_none() && skip_or_fail("redis-server") {
        return None;
    }
    variants()
}

#[test]
fn rendered_statefulset_rehearsed_pod_by_pod() {
    let Some(vs) = rehearsable() else { return };
    let dev = variant(vs, "dev");
    let mut r = Rehearsal::new(&dev.docs);
    assert_eq!(r.replicas, 3, "the dev overlay runs 3 pods");
    r.start_kubelet();

    // 1. A new set: every pod at once (podManagementPolicy Parallel).
    // Pod 0 is asked before the next pod exists: a daemon without a
    // majority is not ready. (Once a second pod runs, the group may form
    // while the third is still being created, so later pods are not asked.)
    r.start_pod(0, false);
    let early = r.http(0, "/readyz");
    assert!(
        early.as_ref().map_or(true, |c| *c == 503),
        "a daemon was ready before its group formed: {early:?}"
    );
    for o in 1..3 {
        r.start_pod(o, false);
    }
    r.wait_all_ready(secs(90), "a new set");
    let first = r.agreed_master(secs(10));
    assert_eq!(
        r.ordinal_of(&first),
        0,
        "the configured master of a new set is pod 0"
    );
    for o in 0..3 {
        assert_eq!(r.http(o, "/readyz"), Ok(200));
        assert_eq!(r.http(o, "/readyz/redis?max-lag-bytes=x"), Ok(400));
    }
    let mut next_key = 0u64;

    // 2. The master's pod deleted and re-created.
    let m = r.ordinal_of(&r.agreed_master(secs(10)));
    let since = planned(&mut r, &mut next_key, "master pod deleted", &mut |r| {
        let hooks = r.replace_pod(m, false, false);
        for (c, f) in &hooks {
            assert_eq!(
                f.code,
                Some(0),
                "preStop of {c} on the master's pod: {}",
                f.output
            );
        }
        let now = r.agreed_master(secs(10));
        assert_ne!(
            r.ordinal_of(&now),
            m,
            "the master moved away before the pod stopped"
        );
    });
    r.survivors_stayed_ready(m, since, "master pod deleted");

    // 3. A pod back with a new IP (a replica: the master's pod moves too
    //    once, in the rolling restart).
    let o = (r.ordinal_of(&r.agreed_master(secs(10))) + 1) % 3;
    let since = planned(&mut r, &mut next_key, "pod back with a new IP", &mut |r| {
        let old = r.pods[o].as_ref().unwrap().addr.clone();
        r.replace_pod(o, true, false);
        assert_ne!(r.pods[o].as_ref().unwrap().addr, old);
    });
    r.survivors_stayed_ready(o, since, "pod back with a new IP");

    // 4. A wiped PersistentVolumeClaim.
    let o = (r.ordinal_of(&r.agreed_master(secs(10))) + 2) % 3;
    let since = planned(&mut r, &mut next_key, "wiped PVC", &mut |r| {
        r.replace_pod(o, false, true);
    });
    r.survivors_stayed_ready(o, since, "wiped PVC");
    let voters: Vec<Option<usize>> = (0..3).map(|o| r.voters(o)).collect();
    assert!(
        voters.iter().all(|v| *v == Some(3)),
        "after the wiped PVC the group has 3 voters: {voters:?}"
    );

    // 5. A cold start: every pod deleted at once, then started at once.
    let w = r.writer(next_key);
    std::thread::sleep(secs(3));
    let before: Vec<Option<i64>> = (0..3).map(|o| r.dbsize(o)).collect();
    r.tl.note("every pod deleted at once");
    r.delete_pods(&[0, 1, 2], true);
    let (acked_cold, _) = w.finish();
    r.tl.note(format!("cold start: keys before {before:?}"));
    // One pod alone first: a daemon without a majority is never ready,
    // and its boot-redis waits for the group and says why.
    r.start_pod(0, false);
    let alone = Instant::now();
    let mut samples = Vec::new();
    while alone.elapsed() < secs(8) {
        samples.push((r.http(0, "/readyz"), r.http(0, "/readyz/redis")));
        std::thread::sleep(Duration::from_millis(500));
    }
    if samples.iter().any(|(d, _)| *d == Ok(200)) {
        r.fail(&format!(
            "a lone daemon was ready after a cold start: {samples:?}"
        ));
    }
    if samples.iter().any(|(_, d)| *d == Ok(200)) {
        r.fail(&format!(
            "a lone pod's Redis was ready after a cold start: {samples:?}"
        ));
    }
    let boot_log = fs::read_to_string(
        r.log_dir()
            .join(format!("{}-0.{}.redis.log", r.sts, r.incarnation)),
    )
    .unwrap_or_default();
    assert!(
        boot_log.contains("boot-redis: waiting for the group:"),
        "boot-redis says why it waits: {boot_log}"
    );
    for o in 1..3 {
        r.start_pod(o, false);
    }
    r.wait_all_ready(secs(150), "cold start");
    let master = r.agreed_master(secs(10));
    let keys = r.dbsize(r.ordinal_of(&master)).unwrap_or(0);
    assert!(
        keys > 0,
        "an empty node was promoted after the cold start ({master})"
    );
    let lost_cold = r.lost(&acked_cold);
    r.tl.note(format!(
        "cold start: master {master} with {keys} keys; {} of {} acknowledged writes lost",
        lost_cold.len(),
        acked_cold.len()
    ));
    next_key += 10_000_000;

    // 6. A rolling restart, highest ordinal first.
    planned(&mut r, &mut next_key, "rolling restart", &mut |r| {
        r.roll(3, "rolling restart step")
    });

    // 7. Scale 3 -> 5 -> 3: replicas and peers change together (a new
    //    ConfigMap: every pod rolls).
    planned(&mut r, &mut next_key, "scale 3 -> 5", &mut |r| {
        r.rerender(5);
        for o in 3..5 {
            r.start_pod(o, false);
        }
        r.roll(3, "scale-out roll");
    });
    r.wait_voters(5, "after scaling to 5");
    planned(&mut r, &mut next_key, "scale 5 -> 3", &mut |r| {
        r.rerender(3);
        for o in [4, 3] {
            r.delete_pod(o, true);
            r.forget_pod(o);
        }
        r.roll(3, "scale-in roll");
    });
    r.wait_voters(3, "after scaling back to 3");

    // 8. A replica of a replica the group never saw (a pod booted as a
    //    replica of a master switched over before any daemon read the
    //    master's INFO): the group's replica lists are reset, so only the
    //    master's INFO (which does not name it) is known. Its pod's daemon
    //    re-points it at the committed master.
    let master = r.agreed_master(secs(10));
    let m = r.ordinal_of(&master);
    let (x, y) = match m {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let (xa, ya) = (r.pods[x].as_ref().unwrap().addr.clone(), r.fqdn(y));
    let ok = r.cmd(&xa, 6379, &["REPLICAOF", &ya, "6379"]);
    assert!(ok.is_some(), "REPLICAOF to pod {x}'s redis: {ok:?}");
    for o in r.running() {
        let a = r.pods[o].as_ref().unwrap().addr.clone();
        r.cmd(&a, 26379, &["SENTINEL", "RESET", MASTER]);
    }
    r.tl.note(format!(
        "pod {x}'s redis made a replica of pod {y}'s; the daemons reset"
    ));
    let deadline = Instant::now() + secs(60);
    loop {
        let info = r
            .cmd(&xa, 6379, &["INFO", "replication"])
            .and_then(|i| i.as_str())
            .unwrap_or_default();
        if info.contains(&format!("master_host:{master}\r")) {
            break;
        }
        if Instant::now() >= deadline {
            r.fail(&format!(
                "pod {x}'s redis was not re-pointed at {master} within 60 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    r.tl.note(format!("pod {x}'s redis re-pointed at the master"));
    let by_its_daemon = fs::read_dir(r.log_dir()).unwrap().flatten().any(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.starts_with(&format!("{}-{x}.", r.sts))
            && n.ends_with(".raftinel.log")
            && fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains(&format!("(was a replica of {ya}:6379) -> {master}:6379"))
    });
    assert!(
        by_its_daemon,
        "pod {x}'s daemon did not log the re-pointing (+repoint slave)"
    );
    r.wait_all_ready(secs(60), "a replica of a replica re-pointed");

    r.check_throughout();
    r.agreed_master(secs(10));
    r.tl.note("done");
}

/// The rendered set with components/kubernetes-api (`dev+kubernetes-api`,
/// a daemon built with the `k8s` feature) against the in-test API server in
/// the client namespace: the pods are labelled from the committed state, the
/// master's pod deleted (its preStop switchover) moves the master label to
/// the new master's pod, and at no write were two pods labelled master;
/// from the new master's label on, exactly one. One `SwitchMaster` Event.
#[cfg(feature = "k8s")]
#[test]
fn rendered_statefulset_labels_its_pods_through_the_api() {
    let Some(vs) = rehearsable() else { return };
    let mut r = Rehearsal::new(&variant(vs, crate::deploy::DEV_API).docs);
    assert!(
        r.api.is_some(),
        "the variant has the Kubernetes API component"
    );
    r.start_kubelet();
    for o in 0..3 {
        r.start_pod(o, false);
    }
    r.wait_all_ready(secs(90), "a new set with the Kubernetes API");
    const KEY: &str = "raftinel.io/role";
    let labels = |r: &Rehearsal| -> Vec<Option<String>> {
        let api = r.api.as_ref().expect("api");
        (0..3)
            .map(|o| api.label(&format!("{}-{o}", r.sts), KEY))
            .collect()
    };
    let wait_labels = |r: &Rehearsal, master: usize, what: &str| {
        let deadline = Instant::now() + secs(30);
        loop {
            let got = labels(r);
            let want: Vec<Option<String>> = (0..3)
                .map(|o| Some(if o == master { "master" } else { "replica" }.to_string()))
                .collect();
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                r.fail(&format!("{what}: labels {got:?}, want {want:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_labels(&r, 0, "a new set");
    let since = Instant::now();
    r.replace_pod(0, false, false);
    r.wait_all_ready(secs(90), "the master's pod re-created");
    let now = r.ordinal_of(&r.agreed_master(secs(10)));
    assert_ne!(now, 0, "the master moved away before the pod stopped");
    wait_labels(&r, now, "after the master's pod was deleted");
    let api = r.api.as_ref().expect("api");
    let new_pod = format!("{}-{now}", r.sts);
    let mut labelled = false;
    for (at, pods) in api.timeline(KEY, "master") {
        assert!(pods.len() <= 1, "two master pods at once: {pods:?}");
        labelled |= at >= since && pods.contains(&new_pod);
        if labelled {
            assert_eq!(pods.len(), 1, "no master pod after {new_pod} was labelled");
        }
    }
    assert!(labelled, "{new_pod} labelled master");
    let switches = api
        .events()
        .iter()
        .filter(|e| e["reason"] == "SwitchMaster")
        .count();
    assert_eq!(switches, 1, "one SwitchMaster Event: {:?}", api.events());
    r.check_throughout();
}
