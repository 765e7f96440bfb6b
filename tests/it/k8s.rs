//! The Kubernetes API integration (cargo feature `k8s`) end to end: three
//! daemons configured with `[kubernetes]`, each standing for one pod of a
//! set (pod `p<i>` holds Redis node i: the master, then the replicas),
//! against the in-test fake API server (`harness::kube_api`) during real
//! failovers of real redis-server processes.
//!
//! What is asserted is what a Service selecting `raftinel.io/role=master`
//! would see: at every write to a pod after the promotion is committed,
//! exactly one pod carries the master label, and never two at any time;
//! Events for the switch, posted once; and that the API being down or
//! refusing never delays a failover.

use crate::harness::group::*;
use crate::harness::kube_api::FakeApi;
use crate::harness::*;
use std::time::{Duration, Instant};

const NS: &str = "it";
const KEY: &str = "raftinel.io/role";
const SET_LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/name", "raftinel"),
    ("app.kubernetes.io/instance", "raftinel"),
];

fn pod(i: usize) -> String {
    format!("p{i}")
}

/// Pod i's Redis port: the master's for pod 0, then the replicas'.
fn redis_port(topo: &Topology, i: usize) -> u16 {
    if i == 0 {
        topo.master.port
    } else {
        topo.replicas[i - 1].port
    }
}

/// The replica pod (1 or 2) whose Redis listens on `port`.
fn pod_of_port(g: &Group, port: u16) -> usize {
    (1..3)
        .find(|&i| redis_port(&g.topo, i) == port)
        .unwrap_or_else(|| panic!("{port} is not a replica pod's Redis"))
}

/// B such that free_port handed this test ports B0 to B3 (ten times B to
/// ten times B plus 3).
fn port_block() -> u16 {
    loop {
        let p = free_port();
        if !p.is_multiple_of(10) {
            continue;
        }
        let rest: Vec<u16> = (0..3).map(|_| free_port()).collect();
        if rest == [p + 1, p + 2, p + 3] {
            return p / 10;
        }
    }
}

/// Every daemon's last log lines (for a failure message).
fn logs(g: &Group) -> String {
    g.daemons
        .iter()
        .map(|d| format!("---- daemon {}\n{}", d.port, d.log_tail(40)))
        .collect()
}

/// A set of three pods on a fake API server, a master with two replicas,
/// and three daemons labelling them.
fn labelled_set() -> (FakeApi, Group) {
    labelled_set_with(|_| String::new())
}

/// [`labelled_set`], daemon i's `[kubernetes]` table getting `extra(i)`.
fn labelled_set_with(extra: impl Fn(usize) -> String) -> (FakeApi, Group) {
    let api = FakeApi::start(NS);
    for i in 0..3 {
        api.add_pod(&pod(i), &SET_LABELS);
    }
    let topo = Topology::new(2);
    let ports: Vec<u16> = (0..3).map(|i| redis_port(&topo, i)).collect();
    let url = api.url();
    let g = Group::with_daemons(topo, |i, m| {
        let table = format!(
            "[kubernetes]\napi-url = \"{url}\"\nnamespace = \"{NS}\"\npod = \"{}\"\nredis = \"127.0.0.1:{}\"\n{}",
            pod(i),
            ports[i],
            extra(i)
        );
        Daemon::start_toml(m, &table, Vec::new())
    });
    (api, g)
}

