//! Configuration: reading `sentinel.conf` / `raftinel.toml`, the command line
//! overrides, validation with file:line errors, and the crash-safe in-place
//! rewrite ("flush") of what the daemon learns at run time.

pub mod state;

pub use state::{GlobalSentinelConfig, MasterState, PersistedState};

/// Generic (non-`sentinel`) directives that matter to the daemon, with
/// redis-sentinel's defaults. Others are accepted and kept for the rewrite.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub port: u16,
    /// `bind` addresses; empty = Sentinel's default (`* -::*`).
    pub bind: Vec<String>,
    pub protected_mode: bool,
    pub daemonize: bool,
    pub pidfile: Option<String>,
    /// Empty = stdout.
    pub logfile: String,
    /// debug | verbose | notice | warning | nothing
    pub loglevel: String,
    /// `dir`: the process chdirs there (relative paths resolve against it).
    pub dir: Option<String>,
    pub requirepass: Option<String>,
    /// Raw `user ...` lines (ACL rules), in order.
    pub users: Vec<String>,
    pub aclfile: Option<String>,
    pub acllog_max_len: u64,
    pub maxclients: u64,
    pub supervised: Option<String>,
    /// raftinel extension: log format, "text" (default) or "json".
    pub log_format: String,
    /// raftinel extension: admin HTTP listener (Prometheus `/metrics`), off when None.
    pub admin_addr: Option<String>,
    /// raftinel extension: where learned state goes when the config file is read-only.
    pub data_dir: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 26379,
            bind: Vec::new(),
            protected_mode: false,
            daemonize: false,
            pidfile: None,
            logfile: String::new(),
            loglevel: "notice".into(),
            dir: None,
            requirepass: None,
            users: Vec::new(),
            aclfile: None,
            acllog_max_len: 128,
            maxclients: 10000,
            supervised: None,
            log_format: "text".into(),
            admin_addr: None,
            data_dir: None,
        }
    }
}
