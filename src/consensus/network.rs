//! Raft RPCs between daemons, carried over the sentinel port itself.
//!
//! A deployment whose NetworkPolicy or firewall only lets 26379 through between
//! sentinels needs no change: each RPC is one RESP command,
//! `RAFTINEL <cluster-id> <op> <json>`, answered with one bulk string of JSON.
//! The command is reserved for daemons: it is not in the command table (so
//! `COMMAND COUNT` stays 15, as clients expect from a 7.0 sentinel), and the
//! server accepts it only from the ACL user peers authenticate as
//! (sentinel-user / sentinel-pass, else requirepass). With a group secret, a
//! link first answers a challenge and every request and reply is signed
//! (`RAFTINEL <cluster-id> <op> <json> <seq> <signature>`, answered with
//! `[json, signature]`; see `trust`).
//!
//! Credentials are read from the running configuration at each connection,
//! and a connection opened with credentials that have changed since
//! (`SENTINEL CONFIG SET sentinel-user / sentinel-pass`) is replaced before
//! its next request.
//!
//! Failures are quiet and cheap (see [`PeerHealth`]): every failed RPC to a
//! peer delays the next one (exponentially, capped at a few heartbeats), and a
//! peer is reported once when it goes down, that is once its RPCs have kept
//! failing for [`DOWN_AFTER`] (`+raft-peer-down`), again at most
//! once a minute while it stays down, and once when it answers again
//! (`-raft-peer-down`). Every RPC runs under a deadline; a broken connection
//! is dropped and the next RPC opens a fresh one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use redis::aio::MultiplexedConnection;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use super::rpc::Addressed;
use super::trust::{self, ClientSession, GroupSecret, SessionKey};
use super::{ClusterId, Member, TypeConfig};
use crate::core::{split_addr, LinkAuth};

type NodeId = u64;

/// The reserved command name.
pub const RPC_COMMAND: &str = "RAFTINEL";

/// The cluster id a daemon names before it knows its group's: accepted for
/// `status` only (see `rpc::handle`).
pub const ANY_CLUSTER: &str = "*";

/// How long opening a connection to a peer may take.
const CONNECT_TTL: Duration = Duration::from_secs(1);

/// While a peer stays down, how often it is reported again.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// A peer is reported down once its RPCs have kept failing this long: one
/// RPC timed out on a busy machine (a stalled process, a slow disk) is not a
/// peer going down, and reporting it would make the log flap.
pub const DOWN_AFTER: Duration = Duration::from_secs(2);

/// The credentials RPC links authenticate with, read when a connection is
/// opened or reused: the running configuration's, not the start-up one's.
pub type CredentialsFn = Arc<dyn Fn() -> LinkAuth + Send + Sync>;

/// How RPC links prove who they are: the Redis credentials of the peer link,
/// and the group secret when there is one.
#[derive(Clone)]
pub struct PeerAuth {
    secret: Option<GroupSecret>,
    credentials: CredentialsFn,
    /// `tls-replication yes`: the TLS client configuration.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl PeerAuth {
    pub fn new(secret: Option<GroupSecret>, credentials: CredentialsFn) -> PeerAuth {
        PeerAuth {
            secret,
            credentials,
            tls: None,
        }
    }

    /// RPCs over TLS (`tls-replication yes`) when `tls` is set.
    pub fn with_tls(mut self, tls: Option<Arc<rustls::ClientConfig>>) -> PeerAuth {
        self.tls = tls;
        self
    }

    /// Fixed credentials (tests and tools).
    pub fn fixed(secret: Option<GroupSecret>, auth: LinkAuth) -> PeerAuth {
        PeerAuth::new(secret, Arc::new(move || auth.clone()))
    }

    pub fn secret(&self) -> Option<&GroupSecret> {
        self.secret.as_ref()
    }

    fn credentials(&self) -> LinkAuth {
        (self.credentials)()
    }
}

