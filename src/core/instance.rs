//! One monitored instance (master, replica or peer sentinel): its link state
//! and timers, its down flags and what its INFO last said. Sentinel keeps the
//! same record for the three kinds and only uses the fields that apply.
//!
//! Timer fields mirror redis-sentinel's `instanceLink` / `sentinelRedisInstance`
//! so Sentinel's timing rules (reconnects, PING, INFO, SDOWN) read the same
//! here.

use super::types::{InstanceId, InstanceKind, Millis};

/// The role an instance last reported in INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// INFO carried no `role:` line.
    Unknown,
    Master,
    Slave,
}

/// Connection state and the PING bookkeeping Sentinel keeps per link.
#[derive(Debug, Clone)]
pub struct Link {
    /// Masters and replicas have a pubsub link too; peer sentinels do not.
    pub has_pubsub: bool,
    pub cmd_up: bool,
    pub pc_up: bool,
    pub cc_conn_time: Millis,
    pub pc_conn_time: Millis,
    /// Last message seen on the pubsub link (our own hellos count).
    pub pc_last_activity: Millis,
    /// Commands sent on the command link and not yet answered.
    pub pending: u32,
    /// Time of the oldest unanswered PING (None = no PING pending). Starts at
    /// creation so an instance never reachable goes SDOWN after down-after.
    pub act_ping_time: Option<Millis>,
    pub last_ping_time: Option<Millis>,
    /// Last valid PING reply (PONG / LOADING / MASTERDOWN).
    pub last_avail_time: Millis,
    /// Last reply of any kind to PING.
    pub last_pong_time: Millis,
    pub last_reconn_time: Option<Millis>,
    // A command of each periodic kind is in flight: the driver answers
    // asynchronously, so without these a slow reply would make every tick
    // send the same INFO/hello/question again.
    pub info_inflight: bool,
    pub hello_inflight: bool,
    pub ask_inflight: bool,
    /// No hello PUBLISH on this link: writes are paused on the node and a
    /// PUBLISH (may-replicate) would block every later command of the link.
    pub hold_hello: bool,
    /// Since when every attempt to connect the command link was refused
    /// (reset by a connection, or by an attempt that failed otherwise).
    pub refused_since: Option<Millis>,
    /// The command link's last connection stayed on one host (its local
    /// address is the node's): this daemon sits next to the node, as a
    /// sidecar does (fencing, `failover/fence.rs`).
    pub same_host: bool,
}

impl Link {
    pub fn new(has_pubsub: bool, now: Millis) -> Link {
        Link {
            has_pubsub,
            cmd_up: false,
            pc_up: false,
            cc_conn_time: now,
            pc_conn_time: now,
            pc_last_activity: now,
            pending: 0,
            act_ping_time: Some(now),
            last_ping_time: None,
            last_avail_time: now,
            last_pong_time: now,
            last_reconn_time: None,
            info_inflight: false,
            hello_inflight: false,
            ask_inflight: false,
            hold_hello: false,
            refused_since: None,
            same_host: false,
        }
    }

    /// Sentinel's `link->disconnected`: any of the instance's links is down.
    pub fn disconnected(&self) -> bool {
        !self.cmd_up || (self.has_pubsub && !self.pc_up)
    }

    /// The command link went away: everything in flight on it is lost.
    pub fn cmd_lost(&mut self) {
        self.cmd_up = false;
        self.pending = 0;
        self.info_inflight = false;
        self.hello_inflight = false;
        self.ask_inflight = false;
    }

    pub fn reply_received(&mut self) {
        self.pending = self.pending.saturating_sub(1);
    }
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: InstanceId,
    pub kind: InstanceKind,
    /// Master: its configured name; replica: `ip:port`; sentinel: run id.
    pub name: String,
    /// The address as configured, announced or reported: an IP literal, or
    /// a hostname with resolve-hostnames. Identity and comparisons use it.
    pub host: String,
    /// The IP `host` last resolved to (Sentinel's `addr->ip`): the host
    /// itself for a literal, else what a link reported (`Input::Resolved`).
    /// Only for display, through [`announced`].
    pub ip: Option<String>,
    pub port: u16,
    pub runid: Option<String>,
    pub link: Link,
    pub down_after: u64,
    /// Master: `refused-down-after-milliseconds` (0 = off): connections
    /// refused for this long make it SDOWN before down-after.
    pub refused_down_after: u64,
    /// Its SDOWN comes from refused connections only (down-after has not
    /// passed): ODOWN then needs every daemon of the group to agree.
    pub s_down_refused_only: bool,

