//! Rust Sentinel clients through real failovers of a three-daemon raftinel
//! group: the `redis` crate's `sentinel` module (1.8.1, the crate the daemon
//! itself uses, here with its `sentinel` feature) with RESP2 and with RESP3
//! sentinel connections, and `fred` 10.1.0 (`sentinel-client`).
//!
//! Each client writes (`RPUSH` of increasing integers, one list per client)
//! while the master is SIGKILLed, or while `SENTINEL FAILOVER mymaster` runs.
//! After the group switched, each client must resolve the new master's
//! address again and keep writing: every write it acknowledged after the
//! switch is on the new master. How each client finds the master is its own
//! (redis-rs: ROLE on the sentinel, SENTINEL MASTERS, ROLE on the master, a
//! fresh discovery on each reconnect; fred: GET-MASTER-ADDR-BY-NAME, ROLE on
//! the master, SENTINEL SENTINELS replacing its sentinel list, reconnecting
//! on its own after a drop). After the switch, redis-rs's replica discovery
//! (SENTINEL SLAVES, ROLE slave on each candidate) must find a replica of
//! the new master holding those writes. Every wait is bounded.

use crate::harness::group::*;
use crate::harness::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One acknowledged write.
#[derive(Clone, Debug)]
struct Ack {
    value: u64,
    /// The data node the client said it was connected to.
    port: u16,
    /// Sent after the test saw the failover complete.
    after_switch: bool,
}

#[derive(Default, Debug)]
struct Log {
    acks: Vec<Ack>,
    /// Master ports resolved through the sentinels, in order (deduplicated
    /// runs).
    resolved: Vec<u16>,
    errors: Vec<String>,
}

impl Log {
    fn resolved(&mut self, port: u16) {
        if self.resolved.last() != Some(&port) {
            self.resolved.push(port);
        }
    }

    fn error(&mut self, e: String) {
        if self.errors.len() < 40 {
            self.errors.push(e);
        }
    }
}

/// A client writing in a task of the test's tokio runtime.
struct Writer {
    name: &'static str,
    key: String,
    log: Arc<Mutex<Log>>,
}

/// What every writer shares with the test.
#[derive(Clone)]
struct Flags {
    stop: Arc<AtomicBool>,
    switched: Arc<AtomicBool>,
}

/// Writes are paced so three writers stay light on a loaded 2-core CI.
const PACE: Duration = Duration::from_millis(5);
/// Bound for one client call (connect, discovery or command).
const CALL: Duration = Duration::from_secs(3);