/// Creates one client per peer; shared settings for all of them.
#[derive(Clone)]
pub struct Network {
    pub cluster_id: ClusterId,
    auth: PeerAuth,
    health: Arc<PeerHealth>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient {
            target,
            link: self.link(&node.addr),
            health: self.health.clone(),
        }
    }
}

impl Network {
    /// `heartbeat` sets the backoff of failing RPCs (see [`Backoff`]).
    pub fn new(cluster_id: ClusterId, auth: PeerAuth, heartbeat: Duration) -> Network {
        Network {
            cluster_id,
            auth,
            health: Arc::new(PeerHealth::new(Backoff::for_heartbeat(heartbeat))),
        }
    }

    /// A lazily connected RPC link to the daemon at `addr`.
    pub fn link(&self, addr: &str) -> PeerLink {
        PeerLink {
            addr: addr.to_string(),
            cluster_id: self.cluster_id.clone(),
            auth: self.auth.clone(),
            conn: None,
        }
    }

    pub fn auth(&self) -> &PeerAuth {
        &self.auth
    }

    /// What openraft's clients know of each peer's state.
    pub fn health(&self) -> &Arc<PeerHealth> {
        &self.health
    }
}

/// An open connection: the multiplexed socket, the credentials it was
/// authenticated with, and its signing session when the group has a secret.
#[derive(Clone)]
struct Conn {
    mux: MultiplexedConnection,
    creds: LinkAuth,
    session: Option<Arc<ClientSession>>,
}

/// A connection to one peer daemon carrying `RAFTINEL` requests. Clones of a
/// connected link share its (multiplexed) connection, so concurrent calls are
/// pipelined on one socket.
#[derive(Clone)]
pub struct PeerLink {
    addr: String,
    cluster_id: ClusterId,
    auth: PeerAuth,
    conn: Option<Conn>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached or did not answer in time.
    #[error("peer {0} unreachable: {1}")]
    Unreachable(String, String),
    /// The peer answered with an error (authentication, cluster id, ...).
    #[error("peer {0} refused: {1}")]
    Refused(String, String),
    /// The request could not be encoded, or the reply made no sense.
    #[error("{0}")]
    Invalid(String),
}

impl CallError {
    /// The short reason given in `+raft-peer-down` lines.
    pub fn reason(&self) -> String {
        match self {
            CallError::Unreachable(_, why) => why.clone(),
            CallError::Refused(_, why) => format!("refused: {why}"),
            CallError::Invalid(why) => why.clone(),
        }
    }
}

/// An I/O error as an operator reads it (`connection refused`, not
/// `Connection refused (os error 111)`).
fn io_text(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A Redis error reply as the server wrote it (`NOPERM this user ...`).
fn reply_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    }
}

impl PeerLink {
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Opens the connection now (clones made afterwards share it).
    pub async fn connect(&mut self) -> Result<(), CallError> {
        self.connection().await.map(|_| ())
    }

