//! An in-test fake of the Kubernetes API server, for the daemon's Kubernetes
//! client (the `kube` crate, configured with `cluster_url = http://<addr>`).
//!
//! It speaks real HTTP/1.1 (hyper) on loopback, in its own thread with its
//! own tokio runtime, so the synchronous tests drive it through a plain
//! handle ([`FakeApi`]); dropping the handle stops the server and closes
//! every connection. It serves one namespace and these namespaced resources,
//! held in memory:
//!
//! - `GET /api/v1/namespaces/{ns}/pods/{name}`: one pod, or a 404 `Status`.
//! - `GET /api/v1/namespaces/{ns}/pods`: a `PodList` sorted by name, filtered
//!   by `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated)
//!   and `fieldSelector` (`metadata.name`, `metadata.namespace`).
//! - the same with `watch=true`: a chunked stream of `WatchEvent` lines
//!   (`ADDED`, `MODIFIED`, `DELETED`) after `resourceVersion` (all matching
//!   pods as `ADDED` first when it is absent or `"0"`), until
//!   `timeoutSeconds` (default 300). A pod that stops matching the selector is
//!   sent as `DELETED`, one that starts matching as `ADDED`, as the real
//!   server does. The last [`HISTORY`] pod changes are kept: a watch from an
//!   older version gets an `ERROR` line with a 410 `Expired` Status, and the
//!   stream ends.
//! - `PATCH /api/v1/namespaces/{ns}/pods/{name}`: JSON merge patch (RFC 7386)
//!   for `application/merge-patch+json`, and the same for
//!   `application/strategic-merge-patch+json` (right for labels and
//!   annotations; no `$patch` directives, lists are replaced). A
//!   `metadata.resourceVersion` in the patch is a precondition (409
//!   `Conflict`). The patch may not change the name or namespace (400) nor the
//!   uid (409). Other content types get 415.
//! - `POST /api/v1/namespaces/{ns}/events`: a core/v1 Event, stored (201);
//!   `generateName` gets 5 random lowercase letters.
//! - `GET /apis/apps/v1/namespaces/{ns}/statefulsets/{name}`.
//!
//! Every write (to a pod, an event or a StatefulSet) takes the next value of
//! one global resource version, as etcd's revision. As in the real server, a
//! patch that changes nothing is not a write: the pod keeps its
//! resourceVersion, no watch event is sent and the label timeline gets no
//! entry. Anything else gets a 404 `Status`, a known path with another method
//! a 405, a request that cannot be parsed a 400; with a token
//! ([`FakeApi::with_token`]), a request without `Authorization: Bearer
//! <token>` gets a 401.
//!
//! The handle also plays "the rest of the cluster" (pods added, relabelled and
//! deleted by other actors), records every request, injects faults (failed
//! answers, RBAC refusals, slow answers, a server that closes every
//! connection) and keeps a label timeline for end-to-end assertions (who held
//! a label, and when).
//!
//! What it does not do: admission (no defaulting, no validation beyond label
//! and annotation types), field managers and managed fields, server-side
//! apply, JSON patch, set-based selectors (`in`, `notin`), pagination
//! (`limit` is ignored, one page), bookmarks, streaming lists
//! (`sendInitialEvents`), protobuf, cluster-scoped resources, and any
//! resource or verb not listed above.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::Rng as _;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot, watch};

/// Pod changes kept for watches (the real server keeps a window too).
pub const HISTORY: usize = 1000;
/// Largest request body (the real server's limit is about 3 MiB).
const MAX_BODY: usize = 3 << 20;
/// Default `timeoutSeconds` of a watch.
const WATCH_TIMEOUT: Duration = Duration::from_secs(300);
/// Verbs and resources [`FakeApi::forbid`] knows.
const VERBS: &[&str] = &["get", "list", "watch", "patch", "create"];
const RESOURCES: &[&str] = &["pods", "events", "statefulsets", "nodes"];

// ---------------------------------------------------------------- handle

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (not decoded), empty if none.
    pub query: String,
    pub content_type: Option<String>,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
    /// The status answered (200 for a watch that started streaming).
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

