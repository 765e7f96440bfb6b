//! The sentinel state: every monitored master with its replicas and peer
//! sentinels, epochs, and the monitoring rules applied to them on each tick
//! and on each reply (contract §4.2-4.8, §4.12, §4.15).
//!
//! `handle` is the only entry point that changes state from the outside world;
//! SENTINEL subcommands go through the methods in `commands.rs`. Both return
//! [`Action`]s in the order redis-sentinel performs the corresponding effects
//! (e.g. `Flush` before `+monitor`).
//!
//! TILT is deliberately absent: Sentinel enters TILT when its wall clock jumps
//! or the process stalls, because its timers read the system clock. Here every
//! timer is on a monotonic clock supplied by the driver, so a clock jump cannot
//! fake timeouts; a stall (SIGSTOP, a long GC-like pause) makes timers expire
//! together exactly as they would after a real outage of that length, and the
//! down rules already require fresh evidence. INFO therefore always reports
//! `sentinel_tilt:0` and `sentinel_tilt_since_seconds:-1`.

use std::collections::HashMap;

use indexmap::IndexMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::event::{format_addr, instance_prefix, Event, EventKind, Level, MasterRef};
use super::hello::{self, Hello};
use super::info;
use super::instance::{Instance, Role};
use super::persisted::{GlobalSentinelConfig, MasterState, PersistedState};
use super::types::{
    Action, CoreOptions, HelloOut, Input, InstanceId, InstanceKind, LinkAuth, LinkKind, LinkSpec,
    Millis, PingReply, RaftView, Timing,
};

/// Periodic commands are skipped on a link with this many unanswered commands.
const MAX_PENDING_COMMANDS: u32 = 100;
/// Upper bound of the random delays that desynchronise sentinels.
pub(crate) const MAX_DESYNC: u64 = 1000;
/// INFO cadence to replicas of a master that is down or failing over.
const FAST_INFO_PERIOD: u64 = 1000;

/// One monitored master with everything known about it.
#[derive(Debug, Clone)]
pub struct Master {
    pub inst: Instance,
    pub quorum: u32,
    pub failover_timeout: u64,
    pub parallel_syncs: u32,
    pub notification_script: Option<String>,
    pub client_reconfig_script: Option<String>,
    pub auth_pass: Option<String>,
    pub auth_user: Option<String>,
    pub reboot_down_after: u64,
    pub config_epoch: u64,
    /// This sentinel's vote for this master and the epoch it was cast in.
    pub leader: Option<String>,
    pub leader_epoch: u64,
    pub failover_start_time: Millis,
    /// Mirrors the committed failover of this master (`failover.rs`); read
    /// by the flags field outside a group and the replica INFO cadence.
    pub failover_in_progress: bool,
    /// Keyed `ip:port`, in discovery order.
    pub replicas: IndexMap<String, Instance>,
    /// Other sentinels, keyed by run id.
    pub sentinels: IndexMap<String, Instance>,
    /// `rename-command` table: original (as configured) -> new name.
    pub renames: Vec<(String, String)>,
    /// The failover engine's bookkeeping for this master (`failover.rs`).
    pub fo: super::failover::Ctl,
}

/// An owned copy of a master's name and address, for event payloads built
/// while one of its children is borrowed mutably.
#[derive(Debug, Clone)]
pub(crate) struct MAddr {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl MAddr {
    fn r(&self) -> MasterRef<'_> {
        MasterRef {
            name: &self.name,
            host: &self.host,
            port: self.port,
        }
    }

    /// The `%@` prefix of the master at this address.
    pub(crate) fn master_prefix(&self) -> String {
        instance_prefix(
            InstanceKind::Master,
            &self.name,
            &self.host,
            self.port,
            None,
        )
    }
}

/// The `%@` prefix of an instance (see `event::instance_prefix`).
pub(crate) fn prefix(inst: &Instance, m: &MAddr) -> String {
    instance_prefix(inst.kind, &inst.name, &inst.host, inst.port, Some(m.r()))
}

/// The client-reconfig-script run of §4.19:
/// `<master> <leader|observer> start <from-ip> <from-port> <to-ip> <to-port>`.
pub(crate) fn reconfig_script(
    script: String,
    from: &MAddr,
    role: &str,
    to_host: &str,
    to_port: u16,
) -> Action {
    Action::RunScript {
        argv: vec![
            script,
            from.name.clone(),
            role.to_string(),
            "start".into(),
            from.host.clone(),
            from.port.to_string(),
            to_host.to_string(),
            to_port.to_string(),
        ],
    }
}

/// Emits an event. One that follows a `Flush` directly is published only
/// once that flush is written (`Event::after_flush`): the core flushes right
/// before an event exactly when what the event announces must be durable
/// first (an epoch, a vote, a new monitoring configuration).
pub(crate) fn emit(out: &mut Vec<Action>, kind: EventKind, message: String, master: Option<&str>) {
    let mut ev = Event::new(kind, message, master);
    ev.after_flush = matches!(out.last(), Some(Action::Flush));
    out.push(Action::Emit(ev));
}

impl Master {
    pub(crate) fn addr(&self) -> MAddr {
        MAddr {
            name: self.inst.name.clone(),
            host: self.inst.host.clone(),
            port: self.inst.port,
        }
    }

    pub(crate) fn prefix(&self) -> String {
        prefix(&self.inst, &self.addr())
    }

    /// Credentials for the master's and its replicas' links (§4.17).
    fn data_auth(&self) -> LinkAuth {
        match &self.auth_pass {
            Some(p) => LinkAuth {
                user: self.auth_user.clone(),
                pass: Some(p.clone()),
            },
            None => LinkAuth::default(),
        }
    }
}

/// Where an instance id lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Master,
    Replica(usize),
    Sentinel(usize),
}

/// The whole monitoring state of one sentinel process.
#[derive(Debug)]
pub struct Sentinel {
    pub(crate) myid: String,
    pub(crate) current_epoch: u64,
    pub(crate) globals: GlobalSentinelConfig,
    pub(crate) masters: IndexMap<String, Master>,
    pub(crate) timing: Timing,
    pub(crate) opts: CoreOptions,
    pub(crate) rng: StdRng,
    pub(crate) next_id: u64,
    pub(crate) hello_rejected: u64,
    /// SENTINEL SIMULATE-FAILURE bitmask (1 = crash after election, 2 = after
    /// promotion); stored and shown, the process is not crashed.
    pub(crate) simfailure_flags: u32,
    /// The group's committed state as last applied by the local Raft node
    /// (None until this daemon belongs to a group).
    pub(crate) committed: Option<crate::core::group::GroupState>,
    /// This daemon's place in the Raft group.
    pub(crate) raft: RaftView,
    /// Since when this daemon is the Raft leader (the failover engine's
    /// corrective actions wait for its committed view to catch up).
    pub(crate) leader_since: Option<Millis>,
    /// Which master each instance id belongs to, so that an input about one
    /// instance costs the same with 1 or 500 masters. Ids are never reused
    /// and an instance never changes master; `locate` checks the entry and
    /// falls back to a scan, so a missing or stale entry costs time, not
    /// correctness.
    pub(crate) owners: HashMap<InstanceId, String>,
    /// Highest epoch this daemon proposed a failover start with.
    pub(crate) start_epoch_proposed: u64,
    /// When the peers a `SENTINEL RESET` forgot must have been rediscovered
    /// (see `members::forget_unseen`).
    pub(crate) forget_unseen_at: Option<Millis>,
}

/// The masters whose failover engine an input may have moved: the engine
/// steps those right after the input, and every master on each tick.
enum Touched {
    None,
    One(usize),
    Many(Vec<usize>),
    All,
}

