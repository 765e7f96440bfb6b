//! Failover behaviour with real Redis nodes: automatic (three daemons, the
//! master SIGKILLed) and manual (`SENTINEL FAILOVER`). Assertions are about
//! outcomes (who is master, what every daemon reports and persists, events
//! published), never about how long it took; waits are bounded.

use crate::harness::*;
use std::time::Duration;

/// Generous bound for a whole failover on a loaded CI machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(90);

fn monitor(port: u16, quorum: u32) -> Monitor {
    Monitor {
        // Short, so a split vote is retried quickly (2 × failover-timeout).
        failover_timeout_ms: 5000,
        ..Monitor::new(port, quorum)
    }
}

fn wait_healthy_replicas(d: &SentinelProc, n: usize) {
    eventually(
        &format!("daemon {} knows {n} healthy replicas", d.port),
        || {
            let list = d.descriptions("REPLICAS", MASTER);
            let ok = list.len() == n
                && list.iter().all(|r| {
                    r.field("flags").as_deref() == Some("slave")
                        && r.field("master-link-status").as_deref() == Some("ok")
                });
            if ok {
                Ok(())
            } else {
                Err(list.iter().map(|r| r.pretty()).collect())
            }
        },
    );
}

/// Parse `+switch-master` payload `<name> <old-ip> <old-port> <new-ip> <new-port>`.
fn parse_switch(payload: &str) -> (String, u16, String, u16) {
    let f: Vec<&str> = payload.split(' ').collect();
    assert_eq!(
        f.len(),
        5,
        "+switch-master payload has 5 fields: {payload:?}"
    );
    assert_eq!(f[0], MASTER, "payload: {payload:?}");
    let port = |s: &str| {
        s.parse::<u16>()
            .unwrap_or_else(|_| panic!("bad port in {payload:?}"))
    };
    (f[1].to_string(), port(f[2]), f[3].to_string(), port(f[4]))
}

/// The node on `port` reports `role:master`, and the others replicate from it.
fn assert_data_nodes_follow(topo: &Topology, new_port: u16) {
    let promoted = topo
        .replicas
        .iter()
        .find(|r| r.port == new_port)
        .expect("promoted node is one of the replicas");
    eventually("promoted replica reports role:master", || {
        let info = promoted.info("replication");
        match info_field(&info, "role").as_deref() {
            Some("master") => Ok(()),
            _ => Err(info),
        }
    });
    for r in topo.replicas.iter().filter(|r| r.port != new_port) {
        eventually(
            &format!("replica {} follows the new master", r.port),
            || {
                let info = r.info("replication");
                let port = info_field(&info, "master_port");
                let link = info_field(&info, "master_link_status");
                if port == Some(new_port.to_string()) && link.as_deref() == Some("up") {
                    Ok(())
                } else {
                    Err(info)
                }
            },
        );
    }
}