/// A running fake API server. Dropping it stops the server.
pub struct FakeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Start a fake serving `namespace` on `127.0.0.1:0`.
    pub fn start(namespace: &str) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake API server");
        Self::start_on(listener, namespace)
    }

    /// Start a fake serving `namespace` on a listener bound by the caller
    /// (inside a network namespace, say).
    pub fn start_on(listener: TcpListener, namespace: &str) -> FakeApi {
        let addr = listener.local_addr().expect("listener address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime for the fake API server");
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener).expect("register the listener")
        };
        let (changed, _) = watch::channel(());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(namespace)),
            changed,
        });
        let (stop, stopped) = oneshot::channel();
        let server = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-kube-api".into())
            .spawn(move || {
                rt.block_on(serve(listener, server, stopped));
                // Dropping the runtime drops every connection and watch.
                drop(rt);
            })
            .expect("spawn the fake API server thread");
        FakeApi {
            shared,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Require `Authorization: Bearer <token>` on every request (else 401).
    pub fn with_token(self, token: &str) -> FakeApi {
        self.shared.lock().token = Some(token.to_string());
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, for the daemon's `cluster_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn namespace(&self) -> String {
        self.shared.lock().namespace.clone()
    }

    /// The current global resource version.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Create a pod, as another actor would (a StatefulSet controller).
    /// Panics if it exists.
    pub fn add_pod(&self, name: &str, labels: &[(&str, &str)]) {
        self.shared.write(|st| {
            assert!(!st.pods.contains_key(name), "fake API: pod {name} exists");
            let labels: Map<String, Value> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            let pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": st.namespace,
                    "uid": new_uid(),
                    "labels": labels,
                    "annotations": {},
                },
                "spec": {"containers": [{"name": "redis", "image": "redis"}]},
                "status": {"phase": "Running"},
            });
            st.write_pod(name, Some(pod));
        })
    }

    /// Set (`Some`) or remove (`None`) labels of a pod, as another actor
    /// would: the resourceVersion is bumped and watches get `MODIFIED`
    /// (unless nothing changed). Panics if the pod does not exist.
    pub fn set_labels(&self, name: &str, labels: &[(&str, Option<&str>)]) {
        self.set_meta(name, "labels", labels)
    }

    /// Set (`Some`) or remove (`None`) annotations, as another actor would
    /// (`kubectl annotate`).
    pub fn set_annotations(&self, name: &str, annotations: &[(&str, Option<&str>)]) {
        self.set_meta(name, "annotations", annotations)
    }

    fn set_meta(&self, name: &str, map: &str, entries: &[(&str, Option<&str>)]) {
        self.shared.write(|st| {
            let Some(old) = st.pods.get(name) else {
                panic!("fake API: no pod {name}");
            };
            let mut pod = old.clone();
            let patch: Map<String, Value> = entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.map_or(Value::Null, Value::from)))
                .collect();
            merge_patch(&mut pod, &json!({"metadata": {map: patch}}));
            if &pod != old {
                st.write_pod(name, Some(pod));
            }
        })
    }

    /// Delete a pod (watches get `DELETED`). Returns whether it existed.
    pub fn delete_pod(&self, name: &str) -> bool {
        self.shared.write(|st| {
            let existed = st.pods.contains_key(name);
            if existed {
                st.write_pod(name, None);
            }
            existed
        })
    }

    pub fn pod(&self, name: &str) -> Option<Value> {
        self.shared.lock().pods.get(name).cloned()
    }

    pub fn label(&self, name: &str, key: &str) -> Option<String> {
        self.meta_str(name, "labels", key)
    }

    pub fn annotation(&self, name: &str, key: &str) -> Option<String> {
        self.meta_str(name, "annotations", key)
    }

    fn meta_str(&self, name: &str, map: &str, key: &str) -> Option<String> {
        let st = self.shared.lock();
        let v = st.pods.get(name)?.get("metadata")?.get(map)?.get(key)?;
        v.as_str().map(str::to_string)
    }

    /// Create or replace a StatefulSet with `spec.replicas`.
    pub fn add_statefulset(&self, name: &str, replicas: i32) {
        self.shared.write(|st| {
            st.rv += 1;
            let uid = st
                .statefulsets
                .get(name)
                .and_then(|s| s["metadata"]["uid"].as_str().map(str::to_string))
                .unwrap_or_else(new_uid);
            let sts = json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {
                    "name": name,
                    "namespace": st.namespace,
                    "uid": uid,
                    "resourceVersion": st.rv.to_string(),
                    "labels": {"app": name},
                    "annotations": {},
                },
                "spec": {
                    "replicas": replicas,
                    "serviceName": name,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "redis", "image": "redis"}]},
                    },
                },
                "status": {"replicas": replicas},
            });
            st.statefulsets.insert(name.to_string(), sts);
        })
    }

    /// Create or replace a Node: cordoned (`spec.unschedulable`) or not,
    /// with taints of `keys` (effect NoSchedule).
    pub fn set_node(&self, name: &str, unschedulable: bool, taints: &[&str]) {
        self.shared.write(|st| {
            st.rv += 1;
            let taints: Vec<Value> = taints
                .iter()
                .map(|k| json!({"key": k, "effect": "NoSchedule"}))
                .collect();
            let node = json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "uid": new_uid(), "resourceVersion": st.rv.to_string()},
                "spec": {"unschedulable": unschedulable, "taints": taints},
            });
            st.nodes.insert(name.to_string(), node);
        })
    }

    /// The Events posted, in order.
    pub fn events(&self) -> Vec<Value> {
        self.shared.lock().events.clone()
    }

    /// Every request received, in order (watches when they start). Requests
    /// met while [down](FakeApi::set_down) are not answered nor recorded.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// The next `n` requests other than watches get `code` with a `Status`
    /// (an invalid code gets 500), whatever they ask; a request refused for
    /// its token does not count. Replaces any earlier `fail_next`.
    pub fn fail_next(&self, n: usize, code: u16) {
        let mut st = self.shared.lock();
        st.fail_next = n;
        st.fail_code = code;
    }

    /// Refuse `verb` on `resource` with a 403, as RBAC would. Verbs: get,
    /// list, watch, patch, create; resources: pods, events, statefulsets.
    pub fn forbid(&self, verb: &str, resource: &str) {
        check_rule(verb, resource);
        let rule = (verb.to_string(), resource.to_string());
        self.shared.lock().forbidden.insert(rule);
    }

    /// Undo [`FakeApi::forbid`].
    pub fn allow(&self, verb: &str, resource: &str) {
        check_rule(verb, resource);
        let rule = (verb.to_string(), resource.to_string());
        self.shared.lock().forbidden.remove(&rule);
    }

    /// Delay every answer but watches by `delay`. The request takes effect at
    /// once; only its answer is late (a client that gives up meanwhile has
    /// still written).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// While down, connections are closed at once without an answer: new
    /// ones when accepted, kept-alive ones at their next request, and open
    /// watches are cut.
    pub fn set_down(&self, down: bool) {
        self.shared.write(|st| st.down = down);
    }

    /// After every write to a pod (added, patched, relabelled, deleted):
    /// when, and the sorted names of the pods whose label `key` was `value`.
    pub fn timeline(&self, key: &str, value: &str) -> Vec<(Instant, Vec<String>)> {
        let st = self.shared.lock();
        let mut labels: BTreeMap<&str, &Map<String, Value>> = BTreeMap::new();
        let mut out = Vec::with_capacity(st.label_log.len());
        for write in &st.label_log {
            match &write.labels {
                Some(map) => labels.insert(write.pod.as_str(), map),
                None => labels.remove(write.pod.as_str()),
            };
            let holders = labels
                .iter()
                .filter(|(_, m)| m.get(key).and_then(Value::as_str) == Some(value))
                .map(|(name, _)| name.to_string())
                .collect();
            out.push((write.at, holders));
        }
        out
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn check_rule(verb: &str, resource: &str) {
    assert!(VERBS.contains(&verb), "fake API: unknown verb {verb:?}");
    assert!(
        RESOURCES.contains(&resource),
        "fake API: unknown resource {resource:?}"
    );
}

fn new_uid() -> String {
    let h = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// ---------------------------------------------------------------- state

struct Shared {
    state: Mutex<State>,
    /// Marked after every change of state watches care about.
    changed: watch::Sender<()>,
}

impl Shared {
    /// The state (a panicking test thread does not poison it for the others).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the state, then wake the watches.
    fn write<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.send_replace(());
        out
    }
}

/// One write to a pod, for the label timeline.
struct LabelWrite {
    at: Instant,
    pod: String,
    /// Its labels after the write, `None` once deleted.
    labels: Option<Map<String, Value>>,
}

/// One change of a pod, for watches.
struct Change {
    rv: u64,
    before: Option<Value>,
    after: Option<Value>,
    /// What a watch sends: `after`, or the deleted pod at the deletion's
    /// resourceVersion.
    object: Value,
}

struct State {
    namespace: String,
    token: Option<String>,
    rv: u64,
    pods: BTreeMap<String, Value>,
    statefulsets: BTreeMap<String, Value>,
    nodes: BTreeMap<String, Value>,
    events: Vec<Value>,
    history: VecDeque<Change>,
    /// Every pod change after this version is in `history`.
    history_floor: u64,
    label_log: Vec<LabelWrite>,
    requests: Vec<Request>,
    fail_next: usize,
    fail_code: u16,
    forbidden: BTreeSet<(String, String)>,
    delay: Duration,
    down: bool,
}

impl State {
    fn new(namespace: &str) -> State {
        State {
            namespace: namespace.to_string(),
            token: None,
            rv: 0,
            pods: BTreeMap::new(),
            statefulsets: BTreeMap::new(),
            nodes: BTreeMap::new(),
            events: Vec::new(),
            history: VecDeque::new(),
            history_floor: 0,
            label_log: Vec::new(),
            requests: Vec::new(),
            fail_next: 0,
            fail_code: 500,
            forbidden: BTreeSet::new(),
            delay: Duration::ZERO,
            down: false,
        }
    }

    /// Store a pod (or delete it with `None`) at the next resourceVersion,
    /// recording the change for watches and the label timeline. Returns the
    /// stored pod.
    fn write_pod(&mut self, name: &str, pod: Option<Value>) -> Option<Value> {
        self.rv += 1;
        let rv = self.rv;
        let before = self.pods.remove(name);
        let after = pod.map(|mut p| {
            p["metadata"]["resourceVersion"] = Value::from(rv.to_string());
            self.pods.insert(name.to_string(), p.clone());
            p
        });
        let object = match (&after, &before) {
            (Some(p), _) => p.clone(),
            (None, Some(old)) => {
                let mut gone = old.clone();
                gone["metadata"]["resourceVersion"] = Value::from(rv.to_string());
                gone
            }
            (None, None) => return None,
        };
        let labels = after.as_ref().map(|p| {
            p["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        });
        self.label_log.push(LabelWrite {
            at: Instant::now(),
            pod: name.to_string(),
            labels,
        });
        self.history.push_back(Change {
            rv,
            before,
            after: after.clone(),
            object,
        });
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.history_floor = old.rv;
            }
        }
        after
    }

    /// Answer one request (the body already read).
    fn respond(&mut self, req: &Received) -> Reply {
        if let Some(token) = &self.token {
            let given = req
                .authorization
                .as_deref()
                .and_then(|a| a.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim());
            if given != Some(token.as_str()) {
                return Reply::status(401, "Unauthorized", "Unauthorized".into(), None);
            }
        }
        let query = match Query::parse(&req.query) {
            Ok(q) => q,
            Err(e) => return Reply::bad_request(e),
        };
        let watch = match query.get("watch").map(parse_bool).transpose() {
            Ok(w) => req.method == Method::GET && w == Some(true),
            Err(e) => return Reply::bad_request(e),
        };
        if !watch && self.fail_next > 0 {
            self.fail_next -= 1;
            let code = StatusCode::from_u16(self.fail_code)
                .map(|c| c.as_u16())
                .unwrap_or(500);
            let msg = format!("injected failure ({code})");
            return Reply::status(code, reason(code), msg, None);
        }
        let Some((ns, route)) = Route::parse(&req.path) else {
            let msg = "the server could not find the requested resource".into();
            return Reply::status(404, "NotFound", msg, Some(json!({})));
        };
        // Nodes are cluster-scoped.
        if ns != self.namespace && !matches!(route, Route::Node(_)) {
            let msg = format!("namespaces {ns:?} not found");
            let details = json!({"name": ns, "kind": "namespaces"});
            return Reply::status(404, "NotFound", msg, Some(details));
        }
        let verb = match (&route, &req.method) {
            (Route::Pods, &Method::GET) if watch => "watch",
            (Route::Pods, &Method::GET) => "list",
            (Route::Pod(_), &Method::GET)
            | (Route::StatefulSet(_), &Method::GET)
            | (Route::Node(_), &Method::GET) => "get",
            (Route::Pod(_), &Method::PATCH) => "patch",
            (Route::Events, &Method::POST) => "create",
            _ => {
                let msg = "the server does not allow this method on the requested resource";
                return Reply::status(405, "MethodNotAllowed", msg.into(), Some(json!({})));
            }
        };
        let (resource, name) = route.resource();
        if self
            .forbidden
            .contains(&(verb.to_string(), resource.to_string()))
        {
            return self.forbidden_reply(verb, resource, name);
        }
        let body = match &req.body {
            Ok(b) => b,
            Err(code) => {
                let msg = "the request body could not be read".to_string();
                return Reply::status(*code, reason(*code), msg, None);
            }
        };
        match route {
            Route::Pods => {
                let filter = match Filter::parse(&query) {
                    Ok(f) => f,
                    Err(e) => return Reply::bad_request(e),
                };
                if watch {
                    self.start_watch(&query, filter)
                } else {
                    self.list_pods(&filter)
                }
            }
            Route::Pod(name) if verb == "get" => match self.pods.get(name) {
                Some(pod) => Reply::json(200, pod.clone()),
                None => not_found("pods", "", name),
            },
            Route::Pod(name) => self.patch_pod(name, req.content_type.as_deref(), body),
            Route::Events => self.create_event(req.content_type.as_deref(), body),
            Route::StatefulSet(name) => match self.statefulsets.get(name) {
                Some(sts) => Reply::json(200, sts.clone()),
                None => not_found("statefulsets", "apps", name),
            },
            Route::Node(name) => match self.nodes.get(name) {
                Some(n) => Reply::json(200, n.clone()),
                None => not_found("nodes", "", name),
            },
        }
    }

    fn forbidden_reply(&self, verb: &str, resource: &str, name: Option<&str>) -> Reply {
        let group = if resource == "statefulsets" {
            "apps"
        } else {
            ""
        };
        let qualified = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        let what = match name {
            Some(n) => format!("{qualified} {n:?}"),
            None => qualified,
        };
        let ns = &self.namespace;
        let msg = format!(
            "{what} is forbidden: User \"system:serviceaccount:{ns}:raftinel\" cannot {verb} \
             resource \"{resource}\" in API group \"{group}\" in the namespace \"{ns}\""
        );
        let mut details = json!({"kind": resource});
        if let Some(n) = name {
            details["name"] = Value::from(n);
        }
        if !group.is_empty() {
            details["group"] = Value::from(group);
        }
        Reply::status(403, "Forbidden", msg, Some(details))
    }

    fn list_pods(&self, filter: &Filter) -> Reply {
        let items: Vec<Value> = self
            .pods
            .values()
            .filter(|p| filter.matches(p))
            .cloned()
            .collect();
        Reply::json(
            200,
            json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": self.rv.to_string()},
                "items": items,
            }),
        )
    }

    fn start_watch(&self, query: &Query, filter: Filter) -> Reply {
        let since = match query.get("resourceVersion") {
            None | Some("") | Some("0") => None,
            Some(v) => match v.parse::<u64>() {
                Ok(rv) => Some(rv),
                Err(_) => return Reply::bad_request(format!("invalid resourceVersion {v:?}")),
            },
        };
        let timeout = match query.get("timeoutSeconds") {
            None | Some("") => WATCH_TIMEOUT,
            Some(v) => match v.parse::<u64>() {
                Ok(s) => Duration::from_secs(s),
                Err(_) => return Reply::bad_request(format!("invalid timeoutSeconds {v:?}")),
            },
        };
        Reply::Watch(WatchSpec {
            filter,
            cursor: since.map_or(Cursor::Fresh, Cursor::From),
            timeout,
        })
    }

    fn patch_pod(&mut self, name: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
        let media = content_type.map(media_type);
        if !matches!(
            media.as_deref(),
            Some("application/merge-patch+json" | "application/strategic-merge-patch+json")
        ) {
            let msg = format!(
                "the body of the request was in an unknown format ({}) - accepted media types \
                 include: application/json-patch+json, application/merge-patch+json, \
                 application/apply-patch+yaml, application/strategic-merge-patch+json",
                content_type.unwrap_or("")
            );
            return Reply::status(415, "UnsupportedMediaType", msg, None);
        }
        let patch: Value = match serde_json::from_slice(body) {
            Ok(p @ Value::Object(_)) => p,
            Ok(_) => return Reply::bad_request("the patch is not a JSON object".into()),
            Err(e) => return Reply::bad_request(format!("the patch is not JSON: {e}")),
        };
        let Some(old) = self.pods.get(name) else {
            return not_found("pods", "", name);
        };
        let current_rv = old["metadata"]["resourceVersion"].clone();
        if let Some(rv) = patch.get("metadata").and_then(|m| m.get("resourceVersion")) {
            if !rv.is_null() && *rv != current_rv {
                let msg = format!(
                    "Operation cannot be fulfilled on pods {name:?}: the object has been \
                     modified; please apply your changes to the latest version and try again"
                );
                let details = json!({"name": name, "kind": "pods"});
                return Reply::status(409, "Conflict", msg, Some(details));
            }
        }
        let mut pod = old.clone();
        merge_patch(&mut pod, &patch);
        pod["metadata"]["resourceVersion"] = current_rv;
        if let Err(reply) = check_patched(old, &pod, name) {
            return reply;
        }
        if &pod == old {
            return Reply::json(200, pod);
        }
        match self.write_pod(name, Some(pod)) {
            Some(stored) => Reply::json(200, stored),
            None => not_found("pods", "", name),
        }
    }

    fn create_event(&mut self, content_type: Option<&str>, body: &[u8]) -> Reply {
        if let Some(media) = content_type.map(media_type) {
            if media != "application/json" {
                let msg = format!("the body of the request was in an unknown format ({media})");
                return Reply::status(415, "UnsupportedMediaType", msg, None);
            }
        }
        let mut event: Value = match serde_json::from_slice(body) {
            Ok(e @ Value::Object(_)) => e,
            Ok(_) => return Reply::bad_request("the Event is not a JSON object".into()),
            Err(e) => return Reply::bad_request(format!("the Event is not JSON: {e}")),
        };
        if !event["metadata"].is_object() {
            event["metadata"] = json!({});
        }
        let meta = &mut event["metadata"];
        match meta.get("namespace").and_then(Value::as_str) {
            None => meta["namespace"] = Value::from(self.namespace.as_str()),
            Some(ns) if ns == self.namespace => {}
            Some(_) => {
                let msg = "the namespace of the provided object does not match the namespace \
                           sent on the request";
                return Reply::bad_request(msg.into());
            }
        }
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let generate = meta.get("generateName").and_then(Value::as_str);
        let name = match (name, generate) {
            (Some(n), _) => n.to_string(),
            (None, Some(prefix)) if !prefix.is_empty() => {
                let mut rng = rand::thread_rng();
                let suffix: String = (0..5).map(|_| rng.gen_range(b'a'..=b'z') as char).collect();
                format!("{prefix}{suffix}")
            }
            _ => {
                let msg = "Event \"\" is invalid: metadata.name: Required value: name or \
                           generateName is required";
                return Reply::status(422, "Invalid", msg.into(), Some(json!({"kind": "Event"})));
            }
        };
        self.rv += 1;
        meta["name"] = Value::from(name);
        meta["uid"] = Value::from(new_uid());
        meta["resourceVersion"] = Value::from(self.rv.to_string());
        if event.get("kind").is_none() {
            event["kind"] = Value::from("Event");
        }
        if event.get("apiVersion").is_none() {
            event["apiVersion"] = Value::from("v1");
        }
        self.events.push(event.clone());
        Reply::json(201, event)
    }

    /// The watch lines due after `cursor`, and whether the stream ends.
    fn watch_batch(&self, filter: &Filter, cursor: &mut Cursor) -> Option<(Vec<Bytes>, bool)> {
        if self.down {
            return None;
        }
        let mut lines = Vec::new();
        match *cursor {
            Cursor::Fresh => {
                for pod in self.pods.values().filter(|p| filter.matches(p)) {
                    lines.push(watch_line("ADDED", pod));
                }
            }
            Cursor::From(since) if since < self.history_floor => {
                let msg = format!(
                    "too old resource version: {since} ({})",
                    self.history_floor + 1
                );
                let status = status_object(410, "Expired", msg, None);
                lines.push(watch_line("ERROR", &status));
                return Some((lines, true));
            }
            Cursor::From(since) => {
                for change in self.history.iter().filter(|c| c.rv > since) {
                    let was = change.before.as_ref().is_some_and(|p| filter.matches(p));
                    let is = change.after.as_ref().is_some_and(|p| filter.matches(p));
                    let kind = match (was, is) {
                        (false, true) => "ADDED",
                        (true, true) => "MODIFIED",
                        (true, false) => "DELETED",
                        (false, false) => continue,
                    };
                    lines.push(watch_line(kind, &change.object));
                }
            }
        }
        *cursor = match *cursor {
            Cursor::From(since) => Cursor::From(since.max(self.rv)),
            Cursor::Fresh => Cursor::From(self.rv),
        };
        Some((lines, false))
    }
}

