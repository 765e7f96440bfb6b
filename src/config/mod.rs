//! Configuration: reading `sentinel.conf` / `raftinel.toml`, the command line
//! overrides, validation with file:line errors, and the crash-safe in-place
//! rewrite ("flush") of what the daemon learns at run time.
//!
//! - `args`: Redis's line lexer and quoting; `directives`: every redis.conf
//!   directive 7.0.15 accepts; `parse`: the loader and the three sentinel
//!   passes; `toml`: raftinel.toml, translated into the same lines;
//!   `rewrite`: CONFIG REWRITE as Sentinel does it. What is persisted is the
//!   core's `PersistedState` (`core::persisted`).
//! - Where learned state goes: the sentinel.conf itself when it is writable;
//!   otherwise (read-only ConfigMap mounts) and for raftinel.toml, the file
//!   `<data-dir>/sentinel-state.conf` (sentinel.conf syntax), read back over
//!   the configuration at the next start.

mod args;
mod directives;
pub mod env;
mod group;
pub mod labels;
mod parse;
mod rewrite;
mod toml;

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::consensus::trust::GroupSecret;
pub use crate::core::persisted::{
    GlobalSentinelConfig, MasterState, PersistedState, REFUSED_DOWN_AFTER,
};
pub use crate::links::tls::TlsSettings;
pub use group::group_settings;
pub use labels::LabelSpec;
pub use rewrite::FlushError;

/// Buffered request bytes a client may hold when `client-query-buffer-limit`
/// is not set.
pub const DEFAULT_QUERY_BUFFER_LIMIT: usize = 64 * 1024 * 1024;

/// Exit status for a bad configuration (EX_USAGE), before any port is bound.
pub const EXIT_CONFIG: i32 = 64;

/// File name of the learned-state file inside the data directory.
pub const STATE_FILE_NAME: &str = "sentinel-state.conf";

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
    /// debug | verbose | notice | warning
    pub loglevel: String,
    /// `dir`: the process chdirs there (relative paths resolve against it).
    /// The loader stores it absolute (symlinks resolved, like getcwd()).
    pub dir: Option<String>,
    pub requirepass: Option<String>,
    /// `user` lines (ACL rules) in order, each without the leading `user`
    /// word, e.g. `alice on >pw ~* +@all`. The rewrite writes them back
    /// sorted by user name, plus Sentinel's implicit `default` user if none
    /// is configured.
    pub users: Vec<String>,
    pub aclfile: Option<String>,
    pub acllog_max_len: u64,
    pub maxclients: u64,
    pub supervised: Option<String>,
    /// `timeout`: seconds after which an idle client (not a subscriber) is
    /// closed; 0 = never.
    pub timeout: u64,
    /// `tcp-keepalive`: seconds of TCP keepalive on client connections; 0 = off.
    pub tcp_keepalive: u64,
    /// `tcp-backlog`: the listen(2) backlog.
    pub tcp_backlog: u32,
    /// `client-query-buffer-limit`: buffered request bytes after which a
    /// client is closed. Unset, raftinel holds a client to 64 MiB (Redis: 1
    /// GiB): a Sentinel command is a few KiB.
    pub query_buffer_limit: usize,
    /// `proto-max-bulk-len`: the largest bulk argument accepted.
    pub proto_max_bulk_len: i64,
    /// `syslog-enabled`: every log line also goes to the local syslog
    /// socket (`/dev/log`), as Redis sends it.
    pub syslog_enabled: bool,
    /// `syslog-ident`: the tag of those lines.
    pub syslog_ident: String,
    /// `syslog-facility`: `user` or `local0`..`local7`.
    pub syslog_facility: String,
    /// `tls-port`: the TLS client port, 0 = none.
    pub tls_port: u16,
    /// The `tls-*` certificate and protocol directives.
    pub tls: TlsSettings,
    /// `tls-replication`: links to Redis nodes and peer daemons over TLS.
    pub tls_replication: bool,
    /// `unixsocket`: a Unix socket clients may connect to, besides the ports.
    pub unixsocket: Option<String>,
    /// `unixsocketperm`: the socket file's mode (0 = as created).
    pub unixsocketperm: u32,
    /// raftinel extension: log format, "text" (default) or "json".
    pub log_format: String,
    /// raftinel extension: admin HTTP listener (Prometheus `/metrics`), off when None.
    pub admin_addr: Option<String>,
    /// raftinel extension: where learned state goes when the config file is read-only.
    pub data_dir: Option<String>,
}

