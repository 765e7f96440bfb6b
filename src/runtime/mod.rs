//! The daemon's wiring: the core behind its lock, the clock it is fed with,
//! the one executor of its actions, and the narrow handles the other layers
//! get.
//!
//! - [`Driver`] owns the core. It implements what the RESP server may do with
//!   it ([`crate::server::Core`]: a short synchronous section, then hand over
//!   the actions), what the Raft plumbing needs ([`crate::consensus::Host`]:
//!   feed commits, read a few facts) and what the pod code reads
//!   ([`crate::pod::Core`]: lock, try-lock, clock); none sees another's
//!   handle, the executor's queues, or the links.
//! - `executor` carries out every action, in the order it states.
//! - `links` is the driver task: ticks, link actions, link results.
//! - [`Daemon`] is what `main` holds: the driver plus the handles (pub/sub
//!   hub, script queue, the Raft node once started, counters, shutdown) it
//!   hands out.

mod executor;
mod links;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{PersistedState, ServerConfig};
use crate::consensus::driver::{Fatal, GroupSettings, Inbox};
use crate::consensus::node::{RaftNode, StartError};
use crate::consensus::rpc::Counters;
use crate::core::{Action, Input, LinkAuth, Millis, Sentinel};
use crate::observe::scripts::ScriptQueue;
use crate::server::pubsub::Hub;
pub use executor::Caller;
use executor::{Executor, LinkSink, Outlets};
pub use links::{run_driver, TICK};

/// Why a config flush failed (SENTINEL SET/MONITOR/... then answer
/// `-ERR Failed to save config file. Check server logs.`).
#[derive(Debug, thiserror::Error)]
#[error("failed to save config file: {0}")]
pub struct FlushError(pub String);

/// Writes the persisted state into the config file (`config::flush` bound
/// to the loaded file by `main`).
pub type FlushFn = Box<dyn Fn(&ServerConfig, &PersistedState) -> Result<(), String> + Send + Sync>;

/// `bind-source-addr` from the loaded configuration (kept by the config
/// loader among the directives it does not interpret itself).
pub fn bind_source_addr(file: &crate::config::ConfigFile) -> Option<std::net::IpAddr> {
    file.extras
        .get("bind-source-addr")
        .and_then(|args| args.first())
        .and_then(|a| a.parse().ok())
}

/// The core, its clock, and the executor of its actions.
pub struct Driver {
    core: Mutex<Sentinel>,
    /// Origin of the monotonic clock given to the core.
    started: Instant,
    exec: Executor,
    me: Weak<Driver>,
}

impl Driver {
    /// The core, locked: a short synchronous section, never across an
    /// `.await`. A panic while it was held ends the process (see `main`), so
    /// a poisoned lock is never seen by a running daemon.
    pub fn lock_core(&self) -> MutexGuard<'_, Sentinel> {
        self.core
            .lock()
            .expect("the core's lock is poisoned: a panic left it mid-change")
    }

    /// Monotonic milliseconds for the core (tokio's clock: pausable in tests).
    pub fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    /// Carries out actions a client waits for: returns once their flushes
    /// are written, with the first failure. Never call it with the core lock
    /// held.
    pub fn execute(&self, actions: Vec<Action>) -> Result<(), FlushError> {
        self.exec
            .run(self, actions, Caller::Client, LinkSink::Channel)
    }

    /// Carries out actions nobody waits for (flushes in the background).
    pub fn execute_background(&self, actions: Vec<Action>) {
        let _ = self
            .exec
            .run(self, actions, Caller::Background, LinkSink::Channel);
    }

    /// Feeds one input to the core and carries out what it asks for, in the
    /// background.
    pub fn feed(&self, input: Input) {
        let actions = {
            let now = self.now();
            self.lock_core().handle(now, input)
        };
        self.execute_background(actions);
    }

    /// Rewrites the config file with the core's current persisted state.
    pub fn flush(&self) -> Result<(), FlushError> {
        self.exec.flush_now(self)
    }
}

