//! The driver: owns the core behind a mutex, ticks it, feeds it link results,
//! and executes its actions (links, events, config flushes, scripts).
//!
//! [`Shared`] is the handle every part of the daemon holds: the RESP server's
//! command handlers lock `core` for a short, synchronous critical section
//! (never across an `.await`), get back a reply plus `Action`s, **release the
//! lock**, and hand the actions to [`Shared::execute`].
//!
//! [`run_driver`] is the one task that talks to the links: it ticks the core
//! every 100 ms, turns link actions into work for the link tasks (see
//! `crate::links`), and feeds every link result back to the core. Link tasks
//! report with a generation number so results from a link that was already
//! closed or replaced never reach the core.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::{PersistedState, ServerConfig};
use crate::core::{Action, Input, InstanceId, InstanceKind, LinkKind, LinkSpec, Millis, Sentinel};
use crate::links::{self, LinkCmd, LinkCtx, LinkMsg, LinkTask};
use crate::observe::scripts::ScriptQueue;
use crate::server::pubsub::Hub;

/// Why a config flush failed (SENTINEL SET/MONITOR/... then answer
/// `-ERR Failed to save config file. Check server logs.`).
#[derive(Debug, thiserror::Error)]
#[error("failed to save config file: {0}")]
pub struct FlushError(pub String);

/// Writes the persisted state into the config file (the CONFIG engineer's
/// `config::flush` bound to the loaded file by `main`).
pub type FlushFn = Box<dyn Fn(&ServerConfig, &PersistedState) -> Result<(), String> + Send + Sync>;

/// `bind-source-addr` from the loaded configuration (kept by the config
/// loader among the directives it does not interpret itself).
pub fn bind_source_addr(file: &crate::config::ConfigFile) -> Option<std::net::IpAddr> {
    file.extras
        .get("bind-source-addr")
        .and_then(|args| args.first())
        .and_then(|a| a.parse().ok())
}

/// How often the core is ticked.
pub const TICK: Duration = Duration::from_millis(100);
/// Link results fed to the core under one lock at most.
const RESULT_BATCH: usize = 256;

pub struct Shared {
    /// The core state machine. Lock briefly; never hold across `.await`.
    pub core: Mutex<Sentinel>,
    /// Local pub/sub: events are published here for SUBSCRIBE/PSUBSCRIBE clients.
    pub hub: Hub,
    /// Generic server configuration (port, auth, limits, ...).
    pub server: Mutex<ServerConfig>,
    /// Origin of the monotonic clock given to the core.
    pub started: Instant,
    /// Link-level actions go to the driver task.
    pub driver_tx: mpsc::UnboundedSender<Action>,
    /// Cancelled on SHUTDOWN, SIGTERM or SIGINT: everything drains and exits.
    pub shutdown: CancellationToken,
    /// Where `Action::Propose` goes: the consensus task, once it runs. The
    /// core re-proposes anything not yet committed, so a proposal made before
    /// the group exists is safely dropped.
    pub proposals: std::sync::OnceLock<mpsc::UnboundedSender<crate::core::group::Command>>,
    /// Where `Action::ForgetDaemon` goes: the consensus task, once it runs.
    pub forgets: std::sync::OnceLock<mpsc::UnboundedSender<u64>>,
    /// The local Raft node, once started (serves `RAFTINEL` RPCs).
    pub raft: std::sync::OnceLock<crate::consensus::node::RaftNode>,
    /// Notification / client-reconfig script jobs (SENTINEL PENDING-SCRIPTS, INFO).
    pub scripts: Arc<ScriptQueue>,
    /// Prometheus handle for `/metrics` (None if another recorder owns metrics).
    pub metrics: Option<PrometheusHandle>,
    /// `bind-source-addr` for outbound links (set once by `main`).
    pub bind_source: std::sync::OnceLock<std::net::IpAddr>,
    /// The config rewrite; None = state is not persisted (tests, demo tools).
    pub flusher: Option<FlushFn>,
    /// Effects of the inputs fed by the driver tasks (see `execute_background`).
    effects: Effects,
}

