//! The vocabulary shared by the core and its driver: time, instance ids,
//! inputs and actions.

use super::event::Event;

/// Monotonic milliseconds since an arbitrary origin fixed by the driver.
pub type Millis = u64;

/// Stable handle of one monitored instance (a master, a replica or a peer
/// sentinel under a master). Allocated by the core, never reused within a
/// process; the driver keys its links by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceKind {
    Master,
    Replica,
    Sentinel,
}

/// Which of an instance's connections an input or action concerns. Masters and
/// replicas have both; peer sentinels only a command link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    Command,
    PubSub,
}

/// Credentials for an outbound link, as Sentinel chooses them (§4.17).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkAuth {
    pub user: Option<String>,
    pub pass: Option<String>,
}

/// What the driver needs to open and run the links of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub id: InstanceId,
    pub kind: InstanceKind,
    /// Host as configured (IP literal, or hostname with resolve-hostnames).
    pub host: String,
    pub port: u16,
    pub auth: LinkAuth,
    /// `CLIENT SETNAME` value prefix: `sentinel-<first 8 hex of myid>`; the
    /// driver appends `-cmd` / `-pubsub`.
    pub client_name: String,
    /// The master's `rename-command` table (lower-case original -> new name).
    pub renames: Vec<(String, String)>,
}

/// A reply to PING, classified the way Sentinel classifies it (§4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingReply {
    /// `+PONG`, `-LOADING...`, `-MASTERDOWN...`: a valid reply.
    Valid { pong: bool },
    /// Any other reply (`-NOAUTH`, `-MISCONF`, `-BUSY`, ...): "some reply" only.
    Other { busy: bool },
}

/// Everything that can happen to the core.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Periodic tick (the driver ticks every 100 ms or so).
    Tick,
    LinkUp { id: InstanceId, link: LinkKind },
    LinkDown { id: InstanceId, link: LinkKind },
    PingReply { id: InstanceId, reply: PingReply },
    /// Raw INFO text from a master or replica.
    InfoReply { id: InstanceId, text: String },
    /// Reply to our hello PUBLISH: `ok` = non-error reply.
    PublishReply { id: InstanceId, ok: bool },
    /// A message on `__sentinel__:hello` seen on a pubsub link (`via` = the
    /// instance whose link carried it), or sent to us by a peer with PUBLISH
    /// (`via` = None).
    Hello { via: Option<InstanceId>, payload: String },
    /// Reply of a peer sentinel to `SENTINEL is-master-down-by-addr`:
    /// `(down, leader runid or "*", leader epoch)`; None if malformed.
    MasterDownReply {
        peer: InstanceId,
        reply: Option<(i64, String, i64)>,
    },
    /// A command sent on a link got no reply within its timeout.
    CommandTimeout { id: InstanceId },
}

/// Everything the core asks the driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open (or re-open) the links of an instance.
    Connect(LinkSpec),
    /// Close the links of an instance (removed, reset, or forced reconnect).
    Disconnect { id: InstanceId, link: Option<LinkKind> },
    SendPing { id: InstanceId },
    SendInfo { id: InstanceId },
    /// Publish a hello on the instance's command link. The driver completes
    /// the payload with the sentinel IP (announce-ip, else the local address of
    /// that link's socket) via [`HelloOut::payload`].
    SendHello { id: InstanceId, hello: HelloOut },
    /// `SENTINEL is-master-down-by-addr <ip> <port> <epoch> <runid|*>` to a peer.
    AskMasterDown {
        peer: InstanceId,
        master_ip: String,
        master_port: u16,
        epoch: u64,
        runid: String,
    },
    /// `SCRIPT KILL` once to a master answering -BUSY while SDOWN.
    ScriptKill { id: InstanceId },
    /// The reconfiguration transaction of §4.11 (`None` = `SLAVEOF NO ONE`).
    Reconfigure {
        id: InstanceId,
        replicaof: Option<(String, u16)>,
    },
    /// Publish, log and count an event.
    Emit(Event),
    /// Rewrite the config file with the current persisted state.
    Flush,
}

/// A hello message to send, missing only the sentinel's own IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloOut {
    /// `announce-ip` if set; else the driver uses the link's local address.
    pub announce_ip: Option<String>,
    pub port: u16,
    pub runid: String,
    pub current_epoch: u64,
    pub master_name: String,
    pub master_ip: String,
    pub master_port: u16,
    pub master_config_epoch: u64,
}

impl HelloOut {
    /// The 8 comma-separated fields of §4.5.
    pub fn payload(&self, local_ip: &str) -> String {
        let ip = self.announce_ip.as_deref().unwrap_or(local_ip);
        format!(
            "{},{},{},{},{},{},{},{}",
            ip,
            self.port,
            self.runid,
            self.current_epoch,
            self.master_name,
            self.master_ip,
            self.master_port,
            self.master_config_epoch
        )
    }
}
