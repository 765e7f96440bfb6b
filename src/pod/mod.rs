//! What the daemon does for the pods it runs in (Kubernetes; see
//! docs/kubernetes.md): its identity from the pod's name, the kubelet's
//! probes, the status snapshot the pod commands read, `boot-redis` (the
//! redis container's entry point: never a master the group did not choose)
//! and `ctl` (status, and the preStop switchover away from a master pod).
//!
//! Everything here reads the daemon's state through `status::snapshot` and
//! acts on Redis or the group through the commands any client has
//! (`SENTINEL FAILOVER`, `INFO`, `CLIENT UNPAUSE`), so it stays out of the
//! core and the consensus layer.

pub mod boot;
pub mod client;
pub mod ctl;
pub mod identity;
pub mod local;
pub mod probe;
pub mod rdb;
pub mod repoint;
pub mod status;
