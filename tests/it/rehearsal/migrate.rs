//! The two migrations `deploy/README.md` documents, rehearsed on the
//! rendered dev set with the same pods, kubelet and writer as the main
//! rehearsal, and servers outside the set in namespaces of their own:
//!
//! - a standalone Redis moved into the set: the set joins as its replicas
//!   (the `[[masters]] host` of the rendered raftinel.toml set to it),
//!   `CONFIG SET replica-priority 0` on it, one `SENTINEL FAILOVER`, the old
//!   server stopped, `SENTINEL RESET`;
//! - the bitnami chart's Sentinel set (three nodes, each a redis-server and a
//!   redis-sentinel 7.0.15 configured as the chart configures them, clients
//!   writing through those Sentinels): the set joins as replicas of its
//!   master, `SENTINEL REMOVE` on every bitnami Sentinel, the clients moved
//!   to the set's daemons, `replica-priority 0` on every bitnami node, one
//!   `SENTINEL FAILOVER`, the bitnami release removed, `SENTINEL RESET`.
//!
//! Asserted for both, step by step as the README gives them: the pods are
//! Ready as replicas of the outside master, which every daemon names; no
//! acknowledged write is lost (before the move or during it, whichever
//! client made it); the master ends on a pod of the set; after the reset
//! the daemons know only the set's replicas and daemons; never two Ready
//! masters, no liveness failure.

use std::fs;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use super::pods::*;
use super::*;

/// The release name of the bitnami set the migration starts from.
const REL: &str = "legacy";

/// Servers outside the set, killed on drop.
struct Outside {
    /// Per node: its FQDN and address.
    nodes: Vec<(String, String)>,
    sentinels: bool,
    procs: Vec<Child>,
}

impl Outside {
    fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|(n, _)| n.clone()).collect()
    }

    fn stop(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        self.stop();
    }
}

fn legacy_fqdn(ordinal: usize) -> String {
    format!("{REL}-node-{ordinal}.{REL}-headless.{NAMESPACE}.svc.cluster.local")
}

fn program(name: &str) -> String {
    which(name)
        .unwrap_or_else(|| PathBuf::from(name))
        .display()
        .to_string()
}

impl Rehearsal {
    /// The rendered raftinel.toml with `[[masters]] host` set to `host`
    /// (the migrations' step 1, done in the user's overlay).
    fn set_master_host(&mut self, host: &str) {
        let cm = self
            .configmaps
            .values_mut()
            .find(|f| f.contains_key("raftinel.toml"))
            .expect("the raftinel.toml ConfigMap");
        let text = &cm["raftinel.toml"];
        let masters = text.find("[[masters]]").expect("[[masters]]");
        let start = masters + text[masters..].find("\nhost = ").expect("host") + 1;
        let end = start + text[start..].find('\n').expect("end of host");
        let new = format!("{}host = \"{host}\"{}", &text[..start], &text[end..]);
        cm.insert("raftinel.toml".into(), new);
    }

