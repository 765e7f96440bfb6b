//! The Raft group's settings, from the loaded configuration.

use std::path::PathBuf;

use super::{Config, MasterState};
use crate::consensus::driver::GroupSettings;

/// Where the group lives and how to reach its peers, from the loaded
/// configuration (read after the daemon moved to `dir`).
pub fn group_settings(cfg: &Config) -> GroupSettings {
    let g = &cfg.sentinel.globals;
    let mut names: Vec<&str> = cfg
        .sentinel
        .masters
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    names.sort_unstable();
    let cluster_id = cfg
        .raft
        .cluster_id
        .clone()
        .or_else(|| std::env::var("RAFTINEL_CLUSTER_ID").ok())
        .filter(|c| !c.is_empty());
    // An explicit data directory belongs to this daemon; `dir` (or the
    // state directory) may be shared by several daemons, so the Raft data
    // goes to a subdirectory named after the daemon's id there (see
    // `data_dir_for`). The daemon runs in `dir`, so that is the working
    // directory.
    let (data_dir, shared_root) = match cfg
        .raft
        .data_dir
        .clone()
        .or_else(|| cfg.server.data_dir.clone())
    {
        Some(d) => (PathBuf::from(d), false),
        None if cfg.server.dir.is_some() => (
            std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            true,
        ),
        None => (default_state_root(), true),
    };
    let port = cfg.server.sentinel_port();
    let announce = g
        .announce_ip
        .as_ref()
        .filter(|ip| !ip.is_empty())
        .map(|ip| {
            let p = if g.announce_port != 0 {
                g.announce_port
            } else {
                port
            };
            format!("{ip}:{p}")
        });
    let down_after_ms = cfg
        .sentinel
        .masters
        .iter()
        .map(|m| m.down_after_ms)
        .min()
        .unwrap_or(MasterState::DEFAULT_DOWN_AFTER_MS);
    GroupSettings {
        cluster_id,
        legacy_cluster_id: format!("raftinel:{}", names.join(",")),
        peers: cfg.raft.peers.clone(),
        data_dir,
        shared_root,
        announce,
        port,
        secret: cfg.raft.secret.clone(),
        down_after_ms,
        remove_unreachable_after_ms: cfg.raft.remove_unreachable_after_ms,
        tls: None,
    }
}

/// The default root of the Raft data when neither a data directory nor
/// `dir` is configured: a state directory, never the working directory (a
/// daemon started from a source tree must not write into it).
fn default_state_root() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("STATE_DIRECTORY") {
        // systemd's StateDirectory= (the first, when several are given).
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        if !first.is_empty() {
            return PathBuf::from(first);
        }
    }
    if let Some(d) = env("XDG_STATE_HOME") {
        return PathBuf::from(d).join("raftinel");
    }
    match env("HOME") {
        // SAFETY: geteuid has no preconditions.
        Some(home) if unsafe { libc::geteuid() } != 0 => {
            PathBuf::from(home).join(".local/state/raftinel")
        }
        _ => PathBuf::from("/var/lib/raftinel"),
    }
}