/// Refuse a patched pod that changed its identity or holds labels or
/// annotations that are not strings.
fn check_patched(old: &Value, new: &Value, name: &str) -> Result<(), Reply> {
    let meta = &new["metadata"];
    if meta["name"] != old["metadata"]["name"] {
        let msg = format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta["name"]
        );
        return Err(Reply::bad_request(msg));
    }
    if meta["namespace"] != old["metadata"]["namespace"] {
        let msg = "the namespace of the provided object does not match the namespace sent on \
                   the request";
        return Err(Reply::bad_request(msg.into()));
    }
    if meta["uid"] != old["metadata"]["uid"] {
        let msg = format!(
            "Precondition failed: UID in precondition: {}, UID in object meta: {}",
            meta["uid"], old["metadata"]["uid"]
        );
        let details = json!({"name": name, "kind": "pods"});
        return Err(Reply::status(409, "Conflict", msg, Some(details)));
    }
    for map in ["labels", "annotations"] {
        let ok = match &meta[map] {
            Value::Null => true,
            Value::Object(m) => m.values().all(Value::is_string),
            _ => false,
        };
        if !ok {
            let msg = format!("metadata.{map}: the values must be strings");
            return Err(Reply::bad_request(msg));
        }
    }
    Ok(())
}

/// RFC 7386 JSON merge patch: `null` deletes a key, objects merge
/// recursively, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// `text/plain; charset=utf-8` → `text/plain`.
fn media_type(content_type: &str) -> String {
    let media = content_type.split(';').next().unwrap_or("");
    media.trim().to_ascii_lowercase()
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {v:?}")),
    }
}