/// Three daemons, quorum 2, master SIGKILLed: every daemon publishes the same
/// `+switch-master`, answers the new address, persists it, the data nodes are
/// reconfigured, and the old master is turned into a replica when it returns.
#[test]
#[ignore = "failover engine arrives with the consensus milestone: SENTINEL FAILOVER answers `failover not available in this build`; run with --ignored"]
fn automatic_failover_after_master_dies() {
    let mut topo = Topology::new(2);
    let old_port = topo.master.port;
    let m = [monitor(old_port, 2)];
    let daemons: Vec<SentinelProc> = (0..3).map(|_| SentinelProc::raftinel(&m)).collect();
    for d in &daemons {
        wait_healthy_replicas(d, 2);
        eventually(&format!("daemon {} sees both peers", d.port), || {
            match d.master_field(MASTER, "num-other-sentinels").as_deref() {
                Some("2") => Ok(()),
                other => Err(format!("num-other-sentinels {other:?}")),
            }
        });
    }
    let mut subs: Vec<Conn> = daemons
        .iter()
        .map(|d| d.subscribe(&["+switch-master"]))
        .collect();
    topo.master.sigkill();

    let mut new_ports = Vec::new();
    for (d, sub) in daemons.iter().zip(subs.iter_mut()) {
        let msg = sub
            .wait_message("+switch-master", FAILOVER_BOUND, |_| true)
            .unwrap_or_else(|e| panic!("daemon {}: {e}", d.port));
        let (old_ip, old, new_ip, new) = parse_switch(&msg.payload);
        assert_eq!((old_ip.as_str(), old), ("127.0.0.1", old_port));
        assert_eq!(new_ip, "127.0.0.1");
        assert!(
            topo.replicas.iter().any(|r| r.port == new),
            "promoted {new} is not one of the replicas"
        );
        new_ports.push(new);
    }
    let new_port = new_ports[0];
    assert!(
        new_ports.iter().all(|p| *p == new_port),
        "daemons disagree on the new master: {new_ports:?}"
    );

    for d in &daemons {
        assert_eq!(
            d.conn()
                .cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]),
            Resp::Array(vec![
                Resp::bulk("127.0.0.1"),
                Resp::bulk(&new_port.to_string())
            ]),
            "daemon {} after +switch-master",
            d.port
        );
        let want = format!("sentinel monitor {MASTER} 127.0.0.1 {new_port} 2");
        eventually(
            &format!("daemon {} persisted the new master", d.port),
            || {
                let text = d.conf_text();
                if text.lines().any(|l| l == want) {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        );
        let epoch = d.master_field(MASTER, "config-epoch").unwrap_or_default();
        assert!(
            epoch.parse::<u64>().unwrap_or(0) >= 1,
            "config-epoch after a failover: {epoch:?}"
        );
    }
    assert_data_nodes_follow(&topo, new_port);

    // The old master comes back (empty, new run id) and is demoted.
    topo.master.restart();
    eventually("old master converted to a replica of the new one", || {
        let info = topo.master.info("replication");
        if info_field(&info, "role").as_deref() == Some("slave")
            && info_field(&info, "master_port") == Some(new_port.to_string())
        {
            Ok(())
        } else {
            Err(info)
        }
    });
    for d in &daemons {
        eventually(
            &format!("daemon {} lists the old master as replica", d.port),
            || {
                let names: Vec<String> = d
                    .descriptions("REPLICAS", MASTER)
                    .iter()
                    .filter_map(|r| r.field("name"))
                    .collect();
                if names.contains(&format!("127.0.0.1:{old_port}")) {
                    Ok(())
                } else {
                    Err(format!("{names:?}"))
                }
            },
        );
    }
}

/// `SENTINEL FAILOVER` on a single daemon: `+OK`, `-INPROG` while running,
/// then `+switch-master` to a replica and the new address everywhere.
#[test]
#[ignore = "failover engine arrives with the consensus milestone: SENTINEL FAILOVER answers `failover not available in this build`; run with --ignored"]
fn manual_failover() {
    let topo = Topology::new(2);
    let old_port = topo.master.port;
    let d = SentinelProc::raftinel(&[monitor(old_port, 1)]);
    wait_healthy_replicas(&d, 2);
    let mut sub = d.subscribe(&["+switch-master"]);
    let mut c = d.conn();
    assert_eq!(
        c.cmd(&["SENTINEL", "FAILOVER", MASTER]),
        Resp::Status("OK".into())
    );
    assert_eq!(
        c.cmd(&["SENTINEL", "FAILOVER", MASTER]),
        Resp::Error("INPROG Failover already in progress".into())
    );
    let msg = sub
        .wait_message("+switch-master", FAILOVER_BOUND, |_| true)
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, old, _, new_port) = parse_switch(&msg.payload);
    assert_eq!(old, old_port);
    assert_eq!(
        c.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]),
        Resp::Array(vec![
            Resp::bulk("127.0.0.1"),
            Resp::bulk(&new_port.to_string())
        ])
    );
    assert_data_nodes_follow(&topo, new_port);
    // The old master, still running, is reconfigured as a replica.
    eventually("old master demoted", || {
        let info = topo.master.info("replication");
        if info_field(&info, "role").as_deref() == Some("slave")
            && info_field(&info, "master_port") == Some(new_port.to_string())
        {
            Ok(())
        } else {
            Err(info)
        }
    });
}

/// `SENTINEL FAILOVER` with no replica: `-NOGOODSLAVE`, master unchanged.
#[test]
fn manual_failover_without_replicas() {
    let topo = Topology::new(0);
    let d = SentinelProc::raftinel(&[monitor(topo.master.port, 1)]);
    eventually("master INFO received", || {
        match d.master_field(MASTER, "role-reported").as_deref() {
            Some("master") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(
        d.conn().cmd(&["SENTINEL", "FAILOVER", MASTER]),
        Resp::Error("NOGOODSLAVE No suitable replica to promote".into())
    );
    assert_eq!(
        d.conn()
            .cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]),
        Resp::Array(vec![
            Resp::bulk("127.0.0.1"),
            Resp::bulk(&topo.master.port.to_string())
        ])
    );
}