/// Config flushes of the inputs the driver tasks feed (link replies, hellos,
/// ticks, commits), run by one task off those tasks. A flush is a full
/// rewrite of the config file with fsync (tens of milliseconds with hundreds
/// of masters) and discovering peers and replicas asks for one each: done
/// inline, they held the driver long enough for healthy nodes to go SDOWN.
/// Flushes are coalesced: one started after a request already writes
/// everything that request was for. Events are not queued behind them: a
/// client must see `+odown` or `+switch-master` when it happens, not after
/// the config file is written (Sentinel itself publishes `+switch-master`
/// before its flush).
struct Effects {
    tx: mpsc::UnboundedSender<Effect>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Effect>>>,
    /// Flush requests queued so far (each carries its number).
    requested: AtomicU64,
    /// The task is started on first use (it needs a running tokio runtime).
    started: std::sync::Once,
    me: Weak<Shared>,
}

enum Effect {
    /// The n-th flush request.
    Flush(u64),
}

impl Shared {
    /// Builds the handle around a fresh core. Returns the receiving end of
    /// `driver_tx`, to be given to [`run_driver`].
    pub fn new(
        core: Sentinel,
        server: ServerConfig,
        flusher: Option<FlushFn>,
        started: Instant,
    ) -> (Arc<Shared>, mpsc::UnboundedReceiver<Action>) {
        let (driver_tx, driver_rx) = mpsc::unbounded_channel();
        let (effects_tx, effects_rx) = mpsc::unbounded_channel();
        let shared = Arc::new_cyclic(|me| Shared {
            core: Mutex::new(core),
            hub: Hub::new(),
            server: Mutex::new(server),
            started,
            driver_tx,
            shutdown: CancellationToken::new(),
            proposals: std::sync::OnceLock::new(),
            forgets: std::sync::OnceLock::new(),
            raft: std::sync::OnceLock::new(),
            scripts: Arc::new(ScriptQueue::new(started)),
            metrics: crate::observe::metrics_handle(),
            bind_source: std::sync::OnceLock::new(),
            flusher,
            effects: Effects {
                tx: effects_tx,
                rx: Mutex::new(Some(effects_rx)),
                requested: AtomicU64::new(0),
                started: std::sync::Once::new(),
                me: me.clone(),
            },
        });
        (shared, driver_rx)
    }

    /// Monotonic milliseconds for the core (tokio's clock: pausable in tests).
    pub fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    /// The core, tolerating a poisoned lock (the state machine is left
    /// consistent between inputs, so a panic elsewhere must not stop the daemon).
    pub fn lock_core(&self) -> MutexGuard<'_, Sentinel> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a proposal to the consensus task (see `proposals`).
    fn propose(&self, cmd: crate::core::group::Command) {
        match self.proposals.get() {
            Some(tx) => {
                let _ = tx.send(cmd);
            }
            None => tracing::debug!("no raft group yet; not proposing {cmd:?}"),
        }
    }

    /// Hands a removal request to the consensus task (see `forgets`).
    fn forget(&self, node: u64) {
        if let Some(tx) = self.forgets.get() {
            let _ = tx.send(node);
        }
    }

    /// Carries out the core's actions in order: events are emitted, flushes
    /// done synchronously, scripts queued, link actions forwarded to the
    /// driver. Every action is executed even if a flush fails; the first flush
    /// error is returned. Never call this with the core lock held.
    pub fn execute(&self, actions: Vec<Action>) -> Result<(), FlushError> {
        let mut result = Ok(());
        // The core's state is final when its actions are executed: the first
        // flush of a batch already writes everything a later one would (a
        // committed entry touching many masters asks for one per master, and
        // each is a full rewrite with fsync).
        let mut flushed = false;
        for action in actions {
            match action {
                Action::Emit(ev) => crate::observe::emit(self, &ev),
                Action::Flush if flushed => {}
                Action::Flush => {
                    flushed = true;
                    if let Err(e) = self.flush() {
                        tracing::warn!("{e}");
                        if result.is_ok() {
                            result = Err(e);
                        }
                    }
                }
                Action::RunScript { argv } => self.scripts.enqueue(argv),
                Action::Propose(cmd) => self.propose(cmd),
                Action::ForgetDaemon { node } => self.forget(node),
                Action::SimulatedCrash => simulated_crash(),
                Action::Warn(line) => tracing::warn!("{line}"),
                link_action => {
                    // Fails only when the driver has stopped (shutdown).
                    let _ = self.driver_tx.send(link_action);
                }
            }
        }
        result
    }