    pub s_down: bool,
    pub o_down: bool,
    /// Peer sentinel: its last answer said our master is down.
    pub master_down: bool,
    pub script_kill_sent: bool,
    /// Master: run id changed while master-reboot-down-after-period is set.
    pub master_reboot: bool,
    pub master_reboot_since: Millis,
    /// Master: seen rebooting without data onto another replication id than
    /// the group recorded with data (`failover::empty`), since then.
    pub back_empty: Option<Millis>,
    /// Kept after recovery: it feeds the "no down within X" checks.
    pub s_down_since: Option<Millis>,
    pub o_down_since: Option<Millis>,

    /// Raw text of the last INFO reply and when it arrived.
    pub info: Option<String>,
    pub info_refresh: Option<Millis>,
    pub role_reported: Role,
    pub role_reported_time: Millis,
    /// From INFO `master_link_down_since_seconds`, in ms (-1000 = never up).
    pub master_link_down_since: i64,
    pub slave_master_host: Option<String>,
    pub slave_master_port: i64,
    pub slave_master_link_up: bool,
    pub slave_priority: i64,
    pub slave_repl_offset: u64,
    pub replica_announced: i64,
    pub slave_conf_change_time: Millis,
    /// Replication history from INFO (any role), for the failover's safety
    /// rules: replication ids and the node's own `master_repl_offset`.
    pub repl_id: Option<String>,
    pub repl_id2: Option<String>,
    pub repl_offset: Option<u64>,
    /// INFO replies received so far (orders "a reply to an INFO sent after X").
    pub info_count: u64,
    /// Last corrective SLAVEOF (+convert-to-slave / +fix-slave-config) sent.
    pub fix_sent_at: Option<Millis>,

    /// Last successful hello PUBLISH to this instance.
    pub last_pub_time: Millis,
    /// Peer sentinel: last hello received from it.
    pub last_hello_time: Millis,
    /// Peer sentinel: last valid answer to is-master-down-by-addr.
    pub last_master_down_reply_time: Millis,
    /// Peer sentinel: the leader it voted for and the epoch of that vote.
    pub leader: Option<String>,
    pub leader_epoch: u64,
}

/// Sentinel's `announceSentinelAddr`: the address shown or sent for an
/// instance (replies, events, INFO, hellos, SLAVEOF, scripts; not the config
/// rewrite, see `Sentinel::persisted`). With announce-hostnames, the host as
/// configured; without, the IP it resolved to. Sentinel resolves when it creates the address; here
/// the links resolve at each connect, so a name not resolved yet (before
/// its first connect attempt, or one that never resolved, where Sentinel
/// shows an empty address) is shown as configured.
pub fn announced<'a>(host: &'a str, ip: Option<&'a str>, announce_hostnames: bool) -> &'a str {
    match ip {
        Some(ip) if !announce_hostnames => ip,
        _ => host,
    }
}

/// `Some(host)` when `host` is an IP literal (its own resolution).
pub fn literal_ip(host: &str) -> Option<String> {
    host.parse::<std::net::IpAddr>()
        .is_ok()
        .then(|| host.to_string())
}

/// Failover flags an instance description shows besides its own state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlagExtras {
    pub failover_in_progress: bool,
    pub promoted: bool,
    /// `reconf_sent`, `reconf_inprog` or `reconf_done`.
    pub reconf: Option<&'static str>,
    pub force_failover: bool,
    /// raftinel: the daemon is in a group but knows no Raft leader (cut off
    /// from the majority, or an election under way): its answers are the
    /// last committed ones and nothing can be decided now.
    pub no_quorum: bool,
}

pub const DEFAULT_SLAVE_PRIORITY: i64 = 100;

