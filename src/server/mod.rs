//! The RESP server on the sentinel port: framing, connections, limits, auth,
//! pub/sub, and one small module per command.
//!
//! Shape (after tokio's mini-redis): `parse` turns bytes into requests,
//! `conn` runs one task per client (buffered reads, ordered replies, memory
//! bounds), `dispatch` runs each request (CLIENT PAUSE, CLIENT REPLY, Raft
//! RPCs in `raft_rpc`), `table` resolves a request to a command (arity and
//! unknown-command errors happen there, before any handler), and `cmd` parses
//! it into a typed [`cmd::Command`]: one small struct per command, in the file
//! of its group (`connection_cmd`, `pubsub_cmd`, `sentinel_cmd`,
//! `client_cmd`, `acl_cmd`, `command_cmd`), whose parse produces the argument
//! errors before anything touches state.
//! Server-wide state that only the server needs (client registry, counters,
//! ACL users) lives in [`Server`], created by [`serve`].
//!
//! Deliberate differences from redis-sentinel 7.0.15 (none of them is seen
//! by a client that speaks the protocol and reads its replies):
//! - a multibulk count above 1 Mi is `invalid multibulk length` (Redis: INT_MAX);
//! - a client whose unparsed request data exceeds 64 MiB is closed (Redis:
//!   client-query-buffer-limit, 1 GiB);
//! - replies are flow-controlled instead of buffered: a client that does not
//!   read stops being read from; only pub/sub clients are closed when their
//!   bounded message queue overflows (Redis: client-output-buffer-limit);
//! - listing orders (COMMAND, ACL CAT, unsubscribe-all) are a fixed table /
//!   insertion order where Redis uses its per-process dict hash order;
//! - CLIENT LIST memory fields (qbuf-free, rbs, rbp, tot-mem) are estimates,
//!   and INFO `gcc_version` is `0.0.0`.

pub mod acl;
pub mod acl_cmd;
pub mod client;
pub mod client_cmd;
pub mod cmd;
pub mod cmd_docs;
pub mod command_cmd;
pub mod conn;
pub mod connection_cmd;
pub mod dispatch;
pub mod glob;
pub mod info;
pub mod listen;
pub mod pubsub;
pub mod pubsub_cmd;
pub mod raft_cmd;
pub mod raft_rpc;
pub mod sentinel_cmd;
pub mod stats;
pub mod table;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::consensus::node::RaftNode;
use crate::consensus::rpc::Counters;
use crate::core::{Action, Input, Millis, Sentinel};
use crate::observe::scripts::ScriptQueue;

pub use listen::{bind_listeners, serve, BindError, Listeners};

/// What the server may do with the core (the runtime implements it): a short
/// synchronous section on it, then hand over what the core asked for. The
/// lock is held for the section only: never across an `.await`, never while
/// the actions are carried out.
pub trait Core: Send + Sync {
    fn lock(&self) -> MutexGuard<'_, Sentinel>;
    /// The core's clock.
    fn now(&self) -> Millis;
    /// Carries out what a client's command asked for; returns once its
    /// config flushes are written, with the first failure.
    fn execute(&self, actions: Vec<Action>) -> Result<(), FlushFailed>;
    /// Feeds an input (a hello published to this daemon) and carries out
    /// what follows without waiting for config flushes.
    fn feed(&self, input: Input);
}

/// The config file could not be written (the reason is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushFailed;

/// `Core::execute` for a command answered on the async workers: actions
/// that include a config flush (a rewrite with fsync) are carried out on the
/// blocking pool, in the same order, so a slow disk holds no worker, nor the
/// other clients it serves. The command still learns how the flush went.
pub async fn execute_off_workers(
    core: &Arc<dyn Core>,
    actions: Vec<Action>,
) -> Result<(), FlushFailed> {
    if !actions.iter().any(|a| matches!(a, Action::Flush)) {
        return core.execute(actions);
    }
    let core = core.clone();
    tokio::task::spawn_blocking(move || core.execute(actions))
        .await
        .unwrap_or(Err(FlushFailed))
}

