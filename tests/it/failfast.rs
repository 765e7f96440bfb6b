//! Fail fast: a daemon that can no longer keep its state up to date stops,
//! says why, and exits non-zero, so that its orchestrator restarts it; it
//! never keeps answering clients from stale state. Faults are injected with
//! the debug build's failpoints (`RAFTINEL_FAILPOINT`).

use crate::harness::*;
use std::fs;
use std::process::Command;
use std::time::Duration;

/// Starts the daemon with failpoint `point` set, monitoring a real master.
fn start_with_failpoint(point: &str, master: u16) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("it-failfast-")
        .tempdir()
        .expect("temp dir");
    let port = free_port();
    let conf = dir.path().join("sentinel.conf");
    fs::write(
        &conf,
        sentinel_conf(port, dir.path(), &[Monitor::new(master, 1)], &[]),
    )
    .expect("write sentinel.conf");
    let mut cmd = Command::new(raftinel_bin());
    cmd.arg(&conf)
        .current_dir(dir.path())
        .env("RAFTINEL_FAILPOINT", point);
    let proc = Proc::spawn(
        cmd,
        "raftinel",
        &dir.path().join("stdout.log"),
        &dir.path().join("stderr.log"),
    );
    (proc, dir)
}

fn logs(dir: &tempfile::TempDir) -> String {
    let read = |f: &str| fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    format!("{}{}", read("stdout.log"), read("stderr.log"))
}

/// A panic in one of the daemon's tasks (here the driver, which runs the
/// monitoring) ends the whole process with the panic in its log.
#[test]
fn a_panicking_task_stops_the_daemon() {
    let topo = Topology::new(0);
    let (mut proc, dir) = start_with_failpoint("driver-panic", topo.master.port);
    let status = proc.wait_exit(Duration::from_secs(30));
    let log = logs(&dir);
    assert!(
        matches!(status, Some(s) if !s.success()),
        "the daemon must exit non-zero, got {status:?}:\n{log}"
    );
    assert!(
        log.contains("panic") && log.contains("failpoint driver-panic"),
        "the panic is logged:\n{log}"
    );
    assert!(
        log.contains("a panic stops the daemon"),
        "and why it stops:\n{log}"
    );
}

/// openraft's core stops for good when its log cannot be written: the
/// daemon then stops too, with the reason, instead of answering from a
/// group state that no longer moves.
#[test]
fn a_stopped_raft_core_stops_the_daemon() {
    let topo = Topology::new(0);
    let (mut proc, dir) = start_with_failpoint("raft-log-write", topo.master.port);
    // Alone, the daemon forms its group a few seconds after its links are
    // up; the first append to the log fails then.
    let status = proc.wait_exit(Duration::from_secs(60));
    let log = logs(&dir);
    assert!(
        matches!(status, Some(s) if !s.success()),
        "the daemon must exit non-zero, got {status:?}:\n{log}"
    );
    assert!(
        log.contains("the Raft core of node") && log.contains("stopped"),
        "the stop is reported:\n{log}"
    );
}
