//! The vocabulary shared by the core and its driver: time, instance ids,
//! inputs and actions.

use super::event::Event;

/// Monotonic milliseconds since an arbitrary origin fixed by the driver.
pub type Millis = u64;

/// Splits `host:port` (or `[v6]:port`) into the host, without its
/// brackets, and the port.
pub fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

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

/// Credentials for an outbound link, as Sentinel chooses them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LinkAuth {
    pub user: Option<String>,
    pub pass: Option<String>,
}

/// What the driver needs to open and run the links of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// A reply to PING, classified the way Sentinel classifies it.
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
    LinkUp {
        id: InstanceId,
        link: LinkKind,
    },
    LinkDown {
        id: InstanceId,
        link: LinkKind,
    },
    /// The command link could not connect because the host refused the
    /// connection (a live host with nothing listening on the port): a
    /// `LinkDown` that also feeds `refused-down-after-milliseconds`.
    Refused {
        id: InstanceId,
    },
    PingReply {
        id: InstanceId,
        reply: PingReply,
    },
    /// Raw INFO text from a master or replica.
    InfoReply {
        id: InstanceId,
        text: String,
    },
    /// Reply to our hello PUBLISH: `ok` = non-error reply.
    PublishReply {
        id: InstanceId,
        ok: bool,
    },
    /// A message on `__sentinel__:hello` seen on a pubsub link (`via` = the
    /// instance whose link carried it), or sent to us by a peer with PUBLISH
    /// (`via` = None).
    Hello {
        via: Option<InstanceId>,
        payload: String,
    },
    /// Reply of a peer sentinel to `SENTINEL is-master-down-by-addr`:
    /// `(down, leader runid or "*", leader epoch)`; None if malformed.
    MasterDownReply {
        peer: InstanceId,
        reply: Option<(i64, String, i64)>,
    },
    /// Reply to `Action::PauseWrites`: the INFO read in the same pipeline
    /// right after `CLIENT PAUSE` took effect (None: the pause failed or
    /// timed out).
    PauseReply {
        id: InstanceId,
        info: Option<String>,
    },
    /// The command link of `id` resolved its host (a name) to `ip` before
    /// connecting, as Sentinel re-resolves at each reconnect: the address
    /// shown without announce-hostnames.
    Resolved {
        id: InstanceId,
        ip: String,
    },
    /// A command sent on a link got no reply within its timeout.
    CommandTimeout {
        id: InstanceId,
    },
    /// The command link of `id` connected, from one of the node's own
    /// addresses (`same`) or from another host.
    SameHost {
        id: InstanceId,
        same: bool,
    },
    /// This daemon's contact with its group changed: `in_touch` is false
    /// once the Raft lease passed without the leader (for a leader: without
    /// a majority's acknowledgement).
    GroupContact {
        in_touch: bool,
    },
    /// The group's committed state after the local Raft node applied entries
    /// (consensus: the only source of master addresses and failover steps).
    Committed(Box<crate::core::group::GroupState>),
    /// This daemon's place in the Raft group changed.
    Raft(RaftView),
}

/// What the core needs to know about the local Raft node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RaftView {
    /// This daemon's Raft node id (persisted with its Raft data).
    pub node_id: u64,
    /// The node belongs to an initialized group.
    pub initialized: bool,
    /// The node is the Raft leader (and so drives failovers).
    pub is_leader: bool,
    /// Number of voters in the group.
    pub voters: usize,
    /// The current Raft leader, if one is known (CKQUORUM answers NOQUORUM
    /// without one).
    pub leader: Option<u64>,
}

/// Everything the core asks the driver to do, in the order it must be done.
///
/// Each action states what it waits for ([`Action::order`]); the driver's
/// one executor honours it. Two orderings are not conditions on an action
/// because the core enforces them itself, by emitting the second action only
/// once its input arrives: *commit before act* (a `Reconfigure`, `PauseWrites`
/// or `+switch-master` of a failover step follows the `Input::Committed` of
/// that step, never its `Propose`), and *publish before demote* (the old
/// master is demoted once the daemons' `+switch-master` publications are
/// committed, or a bound after the switch).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open (or re-open) the links of an instance.
    Connect(LinkSpec),
    /// Close the links of an instance (removed, reset, or forced reconnect).
    Disconnect {
        id: InstanceId,
        link: Option<LinkKind>,
    },
    SendPing {
        id: InstanceId,
    },
    SendInfo {
        id: InstanceId,
    },
    /// Publish a hello on the instance's command link. The driver completes
    /// the payload with the sentinel IP (announce-ip, else the local address of
    /// that link's socket) via [`HelloOut::payload`].
    SendHello {
        id: InstanceId,
        hello: HelloOut,
    },
    /// `SENTINEL is-master-down-by-addr <ip> <port> <epoch> <runid|*>` to a peer.
    AskMasterDown {
        peer: InstanceId,
        master_ip: String,
        master_port: u16,
        epoch: u64,
        runid: String,
    },
    /// `SCRIPT KILL` once to a master answering -BUSY while SDOWN.
    ScriptKill {
        id: InstanceId,
    },
    /// Sentinel's reconfiguration transaction (MULTI, SLAVEOF, CONFIG
    /// REWRITE, CLIENT KILL, EXEC; `None` = `SLAVEOF NO ONE`).
    Reconfigure {
        id: InstanceId,
        replicaof: Option<(String, u16)>,
    },
    /// `CLIENT PAUSE <ms> WRITE` then `INFO`, pipelined in one write, on a
    /// master (coordinated failover: no write is acknowledged by the old
    /// master while the replica catches up). Answered by `Input::PauseReply`.
    PauseWrites {
        id: InstanceId,
        ms: u64,
    },
    /// `CLIENT UNPAUSE` (end of a coordinated failover, or its abort).
    Unpause {
        id: InstanceId,
    },
    /// Propose a command to the Raft group (committed through the leader;
    /// the result comes back as `Input::Committed`).
    Propose(crate::core::group::Command),
    /// Ask the group to remove voter `node`, which `SENTINEL RESET` did not
    /// rediscover (the leader removes it only if it is silent and the rest
    /// keeps a live majority).
    ForgetDaemon {
        node: u64,
    },
    /// Publish, log and count an event.
    Emit(Event),
    /// Rewrite the config file with the current persisted state.
    Flush,
    /// Queue a script run: `argv[0]` is the path. A master's
    /// notification-script right after each warning event naming it
    /// (`<path> <type> <payload>`), its client-reconfig-script at a switch.
    RunScript {
        argv: Vec<String>,
    },
    /// A line for the operator's log, at warning level: something the core
    /// was asked to do and could not (the core itself does no I/O).
    Warn(String),
    /// `SENTINEL SIMULATE-FAILURE`: log Sentinel's crash line and exit with
    /// status 99, right after the step the flag names.
    SimulatedCrash,
}

