//! Jedis and Lettuce, replayed over raw RESP (their registry is unreachable
//! here, so they cannot run): the exact command sequences those clients send
//! on connect and on failover are sent to every daemon of a three-daemon
//! group, every reply field those clients parse is checked the way they
//! parse it, then a real failover runs (SIGKILL of the master, or `SENTINEL
//! FAILOVER`) and every subscribed connection must receive `+switch-master`
//! in the exact frame and payload format they parse, after which their
//! re-resolution returns the new master.
//!
//! Replayed:
//! - Jedis 4–7 (`JedisSentinelPool`, RESP2): `CLIENT SETNAME` + `SETINFO`
//!   pipelined (one reply each), `SENTINEL GET-MASTER-ADDR-BY-NAME`, and per
//!   sentinel a listener connection: GET-MASTER-ADDR-BY-NAME again, then
//!   `SUBSCRIBE +switch-master`; the message payload is split on single
//!   spaces, fields 0, 3 and 4 used (port through `Integer.parseInt`).
//! - Jedis 8 (`RedisSentinelClient`): the same after `HELLO 3` (`proto` an
//!   integer), with RESP3 push frames; and its fallback to `HELLO 2` when
//!   HELLO fails with `NOPROTO`.
//! - Lettuce (plain sentinel URI): `HELLO 3 SETNAME` (`id` an integer,
//!   `mode`/`version` strings, `role` a string if present), `CLIENT SETINFO
//!   lib-name/lib-ver`, `SENTINEL get-master-addr-by-name` (lowercase); and
//!   its fallback when HELLO fails with `NOPROTO` (`PING`, RESP2 replies).
//! - Lettuce `MasterReplica`: `SENTINEL master` + `SENTINEL REPLICAS`
//!   (maps in RESP3, flat lists in RESP2; a replica flagged `s_down`,
//!   `o_down` or `disconnected` is dropped), then `PSUBSCRIBE *` on every
//!   sentinel; `+switch-master` must start with `<name> ` to trigger its
//!   topology refresh.
//!
//! The same replay, SIGKILL included, also runs against three real
//! redis-sentinel 7.0.15, which checks the replay itself.

use crate::harness::group::*;
use crate::harness::resp::encode;
use crate::harness::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- parsing as the clients do

/// A HELLO 3 reply as Jedis 8 and Lettuce read it: a map whose `proto` is
/// the integer 3 and `id` an integer (Lettuce casts to Long), `server`,
/// `version` and `mode` strings (Lettuce casts to String), `role` a string
/// if present (real Sentinel sends none).
fn check_hello3(r: &Resp, who: &str) {
    let Resp::Map(pairs) = r else {
        panic!("{who}: HELLO 3 must be a RESP3 map: {}", r.pretty());
    };
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key.as_str().as_deref() == Some(k))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("proto"), Some(Resp::Int(3)), "{who}: HELLO proto");
    assert!(
        matches!(get("id"), Some(Resp::Int(_))),
        "{who}: HELLO id must be an integer: {}",
        r.pretty()
    );
    for k in ["server", "version", "mode"] {
        assert!(
            matches!(get(k), Some(Resp::Bulk(_))),
            "{who}: HELLO {k} must be a string: {}",
            r.pretty()
        );
    }
    assert_eq!(
        get("mode"),
        Some(Resp::bulk("sentinel")),
        "{who}: HELLO mode"
    );
    if let Some(role) = get("role") {
        assert!(
            matches!(role, Resp::Bulk(_)),
            "{who}: HELLO role must be a string"
        );
    }
}

/// GET-MASTER-ADDR-BY-NAME as Jedis/Lettuce parse it: exactly two bulk
/// strings, the port through `Integer.parseInt` (and a valid TCP port).
fn parse_addr(r: &Resp, who: &str) -> (String, u16) {
    match r.items() {
        Some([Resp::Bulk(ip), Resp::Bulk(port)]) if !matches!(r, Resp::Push(_)) => {
            let ip = String::from_utf8(ip.clone()).expect("ip is UTF-8");
            let port = std::str::from_utf8(port)
                .ok()
                .and_then(|p| p.parse::<i32>().ok())
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_else(|| panic!("{who}: port does not parse: {}", r.pretty()));
            (ip, port)
        }
        _ => panic!(
            "{who}: GET-MASTER-ADDR-BY-NAME must be 2 bulk strings: {}",
            r.pretty()
        ),
    }
}