// ---------------------------------------------------------------- replies

/// What a request gets: a JSON document, or a watch stream.
enum Reply {
    Json(u16, Value),
    Watch(WatchSpec),
}

impl Reply {
    fn json(code: u16, body: Value) -> Reply {
        Reply::Json(code, body)
    }

    fn status(code: u16, reason: &str, message: String, details: Option<Value>) -> Reply {
        Reply::Json(code, status_object(code, reason, message, details))
    }

    fn bad_request(message: String) -> Reply {
        Reply::status(400, "BadRequest", message, None)
    }

    fn code(&self) -> u16 {
        match self {
            Reply::Json(code, _) => *code,
            Reply::Watch(_) => 200,
        }
    }
}

fn not_found(resource: &str, group: &str, name: &str) -> Reply {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let msg = format!("{qualified} {name:?} not found");
    let mut details = json!({"name": name, "kind": resource});
    if !group.is_empty() {
        details["group"] = Value::from(group);
    }
    Reply::status(404, "NotFound", msg, Some(details))
}

/// A `meta/v1` Status of a failure.
fn status_object(code: u16, reason: &str, message: String, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

/// The `reason` the real server gives with a status code.
fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

// ---------------------------------------------------------------- routes and selectors

enum Route<'a> {
    Pods,
    Pod(&'a str),
    Events,
    StatefulSet(&'a str),
    /// Cluster-scoped: the namespace returned with it is empty.
    Node(&'a str),
}

impl<'a> Route<'a> {
    /// The namespace and the route of a path.
    fn parse(path: &'a str) -> Option<(&'a str, Route<'a>)> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let route = match segments[..] {
            ["api", "v1", "namespaces", ns, "pods"] => (ns, Route::Pods),
            ["api", "v1", "namespaces", ns, "pods", name] => (ns, Route::Pod(name)),
            ["api", "v1", "namespaces", ns, "events"] => (ns, Route::Events),
            ["apis", "apps", "v1", "namespaces", ns, "statefulsets", name] => {
                (ns, Route::StatefulSet(name))
            }
            ["api", "v1", "nodes", name] => ("", Route::Node(name)),
            _ => return None,
        };
        let names_ok = match route.1 {
            Route::Pod(n) | Route::StatefulSet(n) | Route::Node(n) => !n.is_empty(),
            Route::Pods | Route::Events => true,
        };
        let scoped = !matches!(route.1, Route::Node(_));
        ((!scoped || !route.0.is_empty()) && names_ok).then_some(route)
    }

    fn resource(&self) -> (&'static str, Option<&'a str>) {
        match *self {
            Route::Pods => ("pods", None),
            Route::Pod(n) => ("pods", Some(n)),
            Route::Events => ("events", None),
            Route::StatefulSet(n) => ("statefulsets", Some(n)),
            Route::Node(n) => ("nodes", Some(n)),
        }
    }
}

/// A decoded query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Result<Query, String> {
        let mut pairs = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((percent_decode(k)?, percent_decode(v)?));
        }
        Ok(Query(pairs))
    }

    /// The first value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Form decoding: `%XX` and `+` for a space.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("invalid percent-encoding in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("invalid UTF-8 in {s:?}"))
}