pub(crate) fn alloc_id(next: &mut u64) -> InstanceId {
    *next += 1;
    InstanceId(*next)
}

/// Builds a master and its known replicas/sentinels from persisted state.
pub(crate) fn master_from_state(ms: &MasterState, next: &mut u64, now: Millis) -> Master {
    let inst = Instance::new(
        alloc_id(next),
        InstanceKind::Master,
        ms.name.clone(),
        ms.host.clone(),
        ms.port,
        ms.down_after_ms,
        now,
    );
    let mut m = Master {
        inst,
        quorum: ms.quorum,
        failover_timeout: ms.failover_timeout_ms,
        parallel_syncs: ms.parallel_syncs,
        notification_script: ms.notification_script.clone(),
        client_reconfig_script: ms.client_reconfig_script.clone(),
        auth_pass: ms.auth_pass.clone(),
        auth_user: ms.auth_user.clone(),
        reboot_down_after: ms.master_reboot_down_after_period_ms,
        config_epoch: ms.config_epoch,
        leader: None,
        leader_epoch: ms.leader_epoch,
        failover_start_time: 0,
        failover_in_progress: false,
        replicas: IndexMap::new(),
        sentinels: IndexMap::new(),
        renames: ms.rename_commands.clone(),
        fo: super::failover::Ctl::default(),
    };
    for (host, port) in &ms.known_replicas {
        let key = format_addr(host, *port);
        if m.replicas.contains_key(&key) {
            continue;
        }
        let r = Instance::new(
            alloc_id(next),
            InstanceKind::Replica,
            key.clone(),
            host.clone(),
            *port,
            ms.down_after_ms,
            now,
        );
        m.replicas.insert(key, r);
    }
    for (host, port, runid) in &ms.known_sentinels {
        if m.sentinels.contains_key(runid) {
            continue;
        }
        let mut s = Instance::new(
            alloc_id(next),
            InstanceKind::Sentinel,
            runid.clone(),
            host.clone(),
            *port,
            ms.down_after_ms,
            now,
        );
        s.runid = Some(runid.clone());
        m.sentinels.insert(runid.clone(), s);
    }
    m
}

fn link_spec(
    inst: &Instance,
    auth: &LinkAuth,
    renames: &[(String, String)],
    client_name: &str,
) -> LinkSpec {
    LinkSpec {
        id: inst.id,
        kind: inst.kind,
        host: inst.host.clone(),
        port: inst.port,
        auth: auth.clone(),
        client_name: client_name.to_string(),
        renames: renames
            .iter()
            .map(|(a, b)| (a.to_ascii_lowercase(), b.clone()))
            .collect(),
    }
}

fn send_ping(inst: &mut Instance, now: Millis, out: &mut Vec<Action>) {
    inst.link.pending += 1;
    inst.link.last_ping_time = Some(now);
    if inst.link.act_ping_time.is_none() {
        inst.link.act_ping_time = Some(now);
    }
    out.push(Action::SendPing { id: inst.id });
}

/// What every instance gets on each tick before the down checks: reconnect
/// when a link is down (§4.2), then the periodic INFO / PING / hello (§4.3).
struct Periodic<'a> {
    now: Millis,
    t: &'a Timing,
    /// None when no instance of the master is due for a hello this tick.
    hello: Option<&'a HelloOut>,
    client_name: &'a str,
    renames: &'a [(String, String)],
}

impl Periodic<'_> {
    fn run(&self, inst: &mut Instance, auth: &LinkAuth, info_period: u64, out: &mut Vec<Action>) {
        let now = self.now;
        if inst.link.disconnected() && inst.port != 0 {
            let due = inst
                .link
                .last_reconn_time
                .is_none_or(|t| now.saturating_sub(t) >= self.t.ping_period);
            if due {
                inst.link.last_reconn_time = Some(now);
                // Sentinel queues a PING on the new command link at once, so
                // an unreachable instance counts as "PING pending" from the
                // first reconnect attempt, not from its last good reply.
                if !inst.link.cmd_up && inst.link.act_ping_time.is_none() {
                    inst.link.act_ping_time = Some(now);
                }
                out.push(Action::Connect(link_spec(
                    inst,
                    auth,
                    self.renames,
                    self.client_name,
                )));
            }
        }
        if inst.link.disconnected() || inst.link.pending >= MAX_PENDING_COMMANDS {
            return;
        }
        if inst.kind != InstanceKind::Sentinel
            && !inst.link.info_inflight
            && inst
                .info_refresh
                .is_none_or(|t| now.saturating_sub(t) > info_period)
        {
            inst.link.pending += 1;
            inst.link.info_inflight = true;
            out.push(Action::SendInfo { id: inst.id });
        }
        let ping_period = inst.down_after.min(self.t.ping_period);
        if now.saturating_sub(inst.link.last_pong_time) > ping_period
            && inst
                .link
                .last_ping_time
                .is_none_or(|t| now.saturating_sub(t) > ping_period / 2)
        {
            send_ping(inst, now, out);
        }
        let Some(hello) = self.hello else {
            return;
        };
        if !inst.link.hello_inflight
            && !inst.link.hold_hello
            && now.saturating_sub(inst.last_pub_time) > self.t.publish_period
        {
            inst.link.pending += 1;
            inst.link.hello_inflight = true;
            out.push(Action::SendHello {
                id: inst.id,
                hello: hello.clone(),
            });
        }
    }
}

/// What is per tick, not per master.
struct TickCtx {
    client_name: String,
    sentinel_auth: LinkAuth,
    t: Timing,
}

/// `+sdown` (`down`) or `-sdown` for `inst` of master `master`.
fn sdown_event(out: &mut Vec<Action>, down: bool, inst: &Instance, master: &Instance) {
    let m = MasterRef {
        name: &master.name,
        host: &master.host,
        port: master.port,
    };
    let p = instance_prefix(inst.kind, &inst.name, &inst.host, inst.port, Some(m));
    let kind = if down {
        EventKind::Sdown
    } else {
        EventKind::SdownCleared
    };
    let mut ev = Event::new(kind, p, Some(&master.name));
    ev.subject = Some(inst.kind);
    out.push(Action::Emit(ev));
}

/// SDOWN evaluation and forced reconnects of one instance (§4.2, §4.6).
/// Returns `Some(true)` when the instance just became SDOWN, `Some(false)`
/// when its SDOWN just ended (the caller publishes the event).
fn check_sdown(
    inst: &mut Instance,
    now: Millis,
    t: &Timing,
    reboot_down_after: u64,
    out: &mut Vec<Action>,
) -> Option<bool> {
    let link = &mut inst.link;
    let elapsed = if let Some(a) = link.act_ping_time {
        now.saturating_sub(a)
    } else if link.disconnected() {
        now.saturating_sub(link.last_avail_time)
    } else {
        0
    };
    let half = inst.down_after / 2;
    if link.cmd_up
        && now.saturating_sub(link.cc_conn_time) > t.min_link_reconnect_period
        && link
            .act_ping_time
            .is_some_and(|a| now.saturating_sub(a) > half)
        && now.saturating_sub(link.last_pong_time) > half
    {
        link.cmd_lost();
        out.push(Action::Disconnect {
            id: inst.id,
            link: Some(LinkKind::Command),
        });
    }
    if link.has_pubsub
        && link.pc_up
        && now.saturating_sub(link.pc_conn_time) > t.min_link_reconnect_period
        && now.saturating_sub(link.pc_last_activity) > t.publish_period.saturating_mul(3)
    {
        link.pc_up = false;
        out.push(Action::Disconnect {
            id: inst.id,
            link: Some(LinkKind::PubSub),
        });
    }
    let is_master = inst.kind == InstanceKind::Master;
    let down = elapsed > inst.down_after
        || (is_master
            && inst.role_reported == Role::Slave
            && now.saturating_sub(inst.role_reported_time)
                > inst
                    .down_after
                    .saturating_add(t.info_period.saturating_mul(2)))
        || (is_master
            && inst.master_reboot
            && now.saturating_sub(inst.master_reboot_since) > reboot_down_after);
    if down {
        if !inst.s_down {
            inst.s_down = true;
            inst.s_down_since = Some(now);
            return Some(true);
        }
    } else if inst.s_down {
        inst.s_down = false;
        inst.script_kill_sent = false;
        return Some(false);
    }
    None
}