/// Field/value pairs of an instance description: a map in RESP3, a flat
/// list of bulk strings in RESP2 (Lettuce reads both; a wrong shape is a
/// ClassCastException there).
fn description(r: &Resp, resp3: bool, who: &str) -> Vec<(String, String)> {
    let pairs: Vec<(Resp, Resp)> = match (r, resp3) {
        (Resp::Map(m), true) => m.clone(),
        (Resp::Array(v), false) if v.len() % 2 == 0 => {
            v.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect()
        }
        _ => panic!(
            "{who}: an instance description must be a {} : {}",
            if resp3 { "map" } else { "flat array" },
            r.pretty()
        ),
    };
    pairs
        .into_iter()
        .map(|(k, v)| match (k, v) {
            (Resp::Bulk(k), Resp::Bulk(v)) => (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            ),
            (k, v) => panic!(
                "{who}: description keys and values must be bulk strings: {} {}",
                k.pretty(),
                v.pretty()
            ),
        })
        .collect()
}

fn field<'a>(d: &'a [(String, String)], k: &str) -> Option<&'a str> {
    d.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// What Lettuce's MasterReplica topology refresh keeps: the master's
/// address and the usable replicas' addresses.
fn lettuce_topology(c: &mut Conn, resp3: bool, who: &str) -> (u16, BTreeSet<u16>) {
    let m = description(&c.cmd(&["SENTINEL", "master", MASTER]), resp3, who);
    let flags = field(&m, "flags").unwrap_or_default();
    assert!(
        flags.split(',').any(|f| f == "master"),
        "{who}: SENTINEL master flags: {flags}"
    );
    assert_eq!(field(&m, "ip"), Some("127.0.0.1"), "{who}: master ip");
    let port = field(&m, "port")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("{who}: master port in {m:?}"));
    let list = c.cmd(&["SENTINEL", "REPLICAS", MASTER]);
    let Resp::Array(items) = &list else {
        panic!(
            "{who}: SENTINEL REPLICAS must be an array: {}",
            list.pretty()
        );
    };
    let mut usable = BTreeSet::new();
    for item in items {
        let d = description(item, resp3, who);
        let flags = field(&d, "flags").unwrap_or_default();
        assert!(
            flags.split(',').any(|f| f == "slave"),
            "{who}: replica flags {flags}"
        );
        let p = field(&d, "port")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("{who}: replica port in {d:?}"));
        assert!(field(&d, "ip").is_some(), "{who}: replica ip in {d:?}");
        if !flags
            .split(',')
            .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"))
        {
            usable.insert(p);
        }
    }
    (port, usable)
}

/// Send commands in one write (as Jedis's pipeline and Lettuce's
/// fire-and-forget do) and read exactly one reply per command.
fn pipeline(c: &mut Conn, cmds: &[&[&str]]) -> Vec<Resp> {
    let mut bytes = Vec::new();
    for args in cmds {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        bytes.extend(encode(&a));
    }
    c.send_raw(&bytes).expect("send pipeline");
    cmds.iter().map(|_| c.read()).collect()
}

/// After a pipeline: nothing extra arrived (one reply per command).
fn expect_in_sync(c: &mut Conn, who: &str) {
    let r = c.cmd(&["PING"]);
    assert_eq!(
        r,
        Resp::Status("PONG".into()),
        "{who}: the reply after the pipeline"
    );
}

// ---------------------------------------------------------------- the replayed clients

/// Which client a subscribed connection replays.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Listener {
    /// Jedis 4–7: RESP2, `SUBSCRIBE +switch-master`.
    Jedis,
    /// Jedis 8: `HELLO 3`, `SUBSCRIBE +switch-master`, push frames.
    Jedis8,
    /// Lettuce MasterReplica: `HELLO 3`, `PSUBSCRIBE *`.
    Lettuce,
}

struct Sub {
    kind: Listener,
    port: u16,
    conn: Conn,
    /// Every (channel, payload) received, for diagnostics and event checks.
    seen: Vec<(String, String)>,
}