/// One requirement of a label selector.
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
}

/// A label selector and a field selector, both conjunctions.
struct Filter {
    labels: Vec<LabelReq>,
    /// (field, value, equal) on `metadata.name` or `metadata.namespace`.
    fields: Vec<(String, String, bool)>,
}

impl Filter {
    fn parse(query: &Query) -> Result<Filter, String> {
        let mut labels = Vec::new();
        for term in query.get("labelSelector").unwrap_or("").split(',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let req = if let Some(k) = term.strip_prefix('!') {
                LabelReq::NotExists(label_key(k)?)
            } else if let Some((k, v)) = term.split_once("!=") {
                LabelReq::Ne(label_key(k)?, label_value(v)?)
            } else if let Some((k, v)) = term.split_once("==") {
                LabelReq::Eq(label_key(k)?, label_value(v)?)
            } else if let Some((k, v)) = term.split_once('=') {
                LabelReq::Eq(label_key(k)?, label_value(v)?)
            } else {
                LabelReq::Exists(label_key(term)?)
            };
            labels.push(req);
        }
        let mut fields = Vec::new();
        for term in query.get("fieldSelector").unwrap_or("").split(',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!("invalid field selector {term:?}"));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            fields.push((field.to_string(), value.trim().to_string(), equal));
        }
        Ok(Filter { labels, fields })
    }

    fn matches(&self, object: &Value) -> bool {
        let meta = &object["metadata"];
        let label = |k: &str| meta["labels"].get(k).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|req| match req {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::Ne(k, v) => label(k) != Some(v.as_str()),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        });
        let fields_ok = self.fields.iter().all(|(field, value, equal)| {
            let key = field.trim_start_matches("metadata.");
            (meta[key].as_str() == Some(value.as_str())) == *equal
        });
        labels_ok && fields_ok
    }
}