    /// Forgets the connection: the next call opens a fresh one.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    fn unreachable(&self, why: impl Into<String>) -> CallError {
        CallError::Unreachable(self.addr.clone(), why.into())
    }

    fn refused(&self, e: &redis::RedisError) -> CallError {
        if e.code().is_some() {
            CallError::Refused(self.addr.clone(), reply_text(e))
        } else {
            self.unreachable(io_text(e))
        }
    }

    async fn connection(&mut self) -> Result<Conn, CallError> {
        let creds = self.auth.credentials();
        if let Some(c) = &self.conn {
            if c.creds == creds {
                return Ok(c.clone());
            }
        }
        self.conn = None;
        let conn = tokio::time::timeout(CONNECT_TTL, self.open(creds))
            .await
            .map_err(|_| self.unreachable("connect timed out"))??;
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    /// Connect, AUTH, and answer the challenge when the group has a secret.
    async fn open(&self, creds: LinkAuth) -> Result<Conn, CallError> {
        let (host, port) = split_addr(&self.addr).ok_or_else(|| self.unreachable("bad address"))?;
        let (stream, _) = crate::links::connect::connect(host, port)
            .await
            .map_err(|e| self.unreachable(io_text(e)))?;
        match &self.auth.tls {
            None => self.open_on(stream, creds).await,
            Some(tls) => {
                let stream = crate::links::tls::connect(tls, host, stream)
                    .await
                    .map_err(|e| self.unreachable(io_text(e)))?;
                self.open_on(stream, creds).await
            }
        }
    }

    /// [`PeerLink::open`] over the connected stream (TCP, or TLS over it).
    async fn open_on<S>(&self, stream: S, creds: LinkAuth) -> Result<Conn, CallError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // No `CLIENT SETINFO` at connect: a 7.0 sentinel answers it with an
        // error, one more round trip and one more error reply per connection.
        let info = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
        // Each call is bounded by its own deadline (`call`, `connection`):
        // no extra per-response timeout that would cut a longer one short.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let (mut mux, driver) = MultiplexedConnection::new_with_config(&info, stream, config)
            .await
            .map_err(|e| self.unreachable(io_text(e)))?;
        tokio::spawn(driver);
        if let Some(pass) = &creds.pass {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &creds.user {
                auth.arg(user);
            }
            auth.arg(pass);
            auth.query_async::<()>(&mut mux).await.map_err(|e| {
                CallError::Refused(self.addr.clone(), format!("AUTH: {}", reply_text(&e)))
            })?;
        }
        let session = match self.auth.secret() {
            None => None,
            Some(secret) => {
                let client_nonce = trust::nonce();
                let server_nonce: Vec<u8> = redis::cmd(RPC_COMMAND)
                    .arg(self.cluster())
                    .arg("challenge")
                    .arg(&client_nonce)
                    .query_async(&mut mux)
                    .await
                    .map_err(|e| self.refused(&e))?;
                if !trust::valid_nonce(&server_nonce) {
                    return Err(CallError::Invalid("malformed challenge reply".into()));
                }
                let key = SessionKey::derive(secret, client_nonce.as_bytes(), &server_nonce);
                Some(Arc::new(ClientSession::new(key)))
            }
        };
        Ok(Conn {
            mux,
            creds,
            session,
        })
    }

    /// One RPC: serialize, send, parse the peer's reply, all within `ttl`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        op: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, CallError> {
        let body = serde_json::to_vec(req).map_err(|e| CallError::Invalid(e.to_string()))?;
        let reply = match tokio::time::timeout(ttl, self.exchange(op, &body)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                // A refusal (cluster id, authentication) or a dead socket:
                // either way start from a fresh connection next time.
                self.conn = None;
                return Err(e);
            }
            Err(_) => {
                self.conn = None;
                return Err(self.unreachable(format!("{op} timed out after {ttl:?}")));
            }
        };
        serde_json::from_slice(&reply)
            .map_err(|e| CallError::Invalid(format!("bad {op} reply: {e}")))
    }

    /// The cluster id requests name: the group's, or `*` until it is known.
    fn cluster(&self) -> String {
        self.cluster_id.get().unwrap_or(ANY_CLUSTER).to_string()
    }

    async fn exchange(&mut self, op: &str, body: &[u8]) -> Result<Vec<u8>, CallError> {
        let mut conn = self.connection().await?;
        let cluster = self.cluster();
        let mut cmd = redis::cmd(RPC_COMMAND);
        cmd.arg(&cluster).arg(op).arg(body);
        let Some(session) = &conn.session else {
            return cmd
                .query_async::<Vec<u8>>(&mut conn.mux)
                .await
                .map_err(|e| self.refused(&e));
        };
        let (seq, sig) = session.sign(cluster.as_bytes(), op.as_bytes(), body);
        cmd.arg(seq).arg(sig);
        let (reply, sig): (Vec<u8>, Vec<u8>) = cmd
            .query_async(&mut conn.mux)
            .await
            .map_err(|e| self.refused(&e))?;
        if !session.verify_reply(seq, &reply, &sig) {
            return Err(CallError::Invalid(
                "the reply's signature does not verify".into(),
            ));
        }
        Ok(reply)
    }
}

// ------------------------------------------------------------------ backoff

