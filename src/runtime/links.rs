//! The driver task: the one task that talks to the links. It ticks the core
//! every [`TICK`], turns link actions into work for the link tasks (see
//! `crate::links`), and feeds every link result back to the core. Link tasks
//! report with a generation number so results from a link that was already
//! closed or replaced never reach the core.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::executor::{Caller, LinkSink};
use super::Driver;
use crate::core::{Action, Input, InstanceId, InstanceKind, LinkKind, LinkSpec};
use crate::links::{self, LinkCmd, LinkCtx, LinkMsg, LinkTask};

/// How often the core is ticked.
pub const TICK: Duration = Duration::from_millis(100);
/// Link results fed to the core under one lock at most.
const RESULT_BATCH: usize = 256;

/// The links of one instance.
struct InstanceLinks {
    spec: LinkSpec,
    cmd: Option<LinkTask>,
    pubsub: Option<LinkTask>,
}

/// Link bookkeeping of the driver task.
pub(crate) struct Links {
    driver: Arc<Driver>,
    map: HashMap<InstanceId, InstanceLinks>,
    next_gen: u64,
    /// `bind-source-addr` for outbound links.
    bind_source: Option<std::net::IpAddr>,
    out: mpsc::UnboundedSender<LinkMsg>,
}

impl Links {
    fn ctx(&mut self, spec: &LinkSpec) -> LinkCtx {
        self.next_gen += 1;
        LinkCtx {
            spec: spec.clone(),
            gen: self.next_gen,
            bind_source: self.bind_source,
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

    /// Carries out one link action (the executor hands over only those).
    pub(crate) fn apply(&mut self, action: Action) {
        let (id, cmd) = match action {
            Action::Connect(spec) => return self.connect(spec),
            Action::Disconnect { id, link } => return self.disconnect(id, link),
            Action::SendPing { id } => (id, LinkCmd::Ping),
            Action::SendInfo { id } => (id, LinkCmd::Info),
            Action::SendHello { id, hello } => (id, LinkCmd::Hello(hello)),
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

    /// Link results waiting, fed to the core in one batch: one lock of the
    /// core and one wake-up for many replies.
    fn feed_results(&mut self, first: LinkMsg, results: &mut mpsc::UnboundedReceiver<LinkMsg>) {
        let mut inputs = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            if self.accept(&msg) {
                inputs.push(msg.input);
            }
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
    shutdown: CancellationToken,
) {
    let (out, mut results) = mpsc::unbounded_channel();
    let mut links = Links {
        driver: driver.clone(),
        map: HashMap::new(),
        next_gen: 0,
        bind_source,
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
            _ = shutdown.cancelled() => break,
            Some(action) = actions.recv() => links.apply(action),
            Some(msg) = results.recv() => links.feed_results(msg, &mut results),
            _ = tick.tick() => sdown_wake = links.tick(),
        }
    }
    // Dropping the link tasks closes every outbound connection.
    links.map.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tests::{daemon_with, state};

    #[test]
    fn stale_link_messages_are_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (daemon, _inbox, _) = daemon_with(state("127.0.0.1", 1, 30_000), None);
            let (out, _results) = mpsc::unbounded_channel();
            let mut links = Links {
                driver: daemon.driver.clone(),
                map: HashMap::new(),
                next_gen: 0,
                bind_source: None,
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
}