/// Jedis's handshake on a new sentinel connection: `HELLO 3` for Jedis 8,
/// then CLIENT SETNAME + SETINFO pipelined (errors collected, one reply
/// each; SETNAME must be OK).
fn jedis_handshake(c: &mut Conn, jedis8: bool, who: &str) {
    if jedis8 {
        check_hello3(&c.cmd(&["HELLO", "3"]), who);
    }
    let r = pipeline(
        c,
        &[
            &["CLIENT", "SETNAME", "jedis-it"],
            &["CLIENT", "SETINFO", "LIB-NAME", "jedis"],
            &[
                "CLIENT",
                "SETINFO",
                "LIB-VER",
                if jedis8 { "8.0.0" } else { "5.2.0" },
            ],
        ],
    );
    assert_eq!(r[0], Resp::Status("OK".into()), "{who}: CLIENT SETNAME");
    for x in &r[1..] {
        assert!(
            matches!(x, Resp::Status(_) | Resp::Error(_)),
            "{who}: CLIENT SETINFO reply: {}",
            x.pretty()
        );
    }
    expect_in_sync(c, who);
}

/// Jedis at start and its listener thread: resolve, then subscribe.
fn jedis_listener(port: u16, jedis8: bool, expect: u16) -> Sub {
    let who = format!("{} on {port}", if jedis8 { "Jedis 8" } else { "Jedis" });
    // The pool's first lookup, on its own connection.
    let mut c = Conn::open(port);
    jedis_handshake(&mut c, jedis8, &who);
    let r = c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
    assert_eq!(parse_addr(&r, &who), ("127.0.0.1".into(), expect), "{who}");
    drop(c);
    // The listener: a new connection, lookup again, then SUBSCRIBE.
    let mut c = Conn::open(port);
    jedis_handshake(&mut c, jedis8, &who);
    let r = c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
    assert_eq!(parse_addr(&r, &who), ("127.0.0.1".into(), expect), "{who}");
    let r = c.cmd(&["SUBSCRIBE", "+switch-master"]);
    let want = vec![
        Resp::bulk("subscribe"),
        Resp::bulk("+switch-master"),
        Resp::Int(1),
    ];
    let ok = match (&r, jedis8) {
        (Resp::Push(v), true) | (Resp::Array(v), false) => *v == want,
        _ => false,
    };
    assert!(ok, "{who}: SUBSCRIBE confirmation: {}", r.pretty());
    Sub {
        kind: if jedis8 {
            Listener::Jedis8
        } else {
            Listener::Jedis
        },
        port,
        conn: c,
        seen: Vec::new(),
    }
}

/// Lettuce's plain sentinel-URI resolution: HELLO 3 SETNAME, SETINFO
/// fire-and-forget, lowercase get-master-addr-by-name; returns the port.
fn lettuce_resolve(port: u16) -> u16 {
    let who = format!("Lettuce on {port}");
    let mut c = Conn::open(port);
    check_hello3(&c.cmd(&["HELLO", "3", "SETNAME", "lettuce#it"]), &who);
    let r = pipeline(
        &mut c,
        &[
            &["CLIENT", "SETINFO", "lib-name", "Lettuce"],
            &["CLIENT", "SETINFO", "lib-ver", "6.5.0.RELEASE"],
            &["SENTINEL", "get-master-addr-by-name", MASTER],
        ],
    );
    let (ip, p) = parse_addr(&r[2], &who);
    assert_eq!(ip, "127.0.0.1", "{who}");
    p
}

/// Lettuce when HELLO fails: the error must be one it recognises (it falls
/// back on `NOPROTO`, or `ERR` + `unknown`), then `PING` and RESP2 replies.
fn lettuce_fallback(port: u16) -> (u16, BTreeSet<u16>) {
    let who = format!("Lettuce (HELLO fallback) on {port}");
    let mut c = Conn::open(port);
    let r = c.cmd(&["HELLO", "4"]);
    match &r {
        Resp::Error(e) if e.starts_with("NOPROTO") => {}
        other => panic!("{who}: HELLO 4 must fail with NOPROTO: {}", other.pretty()),
    }
    assert_eq!(c.cmd(&["PING"]), Resp::Status("PONG".into()), "{who}: PING");
    let r = c.cmd(&["SENTINEL", "get-master-addr-by-name", MASTER]);
    let (_, p) = parse_addr(&r, &who);
    let (mp, replicas) = lettuce_topology(&mut c, false, &who);
    assert_eq!(p, mp, "{who}: GET-MASTER-ADDR and SENTINEL master agree");
    (mp, replicas)
}

