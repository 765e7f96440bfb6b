//! Hostnames side by side with redis-sentinel 7.0.15: a master configured as
//! `localhost` and a replica announcing itself as `localhost`, with
//! `resolve-hostnames yes`, once with `announce-hostnames no`
//! (every address shown is the IP the name resolved to) and once with `yes`
//! (the name as configured). Each side watches its own master and replica
//! (so each can fail over alone); what both show is compared after the
//! nodes' ports are replaced by their roles: replies (MASTER, REPLICAS,
//! GET-MASTER-ADDR-BY-NAME), INFO's `address=`, the hello the daemon
//! publishes to the master, events (`+sdown` of the replica and a manual
//! failover's), the SLAVEOF the old master gets, and the config rewrite
//! (which keeps the names in raftinel, deliberately: see `same`). Then the
//! same without a failover with names only a network namespace's hosts
//! file knows (needs root).

use crate::harness::resp::{Conn, Message, Resp};
use crate::harness::*;
use std::time::Duration;

/// One side: its master (configured as `localhost`), replica and daemon.
struct Side {
    topo: Topology,
    sentinel: SentinelProc,
}

impl Side {
    fn start(kind: Kind, announce: bool) -> Side {
        // The replica announces itself as `localhost` too: the master's
        // INFO lists it by that name, and the failover promotes a name.
        let master = RedisNode::start();
        let mport = master.port;
        let replica = RedisNode::start_with(&["--replica-announce-ip", "localhost"]);
        let r = replica
            .conn()
            .cmd(&["REPLICAOF", "127.0.0.1", &mport.to_string()]);
        assert_eq!(r, Resp::Status("OK".into()));
        replica.wait_link_up();
        let topo = Topology {
            master,
            replicas: vec![replica],
        };
        let sentinel = SentinelProc::with_conf(kind, |port, dir| {
            let yn = if announce { "yes" } else { "no" };
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir \"{}\"\n\
                 sentinel resolve-hostnames yes\nsentinel announce-hostnames {yn}\n\
                 sentinel monitor {MASTER} localhost {mport} 1\n\
                 sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER} 20000\n",
                dir.display()
            )
        });
        Side { topo, sentinel }
    }

    /// The side's ports replaced by `<M>` (master as started), `<R>` (the
    /// replica) and `<S>` (the daemon), wherever a run of digits is one.
    fn norm(&self, s: &str) -> String {
        let labels = [
            (self.topo.master.port.to_string(), "<M>"),
            (self.topo.replicas[0].port.to_string(), "<R>"),
            (self.sentinel.port.to_string(), "<S>"),
        ];
        let mut out = String::new();
        let mut digits = String::new();
        let flush = |digits: &mut String, out: &mut String| {
            match labels.iter().find(|(p, _)| p == digits) {
                Some((_, l)) => out.push_str(l),
                None => out.push_str(digits),
            }
            digits.clear();
        };
        for ch in s.chars() {
            if ch.is_ascii_digit() {
                digits.push(ch);
            } else {
                flush(&mut digits, &mut out);
                out.push(ch);
            }
        }
        flush(&mut digits, &mut out);
        out
    }

    fn conn(&self) -> Conn {
        self.sentinel.conn()
    }

    /// The replica known with a fresh INFO, the master's too.
    fn settle(&self) {
        eventually("replica discovered", || {
            let reps = self.sentinel.descriptions("REPLICAS", MASTER);
            let ok = reps.len() == 1
                && reps[0].field("flags").as_deref() == Some("slave")
                && reps[0].field("info-refresh").as_deref() != Some("0");
            ok.then_some(()).ok_or_else(|| format!("{reps:?}"))
        });
    }

    /// `name`/`ip`/`port` of each description, sorted.
    fn addrs(&self, sub: &str) -> String {
        let mut v: Vec<String> = self
            .sentinel
            .descriptions(sub, MASTER)
            .iter()
            .map(|d| {
                let f = |k: &str| d.field(k).unwrap_or_default();
                self.norm(&format!(
                    "name={} ip={} port={}",
                    f("name"),
                    f("ip"),
                    f("port")
                ))
            })
            .collect();
        v.sort();
        v.join(" | ")
    }

    /// What the side shows about addresses now, one labelled line each.
    fn snapshot(&self, when: &str, out: &mut Vec<(String, String)>) {
        let mut c = self.conn();
        let addr = c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
        let master = c.cmd(&["SENTINEL", "MASTER", MASTER]);
        let masters = c.cmd(&["SENTINEL", "MASTERS"]);
        let info = c.cmd(&["INFO", "sentinel"]).as_str().unwrap_or_default();
        let mut push = |what: &str, v: String| out.push((format!("{when}: {what}"), self.norm(&v)));
        let items: Vec<String> = addr
            .items()
            .unwrap_or_default()
            .iter()
            .map(|i| i.as_str().unwrap_or_default())
            .collect();
        push("GET-MASTER-ADDR-BY-NAME", items.join(" "));
        push(
            "MASTER name/ip/port",
            format!(
                "{} {} {}",
                master.field("name").unwrap_or_default(),
                master.field("ip").unwrap_or_default(),
                master.field("port").unwrap_or_default()
            ),
        );
        let first = masters.items().and_then(|v| v.first().cloned());
        push(
            "MASTERS ip",
            first.and_then(|m| m.field("ip")).unwrap_or_default(),
        );
        let line = info
            .lines()
            .find(|l| l.starts_with("master0:"))
            .unwrap_or_default();
        // Up to `sentinels=`: raftinel may add `,quorum=no` (not here).
        push(
            "INFO master0",
            line.split(",sentinels").next().unwrap_or("").into(),
        );
        push("REPLICAS", self.addrs("REPLICAS"));
        // The rewrite: FLUSHCONFIG, then the address lines of the file.
        let flushed = c.cmd(&["SENTINEL", "FLUSHCONFIG"]);
        push("FLUSHCONFIG", format!("{flushed:?}"));
        let mut lines: Vec<String> = self
            .sentinel
            .conf_text()
            .lines()
            .filter(|l| {
                l.starts_with("sentinel monitor") || l.starts_with("sentinel known-replica")
            })
            .map(str::to_string)
            .collect();
        lines.sort();
        push("rewritten", lines.join(" | "));
    }

    /// The master address of the next hello this side's daemon publishes to
    /// the Redis node on `port` (fields 5 to 7 of the payload).
    fn hello_master(&self, port: u16) -> String {
        let mut c = Conn::open(port);
        c.send(&["SUBSCRIBE", "__sentinel__:hello"]).unwrap();
        let _confirm = c.read();
        let me = self.sentinel.port.to_string();
        let m = c
            .wait_message("__sentinel__:hello", EVENTUALLY, |p| {
                p.split(',').nth(1) == Some(me.as_str())
            })
            .unwrap_or_else(|e| panic!("no hello from {}: {e}", self.sentinel.port));
        let f: Vec<&str> = m.payload.split(',').collect();
        self.norm(&f[4..7].join(" "))
    }
}