impl Sentinel {
    /// Builds the core from the persisted state. Returns the start-up actions:
    /// a flush if a myid had to be generated, then `+monitor` per master.
    pub fn new(state: PersistedState, opts: CoreOptions, now: Millis) -> (Sentinel, Vec<Action>) {
        let mut rng = StdRng::seed_from_u64(opts.rng_seed);
        let mut out = Vec::new();
        let myid = match state.myid {
            Some(id) if !id.is_empty() => id,
            _ => {
                let bytes: [u8; 20] = rng.gen();
                out.push(Action::Flush);
                hex::encode(bytes)
            }
        };
        let mut next_id = 0;
        let mut masters = IndexMap::new();
        for ms in &state.masters {
            if masters.contains_key(&ms.name) {
                continue;
            }
            masters.insert(ms.name.clone(), master_from_state(ms, &mut next_id, now));
        }
        // Failovers up to the persisted epoch were published before a
        // restart: a replayed log must not publish them again.
        for m in masters.values_mut() {
            m.fo.start_seen = state.current_epoch;
        }
        let mut s = Sentinel {
            myid,
            current_epoch: state.current_epoch,
            globals: state.globals,
            masters,
            timing: Timing::default(),
            opts,
            rng,
            next_id,
            hello_rejected: 0,
            simfailure_flags: 0,
            committed: None,
            raft: RaftView::default(),
            leader_since: None,
            owners: HashMap::new(),
            forget_unseen_at: None,
            start_epoch_proposed: 0,
        };
        for mi in 0..s.masters.len() {
            s.register_master(mi);
        }
        for m in s.masters.values() {
            emit(
                &mut out,
                EventKind::Monitor,
                format!("{} quorum {}", m.prefix(), m.quorum),
                Some(&m.inst.name),
            );
        }
        let out = s.with_notifications(out);
        (s, out)
    }

    /// Runs `f` (a SENTINEL subcommand) on the core and returns its result
    /// with the actions it asked for, notification scripts included.
    pub fn command<R>(
        &mut self,
        f: impl FnOnce(&mut Sentinel, &mut Vec<Action>) -> R,
    ) -> (R, Vec<Action>) {
        let mut out = Vec::new();
        let r = f(self, &mut out);
        (r, self.with_notifications(out))
    }

    /// Adds, right after each warning event that names a master with a
    /// notification-script, the run of that script with the event's type
    /// and payload, as Sentinel does for every warning it logs.
    fn with_notifications(&self, actions: Vec<Action>) -> Vec<Action> {
        let script_of = |a: &Action| match a {
            Action::Emit(ev) if ev.kind.level() == Level::Warning => ev
                .master
                .as_deref()
                .and_then(|m| self.masters.get(m)?.notification_script.clone()),
            _ => None,
        };
        if !actions.iter().any(|a| script_of(a).is_some()) {
            return actions;
        }
        let mut out = Vec::with_capacity(actions.len() + 1);
        for a in actions {
            let script = script_of(&a);
            let run = match (&a, script) {
                (Action::Emit(ev), Some(path)) => Some(Action::RunScript {
                    argv: vec![path, ev.kind.channel().to_string(), ev.message.clone()],
                }),
                _ => None,
            };
            out.push(a);
            out.extend(run);
        }
        out
    }

    pub fn myid(&self) -> &str {
        &self.myid
    }

    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    /// Monitored master names in insertion order (ROLE).
    pub fn master_names(&self) -> Vec<String> {
        self.masters.keys().cloned().collect()
    }

    /// The earliest time a master not yet SDOWN would become SDOWN by the
    /// PING clock (§4.6 rule 1) if nothing answers before: the runtime ticks
    /// then instead of at the next regular tick, so a dead master is seen
    /// down at down-after, not up to a tick period later. O(masters), asked
    /// once per tick.
    pub fn next_sdown_deadline(&self) -> Option<Millis> {
        self.masters
            .values()
            .filter(|m| !m.inst.s_down && m.inst.port != 0)
            .filter_map(|m| {
                let l = &m.inst.link;
                let since = l
                    .act_ping_time
                    .or_else(|| l.disconnected().then_some(l.last_avail_time))?;
                Some(since.saturating_add(m.inst.down_after).saturating_add(1))
            })
            .min()
    }

    /// Hellos ignored because they were malformed or hostile (§4.5).
    pub fn hello_rejected(&self) -> u64 {
        self.hello_rejected
    }

    /// The current SENTINEL DEBUG timing parameters (the script runner uses
    /// script-max-runtime and script-retry-delay).
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    pub fn globals(&self) -> &GlobalSentinelConfig {
        &self.globals
    }

    /// The addresses of the sentinels discovered by hello, under every
    /// master (`host:port`, IPv6 in brackets; repeats included).
    pub fn discovered_sentinels(&self) -> Vec<String> {
        self.masters
            .values()
            .flat_map(|m| m.sentinels.values())
            .map(|s| format_addr(&s.host, s.port))
            .collect()
    }

    /// Whether a pubsub link to a master is up (hellos can reach us).
    pub fn hellos_reachable(&self) -> bool {
        self.masters.values().any(|m| m.inst.link.pc_up)
    }

    /// The configured address of the first monitored master.
    pub fn a_master(&self) -> Option<(String, u16)> {
        let m = self.masters.values().next()?;
        Some((m.inst.host.clone(), m.inst.port))
    }

    /// The notification-script of a master.
    pub fn notification_script(&self, master: &str) -> Option<&str> {
        self.masters.get(master)?.notification_script.as_deref()
    }

    /// The state to write on the next flush.
    pub fn persisted(&self) -> PersistedState {
        PersistedState {
            myid: Some(self.myid.clone()),
            current_epoch: self.current_epoch,
            globals: self.globals.clone(),
            masters: self
                .masters
                .values()
                .map(|m| (m, self.client_addr(m)))
                .map(|(m, (host, port))| MasterState {
                    known_replicas: persisted_replicas(m, &host, port),
                    name: m.inst.name.clone(),
                    host,
                    port,
                    quorum: m.quorum,
                    down_after_ms: m.inst.down_after,
                    failover_timeout_ms: m.failover_timeout,
                    parallel_syncs: m.parallel_syncs,
                    notification_script: m.notification_script.clone(),
                    client_reconfig_script: m.client_reconfig_script.clone(),
                    auth_pass: m.auth_pass.clone(),
                    auth_user: m.auth_user.clone(),
                    master_reboot_down_after_period_ms: m.reboot_down_after,
                    config_epoch: m.config_epoch,
                    leader_epoch: m.leader_epoch,
                    known_sentinels: m
                        .sentinels
                        .values()
                        .filter_map(|s| Some((s.host.clone(), s.port, s.runid.clone()?)))
                        .collect(),
                    rename_commands: m.renames.clone(),
                })
                .collect(),
        }
    }