/// Lettuce MasterReplica: topology on one connection (RESP3), then a
/// `PSUBSCRIBE *` connection on this sentinel.
fn lettuce_master_replica(port: u16) -> ((u16, BTreeSet<u16>), Sub) {
    let who = format!("Lettuce MasterReplica on {port}");
    let mut c = Conn::open(port);
    check_hello3(&c.cmd(&["HELLO", "3"]), &who);
    let topo = lettuce_topology(&mut c, true, &who);
    drop(c);
    let mut c = Conn::open(port);
    check_hello3(&c.cmd(&["HELLO", "3"]), &who);
    let r = c.cmd(&["PSUBSCRIBE", "*"]);
    assert_eq!(
        r,
        Resp::Push(vec![
            Resp::bulk("psubscribe"),
            Resp::bulk("*"),
            Resp::Int(1)
        ]),
        "{who}: PSUBSCRIBE * confirmation"
    );
    (
        topo,
        Sub {
            kind: Listener::Lettuce,
            port,
            conn: c,
            seen: Vec::new(),
        },
    )
}

/// Jedis 8 when `HELLO 3` fails: it falls back on a `NOPROTO` error (or
/// `ERR` + `unknown command`) to `HELLO 2`, whose flat reply must still carry
/// `proto` as an integer; then its usual lookup in RESP2.
fn jedis8_fallback(port: u16, expect: u16) {
    let who = format!("Jedis 8 (HELLO fallback) on {port}");
    let mut c = Conn::open(port);
    match c.cmd(&["HELLO", "4"]) {
        Resp::Error(e) if e.starts_with("NOPROTO") => {}
        other => panic!("{who}: HELLO 4 must fail with NOPROTO: {}", other.pretty()),
    }
    let r = c.cmd(&["HELLO", "2"]);
    let Resp::Array(v) = &r else {
        panic!("{who}: HELLO 2 must be a flat array: {}", r.pretty());
    };
    let proto = v
        .chunks(2)
        .find(|kv| kv[0].as_str().as_deref() == Some("proto"))
        .and_then(|kv| kv.get(1).cloned());
    assert_eq!(proto, Some(Resp::Int(2)), "{who}: HELLO 2 proto");
    jedis_handshake(&mut c, false, &who);
    let r = c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
    assert_eq!(parse_addr(&r, &who), ("127.0.0.1".into(), expect), "{who}");
}

/// Every replayed client against one sentinel before any failover; returns
/// its subscribed connections.
fn replay_before(port: u16, master: u16, replicas: &BTreeSet<u16>) -> Vec<Sub> {
    let mut subs = vec![
        jedis_listener(port, false, master),
        jedis_listener(port, true, master),
    ];
    jedis8_fallback(port, master);
    assert_eq!(lettuce_resolve(port), master, "Lettuce on {port}");
    let (topo, sub) = lettuce_master_replica(port);
    assert_eq!(
        topo,
        (master, replicas.clone()),
        "Lettuce topology on {port}"
    );
    assert_eq!(
        lettuce_fallback(port),
        (master, replicas.clone()),
        "Lettuce RESP2 topology on {port}"
    );
    subs.push(sub);
    subs
}

/// Read frames until `+switch-master` arrives in the frame type this
/// listener's client parses; returns its payload.
fn wait_switch(sub: &mut Sub, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "{:?} on {}: no +switch-master within {timeout:?}; seen: {:#?}",
                sub.kind, sub.port, sub.seen
            );
        }
        let frame = match sub.conn.read_reply(left) {
            Reply::Frame(f) => f,
            Reply::Timeout => continue,
            Reply::Closed => panic!(
                "{:?} on {}: subscription closed; seen: {:#?}",
                sub.kind, sub.port, sub.seen
            ),
        };
        let (push, items) = match &frame {
            Resp::Push(v) => (true, v.clone()),
            Resp::Array(v) => (false, v.clone()),
            other => panic!(
                "{:?} on {}: not a message: {}",
                sub.kind,
                sub.port,
                other.pretty()
            ),
        };
        let want_push = sub.kind != Listener::Jedis;
        assert_eq!(
            push,
            want_push,
            "{:?} on {}: message frame type: {}",
            sub.kind,
            sub.port,
            frame.pretty()
        );
        let bulk = |r: &Resp| match r {
            Resp::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!(
                "{:?}: message element not a bulk string: {}",
                sub.kind,
                other.pretty()
            ),
        };
        let (channel, payload) = match (sub.kind, items.as_slice()) {
            (Listener::Jedis | Listener::Jedis8, [k, ch, p]) => {
                assert_eq!(bulk(k), "message", "{:?}", sub.kind);
                (bulk(ch), bulk(p))
            }
            (Listener::Lettuce, [k, pat, ch, p]) => {
                assert_eq!(bulk(k), "pmessage", "Lettuce");
                assert_eq!(bulk(pat), "*", "Lettuce");
                (bulk(ch), bulk(p))
            }
            _ => panic!(
                "{:?} on {}: message shape: {}",
                sub.kind,
                sub.port,
                frame.pretty()
            ),
        };
        sub.seen.push((channel.clone(), payload.clone()));
        if channel == "+switch-master" {
            return payload;
        }
        assert_eq!(
            sub.kind,
            Listener::Lettuce,
            "a SUBSCRIBE +switch-master connection got {channel}"
        );
    }
}