/// Channel and payload of the address-carrying events, ports normalized.
fn events(side: &Side, msgs: &[Message], keep: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = msgs
        .iter()
        .filter(|m| keep.contains(&m.channel.as_str()))
        .map(|m| side.norm(&format!("{} {}", m.channel, m.payload)))
        .collect();
    v.sort();
    v.dedup();
    v
}

const FAILOVER_EVENTS: &[&str] = &[
    "+selected-slave",
    "+promoted-slave",
    "+failover-end",
    "+switch-master",
    "+slave",
    "+convert-to-slave",
];

/// Everything one side shows, labelled; `announce` is announce-hostnames.
fn observe(kind: Kind, announce: bool) -> Vec<(String, String)> {
    let side = Side::start(kind, announce);
    side.settle();
    let mut out = Vec::new();
    side.snapshot("before", &mut out);
    out.push((
        "hello master address".into(),
        side.hello_master(side.topo.master.port),
    ));

    // The replica hangs: +sdown / -sdown name it and its master.
    let mut sub = side.sentinel.psubscribe_all(false);
    let replica = &side.topo.replicas[0];
    replica.sigstop();
    let down = sub.wait_message("+sdown", EVENTUALLY, |p| p.starts_with("slave "));
    replica.sigcont();
    let up = sub.wait_message("-sdown", EVENTUALLY, |p| p.starts_with("slave "));
    for (what, m) in [("+sdown", down), ("-sdown", up)] {
        let v = m.map(|m| side.norm(&m.payload)).unwrap_or_else(|e| e);
        out.push((format!("event {what}"), v));
    }
    side.settle();

    // A manual failover: the replica is promoted, the old master (known
    // by its name) is told to follow it.
    let mut all = side.sentinel.psubscribe_all(false);
    let mut c = side.conn();
    if kind == Kind::Raftinel {
        // Sentinel's own kind of failover, whose events compare one to one.
        c.cmd(&["SENTINEL", "SET", MASTER, "coordinated-failover", "no"]);
    }
    // A daemon alone forms its Raft group 8 s after its links are up.
    eventually("SENTINEL FAILOVER accepted", || {
        match c.cmd(&["SENTINEL", "FAILOVER", MASTER]) {
            Resp::Status(s) if s == "OK" => Ok(()),
            Resp::Error(e) if e.starts_with("NOQUORUM") => {
                std::thread::sleep(Duration::from_millis(200));
                Err(e)
            }
            other => panic!("SENTINEL FAILOVER: {other:?}"),
        }
    });
    if let Err(e) = sub.wait_message("+switch-master", EVENTUALLY, |_| true) {
        out.push(("+switch-master".into(), e));
    }
    let old = &side.topo.master;
    old.wait_follows(replica.port, EVENTUALLY);
    let info = old.info("replication");
    out.push((
        "old master's master_host (SLAVEOF)".into(),
        side.norm(&info_field(&info, "master_host").unwrap_or_default()),
    ));
    // Until the new master's INFO listed the old one (its next INFO, within
    // 10 s), then a little more for the events it makes.
    let new_port = replica.port.to_string();
    wait_until(EVENTUALLY, || {
        side.sentinel
            .descriptions("REPLICAS", MASTER)
            .iter()
            .all(|d| d.field("flags").as_deref() == Some("slave"))
            && side.sentinel.master_field(MASTER, "port").as_deref() == Some(new_port.as_str())
    });
    std::thread::sleep(Duration::from_secs(11));
    let seen = all.drain_messages(Duration::from_millis(500), Duration::from_secs(10));
    out.push((
        "failover events".into(),
        events(&side, &seen, FAILOVER_EVENTS).join("\n    "),
    ));
    side.snapshot("after", &mut out);
    out.push((
        "hello master address after".into(),
        side.hello_master(replica.port),
    ));
    out
}

