//! This pod's Redis is re-pointed at the committed master by the daemon of
//! its pod when the failover engine cannot be counted on to do it:
//!
//! - a replica of nothing (`boot-redis` started it so because the group
//!   could not answer then) as soon as the daemon is in touch with its
//!   leader and the committed master is another pod, as boot-redis would
//!   have;
//! - a replica of another address that stayed so for [`PATIENCE`] times the
//!   master's failover-timeout with no failover running. The leader's
//!   +fix-slave-config re-points the replicas it knows after one
//!   failover-timeout, but like Sentinel it learns replicas from the
//!   master's INFO only: a Redis booted as a replica of a master that was
//!   switched over before the group saw it stays, unseen, a replica of a
//!   replica (the old master, once that follows the new one).
//!
//! Nothing else is touched: a Redis that is the committed master but was
//! started as a replica of nothing (its data did not match the recorded
//! history) stays so until the group promotes another pod.

use std::time::Duration;

use tokio::time::Instant;

use super::probe::{Local, NOTHING};
use super::status::{Addr, MasterStatus, Status};
use super::Handles;
use crate::core::instance::Role;

const EVERY: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(800);
/// A replica of another address is re-pointed after this many
/// failover-timeouts (the leader's +fix-slave-config comes after one).
pub const PATIENCE: u32 = 2;

/// What this pod's Redis follows, as far as re-pointing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follows {
    /// The committed master, or nothing to do (a master, or no committed
    /// master, or the committed master is this pod).
    Fine,
    /// A replica of nothing: re-pointed at once.
    Nothing,
    /// A replica of this other address: re-pointed once it stayed so.
    Other(Addr),
}

/// What the Redis described by `local` follows, given the master's status
/// (`has_leader`: the daemon is in touch with its leader).
pub fn follows(local: &Local, m: &MasterStatus, has_leader: bool) -> Follows {
    let Some(committed) = m.committed.as_ref().filter(|_| has_leader && !m.this_pod) else {
        return Follows::Fine;
    };
    if local.role != Role::Slave {
        return Follows::Fine;
    }
    let same =
        |a: &Addr, host: &str, port: u16| a.port == port && a.host.eq_ignore_ascii_case(host);
    match &local.master {
        None => Follows::Nothing,
        Some(a) if same(a, NOTHING.0, NOTHING.1) => Follows::Nothing,
        Some(a) if same(a, &committed.host, committed.port) => Follows::Fine,
        Some(a) => Follows::Other(a.clone()),
    }
}

/// Whether to re-point now: a replica of nothing at once; a replica of
/// another address once it followed that same address for `patience` with
/// no failover running (`since`: when it was first seen following it).
pub fn due(
    f: &Follows,
    m: &MasterStatus,
    since: Option<Instant>,
    now: Instant,
    patience: Duration,
) -> bool {
    match f {
        Follows::Fine => false,
        Follows::Nothing => true,
        Follows::Other(_) => {
            m.failover.is_none()
                && since.is_some_and(|t| now.saturating_duration_since(t) >= patience)
        }
    }
}

