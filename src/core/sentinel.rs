//! The sentinel state: every monitored master with its replicas and peer
//! sentinels, epochs, and where each input goes.
//!
//! [`Sentinel::handle`] is the only entry point that changes state from the
//! outside world; SENTINEL subcommands go through the methods in
//! `commands.rs` (run with [`Sentinel::command`]). Both return [`Action`]s in
//! the order redis-sentinel performs the corresponding effects (e.g. `Flush`
//! before `+monitor`). The rules live beside this file: `detection.rs` (the
//! periodic commands, SDOWN, ODOWN), `discovery.rs` (what INFO and hellos
//! teach), `failover.rs` (committed state and failovers), `info_section.rs`
//! (INFO's `# Sentinel` section).
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
use super::instance::{announced, Instance};
use super::persisted::{GlobalSentinelConfig, MasterState, PersistedState};
use super::types::{
    Action, CoreOptions, HelloOut, Input, InstanceId, InstanceKind, LinkAuth, LinkKind, LinkSpec,
    Millis, RaftView, Timing,
};

/// Upper bound of the random delays that desynchronise sentinels.
pub(crate) const MAX_DESYNC: u64 = 1000;

// Used by the failover engine under these paths.
pub(crate) use super::detection::group_check_odown;
#[cfg(test)]
pub(crate) use super::detection::ODOWN_HANDOVER_MS;

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
    /// The address as configured (comparisons).
    pub host: String,
    pub port: u16,
    /// The address as shown (`instance::announced`).
    pub shown: String,
    /// announce-hostnames, for the instances shown with this master.
    pub announce: bool,
}

impl MAddr {
    fn r(&self) -> MasterRef<'_> {
        MasterRef {
            name: &self.name,
            host: &self.shown,
            port: self.port,
        }
    }

    /// The `%@` prefix of the master at this address.
    pub(crate) fn master_prefix(&self) -> String {
        instance_prefix(
            InstanceKind::Master,
            &self.name,
            &self.shown,
            self.port,
            None,
        )
    }
}

/// The `%@` prefix of an instance (see `event::instance_prefix`).
pub(crate) fn prefix(inst: &Instance, m: &MAddr) -> String {
    instance_prefix(
        inst.kind,
        &inst.shown_name(m.announce),
        inst.shown_host(m.announce),
        inst.port,
        Some(m.r()),
    )
}

/// The client-reconfig-script run, as Sentinel passes it:
/// `<master> <leader|observer> start <from-ip> <from-port> <to-ip> <to-port>`
/// (addresses as shown).
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
            from.shown.clone(),
            from.port.to_string(),
            to_host.to_string(),
            to_port.to_string(),
        ],
    }
}