    /// `n` Redis nodes outside the set, node 0 the master and the others its
    /// replicas, each in a namespace of its own under its FQDN; with
    /// `sentinels`, a redis-sentinel beside each as the bitnami chart runs
    /// it (hostnames resolved and announced, its defaults of 60 s down-after
    /// and 180 s failover timeout). Waits until the replicas are linked and
    /// the Sentinels name node 0.
    fn start_outside(&mut self, n: usize, sentinels: bool) -> Outside {
        let mut out = Outside {
            nodes: Vec::new(),
            sentinels,
            procs: Vec::new(),
        };
        let mut namespaces = Vec::new();
        for o in 0..n {
            let fqdn = legacy_fqdn(o);
            let addr = self.fresh_addr();
            namespaces.push(self.net.pod_ns(&format!("{REL}-node-{o}"), &addr));
            self.net.set_name(&fqdn, Some(&addr));
            out.nodes.push((fqdn, addr));
        }
        fs::create_dir_all(self.log_dir()).unwrap();
        let env = [(
            "PATH".to_string(),
            "/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        )];
        for (o, ns) in namespaces.iter().enumerate() {
            let fqdn = &out.nodes[o].0;
            let dir = self.root.path().join(REL).join(o.to_string());
            fs::create_dir_all(&dir).unwrap();
            let mut conf = format!(
                "port 6379\nprotected-mode no\ndir {}\nappendonly yes\nappendfsync everysec\n\
                 replica-announce-ip {fqdn}\n",
                dir.display()
            );
            if o > 0 {
                conf.push_str(&format!("replicaof {} 6379\n", legacy_fqdn(0)));
            }
            let redis_conf = dir.join("redis.conf");
            fs::write(&redis_conf, conf).unwrap();
            let log = self.log_dir().join(format!("{REL}-node-{o}.redis.log"));
            let argv = [program("redis-server"), redis_conf.display().to_string()];
            out.procs.push(spawn_in(ns, &argv, &env, &log));
            if !sentinels {
                continue;
            }
            let sconf = dir.join("sentinel.conf");
            fs::write(
                &sconf,
                format!(
                    "port 26379\ndir {}\nsentinel resolve-hostnames yes\n\
                     sentinel announce-hostnames yes\nsentinel announce-ip {fqdn}\n\
                     sentinel monitor {MASTER} {} 6379 2\n\
                     sentinel down-after-milliseconds {MASTER} 60000\n\
                     sentinel failover-timeout {MASTER} 180000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir.display(),
                    legacy_fqdn(0)
                ),
            )
            .unwrap();
            let log = self.log_dir().join(format!("{REL}-node-{o}.sentinel.log"));
            let argv = [program("redis-sentinel"), sconf.display().to_string()];
            out.procs.push(spawn_in(ns, &argv, &env, &log));
        }
        self.wait_outside(&out);
        self.tl.note(format!(
            "outside the set: {n} Redis nodes{}",
            if sentinels {
                " with redis-sentinel"
            } else {
                ""
            }
        ));
        out
    }

    fn wait_outside(&self, out: &Outside) {
        let deadline = Instant::now() + secs(30);
        let master = legacy_fqdn(0);
        loop {
            let up = out
                .nodes
                .iter()
                .all(|(_, a)| self.cmd(a, 6379, &["PING"]) == Some(Resp::Status("PONG".into())));
            let linked = out.nodes[1..].iter().all(|(_, a)| {
                self.cmd(a, 6379, &["INFO", "replication"])
                    .and_then(|r| r.as_str())
                    .is_some_and(|i| i.contains("master_link_status:up"))
            });
            let named = !out.sentinels
                || out.nodes.iter().all(|(_, a)| {
                    self.cmd(a, 26379, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])
                        .and_then(|r| r.items().and_then(|i| i.first()?.as_str()))
                        .is_some_and(|m| m == master)
                });
            if up && linked && named {
                return;
            }
            if Instant::now() >= deadline {
                self.fail("the servers outside the set did not come up");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends `args` to `addr:port` and expects `+OK`.
    fn ok(&self, addr: &str, port: u16, args: &[&str]) {
        match self.cmd(addr, port, args) {
            Some(Resp::Status(s)) if s == "OK" => {}
            other => self.fail(&format!("{args:?} to {addr}:{port}: {other:?}")),
        }
    }

    /// The names in a SENTINEL REPLICAS or SENTINEL SENTINELS reply of the
    /// daemon of pod `ordinal`.
    fn listed(&self, ordinal: usize, what: &str) -> Option<BTreeSet<String>> {
        let p = self.pods[ordinal].as_ref()?;
        let r = self.cmd(&p.addr, 26379, &["SENTINEL", what, MASTER])?;
        r.items()?
            .iter()
            .map(|e| {
                let ip = e.field("ip")?;
                Some(format!("{ip}:{}", e.field("port")?))
            })
            .collect()
    }

    /// Waits (up to 60 s) until every daemon lists exactly the set's other
    /// pods as replicas and their daemons as Sentinels.
    fn wait_only_the_set(&self, master: usize) {
        let deadline = Instant::now() + secs(60);
        loop {
            let mut wrong = Vec::new();
            for o in 0..self.replicas {
                let others: BTreeSet<String> = (0..self.replicas)
                    .filter(|&p| p != o)
                    .map(|p| format!("{}:26379", self.fqdn(p)))
                    .collect();
                let replicas: BTreeSet<String> = (0..self.replicas)
                    .filter(|&p| p != master)
                    .map(|p| format!("{}:6379", self.fqdn(p)))
                    .collect();
                let (got_r, got_s) = (self.listed(o, "REPLICAS"), self.listed(o, "SENTINELS"));
                if got_r.as_ref() != Some(&replicas) || got_s.as_ref() != Some(&others) {
                    wrong.push(format!("pod {o}: replicas {got_r:?}, sentinels {got_s:?}"));
                }
            }
            if wrong.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("after SENTINEL RESET: {wrong:?}"));
            }
            std::thread::sleep(secs(1));
        }
    }

    /// The acknowledged keys, written before the move, missing from the
    /// master every daemon names.
    fn check_nothing_lost(&self, acked: &[u64], what: &str) {
        let lost = self.lost(acked);
        self.tl.note(format!(
            "{what}: {} writes acknowledged, {} lost",
            acked.len(),
            lost.len()
        ));
        if !lost.is_empty() {
            self.fail(&format!(
                "{what}: {} acknowledged writes lost: {:?}",
                lost.len(),
                &lost[..lost.len().min(20)]
            ));
        }
    }
}

/// A rehearsal of the dev overlay, or None where it cannot run here.
fn dev_rehearsal() -> Option<Rehearsal> {
    if !available() {
        skip_or_fail("root and ip netns (network namespaces)");
        return None;
    }
    for bin in ["redis-server", "redis-sentinel"] {
        if which(bin).is_none() && skip_or_fail(bin) {
            return None;
        }
    }
    let vs = variants()?;
    let r = Rehearsal::new(&variant(vs, "dev").docs);
    assert_eq!(r.replicas, 3, "the dev overlay runs 3 pods");
    Some(r)
}

/// Steps 1 and 2 of both migrations: the overlay's master host set to the
/// outside master, the set applied; every pod Ready as its replica, every
/// daemon naming it.
fn join_as_replicas(r: &mut Rehearsal, outside: &Outside) {
    let master = outside.nodes[0].0.clone();
    r.set_master_host(&master);
    r.start_kubelet();
    for o in 0..r.replicas {
        r.start_pod(o, false);
    }
    r.wait_all_ready(secs(120), "the set Ready as replicas of the outside master");
    assert_eq!(r.agreed_master(secs(10)), master);
    for o in 0..r.replicas {
        let role = r
            .cmd(&r.pods[o].as_ref().unwrap().addr, 6379, &["ROLE"])
            .and_then(|x| x.items()?.first()?.as_str());
        assert_eq!(role.as_deref(), Some("slave"), "pod {o} is a replica");
    }
}

/// The switchover of both migrations: `replica-priority 0` on every outside
/// node, SENTINEL FAILOVER on a daemon; waits until every daemon names a
/// pod of the set and every pod is Ready. Returns the master's ordinal.
fn switch_into_the_set(r: &mut Rehearsal, outside: &Outside) -> usize {
    for (_, a) in &outside.nodes {
        r.ok(a, 6379, &["CONFIG", "SET", "replica-priority", "0"]);
    }
    let p0 = r.pods[0].as_ref().unwrap().addr.clone();
    r.ok(&p0, 26379, &["SENTINEL", "FAILOVER", MASTER]);
    r.tl.note("SENTINEL FAILOVER sent");
    let deadline = Instant::now() + secs(60);
    let master = loop {
        let m = r.agreed_master(secs(30));
        if m.starts_with(&format!("{}-", r.sts)) {
            break r.ordinal_of(&m);
        }
        if Instant::now() >= deadline {
            r.fail(&format!("the master stayed outside the set: {m}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    r.wait_all_ready(secs(60), "after the switchover into the set");
    master
}

/// Step 6 of both: the outside servers stopped and their names gone,
/// SENTINEL RESET on every daemon; afterwards the daemons know only the set.
fn forget_the_outside(r: &mut Rehearsal, mut outside: Outside, master: usize) {
    outside.stop();
    for (n, _) in &outside.nodes {
        r.net.set_name(n, None);
    }
    // As an operator checks before the reset: the master lists only the
    // set's replicas (a reset rediscovers what the master lists then).
    let addr = r.pods[master].as_ref().unwrap().addr.clone();
    let deadline = Instant::now() + secs(30);
    loop {
        let info = r
            .cmd(&addr, 6379, &["INFO", "replication"])
            .and_then(|x| x.as_str())
            .unwrap_or_default();
        let listed: Vec<&str> = info.lines().filter(|l| l.starts_with("slave")).collect();
        let set = format!("ip={}-", r.sts);
        if listed.len() == r.replicas - 1 && listed.iter().all(|l| l.contains(&set)) {
            break;
        }
        if Instant::now() >= deadline {
            r.fail(&format!("the master still lists {listed:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    r.tl.note("the master lists only the set's replicas");
    for o in 0..r.replicas {
        let a = r.pods[o].as_ref().unwrap().addr.clone();
        match r.cmd(&a, 26379, &["SENTINEL", "RESET", MASTER]) {
            Some(Resp::Int(1)) => {}
            other => r.fail(&format!("SENTINEL RESET on pod {o}: {other:?}")),
        }
    }
    r.wait_only_the_set(master);
    r.wait_all_ready(secs(60), "after the reset");
}

#[test]
fn standalone_redis_migrated_into_the_set() {
    let Some(mut r) = dev_rehearsal() else { return };
    let outside = r.start_outside(1, false);
    // The standalone server's data before the move, written directly.
    let standalone = outside.nodes[0].1.clone();
    let mut c = r
        .conn(&standalone, 6379)
        .expect("connect to the standalone Redis");
    let before: Vec<u64> = (1..=2000).collect();
    for n in &before {
        assert_eq!(
            c.cmd(&["SET", &format!("k:{n}"), &n.to_string()]),
            Resp::Status("OK".into())
        );
    }
    join_as_replicas(&mut r, &outside);
    // Sentinel clients on the set's daemons through the switchover.
    let w = r.writer(1_000_000);
    std::thread::sleep(secs(2));
    let master = switch_into_the_set(&mut r, &outside);
    std::thread::sleep(secs(2));
    let (acked, errors) = w.finish();
    r.tl.note(format!("writer: {errors} refused or failed"));
    assert!(acked.len() > 100, "the writer made little progress");
    r.check_nothing_lost(&before, "written to the standalone server before the move");
    r.check_nothing_lost(&acked, "written through the set's daemons");
    forget_the_outside(&mut r, outside, master);
    r.check_throughout();
    r.tl.note("done");
}

#[test]
fn bitnami_sentinel_set_migrated_into_the_set() {
    let Some(mut r) = dev_rehearsal() else { return };
    let outside = r.start_outside(3, true);
    // The applications, on the bitnami Sentinels.
    let old = Writer::start(r.net.clone(), outside.names(), 0);
    std::thread::sleep(secs(2));
    join_as_replicas(&mut r, &outside);
    // 3. The bitnami Sentinels stop acting.
    for (_, a) in &outside.nodes {
        r.ok(a, 26379, &["SENTINEL", "REMOVE", MASTER]);
    }
    r.tl.note("SENTINEL REMOVE on every bitnami Sentinel");
    // 4. The applications move to the set's daemons (both named the same
    //    master until now).
    let new = r.writer(1_000_000_000);
    std::thread::sleep(secs(2));
    let (acked_old, errors_old) = old.finish();
    assert!(
        acked_old.len() > 100,
        "the first writer made little progress"
    );
    // 5. The switchover.
    let master = switch_into_the_set(&mut r, &outside);
    std::thread::sleep(secs(2));
    let (acked_new, errors_new) = new.finish();
    r.tl.note(format!(
        "writers: {errors_old} and {errors_new} refused or failed"
    ));
    assert!(
        acked_new.len() > 100,
        "the second writer made little progress"
    );
    r.check_nothing_lost(&acked_old, "written through the bitnami Sentinels");
    r.check_nothing_lost(&acked_new, "written through the set's daemons");
    // 6. The release removed, the daemons reset.
    forget_the_outside(&mut r, outside, master);
    r.check_throughout();
    r.tl.note("done");
}