/// What an action waits for before the executor carries it out (see
/// [`Action::order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Monitoring I/O whose timing matters more than its place (connects,
    /// PING, INFO, hellos, questions to peers): carried out at once, even
    /// ahead of effects still waiting.
    Free,
    /// After every effect emitted before it: events are published in the
    /// order the core emitted them, a `+switch-master` before the proposal
    /// that says it was published, an event before the command it reports
    /// is sent.
    InOrder,
    /// In order, and only once the config flushes emitted before it are
    /// written: *persist before publish*.
    AfterFlush,
    /// A config flush: written in order with the effects around it; the
    /// effects after it wait for it only when they say so (`AfterFlush`).
    Flush,
}

impl Action {
    /// What this action waits for. Link commands that change a node
    /// (`Reconfigure`, `PauseWrites`, `Unpause`, `SCRIPT KILL`) are effects,
    /// kept in order with the events that report them.
    pub fn order(&self) -> Order {
        match self {
            Action::Connect(_)
            | Action::Disconnect { .. }
            | Action::SendPing { .. }
            | Action::SendInfo { .. }
            | Action::SendHello { .. }
            | Action::AskMasterDown { .. } => Order::Free,
            Action::Flush => Order::Flush,
            Action::Emit(ev) if ev.after_flush => Order::AfterFlush,
            Action::Emit(_)
            | Action::ScriptKill { .. }
            | Action::Reconfigure { .. }
            | Action::PauseWrites { .. }
            | Action::Unpause { .. }
            | Action::Propose(_)
            | Action::ForgetDaemon { .. }
            | Action::RunScript { .. }
            | Action::Warn(_)
            | Action::SimulatedCrash => Order::InOrder,
        }
    }

    /// Whether the links carry it out (the rest is the driver's own work).
    pub fn is_link(&self) -> bool {
        matches!(
            self,
            Action::Connect(_)
                | Action::Disconnect { .. }
                | Action::SendPing { .. }
                | Action::SendInfo { .. }
                | Action::SendHello { .. }
                | Action::AskMasterDown { .. }
                | Action::ScriptKill { .. }
                | Action::Reconfigure { .. }
                | Action::PauseWrites { .. }
                | Action::Unpause { .. }
        )
    }
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
    /// The 8 comma-separated fields of a Sentinel hello.
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

/// What the core needs to know about the process it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreOptions {
    /// The listening port (announced in hellos unless `announce-port` is set).
    pub port: u16,
    /// Seed of the core's only source of randomness (myid, desync delays), so a
    /// simulator can replay a run exactly.
    pub rng_seed: u64,
    /// `requirepass`: used to AUTH to peer sentinels when `sentinel-pass` is not
    /// set (legacy "all sentinels share one password").
    pub requirepass: Option<String>,
}

impl Default for CoreOptions {
    fn default() -> Self {
        CoreOptions {
            port: 26379,
            rng_seed: 0,
            requirepass: None,
        }
    }
}

/// Sentinel's process-wide timing constants, changeable at run time with
/// `SENTINEL DEBUG` and never persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub info_period: u64,
    pub ping_period: u64,
    pub ask_period: u64,
    pub publish_period: u64,
    pub default_down_after: u64,
    pub default_failover_timeout: u64,
    pub tilt_trigger: u64,
    pub tilt_period: u64,
    pub slave_reconf_timeout: u64,
    pub min_link_reconnect_period: u64,
    pub election_timeout: u64,
    pub script_max_runtime: u64,
    pub script_retry_delay: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            info_period: 10_000,
            ping_period: 1_000,
            ask_period: 1_000,
            publish_period: 2_000,
            default_down_after: 30_000,
            default_failover_timeout: 180_000,
            tilt_trigger: 2_000,
            tilt_period: 30_000,
            slave_reconf_timeout: 10_000,
            min_link_reconnect_period: 15_000,
            election_timeout: 10_000,
            script_max_runtime: 60_000,
            script_retry_delay: 30_000,
        }
    }
}