impl Instance {
    /// No hello PUBLISH to it now: writes may be paused on the node
    /// (`Link::hold_hello`), or it is a master whose command link came back
    /// and whose INFO is not read yet: it may have restarted empty, and
    /// another daemon may have paused it already (`failover/empty.rs`).
    pub fn hello_held(&self) -> bool {
        self.link.hold_hello
            || (self.kind == InstanceKind::Master
                && self.info_refresh.is_none_or(|t| t < self.link.cc_conn_time))
    }

    pub fn new(
        id: InstanceId,
        kind: InstanceKind,
        name: String,
        host: String,
        port: u16,
        down_after: u64,
        now: Millis,
    ) -> Instance {
        Instance {
            id,
            kind,
            name,
            ip: literal_ip(&host),
            host,
            port,
            runid: None,
            link: Link::new(kind != InstanceKind::Sentinel, now),
            down_after,
            refused_down_after: 0,
            s_down_refused_only: false,
            s_down: false,
            o_down: false,
            master_down: false,
            script_kill_sent: false,
            master_reboot: false,
            back_empty: None,
            master_reboot_since: 0,
            s_down_since: None,
            o_down_since: None,
            info: None,
            info_refresh: None,
            role_reported: match kind {
                InstanceKind::Replica => Role::Slave,
                _ => Role::Master,
            },
            role_reported_time: now,
            master_link_down_since: 0,
            slave_master_host: None,
            slave_master_port: 0,
            slave_master_link_up: false,
            slave_priority: DEFAULT_SLAVE_PRIORITY,
            slave_repl_offset: 0,
            replica_announced: 1,
            slave_conf_change_time: now,
            repl_id: None,
            repl_id2: None,
            repl_offset: None,
            info_count: 0,
            fix_sent_at: None,
            last_pub_time: now,
            last_hello_time: now,
            last_master_down_reply_time: now,
            leader: None,
            leader_epoch: 0,
        }
    }

    /// Whether `host` names this instance's host: the same name (case
    /// insensitively) or the IP it resolved to (Sentinel's
    /// `sentinelAddrEqualsHostname` compares resolved addresses).
    pub fn at_host(&self, host: &str) -> bool {
        self.host.eq_ignore_ascii_case(host) || self.ip.as_deref() == Some(host)
    }

    /// The address shown for this instance (see [`announced`]).
    pub fn shown_host(&self, announce_hostnames: bool) -> &str {
        announced(&self.host, self.ip.as_deref(), announce_hostnames)
    }

    /// The `name` shown for this instance: a replica's is its shown address
    /// (`ip:port`, or `hostname:port` with announce-hostnames), as Sentinel
    /// names a replica by its announced address.
    pub fn shown_name(&self, announce_hostnames: bool) -> std::borrow::Cow<'_, str> {
        match self.kind {
            InstanceKind::Replica if !announce_hostnames && self.ip.is_some() => {
                super::event::format_addr(self.shown_host(false), self.port).into()
            }
            _ => self.name.as_str().into(),
        }
    }

    /// The comma-joined `flags` field of instance descriptions, in Sentinel's
    /// fixed order. `failover_in_progress` is the master's flag.
    pub fn flags(&self, failover_in_progress: bool) -> String {
        self.flags_with(&FlagExtras {
            failover_in_progress,
            ..FlagExtras::default()
        })
    }

    /// `flags` with the failover's per-instance flags (promoted, reconf_*).
    pub fn flags_with(&self, x: &FlagExtras) -> String {
        let failover_in_progress = x.failover_in_progress;
        let mut f: Vec<&str> = Vec::new();
        if self.s_down {
            f.push("s_down");
        }
        if self.o_down {
            f.push("o_down");
        }
        f.push(match self.kind {
            InstanceKind::Master => "master",
            InstanceKind::Replica => "slave",
            InstanceKind::Sentinel => "sentinel",
        });
        if self.link.disconnected() {
            f.push("disconnected");
        }
        if self.master_down {
            f.push("master_down");
        }
        if failover_in_progress {
            f.push("failover_in_progress");
        }
        if x.promoted {
            f.push("promoted");
        }
        if let Some(r) = x.reconf {
            f.push(r);
        }
        if x.force_failover {
            f.push("force_failover");
        }
        if self.script_kill_sent {
            f.push("script_kill_sent");
        }
        if x.no_quorum {
            f.push("no_quorum");
        }
        f.join(",")
    }
}