fn compare(test: &str, announce: bool) {
    let (oracle, raftinel) = std::thread::scope(|s| {
        let o = s.spawn(|| observe(Kind::Oracle, announce));
        let r = s.spawn(|| observe(Kind::Raftinel, announce));
        (o.join().unwrap(), r.join().unwrap())
    });
    let names = match announce {
        true => vec![],
        false => vec![("localhost".into(), "127.0.0.1".into())],
    };
    same(test, &oracle, &raftinel, &names);
}

/// Fails with every labelled observation on which the two sides differ.
/// The one deliberate difference: raftinel's rewrite keeps the names where
/// redis-sentinel writes the IPs they resolved to when names are not
/// announced (`Sentinel::persisted` says why). `names` (name, IP) turns
/// raftinel's rewritten lines into redis-sentinel's, after checking that
/// they do carry the names.
fn same(
    test: &str,
    oracle: &[(String, String)],
    raftinel: &[(String, String)],
    names: &[(String, String)],
) {
    let labels = |v: &[(String, String)]| v.iter().map(|(w, _)| w.clone()).collect::<Vec<_>>();
    assert_eq!(labels(oracle), labels(raftinel));
    let raftinel: Vec<(String, String)> = raftinel
        .iter()
        .map(|(what, v)| {
            if !what.ends_with("rewritten") || names.is_empty() {
                return (what.clone(), v.clone());
            }
            assert!(
                names.iter().any(|(n, _)| v.contains(n.as_str())),
                "{test}: {what}: no name in {v}"
            );
            let ips = names
                .iter()
                .fold(v.clone(), |v, (n, ip)| v.replace(n.as_str(), ip));
            (what.clone(), ips)
        })
        .collect();
    let diffs: Vec<String> = oracle
        .iter()
        .zip(raftinel.iter())
        .filter(|(a, b)| a != b)
        .map(|((what, a), (_, b))| {
            format!("{what}\n  redis-sentinel 7.0.15: {a}\n  raftinel:              {b}")
        })
        .collect();
    assert!(
        diffs.is_empty(),
        "{test}: {} difference(s):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// resolve-hostnames yes, announce-hostnames no: the IP everywhere.
#[test]
fn diff_localhost_resolved_not_announced() {
    compare("diff_localhost_resolved_not_announced", false);
}

/// resolve-hostnames yes, announce-hostnames yes: the name everywhere.
#[test]
fn diff_localhost_resolved_and_announced() {
    compare("diff_localhost_resolved_and_announced", true);
}

// ---------------------------------------------------------------- names from a hosts file

/// Names only a network namespace's hosts file knows (`db-0`, `db-1`): the
/// master and a replica announcing itself as `db-1`, watched by
/// redis-sentinel (pod `sen-o`) and raftinel (pod `sen-r`) side by side.
/// The two see each other (as in `differential`), and raftinel with a real
/// sentinel as its only peer forms no group: no failover here, the
/// addresses of replies, INFO, hellos, the replica's `+sdown` and the
/// rewrite are compared. Needs root (a skip line otherwise, a failure
/// under CI).
fn observe_netns(announce: bool) -> Option<[Vec<(String, String)>; 2]> {
    use crate::harness::netns::{redis_argv, Net};
    const REDIS: u16 = 6379;
    const SENTINEL: u16 = 26379;
    let mut net = Net::new(&["db-0", "db-1", "sen-o", "sen-r"])?;
    let master_ip = net.pods[0].ip.clone();
    for i in 0..2 {
        // The replica is told the master's IP and announces itself by name.
        let extra: &[&str] = match i {
            0 => &[],
            _ => &[
                "--replicaof",
                &master_ip,
                "6379",
                "--replica-announce-ip",
                "db-1",
            ],
        };
        let argv = redis_argv(&net.pods[i].ip, extra);
        net.pods[i].spawn("redis", argv, Vec::new());
        net.pods[i].wait_pong(REDIS, "redis");
    }
    let yn = if announce { "yes" } else { "no" };
    for (i, bin) in [
        (2, which("redis-sentinel").expect("redis-sentinel on PATH")),
        (3, raftinel_bin()),
    ] {
        let p = &net.pods[i];
        let conf = p.path("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {SENTINEL}\nbind {}\ndaemonize no\ndir \"{}\"\n\
                 sentinel resolve-hostnames yes\nsentinel announce-hostnames {yn}\n\
                 sentinel monitor {MASTER} db-0 {REDIS} 1\n\
                 sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n",
                p.ip,
                p.dir.path().display()
            ),
        )
        .unwrap();
        let argv = vec![bin.into_os_string(), conf.into()];
        net.pods[i].spawn("sentinel", argv, Vec::new());
        net.pods[i].wait_pong(SENTINEL, "sentinel");
    }
    let pods = [2, 3];
    let conn = |net: &Net, i: usize| net.client_conn(&net.pods[i].ip, SENTINEL).unwrap();
    for i in pods {
        eventually("replica db-1 known", || {
            let mut c = conn(&net, i);
            let reps = c.cmd(&["SENTINEL", "REPLICAS", MASTER]);
            let v = reps.items().unwrap_or_default();
            let ok = v.len() == 1 && v[0].field("info-refresh").as_deref() != Some("0");
            ok.then_some(()).ok_or_else(|| reps.pretty())
        });
    }
    let mut out: [Vec<(String, String)>; 2] = [Vec::new(), Vec::new()];
    // The hellos each daemon publishes to the master: its master address.
    let mut hellos = net.client_conn(&master_ip, REDIS).unwrap();
    hellos.send(&["SUBSCRIBE", "__sentinel__:hello"]).unwrap();
    let _confirm = hellos.read();
    for (k, i) in pods.iter().enumerate() {
        let me = net.pods[*i].ip.clone();
        let m = hellos.wait_message("__sentinel__:hello", EVENTUALLY, |p| {
            p.starts_with(&format!("{me},"))
        });
        let v = m.map(|m| {
            m.payload
                .split(',')
                .skip(4)
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        });
        out[k].push(("hello master address".into(), v.unwrap_or_else(|e| e)));
    }
    for (k, i) in pods.iter().enumerate() {
        let mut c = conn(&net, *i);
        let addr = c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
        let addr: Vec<String> = addr
            .items()
            .unwrap_or_default()
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        out[k].push(("GET-MASTER-ADDR-BY-NAME".into(), addr.join(" ")));
        let master = c.cmd(&["SENTINEL", "MASTER", MASTER]);
        out[k].push(("MASTER ip".into(), master.field("ip").unwrap_or_default()));
        let reps = c.cmd(&["SENTINEL", "REPLICAS", MASTER]);
        let r = reps
            .items()
            .and_then(|v| v.first().cloned())
            .unwrap_or(Resp::Null);
        let name_ip = format!(
            "{} {}",
            r.field("name").unwrap_or_default(),
            r.field("ip").unwrap_or_default()
        );
        out[k].push(("REPLICAS name/ip".into(), name_ip));
        let info = c.cmd(&["INFO", "sentinel"]).as_str().unwrap_or_default();
        let address = info
            .split("address=")
            .nth(1)
            .and_then(|s| s.split(',').next());
        out[k].push((
            "INFO address".into(),
            address.unwrap_or_default().to_string(),
        ));
        c.cmd(&["SENTINEL", "FLUSHCONFIG"]);
        let text = std::fs::read_to_string(net.pods[*i].path("sentinel.conf")).unwrap_or_default();
        let mut lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("sentinel monitor") || l.starts_with("sentinel known-replica")
            })
            .collect();
        lines.sort();
        out[k].push(("rewritten".into(), lines.join(" | ")));
    }
    // The replica hangs: its `+sdown` names it and its master.
    let mut subs: Vec<Conn> = pods
        .iter()
        .map(|i| {
            let mut c = conn(&net, *i);
            c.send(&["SUBSCRIBE", "+sdown"]).unwrap();
            let _confirm = c.read();
            c
        })
        .collect();
    net.pods[1].signal("redis", libc::SIGSTOP);
    for (k, c) in subs.iter_mut().enumerate() {
        let m = c.wait_message("+sdown", EVENTUALLY, |p| p.starts_with("slave "));
        out[k].push(("+sdown".into(), m.map(|m| m.payload).unwrap_or_else(|e| e)));
    }
    net.pods[1].signal("redis", libc::SIGCONT);
    Some(out)
}

fn compare_netns(test: &str, announce: bool) {
    let Some([oracle, raftinel]) = observe_netns(announce) else {
        return;
    };
    use crate::harness::netns::pod_ip;
    let names = match announce {
        true => vec![],
        false => vec![("db-0".into(), pod_ip(0)), ("db-1".into(), pod_ip(1))],
    };
    same(test, &oracle, &raftinel, &names);
}

/// Names from a hosts file, not announced: the pods' IPs everywhere.
#[test]
fn diff_hosts_file_names_not_announced() {
    compare_netns("diff_hosts_file_names_not_announced", false);
}

/// Names from a hosts file, announced: `db-0` and `db-1` everywhere.
#[test]
fn diff_hosts_file_names_announced() {
    compare_netns("diff_hosts_file_names_announced", true);
}
