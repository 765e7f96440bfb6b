//! Raft RPCs between daemons, carried over the sentinel port itself.
//!
//! A deployment whose NetworkPolicy or firewall only lets 26379 through between
//! sentinels needs no change: each RPC is one RESP command,
//! `RAFTINEL <cluster-id> <op> <json>`, answered with one bulk string of JSON.
//! The command is reserved for daemons: it is not in the command table (so
//! `COMMAND COUNT` stays 15, as clients expect from a 7.0 sentinel) and it is
//! authenticated exactly like Sentinel's links to its peers (sentinel-user /
//! sentinel-pass, else requirepass). Every RPC runs under the TTL openraft
//! gives it; a broken connection is dropped and re-opened on the next RPC.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use redis::aio::MultiplexedConnection;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::TypeConfig;
use crate::core::LinkAuth;

type NodeId = u64;

/// The reserved command name.
pub const RPC_COMMAND: &str = "RAFTINEL";

/// How long opening a connection to a peer may take.
const CONNECT_TTL: Duration = Duration::from_secs(1);

/// Creates one client per peer; shared settings for all of them.
#[derive(Clone)]
pub struct Network {
    pub cluster_id: String,
    pub auth: LinkAuth,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            link: self.link(&node.addr),
        }
    }
}

impl Network {
    /// A lazily connected RPC link to the daemon at `addr`.
    pub fn link(&self, addr: &str) -> PeerLink {
        PeerLink {
            addr: addr.to_string(),
            cluster_id: self.cluster_id.clone(),
            auth: self.auth.clone(),
            conn: None,
        }
    }
}

/// openraft's RPC client for one peer.
pub struct PeerClient {
    target: NodeId,
    link: PeerLink,
}

/// A connection to one peer daemon carrying `RAFTINEL` requests. Clones of a
/// connected link share its (multiplexed) connection, so concurrent calls are
/// pipelined on one socket.
#[derive(Clone)]
pub struct PeerLink {
    addr: String,
    cluster_id: String,
    auth: LinkAuth,
    conn: Option<MultiplexedConnection>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("peer {0} unreachable: {1}")]
    Unreachable(String, String),
    #[error("{0}")]
    Network(String),
}

/// Splits `host:port` (or `[v6]:port`).
pub fn split_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

impl PeerLink {
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Opens the connection now (clones made afterwards share it).
    pub async fn connect(&mut self) -> Result<(), CallError> {
        self.connection().await.map(|_| ())
    }

    async fn connection(&mut self) -> Result<MultiplexedConnection, CallError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let unreachable = |e: String| CallError::Unreachable(self.addr.clone(), e);
        let (host, port) =
            split_addr(&self.addr).ok_or_else(|| unreachable("bad address".into()))?;
        let (stream, _) =
            tokio::time::timeout(CONNECT_TTL, crate::links::connect::connect(&host, port))
                .await
                .map_err(|_| unreachable("connect timed out".into()))?
                .map_err(|e| unreachable(e.to_string()))?;
        let info = redis::RedisConnectionInfo::default();
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(CONNECT_TTL));
        let (mut conn, driver) = MultiplexedConnection::new_with_config(&info, stream, config)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(driver);
        if let Some(pass) = &self.auth.pass {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &self.auth.user {
                auth.arg(user);
            }
            auth.arg(pass);
            auth.query_async::<()>(&mut conn)
                .await
                .map_err(|e| unreachable(format!("AUTH refused: {e}")))?;
        }
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    /// One RPC: serialize, send under `ttl`, parse the peer's reply.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        op: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, CallError> {
        let body = serde_json::to_vec(req).map_err(|e| CallError::Network(e.to_string()))?;
        let mut conn = self.connection().await?;
        let mut cmd = redis::cmd(RPC_COMMAND);
        cmd.arg(&self.cluster_id).arg(op).arg(body);
        let reply = tokio::time::timeout(ttl, cmd.query_async::<Vec<u8>>(&mut conn)).await;
        let bytes = match reply {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                // A server-side refusal (bad cluster id, auth) or a dead socket:
                // either way start from a fresh connection next time.
                self.conn = None;
                return Err(CallError::Network(e.to_string()));
            }
            Err(_) => {
                self.conn = None;
                return Err(CallError::Network(format!("{op} timed out after {ttl:?}")));
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| CallError::Network(e.to_string()))
    }
}

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        op: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, CallError> {
        self.link.call(op, req, ttl).await
    }

    fn to_rpc_error<E: std::error::Error>(
        &self,
        e: CallError,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        match e {
            CallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(_) => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            BasicNode::new(self.link.addr.clone()),
            e,
        ))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let r: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> = self
            .call("append", &rpc, option.hard_ttl())
            .await
            .map_err(|e| self.to_rpc_error(e))?;
        r.map_err(|e| self.remote(e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let r: Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> =
            self.call("snapshot", &rpc, option.hard_ttl())
                .await
                .map_err(|e| self.to_rpc_error(e))?;
        r.map_err(|e| self.remote(e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let r: Result<VoteResponse<NodeId>, RaftError<NodeId>> = self
            .call("vote", &rpc, option.hard_ttl())
            .await
            .map_err(|e| self.to_rpc_error(e))?;
        r.map_err(|e| self.remote(e))
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Loopback peers come back fast; retrying every 200 ms keeps a
        // restarted daemon's catch-up well inside down-after.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