impl ServerConfig {
    /// The port this daemon announces to its peers (hello messages, Raft
    /// address), before `announce-port`: `tls-port` with `tls-replication
    /// yes`, else `port` (Sentinel's rule).
    pub fn sentinel_port(&self) -> u16 {
        if self.tls_replication && self.tls_port != 0 {
            self.tls_port
        } else {
            self.port
        }
    }
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
            timeout: 0,
            tcp_keepalive: 300,
            tcp_backlog: 511,
            query_buffer_limit: DEFAULT_QUERY_BUFFER_LIMIT,
            proto_max_bulk_len: 512 * 1024 * 1024,
            syslog_enabled: false,
            syslog_ident: "redis".into(),
            syslog_facility: "local0".into(),
            tls_port: 0,
            tls: TlsSettings::default(),
            tls_replication: false,
            unixsocket: None,
            unixsocketperm: 0,
            log_format: "text".into(),
            admin_addr: None,
            data_dir: None,
        }
    }
}

/// `[raft]` of raftinel.toml (sentinel.conf has no such section: its
/// daemons take the environment's settings, or defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftOptions {
    /// The cluster id a new group is bootstrapped with (else generated).
    pub cluster_id: Option<String>,
    /// Static peer list (`host:port`); empty = discovery by hello.
    pub peers: Vec<String>,
    pub data_dir: Option<String>,
    /// `secret-file` as written, and where.
    pub secret_file: Option<SecretFile>,
    /// The group secret, read at load from `secret-file` or the
    /// environment's `RAFTINEL_SECRET`.
    pub secret: Option<GroupSecret>,
    /// The Raft leader removes a voter unreachable this long (milliseconds),
    /// if the others are a live majority; None = never (the default).
    pub remove_unreachable_after_ms: Option<u64>,
}

/// The `secret-file` line of raftinel.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    pub path: String,
    pub line: usize,
    pub text: String,
}

/// Environment variable holding the group secret itself.
pub const SECRET_ENV: &str = "RAFTINEL_SECRET";

/// The shortest `remove-unreachable-after-ms` accepted: below it a restart
/// or a short partition would cost a daemon its vote.
pub const MIN_REMOVE_UNREACHABLE_MS: u64 = 10_000;

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub sentinel: PersistedState,
    pub file: ConfigFile,
    pub raft: RaftOptions,
    /// `[kubernetes]` of raftinel.toml, when in force.
    pub kubernetes: Option<KubeOptions>,
}

/// `[kubernetes]` of raftinel.toml: the role labels and Events through the
/// Kubernetes API (cargo feature `k8s`; docs in deploy/README.md). Present
/// (and not `enabled = false`) it is in force: a binary built without the
/// feature refuses the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeOptions {
    /// The API server's URL; None = the in-cluster service account's
    /// (`KUBERNETES_SERVICE_HOST`, its token and CA).
    pub api_url: Option<String>,
    /// A bearer token file for `api_url` (None: no token).
    pub token_file: Option<String>,
    /// The pod's namespace (else `RAFTINEL_POD_NAMESPACE`, else the service
    /// account's).
    pub namespace: Option<String>,
    /// This daemon's pod (else `RAFTINEL_POD_NAME`).
    pub pod: Option<String>,
    /// The master whose role the labels show (else the first monitored).
    pub master: Option<String>,
    /// The role labels set together (presets or `key=master/replica/unhealthy`).
    pub role_labels: Vec<crate::config::LabelSpec>,
    /// The label selector of the set's pods (else this pod's
    /// `app.kubernetes.io/instance` and `app.kubernetes.io/name` labels).
    pub pod_selector: Option<String>,
    /// Kubernetes Events for switches, ODOWN, aborts and fencing.
    pub events: bool,
    /// This pod's Redis as `host:port` (else the announce-ip, or loopback).
    pub redis: Option<String>,
    /// When this pod's node is cordoned or tainted for a drain while its
    /// Redis is the master, switch over away from it first
    /// (components/drain-switchover).
    pub drain_switchover: bool,
    /// This pod's node (else `RAFTINEL_NODE_NAME`).
    pub node: Option<String>,
    /// `statefulset` and `peer-template`: the Raft peer list follows the
    /// StatefulSet's `spec.replicas`, peer i at the template with `{ordinal}`
    /// replaced by i.
    pub peers_from: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    SentinelConf,
    Toml,
}

