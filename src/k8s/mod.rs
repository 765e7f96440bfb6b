//! The Kubernetes API integration (cargo feature `k8s`, `[kubernetes]` in
//! raftinel.toml; deploy/README.md): the pods' role labels from the
//! committed state, and Kubernetes Events for what operators watch.
//!
//! The API is a sink, never a dependency: two tasks of their own, every
//! call under a timeout, errors counted and logged once per change of state,
//! retried with backoff; nothing on the failover or answer paths waits for
//! them. What to patch is decided by `pod::labels::plan` (no I/O); here the
//! pods are listed, the patches sent in order (each conditional on the
//! resourceVersion it was planned from: a conflict re-lists at once) and the
//! published events turned into Events.
//!
//! The calls made are `pod::labels::API_CALLS`, which the Role in
//! deploy/components/kubernetes-api is checked against.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use crate::config::KubeOptions;
use crate::core::split_addr;
use crate::pod::labels::{self, Role, Seen, View};
use crate::pod::status::{self, Status};
use crate::pod::Handles;

/// Every pod list is redone this often when nothing changes (labels
/// changed by someone else are put back within it).
const RESYNC: Duration = Duration::from_secs(5);
/// After patches were sent, the pods are listed again this soon to confirm.
const CONFIRM: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Each API call's deadline (connect, send and read).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Published events waiting to become Kubernetes Events; more are missed
/// (the pub/sub tap never waits).
const EVENT_QUEUE: usize = 256;

/// The client and who this daemon is in the cluster.
pub struct Kube {
    /// This daemon's own RESP port, for `SENTINEL SET <master> fenced-nodes`
    /// and the drain's `SENTINEL FAILOVER`.
    local: crate::pod::local::Daemon,
    pods: Api<Pod>,
    sets: Api<StatefulSet>,
    /// This pod's node, with `drain-switchover`.
    node: Option<(Api<Node>, String)>,
    /// When the drain's switchover was last asked.
    drain_asked: std::sync::Mutex<Option<tokio::time::Instant>>,
    events: Api<Event>,
    namespace: String,
    pod: String,
    opts: KubeOptions,
}

/// The two tasks, to be spawned by the daemon.
pub struct Tasks {
    pub labels: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    pub events: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// Connects (no request is made yet) and returns the tasks; an error says
/// why `[kubernetes]` cannot be in force (no pod name, no credentials).
pub fn start(
    opts: &KubeOptions,
    h: Handles,
    hub: &crate::server::pubsub::Hub,
    local: crate::pod::local::Daemon,
) -> Result<Tasks, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    // A name from the table, else from the downward API's variable.
    let named = |set: &Option<String>, key: &str, var: &str, what: &str| {
        set.clone()
            .or_else(|| env(var))
            .ok_or_else(|| format!("[kubernetes]{what} is not known: set {key}, or {var}"))
    };
    let pod = named(
        &opts.pod,
        "pod",
        crate::pod::identity::POD_NAME_ENV,
        ": this daemon's pod",
    )?;
    let mut cfg = match &opts.api_url {
        Some(u) => {
            let uri: hyper::Uri = u
                .parse()
                .map_err(|e| format!("[kubernetes] api-url '{u}': {e}"))?;
            let mut c = kube::Config::new(uri);
            c.auth_info.token_file = opts.token_file.clone();
            c
        }
        None => kube::Config::incluster().map_err(|e| {
            format!("[kubernetes]: no in-cluster service account credentials ({e}); mount the service account token or set api-url")
        })?,
    };
    cfg.connect_timeout = Some(CALL_TIMEOUT);
    cfg.read_timeout = Some(CALL_TIMEOUT);
    cfg.write_timeout = Some(CALL_TIMEOUT);
    let namespace = opts
        .namespace
        .clone()
        .or_else(|| env(crate::pod::identity::POD_NAMESPACE_ENV))
        .unwrap_or_else(|| cfg.default_namespace.clone());
    let client = kube::Client::try_from(cfg).map_err(|e| format!("[kubernetes]: client: {e}"))?;
    let node = if opts.drain_switchover {
        let name = named(
            &opts.node,
            "node",
            crate::pod::identity::NODE_NAME_ENV,
            " drain-switchover: this pod's node",
        )?;
        Some((Api::all(client.clone()), name))
    } else {
        None
    };
    let k = Arc::new(Kube {
        local,
        sets: Api::namespaced(client.clone(), &namespace),
        node,
        drain_asked: std::sync::Mutex::new(None),
        pods: Api::namespaced(client.clone(), &namespace),
        events: Api::namespaced(client, &namespace),
        namespace,
        pod,
        opts: opts.clone(),
    });
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let members = opts.events.then(|| tx.clone());
    if opts.events {
        hub.tap(tx);
    }
    Ok(Tasks {
        labels: Box::pin(run_labels(k.clone(), h.clone(), members)),
        events: Box::pin(run_events(k, h, rx)),
    })
}

