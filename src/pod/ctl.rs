//! `raftinel ctl`: what an operator (or a preStop hook) asks the daemon of
//! its own pod.
//!
//! - `status [--json]`: the status snapshot, as a table or JSON.
//! - `prestop --deadline <s> [--wait-only]`: the pod is being deleted. If its
//!   Redis is the committed master, ask the group for a coordinated
//!   switchover away from it (`SENTINEL FAILOVER`: writes paused on it until
//!   the chosen replica has its offset; the replica is chosen by Sentinel's
//!   rules, so a linked one with the least lag) and return once another
//!   master is committed. `--wait-only` starts nothing and waits for the same
//!   condition (the raftinel container's hook: its daemon stays a voter
//!   until the switchover is over).
//!
//! Exit statuses: 0 done, 1 deadline, 64 bad usage or configuration, 69 the
//! daemon cannot be reached, or the group cannot commit (no leader).

use std::path::PathBuf;
use std::time::Duration;

use super::local::{self, Daemon, OnChange, EXIT_UNAVAILABLE};
use super::status::{MasterStatus, Status};
use crate::resp::Frame;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctl {
    Status {
        config: PathBuf,
        json: bool,
    },
    Prestop {
        config: PathBuf,
        deadline: Duration,
        wait_only: bool,
    },
}

pub fn run(ctl: Ctl) -> u8 {
    let config = match &ctl {
        Ctl::Status { config, .. } | Ctl::Prestop { config, .. } => config.clone(),
    };
    let daemon = match Daemon::from_config(&config) {
        Ok((d, _)) => d,
        Err(e) => {
            eprintln!("{e}");
            return crate::config::EXIT_CONFIG as u8;
        }
    };
    let result = match ctl {
        Ctl::Status { json, .. } => local::block_on(status(&daemon, json)),
        Ctl::Prestop {
            deadline,
            wait_only,
            ..
        } => local::block_on(prestop(&daemon, deadline, wait_only)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("{e}");
        1
    })
}

async fn status(daemon: &Daemon, json: bool) -> u8 {
    match daemon.status().await {
        Ok(s) if json => {
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            0
        }
        Ok(s) => {
            print!("{}", render(&s));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_UNAVAILABLE
        }
    }
}

/// The status as an operator reads it.
pub fn render(s: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let g = &s.group;
    let pod = s.pod.name.as_deref().unwrap_or("-");
    let _ = writeln!(
        out,
        "daemon {} (pod {pod}, ip {}), node {} of cluster {}",
        s.myid,
        s.pod.ip.as_deref().unwrap_or("-"),
        g.node_id.map_or("-".into(), |n| n.to_string()),
        g.cluster_id.as_deref().unwrap_or("-")
    );
    let leader = g
        .leader
        .as_ref()
        .map_or("none".to_string(), |l| format!("{} {}", l.id, l.addr));
    let heard = g
        .leader_heard_ms
        .map_or("never".to_string(), |ms| format!("{ms} ms ago"));
    let _ = writeln!(
        out,
        "group: term {}, leader {leader} (heard {heard}, lease {} ms), {}, {}",
        g.term,
        g.lease_ms,
        if g.voter { "voter" } else { "not a voter" },
        if g.loaded { "loaded" } else { "loading" }
    );
    for v in &g.voters {
        let _ = writeln!(out, "  voter {} {} {}", v.id, v.addr, v.myid);
    }
    for m in &s.masters {
        let committed = m
            .committed
            .as_ref()
            .map_or("none".to_string(), |a| a.to_string());
        let _ = writeln!(
            out,
            "master {}: committed {committed}{}, config epoch {}",
            m.name,
            if m.this_pod { " (this pod)" } else { "" },
            m.config_epoch
        );
        if let Some(f) = &m.failover {
            let _ = writeln!(out, "  failover in progress: {f}");
        }
        if let Some(l) = &m.last_failover {
            let _ = writeln!(
                out,
                "  last failover: epoch {}, {} -> {}{}",
                l.epoch,
                l.from.as_deref().unwrap_or("?"),
                l.to,
                l.seconds_ago
                    .map_or(String::new(), |s| format!(", {s} s ago"))
            );
        }
        if let Some(h) = &m.history {
            let _ = writeln!(
                out,
                "  recorded history: replid {} (after {}) offset {}",
                h.replid, h.replid2, h.offset
            );
        }
        let _ = writeln!(
            out,
            "  {:<50} {:<8} {:<8} {:<5} {:<12} health",
            "node", "kind", "role", "link", "lag"
        );
        for n in &m.nodes {
            let _ = writeln!(
                out,
                "  {:<50} {:<8} {:<8} {:<5} {:<12} {}{}",
                n.addr,
                n.kind,
                n.role,
                if n.link { "up" } else { "down" },
                n.lag_bytes.map_or("-".into(), |l| l.to_string()),
                n.health,
                if n.this_pod { " (this pod)" } else { "" }
            );
        }
        for p in &m.sentinels {
            let _ = writeln!(out, "  daemon {:<43} {} {}", p.addr, p.runid, p.health);
        }
    }
    out
}

