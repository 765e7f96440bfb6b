//! The script runner: notification-script and client-reconfig-script jobs,
//! queued, retried and timed out as Sentinel does.
//!
//! [`ScriptQueue`] is the bookkeeping (queue of at most 256 jobs, at most 16
//! running, the retry schedule of 30 s × 2^(attempt−1) for up to 10 attempts,
//! the 60 s runtime limit) and is pure apart from its clock origin, so the
//! schedule is unit-tested with explicit milliseconds. [`run`] is the tokio
//! task that spawns the children (`tokio::process`, stdio to /dev/null, every
//! other descriptor is close-on-exec so nothing of the daemon leaks), reaps
//! them, and SIGKILLs the ones over time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::{Event, EventKind, Millis};

pub const MAX_RUNNING: usize = 16;
pub const MAX_QUEUE: usize = 256;
pub const MAX_ATTEMPTS: u32 = 10;
pub const RETRY_DELAY_MS: Millis = 30_000;
pub const MAX_RUNTIME_MS: Millis = 60_000;

/// One job as SENTINEL PENDING-SCRIPTS shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingScript {
    pub argv: Vec<String>,
    pub running: bool,
    pub pid: Option<u32>,
    /// Running: ms since it started. Waiting: ms until it may start (0 if due).
    pub run_time_or_delay_ms: u64,
    /// Attempts started so far.
    pub retry_num: u32,
}

#[derive(Debug)]
struct Job {
    id: u64,
    argv: Vec<String>,
    running: bool,
    killed: bool,
    pid: Option<u32>,
    /// Running: when it started. Waiting: earliest start.
    start_time: Millis,
    retry_num: u32,
}

#[derive(Debug, Default)]
struct Jobs {
    list: VecDeque<Job>,
    next_id: u64,
}

/// A job the runner must start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub id: u64,
    pub argv: Vec<String>,
}

/// Delay before the next attempt after attempt number `retry_num` failed,
/// with the default base delay.
pub fn retry_delay(retry_num: u32) -> Millis {
    retry_delay_from(RETRY_DELAY_MS, retry_num)
}

fn retry_delay_from(base: Millis, retry_num: u32) -> Millis {
    let shift = retry_num.saturating_sub(1).min(20);
    base.saturating_mul(1 << shift)
}

pub struct ScriptQueue {
    jobs: Mutex<Jobs>,
    started: Instant,
    wake: Notify,
    /// `SENTINEL DEBUG script-max-runtime` / `script-retry-delay`.
    max_runtime_ms: AtomicU64,
    retry_delay_ms: AtomicU64,
}

impl ScriptQueue {
    /// `started` is the daemon's clock origin (the one the core is fed with).
    pub fn new(started: Instant) -> Self {
        ScriptQueue {
            jobs: Mutex::new(Jobs::default()),
            started,
            wake: Notify::new(),
            max_runtime_ms: AtomicU64::new(MAX_RUNTIME_MS),
            retry_delay_ms: AtomicU64::new(RETRY_DELAY_MS),
        }
    }

    /// Applies the SENTINEL DEBUG timing knobs (0 keeps the current value).
    pub fn set_timing(&self, max_runtime_ms: Millis, retry_delay_ms: Millis) {
        if max_runtime_ms > 0 {
            self.max_runtime_ms.store(max_runtime_ms, Ordering::Relaxed);
        }
        if retry_delay_ms > 0 {
            self.retry_delay_ms.store(retry_delay_ms, Ordering::Relaxed);
        }
    }

    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    fn lock(&self) -> MutexGuard<'_, Jobs> {
        // A poisoned queue still holds consistent data (every mutation is a
        // single field write), so keep going rather than taking the daemon down.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `argv` (argv[0] = the script path). When the queue overflows the
    /// oldest waiting job is dropped, as Sentinel does.
    pub fn enqueue(&self, argv: Vec<String>) {
        if argv.is_empty() {
            return;
        }
        {
            let mut jobs = self.lock();
            let id = jobs.next_id;
            jobs.next_id += 1;
            jobs.list.push_back(Job {
                id,
                argv,
                running: false,
                killed: false,
                pid: None,
                start_time: 0,
                retry_num: 0,
            });
            if jobs.list.len() > MAX_QUEUE {
                if let Some(pos) = jobs.list.iter().position(|j| !j.running) {
                    jobs.list.remove(pos);
                }
            }
        }
        self.wake.notify_one();
    }

    pub fn pending(&self) -> Vec<PendingScript> {
        self.pending_at(self.now())
    }

