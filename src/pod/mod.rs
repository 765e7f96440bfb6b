//! What the daemon does for the pods it runs in (Kubernetes; see
//! docs/kubernetes.md): its identity from the pod's name, the kubelet's
//! probes, the status snapshot the pod commands read, `boot-redis` (the
//! redis container's entry point: never a master the group did not choose)
//! and `ctl` (status, and the preStop switchover away from a master pod).
//!
//! Everything here reads the daemon's state through `status::snapshot` and
//! acts on Redis or the group through the commands any client has
//! (`SENTINEL FAILOVER`, `INFO`, `CLIENT UNPAUSE`), so it stays out of the
//! core and the consensus layer. Inside the daemon it is given [`Handles`]:
//! read access to the core and the Raft node, nothing that carries actions
//! out.

pub mod boot;
pub mod client;
pub mod ctl;
pub mod identity;
pub mod labels;
pub mod local;
pub mod probe;
pub mod rdb;
pub mod repoint;
pub mod status;

use std::sync::{Arc, MutexGuard, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::consensus::node::RaftNode;
use crate::core::{Millis, Sentinel};

/// The core as the pod code reads it: short synchronous sections, never
/// across an `.await`.
pub trait Core: Send + Sync {
    fn lock(&self) -> MutexGuard<'_, Sentinel>;
    /// The core if it is not locked right now (the liveness probe must not
    /// wait on a stalled holder).
    fn try_lock(&self) -> Option<MutexGuard<'_, Sentinel>>;
    /// The core's clock.
    fn now(&self) -> Millis;
}

/// What the pod code is given by the daemon it runs in.
#[derive(Clone)]
pub struct Handles {
    pub core: Arc<dyn Core>,
    /// The local Raft node, once started.
    pub raft: Arc<OnceLock<RaftNode>>,
    /// Cancelled when the daemon stops.
    pub shutdown: CancellationToken,
}