/// The masters this pod's Redis holds, as committed.
fn held(s: &Status) -> Vec<&MasterStatus> {
    s.masters.iter().filter(|m| m.this_pod).collect()
}

async fn prestop(daemon: &Daemon, deadline: Duration, wait_only: bool) -> u8 {
    let until = tokio::time::Instant::now() + deadline;
    let mut log = OnChange::default();
    let first = match daemon.status().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("prestop: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    let names: Vec<String> = held(&first).iter().map(|m| m.name.clone()).collect();
    if names.is_empty() {
        eprintln!("prestop: this pod holds no master");
        return 0;
    }
    if !wait_only && !first.group.has_leader() {
        eprintln!(
            "prestop: this pod holds {} but the group has no leader: no switchover can be committed",
            names.join(", ")
        );
        return EXIT_UNAVAILABLE;
    }
    let mut asked: Vec<String> = Vec::new();
    loop {
        let s = match daemon.status().await {
            Ok(s) => s,
            Err(e) => {
                log.say(format!("prestop: {e}"));
                if tokio::time::Instant::now() >= until {
                    return 1;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let still: Vec<&MasterStatus> = held(&s);
        if still.is_empty() {
            let to: Vec<String> = s
                .masters
                .iter()
                .filter(|m| names.contains(&m.name))
                .map(|m| {
                    format!(
                        "{} -> {}",
                        m.name,
                        m.committed.as_ref().map_or("?".into(), |a| a.to_string())
                    )
                })
                .collect();
            eprintln!(
                "prestop: this pod no longer holds a master ({})",
                to.join(", ")
            );
            return 0;
        }
        if tokio::time::Instant::now() >= until {
            break;
        }
        if !wait_only {
            for m in &still {
                // A failover of it already committed: wait for it.
                if m.failover.is_some() && asked.contains(&m.name) {
                    continue;
                }
                match daemon.command(&["SENTINEL", "FAILOVER", &m.name]).await {
                    Ok(Frame::Simple(_)) => {
                        if !asked.contains(&m.name) {
                            eprintln!("prestop: switchover of {} away from this pod asked", m.name);
                            asked.push(m.name.clone());
                        }
                    }
                    Ok(Frame::Error(e)) if e.starts_with("INPROG") => {
                        log.say(format!("prestop: {}: a failover is in progress", m.name));
                        if !asked.contains(&m.name) {
                            asked.push(m.name.clone());
                        }
                    }
                    Ok(Frame::Error(e)) if e.starts_with("NOQUORUM") => {
                        eprintln!("prestop: {}: {e}", m.name);
                        return EXIT_UNAVAILABLE;
                    }
                    Ok(other) => log.say(format!("prestop: {}: {other:?}", m.name)),
                    Err(e) => log.say(format!("prestop: {}: {e}", m.name)),
                }
            }
        } else {
            log.say(format!(
                "prestop: waiting until this pod no longer holds {}",
                names.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !wait_only {
        resume_writes(daemon).await;
    }
    eprintln!(
        "prestop: deadline of {} s passed; this pod still holds {}",
        deadline.as_secs(),
        names.join(", ")
    );
    1
}

/// At the deadline: a switchover that did not commit leaves this Redis the
/// master; if it is still paused (the group gives up a coordinated
/// switchover at failover-timeout and unpauses it), unpause it now so it
/// serves writes again until the pod stops.
async fn resume_writes(daemon: &Daemon) {
    let Ok(s) = daemon.status().await else {
        return;
    };
    for m in held(&s) {
        if m.failover.is_some() {
            // The group still drives a failover of it: unpausing now could
            // let a write be acknowledged and then lost.
            eprintln!(
                "prestop: {}: a failover is still in progress; writes stay paused",
                m.name
            );
            continue;
        }
        let host = s.announce_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        let port = m.committed.as_ref().map_or(m.configured.port, |a| a.port);
        match super::client::call_one(
            &host,
            port,
            &daemon.redis_auth,
            &["CLIENT", "UNPAUSE"],
            local::CALL_TIMEOUT,
        )
        .await
        {
            Ok(Frame::Error(e)) | Err(e) => eprintln!("prestop: {}: CLIENT UNPAUSE: {e}", m.name),
            Ok(_) => eprintln!("prestop: {}: writes resumed on this pod's Redis", m.name),
        }
    }
}