/// What the server is given by the daemon it runs in.
#[derive(Clone)]
pub struct Handles {
    pub core: Arc<dyn Core>,
    /// Pub/sub: the daemon publishes its events here.
    pub hub: Arc<pubsub::Hub>,
    /// The running configuration: the ACL commands update its `user` lines,
    /// the config rewrite writes it back.
    pub config: Arc<Mutex<ServerConfig>>,
    /// Script jobs, read for SENTINEL PENDING-SCRIPTS and INFO.
    pub scripts: Arc<ScriptQueue>,
    /// The local Raft node, once started (RAFTINEL RPCs, INFO raft).
    pub raft: Arc<OnceLock<RaftNode>>,
    /// RPC refusals (counted before the Raft node runs too) and refused
    /// membership changes.
    pub rpc_counters: Arc<Counters>,
    /// Cancelled on SHUTDOWN, SIGTERM or SIGINT: everything drains and exits.
    pub shutdown: CancellationToken,
    /// When the daemon started (INFO uptime).
    pub started: Instant,
}

/// The server's own state, shared by all connections.
pub struct Server {
    pub core: Arc<dyn Core>,
    pub hub: Arc<pubsub::Hub>,
    pub config: Arc<Mutex<ServerConfig>>,
    pub scripts: Arc<ScriptQueue>,
    pub raft: Arc<OnceLock<RaftNode>>,
    pub rpc_counters: Arc<Counters>,
    pub shutdown: CancellationToken,
    pub started: Instant,
    pub registry: client::Registry,
    pub stats: stats::Stats,
    acl: Mutex<acl::Acl>,
    /// Per-client limits from the configuration, read at start.
    pub limits: ClientLimits,
    /// Request bytes buffered by all clients together.
    pub input_held: std::sync::atomic::AtomicUsize,
    /// Set once the core's startup hold of master answers is over for good
    /// (`Sentinel::answer_hold_over`): queries then skip the core lock and
    /// the clock the hold needs.
    pub hold_over: std::sync::atomic::AtomicBool,
    /// Connection slots (maxclients).
    pub slots: Arc<Semaphore>,
    pub maxclients: usize,
    /// Port of the first listener (INFO `tcp_port`).
    pub port: u16,
    /// CLIENT PAUSE: until when, and whether all commands (true) or only
    /// writes (false; sentinel has no write commands).
    pause: Mutex<Option<(Instant, bool)>>,
    /// A CLIENT PAUSE ALL was set and may be in force: every request checks
    /// this flag, and only then the lock above.
    pause_all: std::sync::atomic::AtomicBool,
}

/// What `timeout`, `tcp-keepalive`, `client-query-buffer-limit` and
/// `proto-max-bulk-len` set for every client. Sentinel's CONFIG SET does not
/// take them: they hold for the life of the process.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// A client (not a subscriber) idle this long is closed.
    pub idle: Option<std::time::Duration>,
    /// TCP keepalive interval in seconds, 0 = off.
    pub keepalive: u64,
    /// Buffered request bytes after which a client is closed.
    pub query_buffer: usize,
    /// The largest bulk argument accepted.
    pub max_bulk: i64,
}

impl ClientLimits {
    fn from_config(cfg: &ServerConfig) -> ClientLimits {
        ClientLimits {
            idle: (cfg.timeout > 0).then(|| std::time::Duration::from_secs(cfg.timeout)),
            keepalive: cfg.tcp_keepalive,
            query_buffer: cfg.query_buffer_limit,
            max_bulk: cfg.proto_max_bulk_len,
        }
    }
}

