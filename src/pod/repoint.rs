//! A Redis that `boot-redis` started as a replica of nothing (the group
//! could not answer then) is re-pointed by the daemon of its pod once the
//! group can: when the daemon is in touch with its leader and the committed
//! master is another pod, it sends this pod's Redis `REPLICAOF <committed
//! master>`, as boot-redis would have. Nothing else is touched: a Redis
//! following any other address is the failover engine's business, and one
//! that is the committed master but was started as a replica of nothing
//! (its data did not match the recorded history) stays so until the group
//! promotes another pod.

use std::time::Duration;

use super::probe::{Local, NOTHING};
use super::Handles;
use crate::core::instance::Role;

const EVERY: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(800);

/// Runs until the daemon shuts down.
pub async fn run(h: Handles) {
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = h.shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match once(&h).await {
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
async fn once(h: &Handles) -> Result<Option<String>, String> {
    let s = super::status::snapshot(h);
    let Some(m) = s.masters.first() else {
        return Ok(None);
    };
    let Some(committed) = m
        .committed
        .as_ref()
        .filter(|_| s.group.has_leader() && !m.this_pod)
    else {
        return Ok(None);
    };
    let Some(host) = s.announce_ip.clone() else {
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
    let local = Local::parse(&info);
    let of_nothing = local.role == Role::Slave
        && local
            .master
            .as_ref()
            .is_some_and(|a| a.host == NOTHING.0 && a.port == NOTHING.1);
    if !of_nothing {
        return Ok(None);
    }
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
            "+repoint slave {host}:{} @ {} (was a replica of nothing) -> {committed}",
            committed.port, m.name
        ))),
    }
}