/// How the master goes away.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Failover {
    Kill,
    Manual,
}

/// The replay on every sentinel of `ports` (watching `topo`), the failover
/// of `kind`, and every check after it. Works the same against raftinel's
/// group and against real redis-sentinels.
fn replay_through(kind: Failover, ports: &[u16], topo: &mut Topology) {
    let old_port = topo.master.port;
    let replicas: BTreeSet<u16> = topo.replicas.iter().map(|r| r.port).collect();
    let mut subs: Vec<Sub> = Vec::new();
    for &port in ports {
        subs.extend(replay_before(port, old_port, &replicas));
    }
    match kind {
        Failover::Kill => topo.master.sigkill(),
        Failover::Manual => {
            // raftinel answers -NOQUORUM until the master is registered in
            // its group: ask again then.
            let r = wait_for(BOUND, "SENTINEL FAILOVER accepted", || {
                let r = Conn::open(ports[0]).cmd(&["SENTINEL", "FAILOVER", MASTER]);
                match &r {
                    Resp::Error(e) if e.starts_with("NOQUORUM") => Err(e.clone()),
                    _ => Ok(r),
                }
            });
            assert_eq!(r, Resp::Status("OK".into()), "SENTINEL FAILOVER");
        }
    }

    // Every listener on every daemon: the message, parsed as its client does,
    // and the daemon's answer right after it was published.
    let mut news = BTreeSet::new();
    for sub in &mut subs {
        let payload = wait_switch(sub, BOUND);
        let who = format!("{:?} on {}", sub.kind, sub.port);
        let f: Vec<&str> = payload.split(' ').collect();
        assert_eq!(f.len(), 5, "{who}: +switch-master payload {payload:?}");
        assert_eq!(f[0], MASTER, "{who}: field 0 (name) of {payload:?}");
        if sub.kind == Listener::Lettuce {
            assert!(
                payload.starts_with(&format!("{MASTER} ")),
                "{who}: Lettuce refreshes on a message starting with '<name> '"
            );
        }
        assert_eq!(
            (f[1], f[2].parse::<i32>().ok()),
            ("127.0.0.1", Some(i32::from(old_port))),
            "{who}: old address in {payload:?}"
        );
        let new_port = f[4]
            .parse::<i32>()
            .ok()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("{who}: Integer.parseInt(field 4) of {payload:?}"));
        assert_eq!(f[3], "127.0.0.1", "{who}: field 3 (new ip) of {payload:?}");
        assert!(
            replicas.contains(&new_port),
            "{who}: new master {new_port} is not a former replica"
        );
        news.insert(new_port);
        // go-redis and ioredis ask again at once; Jedis's listener does on
        // its next reconnect: the address must already be the new one.
        let mut c = Conn::open(sub.port);
        let r = c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
        assert_eq!(
            parse_addr(&r, &who),
            ("127.0.0.1".into(), new_port),
            "{who}: GET-MASTER-ADDR-BY-NAME right after +switch-master"
        );
    }
    assert_eq!(
        news.len(),
        1,
        "listeners were told different masters: {news:?}"
    );
    let new_port = news.into_iter().next().unwrap_or_default();
    for r in &topo.replicas {
        if r.port == new_port {
            wait_for(
                BOUND,
                "the promoted replica answers ROLE master",
                || match role(r).as_str() {
                    "master" => Ok(()),
                    other => Err(other.to_string()),
                },
            );
        } else {
            follows(r, new_port, "the other replica");
        }
    }

    // Re-resolution by each client on each sentinel.
    let other: BTreeSet<u16> = replicas
        .iter()
        .copied()
        .filter(|p| *p != new_port)
        .collect();
    let want_replicas = match kind {
        // The dead old master is listed as a replica flagged down: dropped.
        Failover::Kill => other,
        // The running old master was demoted: a usable replica.
        Failover::Manual => {
            follows(&topo.master, new_port, "the old master");
            let mut r = other;
            r.insert(old_port);
            r
        }
    };
    for &port in ports {
        let mut c = Conn::open(port);
        jedis_handshake(&mut c, false, "Jedis after the failover");
        let r = c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
        assert_eq!(parse_addr(&r, "Jedis"), ("127.0.0.1".into(), new_port));
        assert_eq!(lettuce_resolve(port), new_port, "Lettuce on {port}");
        wait_for(
            BOUND,
            &format!(
                "Lettuce's topology refresh on {port} finds the new master and usable replicas"
            ),
            || {
                let mut c = Conn::open(port);
                check_hello3(&c.cmd(&["HELLO", "3"]), "Lettuce");
                let t3 = lettuce_topology(&mut c, true, "Lettuce");
                let t2 = lettuce_fallback(port);
                if t3 == (new_port, want_replicas.clone()) && t2 == t3 {
                    Ok(())
                } else {
                    Err(format!("RESP3 {t3:?}, RESP2 {t2:?}"))
                }
            },
        );
    }

    // The events Lettuce's MasterReplica refreshes on, as it matches them:
    // on every daemon a `+slave` naming `@ <name> ` (the replicas re-listed
    // under the new master).
    let at = format!("@ {MASTER} ");
    for sub in subs.iter_mut().filter(|s| s.kind == Listener::Lettuce) {
        let deadline = Instant::now() + BOUND;
        while !sub
            .seen
            .iter()
            .any(|(ch, p)| ch == "+slave" && p.contains(&at))
        {
            assert!(
                Instant::now() < deadline,
                "Lettuce on {}: no +slave containing {at:?}; seen: {:#?}",
                sub.port,
                sub.seen
            );
            for m in sub
                .conn
                .drain_messages(Duration::from_millis(300), Duration::from_secs(2))
            {
                sub.seen.push((m.channel, m.payload));
            }
        }
    }
}