/// Where the configuration came from and where flushes go.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    format: ConfigFormat,
    flush_path: PathBuf,
    /// Full sentinel.conf rewrite (generic + sentinel lines) or a state file
    /// (sentinel lines only).
    full: bool,
    /// Generic directives the daemon does not interpret, kept for the rewrite.
    pub(crate) extras: IndexMap<&'static str, Vec<String>>,
    fallback_warning: Option<String>,
}

impl ConfigFile {
    /// A writable sentinel.conf with nothing but the interpreted directives
    /// (for callers that build a configuration without [`load`], e.g. tests).
    pub fn sentinel_conf(path: &Path) -> ConfigFile {
        ConfigFile {
            path: path.to_path_buf(),
            format: ConfigFormat::SentinelConf,
            flush_path: path.to_path_buf(),
            full: true,
            extras: IndexMap::new(),
            fallback_warning: None,
        }
    }

    /// The configuration file as given (made absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> ConfigFormat {
        self.format
    }

    /// The file [`flush`] rewrites.
    pub fn flush_path(&self) -> &Path {
        &self.flush_path
    }

    /// Set when the config file is read-only and learned state goes to the
    /// data directory instead; log it once at start.
    pub fn fallback_warning(&self) -> Option<&str> {
        self.fallback_warning.as_deref()
    }
}

/// A configuration error; displays as `<file>:<line>: <directive>: <message>
/// >>> '<line text>'` (main prints it and exits with [`EXIT_CONFIG`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File as given, `command line` for overrides.
    pub file: String,
    /// 1-based; 0 when the file itself could not be read.
    pub line: usize,
    pub directive: String,
    /// Redis's message for the same error.
    pub message: String,
    /// The offending line (trimmed), empty when not about one line.
    pub text: String,
}

impl ConfigError {
    fn io(file: &str, message: String) -> Self {
        ConfigError {
            file: file.to_string(),
            line: 0,
            directive: String::new(),
            message,
            text: String::new(),
        }
    }