/// A daemon's /metrics, from the admin-addr of its raftinel.toml.
fn metrics(d: &Daemon) -> String {
    use std::io::{Read as _, Write as _};
    let conf = std::fs::read_to_string(&d.conf).expect("read raftinel.toml");
    let addr = conf
        .lines()
        .find_map(|l| l.strip_prefix("admin-addr = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("admin-addr");
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the admin listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).ok();
    out
}

/// The pods' role labels, in pod order.
fn labels(api: &FakeApi) -> Vec<Option<String>> {
    (0..3).map(|i| api.label(&pod(i), KEY)).collect()
}

fn wait_labels(api: &FakeApi, want: &[Option<&str>], what: &str) {
    wait_for(BOUND, what, || {
        let got = labels(api);
        let want: Vec<Option<String>> = want.iter().map(|w| w.map(str::to_string)).collect();
        if got == want {
            Ok(())
        } else {
            Err(format!("labels {got:?}"))
        }
    });
}

/// No instant with two master pods; from the first instant `pod` carries
/// the master label after `since`, exactly one at every write. Returns how
/// long after `since` that was.
fn assert_one_master(api: &FakeApi, since: Instant, pod: &str) -> Duration {
    let mut labelled: Option<Instant> = None;
    for (at, pods) in api.timeline(KEY, "master") {
        assert!(pods.len() <= 1, "two master pods at once: {pods:?}");
        if at >= since && labelled.is_none() && pods.iter().any(|p| p == pod) {
            labelled = Some(at);
        }
        if labelled.is_some() {
            assert_eq!(
                pods.len(),
                1,
                "no master pod at {at:?} after {pod} was labelled"
            );
        }
    }
    labelled
        .map(|at| at - since)
        .unwrap_or_else(|| panic!("{pod} never labelled master"))
}

/// Labels from the committed state, through a SIGKILL of the master and a
/// SENTINEL FAILOVER: the old master's pod is demoted before the new one is
/// labelled, the `-master` selector matches one pod from the switch on, the
/// master label carries its config epoch, and the switch is one Event.
#[test]
fn role_labels_follow_failovers() {
    let (api, mut g) = labelled_set();
    wait_labels(
        &api,
        &[Some("master"), Some("replica"), Some("replica")],
        "the first labels",
    );
    assert_eq!(
        api.annotation(&pod(0), "raftinel.io/config-epoch")
            .as_deref(),
        Some("0")
    );
    // The exact requests: the set's pods listed by its labels, the master
    // label a merge patch of the pod conditional on its resourceVersion.
    let reqs = api.requests();
    assert!(
        reqs.iter().any(|r| r.method == "GET"
            && r.path == format!("/api/v1/namespaces/{NS}/pods")
            && r.query.contains("labelSelector=app.kubernetes.io%2Fname%3Draftinel%2Capp.kubernetes.io%2Finstance%3Draftinel")),
        "{:?}",
        reqs.iter().map(|r| format!("{} {}?{}", r.method, r.path, r.query)).collect::<Vec<_>>()
    );
    let first = reqs
        .iter()
        .find(|r| r.method == "PATCH" && r.body.contains("\"master\""))
        .expect("the master label's patch");
    assert_eq!(first.path, format!("/api/v1/namespaces/{NS}/pods/p0"));
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let body: serde_json::Value = serde_json::from_str(&first.body).expect("JSON body");
    let rv = body["metadata"]["resourceVersion"].clone();
    assert!(rv.is_string(), "{body}");
    assert_eq!(
        body,
        serde_json::json!({"metadata": {
            "resourceVersion": rv,
            "labels": {"raftinel.io/role": "master"},
            "annotations": {"raftinel.io/config-epoch": "0"},
        }})
    );
    let mut events = g.subscribe(&[0, 1, 2]);
    let killed = Instant::now();
    g.topo.master.sigkill();
    let new_port = g.expect_failover(&[0, 1, 2], &mut events);
    let new_pod = pod_of_port(&g, new_port);
    // Pod 0's Redis is dead: its daemon labels it a replica of the new
    // master once the group lists it so; until then it is unhealthy.
    wait_for(BOUND, "the new master's pod labelled", || {
        let got = labels(&api);
        if got[new_pod].as_deref() == Some("master")
            && matches!(got[0].as_deref(), Some("unhealthy" | "replica"))
        {
            Ok(())
        } else {
            Err(format!("labels {got:?}"))
        }
    });
    assert_eq!(
        api.annotation(&pod(new_pod), "raftinel.io/config-epoch")
            .as_deref(),
        Some("1")
    );
    let lag = assert_one_master(&api, killed, &pod(new_pod));
    eprintln!("the new master's pod labelled {lag:?} after the SIGKILL");
    wait_for(Duration::from_secs(10), "the switch Event", || {
        let n = api
            .events()
            .iter()
            .filter(|e| e["reason"] == "SwitchMaster")
            .count();
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} SwitchMaster events"))
        }
    });
    let ev = api
        .events()
        .into_iter()
        .find(|e| e["reason"] == "SwitchMaster")
        .expect("one");
    assert_eq!(ev["involvedObject"]["kind"], "Pod");
    assert!(
        ev["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("+switch-master mymaster 127.0.0.1")),
        "{ev}"
    );
    // The drift metric, 0 once the labels are right.
    wait_for(BOUND, "no drift on the new master's daemon", || {
        let m = metrics(&g.daemons[new_pod]);
        if m.lines().any(|l| l == "raftinel_k8s_label_drift 0") {
            Ok(())
        } else {
            Err(m
                .lines()
                .filter(|l| l.contains("k8s"))
                .collect::<Vec<_>>()
                .join("\n"))
        }
    });
    // Every patch was a merge patch; those of role labels conditional on a
    // resourceVersion (the daemon's own annotation naming its Redis is not).
    for r in api.requests().iter().filter(|r| r.method == "PATCH") {
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert!(
            r.body.contains("\"resourceVersion\"") || !r.body.contains(KEY),
            "{}",
            r.body
        );
    }

    // A manual failover back: the same rules.
    let mut events = g.subscribe(&[0, 1, 2]);
    let before = Instant::now();
    // Right after a failover the replicas' links may still be coming back
    // (selection, like Sentinel's, skips a replica with a link down): a
    // NOGOODSLAVE is retried, what the daemon saw kept for a failure.
    let reply = wait_for(BOUND, "SENTINEL FAILOVER accepted", || {
        let r = g.daemons[0].conn().cmd(&["SENTINEL", "FAILOVER", MASTER]);
        match &r {
            Resp::Error(e) if e.starts_with("NOGOODSLAVE") || e.starts_with("INPROG") => {
                let seen = g.daemons[0].conn().cmd(&["SENTINEL", "REPLICAS", MASTER]);
                Err(format!("{e}; SENTINEL REPLICAS: {seen:?}"))
            }
            _ => Ok(r),
        }
    });
    assert_eq!(reply, Resp::Status("OK".into()));
    let m = events[0].wait("+switch-master", &|_| true, BOUND);
    let (_, newer) = parse_switch(&m.payload);
    let newer_pod = pod_of_port(&g, newer);
    wait_for(BOUND, "the labels after SENTINEL FAILOVER", || {
        let got = labels(&api);
        if got[newer_pod].as_deref() == Some("master") && got[new_pod].as_deref() == Some("replica")
        {
            Ok(())
        } else {
            Err(format!("labels {got:?}"))
        }
    });
    let lag = assert_one_master(&api, before, &pod(newer_pod));
    eprintln!("after SENTINEL FAILOVER: labelled {lag:?} after it was sent");
}