/// A failing call, logged when it starts failing (or fails in another way:
/// another status code, another transport error) and when it recovers.
#[derive(Default)]
struct Failing {
    now: BTreeMap<&'static str, String>,
}

impl Failing {
    fn failed(&mut self, call: &'static str, why: String) {
        metrics::counter!("raftinel_k8s_api_errors_total", "call" => call).increment(1);
        // The kind of failure: "403 Forbidden", or the error up to its
        // first colon (names of pods and addresses come after).
        let kind = why.split(':').next().unwrap_or_default().to_string();
        if self.now.get(call) != Some(&kind) {
            tracing::warn!("Kubernetes API: {call} failed: {why} (retrying)");
            self.now.insert(call, kind);
        }
    }

    fn ok(&mut self, call: &'static str) {
        if self.now.remove(call).is_some() {
            tracing::warn!("Kubernetes API: {call} works again");
        }
    }
}

/// What a failed call says, in one line (the API's Status message when
/// there is one).
fn why(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if is_conflict(&e) => Err(CONFLICT.to_string()),
        Ok(Err(e)) => Err(why(&e)),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

const CONFLICT: &str = "conflict";

/// The label task: runs until the daemon shuts down.
async fn run_labels(k: Arc<Kube>, h: Handles, members: Option<crate::server::pubsub::Tap>) {
    let raft = loop {
        if let Some(r) = h.raft.get() {
            break r.clone();
        }
        tokio::select! {
            _ = h.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    };
    let mut state = raft.state.clone();
    let mut state_open = true;
    let mut failing = Failing::default();
    let mut selector: Option<String> = k.opts.pod_selector.clone();
    let mut backoff = BACKOFF_MIN;
    let mut wait = Duration::ZERO;
    let mut voters: Option<Vec<String>> = None;
    let mut sts_read: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = h.shutdown.cancelled() => return,
            r = state.changed(), if state_open => state_open = r.is_ok(),
            _ = tokio::time::sleep(wait) => {}
        }
        if let Some(tx) = &members {
            membership_event(&h, &mut voters, tx);
        }
        // The StatefulSet at most every RESYNC (the pods are listed at
        // every wake: committed changes, confirmations).
        if sts_read.is_none_or(|t| t.elapsed() >= RESYNC) {
            sts_read = Some(tokio::time::Instant::now());
            k.follow_statefulset(&raft, &mut failing).await;
        }
        match k.sync(&h, &mut selector, &mut failing).await {
            Ok(sent) => {
                backoff = BACKOFF_MIN;
                wait = if sent { CONFIRM } else { RESYNC };
            }
            Err(()) => {
                wait = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// A change of the group's voters (after the first look) becomes a
/// `+raft-members` message for the event task, which posts it when this
/// daemon is the Raft leader.
fn membership_event(h: &Handles, last: &mut Option<Vec<String>>, tx: &crate::server::pubsub::Tap) {
    let g = status::snapshot(h).group;
    if !g.loaded || g.voters.is_empty() {
        return;
    }
    let mut now: Vec<String> = g
        .voters
        .iter()
        .map(|v| format!("{} {}", v.id, v.addr))
        .collect();
    now.sort();
    if let Some(before) = last.as_ref().filter(|b| **b != now) {
        let added: Vec<&String> = now.iter().filter(|v| !before.contains(v)).collect();
        let removed: Vec<&String> = before.iter().filter(|v| !now.contains(v)).collect();
        let mut text = format!("{} voters", now.len());
        for a in added {
            text.push_str(&format!(", +{a}"));
        }
        for r in removed {
            text.push_str(&format!(", -{r}"));
        }
        let _ = tx.try_send((Arc::from("+raft-members"), Arc::from(text.as_bytes())));
    }
    *last = Some(now);
}

impl Kube {
    /// `statefulset` and `peer-template`: the Raft peer list becomes peer 0
    /// to `spec.replicas - 1` of the template, so a scale out admits the new
    /// pods and a scale in removes the departed voters (the membership rules
    /// of a static peer list, docs/design.md) without rolling the pods.
    async fn follow_statefulset(
        &self,
        raft: &crate::consensus::node::RaftNode,
        failing: &mut Failing,
    ) {
        let Some((name, template)) = &self.opts.peers_from else {
            return;
        };
        let set = match timed(self.sets.get(name)).await {
            Ok(s) => {
                failing.ok("get statefulset");
                s
            }
            Err(e) => return failing.failed("get statefulset", e),
        };
        let Some(replicas) = set.spec.as_ref().and_then(|s| s.replicas) else {
            return;
        };
        if replicas > MAX_PEERS {
            return failing.failed(
                "get statefulset",
                format!("spec.replicas {replicas} is above {MAX_PEERS}: the peer list is kept"),
            );
        }
        let peers: Vec<String> = (0..replicas.max(0))
            .map(|i| template.replace("{ordinal}", &i.to_string()))
            .collect();
        if !peers.is_empty() && raft.policy.peers.set(peers.clone()) {
            tracing::warn!(
                "raft: the peer list follows StatefulSet {name}: {replicas} ({})",
                peers.join(", ")
            );
        }
    }

    /// One round: list, plan, patch. Ok(whether patches were sent).
    async fn sync(
        &self,
        h: &Handles,
        selector: &mut Option<String>,
        failing: &mut Failing,
    ) -> Result<bool, ()> {
        let sel = match selector {
            Some(s) => s.clone(),
            None => {
                let own = timed(self.pods.get(&self.pod))
                    .await
                    .map_err(|e| failing.failed("get pod", e))?;
                failing.ok("get pod");
                let s = set_selector(&own).ok_or_else(|| {
                    failing.failed(
                        "get pod",
                        format!(
                            "pod {} has no app.kubernetes.io/instance label: set [kubernetes] pod-selector",
                            self.pod
                        ),
                    )
                })?;
                *selector = Some(s.clone());
                s
            }
        };
        let list = timed(self.pods.list(&ListParams::default().labels(&sel)))
            .await
            .map_err(|e| failing.failed("list pods", e))?;
        failing.ok("list pods");
        let seen: Vec<Seen> = list.items.iter().map(seen_of).collect();
        let st = status::snapshot(h);
        let specs = &self.opts.role_labels;
        let view = self.view(&st, &seen);
        metrics::gauge!("raftinel_k8s_label_drift").set(labels::drift(&view, &seen, specs) as f64);
        // The labels first, from the state just read; the rest may wait on
        // the API.
        let patches = labels::plan(&view, &seen, specs);
        for p in &patches {
            let body = p.body();
            let sent = timed(self.pods.patch(
                &p.pod,
                &PatchParams::default(),
                &Patch::Merge(&body),
            ))
            .await;
            match sent {
                Ok(_) => {
                    failing.ok("patch pod");
                    metrics::counter!("raftinel_k8s_label_patches_total").increment(1);
                    tracing::warn!(
                        "Pod {} labelled {} (config epoch {})",
                        p.pod,
                        role_name(p.role),
                        view.epoch
                    );
                }
                // Someone changed the pod since the list: list again now.
                Err(e) if e == CONFLICT => return Ok(true),
                Err(e) => {
                    failing.failed("patch pod", e);
                    return Err(());
                }
            }
        }
        self.announce_redis(&st, &seen, failing).await?;
        if view.in_touch && !view.failover && view.roles.get(&self.pod) == Some(&Role::Master) {
            self.drain_check(&st, failing).await;
        }
        if view.leader && view.in_touch {
            self.sync_fenced(&st, &seen, failing).await;
        }
        Ok(!patches.is_empty())
    }

    /// This pod's Redis named in its annotation, for the leader to find the
    /// pod of each node (`labels::pod_of`).
    async fn announce_redis(
        &self,
        st: &Status,
        seen: &[Seen],
        failing: &mut Failing,
    ) -> Result<(), ()> {
        let Some(m) = self.master_of(st) else {
            return Ok(());
        };
        let Some(own) = m.nodes.iter().find(|n| self.is_own(st, &n.addr)) else {
            return Ok(());
        };
        let Some(p) = seen.iter().find(|p| p.name == self.pod) else {
            return Ok(());
        };
        if p.redis.as_deref() == Some(own.addr.as_str()) {
            return Ok(());
        }
        let body = serde_json::json!({
            "metadata": {"annotations": {labels::REDIS_ANNOTATION: own.addr}}
        });
        match timed(
            self.pods
                .patch(&self.pod, &PatchParams::default(), &Patch::Merge(&body)),
        )
        .await
        {
            Ok(_) => {
                failing.ok("patch pod");
                Ok(())
            }
            Err(e) => {
                failing.failed("patch pod", e);
                Err(())
            }
        }
    }

    /// `drain-switchover`, this pod holding the master: when its node is
    /// cordoned or tainted for a drain, a coordinated switchover away from
    /// it is asked (`SENTINEL FAILOVER`, at most every `DRAIN_RETRY`), so the
    /// master moves before the eviction (which the master PDB holds back).
    async fn drain_check(&self, st: &Status, failing: &mut Failing) {
        let Some((nodes, name)) = &self.node else {
            return;
        };
        let node = match timed(nodes.get(name)).await {
            Ok(n) => {
                failing.ok("get node");
                n
            }
            Err(e) => return failing.failed("get node", e),
        };
        let Some(why) = draining(&node) else {
            return;
        };
        {
            let mut asked = self.drain_asked.lock().unwrap_or_else(|e| e.into_inner());
            if asked.is_some_and(|t| t.elapsed() < DRAIN_RETRY) {
                return;
            }
            *asked = Some(tokio::time::Instant::now());
        }
        let Some(m) = self.master_of(st) else {
            return;
        };
        let l = &self.local;
        let cmd = ["SENTINEL", "FAILOVER", m.name.as_str()];
        let answer =
            crate::pod::client::call_one(&l.host, l.port, &l.auth, &cmd, CALL_TIMEOUT).await;
        let result = match answer {
            Ok(crate::resp::Frame::Error(e)) => e,
            Ok(_) => "switching over".into(),
            Err(e) => e,
        };
        tracing::warn!(
            "Node {name} {why} and pod {} holds the master of {}: SENTINEL FAILOVER: {result}",
            self.pod,
            m.name
        );
    }

    /// Raft leader: the nodes of the pods annotated fenced become the
    /// master's committed `fenced-nodes` (through this daemon's own
    /// `SENTINEL SET`, as an operator would); a fenced pod whose node it
    /// cannot name is reported.
    async fn sync_fenced(&self, st: &Status, seen: &[Seen], failing: &mut Failing) {
        let Some(m) = self.master_of(st) else {
            return;
        };
        let mut want: Vec<String> = Vec::new();
        for p in seen.iter().filter(|p| p.fenced) {
            let node = m.nodes.iter().find(|n| {
                labels::pod_of(&n.addr, seen).is_some_and(|name| name == p.name)
                    || (p.name == self.pod && self.is_own(st, &n.addr))
            });
            match node {
                Some(n) => want.push(n.addr.to_ascii_lowercase()),
                None => failing.failed(
                    "fence pod",
                    format!(
                        "{}: no Redis node of {} is known on this pod",
                        p.name, m.name
                    ),
                ),
            }
        }
        want.sort();
        want.dedup();
        let mut have: Vec<String> = m.fenced.iter().map(|a| a.to_ascii_lowercase()).collect();
        have.sort();
        if want == have {
            return;
        }
        let value = want.join(",");
        let l = &self.local;
        let set = [
            "SENTINEL",
            "SET",
            m.name.as_str(),
            "fenced-nodes",
            value.as_str(),
        ];
        match crate::pod::client::call_one(&l.host, l.port, &l.auth, &set, CALL_TIMEOUT).await {
            Ok(crate::resp::Frame::Error(e)) => failing.failed("fence pod", e),
            Ok(_) => {
                failing.ok("fence pod");
                tracing::warn!(
                    "fenced-nodes of {} set from the pod annotations: {}",
                    m.name,
                    if value.is_empty() { "none" } else { &value }
                );
            }
            Err(e) => failing.failed("fence pod", e),
        }
    }

    fn master_of<'a>(&self, st: &'a Status) -> Option<&'a crate::pod::status::MasterStatus> {
        st.masters
            .iter()
            .find(|m| self.opts.master.as_deref().is_none_or(|n| n == m.name))
    }

    /// Whether `addr` (`host:port`) is this pod's Redis.
    fn is_own(&self, st: &Status, addr: &str) -> bool {
        match &self.opts.redis {
            Some(r) => r.eq_ignore_ascii_case(addr),
            None => split_addr(addr)
                .is_some_and(|(host, _)| status::is_this_pod(host, st.announce_ip.as_deref())),
        }
    }

    /// The committed state as the label plan needs it.
    fn view(&self, st: &Status, seen: &[Seen]) -> View {
        let Some(m) = self.master_of(st) else {
            return View::default();
        };
        let Some(committed) = &m.committed else {
            return View::default();
        };
        let leader = st
            .group
            .leader
            .as_ref()
            .zip(st.group.node_id)
            .is_some_and(|(l, id)| l.id == id);
        let own = |addr: &str| self.is_own(st, addr);
        let committed_addr = committed.to_string();
        let mut roles = BTreeMap::new();
        if leader {
            for n in &m.nodes {
                let Some(pod) = labels::pod_of(&n.addr, seen) else {
                    continue;
                };
                let role = if n.addr == committed_addr {
                    Role::Master
                } else {
                    Role::Replica
                };
                roles.insert(pod.to_string(), role);
            }
            if let Some(pod) = labels::pod_of(&committed_addr, seen) {
                roles.insert(pod.to_string(), Role::Master);
            }
        }
        if own(&committed_addr) {
            roles.insert(self.pod.clone(), Role::Master);
        } else if m.nodes.iter().any(|n| n.kind == "replica" && own(&n.addr)) {
            roles.insert(self.pod.clone(), Role::Replica);
        } else {
            roles.remove(&self.pod);
        }
        View {
            in_touch: st.group.has_leader() && st.group.voter,
            leader,
            epoch: m.config_epoch,
            failover: m.failover.is_some(),
            roles,
        }
    }
}

/// Taints put on a node before it is drained or removed.
const DRAIN_TAINTS: &[&str] = &[
    "node.kubernetes.io/unschedulable",
    "ToBeDeletedByClusterAutoscaler",
    "karpenter.sh/disrupted",
    "karpenter.sh/disruption",
];

/// The most peers a StatefulSet's `spec.replicas` may give (a master lists
/// at most 64 other daemons).
const MAX_PEERS: i32 = 65;

/// A drain's switchover is asked again after this long if the pod still
/// holds the master.
const DRAIN_RETRY: Duration = Duration::from_secs(10);

/// Why `node` is being drained, if it is: cordoned, or a drain taint.
fn draining(node: &Node) -> Option<String> {
    let spec = node.spec.as_ref()?;
    if spec.unschedulable == Some(true) {
        return Some("is cordoned".into());
    }
    spec.taints
        .iter()
        .flatten()
        .find(|t| DRAIN_TAINTS.contains(&t.key.as_str()))
        .map(|t| format!("has the taint {}", t.key))
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Master => "master",
        Role::Replica => "replica",
        Role::Unhealthy => "unhealthy",
    }
}

/// The selector of this pod's set: its instance and name labels.
fn set_selector(own: &Pod) -> Option<String> {
    let l = own.metadata.labels.as_ref()?;
    let mut parts = Vec::new();
    for k in ["app.kubernetes.io/name", "app.kubernetes.io/instance"] {
        if let Some(v) = l.get(k) {
            parts.push(format!("{k}={v}"));
        }
    }
    l.contains_key("app.kubernetes.io/instance")
        .then(|| parts.join(","))
}

fn seen_of(p: &Pod) -> Seen {
    let md = &p.metadata;
    Seen {
        name: md.name.clone().unwrap_or_default(),
        resource_version: md.resource_version.clone().unwrap_or_default(),
        labels: md.labels.clone().unwrap_or_default().into_iter().collect(),
        epoch: md
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::EPOCH_ANNOTATION))
            .and_then(|e| e.parse().ok()),
        fenced: md
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::FENCED_ANNOTATION))
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        redis: md
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::REDIS_ANNOTATION))
            .cloned(),
    }
}

