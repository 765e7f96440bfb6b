//! The kubelet's probes, served on the admin listener:
//!
//! - `/healthz` (liveness, startup): process-local. 200 while the core was
//!   ticked within [`STALL_AFTER`]; never depends on quorum, peers or Redis,
//!   so a partition never restarts a daemon.
//! - `/readyz` (the raftinel container's readiness): the daemon can answer
//!   clients correctly: its Raft state is loaded, it is a voter, it heard
//!   from its leader within the lease, and every master has a committed
//!   address. A daemon cut off from the majority leaves the client Service.
//! - `/readyz/redis?max-lag-bytes=N` (the redis container's readiness): this
//!   pod's Redis is the committed master, or a replica of it that is linked,
//!   not syncing and at most N bytes behind. A stale master is never Ready.
//!
//! The decisions ([`daemon_ready`], [`redis_ready`]) are pure functions of
//! the status snapshot and the INFO texts, tested on their own; the handlers
//! gather the inputs (this pod's Redis and the committed master are asked
//! for a fresh `INFO replication`, each under a deadline).

use std::collections::HashMap;
use std::time::Duration;

use hyper::StatusCode;

use super::status::{Addr, MasterStatus, Status};
use super::Handles;
use crate::core::instance::Role;
use crate::observe::admin::Page;

/// The liveness probe fails when the core was not ticked for this long.
pub const STALL_AFTER: Duration = Duration::from_secs(10);
/// `max-lag-bytes` when the query does not give one.
pub const DEFAULT_MAX_LAG: u64 = 1024 * 1024;
/// How long each INFO a probe asks may take (the kubelet's timeout is 2 s).
const INFO_TIMEOUT: Duration = Duration::from_millis(800);

/// Where Redis is pointed while the group cannot say whom it follows: an
/// address that never answers, so it stays a read-only replica of nothing
/// (never a master) until the daemons re-point it.
pub const NOTHING: (&str, u16) = ("127.0.0.1", 1);

/// Why the daemon is not ready, if it is not.
pub fn daemon_ready(s: &Status) -> Result<(), String> {
    let g = &s.group;
    if !g.running || !g.loaded {
        return Err("loading".into());
    }
    if !g.voter {
        return Err("not a voter".into());
    }
    if !g.has_leader() {
        return Err(match g.leader_heard_ms {
            Some(ms) if g.leader.is_some() => format!("no leader for {ms} ms"),
            _ => "no leader".into(),
        });
    }
    if let Some(m) = s.masters.iter().find(|m| m.committed.is_none()) {
        return Err(format!("no committed master for {}", m.name));
    }
    Ok(())
}

/// This pod's Redis as its own `INFO replication` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub role: Role,
    pub master: Option<Addr>,
    pub link_up: bool,
    pub syncing: bool,
    pub offset: u64,
}

impl Local {
    pub fn parse(info: &str) -> Local {
        let p = crate::core::info::parse(info, false);
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .map(str::trim)
        };
        Local {
            role: p.role.unwrap_or(Role::Unknown),
            master: match (p.master_host, p.master_port) {
                (Some(host), Some(port)) => Some(Addr {
                    host,
                    port: u16::try_from(port).unwrap_or(0),
                }),
                _ => None,
            },
            link_up: p.master_link_up.unwrap_or(false),
            syncing: field("master_sync_in_progress") == Some("1"),
            offset: p.slave_repl_offset.or(p.master_repl_offset).unwrap_or(0),
        }
    }
}

fn same_addr(a: &Addr, b: &Addr) -> bool {
    a.port == b.port && a.host.eq_ignore_ascii_case(&b.host)
}

/// Why this pod's Redis (`local`) is not ready, if it is not. `master` is
/// the master's status, `has_leader` whether the daemon is in touch with
/// its leader, `master_offset` the committed master's `master_repl_offset`.
pub fn redis_ready(
    master: &MasterStatus,
    has_leader: bool,
    local: &Local,
    master_offset: Option<u64>,
    max_lag: u64,
) -> Result<(), String> {
    if !has_leader {
        return Err("no leader".into());
    }
    let Some(committed) = &master.committed else {
        return Err("no committed master".into());
    };
    match local.role {
        Role::Master if master.this_pod => Ok(()),
        Role::Master => Err(format!("master, but the committed master is {committed}")),
        Role::Unknown => Err("role unknown".into()),
        Role::Slave => {
            let nothing = Addr {
                host: NOTHING.0.into(),
                port: NOTHING.1,
            };
            match &local.master {
                Some(a) if same_addr(a, &nothing) => return Err("replica of nothing".into()),
                Some(a) if !same_addr(a, committed) => {
                    return Err(format!(
                        "replica of {a}, the committed master is {committed}"
                    ))
                }
                None => return Err("replica of nothing".into()),
                Some(_) => {}
            }
            if !local.link_up {
                return Err("link down".into());
            }
            if local.syncing {
                return Err("sync in progress".into());
            }
            let Some(mo) = master_offset else {
                return Err("lag unknown: the committed master does not answer".into());
            };
            let lag = mo.saturating_sub(local.offset);
            if lag > max_lag {
                return Err(format!("lag {lag} bytes"));
            }
            Ok(())
        }
    }
}