/// The API refusing patches, then down: failovers go on unchanged, the
/// daemons log each failure once (not on every retry) and its recovery,
/// and the labels catch up once the API is back.
#[test]
fn a_failing_api_never_delays_a_failover() {
    let (api, mut g) = labelled_set();
    wait_labels(
        &api,
        &[Some("master"), Some("replica"), Some("replica")],
        "the first labels",
    );
    api.forbid("patch", "pods");
    let mut events = g.subscribe(&[0, 1, 2]);
    g.topo.master.sigkill();
    let new_port = g.expect_failover(&[0, 1, 2], &mut events);
    let new_pod = pod_of_port(&g, new_port);
    wait_for(BOUND, "the refusal reported", || {
        if g.daemons.iter().any(|d| {
            d.log()
                .contains("Kubernetes API: patch pod failed: 403 Forbidden: pods")
        }) {
            Ok(())
        } else {
            Err("no refusal line yet".into())
        }
    });
    // Retries while refused.
    std::thread::sleep(Duration::from_secs(2));
    api.allow("patch", "pods");
    wait_for(BOUND, "the labels once patches are allowed", || {
        let got = labels(&api);
        if got[new_pod].as_deref() == Some("master") {
            Ok(())
        } else {
            Err(format!("labels {got:?}"))
        }
    });
    // The API down: a SENTINEL FAILOVER is not delayed by it.
    api.set_down(true);
    let mut events = g.subscribe(&[0, 1, 2]);
    let mut c = g.daemons[0].conn();
    assert_eq!(
        c.cmd(&["SENTINEL", "FAILOVER", MASTER]),
        Resp::Status("OK".into())
    );
    for e in &mut events {
        e.wait("+switch-master", &|_| true, BOUND);
    }
    std::thread::sleep(Duration::from_secs(2));
    api.set_down(false);
    let other = 3 - new_pod;
    wait_for(BOUND, "the labels after the API is back", || {
        let got = labels(&api);
        if got[other].as_deref() == Some("master") {
            Ok(())
        } else {
            Err(format!("labels {got:?}"))
        }
    });
    for d in &g.daemons {
        // A daemon that saw the API down says so once, and that it works
        // again once its backoff (at most 5 s) ran out.
        wait_for(BOUND, "recovery logged", || {
            let log = d.log();
            if !log.contains("Kubernetes API: list pods failed")
                || log.contains("Kubernetes API: list pods works again")
            {
                Ok(())
            } else {
                Err(format!("daemon {}: no recovery line", d.port))
            }
        });
        let log = d.log();
        for what in ["list pods failed", "patch pod failed"] {
            let n = log.matches(&format!("Kubernetes API: {what}")).count();
            assert!(n <= 2, "daemon {}: {n} lines '{what}'\n{log}", d.port);
        }
    }
}