async fn redis_rs_writer(
    sentinels: Vec<u16>,
    proto: redis::ProtocolVersion,
    key: String,
    log: Arc<Mutex<Log>>,
    flags: Flags,
) {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    use redis::ConnectionAddr;
    let addrs = sentinels
        .iter()
        .map(|p| ConnectionAddr::Tcp("127.0.0.1".into(), *p));
    let mut sc = match SentinelClientBuilder::new(addrs, MASTER, SentinelServerType::Master)
        .map(|b| {
            b.set_client_to_sentinel_protocol(proto)
                .set_client_to_redis_protocol(proto)
        })
        .and_then(|b| b.build())
    {
        Ok(sc) => sc,
        Err(e) => {
            log.lock().unwrap().error(format!("build: {e}"));
            return;
        }
    };
    let mut next = 0u64;
    while !flags.stop.load(Ordering::SeqCst) {
        // A full discovery, as the crate does on every get_*connection call.
        let client = match tokio::time::timeout(CALL, sc.async_get_client()).await {
            Ok(Ok(c)) => c,
            other => {
                log.lock().unwrap().error(format!("discovery: {other:?}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let port = match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(_, p) => *p,
            other => {
                log.lock().unwrap().error(format!("address: {other:?}"));
                return;
            }
        };
        log.lock().unwrap().resolved(port);
        let mut conn =
            match tokio::time::timeout(CALL, client.get_multiplexed_async_connection()).await {
                Ok(Ok(c)) => c,
                other => {
                    log.lock()
                        .unwrap()
                        .error(format!("connect {port}: {other:?}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
        while !flags.stop.load(Ordering::SeqCst) {
            next += 1;
            let after_switch = flags.switched.load(Ordering::SeqCst);
            let r = tokio::time::timeout(
                CALL,
                redis::cmd("RPUSH")
                    .arg(&key)
                    .arg(next)
                    .query_async::<i64>(&mut conn),
            )
            .await;
            match r {
                Ok(Ok(_)) => log.lock().unwrap().acks.push(Ack {
                    value: next,
                    port,
                    after_switch,
                }),
                other => {
                    log.lock()
                        .unwrap()
                        .error(format!("RPUSH on {port}: {other:?}"));
                    break;
                }
            }
            tokio::time::sleep(PACE).await;
        }
    }
}

async fn fred_writer(sentinels: Vec<u16>, key: String, log: Arc<Mutex<Log>>, flags: Flags) {
    use fred::prelude::*;
    use fred::types::config::Server;
    let config = Config {
        server: ServerConfig::Sentinel {
            hosts: sentinels
                .iter()
                .map(|p| Server::new("127.0.0.1", *p))
                .collect(),
            service_name: MASTER.into(),
        },
        ..Default::default()
    };
    // fred reconnects (through the sentinels) only with a reconnect policy;
    // 0 attempts = forever.
    let client = match Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = CALL;
            c.internal_command_timeout = CALL;
        })
        .with_performance_config(|p| p.default_command_timeout = CALL)
        .set_policy(ReconnectPolicy::new_constant(0, 100))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log.lock().unwrap().error(format!("build: {e}"));
            return;
        }
    };
    let port_of = |c: &Client| c.active_connections().first().map(|s| s.port);
    // init() fails if the first connection does; the policy covers later ones.
    while !flags.stop.load(Ordering::SeqCst) {
        match tokio::time::timeout(CALL * 2, client.init()).await {
            Ok(Ok(_)) => break,
            other => {
                log.lock().unwrap().error(format!("init: {other:?}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let mut next = 0u64;
    while !flags.stop.load(Ordering::SeqCst) {
        next += 1;
        let after_switch = flags.switched.load(Ordering::SeqCst);
        let r = tokio::time::timeout(CALL, client.rpush::<i64, _, _>(&key, next)).await;
        let port = port_of(&client);
        let failed = {
            let mut l = log.lock().unwrap();
            if let Some(p) = port {
                l.resolved(p);
            }
            match (r, port) {
                (Ok(Ok(_)), Some(port)) => {
                    l.acks.push(Ack {
                        value: next,
                        port,
                        after_switch,
                    });
                    false
                }
                (other, port) => {
                    l.error(format!("RPUSH (connected to {port:?}): {other:?}"));
                    true
                }
            }
        };
        if failed {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(PACE).await;
    }
    let _ = tokio::time::timeout(CALL, client.quit()).await;
}

/// How the master goes away.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Failover {
    /// SIGKILL of the master.
    Kill,
    /// `SENTINEL FAILOVER mymaster` on one daemon; the old master stays up.
    Manual,
}

/// Send `SENTINEL FAILOVER` until the group takes it (`-NOQUORUM` only means
/// the master is not registered in the group yet) and expect `+OK`.
fn request_failover(d: &Daemon) {
    let r = wait_for(BOUND, "SENTINEL FAILOVER accepted", || {
        let r = d.conn().cmd(&["SENTINEL", "FAILOVER", MASTER]);
        match &r {
            Resp::Error(e) if e.starts_with("NOQUORUM") => Err(e.clone()),
            _ => Ok(r),
        }
    });
    assert_eq!(r, Resp::Status("OK".into()), "SENTINEL FAILOVER");
}

/// Acknowledged writes a client needs before and after the switch.
const WRITES: usize = 30;

fn rust_clients_through(kind: Failover) {
    let mut g = Group::new();
    let mut ev = g.subscribe(&[0, 1, 2]);
    let sentinels: Vec<u16> = g.daemons.iter().map(|d| d.port).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let flags = Flags {
        stop: Arc::new(AtomicBool::new(false)),
        switched: Arc::new(AtomicBool::new(false)),
    };
    let mut writers = Vec::new();
    let mut tasks = Vec::new();
    for (name, proto) in [
        ("redis-rs (RESP2)", Some(redis::ProtocolVersion::RESP2)),
        ("redis-rs (RESP3)", Some(redis::ProtocolVersion::RESP3)),
        ("fred", None),
    ] {
        let key = format!("it-rust-{}", writers.len());
        let log = Arc::new(Mutex::new(Log::default()));
        let (s, k, l, f) = (sentinels.clone(), key.clone(), log.clone(), flags.clone());
        tasks.push(match proto {
            Some(p) => rt.spawn(redis_rs_writer(s, p, k, l, f)),
            None => rt.spawn(fred_writer(s, k, l, f)),
        });
        writers.push(Writer { name, key, log });
    }
    let summary = |w: &Writer| {
        let l = w.log.lock().unwrap();
        let last: Vec<String> = l
            .acks
            .iter()
            .rev()
            .take(3)
            .map(|a| format!("{a:?}"))
            .collect();
        format!(
            "{}: {} acks (last {last:?}), resolved {:?}, errors {:#?}",
            w.name,
            l.acks.len(),
            l.resolved,
            l.errors
        )
    };
    for w in &writers {
        wait_for(
            BOUND,
            &format!("{} writes to the old master", w.name),
            || {
                let n = w
                    .log
                    .lock()
                    .unwrap()
                    .acks
                    .iter()
                    .filter(|a| a.port == g.old_port)
                    .count();
                if n >= WRITES {
                    Ok(())
                } else {
                    Err(summary(w))
                }
            },
        );
    }

    match kind {
        Failover::Kill => g.topo.master.sigkill(),
        Failover::Manual => request_failover(&g.daemons[1]),
    }
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    if kind == Failover::Manual {
        // From here the old master is a read-only replica: any write
        // acknowledged later was acknowledged by the new master.
        g.expect_old_master_follows(new_port);
    }
    flags.switched.store(true, Ordering::SeqCst);

    for w in &writers {
        wait_for(
            BOUND,
            &format!("{} resolves {} and writes there", w.name, addr(new_port)),
            || {
                let l = w.log.lock().unwrap();
                let after = l
                    .acks
                    .iter()
                    .filter(|a| a.after_switch && a.port == new_port)
                    .count();
                if after >= WRITES && l.resolved.last() == Some(&new_port) {
                    Ok(())
                } else {
                    drop(l);
                    Err(summary(w))
                }
            },
        );
    }
    flags.stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    });

    let new_master = g.topo.node(new_port);
    for w in &writers {
        let l = w.log.lock().unwrap();
        let wrong: Vec<&Ack> = l
            .acks
            .iter()
            .filter(|a| a.after_switch && a.port != new_port)
            .collect();
        assert!(
            wrong.is_empty(),
            "{}: writes acknowledged after the switch by another node than {new_port}: {wrong:?}",
            w.name
        );
        let list = new_master.conn().cmd(&["LRANGE", &w.key, "0", "-1"]);
        let have: BTreeSet<u64> = list
            .items()
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
            .collect();
        let missing: Vec<u64> = l
            .acks
            .iter()
            .filter(|a| a.after_switch && !have.contains(&a.value))
            .map(|a| a.value)
            .collect();
        assert!(
            missing.is_empty(),
            "{}: {} write(s) acknowledged after the switch are not on the new master {new_port}: {:?}",
            w.name,
            missing.len(),
            &missing[..missing.len().min(20)]
        );
        eprintln!(
            "{}: {} acknowledged writes ({} after the switch), resolved {:?}",
            w.name,
            l.acks.len(),
            l.acks.iter().filter(|a| a.after_switch).count(),
            l.resolved
        );
    }

    // redis-rs's replica discovery (SENTINEL SLAVES, ROLE slave on each
    // candidate) after the switch: a replica of the new master, which has
    // the writes acknowledged after the switch.
    let last = writers[0]
        .log
        .lock()
        .unwrap()
        .acks
        .iter()
        .filter(|a| a.after_switch)
        .map(|a| a.value)
        .max()
        .unwrap_or_default();
    let mut candidates: BTreeSet<u16> = g.replica_ports().into_iter().collect();
    candidates.remove(&new_port);
    if kind == Failover::Manual {
        candidates.insert(g.old_port);
    }
    let key = writers[0].key.clone();
    let replica = wait_for(BOUND, "redis-rs replica discovery", || {
        rt.block_on(redis_rs_replica_read(sentinels.clone(), &key, last))
    });
    assert!(
        candidates.contains(&replica),
        "redis-rs picked {replica} as a replica; expected one of {candidates:?}"
    );
    eprintln!("redis-rs replica discovery: {replica} (candidates {candidates:?})");
    rt.shutdown_timeout(Duration::from_secs(5));
}

/// One redis-rs replica discovery (RESP3): the replica's port once it has
/// `value` in `key`.
async fn redis_rs_replica_read(sentinels: Vec<u16>, key: &str, value: u64) -> Result<u16, String> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    use redis::ConnectionAddr;
    let addrs = sentinels
        .iter()
        .map(|p| ConnectionAddr::Tcp("127.0.0.1".into(), *p));
    let mut sc = SentinelClientBuilder::new(addrs, MASTER, SentinelServerType::Replica)
        .map(|b| {
            b.set_client_to_sentinel_protocol(redis::ProtocolVersion::RESP3)
                .set_client_to_redis_protocol(redis::ProtocolVersion::RESP3)
        })
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let client = tokio::time::timeout(CALL, sc.async_get_client())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let port = match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(_, p) => *p,
        other => return Err(format!("{other:?}")),
    };
    let mut conn = tokio::time::timeout(CALL, client.get_multiplexed_async_connection())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let role: redis::Role = tokio::time::timeout(CALL, redis::cmd("ROLE").query_async(&mut conn))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if !matches!(role, redis::Role::Replica { .. }) {
        return Err(format!("{port}: ROLE {role:?}"));
    }
    let list: Vec<u64> = tokio::time::timeout(
        CALL,
        redis::cmd("LRANGE")
            .arg(key)
            .arg(-1)
            .arg(-1)
            .query_async(&mut conn),
    )
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if list.first().is_some_and(|v| *v >= value) {
        Ok(port)
    } else {
        Err(format!("{port}: last element {list:?}, want >= {value}"))
    }
}

/// redis-rs (RESP2 and RESP3) and fred writing while the master is SIGKILLed.
#[test]
fn rust_clients_follow_sigkill_failover() {
    rust_clients_through(Failover::Kill);
}

/// redis-rs (RESP2 and RESP3) and fred writing through `SENTINEL FAILOVER`.
#[test]
fn rust_clients_follow_manual_failover() {
    rust_clients_through(Failover::Manual);
}