    pub fn pending_at(&self, now: Millis) -> Vec<PendingScript> {
        self.lock()
            .list
            .iter()
            .map(|j| PendingScript {
                argv: j.argv.clone(),
                running: j.running,
                pid: j.pid,
                run_time_or_delay_ms: if j.running {
                    now.saturating_sub(j.start_time)
                } else {
                    j.start_time.saturating_sub(now)
                },
                retry_num: j.retry_num,
            })
            .collect()
    }

    pub fn running_count(&self) -> usize {
        self.lock().list.iter().filter(|j| j.running).count()
    }

    /// Jobs in the queue, running ones included (INFO `sentinel_scripts_queue_length`).
    pub fn queue_len(&self) -> usize {
        self.lock().list.len()
    }

    /// Marks due jobs as running (oldest first, up to 16 running) and returns them.
    pub fn take_ready(&self, now: Millis) -> Vec<Launch> {
        let mut jobs = self.lock();
        let mut running = jobs.list.iter().filter(|j| j.running).count();
        let mut out = Vec::new();
        for job in jobs.list.iter_mut() {
            if running >= MAX_RUNNING {
                break;
            }
            if job.running || job.start_time > now {
                continue;
            }
            job.running = true;
            job.killed = false;
            job.pid = None;
            job.retry_num += 1;
            job.start_time = now;
            running += 1;
            out.push(Launch {
                id: job.id,
                argv: job.argv.clone(),
            });
        }
        out
    }

    pub fn set_pid(&self, id: u64, pid: u32) {
        if let Some(job) = self.lock().list.iter_mut().find(|j| j.id == id) {
            job.pid = Some(pid);
        }
    }

    /// A child ended (`signal` 0 = normal exit). Applies the retry rule and
    /// returns the `-script-error` event when the job is given up with a failure.
    pub fn finished(&self, id: u64, signal: i32, exitcode: i32, now: Millis) -> Option<Event> {
        let mut jobs = self.lock();
        let pos = jobs.list.iter().position(|j| j.id == id)?;
        let job = jobs.list.get_mut(pos)?;
        if (signal != 0 || exitcode == 1) && job.retry_num < MAX_ATTEMPTS {
            job.running = false;
            job.killed = false;
            job.pid = None;
            let base = self.retry_delay_ms.load(Ordering::Relaxed);
            job.start_time = now.saturating_add(retry_delay_from(base, job.retry_num));
            return None;
        }
        let job = jobs.list.remove(pos)?;
        if signal != 0 || exitcode != 0 {
            let path = job.argv.first().cloned().unwrap_or_default();
            return Some(Event::new(
                EventKind::ScriptError,
                format!("{path} {signal} {exitcode}"),
                None,
            ));
        }
        None
    }

    /// Running jobs over the 60 s limit that were not killed yet: returns their
    /// pids with the `-script-timeout` event. The kill is reaped later as a
    /// signal death (and so retried).
    pub fn timed_out(&self, now: Millis) -> Vec<(u32, Event)> {
        let limit = self.max_runtime_ms.load(Ordering::Relaxed);
        let mut jobs = self.lock();
        let mut out = Vec::new();
        for job in jobs.list.iter_mut() {
            if !job.running || job.killed || now.saturating_sub(job.start_time) <= limit {
                continue;
            }
            if let Some(pid) = job.pid {
                job.killed = true;
                let path = job.argv.first().cloned().unwrap_or_default();
                out.push((
                    pid,
                    Event::new(EventKind::ScriptTimeout, format!("{path} {pid}"), None),
                ));
            }
        }
        out
    }

    /// Earliest start time among waiting jobs (to sleep until then).
    fn next_due(&self) -> Option<Millis> {
        self.lock()
            .list
            .iter()
            .filter(|j| !j.running)
            .map(|j| j.start_time)
            .min()
    }
}

/// Exit description of a reaped child: (signal, exit code).
fn describe(status: &std::io::Result<std::process::ExitStatus>) -> (i32, i32) {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(st) => match st.signal() {
            Some(sig) => (sig, 0),
            None => (0, st.code().unwrap_or(0)),
        },
        // Could not wait for it: report it like an exec failure (no retry).
        Err(_) => (0, 2),
    }
}