/// What a published event becomes: the Event's reason and type, and
/// whether it is about the group (posted by the Raft leader only, once)
/// rather than about this daemon.
fn classify(channel: &str) -> Option<(&'static str, &'static str, bool)> {
    Some(match channel {
        "+switch-master" => ("SwitchMaster", "Normal", true),
        "+odown" => ("ObjectivelyDown", "Warning", true),
        "-odown" => ("ObjectivelyDownCleared", "Normal", true),
        c if c.starts_with("-failover-abort-") => ("FailoverAborted", "Warning", true),
        "+raft-members" => ("RaftMembershipChanged", "Normal", true),
        "+fenced-master" => ("FencedMasterSwitch", "Warning", true),
        "+master-back-empty" => ("MasterBackEmpty", "Warning", true),
        "+fence" => ("Fenced", "Warning", false),
        "-fence" => ("FenceLifted", "Normal", false),
        _ => return None,
    })
}

/// The event task: runs until the daemon shuts down.
async fn run_events(k: Arc<Kube>, h: Handles, mut rx: mpsc::Receiver<(Arc<str>, Arc<[u8]>)>) {
    let mut failing = Failing::default();
    let mut uid: Option<String> = None;
    loop {
        let (channel, payload) = tokio::select! {
            _ = h.shutdown.cancelled() => return,
            m = rx.recv() => match m {
                Some(m) => m,
                None => return h.shutdown.cancelled().await,
            },
        };
        let Some((reason, kind, group)) = classify(&channel) else {
            continue;
        };
        if group {
            let g = status::snapshot(&h).group;
            let leader = g
                .leader
                .as_ref()
                .zip(g.node_id)
                .is_some_and(|(l, id)| l.id == id);
            if !leader {
                continue;
            }
        }
        if uid.is_none() {
            if let Ok(p) = timed(k.pods.get(&k.pod)).await {
                uid = p.metadata.uid;
            }
        }
        let message = format!("{channel} {}", String::from_utf8_lossy(&payload));
        let ev = k.event(reason, kind, &message, uid.as_deref());
        match timed(k.events.create(&PostParams::default(), &ev)).await {
            Ok(_) => {
                failing.ok("create event");
                metrics::counter!("raftinel_k8s_events_total").increment(1);
            }
            Err(e) => failing.failed("create event", e),
        }
    }
}

impl Kube {
    /// A core/v1 Event about this daemon's pod.
    fn event(&self, reason: &str, kind: &str, message: &str, uid: Option<&str>) -> Event {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let v = serde_json::json!({
            "metadata": {"generateName": format!("{}.", self.pod), "namespace": self.namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": self.pod,
                "namespace": self.namespace, "uid": uid},
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "raftinel", "host": self.pod},
            "reportingComponent": "raftinel",
            "reportingInstance": self.pod,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        serde_json::from_value(v).unwrap_or_default()
    }
}