    /// Rewrites the config file with the core's current persisted state.
    pub fn flush(&self) -> Result<(), FlushError> {
        let Some(flusher) = &self.flusher else {
            return Ok(());
        };
        let state = self.lock_core().persisted();
        let server = self
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        flusher(&server, &state).map_err(FlushError)
    }

    /// Feeds one input to the core and executes what it asks for (events,
    /// scripts and flushes in the background, see `execute_background`).
    pub fn feed(&self, input: Input) {
        let actions = {
            let now = self.now();
            self.lock_core().handle(now, input)
        };
        self.execute_background(actions);
    }

    /// Like `execute`, for actions nobody waits on (a link reply, a hello, a
    /// tick, a commit): everything is done at once except config flushes,
    /// which are queued to the effects task, so the caller never waits for
    /// a config rewrite. Flush errors are logged.
    pub fn execute_background(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Emit(ev) => crate::observe::emit(self, &ev),
                Action::RunScript { argv } => self.scripts.enqueue(argv),
                Action::Flush => {
                    if self.flusher.is_some() {
                        let n = self.effects.requested.fetch_add(1, Ordering::SeqCst) + 1;
                        self.effect(Effect::Flush(n));
                    }
                }
                Action::Propose(cmd) => self.propose(cmd),
                Action::ForgetDaemon { node } => self.forget(node),
                Action::SimulatedCrash => simulated_crash(),
                Action::Warn(line) => tracing::warn!("{line}"),
                link_action => {
                    let _ = self.driver_tx.send(link_action);
                }
            }
        }
    }

    fn effect(&self, e: Effect) {
        self.effects.started.call_once(|| {
            let rx = self
                .effects
                .rx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(rx) = rx {
                tokio::spawn(run_effects(self.effects.me.clone(), rx));
            }
        });
        let _ = self.effects.tx.send(e);
    }
}

/// `SENTINEL SIMULATE-FAILURE`: Sentinel's log line, then exit status 99
/// (the events before it in the batch are already published).
fn simulated_crash() -> ! {
    tracing::warn!("Sentinel CRASH because of SENTINEL simulate-failure");
    std::process::exit(99)
}

/// The effects task (see `Effects`). It holds the daemon weakly: it ends
/// with it.
async fn run_effects(me: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<Effect>) {
    // Every flush request numbered up to this was made before the last
    // flush read the state: it is done.
    let mut done = 0;
    while let Some(e) = rx.recv().await {
        let Some(shared) = me.upgrade() else {
            return;
        };
        match e {
            Effect::Flush(n) if n <= done => {}
            Effect::Flush(_) => {
                // Requests are numbered after the state they are for is in
                // the core, and the flush reads the core after this load.
                let upto = shared.effects.requested.load(Ordering::SeqCst);
                let sh = shared.clone();
                match tokio::task::spawn_blocking(move || sh.flush()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("{e}"),
                    Err(e) => tracing::warn!("config flush task failed: {e}"),
                }
                done = upto;
            }
        }
    }
}

/// The links of one instance.
struct InstanceLinks {
    spec: LinkSpec,
    cmd: Option<LinkTask>,
    pubsub: Option<LinkTask>,
}

/// Link bookkeeping of the driver task.
struct Links {
    shared: Arc<Shared>,
    map: HashMap<InstanceId, InstanceLinks>,
    next_gen: u64,
    out: mpsc::UnboundedSender<LinkMsg>,
}

impl Links {
    fn ctx(&mut self, spec: &LinkSpec) -> LinkCtx {
        self.next_gen += 1;
        LinkCtx {
            spec: spec.clone(),
            gen: self.next_gen,
            bind_source: self.shared.bind_source.get().copied(),
            out: self.out.clone(),
        }
    }