/// `raftinel.io/fenced: "true"` on the master's pod: the leader commits
/// its node in `fenced-nodes`, the group switches over to a replica (a
/// coordinated switchover: nothing acknowledged is lost), the labels follow;
/// the fenced pod is never promoted while fenced; removing the annotation
/// lifts it.
#[test]
fn a_fenced_pod_is_switched_away_from_and_never_promoted() {
    let (api, g) = labelled_set();
    wait_labels(
        &api,
        &[Some("master"), Some("replica"), Some("replica")],
        "the first labels",
    );
    let mut events = g.subscribe(&[0, 1, 2]);
    api.set_annotations(&pod(0), &[("raftinel.io/fenced", Some("true"))]);
    // A switchover that does not complete (aborted on a loaded machine) is
    // asked again after failover-timeout: two bounds.
    let m = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        events[0].wait("+switch-master", &|_| true, BOUND * 2)
    }))
    .unwrap_or_else(|_| panic!("no switch away from the fenced master\n{}", logs(&g)));
    let (old, new) = parse_switch(&m.payload);
    assert_eq!(old, g.old_port, "{}", m.payload);
    let new_pod = pod_of_port(&g, new);
    wait_for(BOUND, "the labels after the fenced switchover", || {
        let got = labels(&api);
        if got[new_pod].as_deref() == Some("master") && got[0].as_deref() != Some("master") {
            Ok(())
        } else {
            Err(format!("labels {got:?}"))
        }
    });
    let fenced = format!("127.0.0.1:{}", g.old_port);
    for d in &g.daemons {
        wait_for(BOUND, "fenced-nodes committed everywhere", || {
            let st = raft_status(d);
            if st["masters"][0]["fenced"] == serde_json::json!([fenced]) {
                Ok(())
            } else {
                Err(format!("{}", st["masters"][0]["fenced"]))
            }
        });
    }
    assert!(
        g.daemons
            .iter()
            .any(|d| d.log().contains("+fenced-master master mymaster 127.0.0.1")),
        "the +fenced-master event"
    );
    // The old master's pod is now a replica's: fenced, never chosen. A
    // manual failover goes to the third pod.
    let third = 3 - new_pod;
    let mut events = g.subscribe(&[0]);
    let mut c = g.daemons[0].conn();
    wait_for(BOUND, "SENTINEL FAILOVER accepted", || {
        match c.cmd(&["SENTINEL", "FAILOVER", MASTER]) {
            Resp::Status(s) if s == "OK" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let m = events[0].wait("+switch-master", &|_| true, BOUND);
    let (_, to) = parse_switch(&m.payload);
    assert_eq!(to, redis_port(&g.topo, third), "{}", m.payload);
    // Lifted: the set empties.
    api.set_annotations(&pod(0), &[("raftinel.io/fenced", None)]);
    for d in &g.daemons {
        wait_for(BOUND, "fenced-nodes cleared everywhere", || {
            let st = raft_status(d);
            if st["masters"][0]["fenced"] == serde_json::json!([]) {
                Ok(())
            } else {
                Err(format!("{}", st["masters"][0]["fenced"]))
            }
        });
    }
}

/// `SENTINEL RAFT STATUS` of a daemon, as JSON.
fn raft_status(d: &Daemon) -> serde_json::Value {
    match d.conn().cmd(&["SENTINEL", "RAFT", "STATUS"]) {
        Resp::Bulk(b) => serde_json::from_slice(&b).expect("status JSON"),
        other => panic!("SENTINEL RAFT STATUS: {other:?}"),
    }
}

/// Drain awareness: the master's node cordoned, then a replica's tainted
/// for a drain: the master's daemon switches over away from its pod (a
/// coordinated switchover), the labels follow; a drained replica's node
/// changes nothing.
#[test]
fn a_drained_node_loses_the_master_first() {
    let (api, g) = labelled_set_with(|i| format!("drain-switchover = true\nnode = \"n{i}\"\n"));
    for i in 0..3 {
        api.set_node(&format!("n{i}"), false, &[]);
    }
    wait_labels(
        &api,
        &[Some("master"), Some("replica"), Some("replica")],
        "the first labels",
    );
    let mut events = g.subscribe(&[0, 1, 2]);
    // A replica's node drained: nothing happens.
    api.set_node("n1", false, &["node.kubernetes.io/unschedulable"]);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(events[0].count("+switch-master"), 0);
    // The master's node cordoned: the master moves off it, to pod 2 (pod
    // 1's node is draining too, but nothing excludes it: Sentinel's rules
    // choose).
    api.set_node("n0", true, &[]);
    let m = events[0].wait("+switch-master", &|_| true, BOUND);
    let (old, new) = parse_switch(&m.payload);
    assert_eq!(old, g.old_port, "{}", m.payload);
    let new_pod = pod_of_port(&g, new);
    wait_for(BOUND, "the labels after the drain's switchover", || {
        let got = labels(&api);
        if got[new_pod].as_deref() == Some("master") && got[0].as_deref() == Some("replica") {
            Ok(())
        } else {
            Err(format!("labels {got:?}"))
        }
    });
    assert!(
        g.daemons[0]
            .log()
            .contains("Node n0 is cordoned and pod p0 holds the master of mymaster"),
        "{}",
        g.daemons[0].log_tail(20)
    );
}

/// `statefulset` and `peer-template`: the Raft peer list follows the
/// StatefulSet's `spec.replicas`. Scaled out to 4, the new pod's daemon
/// (whose ConfigMap lists the first three only) joins as a voter; scaled in
/// to 3 and the pod gone, its voter is removed; nothing rolls.
#[test]
fn the_peer_list_follows_the_statefulset() {
    // Sentinel ports B0 + ordinal, a block free_port handed to this test
    // (so no other test takes them): the template is "127.0.0.1:B{ordinal}".
    let base = port_block();
    let template = format!("127.0.0.1:{base}{{ordinal}}");
    let port = |i: usize| base * 10 + i as u16;
    let first: Vec<String> = (0..3)
        .map(|i| format!("\"127.0.0.1:{}\"", port(i)))
        .collect();
    let api = FakeApi::start(NS);
    for i in 0..4 {
        api.add_pod(&pod(i), &SET_LABELS);
    }
    api.add_statefulset("raftinel", 3);
    let topo = Topology::new(2);
    let mut redis: Vec<u16> = (0..3).map(|i| redis_port(&topo, i)).collect();
    // Pod 3 has no Redis of the set: port 1 names none.
    redis.push(1);
    let url = api.url();
    let table = |i: usize| {
        format!(
            "[raft]\npeers = [{}]\n\n\
             [kubernetes]\napi-url = \"{url}\"\nnamespace = \"{NS}\"\npod = \"{}\"\n\
             redis = \"127.0.0.1:{}\"\nstatefulset = \"raftinel\"\npeer-template = \"{template}\"\n",
            first.join(", "),
            pod(i),
            redis[i]
        )
    };
    let g = Group::with_daemons(topo, |i, m| {
        Daemon::start_toml_on(port(i), m, &table(i), Vec::new())
    });
    let voters = |d: &Daemon| {
        d.raft_info()
            .ok()
            .and_then(|i| i.get("raft_voters").cloned())
            .unwrap_or_default()
    };
    api.add_statefulset("raftinel", 4);
    let m = monitor(g.old_port);
    let mut d3 = Daemon::start_toml_on(port(3), &m, &table(3), Vec::new());
    wait_for(BOUND, "four voters after the scale out", || {
        let all: Vec<String> = g.daemons.iter().chain([&d3]).map(voters).collect();
        if all.iter().all(|v| v == "4") {
            Ok(())
        } else {
            Err(format!("voters {all:?}"))
        }
    });
    api.add_statefulset("raftinel", 3);
    d3.sigterm();
    wait_for(BOUND, "three voters after the scale in", || {
        let all: Vec<String> = g.daemons.iter().map(voters).collect();
        if all.iter().all(|v| v == "3") {
            Ok(())
        } else {
            Err(format!("voters {all:?}"))
        }
    });
    assert!(
        g.daemons.iter().any(|d| d
            .log()
            .contains("raft: the peer list follows StatefulSet raftinel: 4")),
        "the change is logged"
    );
    // The Raft leader posted the membership changes as Events.
    wait_for(BOUND, "RaftMembershipChanged Events", || {
        let msgs: Vec<String> = api
            .events()
            .iter()
            .filter(|e| e["reason"] == "RaftMembershipChanged")
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect();
        let grew = msgs
            .iter()
            .any(|m| m.starts_with("+raft-members 4 voters, +"));
        let shrank = msgs
            .iter()
            .any(|m| m.starts_with("+raft-members 3 voters, -"));
        if grew && shrank {
            Ok(())
        } else {
            Err(format!("{msgs:?}"))
        }
    });
}