/// The IP of a new instance at `host`: the host if a literal, else what
/// an instance at the same name resolved to (`ips`, `resolved_names`).
pub(crate) fn seeded_ip(host: &str, ips: &[(String, String)]) -> Option<String> {
    super::instance::literal_ip(host).or_else(|| {
        ips.iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map(|(_, ip)| ip.clone())
    })
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
    /// The master's own address; `announce` is announce-hostnames.
    pub(crate) fn addr(&self, announce: bool) -> MAddr {
        MAddr {
            name: self.inst.name.clone(),
            host: self.inst.host.clone(),
            port: self.inst.port,
            shown: self.inst.shown_host(announce).to_string(),
            announce,
        }
    }

    pub(crate) fn prefix(&self, announce: bool) -> String {
        prefix(&self.inst, &self.addr(announce))
    }

    /// The IP `host` resolved to, as known from the master's own instances
    /// (the master, its replicas, its peers), or the host if a literal.
    pub(crate) fn ip_of(&self, host: &str) -> Option<&str> {
        std::iter::once(&self.inst)
            .chain(self.replicas.values())
            .chain(self.sentinels.values())
            .filter(|i| i.host.eq_ignore_ascii_case(host))
            .find_map(|i| i.ip.as_deref())
    }

    /// Every (name, IP) pair this master's instances resolved.
    pub(crate) fn resolved_names(&self) -> Vec<(String, String)> {
        std::iter::once(&self.inst)
            .chain(self.replicas.values())
            .chain(self.sentinels.values())
            .filter_map(|i| Some((i.host.clone(), i.ip.clone()?)))
            .collect()
    }

    /// `host` as shown for this master's instances (`instance::announced`).
    pub(crate) fn shown_host<'a>(&'a self, host: &'a str, announce: bool) -> &'a str {
        if announce {
            return host;
        }
        announced(host, self.ip_of(host), announce)
    }

    /// Credentials for the master's and its replicas' links (`auth-user`,
    /// `auth-pass`).
    pub(super) fn data_auth(&self) -> LinkAuth {
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

/// For this long after its start, a daemon of a group that has not heard
/// the group yet holds the answers that name a master (GET-MASTER-ADDR-BY-
/// NAME, MASTERS, MASTER); then it answers from what it has.
pub const STARTUP_HOLD_MS: Millis = 2000;
/// After the first contact, the committed state gets this long to apply
/// what the leader sent.
const CATCH_UP_MS: Millis = 100;

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
    /// promotion): the failover engine emits `Action::SimulatedCrash` at
    /// that step.
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
    /// When the driver last ticked the core (the liveness probe's clock).
    pub(crate) last_tick: Millis,
    /// Since when this daemon is out of touch with its group (the Raft
    /// lease passed), as the driver reports it (`Input::GroupContact`).
    pub(crate) group_lost_at: Option<Millis>,
    /// Since when it is back in touch (None while out of touch or before
    /// the first report).
    pub(crate) group_back_at: Option<Millis>,
    /// When this daemon, as the group's leader, last proposed a refresh of
    /// a master's recorded offset (`failover::HISTORY_REFRESH_GAP_MS`).
    pub(crate) history_refreshed_at: Option<Millis>,
    /// When this daemon was first in touch with its group since it started.
    pub(crate) first_touch: Option<Millis>,
    /// When the core was made (the process's start).
    pub(crate) started_at: Millis,
}

/// The masters whose failover engine an input may have moved: the engine
/// steps those right after the input, and every master on each tick.
pub(super) enum Touched {
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
    m.inst.refused_down_after = ms.refused_down_after_ms;
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

pub(super) fn link_spec(
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
            last_tick: now,
            group_lost_at: None,
            group_back_at: None,
            history_refreshed_at: None,
            first_touch: None,
            started_at: now,
        };
        for mi in 0..s.masters.len() {
            s.register_master(mi);
        }
        for m in s.masters.values() {
            emit(
                &mut out,
                EventKind::Monitor,
                format!(
                    "{} quorum {}",
                    m.prefix(s.globals.announce_hostnames),
                    m.quorum
                ),
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

    /// When the core was last ticked (0: not yet).
    /// Whether answers naming a master wait (see `STARTUP_HOLD_MS`): this
    /// daemon restarted into a group it has not heard from yet, so its
    /// committed state may be a failover behind (a master restarted with
    /// its daemon would otherwise be named by that daemon, empty).
    pub fn answer_held(&self, now: Millis) -> bool {
        self.raft.initialized
            && now < self.started_at.saturating_add(STARTUP_HOLD_MS)
            && self
                .first_touch
                .is_none_or(|t| now < t.saturating_add(CATCH_UP_MS))
    }

    /// Whether `answer_held` is false at `now` and at every later time: the
    /// bound after the start passed, or the group was heard and caught up
    /// with (a daemon whose Raft view is not initialized yet may still be).
    pub fn answer_hold_over(&self, now: Millis) -> bool {
        now >= self.started_at.saturating_add(STARTUP_HOLD_MS)
            || self
                .first_touch
                .is_some_and(|t| now >= t.saturating_add(CATCH_UP_MS))
    }

    pub fn last_tick(&self) -> Millis {
        self.last_tick
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

    /// Hellos ignored because they were malformed or hostile.
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
    ///
    /// Addresses are written as configured, names included, whatever
    /// announce-hostnames says. Deliberately: redis-sentinel 7.0.15 rewrites
    /// a name as the IP it resolved to when names are not announced, so
    /// after a restart it watches that IP for good (a pod back on a new IP
    /// is lost), and here the name is the instance's identity: the group's
    /// committed addresses are names, and the links resolve them again at
    /// each connect.
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
                    refused_down_after_ms: m.inst.refused_down_after,
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
                self.last_tick = now;
                self.tick(now, &mut out);
                Touched::All
            }
            Input::LinkUp { id, link } => {
                self.link_up(now, id, link, &mut out);
                self.master_of(id)
            }
            Input::Refused { id } => {
                self.link_down(now, id, LinkKind::Command, true, &mut out);
                self.master_of(id)
            }
            Input::LinkDown { id, link } => {
                self.link_down(now, id, link, false, &mut out);
                self.master_of(id)
            }
            Input::PingReply { id, reply } => {
                self.ping_reply(now, id, reply, &mut out);
                self.unless_quiet(self.master_of(id))
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
                self.unless_quiet(self.master_of(id))
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
            Input::Resolved { id, ip } => {
                self.resolved(id, ip);
                Touched::None
            }
            Input::SameHost { id, same } => {
                if let Some(i) = self.instance_mut(id) {
                    i.link.same_host = same;
                }
                Touched::None
            }
            Input::GroupContact { in_touch } => {
                self.group_contact(now, in_touch);
                Touched::All
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

    /// The host of instance `id` resolved to `ip`: so it did for every
    /// instance at that name.
    fn resolved(&mut self, id: InstanceId, ip: String) {
        let Some(host) = self.instance_mut(id).map(|i| i.host.clone()) else {
            return;
        };
        for m in self.masters.values_mut() {
            let instances = std::iter::once(&mut m.inst)
                .chain(m.replicas.values_mut())
                .chain(m.sentinels.values_mut());
            for i in instances.filter(|i| i.host.eq_ignore_ascii_case(&host)) {
                if i.ip.as_deref() != Some(ip.as_str()) {
                    i.ip = Some(ip.clone());
                }
            }
        }
    }

    /// `touched`, less a master whose engine is quiet (`quiet`): for the
    /// replies that move nothing of an idle master's failover.
    pub(super) fn unless_quiet(&self, touched: Touched) -> Touched {
        match touched {
            Touched::One(mi) if self.quiet(mi) => Touched::None,
            t => t,
        }
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
        Self::instance_in(m, slot)
    }

    pub(super) fn instance_in(m: &mut Master, slot: Slot) -> Option<&mut Instance> {
        match slot {
            Slot::Master => Some(&mut m.inst),
            Slot::Replica(i) => m.replicas.get_index_mut(i).map(|(_, r)| r),
            Slot::Sentinel(i) => m.sentinels.get_index_mut(i).map(|(_, s)| s),
        }
    }

    pub(super) fn instance_mut(&mut self, id: InstanceId) -> Option<&mut Instance> {
        let (mi, slot) = self.locate(id)?;
        self.slot_mut(mi, slot)
    }

    pub(super) fn client_name(&self) -> String {
        format!("sentinel-{}", self.myid.get(..8).unwrap_or(&self.myid))
    }

    /// Credentials for links to peer sentinels, and for the Raft
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

    /// The hello this sentinel publishes for master `m`.
    pub(crate) fn hello_out(&self, m: &Master) -> HelloOut {
        let port = if self.globals.announce_port != 0 {
            self.globals.announce_port
        } else {
            self.opts.port
        };
        let (master_ip, master_port) = self.show(m, self.client_addr(m));
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
        let via = Some(s.masters["m002"].inst.id);
        s.handle(11, Input::Hello { via, payload });
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
