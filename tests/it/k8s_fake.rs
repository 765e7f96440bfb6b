//! The fake Kubernetes API server (`harness::kube_api`) itself, driven over
//! plain HTTP/1.1 from std sockets: reads, selectors, merge patches and their
//! preconditions, events, watches (from a version, expired, cut), injected
//! faults, the bearer token, the request log and the label timeline.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::kube_api::FakeApi;

const NS: &str = "redis";
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const MERGE: &str = "application/merge-patch+json";

// ---------------------------------------------------------------- a small HTTP client

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Assert a `Status` object with this code and reason; returns it.
    fn status_object(&self, code: u16, reason: &str) -> Value {
        assert_eq!(self.status, code, "body: {}", self.body);
        let s = self.json();
        assert_eq!(s["kind"], "Status", "{s}");
        assert_eq!(s["apiVersion"], "v1", "{s}");
        assert_eq!(s["status"], "Failure", "{s}");
        assert_eq!(s["code"], code, "{s}");
        assert_eq!(s["reason"], reason, "{s}");
        s
    }
}

/// Write one request (`Connection: close` unless told otherwise).
fn send_head(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(addr).expect("connect to the fake");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).expect("send the request");
    BufReader::new(stream)
}

/// Read a status line and headers.
fn read_head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        let l = line.trim_end();
        if l.is_empty() {
            return (status, headers);
        }
        let (k, v) = l.split_once(':').expect("header");
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
}

/// One chunk of a chunked body, `None` after the last one.
fn read_chunk(r: &mut BufReader<TcpStream>) -> io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    let size = usize::from_str_radix(line.trim(), 16)
        .map_err(|_| io::Error::new(ErrorKind::InvalidData, format!("chunk size {line:?}")))?;
    let mut data = vec![0; size + 2];
    r.read_exact(&mut data)?;
    data.truncate(size);
    Ok((size > 0).then_some(data))
}

fn request(
    api: &FakeApi,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut r = send_head(api.addr(), method, target, headers, body);
    let (status, headers) = read_head(&mut r);
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        while let Some(chunk) = read_chunk(&mut r).expect("chunk") {
            body.extend(chunk);
        }
    } else if let Some(len) = header("content-length") {
        body.resize(len.parse().expect("content-length"), 0);
        r.read_exact(&mut body).expect("body");
    } else {
        r.read_to_end(&mut body).expect("body");
    }
    Reply {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn get(api: &FakeApi, target: &str) -> Reply {
    request(api, "GET", target, &[], "")
}

fn patch(api: &FakeApi, pod: &str, content_type: &str, body: Value) -> Reply {
    let target = format!("/api/v1/namespaces/{NS}/pods/{pod}");
    request(
        api,
        "PATCH",
        &target,
        &[("Content-Type", content_type)],
        &body.to_string(),
    )
}

fn pods_path() -> String {
    format!("/api/v1/namespaces/{NS}/pods")
}

/// The names in a PodList.
fn names(list: &Value) -> Vec<String> {
    assert_eq!(list["kind"], "PodList", "{list}");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().expect("name").to_string())
        .collect()
}

fn list(api: &FakeApi, selector: &str) -> Vec<String> {
    let reply = get(api, &format!("{}?labelSelector={selector}", pods_path()));
    assert_eq!(reply.status, 200, "{selector}: {}", reply.body);
    names(&reply.json())
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion is a string")
        .parse()
        .expect("numeric resourceVersion")
}

/// An open watch stream.
struct Watch {
    reader: BufReader<TcpStream>,
    pending: Vec<u8>,
}

impl Watch {
    fn open(api: &FakeApi, query: &str) -> Watch {
        let target = format!("{}?watch=true&{query}", pods_path());
        let mut reader = send_head(api.addr(), "GET", &target, &[], "");
        let (status, headers) = read_head(&mut reader);
        assert_eq!(status, 200);
        assert!(
            headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked"),
            "{headers:?}"
        );
        Watch {
            reader,
            pending: Vec::new(),
        }
    }