    /// Feeds one input; returns what the driver must do, in order.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        let touched = match input {
            Input::Tick => {
                self.tick(now, &mut out);
                Touched::All
            }
            Input::LinkUp { id, link } => {
                self.link_up(now, id, link, &mut out);
                self.master_of(id)
            }
            Input::LinkDown { id, link } => {
                if let Some(inst) = self.instance_mut(id) {
                    match link {
                        LinkKind::Command => {
                            // A command link that drops (the process died,
                            // the connection was reset) counts as a PING
                            // left unanswered from now: SDOWN comes
                            // down-after after the loss, not after the next
                            // reconnect attempt (Sentinel's clock starts
                            // with the PING it queues on reconnecting).
                            if inst.link.cmd_up && inst.link.act_ping_time.is_none() {
                                inst.link.act_ping_time = Some(now);
                            }
                            inst.link.cmd_lost()
                        }
                        LinkKind::PubSub => inst.link.pc_up = false,
                    }
                }
                self.master_of(id)
            }
            Input::PingReply { id, reply } => {
                self.ping_reply(now, id, reply, &mut out);
                self.master_of(id)
            }
            Input::InfoReply { id, text } => {
                self.info_reply(now, id, text, &mut out);
                self.master_of(id)
            }
            Input::PublishReply { id, ok } => {
                if let Some(inst) = self.instance_mut(id) {
                    inst.link.reply_received();
                    inst.link.hello_inflight = false;
                    if ok {
                        inst.last_pub_time = now;
                    }
                }
                self.master_of(id)
            }
            Input::Hello { via, payload } => self.hello_in(now, via, &payload, &mut out),
            Input::MasterDownReply { peer, reply } => {
                self.master_down_reply(now, peer, reply);
                self.master_of(peer)
            }
            Input::Committed(state) => Touched::Many(self.committed_in(now, *state, &mut out)),
            Input::Raft(view) => {
                self.raft_in(now, view);
                Touched::All
            }
            Input::PauseReply { id, info } => {
                self.pause_reply(now, id, info, &mut out);
                self.master_of(id)
            }
            Input::CommandTimeout { id } => {
                if let Some(inst) = self.instance_mut(id) {
                    inst.link.reply_received();
                    inst.link.info_inflight = false;
                    inst.link.hello_inflight = false;
                    inst.link.ask_inflight = false;
                }
                self.master_of(id)
            }
        };
        // An input may move the failover of the master it is about (a
        // commit, a fresh INFO, a link); time moves every master at the tick.
        match touched {
            Touched::None => {}
            Touched::One(mi) => self.failover_step_master(mi, now, &mut out),
            Touched::Many(list) => {
                for mi in list {
                    self.failover_step_master(mi, now, &mut out);
                }
            }
            Touched::All => self.failover_step(now, &mut out),
        }
        self.with_notifications(out)
    }

    fn master_of(&self, id: InstanceId) -> Touched {
        match self.locate(id) {
            Some((mi, _)) => Touched::One(mi),
            None => Touched::None,
        }
    }

    /// The epoch of a FailoverStart of master `name` proposed now, above
    /// `floor` (the committed and local epochs). Starts proposed together for
    /// several masters get distinct epochs: the log rejects a start whose
    /// epoch is not above the committed one, so with equal epochs only one of
    /// them committed per round trip and twenty masters down together were
    /// failed over one after the other. A re-proposal keeps its epoch while
    /// it is still above the floor, so a copy still in flight can never start
    /// a second failover once the first is over (the same epoch is stale
    /// then).
    pub(crate) fn start_epoch(&mut self, name: &str, floor: u64) -> u64 {
        let Some(m) = self.masters.get_mut(name) else {
            return floor.saturating_add(1);
        };
        let epoch = if m.fo.start_epoch > floor {
            m.fo.start_epoch
        } else {
            floor.max(self.start_epoch_proposed).saturating_add(1)
        };
        m.fo.start_epoch = epoch;
        self.start_epoch_proposed = self.start_epoch_proposed.max(epoch);
        epoch
    }

    /// Records the owner of every instance of master `mi` (see `owners`).
    pub(crate) fn register_master(&mut self, mi: usize) {
        let Some((name, m)) = self.masters.get_index(mi) else {
            return;
        };
        let ids = std::iter::once(m.inst.id)
            .chain(m.replicas.values().map(|r| r.id))
            .chain(m.sentinels.values().map(|s| s.id));
        for id in ids {
            if self.owners.get(&id) != Some(name) {
                self.owners.insert(id, name.clone());
            }
        }
    }

    /// Forgets instance ids that are gone (removed replicas, sentinels or
    /// masters).
    pub(crate) fn unregister(&mut self, ids: impl IntoIterator<Item = InstanceId>) {
        for id in ids {
            self.owners.remove(&id);
        }
    }

    pub(crate) fn locate(&self, id: InstanceId) -> Option<(usize, Slot)> {
        if let Some(found) = self
            .owners
            .get(&id)
            .and_then(|name| self.masters.get_full(name))
            .and_then(|(mi, _, m)| Self::slot_in(m, id).map(|slot| (mi, slot)))
        {
            return Some(found);
        }
        self.masters
            .values()
            .enumerate()
            .find_map(|(mi, m)| Self::slot_in(m, id).map(|slot| (mi, slot)))
    }

    fn slot_in(m: &Master, id: InstanceId) -> Option<Slot> {
        if m.inst.id == id {
            return Some(Slot::Master);
        }
        if let Some(i) = m.replicas.values().position(|r| r.id == id) {
            return Some(Slot::Replica(i));
        }
        m.sentinels
            .values()
            .position(|s| s.id == id)
            .map(Slot::Sentinel)
    }

    pub(crate) fn slot_mut(&mut self, mi: usize, slot: Slot) -> Option<&mut Instance> {
        let (_, m) = self.masters.get_index_mut(mi)?;
        match slot {
            Slot::Master => Some(&mut m.inst),
            Slot::Replica(i) => m.replicas.get_index_mut(i).map(|(_, r)| r),
            Slot::Sentinel(i) => m.sentinels.get_index_mut(i).map(|(_, s)| s),
        }
    }

    fn instance_mut(&mut self, id: InstanceId) -> Option<&mut Instance> {
        let (mi, slot) = self.locate(id)?;
        self.slot_mut(mi, slot)
    }

    fn client_name(&self) -> String {
        format!("sentinel-{}", self.myid.get(..8).unwrap_or(&self.myid))
    }

    /// Credentials for links to peer sentinels (§4.17), and for the Raft
    /// RPCs between daemons.
    pub fn sentinel_auth(&self) -> LinkAuth {
        match (&self.globals.sentinel_pass, &self.opts.requirepass) {
            (Some(p), _) => LinkAuth {
                user: self.globals.sentinel_user.clone(),
                pass: Some(p.clone()),
            },
            (None, Some(rp)) => LinkAuth {
                user: None,
                pass: Some(rp.clone()),
            },
            (None, None) => LinkAuth::default(),
        }
    }

    /// The hello this sentinel publishes for master `m` (§4.5).
    pub(crate) fn hello_out(&self, m: &Master) -> HelloOut {
        let port = if self.globals.announce_port != 0 {
            self.globals.announce_port
        } else {
            self.opts.port
        };
        let (master_ip, master_port) = self.client_addr(m);
        HelloOut {
            announce_ip: self.globals.announce_ip.clone(),
            port,
            runid: self.myid.clone(),
            current_epoch: self.current_epoch,
            master_name: m.inst.name.clone(),
            master_ip,
            master_port,
            master_config_epoch: self.hello_config_epoch(m),
        }
    }

    /// One tick: every master in turn. What does not depend on the master
    /// is computed once per tick, not once per master.
    fn tick(&mut self, now: Millis, out: &mut Vec<Action>) {
        let ctx = TickCtx {
            client_name: self.client_name(),
            sentinel_auth: self.sentinel_auth(),
            t: self.timing.clone(),
        };
        for mi in 0..self.masters.len() {
            self.tick_master(now, mi, &ctx, out);
        }
        self.forget_unseen(now, out);
    }

    /// One tick for one master, its replicas and its sentinels, in
    /// redis-sentinel's order.
    fn tick_master(&mut self, now: Millis, mi: usize, ctx: &TickCtx, out: &mut Vec<Action>) {
        let t = &ctx.t;
        let current_epoch = self.current_epoch;
        let Some((_, m)) = self.masters.get_index(mi) else {
            return;
        };
        // The hello is built only when one of the master's instances may
        // publish one on this tick (every 2 s each): building it costs
        // several allocations and a lookup of the committed state.
        let hello_due = |i: &Instance| {
            !i.link.hello_inflight
                && !i.link.hold_hello
                && now.saturating_sub(i.last_pub_time) > t.publish_period
        };
        let hello = (hello_due(&m.inst)
            || m.replicas.values().any(hello_due)
            || m.sentinels.values().any(hello_due))
        .then(|| self.hello_out(m));
        let group_votes = self.committed_down_votes(&m.inst.name);
        let in_group = self.raft.initialized;
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        let data_auth = m.data_auth();
        // Usually empty: cloning it allocates nothing.
        let renames = m.renames.clone();
        let per = Periodic {
            now,
            t,
            hello: hello.as_ref(),
            client_name: &ctx.client_name,
            renames: &renames,
        };

        // The master itself.
        per.run(&mut m.inst, &data_auth, t.info_period, out);
        if let Some(up) = check_sdown(&mut m.inst, now, t, m.reboot_down_after, out) {
            sdown_event(out, up, &m.inst, &m.inst);
        }
        // In a group ODOWN comes from the committed votes only: Sentinel's
        // peer-reply rule would disagree with them for a moment and flap
        // `+odown`/`-odown` (clients refresh their topology on both).
        match group_votes {
            Some(votes) => group_check_odown(m, now, votes, out),
            // In a group whose state does not show this master yet: the
            // votes will decide; only the end of local SDOWN ends ODOWN.
            None if in_group => {
                if m.inst.o_down && !m.inst.s_down {
                    m.fo.classic_odown = None;
                    check_odown_votes(m, now, 0, out);
                }
            }
            None => {
                self::check_odown(m, now, out);
                m.fo.classic_odown = m.inst.o_down.then_some(None);
            }
        }
        // Ask peers while SDOWN (§4.7), for their opinion only: failovers are
        // decided through the Raft group, so no vote is ever requested.
        for s in m.sentinels.values_mut() {
            if now.saturating_sub(s.last_master_down_reply_time) > t.ask_period.saturating_mul(5) {
                s.master_down = false;
                s.leader = None;
            }
            if !m.inst.s_down || s.link.disconnected() || s.link.ask_inflight {
                continue;
            }
            if now.saturating_sub(s.last_master_down_reply_time) < t.ask_period {
                continue;
            }
            s.link.pending += 1;
            s.link.ask_inflight = true;
            out.push(Action::AskMasterDown {
                peer: s.id,
                master_ip: m.inst.host.clone(),
                master_port: m.inst.port,
                epoch: current_epoch,
                runid: "*".to_string(),
            });
        }

        // Replicas: INFO every second while the master is down or failing
        // over, or while the replica's own link to its master is down.
        let fast = m.inst.o_down || m.failover_in_progress;
        for r in m.replicas.values_mut() {
            let period = if fast || r.master_link_down_since != 0 {
                FAST_INFO_PERIOD
            } else {
                t.info_period
            };
            per.run(r, &data_auth, period, out);
            if let Some(up) = check_sdown(r, now, t, 0, out) {
                sdown_event(out, up, r, &m.inst);
            }
        }
        for s in m.sentinels.values_mut() {
            per.run(s, &ctx.sentinel_auth, t.info_period, out);
            if let Some(up) = check_sdown(s, now, t, 0, out) {
                sdown_event(out, up, s, &m.inst);
            }
        }
    }

    fn link_up(&mut self, now: Millis, id: InstanceId, link: LinkKind, out: &mut Vec<Action>) {
        let Some(inst) = self.instance_mut(id) else {
            return;
        };
        match link {
            LinkKind::Command => {
                inst.link.cmd_up = true;
                inst.link.cc_conn_time = now;
                inst.link.pending = 0;
                // Sentinel pings right after connecting (observed wire order:
                // SETNAME, PING, INFO).
                send_ping(inst, now, out);
            }
            LinkKind::PubSub => {
                if inst.link.has_pubsub {
                    inst.link.pc_up = true;
                    inst.link.pc_conn_time = now;
                    inst.link.pc_last_activity = now;
                }
            }
        }
    }

    fn ping_reply(&mut self, now: Millis, id: InstanceId, reply: PingReply, out: &mut Vec<Action>) {
        let Some(inst) = self.instance_mut(id) else {
            return;
        };
        inst.link.reply_received();
        match reply {
            PingReply::Valid { pong } => {
                inst.link.last_avail_time = now;
                inst.link.act_ping_time = None;
                // -LOADING is a valid reply but proves the reboot is not over.
                if pong {
                    inst.master_reboot = false;
                }
            }
            PingReply::Other { busy } => {
                if busy && inst.s_down && !inst.script_kill_sent {
                    inst.script_kill_sent = true;
                    out.push(Action::ScriptKill { id });
                }
            }
        }
        inst.link.last_pong_time = now;
    }

    /// INFO from a master or replica: the monitoring half of §4.4.
    fn info_reply(&mut self, now: Millis, id: InstanceId, text: String, out: &mut Vec<Action>) {
        let Some((mi, slot)) = self.locate(id) else {
            return;
        };
        let resolve = self.globals.resolve_hostnames;
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        let ma = m.addr();
        let reboot_period = m.reboot_down_after;
        let down_after = m.inst.down_after;
        let inst = match slot {
            Slot::Master => &mut m.inst,
            Slot::Replica(i) => match m.replicas.get_index_mut(i) {
                Some((_, r)) => r,
                None => return,
            },
            Slot::Sentinel(i) => {
                if let Some((_, s)) = m.sentinels.get_index_mut(i) {
                    s.link.reply_received();
                    s.link.info_inflight = false;
                }
                return;
            }
        };
        inst.link.reply_received();
        inst.link.info_inflight = false;
        let is_master = slot == Slot::Master;
        let p = info::parse(&text, is_master);
        inst.info = Some(text);
        inst.info_count += 1;
        inst.master_link_down_since = p.master_link_down_since;
        if p.master_replid.is_some() {
            inst.repl_id = p.master_replid.clone();
        }
        if p.master_replid2.is_some() {
            inst.repl_id2 = p.master_replid2.clone();
        }
        if p.master_repl_offset.is_some() {
            inst.repl_offset = p.master_repl_offset;
        }

        if let Some(run_id) = p.run_id {
            match &inst.runid {
                Some(old) if *old != run_id => {
                    emit(out, EventKind::Reboot, prefix(inst, &ma), Some(&ma.name));
                    if is_master && reboot_period != 0 {
                        inst.master_reboot = true;
                        inst.master_reboot_since = now;
                    }
                    inst.runid = Some(run_id);
                }
                Some(_) => {}
                None => inst.runid = Some(run_id),
            }
        }
        if let Some(h) = p.master_host {
            if inst
                .slave_master_host
                .as_ref()
                .is_none_or(|old| !old.eq_ignore_ascii_case(&h))
            {
                inst.slave_master_host = Some(h);
                inst.slave_conf_change_time = now;
            }
        }
        if let Some(port) = p.master_port {
            if inst.slave_master_port != port {
                inst.slave_master_port = port;
                inst.slave_conf_change_time = now;
            }
        }
        if let Some(up) = p.master_link_up {
            inst.slave_master_link_up = up;
        }
        if let Some(v) = p.slave_priority {
            inst.slave_priority = v;
        }
        if let Some(v) = p.slave_repl_offset {
            inst.slave_repl_offset = v;
        }
        if let Some(v) = p.replica_announced {
            inst.replica_announced = v;
        }
        inst.info_refresh = Some(now);

        // Replica discovery, from the master's INFO only (§4.15).
        let mut discovered = false;
        for (ip, port) in p.slaves {
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if !hello::valid_host(&ip, resolve) {
                continue;
            }
            let key = format_addr(&ip, port);
            if m.replicas.contains_key(&key) {
                continue;
            }
            let r = Instance::new(
                alloc_id(&mut self.next_id),
                InstanceKind::Replica,
                key.clone(),
                ip,
                port,
                down_after,
                now,
            );
            emit(out, EventKind::Slave, prefix(&r, &ma), Some(&ma.name));
            self.owners.insert(r.id, ma.name.clone());
            m.replicas.insert(key, r);
            discovered = true;
        }
        if discovered {
            out.push(Action::Flush);
        }

        let role = p.role.unwrap_or(Role::Unknown);
        let inst = match slot {
            Slot::Master => &mut m.inst,
            Slot::Replica(i) => match m.replicas.get_index_mut(i) {
                Some((_, r)) => r,
                None => return,
            },
            Slot::Sentinel(_) => return,
        };
        if role != inst.role_reported {
            inst.role_reported = role;
            inst.role_reported_time = now;
            if role == Role::Slave {
                inst.slave_conf_change_time = now;
            }
            let coherent = matches!(
                (inst.kind, role),
                (InstanceKind::Master, Role::Master) | (InstanceKind::Replica, Role::Slave)
            );
            let kind = if coherent {
                EventKind::RoleChangeMatch
            } else {
                EventKind::RoleChangeMismatch
            };
            let shown = if role == Role::Master {
                "master"
            } else {
                "slave"
            };
            emit(
                out,
                kind,
                format!("{} new reported role is {shown}", prefix(inst, &ma)),
                Some(&ma.name),
            );
        }
    }

    fn master_down_reply(
        &mut self,
        now: Millis,
        peer: InstanceId,
        reply: Option<(i64, String, i64)>,
    ) {
        let Some((mi, slot @ Slot::Sentinel(_))) = self.locate(peer) else {
            return;
        };
        let Some(s) = self.slot_mut(mi, slot) else {
            return;
        };
        s.link.reply_received();
        s.link.ask_inflight = false;
        let Some((down, leader, epoch)) = reply else {
            return;
        };
        // A peer's vote is shown in replies and events; refuse nonsense.
        let Ok(epoch) = u64::try_from(epoch) else {
            return;
        };
        if leader.is_empty() || leader.len() > 64 {
            return;
        }
        s.last_master_down_reply_time = now;
        s.master_down = down == 1;
        if leader != "*" {
            s.leader = Some(leader);
            s.leader_epoch = epoch;
        }
    }

    /// A message from a `__sentinel__:hello` channel (`via` = the instance
    /// whose pubsub link carried it) or a PUBLISH to us (`via` = None).
    fn hello_in(
        &mut self,
        now: Millis,
        via: Option<InstanceId>,
        payload: &str,
        out: &mut Vec<Action>,
    ) -> Touched {
        if let Some(id) = via {
            if let Some(inst) = self.instance_mut(id) {
                inst.link.pc_last_activity = now;
            }
            // Our own hellos come back on every channel we publish to: they
            // keep the pubsub link alive and are not worth counting.
            if payload.contains(self.myid.as_str()) {
                return Touched::None;
            }
        }
        let masters = &self.masters;
        match hello::parse(payload, &self.myid, self.globals.resolve_hostnames, |n| {
            masters.contains_key(n)
        }) {
            Ok(h) => self.process_hello(now, h, out),
            Err(_) => {
                self.hello_rejected += 1;
                Touched::None
            }
        }
    }

    /// Returns the masters the hello may have changed: its own, or all of
    /// them when a sentinel was added, moved or removed (a run id is looked
    /// for under every master).
    fn process_hello(&mut self, now: Millis, h: Hello, out: &mut Vec<Action>) -> Touched {
        let Some(mi) = self.masters.get_index_of(&h.master_name) else {
            return Touched::None;
        };
        let known = self.masters[mi].sentinels.values().any(|s| {
            s.host == h.ip && s.port == h.port && s.runid.as_deref() == Some(h.runid.as_str())
        });
        if !known {
            let removed = self.remove_sentinels_with_runid(mi, &h.runid, out);
            let m = &self.masters[mi];
            if removed > 0 {
                emit(
                    out,
                    EventKind::SentinelAddressSwitch,
                    format!("{} ip {} port {} for {}", m.prefix(), h.ip, h.port, h.runid),
                    Some(&m.inst.name),
                );
            } else if let Some((pfx, rid)) = m
                .sentinels
                .values()
                .find(|s| s.host == h.ip && s.port == h.port)
                .map(|other| (prefix(other, &m.addr()), other.runid.clone()))
            {
                emit(
                    out,
                    EventKind::SentinelInvalidAddr,
                    pfx,
                    Some(&h.master_name),
                );
                if let Some(rid) = rid {
                    for i in 0..self.masters.len() {
                        self.remove_sentinels_with_runid(i, &rid, out);
                    }
                }
            }
            let id = alloc_id(&mut self.next_id);
            let m = &mut self.masters[mi];
            let mut si = Instance::new(
                id,
                InstanceKind::Sentinel,
                h.runid.clone(),
                h.ip.clone(),
                h.port,
                m.inst.down_after,
                now,
            );
            si.runid = Some(h.runid.clone());
            if removed == 0 {
                emit(
                    out,
                    EventKind::Sentinel,
                    prefix(&si, &m.addr()),
                    Some(&m.inst.name),
                );
            }
            self.owners.insert(id, m.inst.name.clone());
            m.sentinels.insert(h.runid.clone(), si);
            if removed > 0 {
                self.update_sentinel_address_everywhere(mi, &h.runid, out);
            }
            out.push(Action::Flush);
        }

        // In a group, epochs and master addresses come from committed state
        // only; hellos still teach peers and their addresses.
        let governed = self.cmaster(&h.master_name).is_some();
        if !governed && h.current_epoch > self.current_epoch {
            self.current_epoch = h.current_epoch;
            out.push(Action::Flush);
            emit(
                out,
                EventKind::NewEpoch,
                h.current_epoch.to_string(),
                Some(&h.master_name),
            );
        }

        let m = &mut self.masters[mi];
        if !governed && m.config_epoch < h.master_config_epoch {
            m.config_epoch = h.master_config_epoch;
            if h.master_port != m.inst.port || !h.master_ip.eq_ignore_ascii_case(&m.inst.host) {
                let ma = m.addr();
                if let Some(si) = m.sentinels.get(&h.runid) {
                    emit(
                        out,
                        EventKind::ConfigUpdateFrom,
                        prefix(si, &ma),
                        Some(&ma.name),
                    );
                }
                emit(
                    out,
                    EventKind::SwitchMaster,
                    format!(
                        "{} {} {} {} {}",
                        ma.name, ma.host, ma.port, h.master_ip, h.master_port
                    ),
                    Some(&ma.name),
                );
                self.switch_master_addr(mi, &h.master_ip, h.master_port, now, out);
                if let Some(script) = self.masters[mi].client_reconfig_script.clone() {
                    out.push(reconfig_script(
                        script,
                        &ma,
                        "observer",
                        &h.master_ip,
                        h.master_port,
                    ));
                }
            }
        }
        if let Some(si) = self.masters[mi].sentinels.get_mut(&h.runid) {
            si.last_hello_time = now;
        }
        if known {
            Touched::One(mi)
        } else {
            Touched::All
        }
    }

    /// Removes every sentinel with `runid` from master `mi`; returns how many.
    fn remove_sentinels_with_runid(
        &mut self,
        mi: usize,
        runid: &str,
        out: &mut Vec<Action>,
    ) -> usize {
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return 0;
        };
        let before = m.sentinels.len();
        let mut gone = Vec::new();
        m.sentinels.retain(|_, s| {
            let keep = s.runid.as_deref() != Some(runid);
            if !keep {
                gone.push(s.id);
                out.push(Action::Disconnect {
                    id: s.id,
                    link: None,
                });
            }
            keep
        });
        let removed = before - m.sentinels.len();
        self.unregister(gone);
        removed
    }

    /// A sentinel changed address under master `src`: give the same run id
    /// the new address under every other master (§4.5).
    fn update_sentinel_address_everywhere(
        &mut self,
        src: usize,
        runid: &str,
        out: &mut Vec<Action>,
    ) {
        let Some(si) = self
            .masters
            .get_index(src)
            .and_then(|(_, m)| m.sentinels.get(runid))
        else {
            return;
        };
        let (host, port) = (si.host.clone(), si.port);
        let mut reconfigured = 0;
        for (mi, m) in self.masters.values_mut().enumerate() {
            let Some(s) = m.sentinels.get_mut(runid) else {
                continue;
            };
            if s.link.cmd_up {
                s.link.cmd_lost();
                out.push(Action::Disconnect {
                    id: s.id,
                    link: None,
                });
            }
            if mi == src {
                continue;
            }
            s.host = host.clone();
            s.port = port;
            reconfigured += 1;
        }
        if reconfigured > 0 {
            let m = &self.masters[src];
            if let Some(si) = m.sentinels.get(runid) {
                emit(
                    out,
                    EventKind::SentinelAddressUpdate,
                    format!(
                        "{} {reconfigured} additional matching instances",
                        prefix(si, &m.addr())
                    ),
                    Some(&m.inst.name),
                );
            }
        }
    }

    /// Sentinel's `sentinelResetMaster` (§4.12, §4.15): forget replicas (and
    /// sentinels if asked), close the master's links, clear its flags and
    /// failover state so a failover may start at once.
    pub(crate) fn reset_master(
        &mut self,
        mi: usize,
        now: Millis,
        reset_sentinels: bool,
        event: bool,
        out: &mut Vec<Action>,
    ) {
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        let mut gone = Vec::new();
        for r in m.replicas.values() {
            gone.push(r.id);
            out.push(Action::Disconnect {
                id: r.id,
                link: None,
            });
        }
        m.replicas.clear();
        if reset_sentinels {
            for s in m.sentinels.values() {
                gone.push(s.id);
                out.push(Action::Disconnect {
                    id: s.id,
                    link: None,
                });
            }
            m.sentinels.clear();
        }
        for id in gone {
            self.owners.remove(&id);
        }
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        out.push(Action::Disconnect {
            id: m.inst.id,
            link: None,
        });
        let i = &mut m.inst;
        i.link.cmd_lost();
        i.link.pc_up = false;
        i.s_down = false;
        i.o_down = false;
        m.fo.classic_odown = None;
        i.script_kill_sent = false;
        i.master_reboot = false;
        i.master_down = false;
        m.leader = None;
        m.failover_in_progress = false;
        m.failover_start_time = 0;
        i.runid = None;
        i.slave_master_host = None;
        i.link.act_ping_time = Some(now);
        i.link.last_ping_time = None;
        // Sentinel releases the link and makes a new one: the next tick
        // connects at once (to the new address after a switch), not a
        // reconnect period after the last attempt on the old link.
        i.link.last_reconn_time = None;
        i.link.last_avail_time = now;
        i.link.last_pong_time = now;
        i.role_reported_time = now;
        i.role_reported = Role::Master;
        if event {
            let p = m.prefix();
            emit(out, EventKind::ResetMaster, p, Some(&m.inst.name));
        }
    }

    /// Points master `mi` at a new address (§4.12): the replicas other than
    /// the new master, plus the old master address, become its replicas.
    pub(crate) fn switch_master_addr(
        &mut self,
        mi: usize,
        host: &str,
        port: u16,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((_, m)) = self.masters.get_index(mi) else {
            return;
        };
        let mut addrs: Vec<(String, u16)> = m
            .replicas
            .values()
            .filter(|r| !(r.port == port && r.host.eq_ignore_ascii_case(host)))
            .map(|r| (r.host.clone(), r.port))
            .collect();
        if !(m.inst.host == host && m.inst.port == port) {
            addrs.push((m.inst.host.clone(), m.inst.port));
        }
        // The new master's replication history is what it reported as a
        // replica (the failover's safety rules compare against it); the old
        // master's must not linger under the new address.
        let history = m
            .replicas
            .values()
            .find(|r| r.port == port && r.host.eq_ignore_ascii_case(host))
            .map(|r| (r.repl_id.clone(), r.repl_id2.clone(), r.repl_offset));
        let moved = !(m.inst.host == host && m.inst.port == port);
        self.reset_master(mi, now, false, false, out);
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        m.inst.host = host.to_string();
        m.inst.port = port;
        if moved {
            let (id1, id2, offset) = history.unwrap_or((None, None, None));
            m.inst.repl_id = id1;
            m.inst.repl_id2 = id2;
            m.inst.repl_offset = offset;
        }
        m.inst.s_down_since = None;
        m.inst.o_down_since = None;
        let ma = m.addr();
        let down_after = m.inst.down_after;
        for (h, p) in addrs {
            let key = format_addr(&h, p);
            if m.replicas.contains_key(&key) {
                continue;
            }
            let r = Instance::new(
                alloc_id(&mut self.next_id),
                InstanceKind::Replica,
                key.clone(),
                h,
                p,
                down_after,
                now,
            );
            emit(out, EventKind::Slave, prefix(&r, &ma), Some(&ma.name));
            self.owners.insert(r.id, ma.name.clone());
            m.replicas.insert(key, r);
        }
        out.push(Action::Flush);
    }

    /// The whole `# Sentinel` INFO section (contract §2).
    pub fn info_sentinel_section(
        &self,
        _now: Millis,
        running_scripts: usize,
        scripts_queue_len: usize,
    ) -> String {
        let mut s = String::from("# Sentinel\r\n");
        s.push_str(&format!("sentinel_masters:{}\r\n", self.masters.len()));
        // No TILT with a monotonic clock: see the module comment.
        s.push_str("sentinel_tilt:0\r\n");
        s.push_str("sentinel_tilt_since_seconds:-1\r\n");
        s.push_str(&format!("sentinel_running_scripts:{running_scripts}\r\n"));
        s.push_str(&format!(
            "sentinel_scripts_queue_length:{scripts_queue_len}\r\n"
        ));
        s.push_str(&format!(
            "sentinel_simulate_failure_flags:{}\r\n",
            self.simfailure_flags
        ));
        for (n, m) in self.masters.values().enumerate() {
            let (host, port) = self.shown_addr(m);
            let status = if m.inst.o_down {
                "odown"
            } else if m.inst.s_down {
                "sdown"
            } else {
                "ok"
            };
            // No brackets around IPv6 here, unlike replica names.
            s.push_str(&format!(
                "master{n}:name={},status={status},address={}:{},slaves={},sentinels={}",
                m.inst.name,
                host,
                port,
                m.replicas.len(),
                m.sentinels.len() + 1
            ));
            // raftinel: cut off from the group's majority (parsers split
            // the line on ',' and '=' and look keys up: an extra key at the
            // end is ignored by them).
            if self.cut_off(&m.inst.name) {
                s.push_str(",quorum=no");
            }
            s.push_str("\r\n");
        }
        s
    }
}