impl crate::server::Core for Driver {
    fn lock(&self) -> MutexGuard<'_, Sentinel> {
        self.lock_core()
    }

    fn now(&self) -> Millis {
        Driver::now(self)
    }

    fn execute(&self, actions: Vec<Action>) -> Result<(), crate::server::FlushFailed> {
        Driver::execute(self, actions).map_err(|_| crate::server::FlushFailed)
    }

    fn feed(&self, input: Input) {
        Driver::feed(self, input)
    }
}

impl crate::pod::Core for Driver {
    fn lock(&self) -> MutexGuard<'_, Sentinel> {
        self.lock_core()
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, Sentinel>> {
        match self.core.try_lock() {
            Ok(core) => Some(core),
            Err(std::sync::TryLockError::WouldBlock) => None,
            Err(std::sync::TryLockError::Poisoned(_)) => {
                panic!("the core's lock is poisoned: a panic left it mid-change")
            }
        }
    }

    fn now(&self) -> Millis {
        Driver::now(self)
    }
}

impl crate::consensus::Host for Driver {
    fn feed(&self, input: Input) {
        Driver::feed(self, input)
    }

    fn peer_credentials(&self) -> LinkAuth {
        self.lock_core().sentinel_auth()
    }

    fn discovered_sentinels(&self) -> Vec<String> {
        self.lock_core().discovered_sentinels()
    }

    fn hellos_reachable(&self) -> bool {
        self.lock_core().hellos_reachable()
    }

    fn a_master(&self) -> Option<(String, u16)> {
        self.lock_core().a_master()
    }
}

/// The receiving ends of the daemon's queues, for the tasks that serve
/// them: the link actions for [`run_driver`], the proposals and removal
/// requests for the consensus task.
pub struct Inboxes {
    pub links: mpsc::UnboundedReceiver<Action>,
    pub raft: Inbox,
}

/// Everything `main` starts the daemon's tasks with.
pub struct Daemon {
    pub driver: Arc<Driver>,
    pub hub: Arc<Hub>,
    pub scripts: Arc<ScriptQueue>,
    pub server_config: Arc<Mutex<ServerConfig>>,
    /// The local Raft node, once started.
    pub raft: Arc<OnceLock<RaftNode>>,
    pub rpc_counters: Arc<Counters>,
    /// Cancelled on SHUTDOWN, SIGTERM or SIGINT: everything drains and exits.
    pub shutdown: CancellationToken,
    /// Prometheus handle for `/metrics` (None if another recorder owns
    /// metrics).
    metrics: Option<PrometheusHandle>,
}

impl Daemon {
    /// Builds the daemon around a fresh core. `flusher` None: state is not
    /// persisted (tests, demo tools).
    pub fn new(
        core: Sentinel,
        server: ServerConfig,
        flusher: Option<FlushFn>,
        started: Instant,
    ) -> (Arc<Daemon>, Inboxes) {
        let (links_tx, links_rx) = mpsc::unbounded_channel();
        let (proposals_tx, proposals_rx) = mpsc::unbounded_channel();
        let (forgets_tx, forgets_rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new());
        let scripts = Arc::new(ScriptQueue::new(started));
        let server_config = Arc::new(Mutex::new(server));
        let outlets = Outlets {
            links: links_tx,
            hub: hub.clone(),
            scripts: scripts.clone(),
            proposals: proposals_tx,
            forgets: forgets_tx,
            flusher,
            server_config: server_config.clone(),
        };
        let driver = Arc::new_cyclic(|me| Driver {
            core: Mutex::new(core),
            started,
            exec: Executor::new(outlets),
            me: me.clone(),
        });
        let daemon = Arc::new(Daemon {
            driver,
            hub,
            scripts,
            server_config,
            raft: Arc::default(),
            rpc_counters: Arc::default(),
            shutdown: CancellationToken::new(),
            metrics: crate::observe::metrics_handle(),
        });
        let inboxes = Inboxes {
            links: links_rx,
            raft: Inbox {
                proposals: proposals_rx,
                forgets: forgets_rx,
            },
        };
        (daemon, inboxes)
    }

