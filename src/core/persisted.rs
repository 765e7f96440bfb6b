//! What the core persists: global sentinel options, monitored masters and
//! what was learned about them. The core is built from it at start and hands
//! back a fresh one for each config rewrite; the config reader (`config`)
//! produces it from the file and writes it back.

/// raftinel's per-master `sentinel refused-down-after-milliseconds <name>
/// <ms>` (also a SENTINEL SET option and a raftinel.toml key): connections
/// refused for that long make the master SDOWN before down-after. Written
/// to the config only when set, so a file without it stays readable by
/// redis-sentinel.
pub const REFUSED_DOWN_AFTER: &str = "refused-down-after-milliseconds";

/// Global `sentinel ...` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalSentinelConfig {
    pub announce_ip: Option<String>,
    /// 0 = use the listening port.
    pub announce_port: u16,
    pub deny_scripts_reconfig: bool,
    pub resolve_hostnames: bool,
    pub announce_hostnames: bool,
    pub sentinel_user: Option<String>,
    pub sentinel_pass: Option<String>,
}

impl Default for GlobalSentinelConfig {
    fn default() -> Self {
        GlobalSentinelConfig {
            announce_ip: None,
            announce_port: 0,
            deny_scripts_reconfig: true,
            resolve_hostnames: false,
            announce_hostnames: false,
            sentinel_user: None,
            sentinel_pass: None,
        }
    }
}

/// One monitored master, as configured and as learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterState {
    pub name: String,
    /// Current master address (the promoted replica's once a failover reached
    /// reconf_slaves).
    pub host: String,
    pub port: u16,
    pub quorum: u32,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: u32,
    pub notification_script: Option<String>,
    pub client_reconfig_script: Option<String>,
    pub auth_pass: Option<String>,
    pub auth_user: Option<String>,
    pub master_reboot_down_after_period_ms: u64,
    /// raftinel: `refused-down-after-milliseconds` (0 = off).
    pub refused_down_after_ms: u64,
    pub config_epoch: u64,
    pub leader_epoch: u64,
    /// `known-replica <name> <host> <port>` lines.
    pub known_replicas: Vec<(String, u16)>,
    /// `known-sentinel <name> <host> <port> <runid>` lines.
    pub known_sentinels: Vec<(String, u16, String)>,
    /// `rename-command <name> <old> <new>` lines, in order.
    pub rename_commands: Vec<(String, String)>,
}

impl MasterState {
    pub const DEFAULT_DOWN_AFTER_MS: u64 = 30_000;
    pub const DEFAULT_FAILOVER_TIMEOUT_MS: u64 = 180_000;

    pub fn new(name: &str, host: &str, port: u16, quorum: u32) -> Self {
        MasterState {
            name: name.to_string(),
            host: host.to_string(),
            port,
            quorum,
            down_after_ms: Self::DEFAULT_DOWN_AFTER_MS,
            failover_timeout_ms: Self::DEFAULT_FAILOVER_TIMEOUT_MS,
            parallel_syncs: 1,
            notification_script: None,
            client_reconfig_script: None,
            auth_pass: None,
            auth_user: None,
            master_reboot_down_after_period_ms: 0,
            refused_down_after_ms: 0,
            config_epoch: 0,
            leader_epoch: 0,
            known_replicas: Vec::new(),
            known_sentinels: Vec::new(),
            rename_commands: Vec::new(),
        }
    }
}

/// Everything the sentinel persists, in the order the rewrite writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersistedState {
    /// 40 hex chars; None until generated at first start.
    pub myid: Option<String>,
    pub current_epoch: u64,
    pub globals: GlobalSentinelConfig,
    pub masters: Vec<MasterState>,
}