    /// The next event, `Ok(None)` when the stream ended cleanly.
    fn try_event(&mut self) -> io::Result<Option<Value>> {
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                let event = serde_json::from_slice(&line)
                    .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
                return Ok(Some(event));
            }
            match read_chunk(&mut self.reader)? {
                Some(chunk) => self.pending.extend(chunk),
                None => {
                    assert!(self.pending.is_empty(), "a partial line at the end");
                    return Ok(None);
                }
            }
        }
    }

    fn event(&mut self) -> Option<Value> {
        self.try_event().expect("watch stream")
    }

    /// The next event's type and pod name.
    fn next_kind(&mut self) -> (String, String) {
        let e = self.event().expect("an event");
        let kind = e["type"].as_str().expect("type").to_string();
        let name = e["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (kind, name)
    }
}

fn kinds(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect()
}

/// Three pods: a master and two replicas, one of them without `app`.
fn three_pods() -> FakeApi {
    let api = FakeApi::start(NS);
    api.add_pod("redis-0", &[("app", "redis"), ("role", "master")]);
    api.add_pod("redis-2", &[("role", "replica")]);
    api.add_pod("redis-1", &[("app", "redis"), ("role", "replica")]);
    api
}

// ---------------------------------------------------------------- tests

#[test]
fn get_and_list_with_selectors() {
    let api = three_pods();
    let pod = get(&api, &format!("{}/redis-0", pods_path()));
    assert_eq!(pod.status, 200);
    assert_eq!(pod.header("content-type"), Some("application/json"));
    let pod = pod.json();
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["name"], "redis-0");
    assert_eq!(pod["metadata"]["namespace"], NS);
    assert_eq!(
        pod["metadata"]["labels"],
        json!({"app": "redis", "role": "master"})
    );
    assert_eq!(pod["metadata"]["annotations"], json!({}));
    assert!(pod["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    assert_eq!(rv(&pod), 1);

    let missing = get(&api, &format!("{}/x", pods_path()));
    assert_eq!(
        missing.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message":"pods \"x\" not found","reason":"NotFound",
               "details":{"name":"x","kind":"pods"},"code":404})
    );
    assert_eq!(missing.status, 404);

    let all = get(&api, &pods_path()).json();
    assert_eq!(names(&all), ["redis-0", "redis-1", "redis-2"]);
    assert_eq!(all["metadata"]["resourceVersion"], "3");
    assert_eq!(all["apiVersion"], "v1");

    assert_eq!(list(&api, "role%3Dmaster"), ["redis-0"]);
    assert_eq!(list(&api, "role==replica"), ["redis-1", "redis-2"]);
    assert_eq!(list(&api, "role!=master"), ["redis-1", "redis-2"]);
    assert_eq!(list(&api, "app%21%3Dredis"), ["redis-2"]);
    assert_eq!(list(&api, "app"), ["redis-0", "redis-1"]);
    assert_eq!(list(&api, "!app"), ["redis-2"]);
    assert_eq!(list(&api, "app%3Dredis%2Crole%3Dreplica"), ["redis-1"]);
    assert_eq!(list(&api, "app=redis,role!=replica"), ["redis-0"]);
    assert!(list(&api, "role=none").is_empty());
    assert_eq!(list(&api, ""), ["redis-0", "redis-1", "redis-2"]);
    let by_name = get(
        &api,
        &format!("{}?fieldSelector=metadata.name%3Dredis-1", pods_path()),
    );
    assert_eq!(names(&by_name.json()), ["redis-1"]);

    // Malformed selectors and queries are refused, not a panic.
    for bad in ["role%3D(a)", "role%zz", "a%20in%20(b)", "=x"] {
        let r = get(&api, &format!("{}?labelSelector={bad}", pods_path()));
        r.status_object(400, "BadRequest");
    }
    get(
        &api,
        &format!("{}?fieldSelector=status.phase%3DRunning", pods_path()),
    )
    .status_object(400, "BadRequest");

    // Another namespace, another resource, another method.
    get(&api, "/api/v1/namespaces/other/pods/redis-0").status_object(404, "NotFound");
    get(&api, "/api/v1/namespaces/other/pods").status_object(404, "NotFound");
    get(&api, "/api/v1/nodes").status_object(404, "NotFound");
    get(&api, &format!("/api/v1/namespaces/{NS}/services/x")).status_object(404, "NotFound");
    request(&api, "DELETE", &format!("{}/redis-0", pods_path()), &[], "")
        .status_object(405, "MethodNotAllowed");
    request(&api, "POST", &pods_path(), &[], "{}").status_object(405, "MethodNotAllowed");
    get(&api, &format!("/api/v1/namespaces/{NS}/events")).status_object(405, "MethodNotAllowed");
}

