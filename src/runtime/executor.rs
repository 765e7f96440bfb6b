//! The one executor of the core's actions.
//!
//! Every action the core emits, whoever fed the input (the links, a client's
//! command, a commit, the tick), is carried out here, in the order the core
//! emitted it, as far as its [`Order`] requires:
//! - `Free` actions (connects, PING, INFO, hellos, questions to peers) go to
//!   the links at once;
//! - effects (`InOrder`: events, scripts, proposals, commands that change a
//!   node) run in emission order: one that finds an earlier effect still
//!   waiting goes behind it;
//! - `AfterFlush` effects (an epoch, a vote, announced) wait until the config
//!   flushes emitted before them are written: persist before publish;
//! - a `Flush` is written synchronously when a client waits for it (its reply
//!   says whether the config was saved), and otherwise by the effects task,
//!   off the caller: a full rewrite with fsync takes tens of milliseconds
//!   with hundreds of masters, and done inline by the driver it held the
//!   links long enough for healthy nodes to go SDOWN. Such flushes are
//!   coalesced: one started after a request writes everything that request
//!   was for. Effects that do not wait for a flush are not held behind one:
//!   a client sees `+odown` or `+switch-master` when it happens (Sentinel
//!   itself publishes `+switch-master` before its flush).
//!
//! Whatever waits goes to the effects task, one queue in order; the executor
//! never blocks its caller except on a client's own flush.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::mpsc;

use super::links::Links;
use super::{Driver, FlushError, FlushFn};
use crate::config::ServerConfig;
use crate::core::group::Command;
use crate::core::{Action, Order};
use crate::observe::scripts::ScriptQueue;
use crate::server::pubsub::Hub;

/// Who waits for a batch of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A client's command: its flushes are written before it is answered.
    Client,
    /// Anything else (link replies, hellos, ticks, commits): nobody waits.
    Background,
}

/// Where the actions that leave the process go.
pub(crate) struct Outlets {
    /// Link actions: the driver task owns the links.
    pub links: mpsc::UnboundedSender<Action>,
    pub hub: Arc<Hub>,
    pub scripts: Arc<ScriptQueue>,
    /// Proposals, to the consensus task (queued until it runs).
    pub proposals: mpsc::UnboundedSender<Command>,
    /// Removal requests after `SENTINEL RESET`, to the consensus task.
    pub forgets: mpsc::UnboundedSender<u64>,
    /// The config rewrite; None = state is not persisted (tests, demo tools).
    pub flusher: Option<FlushFn>,
    /// The running server configuration the rewrite writes back.
    pub server_config: Arc<Mutex<ServerConfig>>,
}

/// What is in flight between the callers and the effects task.
#[derive(Debug, Default)]
struct Sequence {
    /// Flush requests made so far, numbered from 1.
    requested: u64,
    /// Every flush request up to this one was written (or failed, logged).
    done: u64,
    /// Effects handed to the effects task and not carried out yet: the
    /// effects emitted after them go behind them.
    queued: usize,
}

/// Work for the effects task, in order.
enum Effect {
    /// Write the config for request `n` (skipped if a later write covered it).
    Flush(u64),
    /// An effect that waited, with the flush request it waits for (0: none).
    Run(Action, u64),
}

pub(crate) struct Executor {
    out: Outlets,
    seq: Mutex<Sequence>,
    tx: mpsc::UnboundedSender<Effect>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Effect>>>,
    /// The effects task is started on first use (it needs a running tokio
    /// runtime, which building the daemon does not).
    started: std::sync::Once,
}

/// Where a link action goes from here: straight to the links when the
/// driver task itself executes, else through its channel.
pub(crate) enum LinkSink<'a> {
    Direct(&'a mut Links),
    Channel,
}

impl Executor {
    pub(crate) fn new(out: Outlets) -> Executor {
        let (tx, rx) = mpsc::unbounded_channel();
        Executor {
            out,
            seq: Mutex::default(),
            tx,
            rx: Mutex::new(Some(rx)),
            started: std::sync::Once::new(),
        }
    }

    pub(crate) fn outlets(&self) -> &Outlets {
        &self.out
    }