    /// What the RESP server is given.
    pub fn server_handles(&self) -> crate::server::Handles {
        crate::server::Handles {
            core: self.driver.clone(),
            hub: self.hub.clone(),
            config: self.server_config.clone(),
            scripts: self.scripts.clone(),
            raft: self.raft.clone(),
            rpc_counters: self.rpc_counters.clone(),
            shutdown: self.shutdown.clone(),
            started: self.driver.started,
        }
    }

    /// What the pod code (probes, status, re-pointing) is given.
    pub fn pod_handles(&self) -> crate::pod::Handles {
        crate::pod::Handles {
            core: self.driver.clone(),
            raft: self.raft.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Starts the local Raft node (storage opened and verified first) and
    /// the tasks that drive it.
    pub async fn start_raft(
        &self,
        settings: GroupSettings,
        inbox: Inbox,
    ) -> Result<(RaftNode, Fatal), StartError> {
        let myid = self.driver.lock_core().myid().to_string();
        let (node, fatal) = crate::consensus::driver::start(
            self.driver.clone(),
            &myid,
            settings,
            inbox,
            self.rpc_counters.clone(),
            self.shutdown.clone(),
        )
        .await?;
        let _ = self.raft.set(node.clone());
        Ok((node, fatal))
    }

    /// The script runner task, emitting its events through `observe`.
    pub fn script_runner(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let hub = self.hub.clone();
        let emit = move |ev| crate::observe::emit(&ev, &*hub);
        crate::observe::scripts::run(self.scripts.clone(), emit, self.shutdown.clone())
    }

    /// The `/metrics` body.
    pub fn render_metrics(&self) -> String {
        let mut g = {
            let core = self.driver.lock_core();
            crate::observe::Gauges {
                masters: core.master_names().len(),
                current_epoch: core.current_epoch(),
                hello_rejected: core.hello_rejected(),
                ..Default::default()
            }
        };
        g.scripts_running = self.scripts.running_count();
        g.scripts_queued = self.scripts.queue_len();
        crate::pod::probe::export_metrics(&crate::pod::status::snapshot(&self.pod_handles()));
        crate::observe::render_metrics(self.metrics.as_ref(), g)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::config::MasterState;
    use crate::core::{CoreOptions, Event, EventKind};

    pub(crate) fn state(host: &str, port: u16, down_after_ms: u64) -> PersistedState {
        let mut m = MasterState::new("mymaster", host, port, 1);
        m.down_after_ms = down_after_ms;
        PersistedState {
            myid: Some("0123456789abcdef0123456789abcdef01234567".into()),
            masters: vec![m],
            ..PersistedState::default()
        }
    }

    pub(crate) fn daemon_with(
        st: PersistedState,
        flusher: Option<FlushFn>,
    ) -> (Arc<Daemon>, Inboxes, Vec<Action>) {
        let started = Instant::now();
        let (core, first) = Sentinel::new(st, CoreOptions::default(), 0);
        let (daemon, inboxes) = Daemon::new(core, ServerConfig::default(), flusher, started);
        (daemon, inboxes, first)
    }

    fn master_status(driver: &Driver) -> String {
        let section = driver.lock_core().info_sentinel_section(driver.now(), 0, 0);
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
        let (daemon, mut inbox, _) = daemon_with(state("127.0.0.1", 6379, 30_000), Some(flusher));
        let id = crate::core::InstanceId(0);
        daemon
            .driver
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
        assert_eq!(daemon.scripts.queue_len(), 1);
        assert_eq!(inbox.links.try_recv().unwrap(), Action::SendPing { id });
        assert_eq!(
            inbox.links.try_recv().unwrap(),
            Action::Disconnect { id, link: None }
        );
        assert!(
            inbox.links.try_recv().is_err(),
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
        let (daemon, _inbox, _) = daemon_with(state("127.0.0.1", 6379, 30_000), Some(flusher));
        let (tx, mut events) = mpsc::channel(100);
        let sub = crate::server::pubsub::Subscriber {
            id: 1,
            tx,
            kill: CancellationToken::new(),
        };
        daemon.hub.subscribe(&sub, b"+new-epoch");
        let started = Instant::now();
        for epoch in 1..=20 {
            daemon.driver.lock_core().current_epoch = epoch;
            daemon.driver.execute_background(vec![
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

    /// A SENTINEL command's flush runs on the blocking pool: the worker
    /// (here the only one) keeps serving other tasks while the disk is slow,
    /// and the command still learns how the flush went.
    #[tokio::test(flavor = "current_thread")]
    async fn command_flushes_leave_the_worker_free() {
        let flusher: FlushFn = Box::new(|_, _| {
            // A slow disk; this runs on the blocking pool.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(300));
            Err("disk full".into())
        });
        let (daemon, _inbox, _) = daemon_with(state("127.0.0.1", 6379, 30_000), Some(flusher));
        let ticks = Arc::new(AtomicUsize::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        let core: Arc<dyn crate::server::Core> = daemon.driver.clone();
        let flushed = crate::server::execute_off_workers(&core, vec![Action::Flush]).await;
        assert_eq!(flushed, Err(crate::server::FlushFailed));
        ticker.abort();
        let n = ticks.load(Ordering::SeqCst);
        assert!(n >= 10, "the worker ran {n} ticks during a 300 ms flush");
    }

    #[tokio::test(start_paused = true)]
    async fn flush_failure_is_reported_after_running_everything() {
        let flusher: FlushFn = Box::new(|_, _| Err("disk full".into()));
        let (daemon, mut inbox, _) = daemon_with(state("127.0.0.1", 6379, 30_000), Some(flusher));
        let id = crate::core::InstanceId(0);
        let err = daemon
            .driver
            .execute(vec![Action::Flush, Action::SendInfo { id }])
            .unwrap_err();
        assert_eq!(err.0, "disk full");
        assert_eq!(inbox.links.try_recv().unwrap(), Action::SendInfo { id });
    }

    /// The whole path of one warning event through a real daemon: the core
    /// adds the master's notification-script run after it, the executor
    /// publishes, counts and queues `<path> <type> <message>`.
    #[tokio::test]
    async fn a_warning_event_runs_its_masters_notification_script() {
        let mut m = MasterState::new("scripted", "127.0.0.1", 6379, 2);
        m.notification_script = Some("/bin/true".into());
        let st = PersistedState {
            myid: Some("0123456789abcdef0123456789abcdef01234567".into()),
            masters: vec![m],
            ..PersistedState::default()
        };
        let (daemon, _inbox, _) = daemon_with(st, None);
        let id = daemon.driver.lock_core().masters["scripted"].inst.id;
        // A master whose command link is lost and stays silent past
        // down-after goes SDOWN (a warning); `+slave` is a notice.
        let sdown_at = {
            let core = daemon.driver.lock_core();
            core.masters["scripted"].inst.down_after + 1
        };
        let mut core = daemon.driver.lock_core();
        let mut actions = core.handle(
            0,
            Input::LinkUp {
                id,
                link: crate::core::LinkKind::Command,
            },
        );
        actions.extend(core.handle(
            1,
            Input::LinkDown {
                id,
                link: crate::core::LinkKind::Command,
            },
        ));
        actions.extend(core.handle(sdown_at + 1, Input::Tick));
        drop(core);
        let run = actions
            .iter()
            .position(|a| matches!(a, Action::RunScript { .. }))
            .expect("a script run");
        assert!(
            matches!(&actions[run - 1], Action::Emit(ev) if ev.kind == EventKind::Sdown),
            "the run follows its event: {actions:?}"
        );
        daemon.driver.execute_background(actions);
        let jobs = daemon.scripts.pending();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].argv,
            ["/bin/true", "+sdown", "master scripted 127.0.0.1 6379"]
        );
        let text = daemon.render_metrics();
        if daemon.metrics.is_some() {
            assert!(
                text.contains(r#"raftinel_events_total{event="+sdown",master="scripted"}"#),
                "{text}"
            );
            assert!(
                text.contains(r#"raftinel_master_sdown{master="scripted"} 1"#),
                "{text}"
            );
            assert!(text.contains("raftinel_masters 1"), "{text}");
        }
    }

    /// Persist before publish: in the background, an event emitted right
    /// after a flush waits until that flush is written, the effects after it
    /// keep their order behind it (a later batch's event included), and
    /// monitoring I/O does not wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_after_a_flush_waits_for_it_and_keeps_its_order() {
        let (written_tx, written_rx) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(Some(written_rx)));
        let flushed = Arc::new(AtomicUsize::new(0));
        let (g, f) = (gate.clone(), flushed.clone());
        let flusher: FlushFn = Box::new(move |_, _| {
            // Held until the test lets it go.
            if let Some(rx) = g.lock().unwrap().take() {
                let _ = rx.recv();
            }
            f.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let (daemon, mut inbox, _) = daemon_with(state("127.0.0.1", 6379, 30_000), Some(flusher));
        let (tx, mut events) = mpsc::channel(100);
        let sub = crate::server::pubsub::Subscriber {
            id: 1,
            tx,
            kill: CancellationToken::new(),
        };
        daemon.hub.psubscribe(&sub, b"*");
        let ev = |kind, msg: &str| Event::new(kind, msg.into(), Some("mymaster"));
        let mut epoch = ev(EventKind::NewEpoch, "7");
        epoch.after_flush = true;
        let id = crate::core::InstanceId(0);
        daemon.driver.execute_background(vec![
            Action::Emit(ev(EventKind::Sdown, "before")),
            Action::Flush,
            Action::Emit(epoch),
            Action::Emit(ev(EventKind::TryFailover, "after")),
            Action::SendPing { id },
        ]);
        daemon
            .driver
            .execute_background(vec![Action::Emit(ev(EventKind::Odown, "later"))]);
        let seen = |events: &mut mpsc::Receiver<_>| {
            let mut out = Vec::new();
            while let Ok(crate::server::pubsub::PubMessage::PMessage { payload, .. }) =
                events.try_recv()
            {
                out.push(String::from_utf8_lossy(&payload).into_owned());
            }
            out
        };
        assert_eq!(
            seen(&mut events),
            ["before"],
            "the rest waits for the flush"
        );
        assert_eq!(inbox.links.try_recv().unwrap(), Action::SendPing { id });
        let _ = written_tx.send(());
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < 3 && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            got.extend(seen(&mut events));
        }
        assert_eq!(got, ["7", "after", "later"]);
        assert_eq!(flushed.load(Ordering::SeqCst), 1);
    }

    /// A master that never answers goes SDOWN after down-after: the driver
    /// ticks the core on tokio's (paused) clock and forwards the connects.
    #[tokio::test(start_paused = true)]
    async fn driver_ticks_the_core_on_tokio_time() {
        // A listener that accepts but never answers: the link connects, the
        // PING stays pending.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let (daemon, inbox, first) = daemon_with(state("127.0.0.1", port, 2_000), None);
        let shared = daemon.driver.clone();
        shared.execute(first).unwrap();
        let driver = tokio::spawn(run_driver(
            shared.clone(),
            inbox.links,
            None,
            None,
            daemon.shutdown.clone(),
        ));
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
        daemon.shutdown.cancel();
        driver.await.unwrap();
        hold.abort();
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

        let (daemon, inbox, first) = daemon_with(state("127.0.0.1", mport, 1_000), None);
        let shared = daemon.driver.clone();
        shared.execute(first).unwrap();
        let driver = tokio::spawn(run_driver(
            shared.clone(),
            inbox.links,
            None,
            None,
            daemon.shutdown.clone(),
        ));

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
        daemon.shutdown.cancel();
        driver.await.unwrap();
    }
}