fn not_ready(why: &str) -> Page {
    Page {
        status: StatusCode::SERVICE_UNAVAILABLE,
        content_type: "text/plain",
        body: format!("not ready: {why}\n"),
    }
}

fn ready() -> Page {
    Page::text("ready\n")
}

/// `/healthz`.
pub async fn healthz(h: Handles) -> Page {
    // The core is locked only for short sections; one held for seconds is
    // a stall too.
    let mut last = None;
    for _ in 0..200 {
        last = h.core.try_lock().map(|core| core.last_tick());
        if last.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Some(last) = last else {
        return Page {
            status: StatusCode::SERVICE_UNAVAILABLE,
            content_type: "text/plain",
            body: "stalled: the core stayed locked for 2 s\n".into(),
        };
    };
    let ago = h.core.now().saturating_sub(last);
    if ago > STALL_AFTER.as_millis() as u64 {
        return Page {
            status: StatusCode::SERVICE_UNAVAILABLE,
            content_type: "text/plain",
            body: format!("stalled: last tick {ago} ms ago\n"),
        };
    }
    Page::text("ok\n")
}

/// `/readyz`.
pub fn readyz(h: &Handles) -> Page {
    match daemon_ready(&super::status::snapshot(h)) {
        Ok(()) => ready(),
        Err(why) => not_ready(&why),
    }
}

/// The `max-lag-bytes` of a query string; None when it is not a number.
pub fn max_lag(query: &HashMap<String, String>) -> Option<u64> {
    match query.get("max-lag-bytes") {
        None => Some(DEFAULT_MAX_LAG),
        Some(v) => v.parse().ok(),
    }
}

/// `/readyz/redis`.
pub async fn readyz_redis(h: Handles, query: HashMap<String, String>) -> Page {
    let Some(max_lag) = max_lag(&query) else {
        return Page {
            status: StatusCode::BAD_REQUEST,
            content_type: "text/plain",
            body: "max-lag-bytes must be a number of bytes\n".into(),
        };
    };
    let status = super::status::snapshot(&h);
    // One master per set: the first (the pod's Redis listens on its port).
    let Some(master) = status.masters.first().cloned() else {
        return not_ready("no master is monitored");
    };
    let auth = master_auth(&h, &master.name);
    let host = status
        .announce_ip
        .clone()
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = master
        .committed
        .as_ref()
        .map_or(master.configured.port, |a| a.port);
    let own = crate::core::event::format_addr(&host, port);
    if master.fenced.iter().any(|f| f.eq_ignore_ascii_case(&own)) {
        return not_ready(&format!(
            "fenced ({own} is in fenced-nodes of {})",
            master.name
        ));
    }
    let info = super::client::call_one(&host, port, &auth, &["INFO", "replication"], INFO_TIMEOUT)
        .await
        .and_then(super::client::text);
    let local = match info {
        Ok(text) => Local::parse(&text),
        Err(e) => return not_ready(&format!("redis at {host}:{port} does not answer: {e}")),
    };
    let master_offset = match (&local.role, &master.committed) {
        (Role::Slave, Some(c)) => super::client::call_one(
            &c.host,
            c.port,
            &auth,
            &["INFO", "replication"],
            INFO_TIMEOUT,
        )
        .await
        .and_then(super::client::text)
        .ok()
        .and_then(|t| crate::core::info::parse(&t, true).master_repl_offset),
        _ => None,
    };
    match redis_ready(
        &master,
        status.group.has_leader(),
        &local,
        master_offset,
        max_lag,
    ) {
        Ok(()) => ready(),
        Err(why) => not_ready(&why),
    }
}

/// The gauges the alert rules read: `raftinel_raft_has_leader` (the
/// leader heard within the lease, as `/readyz` requires) and, per master,
/// `raftinel_master_committed` (the group has a committed address for it)
/// and `raftinel_fenced_nodes` (its committed fenced set's size).
pub fn export_metrics(s: &Status) {
    metrics::gauge!("raftinel_raft_has_leader").set(if s.group.has_leader() { 1.0 } else { 0.0 });
    for m in &s.masters {
        metrics::gauge!("raftinel_master_committed", "master" => m.name.clone())
            .set(if m.committed.is_some() { 1.0 } else { 0.0 });
        metrics::gauge!("raftinel_fenced_nodes", "master" => m.name.clone())
            .set(m.fenced.len() as f64);
    }
}

/// The credentials the daemon uses for a master's nodes.
pub fn master_auth(h: &Handles, name: &str) -> crate::core::LinkAuth {
    let core = h.core.lock();
    core.masters
        .get(name)
        .map(|m| crate::core::LinkAuth {
            user: m.auth_user.clone(),
            pass: m.auth_pass.clone(),
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::status::{Group, LastFailover};
    use super::*;

    fn group(voter: bool, heard: Option<u64>) -> Group {
        Group {
            running: true,
            loaded: true,
            voter,
            leader: Some(super::super::status::Daemon::default()),
            leader_heard_ms: heard,
            lease_ms: 1000,
            ..Group::default()
        }
    }

    fn master(committed: Option<&str>, this_pod: bool) -> MasterStatus {
        MasterStatus {
            name: "mymaster".into(),
            committed: committed.map(|h| Addr {
                host: h.into(),
                port: 6379,
            }),
            configured: Addr {
                host: "raftinel-0".into(),
                port: 6379,
            },
            config_epoch: 0,
            history: None,
            failover: None,
            last_failover: None::<LastFailover>,
            fenced: Vec::new(),
            this_pod,
            nodes: vec![],
            sentinels: vec![],
        }
    }

    #[test]
    fn daemon_readiness() {
        let mut s = Status {
            group: group(true, Some(200)),
            masters: vec![master(Some("raftinel-0"), false)],
            ..Status::default()
        };
        assert_eq!(daemon_ready(&s), Ok(()));
        s.group.leader_heard_ms = Some(1500);
        assert_eq!(daemon_ready(&s).unwrap_err(), "no leader for 1500 ms");
        s.group.leader_heard_ms = None;
        assert_eq!(daemon_ready(&s).unwrap_err(), "no leader");
        s.group = group(false, Some(1));
        assert_eq!(daemon_ready(&s).unwrap_err(), "not a voter");
        s.group.loaded = false;
        assert_eq!(daemon_ready(&s).unwrap_err(), "loading");
        s.group = group(true, Some(1));
        s.masters.push(master(None, false));
        assert_eq!(
            daemon_ready(&s).unwrap_err(),
            "no committed master for mymaster"
        );
    }

    const REPLICA: &str =
        "# Replication\r\nrole:slave\r\nmaster_host:raftinel-0\r\nmaster_port:6379\r\n\
        master_link_status:up\r\nmaster_sync_in_progress:0\r\nslave_repl_offset:1000\r\n\
        master_replid:abc\r\nmaster_repl_offset:1000\r\n";

    #[test]
    fn redis_readiness() {
        let m = master(Some("raftinel-0"), false);
        let replica = Local::parse(REPLICA);
        assert_eq!(replica.offset, 1000);
        assert_eq!(redis_ready(&m, true, &replica, Some(1500), 1000), Ok(()));
        assert_eq!(
            redis_ready(&m, true, &replica, Some(3000), 1000).unwrap_err(),
            "lag 2000 bytes"
        );
        assert_eq!(
            redis_ready(&m, false, &replica, Some(1000), 1000).unwrap_err(),
            "no leader"
        );
        let other = master(Some("raftinel-2"), false);
        assert_eq!(
            redis_ready(&other, true, &replica, Some(1000), 1000).unwrap_err(),
            "replica of raftinel-0:6379, the committed master is raftinel-2:6379"
        );
        let down = Local::parse(&REPLICA.replace("link_status:up", "link_status:down"));
        assert_eq!(
            redis_ready(&m, true, &down, Some(1000), 1000).unwrap_err(),
            "link down"
        );
        let syncing = Local::parse(&REPLICA.replace("sync_in_progress:0", "sync_in_progress:1"));
        assert_eq!(
            redis_ready(&m, true, &syncing, Some(1000), 1000).unwrap_err(),
            "sync in progress"
        );
        let nothing = Local::parse(
            &REPLICA
                .replace("master_host:raftinel-0", "master_host:127.0.0.1")
                .replace("master_port:6379", "master_port:1"),
        );
        assert_eq!(
            redis_ready(&m, true, &nothing, Some(1000), 1000).unwrap_err(),
            "replica of nothing"
        );
        // A master is ready only as the committed master: a stale one never.
        let as_master = Local::parse("role:master\r\nmaster_repl_offset:5\r\n");
        assert_eq!(
            redis_ready(&m, true, &as_master, None, 1000).unwrap_err(),
            "master, but the committed master is raftinel-0:6379"
        );
        let mine = master(Some("raftinel-0"), true);
        assert_eq!(redis_ready(&mine, true, &as_master, None, 1000), Ok(()));
        assert_eq!(
            redis_ready(&master(None, false), true, &as_master, None, 1000).unwrap_err(),
            "no committed master"
        );
    }

    #[test]
    fn max_lag_from_the_query() {
        let q = |v: &str| HashMap::from([("max-lag-bytes".to_string(), v.to_string())]);
        assert_eq!(max_lag(&HashMap::new()), Some(DEFAULT_MAX_LAG));
        assert_eq!(max_lag(&q("10")), Some(10));
        assert_eq!(max_lag(&q("x")), None);
        assert_eq!(max_lag(&q("-1")), None);
    }
}