/// The replicas written to the config for master `m` answered at
/// `host:port`. While a committed failover is past promotion the answer is
/// the promoted replica: write the list the switch will produce (the others
/// plus the old master), so a restart from this file is already switched.
fn persisted_replicas(m: &Master, host: &str, port: u16) -> Vec<(String, u16)> {
    let at = |h: &str, p: u16| p == port && h.eq_ignore_ascii_case(host);
    let moved = !at(&m.inst.host, m.inst.port);
    let mut list: Vec<(String, u16)> = m
        .replicas
        .values()
        .filter(|r| !(moved && at(&r.host, r.port)))
        .map(|r| (r.host.clone(), r.port))
        .collect();
    if moved
        && !list
            .iter()
            .any(|(h, p)| *p == m.inst.port && h.eq_ignore_ascii_case(&m.inst.host))
    {
        list.push((m.inst.host.clone(), m.inst.port));
    }
    list
}

/// ODOWN from our SDOWN plus the peers' opinions (§4.7).
fn check_odown(m: &mut Master, now: Millis, out: &mut Vec<Action>) {
    let votes = 1 + m.sentinels.values().filter(|s| s.master_down).count();
    check_odown_votes(m, now, votes, out);
}

/// How long an ODOWN decided by the peer-reply rule before this daemon
/// could read the group's votes is kept while the votes catch up (opinions are
/// proposed at once and re-proposed every 250 ms, so well within this).
pub(crate) const ODOWN_HANDOVER_MS: u64 = 2000;