#[test]
fn statefulsets() {
    let api = FakeApi::start(NS);
    api.add_statefulset("redis", 3);
    let path = format!("/apis/apps/v1/namespaces/{NS}/statefulsets");
    let sts = get(&api, &format!("{path}/redis"));
    assert_eq!(sts.status, 200);
    let sts = sts.json();
    assert_eq!(sts["kind"], "StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["metadata"]["namespace"], NS);
    assert_eq!(rv(&sts), 1);
    let missing = get(&api, &format!("{path}/other")).status_object(404, "NotFound");
    assert_eq!(missing["message"], "statefulsets.apps \"other\" not found");
    request(
        &api,
        "PATCH",
        &format!("{path}/redis"),
        &[("Content-Type", MERGE)],
        "{}",
    )
    .status_object(405, "MethodNotAllowed");
}

#[test]
fn merge_patch_semantics() {
    let api = three_pods();
    let body = json!({"metadata": {
        "labels": {"role": "master", "app": null, "new": "x"},
        "annotations": {"raftinel/term": "7", "nested": null},
    }});
    let r = patch(&api, "redis-1", MERGE, body);
    assert_eq!(r.status, 200, "{}", r.body);
    let pod = r.json();
    assert_eq!(
        pod["metadata"]["labels"],
        json!({"role": "master", "new": "x"})
    );
    assert_eq!(
        pod["metadata"]["annotations"],
        json!({"raftinel/term": "7"})
    );
    assert_eq!(rv(&pod), 4);
    assert_eq!(api.pod("redis-1").unwrap(), pod);
    assert_eq!(api.label("redis-1", "app"), None);
    assert_eq!(api.label("redis-1", "new").as_deref(), Some("x"));
    assert_eq!(
        api.annotation("redis-1", "raftinel/term").as_deref(),
        Some("7")
    );

    // Objects merge recursively; a null deletes; other values replace.
    let r = patch(
        &api,
        "redis-1",
        MERGE,
        json!({"spec": {"extra": {"a": 1, "b": null}}}),
    );
    assert_eq!(r.json()["spec"]["extra"], json!({"a": 1}));
    assert_eq!(r.json()["spec"]["containers"][0]["name"], "redis");
    let r = patch(&api, "redis-1", MERGE, json!({"spec": {"extra": [1, 2]}}));
    assert_eq!(r.json()["spec"]["extra"], json!([1, 2]));
    let current = rv(&r.json());

    // A stale resourceVersion is a conflict; the current one applies.
    let stale = json!({"metadata": {"resourceVersion": "4", "labels": {"role": "replica"}}});
    let conflict = patch(&api, "redis-1", MERGE, stale).status_object(409, "Conflict");
    assert_eq!(
        conflict["message"],
        "Operation cannot be fulfilled on pods \"redis-1\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
    assert_eq!(
        conflict["details"],
        json!({"name": "redis-1", "kind": "pods"})
    );
    assert_eq!(api.label("redis-1", "role").as_deref(), Some("master"));
    let fresh = json!({"metadata": {"resourceVersion": current.to_string(), "labels": {"role": "replica"}}});
    let r = patch(&api, "redis-1", MERGE, fresh);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(rv(&r.json()), current + 1);
    assert_eq!(api.label("redis-1", "role").as_deref(), Some("replica"));

    // A patch that changes nothing is no write (as in the real server).
    let before = api.resource_version();
    let r = patch(
        &api,
        "redis-1",
        MERGE,
        json!({"metadata": {"labels": {"role": "replica"}}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(rv(&r.json()), current + 1);
    assert_eq!(api.resource_version(), before);

    // Strategic merge patch is taken as a merge patch for labels.
    let strategic = "application/strategic-merge-patch+json; charset=utf-8";
    let r = patch(
        &api,
        "redis-2",
        strategic,
        json!({"metadata": {"labels": {"app": "redis"}}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.label("redis-2", "app").as_deref(), Some("redis"));

    // Identity, types, content types, bad bodies, missing pods.
    let uid = api.pod("redis-1").unwrap()["metadata"]["uid"].clone();
    patch(
        &api,
        "redis-1",
        MERGE,
        json!({"metadata": {"name": "other"}}),
    )
    .status_object(400, "BadRequest");
    patch(
        &api,
        "redis-1",
        MERGE,
        json!({"metadata": {"namespace": "x"}}),
    )
    .status_object(400, "BadRequest");
    patch(&api, "redis-1", MERGE, json!({"metadata": {"uid": "x"}})).status_object(409, "Conflict");
    patch(
        &api,
        "redis-1",
        MERGE,
        json!({"metadata": {"labels": {"n": 1}}}),
    )
    .status_object(400, "BadRequest");
    assert_eq!(api.pod("redis-1").unwrap()["metadata"]["uid"], uid);
    assert_eq!(api.pod("redis-1").unwrap()["metadata"]["name"], "redis-1");
    for ct in [
        "application/json-patch+json",
        "application/apply-patch+yaml",
        "application/json",
    ] {
        patch(&api, "redis-1", ct, json!({})).status_object(415, "UnsupportedMediaType");
    }
    let target = format!("{}/redis-1", pods_path());
    request(&api, "PATCH", &target, &[], "{}").status_object(415, "UnsupportedMediaType");
    request(
        &api,
        "PATCH",
        &target,
        &[("Content-Type", MERGE)],
        "{not json",
    )
    .status_object(400, "BadRequest");
    request(&api, "PATCH", &target, &[("Content-Type", MERGE)], "[1]")
        .status_object(400, "BadRequest");
    patch(&api, "nope", MERGE, json!({})).status_object(404, "NotFound");
    assert_eq!(api.resource_version(), before + 1);
}

#[test]
fn events_post() {
    let api = FakeApi::start(NS);
    let path = format!("/api/v1/namespaces/{NS}/events");
    let event = json!({
        "metadata": {"generateName": "redis-0."},
        "involvedObject": {"kind": "Pod", "name": "redis-0", "namespace": NS},
        "reason": "Promoted",
        "message": "redis-0 is the master",
        "type": "Normal",
    });
    let r = request(
        &api,
        "POST",
        &path,
        &[("Content-Type", "application/json")],
        &event.to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let stored = r.json();
    let name = stored["metadata"]["name"].as_str().unwrap();
    let suffix = name.strip_prefix("redis-0.").expect("generateName prefix");
    assert_eq!(suffix.len(), 5);
    assert!(suffix.chars().all(|c| c.is_ascii_lowercase()), "{name}");
    assert_eq!(rv(&stored), 1);
    assert_eq!(stored["metadata"]["namespace"], NS);
    assert_eq!(stored["reason"], "Promoted");
    assert_eq!(stored["kind"], "Event");

    let named = json!({"metadata": {"name": "e1"}, "reason": "Demoted"});
    let r = request(&api, "POST", &path, &[], &named.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["metadata"]["name"], "e1");
    assert_eq!(rv(&r.json()), 2);

    let events = api.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], stored);
    assert_eq!(events[1]["reason"], "Demoted");

    request(&api, "POST", &path, &[], "{oops").status_object(400, "BadRequest");
    request(&api, "POST", &path, &[], "{\"reason\":\"x\"}").status_object(422, "Invalid");
    let elsewhere = json!({"metadata": {"name": "e2", "namespace": "other"}});
    request(&api, "POST", &path, &[], &elsewhere.to_string()).status_object(400, "BadRequest");
    request(
        &api,
        "POST",
        &path,
        &[("Content-Type", "application/yaml")],
        "{}",
    )
    .status_object(415, "UnsupportedMediaType");
    assert_eq!(api.events().len(), 2);
}

#[test]
fn watch_from_resource_version_sees_later_changes() {
    let api = three_pods();
    let listed = get(&api, &pods_path()).json();
    let from = listed["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut all = Watch::open(&api, &format!("resourceVersion={from}&timeoutSeconds=10"));
    let mut masters = Watch::open(
        &api,
        &format!("resourceVersion={from}&labelSelector=role%3Dmaster"),
    );

    let r = patch(
        &api,
        "redis-1",
        MERGE,
        json!({"metadata": {"labels": {"role": "master"}}}),
    );
    assert_eq!(r.status, 200);
    let e = all.event().unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["metadata"]["name"], "redis-1");
    assert_eq!(e["object"]["metadata"]["labels"]["role"], "master");
    assert_eq!(e["object"], r.json());

    api.set_labels("redis-0", &[("role", None)]);
    api.add_pod("redis-3", &[("role", "master")]);
    api.delete_pod("redis-3");
    assert_eq!(all.next_kind(), ("MODIFIED".into(), "redis-0".into()));
    assert_eq!(all.next_kind(), ("ADDED".into(), "redis-3".into()));
    let deleted = all.event().unwrap();
    assert_eq!(deleted["type"], "DELETED");
    assert_eq!(rv(&deleted["object"]), api.resource_version());

    // A filtered watch sees pods enter and leave the selection.
    let seen: Vec<_> = (0..4).map(|_| masters.next_kind()).collect();
    let want = [
        ("ADDED", "redis-1"),
        ("DELETED", "redis-0"),
        ("ADDED", "redis-3"),
        ("DELETED", "redis-3"),
    ];
    assert_eq!(seen, kinds(&want));

    // Without a resourceVersion: the current pods first, then changes.
    let mut fresh = Watch::open(&api, "labelSelector=role");
    let first: Vec<_> = (0..2).map(|_| fresh.next_kind()).collect();
    assert_eq!(first, kinds(&[("ADDED", "redis-1"), ("ADDED", "redis-2")]));
    api.set_labels("redis-2", &[("x", Some("y"))]);
    assert_eq!(fresh.next_kind(), ("MODIFIED".into(), "redis-2".into()));
}

#[test]
fn watch_ends_at_its_timeout() {
    let api = three_pods();
    let started = Instant::now();
    let mut w = Watch::open(&api, "timeoutSeconds=1");
    assert_eq!(w.next_kind().0, "ADDED");
    assert_eq!(w.next_kind().0, "ADDED");
    assert_eq!(w.next_kind().0, "ADDED");
    assert_eq!(w.event(), None);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn watch_from_an_expired_resource_version_gets_410() {
    let api = FakeApi::start(NS);
    api.add_pod("redis-0", &[]);
    for i in 0..1000 {
        let n = i.to_string();
        api.set_labels("redis-0", &[("n", Some(n.as_str()))]);
    }
    // Versions 2..=1001 are kept: a watch from 1 still sees everything.
    let mut kept = Watch::open(&api, "resourceVersion=1");
    let first = kept.event().unwrap();
    assert_eq!(first["type"], "MODIFIED");
    assert_eq!(rv(&first["object"]), 2);
    api.set_labels("redis-0", &[("n", Some("last"))]);

    let mut expired = Watch::open(&api, "resourceVersion=1");
    let e = expired.event().unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert_eq!(expired.event(), None, "the stream ends after the error");
    let mut recent = Watch::open(&api, "resourceVersion=2");
    assert_eq!(rv(&recent.event().unwrap()["object"]), 3);
}

#[test]
fn fail_next_answers_the_next_requests_with_a_status() {
    let api = three_pods();
    let target = format!("{}/redis-0", pods_path());
    api.fail_next(2, 503);
    // A watch does not count.
    let mut w = Watch::open(&api, "");
    assert_eq!(w.next_kind().0, "ADDED");
    get(&api, &target).status_object(503, "ServiceUnavailable");
    patch(
        &api,
        "redis-0",
        MERGE,
        json!({"metadata": {"labels": {"role": "x"}}}),
    )
    .status_object(503, "ServiceUnavailable");
    assert_eq!(api.label("redis-0", "role").as_deref(), Some("master"));
    assert_eq!(get(&api, &target).status, 200);
    for (code, reason) in [
        (403, "Forbidden"),
        (409, "Conflict"),
        (500, "InternalError"),
        (429, "TooManyRequests"),
    ] {
        api.fail_next(1, code);
        let r = get(&api, &target);
        r.status_object(code, reason);
        if code == 429 {
            assert_eq!(r.header("retry-after"), Some("1"));
        }
        assert_eq!(get(&api, &target).status, 200);
    }
}

#[test]
fn forbid_and_allow() {
    let api = three_pods();
    api.forbid("patch", "pods");
    let r = patch(
        &api,
        "redis-0",
        MERGE,
        json!({"metadata": {"labels": {"role": "x"}}}),
    );
    let s = r.status_object(403, "Forbidden");
    assert_eq!(
        s["message"],
        format!(
            "pods \"redis-0\" is forbidden: User \"system:serviceaccount:{NS}:raftinel\" cannot \
             patch resource \"pods\" in API group \"\" in the namespace \"{NS}\""
        )
    );
    assert_eq!(get(&api, &format!("{}/redis-0", pods_path())).status, 200);
    api.forbid("list", "pods");
    api.forbid("watch", "pods");
    let s = get(&api, &pods_path()).status_object(403, "Forbidden");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .starts_with("pods is forbidden"),
        "{s}"
    );
    get(&api, &format!("{}?watch=1", pods_path())).status_object(403, "Forbidden");
    api.forbid("create", "events");
    let events = format!("/api/v1/namespaces/{NS}/events");
    request(
        &api,
        "POST",
        &events,
        &[],
        "{\"metadata\":{\"name\":\"e\"}}",
    )
    .status_object(403, "Forbidden");
    api.forbid("get", "statefulsets");
    let s = get(
        &api,
        &format!("/apis/apps/v1/namespaces/{NS}/statefulsets/redis"),
    )
    .status_object(403, "Forbidden");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("in API group \"apps\""),
        "{s}"
    );

    api.allow("patch", "pods");
    api.allow("list", "pods");
    let r = patch(
        &api,
        "redis-0",
        MERGE,
        json!({"metadata": {"labels": {"role": "x"}}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&api, &pods_path()).status, 200);
    assert!(api.events().is_empty());
}

#[test]
fn token_is_required_when_given() {
    let api = FakeApi::start(NS).with_token("s3cret");
    api.add_pod("redis-0", &[]);
    let target = format!("{}/redis-0", pods_path());
    let s = get(&api, &target).status_object(401, "Unauthorized");
    assert_eq!(s["message"], "Unauthorized");
    request(
        &api,
        "GET",
        &target,
        &[("Authorization", "Bearer wrong")],
        "",
    )
    .status_object(401, "Unauthorized");
    request(
        &api,
        "GET",
        &target,
        &[("Authorization", "Basic s3cret")],
        "",
    )
    .status_object(401, "Unauthorized");
    let ok = request(
        &api,
        "GET",
        &target,
        &[("Authorization", "Bearer s3cret")],
        "",
    );
    assert_eq!(ok.status, 200);

    // Without a token, any or no Authorization is fine.
    let open = three_pods();
    assert_eq!(
        request(
            &open,
            "GET",
            &pods_path(),
            &[("Authorization", "Bearer x")],
            ""
        )
        .status,
        200
    );
}

#[test]
fn requests_are_recorded() {
    let api = three_pods();
    let t0 = Instant::now();
    get(&api, &format!("{}/redis-0", pods_path()));
    get(
        &api,
        &format!("{}?labelSelector=role%3Dmaster", pods_path()),
    );
    patch(
        &api,
        "redis-0",
        MERGE,
        json!({"metadata": {"labels": {"a": "b"}}}),
    );
    let mut w = Watch::open(&api, "resourceVersion=1");
    w.event().unwrap();
    get(&api, "/nowhere");
    let reqs = api.requests();
    let seen: Vec<_> = reqs
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.path.as_str(),
                r.query.as_str(),
                r.status,
            )
        })
        .collect();
    let pods = pods_path();
    let pod = format!("{pods}/redis-0");
    assert_eq!(
        seen,
        [
            ("GET", pod.as_str(), "", 200),
            ("GET", pods.as_str(), "labelSelector=role%3Dmaster", 200),
            ("PATCH", pod.as_str(), "", 200),
            ("GET", pods.as_str(), "watch=true&resourceVersion=1", 200),
            ("GET", "/nowhere", "", 404),
        ]
    );
    assert_eq!(reqs[2].content_type.as_deref(), Some(MERGE));
    assert_eq!(reqs[2].body, r#"{"metadata":{"labels":{"a":"b"}}}"#);
    assert_eq!(reqs[0].content_type, None);
    assert!(reqs.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(reqs[0].at >= t0);
}

#[test]
fn delay_and_down() {
    let api = three_pods();
    let target = format!("{}/redis-0", pods_path());
    api.set_delay(Duration::from_millis(100));
    let started = Instant::now();
    assert_eq!(get(&api, &target).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(100));
    api.set_delay(Duration::ZERO);

    let mut w = Watch::open(&api, "");
    for _ in 0..3 {
        w.event().unwrap();
    }
    api.set_down(true);
    let cut = w.try_event();
    assert!(
        matches!(&cut, Err(e) if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut),
        "the watch is cut: {cut:?}"
    );
    let mut stream = TcpStream::connect(api.addr()).expect("the listener still accepts");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let _ = stream.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "an answer while down: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }
    api.set_down(false);
    assert_eq!(get(&api, &target).status, 200);
}

#[test]
fn label_timeline() {
    let t0 = Instant::now();
    let api = FakeApi::start(NS);
    api.add_pod("redis-0", &[("role", "master")]);
    api.add_pod("redis-1", &[("role", "replica")]);
    // Failover: the new master labelled first, then the old one demoted.
    patch(
        &api,
        "redis-1",
        MERGE,
        json!({"metadata": {"labels": {"role": "master"}}}),
    );
    patch(
        &api,
        "redis-0",
        MERGE,
        json!({"metadata": {"labels": {"role": null}}}),
    );
    // A no-op patch and a failed one are no writes.
    patch(
        &api,
        "redis-1",
        MERGE,
        json!({"metadata": {"labels": {"role": "master"}}}),
    );
    api.fail_next(1, 500);
    patch(
        &api,
        "redis-0",
        MERGE,
        json!({"metadata": {"labels": {"role": "master"}}}),
    );
    api.set_labels("redis-0", &[("role", Some("replica"))]);
    api.delete_pod("redis-1");
    api.add_pod("redis-1", &[("role", "master")]);

    let timeline = api.timeline("role", "master");
    let holders: Vec<Vec<String>> = timeline.iter().map(|(_, names)| names.clone()).collect();
    let want: Vec<Vec<&str>> = vec![
        vec!["redis-0"],
        vec!["redis-0"],
        vec!["redis-0", "redis-1"],
        vec!["redis-1"],
        vec!["redis-1"],
        vec![],
        vec!["redis-1"],
    ];
    assert_eq!(holders, want);
    assert!(timeline.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(timeline[0].0 >= t0);
    let replicas: Vec<_> = api
        .timeline("role", "replica")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(replicas[1], ["redis-1"]);
    assert_eq!(replicas[4], ["redis-0"]);
}

#[test]
fn malformed_requests_get_400_and_the_server_keeps_serving() {
    let api = three_pods();
    for query in [
        "watch=maybe",
        "watch=true&resourceVersion=abc",
        "watch=true&timeoutSeconds=-1",
    ] {
        let path = format!("{}?{query}", pods_path());
        let mut r = send_head(api.addr(), "GET", &path, &[], "");
        assert_eq!(read_head(&mut r).0, 400, "{query}");
    }
    // Not HTTP at all: hyper answers or closes; the server lives on.
    let mut s = TcpStream::connect(api.addr()).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    assert_eq!(get(&api, &format!("{}/redis-0", pods_path())).status, 200);
}

#[test]
fn start_on_a_given_listener_and_stop_on_drop() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let api = FakeApi::start_on(listener, NS);
    assert_eq!(api.addr(), addr);
    assert_eq!(api.url(), format!("http://{addr}"));
    api.add_pod("redis-0", &[]);
    // A kept-open watch does not keep the server alive.
    let mut w = Watch::open(&api, "");
    w.event().unwrap();
    let started = Instant::now();
    drop(api);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!matches!(w.try_event(), Ok(Some(_))));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err());
}