fn label_key(k: &str) -> Result<String, String> {
    let k = k.trim();
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!("invalid label key {k:?} in the label selector"))
    }
}

fn label_value(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        Ok(v.to_string())
    } else {
        Err(format!("invalid label value {v:?} in the label selector"))
    }
}

// ---------------------------------------------------------------- HTTP

/// A request, its body read (`Err(status)` if it could not be).
struct Received {
    method: Method,
    path: String,
    query: String,
    content_type: Option<String>,
    authorization: Option<String>,
    body: Result<Bytes, u16>,
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of fds and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if shared.lock().down {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // A client that goes away is no concern of the fake.
            let _ = conn.await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let at = Instant::now();
    if shared.lock().down {
        // hyper closes the connection without an answer.
        return Err(io::Error::other("the fake API server is down"));
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(413),
        Err(_) => Err(400),
    };
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let req = Received {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        content_type: header(CONTENT_TYPE),
        authorization: header(AUTHORIZATION),
        body,
    };
    let (reply, delay, wrote) = {
        let mut st = shared.lock();
        let rv = st.rv;
        let reply = st.respond(&req);
        st.requests.push(Request {
            method: req.method.to_string(),
            path: req.path.clone(),
            query: req.query.clone(),
            content_type: req.content_type.clone(),
            body: req
                .body
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
            status: reply.code(),
            at,
        });
        (reply, st.delay, st.rv != rv)
    };
    if wrote {
        shared.changed.send_replace(());
    }
    match reply {
        Reply::Json(code, value) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut body = value.to_string();
            body.push('\n');
            let mut resp = json_response(code, Body::Full(Some(Bytes::from(body))));
            if code == 429 {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Ok(resp)
        }
        Reply::Watch(spec) => {
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(run_watch(shared, spec, tx));
            Ok(json_response(200, Body::Stream(rx)))
        }
    }
}

fn json_response(code: u16, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Where a watch stands.
#[derive(Clone, Copy)]
enum Cursor {
    /// Not started, no resourceVersion: send the current pods first.
    Fresh,
    /// Every change up to this version was sent.
    From(u64),
}

struct WatchSpec {
    filter: Filter,
    cursor: Cursor,
    timeout: Duration,
}

type Chunk = Result<Bytes, io::Error>;

/// Feed one watch: its lines into `tx`, until the timeout, the end of the
/// stream, the client leaving, or the server going down (an error, which
/// makes hyper cut the connection).
async fn run_watch(shared: Arc<Shared>, mut spec: WatchSpec, tx: mpsc::Sender<Chunk>) {
    let mut changed = shared.changed.subscribe();
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    loop {
        changed.borrow_and_update();
        let batch = shared.lock().watch_batch(&spec.filter, &mut spec.cursor);
        let Some((lines, end)) = batch else {
            let _ = tx.send(Err(io::Error::other("down"))).await;
            return;
        };
        for line in lines {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        if end {
            return;
        }
        tokio::select! {
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            r = changed.changed() => if r.is_err() { return },
        }
    }
}

/// A response body: one buffer, or the chunks of a watch.
enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Chunk>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}