/// ODOWN in a group: the committed down votes decide. An ODOWN the peer-reply
/// rule decided before (the master died while the group formed) is handed
/// over without a `-odown`/`+odown` pair: it is kept while local SDOWN lasts
/// and the votes have not reached the quorum yet, for at most
/// `ODOWN_HANDOVER_MS`, so each down period publishes one `+odown`.
pub(crate) fn group_check_odown(m: &mut Master, now: Millis, votes: usize, out: &mut Vec<Action>) {
    if let Some(hold) = m.fo.classic_odown {
        let deadline = hold.unwrap_or(now.saturating_add(ODOWN_HANDOVER_MS));
        let catching_up =
            m.inst.o_down && m.inst.s_down && votes < m.quorum as usize && now < deadline;
        if catching_up {
            m.fo.classic_odown = Some(Some(deadline));
            return;
        }
        m.fo.classic_odown = None;
    }
    check_odown_votes(m, now, votes, out);
}

/// ODOWN = local SDOWN and `votes >= quorum` (votes: the peers' answers plus
/// ours, or in a group the committed down opinions).
pub(crate) fn check_odown_votes(m: &mut Master, now: Millis, votes: usize, out: &mut Vec<Action>) {
    let odown = m.inst.s_down && votes >= m.quorum as usize;
    if odown {
        if !m.inst.o_down {
            m.inst.o_down = true;
            m.inst.o_down_since = Some(now);
            let msg = format!("{} #quorum {}/{}", m.prefix(), votes, m.quorum);
            emit(out, EventKind::Odown, msg, Some(&m.inst.name));
        }
    } else if m.inst.o_down {
        m.inst.o_down = false;
        let msg = m.prefix();
        emit(out, EventKind::OdownCleared, msg, Some(&m.inst.name));
    }
}