    fn seq(&self) -> MutexGuard<'_, Sequence> {
        self.seq
            .lock()
            .expect("the executor's sequence lock is poisoned")
    }

    /// Carries out `actions` (see the module doc). For a `Client`, returns
    /// the first flush failure; every action is carried out all the same.
    /// Never called with the core lock held (a flush reads the core).
    pub(crate) fn run(
        &self,
        driver: &Driver,
        actions: Vec<Action>,
        caller: Caller,
        mut links: LinkSink<'_>,
    ) -> Result<(), FlushError> {
        let mut result = Ok(());
        // The core's state is final when its actions run: the first flush of
        // a client's batch writes everything a later one would.
        let mut flushed = false;
        for action in actions {
            match action.order() {
                Order::Free => self.link(action, &mut links),
                Order::Flush if self.out.flusher.is_none() => {}
                Order::Flush => match caller {
                    Caller::Client if flushed => {}
                    Caller::Client => {
                        flushed = true;
                        if let Err(e) = self.flush_now(driver) {
                            tracing::warn!("{e}");
                            result = Err(e);
                        }
                    }
                    Caller::Background => {
                        let mut seq = self.seq();
                        seq.requested += 1;
                        self.enqueue(driver, Effect::Flush(seq.requested));
                    }
                },
                order => {
                    let mut seq = self.seq();
                    let unwritten = order == Order::AfterFlush && seq.done < seq.requested;
                    if seq.queued > 0 || unwritten {
                        seq.queued += 1;
                        let needs = if unwritten { seq.requested } else { 0 };
                        self.enqueue(driver, Effect::Run(action, needs));
                    } else {
                        drop(seq);
                        self.carry_out(driver, action, &mut links);
                    }
                }
            }
        }
        result
    }

    /// Writes the config now with the core's current state; every flush
    /// requested before counts as written.
    pub(crate) fn flush_now(&self, driver: &Driver) -> Result<(), FlushError> {
        let Some(flusher) = &self.out.flusher else {
            return Ok(());
        };
        let upto = self.seq().requested;
        let state = driver.lock_core().persisted();
        let server = self
            .out
            .server_config
            .lock()
            .expect("the server configuration lock is poisoned")
            .clone();
        let r = flusher(&server, &state).map_err(FlushError);
        let mut seq = self.seq();
        seq.done = seq.done.max(upto);
        r
    }

    /// Called with the sequence lock held, so the queue's order is the order
    /// of the decisions.
    fn enqueue(&self, driver: &Driver, e: Effect) {
        self.started.call_once(|| {
            let rx = self
                .rx
                .lock()
                .expect("the effects queue lock is poisoned")
                .take();
            if let Some(rx) = rx {
                tokio::spawn(run_effects(driver.me.clone(), rx));
            }
        });
        // Fails only once the effects task has ended (shutdown).
        let _ = self.tx.send(e);
    }

    fn link(&self, action: Action, links: &mut LinkSink<'_>) {
        match links {
            LinkSink::Direct(l) => l.apply(action),
            // Fails only when the driver task has stopped (shutdown).
            LinkSink::Channel => {
                let _ = self.out.links.send(action);
            }
        }
    }

    /// One effect, now.
    fn carry_out(&self, driver: &Driver, action: Action, links: &mut LinkSink<'_>) {
        match action {
            Action::Emit(ev) => crate::observe::emit(&ev, &*self.out.hub),
            Action::RunScript { argv } => self.out.scripts.enqueue(argv),
            // Queued until the consensus task runs; the core proposes again
            // whatever it does not see committed.
            Action::Propose(cmd) => {
                let _ = self.out.proposals.send(cmd);
            }
            Action::ForgetDaemon { node } => {
                let _ = self.out.forgets.send(node);
            }
            Action::Warn(line) => tracing::warn!("{line}"),
            Action::SimulatedCrash => simulated_crash(),
            Action::Flush => {
                if let Err(e) = self.flush_now(driver) {
                    tracing::warn!("{e}");
                }
            }
            link => self.link(link, links),
        }
    }
}

/// `SENTINEL SIMULATE-FAILURE`: Sentinel's log line, then exit status 99
/// (the events before it are already published).
fn simulated_crash() -> ! {
    tracing::warn!("Sentinel CRASH because of SENTINEL simulate-failure");
    std::process::exit(99)
}

/// The effects task: flushes and the effects that wait, in order. It holds
/// the driver weakly and ends with it.
async fn run_effects(me: Weak<Driver>, mut rx: mpsc::UnboundedReceiver<Effect>) {
    while let Some(e) = rx.recv().await {
        let Some(driver) = me.upgrade() else {
            return;
        };
        let exec = &driver.exec;
        match e {
            Effect::Flush(n) => {
                if n > exec.seq().done {
                    flush_in_background(&driver).await;
                }
            }
            Effect::Run(action, needs) => {
                if needs > exec.seq().done {
                    flush_in_background(&driver).await;
                }
                exec.carry_out(&driver, action, &mut LinkSink::Channel);
                exec.seq().queued -= 1;
            }
        }
    }
}

/// A flush on the blocking pool (the rewrite fsyncs); a failure is logged.
async fn flush_in_background(driver: &Arc<Driver>) {
    let d = driver.clone();
    match tokio::task::spawn_blocking(move || d.exec.flush_now(&d)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("{e}"),
        Err(e) => tracing::warn!("config flush task failed: {e}"),
    }
}