/// A data node replicates `new_port`.
fn follows(node: &RedisNode, new_port: u16, what: &str) {
    wait_for(BOUND, &format!("{what} replicates {new_port}"), || {
        let info = node.try_replication_info()?;
        if info_field(&info, "role").as_deref() == Some("slave")
            && info_field(&info, "master_port") == Some(new_port.to_string())
        {
            Ok(())
        } else {
            Err(info)
        }
    });
}

/// Jedis and Lettuce replayed on every daemon through a SIGKILLed master.
#[test]
fn jedis_lettuce_replay_through_sigkill() {
    let mut g = Group::new();
    let ports: Vec<u16> = g.daemons.iter().map(|d| d.port).collect();
    replay_through(Failover::Kill, &ports, &mut g.topo);
}

/// Jedis and Lettuce replayed on every daemon through `SENTINEL FAILOVER`.
#[test]
fn jedis_lettuce_replay_through_manual_failover() {
    let mut g = Group::new();
    let ports: Vec<u16> = g.daemons.iter().map(|d| d.port).collect();
    replay_through(Failover::Manual, &ports, &mut g.topo);
}

/// The same replay and SIGKILL against three real redis-sentinel 7.0.15
/// (same quorum and timeouts as the group): checks that what the replay
/// asserts, before and after the failover, is what the reference does.
#[test]
fn jedis_lettuce_replay_against_redis_sentinel() {
    let mut topo = Topology::new(2);
    let m = monitor(topo.master.port);
    let sentinels: Vec<SentinelProc> = (0..3)
        .map(|_| SentinelProc::oracle(std::slice::from_ref(&m)))
        .collect();
    for s in &sentinels {
        eventually("redis-sentinel knows both replicas and both peers", || {
            let peers = s.master_field(MASTER, "num-other-sentinels");
            let (_, r) = lettuce_fallback(s.port);
            if peers.as_deref() == Some("2") && r.len() == 2 {
                Ok(())
            } else {
                Err(format!("peers {peers:?}, usable replicas {r:?}"))
            }
        });
    }
    let ports: Vec<u16> = sentinels.iter().map(|s| s.port).collect();
    replay_through(Failover::Kill, &ports, &mut topo);
}