#[cfg(test)]
mod scale_tests {
    //! The indexes that keep per-input work proportional to the instance an
    //! input is about, and the epochs of failover starts proposed together.

    use super::*;
    use crate::core::persisted::MasterState;

    const MYID: &str = "55612eaa002986434ec916ab8760956e7119a840";
    const PEER: &str = "2864fe5b5ffed532dfe28f2e9b67801fcaf7b633";

    fn core(masters: usize) -> Sentinel {
        let masters = (0..masters)
            .map(|i| {
                let mut m = MasterState::new(&format!("m{i:03}"), "127.0.0.1", 7000 + i as u16, 2);
                m.known_replicas.push(("127.0.0.1".into(), 8000 + i as u16));
                m.known_sentinels
                    .push(("127.0.0.1".into(), 26380, PEER.to_string()));
                m
            })
            .collect();
        let st = PersistedState {
            myid: Some(MYID.into()),
            masters,
            ..Default::default()
        };
        Sentinel::new(st, CoreOptions::default(), 0).0
    }

    /// `locate` with the index agrees with a plain scan for every instance.
    fn check_index(s: &Sentinel) {
        for (mi, m) in s.masters.values().enumerate() {
            let ids = std::iter::once(m.inst.id)
                .chain(m.replicas.values().map(|r| r.id))
                .chain(m.sentinels.values().map(|x| x.id));
            for id in ids {
                assert_eq!(s.owners.get(&id), Some(&m.inst.name), "{id:?} not indexed");
                assert_eq!(s.locate(id).map(|(i, _)| i), Some(mi));
                assert_eq!(
                    s.locate(id).map(|(i, _)| i),
                    Sentinel::slot_in(m, id).map(|_| mi)
                );
            }
        }
    }

