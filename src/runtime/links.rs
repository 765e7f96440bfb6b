//! The driver task: the one task that talks to the links. It ticks the core
//! every [`TICK`], turns link actions into work for the link tasks (see
//! `crate::links`), and feeds every link result back to the core. Link tasks
//! report with a generation number so results from a link that was already
//! closed or replaced never reach the core.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::executor::{Caller, LinkSink};
use super::Driver;
use crate::core::{Action, Input, InstanceId, LinkKind, LinkSpec};
use crate::links::registry::Registry;
use crate::links::{LinkCmd, LinkMsg};

/// How often the core is ticked.
pub const TICK: Duration = Duration::from_millis(100);
/// Link results fed to the core under one lock at most.
const RESULT_BATCH: usize = 256;

/// Link bookkeeping of the driver task.
pub(crate) struct Links {
    driver: Arc<Driver>,
    registry: Registry,
    /// Inputs the registry produced while actions were applied (the link
    /// events of a shared peer connection), fed to the core next.
    extra: Vec<Input>,
}

impl Links {
    fn connect(&mut self, spec: LinkSpec) {
        self.registry.connect(spec, &mut self.extra);
    }

    fn disconnect(&mut self, id: InstanceId, link: Option<LinkKind>) {
        self.registry.disconnect(id, link, &mut self.extra);
    }

    fn send(&self, id: InstanceId, cmd: LinkCmd) {
        self.registry.send(id, cmd);
    }

    /// Carries out one link action (the executor hands over only those).
    pub(crate) fn apply(&mut self, action: Action) {
        let (id, cmd) = match action {
            Action::Connect(spec) => return self.connect(spec),
            Action::Disconnect { id, link } => return self.disconnect(id, link),
            Action::SendPing { id } => (id, LinkCmd::Ping),
            Action::SendInfo { id } => (id, LinkCmd::Info),
            Action::SendHello { id, hello } => (id, LinkCmd::Hello(Box::new(hello))),
            Action::AskMasterDown {
                peer,
                master_ip,
                master_port,
                epoch,
                runid,
            } => (
                peer,
                LinkCmd::AskMasterDown {
                    master_ip,
                    master_port,
                    epoch,
                    runid,
                },
            ),
            Action::ScriptKill { id } => (id, LinkCmd::ScriptKill),
            Action::Reconfigure { id, replicaof } => (id, LinkCmd::Reconfigure { replicaof }),
            Action::PauseWrites { id, ms } => (id, LinkCmd::PauseWrites { ms }),
            Action::Unpause { id } => (id, LinkCmd::Unpause),
            other => {
                debug_assert!(false, "not a link action: {other:?}");
                return;
            }
        };
        self.send(id, cmd);
    }

    /// Feeds inputs to the core under one lock, then executes what it asked
    /// for, link actions straight from here (not through the channel, a
    /// round trip through this same task).
    fn feed(&mut self, inputs: Vec<Input>) {
        if inputs.is_empty() {
            return;
        }
        let driver = self.driver.clone();
        let actions = {
            let now = driver.now();
            let mut core = driver.lock_core();
            let mut all = Vec::new();
            for input in inputs {
                all.extend(core.handle(now, input));
            }
            all
        };
        let _ = driver
            .exec
            .run(&driver, actions, Caller::Background, LinkSink::Direct(self));
        if !self.extra.is_empty() {
            let extra = std::mem::take(&mut self.extra);
            self.feed(extra);
        }
    }

    /// Link results waiting, fed to the core in one batch: one lock of the
    /// core and one wake-up for many replies.
    fn feed_results(&mut self, first: LinkMsg, results: &mut mpsc::UnboundedReceiver<LinkMsg>) {
        let mut inputs = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            self.registry.accept(msg, &mut inputs);
            if inputs.len() < RESULT_BATCH {
                next = results.try_recv().ok();
            }
        }
        self.feed(inputs);
    }

    /// The regular tick; returns when to tick again early, if a master
    /// would go SDOWN before the next regular tick.
    fn tick(&mut self) -> Option<Instant> {
        if crate::failpoint::hit("driver-panic") {
            panic!("failpoint driver-panic");
        }
        self.feed(vec![Input::Tick]);
        let driver = &self.driver;
        let (max_runtime, retry_delay, due) = {
            let core = driver.lock_core();
            let t = core.timing();
            (
                t.script_max_runtime,
                t.script_retry_delay,
                core.next_sdown_deadline(),
            )
        };
        driver
            .exec
            .outlets()
            .scripts
            .set_timing(max_runtime, retry_delay);
        let next_tick = driver.now().saturating_add(TICK.as_millis() as u64);
        due.filter(|&d| d < next_tick)
            .map(|d| driver.started + Duration::from_millis(d))
    }
}

/// The driver task: ticks, link actions, link results, until `shutdown`.
pub async fn run_driver(
    driver: Arc<Driver>,
    mut actions: mpsc::UnboundedReceiver<Action>,
    bind_source: Option<std::net::IpAddr>,
    tls: Option<Arc<rustls::ClientConfig>>,
    shutdown: CancellationToken,
) {
    let (out, mut results) = mpsc::unbounded_channel();
    let mut links = Links {
        driver: driver.clone(),
        registry: Registry::new(out, bind_source, tls),
        extra: Vec::new(),
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
            _ = shutdown.cancelled() => break,
            Some(action) = actions.recv() => {
                links.apply(action);
                let extra = std::mem::take(&mut links.extra);
                links.feed(extra);
            }
            Some(msg) = results.recv() => links.feed_results(msg, &mut results),
            _ = tick.tick() => sdown_wake = links.tick(),
        }
    }
    // Dropping the link tasks closes every outbound connection.
    links.registry.clear();
}