    /// The block redis-server prints for the same error.
    pub fn redis_report(&self) -> String {
        format!(
            "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}\n",
            self.line, self.text, self.message
        )
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if !self.directive.is_empty() {
            write!(f, "{}: ", self.directive)?;
        }
        write!(f, "{}", self.message)?;
        if !self.text.is_empty() {
            write!(f, " >>> '{}'", self.text)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Loads `path` (raftinel.toml if it ends in `.toml`, else a Redis
/// sentinel.conf) plus redis-server style command-line overrides
/// (`--port 26380 --sentinel announce-ip 1.2.3.4`), then any learned-state
/// file that belongs to it.
pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
    let label = path.display().to_string();
    let cwd = std::env::current_dir().map_err(|e| {
        ConfigError::io(
            &label,
            format!("can't get the working directory: {}", parse::strerror(&e)),
        )
    })?;
    let abs = cwd.join(path);
    let text = std::fs::read_to_string(&abs).map_err(|e| {
        ConfigError::io(
            &label,
            format!("can't open config file '{label}': {}", parse::strerror(&e)),
        )
    })?;
    let mut loader = parse::Loader::new(cwd.clone());
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    let (mut raft, kubernetes) = if is_toml {
        toml::feed(&mut loader, &label, &text)?
    } else {
        loader.feed_text(&label, &text)?;
        (RaftOptions::default(), None)
    };
    for (i, l) in parse::override_lines(overrides).iter().enumerate() {
        for mut sl in parse::lines_of("command line", l)? {
            sl.line = i + 1;
            loader.feed_line(sl)?;
        }
    }
    let base_dir = loader.base_dir();
    loader.check_tls(&label, &base_dir)?;
    raft.secret = group_secret(
        &label,
        raft.secret_file.as_ref(),
        std::env::var_os(SECRET_ENV),
        &base_dir,
    )?;
    let mut state = PersistedState::default();
    parse::apply_sentinel(
        &mut state,
        &loader.sentinel_queue,
        &base_dir,
        parse::MonitorMode::Create,
    )?;

    let server = loader.server;
    let data_dir = data_dir(&server, &base_dir);
    let state_path = data_dir.join(STATE_FILE_NAME);
    let (flush_path, full, fallback_warning) = if is_toml {
        (state_path, false, None)
    } else {
        match main_file_writable(&abs) {
            Ok(()) => (abs.clone(), true, None),
            Err(why) => {
                let warning = format!(
                    "config file {} is not writable ({why}); learned state will be saved to {} instead",
                    abs.display(),
                    state_path.display()
                );
                (state_path, false, Some(warning))
            }
        }
    };
    if !full {
        merge_state_file(&mut state, &flush_path, &base_dir)?;
    }
    Ok(Config {
        server,
        sentinel: state,
        file: ConfigFile {
            path: abs,
            format: if is_toml {
                ConfigFormat::Toml
            } else {
                ConfigFormat::SentinelConf
            },
            flush_path,
            full,
            extras: loader.extras,
            fallback_warning,
        },
        raft,
        kubernetes,
    })
}

/// The group secret from `secret-file` (relative to `dir`) or from the
/// environment's value `env`. Both at once is refused: which one is in force
/// would not be obvious. A file that cannot be read, or a secret that is
/// empty or too short, is a configuration error.
fn group_secret(
    label: &str,
    file: Option<&SecretFile>,
    env: Option<std::ffi::OsString>,
    base_dir: &Path,
) -> Result<Option<GroupSecret>, ConfigError> {
    use std::os::unix::ffi::OsStrExt;
    match (file, env) {
        (None, None) => Ok(None),
        (Some(f), env) => {
            let error = |message: String| ConfigError {
                file: label.to_string(),
                line: f.line,
                directive: "secret-file".into(),
                message,
                text: f.text.clone(),
            };
            if env.is_some() {
                return Err(error(format!(
                    "{SECRET_ENV} is set too; give the group secret in one place"
                )));
            }
            let bytes = std::fs::read(base_dir.join(&f.path)).map_err(|e| {
                error(format!(
                    "can't read the group secret file '{}': {}",
                    f.path,
                    parse::strerror(&e)
                ))
            })?;
            GroupSecret::new(&bytes)
                .map(Some)
                .map_err(|e| error(format!("'{}': {e}", f.path)))
        }
        (None, Some(v)) => GroupSecret::new(v.as_bytes())
            .map(Some)
            .map_err(|e| ConfigError {
                file: "environment".into(),
                line: 0,
                directive: SECRET_ENV.into(),
                message: e.to_string(),
                text: String::new(),
            }),
    }
}

/// Rewrites the configuration with the current state (Sentinel's
/// `sentinelFlushConfig`): the sentinel.conf in place, or the state file.
pub fn flush(
    file: &ConfigFile,
    server: &ServerConfig,
    state: &PersistedState,
) -> Result<(), FlushError> {
    if !file.full {
        if let Some(dir) = file.flush_path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| FlushError::Write {
                path: file.flush_path.clone(),
                source,
            })?;
        }
    }
    rewrite::flush_to(&file.flush_path, file, server, state, file.full)
}

/// `raftinel check-config FILE`: the effective configuration, every
/// directive with its value, in sentinel.conf syntax.
pub fn check_config(path: &Path, overrides: &[String]) -> Result<String, ConfigError> {
    let cfg = load(path, overrides)?;
    Ok(render_effective(&cfg))
}

fn render_effective(cfg: &Config) -> String {
    let mut out = String::new();
    render_server(cfg, &mut out);
    render_sentinel(&cfg.sentinel, &mut out);
    for m in &cfg.sentinel.masters {
        render_master(m, &mut out);
    }
    render_raft(&cfg.raft, &mut out);
    out
}

/// The server directives, with the file and where learned state goes.
fn render_server(cfg: &Config, out: &mut String) {
    use args::{raw_or_quoted, repr};
    let s = &cfg.server;
    let mut push = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    push(format!(
        "# Effective configuration of {}",
        cfg.file.path.display()
    ));
    push(format!(
        "# Learned state is saved to {}",
        cfg.file.flush_path.display()
    ));
    if let Some(w) = &cfg.file.fallback_warning {
        push(format!("# WARNING: {w}"));
    }
    push(format!("port {}", s.port));
    push(if s.bind.is_empty() {
        "bind * -::*".into()
    } else {
        format!(
            "bind {}",
            s.bind
                .iter()
                .map(|b| raw_or_quoted(b))
                .collect::<Vec<_>>()
                .join(" ")
        )
    });
    push(format!("protected-mode {}", yn(s.protected_mode)));
    push(format!("daemonize {}", yn(s.daemonize)));
    push(format!(
        "pidfile {}",
        repr(s.pidfile.as_deref().unwrap_or(""))
    ));
    push(format!("logfile {}", repr(&s.logfile)));
    push(format!("loglevel {}", s.loglevel));
    let dir = s
        .dir
        .clone()
        .or_else(|| {
            std::env::current_dir()
                .ok()
                .map(|d| d.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    push(format!("dir {}", repr(&dir)));
    push(format!(
        "requirepass {}",
        repr(s.requirepass.as_deref().unwrap_or(""))
    ));
    push(format!(
        "aclfile {}",
        repr(s.aclfile.as_deref().unwrap_or(""))
    ));
    push(format!("acllog-max-len {}", s.acllog_max_len));
    push(format!("maxclients {}", s.maxclients));
    push(format!(
        "supervised {}",
        s.supervised.as_deref().unwrap_or("no")
    ));
    for u in rewrite::users_for_rewrite(s) {
        push(format!("user {u}"));
    }
    for (name, a) in &cfg.file.extras {
        let line = directives::canonical(name)
            .and_then(|d| directives::rewrite_line(d, a))
            .unwrap_or_else(|| name.to_string());
        if !directives::IN_FORCE.contains(name) {
            push(format!(
                "# {name}: accepted for redis-sentinel's files, not acted on by raftinel; kept for the rewrite"
            ));
        } else if name.starts_with("tls-")
            && !["tls-port", "tls-replication"].contains(name)
            && s.tls_port == 0
            && !s.tls_replication
        {
            push(format!(
                "# {name}: in force with tls-port or tls-replication, both off here (as in Redis); kept for the rewrite"
            ));
        }
        push(line);
    }
    push(format!("log-format {}", s.log_format));
    push(format!(
        "admin-addr {}",
        repr(s.admin_addr.as_deref().unwrap_or(""))
    ));
    push(format!(
        "data-dir {}",
        repr(s.data_dir.as_deref().unwrap_or(""))
    ));
}

/// The global `sentinel` directives.
fn render_sentinel(st: &PersistedState, out: &mut String) {
    use args::repr;
    let mut push = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    let g = &st.globals;
    push(match &st.myid {
        Some(id) => format!("sentinel myid {id}"),
        None => "# sentinel myid: generated at first start".to_string(),
    });
    push(format!(
        "sentinel deny-scripts-reconfig {}",
        yn(g.deny_scripts_reconfig)
    ));
    push(format!(
        "sentinel resolve-hostnames {}",
        yn(g.resolve_hostnames)
    ));
    push(format!(
        "sentinel announce-hostnames {}",
        yn(g.announce_hostnames)
    ));
    push(format!(
        "sentinel announce-ip {}",
        repr(g.announce_ip.as_deref().unwrap_or(""))
    ));
    push(format!("sentinel announce-port {}", g.announce_port));
    push(format!(
        "sentinel sentinel-user {}",
        repr(g.sentinel_user.as_deref().unwrap_or(""))
    ));
    push(format!(
        "sentinel sentinel-pass {}",
        repr(g.sentinel_pass.as_deref().unwrap_or(""))
    ));
    push(format!("sentinel current-epoch {}", st.current_epoch));
}

/// One monitored master and what was learned about it.
fn render_master(m: &MasterState, out: &mut String) {
    use args::raw_or_quoted;
    let mut push = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    let n = raw_or_quoted(&m.name);
    push(format!(
        "sentinel monitor {n} {} {} {}",
        raw_or_quoted(&m.host),
        m.port,
        m.quorum
    ));
    push(format!(
        "sentinel down-after-milliseconds {n} {}",
        m.down_after_ms
    ));
    push(format!(
        "sentinel failover-timeout {n} {}",
        m.failover_timeout_ms
    ));
    push(format!("sentinel parallel-syncs {n} {}", m.parallel_syncs));
    if let Some(v) = &m.notification_script {
        push(format!(
            "sentinel notification-script {n} {}",
            raw_or_quoted(v)
        ));
    }
    if let Some(v) = &m.client_reconfig_script {
        push(format!(
            "sentinel client-reconfig-script {n} {}",
            raw_or_quoted(v)
        ));
    }
    if let Some(v) = &m.auth_pass {
        push(format!("sentinel auth-pass {n} {}", raw_or_quoted(v)));
    }
    if let Some(v) = &m.auth_user {
        push(format!("sentinel auth-user {n} {}", raw_or_quoted(v)));
    }
    push(format!(
        "sentinel master-reboot-down-after-period {n} {}",
        m.master_reboot_down_after_period_ms
    ));
    if m.refused_down_after_ms != 0 {
        push(format!(
            "sentinel {REFUSED_DOWN_AFTER} {n} {}",
            m.refused_down_after_ms
        ));
    }
    push(format!("sentinel config-epoch {n} {}", m.config_epoch));
    push(format!("sentinel leader-epoch {n} {}", m.leader_epoch));
    for (h, p) in &m.known_replicas {
        push(format!(
            "sentinel known-replica {n} {} {p}",
            raw_or_quoted(h)
        ));
    }
    for (h, p, id) in &m.known_sentinels {
        push(format!(
            "sentinel known-sentinel {n} {} {p} {id}",
            raw_or_quoted(h)
        ));
    }
    for (o, nw) in &m.rename_commands {
        push(format!(
            "sentinel rename-command {n} {} {}",
            raw_or_quoted(o),
            raw_or_quoted(nw)
        ));
    }
}

/// The Raft options, as comments (they are not sentinel.conf directives).
fn render_raft(r: &RaftOptions, out: &mut String) {
    let mut push = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    if r != &RaftOptions::default() {
        push(format!(
            "# raft cluster-id {}",
            r.cluster_id.as_deref().unwrap_or("")
        ));
        push(format!("# raft peers {}", r.peers.join(" ")));
        push(format!(
            "# raft data-dir {}",
            r.data_dir.as_deref().unwrap_or("")
        ));
        if let Some(ms) = r.remove_unreachable_after_ms {
            push(format!("# raft remove-unreachable-after-ms {ms}"));
        }
    }
    // Where the secret comes from, never the secret.
    match (&r.secret_file, &r.secret) {
        (Some(f), _) => push(format!("# raft secret-file {}", f.path)),
        (None, Some(_)) => push(format!("# raft secret from {SECRET_ENV}")),
        (None, None) => push("# raft secret: none".to_string()),
    }
}

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// data-dir (relative to `dir`), else `dir`, else the working directory.
fn data_dir(server: &ServerConfig, base_dir: &Path) -> PathBuf {
    match &server.data_dir {
        Some(d) => base_dir.join(d),
        None => base_dir.to_path_buf(),
    }
}

/// Whether the sentinel.conf can be replaced in place: the file is writable
/// (and not marked read-only by its mode, as ConfigMap mounts are) and so is
/// its directory (the temp file and the rename live there).
fn main_file_writable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| parse::strerror(&e))?;
    if meta.permissions().mode() & 0o222 == 0 {
        return Err("the file mode has no write permission".into());
    }
    if !parse::writable(path) {
        return Err(parse::strerror(&std::io::Error::last_os_error()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    if !parse::writable(dir) {
        return Err(format!(
            "directory {}: {}",
            dir.display(),
            parse::strerror(&std::io::Error::last_os_error())
        ));
    }
    Ok(())
}

/// Reads `<data-dir>/sentinel-state.conf` (if any) over the configuration.
fn merge_state_file(
    state: &mut PersistedState,
    path: &Path,
    script_dir: &Path,
) -> Result<(), ConfigError> {
    let label = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ConfigError::io(
                &label,
                format!("can't open state file '{label}': {}", parse::strerror(&e)),
            ))
        }
    };
    let mut queue = Vec::new();
    for sl in parse::lines_of(&label, &text)? {
        let is_sentinel = sl
            .args
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case("sentinel"));
        if !is_sentinel {
            let d = sl.args.first().cloned().unwrap_or_default();
            return Err(sl.error(&d, "only sentinel directives belong in the state file"));
        }
        if sl.args.len() > 1 {
            queue.push(sl);
        }
    }
    parse::apply_sentinel(state, &queue, script_dir, parse::MonitorMode::Replace)
}

#[cfg(test)]
mod tests;
