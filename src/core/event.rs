//! Sentinel events as values. The core decides *that* an event happens and
//! formats its payload exactly as redis-sentinel 7.0.15 does; the one place
//! that logs, counts and publishes it is `crate::observe::emit`.

/// Log level of an event, as Sentinel assigns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Verbose,
    Notice,
    Warning,
}

/// One Sentinel event: what happened, its exact payload, and the typed facts
/// the layers that render it need, so that nothing downstream reads them back
/// out of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// Exact payload published on the channel named `kind.channel()`.
    pub message: String,
    /// The master the event concerns: its own event, or one about a replica
    /// or a sentinel of it. None for process-wide events. Metrics are
    /// labelled with it.
    pub master: Option<String>,
    /// What kind of instance the event is about, for the events whose
    /// subject may be a master, a replica or a sentinel (`+sdown`, `-sdown`).
    pub subject: Option<super::types::InstanceKind>,
    /// Published only once the config flush emitted right before it is
    /// written: an epoch or a vote is durable before it is announced, as
    /// Sentinel flushes before it publishes `+new-epoch` or
    /// `+vote-for-leader`.
    pub after_flush: bool,
    /// Why it happened, for the log line only (never published: the payload
    /// stays Sentinel's).
    pub detail: Option<String>,
}

macro_rules! event_kinds {
    ($( $variant:ident => ($channel:literal, $level:ident) ),* $(,)?) => {
        /// Every event type Sentinel 7.0.15 emits, with its channel and level.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind { $( $variant ),* }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[ $( EventKind::$variant ),* ];
            /// The pub/sub channel (= the event type as Sentinel names it).
            pub fn channel(self) -> &'static str {
                match self { $( EventKind::$variant => $channel ),* }
            }
            pub fn level(self) -> Level {
                match self { $( EventKind::$variant => Level::$level ),* }
            }
        }
    };
}

event_kinds! {
    Monitor => ("+monitor", Warning),
    Unmonitor => ("-monitor", Warning),
    Set => ("+set", Warning),
    ResetMaster => ("+reset-master", Warning),
    Slave => ("+slave", Notice),
    Sentinel => ("+sentinel", Notice),
    SentinelAddressSwitch => ("+sentinel-address-switch", Notice),
    SentinelInvalidAddr => ("+sentinel-invalid-addr", Notice),
    SentinelAddressUpdate => ("+sentinel-address-update", Notice),
    Reboot => ("+reboot", Notice),
    RoleChangeMatch => ("+role-change", Verbose),
    RoleChangeMismatch => ("-role-change", Verbose),
    Sdown => ("+sdown", Warning),
    SdownCleared => ("-sdown", Warning),
    Odown => ("+odown", Warning),
    OdownCleared => ("-odown", Warning),
    NewEpoch => ("+new-epoch", Warning),
    TryFailover => ("+try-failover", Warning),
    VoteForLeader => ("+vote-for-leader", Warning),
    ElectedLeader => ("+elected-leader", Warning),
    FailoverAbortNotElected => ("-failover-abort-not-elected", Warning),
    FailoverStateSelectSlave => ("+failover-state-select-slave", Warning),
    FailoverAbortNoGoodSlave => ("-failover-abort-no-good-slave", Warning),
    SelectedSlave => ("+selected-slave", Warning),
    FailoverStateSendSlaveofNoone => ("+failover-state-send-slaveof-noone", Notice),
    FailoverStateWaitPromotion => ("+failover-state-wait-promotion", Notice),
    FailoverAbortSlaveTimeout => ("-failover-abort-slave-timeout", Warning),
    PromotedSlave => ("+promoted-slave", Warning),
    FailoverStateReconfSlaves => ("+failover-state-reconf-slaves", Warning),
    SlaveReconfSent => ("+slave-reconf-sent", Notice),
    SlaveReconfInprog => ("+slave-reconf-inprog", Notice),
    SlaveReconfDone => ("+slave-reconf-done", Notice),
    SlaveReconfSentTimeout => ("-slave-reconf-sent-timeout", Notice),
    SlaveReconfSentBe => ("+slave-reconf-sent-be", Notice),
    FailoverEndForTimeout => ("+failover-end-for-timeout", Warning),
    FailoverEnd => ("+failover-end", Warning),
    SwitchMaster => ("+switch-master", Warning),
    ConfigUpdateFrom => ("+config-update-from", Warning),
    ConvertToSlave => ("+convert-to-slave", Notice),
    FixSlaveConfig => ("+fix-slave-config", Notice),
    Tilt => ("+tilt", Warning),
    TiltExit => ("-tilt", Warning),
    ScriptError => ("-script-error", Warning),
    ScriptTimeout => ("-script-timeout", Warning),
    // raftinel's own: writes paused on a master cut off from the group
    // with its daemon, and the pause lifted (docs/data-safety.md).
    Fence => ("+fence", Warning),
    FenceLifted => ("-fence", Warning),
    // raftinel's own: the committed master is in its fenced-nodes (an
    // operator's or a pod annotation's), and the Raft leader asks a
    // coordinated switchover away from it.
    FencedMaster => ("+fenced-master", Warning),
    // raftinel's own: the master rebooted without its data while a replica
    // still holds the history the group recorded; it is failed over at
    // once (docs/data-safety.md), or the rule lets go.
    MasterBackEmpty => ("+master-back-empty", Warning),
    MasterBackEmptyCleared => ("-master-back-empty", Warning),
}

impl Event {
    /// An event concerning `master` (its own or one of its replicas' or
    /// sentinels'); `None` for process-wide events such as `+tilt`.
    pub fn new(kind: EventKind, message: String, master: Option<&str>) -> Event {
        Event {
            kind,
            message,
            master: master.map(str::to_string),
            subject: None,
            after_flush: false,
            detail: None,
        }
    }
}

/// `ip:port`, or `[ip]:port` for IPv6 literals: the name Sentinel gives a
/// replica and the form of every address in replies.
pub fn format_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The address of the master an instance belongs to, as shown in the `@ ...`
/// part of event payloads.
#[derive(Debug, Clone, Copy)]
pub struct MasterRef<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub port: u16,
}

/// The `%@` instance prefix of Sentinel event payloads:
/// `master <name> <ip> <port>`, or for a replica/sentinel
/// `<slave|sentinel> <name> <ip> <port> @ <master> <mip> <mport>`. Callers
/// pass names and addresses as shown (`instance::announced`): the IP a name
/// resolved to, or the name itself with announce-hostnames.
pub fn instance_prefix(
    kind: super::types::InstanceKind,
    name: &str,
    host: &str,
    port: u16,
    master: Option<MasterRef<'_>>,
) -> String {
    use super::types::InstanceKind;
    let type_str = match kind {
        InstanceKind::Master => "master",
        InstanceKind::Replica => "slave",
        InstanceKind::Sentinel => "sentinel",
    };
    match (kind, master) {
        (InstanceKind::Master, _) | (_, None) => format!("{type_str} {name} {host} {port}"),
        (_, Some(m)) => format!(
            "{type_str} {name} {host} {port} @ {} {} {}",
            m.name, m.host, m.port
        ),
    }
}