/// Runs until the daemon shuts down.
pub async fn run(h: Handles) {
    let mut last_error: Option<String> = None;
    // The other address this pod's Redis follows, and since when.
    let mut other: Option<(Addr, Instant)> = None;
    loop {
        tokio::select! {
            _ = h.shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match once(&h, &mut other).await {
            Ok(Some(line)) => {
                tracing::warn!("{line}");
                last_error = None;
            }
            Ok(None) => last_error = None,
            Err(e) => {
                if last_error.as_deref() != Some(e.as_str()) {
                    tracing::info!("{e}");
                    last_error = Some(e);
                }
            }
        }
    }
}

/// One look; the log line of a re-pointing, if one was made.
async fn once(h: &Handles, other: &mut Option<(Addr, Instant)>) -> Result<Option<String>, String> {
    let s: Status = super::status::snapshot(h);
    let Some(m) = s.masters.first() else {
        *other = None;
        return Ok(None);
    };
    let Some(host) = s.announce_ip.clone() else {
        return Ok(None);
    };
    let Some(committed) = m.committed.clone() else {
        *other = None;
        return Ok(None);
    };
    let auth = super::probe::master_auth(h, &m.name);
    let info = super::client::call_one(
        &host,
        committed.port,
        &auth,
        &["INFO", "replication"],
        TIMEOUT,
    )
    .await
    .and_then(super::client::text);
    // This pod's Redis not answering (starting, or loading) is the probe's
    // to report; try again later.
    let Ok(info) = info else { return Ok(None) };
    let f = follows(&Local::parse(&info), m, s.group.has_leader());
    let now = Instant::now();
    match &f {
        Follows::Other(a) if other.as_ref().is_some_and(|(o, _)| o == a) => {}
        Follows::Other(a) => *other = Some((a.clone(), now)),
        _ => *other = None,
    }
    let patience = {
        let core = h.core.lock();
        core.masters
            .get(&m.name)
            .map_or(0, |mm| mm.failover_timeout)
    };
    let patience = Duration::from_millis(patience).saturating_mul(PATIENCE);
    if !due(&f, m, other.as_ref().map(|(_, t)| *t), now, patience) {
        return Ok(None);
    }
    let was = match &f {
        Follows::Other(a) => format!("was a replica of {a}"),
        _ => "was a replica of nothing".to_string(),
    };
    *other = None;
    let replicaof = {
        let core = h.core.lock();
        core.masters
            .get(&m.name)
            .map(|mm| crate::links::renamed(&mm.renames, "REPLICAOF").to_string())
            .unwrap_or_else(|| "REPLICAOF".into())
    };
    let port = committed.port.to_string();
    match super::client::call_one(
        &host,
        committed.port,
        &auth,
        &[&replicaof, &committed.host, &port],
        TIMEOUT,
    )
    .await
    {
        Ok(crate::resp::Frame::Error(e)) | Err(e) => Err(format!(
            "+repoint {host}:{} to {committed} failed: {e}",
            committed.port
        )),
        Ok(_) => Ok(Some(format!(
            "+repoint slave {host}:{} @ {} ({was}) -> {committed}",
            committed.port, m.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: &str) -> Addr {
        Addr {
            host: host.into(),
            port: 6379,
        }
    }

    fn master(committed: Option<&str>, this_pod: bool, failover: bool) -> MasterStatus {
        MasterStatus {
            name: "mymaster".into(),
            committed: committed.map(addr),
            configured: addr("raftinel-0"),
            config_epoch: 1,
            history: None,
            failover: failover.then(|| "epoch 2 select-slave".into()),
            last_failover: None,
            this_pod,
            fenced: Vec::new(),
            nodes: Vec::new(),
            sentinels: Vec::new(),
        }
    }

    fn replica_of(host: Option<&str>, port: u16) -> Local {
        Local {
            role: Role::Slave,
            master: host.map(|h| Addr {
                host: h.into(),
                port,
            }),
            link_up: true,
            syncing: false,
            offset: 0,
        }
    }

    #[test]
    fn what_a_redis_follows() {
        let m = master(Some("raftinel-1"), false, false);
        assert_eq!(
            follows(&replica_of(Some("RAFTINEL-1"), 6379), &m, true),
            Follows::Fine
        );
        assert_eq!(
            follows(&replica_of(Some("127.0.0.1"), 1), &m, true),
            Follows::Nothing
        );
        assert_eq!(follows(&replica_of(None, 0), &m, true), Follows::Nothing);
        assert_eq!(
            follows(&replica_of(Some("raftinel-2"), 6379), &m, true),
            Follows::Other(addr("raftinel-2"))
        );
        // The same host on another port is another address.
        assert!(matches!(
            follows(&replica_of(Some("raftinel-1"), 6380), &m, true),
            Follows::Other(_)
        ));
        // Nothing to do without a leader, without a committed master, when
        // the committed master is this pod, or for a master.
        let other = replica_of(Some("raftinel-2"), 6379);
        assert_eq!(follows(&other, &m, false), Follows::Fine);
        assert_eq!(
            follows(&other, &master(None, false, false), true),
            Follows::Fine
        );
        assert_eq!(
            follows(&other, &master(Some("raftinel-1"), true, false), true),
            Follows::Fine
        );
        let mut own = other.clone();
        own.role = Role::Master;
        assert_eq!(follows(&own, &m, true), Follows::Fine);
    }

    #[test]
    fn a_replica_of_another_address_waits_for_the_engine_first() {
        let t0 = Instant::now();
        let patience = Duration::from_secs(20);
        let m = master(Some("raftinel-1"), false, false);
        let other = Follows::Other(addr("raftinel-2"));
        assert!(due(&Follows::Nothing, &m, None, t0, patience));
        assert!(!due(&Follows::Fine, &m, Some(t0), t0 + patience, patience));
        assert!(!due(&other, &m, None, t0, patience));
        assert!(!due(
            &other,
            &m,
            Some(t0),
            t0 + patience - Duration::from_millis(1),
            patience
        ));
        assert!(due(&other, &m, Some(t0), t0 + patience, patience));
        // Never while a failover runs: the engine is re-pointing replicas.
        let running = master(Some("raftinel-1"), false, true);
        assert!(!due(
            &other,
            &running,
            Some(t0),
            t0 + patience * 3,
            patience
        ));
    }
}