    /// Opens the links of `spec` that are not already open or opening; a
    /// changed spec (address, credentials, renames) replaces them all.
    fn connect(&mut self, spec: LinkSpec) {
        let id = spec.id;
        if self.map.get(&id).is_some_and(|l| l.spec != spec) {
            self.map.remove(&id);
        }
        let need_cmd = self
            .map
            .get(&id)
            .is_none_or(|l| l.cmd.as_ref().is_none_or(LinkTask::is_finished));
        let need_pubsub = spec.kind != InstanceKind::Sentinel
            && self
                .map
                .get(&id)
                .is_none_or(|l| l.pubsub.as_ref().is_none_or(LinkTask::is_finished));
        let cmd = need_cmd.then(|| links::spawn_command(self.ctx(&spec)));
        let pubsub = need_pubsub.then(|| links::spawn_pubsub(self.ctx(&spec)));
        let entry = self.map.entry(id).or_insert_with(|| InstanceLinks {
            spec: spec.clone(),
            cmd: None,
            pubsub: None,
        });
        if cmd.is_some() {
            entry.cmd = cmd;
        }
        if pubsub.is_some() {
            entry.pubsub = pubsub;
        }
    }

    fn disconnect(&mut self, id: InstanceId, link: Option<LinkKind>) {
        match link {
            None => {
                self.map.remove(&id);
            }
            Some(kind) => {
                if let Some(l) = self.map.get_mut(&id) {
                    match kind {
                        LinkKind::Command => l.cmd = None,
                        LinkKind::PubSub => l.pubsub = None,
                    }
                }
            }
        }
    }

    fn send(&self, id: InstanceId, cmd: LinkCmd) {
        match self.map.get(&id).and_then(|l| l.cmd.as_ref()) {
            Some(task) => {
                let _ = task.tx.send(cmd);
            }
            None => tracing::trace!("no command link for {id:?}: dropping {cmd:?}"),
        }
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Connect(spec) => self.connect(spec),
            Action::Disconnect { id, link } => self.disconnect(id, link),
            Action::SendPing { id } => self.send(id, LinkCmd::Ping),
            Action::SendInfo { id } => self.send(id, LinkCmd::Info),
            Action::SendHello { id, hello } => self.send(id, LinkCmd::Hello(hello)),
            Action::AskMasterDown {
                peer,
                master_ip,
                master_port,
                epoch,
                runid,
            } => self.send(
                peer,
                LinkCmd::AskMasterDown {
                    master_ip,
                    master_port,
                    epoch,
                    runid,
                },
            ),
            Action::ScriptKill { id } => self.send(id, LinkCmd::ScriptKill),
            Action::Reconfigure { id, replicaof } => {
                self.send(id, LinkCmd::Reconfigure { replicaof })
            }
            Action::PauseWrites { id, ms } => self.send(id, LinkCmd::PauseWrites { ms }),
            Action::Unpause { id } => self.send(id, LinkCmd::Unpause),
            // Not link actions: `Shared::execute` handles them; if one arrives
            // here anyway, run it there.
            other @ (Action::Emit(_)
            | Action::Flush
            | Action::RunScript { .. }
            | Action::Propose(_)
            | Action::ForgetDaemon { .. }
            | Action::Warn(_)
            | Action::SimulatedCrash) => {
                let _ = self.shared.execute(vec![other]);
            }
        }
    }

    /// Feeds inputs to the core under one lock, then carries out what it
    /// asked for: link actions here, at once (not through `driver_tx`, a
    /// round trip through this same task), the rest in the background.
    fn feed(&mut self, inputs: Vec<Input>) {
        if inputs.is_empty() {
            return;
        }
        let actions = {
            let now = self.shared.now();
            let mut core = self.shared.lock_core();
            let mut all = Vec::new();
            for input in inputs {
                all.extend(core.handle(now, input));
            }
            all
        };
        let mut rest = Vec::new();
        for action in actions {
            match action {
                Action::Emit(_)
                | Action::Flush
                | Action::RunScript { .. }
                | Action::Propose(_)
                | Action::ForgetDaemon { .. }
                | Action::Warn(_)
                | Action::SimulatedCrash => rest.push(action),
                link_action => self.apply(link_action),
            }
        }
        self.shared.execute_background(rest);
    }

    /// Whether a link message comes from the link currently in place. A
    /// `LinkDown` also retires that link so the next `Connect` reopens it.
    fn accept(&mut self, msg: &LinkMsg) -> bool {
        let Some(l) = self.map.get_mut(&msg.id) else {
            return false;
        };
        let slot = match msg.link {
            LinkKind::Command => &mut l.cmd,
            LinkKind::PubSub => &mut l.pubsub,
        };
        if slot.as_ref().map(|t| t.gen) != Some(msg.gen) {
            return false;
        }
        if matches!(msg.input, Input::LinkDown { .. }) {
            *slot = None;
        }
        true
    }
}