impl Server {
    pub fn new(h: Handles, port: u16) -> Result<Server, acl::AclConfigError> {
        let (acl, maxclients, limits) = {
            let cfg = h
                .config
                .lock()
                .expect("the server configuration lock is poisoned");
            (
                users_from_config(&cfg)?,
                cfg.maxclients as usize,
                ClientLimits::from_config(&cfg),
            )
        };
        Ok(Server {
            core: h.core,
            hub: h.hub,
            config: h.config,
            scripts: h.scripts,
            raft: h.raft,
            rpc_counters: h.rpc_counters,
            shutdown: h.shutdown,
            started: h.started,
            registry: client::Registry::new(),
            stats: stats::Stats::default(),
            acl: Mutex::new(acl),
            limits,
            input_held: Default::default(),
            hold_over: Default::default(),
            slots: Arc::new(Semaphore::new(maxclients.clamp(1, Semaphore::MAX_PERMITS))),
            maxclients,
            port,
            pause: Mutex::new(None),
            pause_all: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn acl(&self) -> MutexGuard<'_, acl::Acl> {
        self.acl.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_pause(&self, until: Option<(Instant, bool)>) {
        let mut p = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        *p = until;
        let all = matches!(until, Some((_, true)));
        self.pause_all
            .store(all, std::sync::atomic::Ordering::Release);
    }

    /// End of an active CLIENT PAUSE ALL, if any.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        if !self.pause_all.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let p = *self.pause.lock().unwrap_or_else(|e| e.into_inner());
        match p {
            Some((until, true)) if until > now => Some(until),
            _ => None,
        }
    }
}

/// Builds the ACL users from `user` lines, `requirepass` and `aclfile`,
/// with Redis's startup errors. `main` may call [`check_users_config`] before
/// binding to refuse a bad configuration early; [`serve`] does it again.
fn users_from_config(cfg: &ServerConfig) -> Result<acl::Acl, acl::AclConfigError> {
    let mut acl = acl::Acl::from_config(
        &cfg.users,
        cfg.requirepass.as_deref(),
        cfg.aclfile.as_deref(),
        cfg.acllog_max_len,
    )?;
    if let Some(path) = cfg.aclfile.as_deref() {
        // As in Redis: users come from either the config or the aclfile,
        // and a missing or broken aclfile stops the start.
        if !cfg.users.is_empty() {
            return Err(acl::AclConfigError::Other(
                "Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into(),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            acl::AclConfigError::Other(format!(
                "Error loading ACLs, opening file '{path}': {}",
                acl_cmd::io_error_text(&e)
            ))
        })?;
        acl.users = acl::Acl::parse_file(&text, path).map_err(acl::AclConfigError::Other)?;
        // Unlike Redis (whose aclfile default user replaces requirepass), a
        // configured requirepass is never silently dropped.
        if let Some(pass) = cfg.requirepass.as_deref() {
            if let Some(d) = acl.users.get_mut("default") {
                let _ = d.apply(b"resetpass");
                let _ = d.apply(format!(">{pass}").as_bytes());
            }
        }
    }
    Ok(acl)
}

/// Validates the ACL part of the configuration (`user` lines, aclfile).
pub fn check_users_config(cfg: &ServerConfig) -> Result<(), acl::AclConfigError> {
    users_from_config(cfg).map(|_| ())
}

static RUN_ID: OnceLock<String> = OnceLock::new();
static CONFIG_FILE: OnceLock<String> = OnceLock::new();

/// INFO `run_id`: 40 random hex characters, chosen once per process.
pub fn run_id() -> &'static str {
    RUN_ID.get_or_init(|| {
        use rand::Rng;
        let bytes: [u8; 20] = rand::thread_rng().gen();
        hex::encode(bytes)
    })
}

/// Records the absolute path of the config file for INFO `config_file`
/// (called once by main; later calls are ignored).
pub fn set_config_file(path: &std::path::Path) {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let _ = CONFIG_FILE.set(abs.display().to_string());
}

/// INFO `config_file`: the path recorded by [`set_config_file`], else (like
/// Redis, which takes it from argv[1]) the first command-line argument when it
/// names an existing file.
pub fn config_file() -> &'static str {
    CONFIG_FILE.get_or_init(|| {
        std::env::args()
            .nth(1)
            .filter(|a| !a.starts_with('-') && std::path::Path::new(a).is_file())
            .and_then(|a| std::path::absolute(a).ok())
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    })
}