/// Delays between attempts to a failing peer: `first`, doubling, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// Half a heartbeat first (one lost RPC must not cost a follower its
    /// leader), at most three heartbeats: a peer that comes back is heard
    /// from well within an election timeout's multiple, and a dead one costs
    /// a connection attempt every few heartbeats.
    pub fn for_heartbeat(heartbeat: Duration) -> Backoff {
        Backoff {
            first: (heartbeat / 2).max(Duration::from_millis(10)),
            cap: heartbeat * 3,
        }
    }

    /// The delay after `failures` consecutive failures (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.first
            .saturating_mul(1 << doublings)
            .min(self.cap.max(self.first))
    }
}

/// One peer as openraft's clients see it.
#[derive(Debug, Default)]
struct PeerState {
    /// Consecutive failed attempts.
    failures: u32,
    /// No attempt before this instant.
    retry_at: Option<Instant>,
    /// First failure of the current run of failures.
    failing_since: Option<Instant>,
    down: Option<Down>,
    /// RPCs actually sent (or tried) to the peer, for tests and INFO.
    attempts: u64,
}

#[derive(Debug)]
struct Down {
    addr: String,
    since: Instant,
    reported: Instant,
    /// Failures since the last report.
    unreported: u64,
}

/// Peer state shared by every client openraft creates (replication and vote
/// clients of the same peer, across terms): the backoff and the reports.
#[derive(Debug)]
pub struct PeerHealth {
    policy: Backoff,
    peers: Mutex<HashMap<NodeId, PeerState>>,
}

impl PeerHealth {
    pub fn new(policy: Backoff) -> PeerHealth {
        PeerHealth {
            policy,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, PeerState>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn policy(&self) -> Backoff {
        self.policy
    }

    /// How long until `target` may be tried again (None: now).
    pub fn wait(&self, target: NodeId) -> Option<Duration> {
        let now = Instant::now();
        self.peers()
            .get(&target)
            .and_then(|p| p.retry_at)
            .filter(|t| *t > now)
            .map(|t| t - now)
    }

    /// RPCs sent or tried to `target` so far.
    pub fn attempts(&self, target: NodeId) -> u64 {
        self.peers().get(&target).map_or(0, |p| p.attempts)
    }

    /// Peers currently reported down.
    pub fn down(&self) -> usize {
        self.peers().values().filter(|p| p.down.is_some()).count()
    }

    /// Whether the last attempt to `target` failed (its connection is suspect).
    fn failing(&self, target: NodeId) -> bool {
        self.peers().get(&target).is_some_and(|p| p.failures > 0)
    }

    fn attempt(&self, target: NodeId) {
        self.peers().entry(target).or_default().attempts += 1;
    }

    fn succeeded(&self, target: NodeId) {
        let mut peers = self.peers();
        let p = peers.entry(target).or_default();
        p.failures = 0;
        p.retry_at = None;
        p.failing_since = None;
        if let Some(d) = p.down.take() {
            tracing::warn!(
                channel = "-raft-peer-down",
                "-raft-peer-down {target} {}",
                d.addr
            );
            metrics::gauge!("raftinel_raft_peers_down").decrement(1.0);
        }
    }

    fn failed(&self, target: NodeId, addr: &str, reason: &str) {
        let now = Instant::now();
        let mut peers = self.peers();
        let p = peers.entry(target).or_default();
        p.failures = p.failures.saturating_add(1);
        p.retry_at = Some(now + self.policy.delay(p.failures));
        let since = *p.failing_since.get_or_insert(now);
        match &mut p.down {
            None if now - since < DOWN_AFTER => {}
            None => {
                tracing::warn!(
                    channel = "+raft-peer-down",
                    "+raft-peer-down {target} {addr} {reason}"
                );
                metrics::gauge!("raftinel_raft_peers_down").increment(1.0);
                p.down = Some(Down {
                    addr: addr.to_string(),
                    since,
                    reported: now,
                    unreported: 0,
                });
            }
            Some(d) => {
                d.unreported += 1;
                if now - d.reported >= REPORT_EVERY {
                    tracing::warn!(
                        channel = "+raft-peer-down",
                        "+raft-peer-down {target} {addr} {reason} #down for {}s, {} failed attempts since the last report",
                        (now - d.since).as_secs(),
                        d.unreported
                    );
                    d.reported = now;
                    d.unreported = 0;
                    d.addr = addr.to_string();
                }
            }
        }
    }
}

/// One attempt in flight: if openraft drops the call at its deadline before
/// it finished, the attempt still counts as failed.
struct Attempt<'a> {
    health: &'a PeerHealth,
    target: NodeId,
    addr: &'a str,
    done: bool,
}

impl Attempt<'_> {
    fn finish(mut self, result: Result<(), &str>) {
        self.done = true;
        match result {
            Ok(()) => self.health.succeeded(self.target),
            Err(reason) => self.health.failed(self.target, self.addr, reason),
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.health.failed(self.target, self.addr, "timed out");
        }
    }
}