/// The driver task: ticks, link actions, link results, until shutdown.
pub async fn run_driver(shared: Arc<Shared>, mut actions: mpsc::UnboundedReceiver<Action>) {
    let (out, mut results) = mpsc::unbounded_channel();
    let mut links = Links {
        shared: shared.clone(),
        map: HashMap::new(),
        next_gen: 0,
        out,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // An extra tick at the moment a master would go SDOWN when that falls
    // before the next regular tick: a dead master is seen down at
    // down-after, not up to a tick period later (see
    // `Sentinel::next_sdown_deadline`).
    let mut sdown_wake: Option<Instant> = None;
    loop {
        let wake = sdown_wake;
        tokio::select! {
            _ = async {
                if let Some(at) = wake {
                    tokio::time::sleep_until(at).await;
                }
            }, if wake.is_some() => {
                sdown_wake = None;
                links.feed(vec![Input::Tick]);
            }
            _ = shared.shutdown.cancelled() => break,
            Some(action) = actions.recv() => links.apply(action),
            Some(msg) = results.recv() => {
                // Whatever else has arrived goes in the same batch: one lock
                // of the core and one wake-up for many replies.
                let mut inputs = Vec::new();
                let mut next = Some(msg);
                while let Some(msg) = next.take() {
                    if links.accept(&msg) {
                        inputs.push(msg.input);
                    }
                    if inputs.len() < RESULT_BATCH {
                        next = results.try_recv().ok();
                    }
                }
                links.feed(inputs);
            }
            _ = tick.tick() => {
                links.feed(vec![Input::Tick]);
                let (max_runtime, retry_delay, due) = {
                    let core = shared.lock_core();
                    let t = core.timing();
                    (t.script_max_runtime, t.script_retry_delay, core.next_sdown_deadline())
                };
                let next_tick = shared.now().saturating_add(TICK.as_millis() as u64);
                sdown_wake = due
                    .filter(|&d| d < next_tick)
                    .map(|d| shared.started + Duration::from_millis(d));
                shared.scripts.set_timing(max_runtime, retry_delay);
            }
        }
    }
    // Dropping the link tasks closes every outbound connection.
    links.map.clear();
}

/// Starts the script runner, emitting its events through `observe::emit`.
pub fn spawn_script_runner(shared: &Arc<Shared>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(shared);
    let emit = move |ev| {
        if let Some(shared) = weak.upgrade() {
            crate::observe::emit(&shared, &ev);
        }
    };
    tokio::spawn(crate::observe::scripts::run(
        shared.scripts.clone(),
        emit,
        shared.shutdown.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::MasterState;
    use crate::core::{CoreOptions, Event, EventKind};

    fn state(host: &str, port: u16, down_after_ms: u64) -> PersistedState {
        let mut m = MasterState::new("mymaster", host, port, 1);
        m.down_after_ms = down_after_ms;
        PersistedState {
            myid: Some("0123456789abcdef0123456789abcdef01234567".into()),
            masters: vec![m],
            ..PersistedState::default()
        }
    }

    fn shared_with(
        st: PersistedState,
        flusher: Option<FlushFn>,
    ) -> (Arc<Shared>, mpsc::UnboundedReceiver<Action>, Vec<Action>) {
        let started = Instant::now();
        let (core, first) = Sentinel::new(st, CoreOptions::default(), 0);
        let (shared, rx) = Shared::new(core, ServerConfig::default(), flusher, started);
        (shared, rx, first)
    }

    fn master_status(shared: &Shared) -> String {
        let section = shared.lock_core().info_sentinel_section(shared.now(), 0, 0);
        section
            .split("status=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or("")
            .to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn execute_routes_each_action() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let counter = flushes.clone();
        let flusher: FlushFn = Box::new(move |_, st| {
            assert_eq!(st.masters.len(), 1);
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let (shared, mut rx, _) = shared_with(state("127.0.0.1", 6379, 30_000), Some(flusher));
        let id = crate::core::InstanceId(0);
        shared
            .execute(vec![
                Action::Flush,
                Action::SendPing { id },
                Action::RunScript {
                    argv: vec!["/bin/true".into()],
                },
                Action::Emit(Event::new(EventKind::NewEpoch, "1".into(), None)),
                Action::Disconnect { id, link: None },
            ])
            .unwrap();
        assert_eq!(flushes.load(Ordering::SeqCst), 1);
        assert_eq!(shared.scripts.queue_len(), 1);
        assert_eq!(rx.try_recv().unwrap(), Action::SendPing { id });
        assert_eq!(
            rx.try_recv().unwrap(),
            Action::Disconnect { id, link: None }
        );
        assert!(
            rx.try_recv().is_err(),
            "events, flushes and scripts stay out of the driver"
        );
    }

    /// Flushes asked for by driver-fed inputs run off the caller and are
    /// coalesced; events are published at once; the last state is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_flushes_are_coalesced() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let epochs = Arc::new(Mutex::new(Vec::new()));
        let (counter, seen) = (flushes.clone(), epochs.clone());
        let flusher: FlushFn = Box::new(move |_, st| {
            // A slow disk: requests pile up while this one is written. The
            // flusher runs on the blocking pool, where blocking is allowed.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(50));
            seen.lock().unwrap().push(st.current_epoch);
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let (shared, _rx, _) = shared_with(state("127.0.0.1", 6379, 30_000), Some(flusher));
        let (tx, mut events) = mpsc::channel(100);
        let sub = crate::server::pubsub::Subscriber {
            id: 1,
            tx,
            kill: CancellationToken::new(),
        };
        shared.hub.subscribe(&sub, b"+new-epoch");
        let started = Instant::now();
        for epoch in 1..=20 {
            shared.lock_core().current_epoch = epoch;
            shared.execute_background(vec![
                Action::Flush,
                Action::Emit(Event::new(EventKind::NewEpoch, epoch.to_string(), None)),
            ]);
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "the caller waited for the flushes"
        );
        let mut published = 0;
        while events.try_recv().is_ok() {
            published += 1;
        }
        assert_eq!(published, 20, "events are published at once");
        wait_until("the last state to be written", 10, || {
            epochs.lock().unwrap().last() == Some(&20)
        })
        .await;
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..20).contains(&n), "{n} flushes for 20 requests");
    }

    #[tokio::test(start_paused = true)]
    async fn flush_failure_is_reported_after_running_everything() {
        let flusher: FlushFn = Box::new(|_, _| Err("disk full".into()));
        let (shared, mut rx, _) = shared_with(state("127.0.0.1", 6379, 30_000), Some(flusher));
        let id = crate::core::InstanceId(0);
        let err = shared
            .execute(vec![Action::Flush, Action::SendInfo { id }])
            .unwrap_err();
        assert_eq!(err.0, "disk full");
        assert_eq!(rx.try_recv().unwrap(), Action::SendInfo { id });
    }

    /// A master that never answers goes SDOWN after down-after: the driver
    /// ticks the core on tokio's (paused) clock and forwards the connects.
    #[tokio::test(start_paused = true)]
    async fn driver_ticks_the_core_on_tokio_time() {
        // A listener that accepts but never answers: the link connects, the
        // PING stays pending.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let (shared, rx, first) = shared_with(state("127.0.0.1", port, 2_000), None);
        shared.execute(first).unwrap();
        let driver = tokio::spawn(run_driver(shared.clone(), rx));
        let hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                conns.push(s);
            }
        });
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(master_status(&shared), "ok");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // Quorum 1: ODOWN follows SDOWN on the same tick.
        assert_eq!(master_status(&shared), "odown");
        shared.shutdown.cancel();
        driver.await.unwrap();
        hold.abort();
    }

    #[test]
    fn stale_link_messages_are_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (shared, _rx, _) = shared_with(state("127.0.0.1", 1, 30_000), None);
            let (out, _results) = mpsc::unbounded_channel();
            let mut links = Links {
                shared,
                map: HashMap::new(),
                next_gen: 0,
                out,
            };
            let id = crate::core::InstanceId(7);
            let spec = LinkSpec {
                id,
                kind: InstanceKind::Master,
                host: "127.0.0.1".into(),
                port: 1,
                auth: Default::default(),
                client_name: "sentinel-01234567".into(),
                renames: Vec::new(),
            };
            links.connect(spec.clone());
            let gen = links.map[&id].cmd.as_ref().unwrap().gen;
            let msg = |gen, input| LinkMsg {
                id,
                link: LinkKind::Command,
                gen,
                input,
            };
            assert!(links.accept(&msg(
                gen,
                Input::LinkUp {
                    id,
                    link: LinkKind::Command
                }
            )));
            assert!(!links.accept(&msg(
                gen + 100,
                Input::LinkUp {
                    id,
                    link: LinkKind::Command
                }
            )));
            // A LinkDown retires the link: a later Connect opens a new one.
            assert!(links.accept(&msg(
                gen,
                Input::LinkDown {
                    id,
                    link: LinkKind::Command
                }
            )));
            assert!(links.map[&id].cmd.is_none());
            assert!(!links.accept(&msg(
                gen,
                Input::PingReply {
                    id,
                    reply: crate::core::PingReply::Valid { pong: true }
                }
            )));
            links.connect(spec.clone());
            assert!(links.map[&id].cmd.as_ref().unwrap().gen > gen);
            // Removing the instance drops everything that is still in flight.
            links.disconnect(id, None);
            assert!(!links.accept(&msg(
                gen,
                Input::LinkUp {
                    id,
                    link: LinkKind::Command
                }
            )));
        });
    }

    async fn wait_until(what: &str, secs: u64, f: impl Fn() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The links against a real redis-server: both links come up with
    /// Sentinel's client names, INFO discovers the replica, and a killed
    /// master goes down after down-after. Skipped when redis-server is absent.
    #[tokio::test]
    async fn links_monitor_a_real_redis() {
        let Some(redis) = crate::testutil::redis_server() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (mport, rport) = (crate::testutil::free_port(), crate::testutil::free_port());
        let spawn = |port: u16, replicaof: Option<u16>| match replicaof {
            Some(m) => crate::testutil::spawn_redis(
                &redis,
                dir.path(),
                port,
                &["--replicaof", "127.0.0.1", &m.to_string()],
            ),
            None => crate::testutil::spawn_redis(&redis, dir.path(), port, &[]),
        };
        let mut master = spawn(mport, None);
        let _replica = spawn(rport, Some(mport));

        let (shared, rx, first) = shared_with(state("127.0.0.1", mport, 1_000), None);
        shared.execute(first).unwrap();
        let driver = tokio::spawn(run_driver(shared.clone(), rx));

        let sh = shared.clone();
        wait_until("the replica to be discovered", 15, || {
            let section = sh.lock_core().info_sentinel_section(sh.now(), 0, 0);
            section.contains("status=ok") && section.contains("slaves=1")
        })
        .await;

        // Both links are named the way Sentinel names them.
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", mport))
            .await
            .unwrap();
        use tokio::io::AsyncWriteExt;
        c.write_all(b"CLIENT LIST\r\n").await.unwrap();
        let mut r = crate::resp::FrameReader::new(c, crate::resp::Limits::LINK);
        let list = match r.read().await.unwrap() {
            crate::resp::Frame::Bulk(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        };
        assert!(list.contains("name=sentinel-01234567-cmd"), "{list}");
        assert!(list.contains("name=sentinel-01234567-pubsub"), "{list}");

        master.kill().await.unwrap();
        wait_until("the master to go down", 5, || {
            let section = shared.lock_core().info_sentinel_section(shared.now(), 0, 0);
            section.contains("status=odown")
        })
        .await;
        shared.shutdown.cancel();
        driver.await.unwrap();
    }
}