/// The runner task: starts due jobs, reaps children, enforces the runtime
/// limit. `emit` receives `-script-error` / `-script-timeout` events.
pub async fn run<F>(queue: Arc<ScriptQueue>, emit: F, shutdown: CancellationToken)
where
    F: Fn(Event) + Send + 'static,
{
    let mut children: JoinSet<(u64, std::io::Result<std::process::ExitStatus>)> = JoinSet::new();
    loop {
        let now = queue.now();
        for launch in queue.take_ready(now) {
            let Some((path, args)) = launch.argv.split_first() else {
                continue;
            };
            let mut cmd = tokio::process::Command::new(path);
            cmd.args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(false);
            match cmd.spawn() {
                Ok(mut child) => {
                    let pid = child.id().unwrap_or(0);
                    queue.set_pid(launch.id, pid);
                    tracing::trace!("+script-child {pid}");
                    let id = launch.id;
                    children.spawn(async move { (id, child.wait().await) });
                }
                Err(err) => {
                    // exec failure: the C implementation's child exits with 2.
                    tracing::debug!("cannot run script {path}: {err}");
                    if let Some(ev) = queue.finished(launch.id, 0, 2, now) {
                        emit(ev);
                    }
                }
            }
        }
        for (pid, ev) in queue.timed_out(now) {
            emit(ev);
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: the pid is our un-reaped child (its wait is pending in
                // `children`), so it cannot have been recycled.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }

        // Sleep until the next due job, a timeout check, or new work.
        let wait_ms = match queue.next_due() {
            Some(due) => due.saturating_sub(now).clamp(1, 1000),
            None => 1000,
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = queue.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            Some(joined) = children.join_next(), if !children.is_empty() => {
                if let Ok((id, status)) = joined {
                    let (signal, code) = describe(&status);
                    let pid = queue.pending_pid(id).unwrap_or(0);
                    tracing::trace!("-script-child {pid} {code} {signal}");
                    if let Some(ev) = queue.finished(id, signal, code, queue.now()) {
                        emit(ev);
                    }
                }
            }
        }
    }
    // Children keep running on shutdown (as with redis-sentinel); just stop
    // waiting for them.
    children.detach_all();
}

impl ScriptQueue {
    fn pending_pid(&self, id: u64) -> Option<u32> {
        self.lock()
            .list
            .iter()
            .find(|j| j.id == id)
            .and_then(|j| j.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(p: &str) -> Vec<String> {
        vec![
            p.to_string(),
            "+sdown".into(),
            "master m 127.0.0.1 6379".into(),
        ]
    }

    #[test]
    fn retry_schedule_doubles_from_30s() {
        assert_eq!(retry_delay(1), 30_000);
        assert_eq!(retry_delay(2), 60_000);
        assert_eq!(retry_delay(3), 120_000);
        assert_eq!(retry_delay(9), 30_000 * 256);
    }

    #[tokio::test(start_paused = true)]
    async fn exit_1_retries_ten_times_then_reports() {
        let q = ScriptQueue::new(Instant::now());
        q.enqueue(argv("/s.sh"));
        let mut now = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            let l = q.take_ready(now);
            assert_eq!(l.len(), 1, "attempt {attempt}");
            assert_eq!(q.running_count(), 1);
            // Nothing else is due while it runs.
            assert!(q.take_ready(now).is_empty());
            let ev = q.finished(l[0].id, 0, 1, now + 10);
            if attempt < MAX_ATTEMPTS {
                assert!(ev.is_none());
                let p = q.pending_at(now + 10);
                assert_eq!(p[0].retry_num, attempt);
                assert!(!p[0].running);
                let delay = retry_delay(attempt);
                assert_eq!(p[0].run_time_or_delay_ms, delay);
                // Not due one ms early.
                assert!(q.take_ready(now + 10 + delay - 1).is_empty());
                now = now + 10 + delay;
            } else {
                let ev = ev.expect("final failure reported");
                assert_eq!(ev.kind, EventKind::ScriptError);
                assert_eq!(ev.message, "/s.sh 0 1");
            }
        }
        assert_eq!(q.queue_len(), 0);
    }

    #[test]
    fn exit_2_is_not_retried_and_exit_0_is_silent() {
        let q = ScriptQueue::new(Instant::now());
        q.enqueue(argv("/a"));
        q.enqueue(argv("/b"));
        let l = q.take_ready(0);
        assert_eq!(l.len(), 2);
        let ev = q.finished(l[0].id, 0, 2, 5).unwrap();
        assert_eq!(ev.message, "/a 0 2");
        assert!(q.finished(l[1].id, 0, 0, 5).is_none());
        assert_eq!(q.queue_len(), 0);
    }

    #[test]
    fn signal_death_is_retried() {
        let q = ScriptQueue::new(Instant::now());
        q.enqueue(argv("/a"));
        let l = q.take_ready(0);
        assert!(q.finished(l[0].id, 9, 0, 100).is_none());
        assert_eq!(q.pending_at(100)[0].run_time_or_delay_ms, 30_000);
    }

    #[test]
    fn at_most_16_run_and_queue_is_capped() {
        let q = ScriptQueue::new(Instant::now());
        for i in 0..300 {
            q.enqueue(argv(&format!("/s{i}")));
        }
        assert_eq!(q.queue_len(), MAX_QUEUE);
        // The oldest waiting jobs were dropped.
        assert_eq!(q.pending_at(0)[0].argv[0], "/s44");
        let l = q.take_ready(0);
        assert_eq!(l.len(), MAX_RUNNING);
        assert_eq!(q.running_count(), MAX_RUNNING);
        // Overflow now drops the oldest *waiting* job, never a running one.
        q.enqueue(argv("/late"));
        assert_eq!(q.queue_len(), MAX_QUEUE);
        assert_eq!(q.running_count(), MAX_RUNNING);
        assert!(q.pending_at(0).iter().all(|p| p.argv[0] != "/s60"));
    }

    #[test]
    fn debug_timing_knobs_apply() {
        let q = ScriptQueue::new(Instant::now());
        q.set_timing(5_000, 1_000);
        q.enqueue(argv("/a"));
        let l = q.take_ready(0);
        q.set_pid(l[0].id, 7);
        assert_eq!(q.timed_out(5_001).len(), 1);
        assert!(q.finished(l[0].id, 9, 0, 5_002).is_none());
        assert_eq!(q.pending_at(5_002)[0].run_time_or_delay_ms, 1_000);
    }

    #[test]
    fn timeout_after_60s_once() {
        let q = ScriptQueue::new(Instant::now());
        q.enqueue(argv("/slow"));
        let l = q.take_ready(1000);
        q.set_pid(l[0].id, 4242);
        assert!(q.timed_out(61_000).is_empty());
        let t = q.timed_out(61_001);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, 4242);
        assert_eq!(t[0].1.kind, EventKind::ScriptTimeout);
        assert_eq!(t[0].1.message, "/slow 4242");
        assert!(q.timed_out(62_000).is_empty(), "reported once");
        assert_eq!(q.pending_at(61_001)[0].run_time_or_delay_ms, 60_001);
    }

    /// Real children under the tokio runner: a script that fails with exit 3
    /// is reported once, a missing one like an exec failure.
    #[tokio::test]
    async fn runner_reports_real_failures() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fail.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 3\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let q = Arc::new(ScriptQueue::new(Instant::now()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            q.clone(),
            move |ev| {
                let _ = tx.send(ev);
            },
            stop.clone(),
        ));
        let path = script.to_string_lossy().into_owned();
        q.enqueue(vec![path.clone(), "a".into()]);
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ev.message, format!("{path} 0 3"));
        q.enqueue(vec!["/nonexistent/raftinel-script".into()]);
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ev.message, "/nonexistent/raftinel-script 0 2");
        stop.cancel();
        task.await.unwrap();
        assert_eq!(q.queue_len(), 0);
    }
}

