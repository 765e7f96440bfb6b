//! Real clients through raftinel: redis-py's `Sentinel` (RESP2 and RESP3,
//! interpreter from `RAFTINEL_PYTHON`, a venv made by `.ci/run` with
//! redis==8.1.0) and `redis-cli` flows as health checks and charts use them.
//! A missing tool fails under CI and prints a skip line otherwise.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Output of a finished external command.
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` with stdout/stderr to files, killing it after `timeout`.
pub(crate) fn run_bounded(mut cmd: Command, timeout: Duration) -> Run {
    let dir = tempfile::Builder::new()
        .prefix("it-client-")
        .tempdir()
        .expect("tempdir");
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&o).expect("out"))
        .stderr(std::fs::File::create(&e).expect("err"));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|err| panic!("spawn {:?}: {err}", cmd.get_program()));
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Run {
        code: status.and_then(|s| s.code()),
        stdout: std::fs::read_to_string(&o).unwrap_or_default(),
        stderr: std::fs::read_to_string(&e).unwrap_or_default(),
    }
}

fn python() -> Option<PathBuf> {
    std::env::var_os("RAFTINEL_PYTHON").map(PathBuf::from)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/redis_py_sentinel.py")
}

/// 1 master + 2 replicas, raftinel knowing both replicas as healthy.
fn ready_topology() -> (Topology, SentinelProc) {
    let topo = Topology::new(2);
    let d = SentinelProc::raftinel(&[Monitor::new(topo.master.port, 2)]);
    eventually("both replicas listed healthy", || {
        let list = d.descriptions("REPLICAS", MASTER);
        let ok = list.len() == 2 && list.iter().all(|r| r.is_healthy_replica());
        if ok {
            Ok(())
        } else {
            Err(list.iter().map(|r| r.pretty()).collect())
        }
    });
    (topo, d)
}

fn redis_py(protocol: u8) {
    let Some(py) = python() else {
        skip_or_fail("RAFTINEL_PYTHON (a python with redis==8.1.0)");
        return;
    };
    let (topo, d) = ready_topology();
    let replicas: Vec<String> = topo
        .replicas
        .iter()
        .map(|r| format!("127.0.0.1:{}", r.port))
        .collect();
    let mut cmd = Command::new(&py);
    cmd.arg(script())
        .args(["--sentinel-port", &d.port.to_string()])
        .args(["--master-name", MASTER])
        .args(["--protocol", &protocol.to_string()])
        .args([
            "--expect-master",
            &format!("127.0.0.1:{}", topo.master.port),
        ])
        .args(["--expect-replicas", &replicas.join(",")])
        .args(["--key", &format!("it-resp{protocol}")]);
    let run = run_bounded(cmd, Duration::from_secs(90));
    assert_eq!(
        run.code,
        Some(0),
        "redis-py RESP{protocol} flow failed (None = killed after 90 s)\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.contains("redis-py 8.1.0"),
        "RAFTINEL_PYTHON must have redis==8.1.0:\n{}",
        run.stdout
    );
}

#[test]
fn redis_py_sentinel_resp2() {
    redis_py(2);
}

#[test]
fn redis_py_sentinel_resp3() {
    redis_py(3);
}

fn redis_cli(port: u16, args: &[&str]) -> Run {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    run_bounded(cmd, Duration::from_secs(20))
}

fn shell(script: &str) -> Run {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    run_bounded(cmd, Duration::from_secs(20))
}

/// The redis-cli lines of health checks and charts give what they expect.
#[test]
fn redis_cli_flows() {
    if which("redis-cli").is_none() {
        skip_or_fail("redis-cli (Debian package redis-tools)");
        return;
    }
    let (topo, d) = ready_topology();
    let p = d.port;

    let r = redis_cli(p, &["sentinel", "get-master-addr-by-name", MASTER]);
    assert_eq!(
        r.stdout,
        format!("127.0.0.1\n{}\n", topo.master.port),
        "get-master-addr-by-name prints two lines; stderr: {}",
        r.stderr
    );

    let r = redis_cli(p, &["ping"]);
    assert_eq!(
        r.stdout, "PONG\n",
        "ping prints exactly PONG; stderr: {}",
        r.stderr
    );
    assert_eq!(r.code, Some(0));

    let r = shell(&format!(
        "redis-cli -h 127.0.0.1 -p {p} INFO sentinel | awk -F, '/^master0:/{{print $2}}'"
    ));
    assert_eq!(
        r.stdout, "status=ok\n",
        "INFO sentinel via awk; stderr: {}",
        r.stderr
    );

    // bitnami-style positional read: the 10th line of SENTINEL MASTER is the flags value.
    let r = shell(&format!(
        "redis-cli -h 127.0.0.1 -p {p} sentinel master {MASTER} | sed -n 10p"
    ));
    assert_eq!(r.stdout, "master\n", "flags line of SENTINEL MASTER");

    // The current master as bitnami's scripts extract it.
    let r = shell(&format!(
        "redis-cli -h 127.0.0.1 -p {p} --raw sentinel get-master-addr-by-name {MASTER} | head -n1"
    ));
    assert_eq!(r.stdout, "127.0.0.1\n");

    let r = redis_cli(p, &["-3", "sentinel", "get-master-addr-by-name", "nosuch"]);
    // Not a tty: redis-cli prints a null as an empty line.
    assert_eq!(r.stdout, "\n", "RESP3 null printed by redis-cli");

    let r = redis_cli(p, &["sentinel", "master", "nosuch"]);
    assert_eq!(
        r.stdout.trim_end(),
        "ERR No such master with that name",
        "error printed by redis-cli"
    );

    let r = redis_cli(p, &["sentinel", "replicas", MASTER]);
    let ports: Vec<String> = topo.replicas.iter().map(|n| n.port.to_string()).collect();
    for port in &ports {
        assert!(
            r.stdout.lines().any(|l| l == format!("127.0.0.1:{port}")),
            "replica {port} in redis-cli output:\n{}",
            r.stdout
        );
    }
}