// ------------------------------------------------------------------ openraft client

/// openraft's RPC client for one peer.
pub struct PeerClient {
    target: NodeId,
    link: PeerLink,
    health: Arc<PeerHealth>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>>;

impl PeerClient {
    /// One RPC, unless the peer is in backoff. Every failure is reported to
    /// openraft as `Unreachable`, the only error after which its replication
    /// backs off (any other one is retried at once).
    async fn call<Req: Serialize, Resp: DeserializeOwned, E: std::error::Error>(
        &mut self,
        op: &str,
        req: &Req,
        ttl: Duration,
    ) -> RpcResult<Resp, E> {
        if let Some(wait) = self.health.wait(self.target) {
            return Err(unreachable(format!("backing off for {wait:?}")));
        }
        if self.health.failing(self.target) {
            self.link.reset();
        }
        self.health.attempt(self.target);
        let addr = self.link.addr.clone();
        let attempt = Attempt {
            health: &self.health,
            target: self.target,
            addr: &addr,
            done: false,
        };
        match self.link.call(op, req, ttl).await {
            Ok(r) => {
                attempt.finish(Ok(()));
                Ok(r)
            }
            Err(e) => {
                attempt.finish(Err(&e.reason()));
                Err(unreachable(e.to_string()))
            }
        }
    }

    /// The peer's own answer. A fatal error means its Raft node stopped: a
    /// failure like any other (backoff, report); API errors go to openraft.
    // The error type is openraft's, as its trait methods return it.
    #[allow(clippy::result_large_err)]
    fn remote<T, E: std::error::Error>(
        &self,
        r: Result<T, RaftError<NodeId, E>>,
    ) -> RpcResult<T, E> {
        match r {
            Ok(v) => Ok(v),
            Err(RaftError::Fatal(f)) => {
                let why = format!("raft stopped: {f}");
                self.health.failed(self.target, &self.link.addr, &why);
                Err(unreachable(why))
            }
            Err(e) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                Member::new(self.link.addr.clone(), ""),
                e,
            ))),
        }
    }
}

fn unreachable<E: std::error::Error>(
    why: String,
) -> RPCError<NodeId, Member, RaftError<NodeId, E>> {
    RPCError::Unreachable(Unreachable::new(&CallError::Invalid(why)))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let r = self
            .call(
                "append",
                &Addressed::new(self.target, &rpc),
                option.hard_ttl(),
            )
            .await?;
        self.remote(r)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let r = self
            .call(
                "snapshot",
                &Addressed::new(self.target, &rpc),
                option.hard_ttl(),
            )
            .await?;
        self.remote(r)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let r = self
            .call(
                "vote",
                &Addressed::new(self.target, &rpc),
                option.hard_ttl(),
            )
            .await?;
        self.remote(r)
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // openraft sleeps this long before its next attempt: exactly until
        // the peer's backoff ends, so its retries and ours agree.
        let health = self.health.clone();
        let target = self.target;
        let first = health.policy().first;
        openraft::network::Backoff::new(std::iter::repeat_with(move || {
            health.wait(target).unwrap_or(first)
        }))
    }
}