#[cfg(test)]
mod paused_tests {
    use super::*;

    /// A script that never ends is SIGKILLed after 60 s (virtual time), retried
    /// as a signal death with the 30 s × 2^n schedule, and given up after 10
    /// attempts with `-script-error <path> 9 0`.
    #[tokio::test(start_paused = true)]
    async fn hung_script_is_killed_and_retried_on_schedule() {
        let q = Arc::new(ScriptQueue::new(Instant::now()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            q.clone(),
            move |ev| {
                let _ = tx.send((Instant::now(), ev));
            },
            stop.clone(),
        ));
        let origin = Instant::now();
        q.enqueue(vec!["/bin/sleep".into(), "1000".into()]);
        let mut timeouts = Vec::new();
        loop {
            let (at, ev) = rx.recv().await.unwrap();
            match ev.kind {
                EventKind::ScriptTimeout => {
                    assert!(ev.message.starts_with("/bin/sleep "));
                    timeouts.push(at.duration_since(origin).as_millis() as u64);
                }
                EventKind::ScriptError => {
                    assert_eq!(ev.message, "/bin/sleep 9 0");
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(timeouts.len(), MAX_ATTEMPTS as usize);
        // Attempt n starts after the previous reap plus retry_delay(n-1) and is
        // killed just over 60 s later. Only a lower bound is exact: the paused
        // clock keeps advancing while the real SIGCHLD is on its way.
        for (n, pair) in timeouts.windows(2).enumerate() {
            let gap = pair[1] - pair[0];
            let expected = retry_delay(n as u32 + 1) + MAX_RUNTIME_MS;
            assert!(
                gap >= expected,
                "attempt {}: gap {gap} expected ~{expected}",
                n + 2
            );
        }
        stop.cancel();
        task.await.unwrap();
    }
}
