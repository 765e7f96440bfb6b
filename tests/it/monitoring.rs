//! Monitoring behaviour against real Redis processes: replica discovery,
//! peer discovery through hello, SDOWN on dead/hung masters, `+slave`,
//! `+reboot`, GET-MASTER-ADDR-BY-NAME. Assertions are on behaviour only;
//! every wait is bounded by `EVENTUALLY`.

use crate::harness::*;
use std::time::Duration;

fn master_prefix(t: &RedisNode) -> String {
    format!("master {MASTER} 127.0.0.1 {}", t.port)
}

/// `SENTINEL REPLICAS` (and `SLAVES`) list both replicas, flags exactly `slave`.
#[test]
fn discovers_replicas() {
    let topo = Topology::new(2);
    let d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let mut want: Vec<String> = topo
        .replicas
        .iter()
        .map(|r| format!("127.0.0.1:{}", r.port))
        .collect();
    want.sort();
    for sub in ["REPLICAS", "SLAVES"] {
        eventually(
            &format!("SENTINEL {sub} lists both replicas as healthy"),
            || {
                let list = d.descriptions(sub, MASTER);
                // Fields from the replica's own INFO too (master-link-status ok).
                let mut got: Vec<[String; 3]> = list
                    .iter()
                    .map(|r| {
                        ["name", "flags", "master-link-status"]
                            .map(|f| r.field(f).unwrap_or_default())
                    })
                    .collect();
                got.sort();
                let names: Vec<String> = got.iter().map(|g| g[0].clone()).collect();
                if names == want && got.iter().all(|g| g[1] == "slave" && g[2] == "ok") {
                    Ok(())
                } else {
                    Err(format!(
                        "{got:?}, want names {want:?}, flags slave, link ok"
                    ))
                }
            },
        );
    }
    let list = d.descriptions("REPLICAS", MASTER);
    for r in &list {
        let name = r.field("name").unwrap_or_default();
        let port = r.field("port").unwrap_or_default();
        assert_eq!(name, format!("127.0.0.1:{port}"), "replica name is ip:port");
        assert_eq!(r.field("ip").as_deref(), Some("127.0.0.1"));
        assert_eq!(r.field("master-host").as_deref(), Some("127.0.0.1"));
        assert_eq!(r.field("master-port"), Some(topo.master.port.to_string()));
        assert_eq!(r.field("role-reported").as_deref(), Some("slave"));
        let node = topo
            .replicas
            .iter()
            .find(|n| n.port.to_string() == port)
            .expect("listed replica is one of ours");
        assert_eq!(
            r.field("runid"),
            Some(node.run_id()),
            "replica runid from INFO"
        );
    }
    assert_eq!(d.master_field(MASTER, "num-slaves").as_deref(), Some("2"));
    let info = d
        .conn()
        .cmd(&["INFO", "sentinel"])
        .as_str()
        .unwrap_or_default();
    let line = info_field(&info, "master0").unwrap_or_default();
    assert_eq!(
        line,
        format!(
            "name={MASTER},status=ok,address=127.0.0.1:{},slaves=2,sentinels=1",
            topo.master.port
        ),
        "INFO sentinel master0 line; full INFO:\n{info}"
    );
}