    #[test]
    fn instances_are_indexed_through_discovery_reset_and_remove() {
        let mut s = core(3);
        check_index(&s);
        // A replica discovered by INFO and a sentinel by hello.
        let mid = s.masters["m001"].inst.id;
        s.handle(
            10,
            Input::InfoReply {
                id: mid,
                text:
                    "role:master\r\nslave0:ip=127.0.0.1,port=9001,state=online,offset=1,lag=0\r\n"
                        .into(),
            },
        );
        let payload =
            "127.0.0.1,26381,819df12dcbb638ac6db263571690705072dd65c9,0,m002,127.0.0.1,7002,0"
                .to_string();
        s.handle(11, Input::Hello { via: None, payload });
        assert_eq!(s.masters["m001"].replicas.len(), 2);
        assert_eq!(s.masters["m002"].sentinels.len(), 2);
        check_index(&s);
        // A switch replaces the replicas with new instances.
        let mut out = Vec::new();
        let old: Vec<InstanceId> = s.masters["m001"].replicas.values().map(|r| r.id).collect();
        s.switch_master_addr(1, "127.0.0.1", 8001, 20, &mut out);
        check_index(&s);
        for id in old {
            assert!(s.locate(id).is_none());
            assert!(!s.owners.contains_key(&id));
        }
        // A removed master takes its instances with it.
        let gone = s.masters["m000"].inst.id;
        s.remove("m000", &mut out).unwrap();
        assert!(s.locate(gone).is_none());
        check_index(&s);
        // A reply for an id that no longer exists changes nothing.
        assert!(s.handle(30, Input::CommandTimeout { id: gone }).is_empty());
    }

    #[test]
    fn starts_proposed_together_get_distinct_epochs() {
        let mut s = core(3);
        let a = s.start_epoch("m000", 5);
        let b = s.start_epoch("m001", 5);
        let c = s.start_epoch("m002", 5);
        assert_eq!((a, b, c), (6, 7, 8));
        // A re-proposal keeps its epoch while it is above the committed one...
        assert_eq!(s.start_epoch("m000", 5), 6);
        assert_eq!(s.start_epoch("m001", 6), 7);
        // ...and takes a new one once it is stale.
        assert_eq!(s.start_epoch("m000", 7), 9);
        // A later start begins above everything committed and proposed.
        assert_eq!(s.start_epoch("m002", 20), 21);
    }
}