/// Two daemons on one master find each other through hello messages.
#[test]
fn discovers_other_daemons_via_hello() {
    let topo = Topology::new(2);
    let m = [Monitor::new(topo.master.port, 2)];
    let a = Raftinel::raftinel(&m);
    let mut sub = a.subscribe(&["+sentinel"]);
    let b = Raftinel::raftinel(&m);
    let ids = [a.myid(), b.myid()];
    let want = format!(
        "sentinel {} 127.0.0.1 {} @ {MASTER} 127.0.0.1 {}",
        ids[1], b.port, topo.master.port
    );
    sub.wait_message("+sentinel", EVENTUALLY, |p| p == want)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids[0].len(), 40, "myid is 40 chars: {:?}", ids[0]);
    assert_ne!(ids[0], ids[1], "two daemons have different ids");
    for (me, other, other_id) in [(&a, &b, &ids[1]), (&b, &a, &ids[0])] {
        eventually(
            &format!("daemon {} lists daemon {}", me.port, other.port),
            || {
                let list = me.descriptions("SENTINELS", MASTER);
                let found: Vec<[Option<String>; 4]> = list
                    .iter()
                    .map(|s| ["runid", "ip", "port", "flags"].map(|f| s.field(f)))
                    .collect();
                let want = [
                    Some(other_id.clone()),
                    Some("127.0.0.1".to_string()),
                    Some(other.port.to_string()),
                    Some("sentinel".to_string()),
                ];
                if found == vec![want.clone()] {
                    Ok(())
                } else {
                    Err(format!("SENTINELS = {found:?}, want [{want:?}]"))
                }
            },
        );
        let list = me.descriptions("SENTINELS", MASTER);
        assert_eq!(
            list[0].field("name").as_ref(),
            Some(other_id),
            "sentinel name is its runid"
        );
        eventually("num-other-sentinels = 1", || {
            match me.master_field(MASTER, "num-other-sentinels").as_deref() {
                Some("1") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        let info = me
            .conn()
            .cmd(&["INFO", "sentinel"])
            .as_str()
            .unwrap_or_default();
        assert!(
            info.contains(",sentinels=2\r\n"),
            "INFO sentinel counts self + 1 peer:\n{info}"
        );
        let ck = me.conn().cmd(&["SENTINEL", "CKQUORUM", MASTER]);
        assert_eq!(
            ck,
            Resp::Status(
                "OK 2 usable Sentinels. Quorum and failover authorization can be reached".into()
            )
        );
    }
}

/// SIGKILL of the master → `+sdown master mymaster 127.0.0.1 <port>`.
#[test]
fn sdown_when_master_killed() {
    let mut topo = Topology::new(0);
    let d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let prefix = master_prefix(&topo.master);
    eventually("master flags exactly `master`", || {
        match d.master_field(MASTER, "flags").as_deref() {
            Some("master") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let mut sub = d.subscribe(&["+sdown"]);
    let mut push = d.psubscribe_all(true);
    topo.master.sigkill();
    sub.wait_message("+sdown", EVENTUALLY, |p| p == prefix)
        .unwrap_or_else(|e| panic!("{e}"));
    // RESP3 subscribers get the same event as a push frame.
    let m = push
        .wait_message("+sdown", EVENTUALLY, |p| p == prefix)
        .unwrap_or_else(|e| panic!("RESP3 PSUBSCRIBE *: {e}"));
    assert!(m.push, "RESP3 pmessage must be a push frame (>4)");
    let flags = d.master_field(MASTER, "flags").unwrap_or_default();
    assert!(
        flags.split(',').any(|f| f == "s_down") && flags.split(',').any(|f| f == "master"),
        "flags after +sdown: {flags:?}"
    );
    let master = d.conn().cmd(&["SENTINEL", "MASTER", MASTER]);
    assert!(
        master.field("s-down-time").is_some(),
        "s-down-time present while SDOWN:\n{}",
        master.pretty()
    );
    let info = d
        .conn()
        .cmd(&["INFO", "sentinel"])
        .as_str()
        .unwrap_or_default();
    assert!(
        info.contains(",status=sdown,"),
        "INFO sentinel while SDOWN:\n{info}"
    );
    // Quorum 2 with one daemon: never ODOWN.
    assert!(!flags.contains("o_down"), "flags: {flags:?}");
}

/// SIGSTOP → `+sdown`; SIGCONT → `-sdown` and flags back to exactly `master`.
#[test]
fn sdown_when_master_stopped_and_back_after_sigcont() {
    let topo = Topology::new(0);
    let d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let prefix = master_prefix(&topo.master);
    eventually("master healthy", || {
        match d.master_field(MASTER, "flags").as_deref() {
            Some("master") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let mut sub = d.subscribe(&["+sdown", "-sdown"]);
    topo.master.sigstop();
    let res = sub.wait_message("+sdown", EVENTUALLY, |p| p == prefix);
    topo.master.sigcont();
    res.unwrap_or_else(|e| panic!("{e}"));
    sub.wait_message("-sdown", EVENTUALLY, |p| p == prefix)
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("flags back to exactly `master`", || {
        match d.master_field(MASTER, "flags").as_deref() {
            Some("master") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// A replica attached later is announced with `+slave <replica>`.
#[test]
fn slave_event_for_new_replica() {
    let topo = Topology::new(0);
    let d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    // The daemon must have seen the master (and its empty replica list) first.
    eventually("master INFO received", || {
        match d.master_field(MASTER, "role-reported").as_deref() {
            Some("master") => Ok(()),
            other => Err(format!("role-reported {other:?}")),
        }
    });
    let mut sub = d.subscribe(&["+slave"]);
    let replica = RedisNode::replica_of(&topo.master);
    replica.wait_link_up();
    let want = format!(
        "slave 127.0.0.1:{p} 127.0.0.1 {p} @ {MASTER} 127.0.0.1 {}",
        topo.master.port,
        p = replica.port
    );
    // The master is INFO-polled every 10 s: allow for one full period.
    sub.wait_message("+slave", EVENTUALLY, |p| p == want)
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("replica listed", || {
        let n = d.descriptions("REPLICAS", MASTER).len();
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} replicas"))
        }
    });
}

/// A master restarted with a new run_id → `+reboot master ...`, runid updated.
#[test]
fn reboot_event_on_master_restart() {
    let mut topo = Topology::new(0);
    let d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let old = topo.master.run_id();
    eventually("runid learned from INFO", || {
        match d.master_field(MASTER, "runid") {
            Some(r) if r == old => Ok(()),
            other => Err(format!("runid {other:?}, want {old}")),
        }
    });
    let mut sub = d.subscribe(&["+reboot"]);
    topo.master.restart();
    let new = topo.master.run_id();
    assert_ne!(old, new, "redis-server restart gives a new run_id");
    let prefix = master_prefix(&topo.master);
    // INFO is polled every 10 s (the link also has to reconnect first).
    sub.wait_message("+reboot", Duration::from_secs(45), |p| p == prefix)
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("runid updated", || match d.master_field(MASTER, "runid") {
        Some(r) if r == new => Ok(()),
        other => Err(format!("runid {other:?}, want {new}")),
    });
}

/// GET-MASTER-ADDR-BY-NAME: two bulk strings, or a null array for unknown names.
#[test]
fn get_master_addr_by_name() {
    let topo = Topology::new(0);
    let d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let mut c = d.conn();
    assert_eq!(
        c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]),
        Resp::Array(vec![
            Resp::bulk("127.0.0.1"),
            Resp::bulk(&topo.master.port.to_string())
        ])
    );
    assert_eq!(
        c.cmd(&["sentinel", "get-master-addr-by-name", "nosuch"]),
        Resp::NullArray
    );
    let hello = c.cmd(&["HELLO", "3"]);
    let proto = hello
        .pairs()
        .and_then(|p| p.into_iter().find(|(k, _)| k == "proto"))
        .map(|(_, v)| v);
    assert_eq!(
        proto,
        Some(Resp::Int(3)),
        "HELLO 3 reply:\n{}",
        hello.pretty()
    );
    assert_eq!(
        c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nosuch"]),
        Resp::Null,
        "RESP3 null for an unknown master"
    );
}

/// Two daemons, quorum 2, master hung: ODOWN is reached with `#quorum 2/2`.
/// No replicas, so the failover that follows aborts without touching data.
#[test]
fn odown_with_two_daemons() {
    let topo = Topology::new(0);
    let m = [Monitor::new(topo.master.port, 2)];
    let a = Raftinel::raftinel(&m);
    let b = Raftinel::raftinel(&m);
    for d in [&a, &b] {
        eventually("peer discovered", || {
            match d.master_field(MASTER, "num-other-sentinels").as_deref() {
                Some("1") => Ok(()),
                other => Err(format!("num-other-sentinels {other:?}")),
            }
        });
    }
    let mut sa = a.subscribe(&["+odown"]);
    let mut sb = b.subscribe(&["+odown"]);
    topo.master.sigstop();
    let want = format!("{} #quorum 2/2", master_prefix(&topo.master));
    let ra = sa.wait_message("+odown", EVENTUALLY, |p| p == want);
    let rb = sb.wait_message("+odown", Duration::from_secs(5), |p| p == want);
    topo.master.sigcont();
    assert!(
        ra.is_ok() || rb.is_ok(),
        "neither daemon reached ODOWN:\n{ra:?}\n{rb:?}"
    );
}

/// A hung replica → `+sdown slave <ip:port> <ip> <port> @ mymaster ...`,
/// then `-sdown` after SIGCONT.
#[test]
fn sdown_for_replica() {
    let topo = Topology::new(1);
    let d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let r = &topo.replicas[0];
    eventually("replica healthy", || {
        let list = d.descriptions("REPLICAS", MASTER);
        match list.first().and_then(|x| x.field("flags")).as_deref() {
            Some("slave") if list.len() == 1 => Ok(()),
            _ => Err(list.iter().map(|x| x.pretty()).collect()),
        }
    });
    let want = format!(
        "slave 127.0.0.1:{p} 127.0.0.1 {p} @ {MASTER} 127.0.0.1 {}",
        topo.master.port,
        p = r.port
    );
    let mut sub = d.subscribe(&["+sdown", "-sdown"]);
    r.sigstop();
    let res = sub.wait_message("+sdown", EVENTUALLY, |p| p == want);
    let flags = d
        .descriptions("REPLICAS", MASTER)
        .first()
        .and_then(|x| x.field("flags"));
    r.sigcont();
    res.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        flags.as_deref().unwrap_or("").starts_with("s_down,slave"),
        "replica flags while hung: {flags:?}"
    );
    sub.wait_message("-sdown", EVENTUALLY, |p| p == want)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A hung peer daemon → `+sdown sentinel <runid> <ip> <port> @ mymaster ...`.
#[test]
fn sdown_for_peer_daemon() {
    let topo = Topology::new(0);
    let m = [Monitor::new(topo.master.port, 2)];
    let a = Raftinel::raftinel(&m);
    let b = Raftinel::raftinel(&m);
    let b_id = b.myid();
    eventually("peer known", || {
        match a.master_field(MASTER, "num-other-sentinels").as_deref() {
            Some("1") => Ok(()),
            other => Err(format!("num-other-sentinels {other:?}")),
        }
    });
    let want = format!(
        "sentinel {b_id} 127.0.0.1 {} @ {MASTER} 127.0.0.1 {}",
        b.port, topo.master.port
    );
    let mut sub = a.subscribe(&["+sdown", "-sdown"]);
    b.sigstop();
    let res = sub.wait_message("+sdown", EVENTUALLY, |p| p == want);
    b.sigcont();
    res.unwrap_or_else(|e| panic!("{e}"));
    sub.wait_message("-sdown", EVENTUALLY, |p| p == want)
        .unwrap_or_else(|e| panic!("{e}"));
    // A peer that was down is still listed (Sentinel never forgets peers).
    assert_eq!(a.descriptions("SENTINELS", MASTER).len(), 1);
}

/// The hello message raftinel publishes on the master's `__sentinel__:hello`
/// channel has Sentinel's 8 comma-separated fields.
#[test]
fn hello_message_format() {
    let topo = Topology::new(0);
    let d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let id = d.myid();
    let mut sub = topo.master.conn();
    sub.send(&["SUBSCRIBE", "__sentinel__:hello"])
        .expect("subscribe");
    let _confirmation = sub.read();
    let want = format!(
        "127.0.0.1,{},{id},0,{MASTER},127.0.0.1,{},0",
        d.port, topo.master.port
    );
    sub.wait_message("__sentinel__:hello", EVENTUALLY, |p| p.contains(&id))
        .map(|m| assert_eq!(m.payload, want, "hello payload"))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A replica with `replica-announced no` is hidden from REPLICAS but counted
/// in num-slaves and INFO `slaves=`.
#[test]
fn unannounced_replica_is_hidden_but_counted() {
    let master = RedisNode::start();
    let shown = RedisNode::replica_of(&master);
    let hidden = RedisNode::start_with(&["--replica-announced", "no"]);
    hidden
        .conn()
        .cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    shown.wait_link_up();
    hidden.wait_link_up();
    let d = Raftinel::raftinel(&[Monitor::new(master.port, 2)]);
    eventually("both replicas known, one announced", || {
        let n = d.master_field(MASTER, "num-slaves");
        let listed: Vec<String> = d
            .descriptions("REPLICAS", MASTER)
            .iter()
            .filter_map(|r| r.field("name"))
            .collect();
        if n.as_deref() == Some("2") && listed == vec![format!("127.0.0.1:{}", shown.port)] {
            Ok(())
        } else {
            Err(format!("num-slaves {n:?}, REPLICAS {listed:?}"))
        }
    });
    let info = d
        .conn()
        .cmd(&["INFO", "sentinel"])
        .as_str()
        .unwrap_or_default();
    assert!(
        info.contains(",slaves=2,"),
        "INFO counts the hidden replica:\n{info}"
    );
}

/// `notification-script` runs for WARNING events with `<type> <message>`.
#[test]
fn notification_script_runs_on_sdown() {
    let mut topo = Topology::new(0);
    let scripts = tempfile::Builder::new()
        .prefix("it-script-")
        .tempdir()
        .expect("tempdir");
    let out = scripts.path().join("calls.txt");
    let script = scripts.path().join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 $2\" >> '{}'\n", out.display()),
    )
    .expect("write script");
    let mut perms = std::fs::metadata(&script).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).expect("chmod");
    let m = [Monitor::new(topo.master.port, 2)];
    let d = SentinelProc::with_conf(Kind::Raftinel, |port, dir| {
        sentinel_conf(
            port,
            dir,
            &m,
            &[format!(
                "sentinel notification-script {MASTER} {}",
                script.display()
            )],
        )
    });
    assert_eq!(
        d.master_field(MASTER, "notification-script"),
        Some(script.display().to_string()),
        "notification-script shown in SENTINEL MASTER"
    );
    topo.master.sigkill();
    let want = format!("+sdown {}", master_prefix(&topo.master));
    eventually("script called with +sdown", || {
        let calls = std::fs::read_to_string(&out).unwrap_or_default();
        if calls.lines().any(|l| l == want) {
            Ok(())
        } else {
            Err(format!("calls so far: {calls:?}"))
        }
    });
}

/// INFO server names the config file and the port actually served.
#[test]
fn info_server_reports_config_file_and_port() {
    let topo = Topology::new(0);
    let d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let info = d
        .conn()
        .cmd(&["INFO", "server"])
        .as_str()
        .unwrap_or_default();
    let conf = std::fs::canonicalize(&d.conf).expect("canonical config path");
    assert_eq!(
        info_field(&info, "config_file").map(std::path::PathBuf::from),
        Some(conf),
        "INFO config_file:\n{info}"
    );
    assert_eq!(info_field(&info, "tcp_port"), Some(d.port.to_string()));
    assert_eq!(info_field(&info, "redis_mode").as_deref(), Some("sentinel"));
    assert_eq!(info_field(&info, "run_id").map(|r| r.len()), Some(40));
}
