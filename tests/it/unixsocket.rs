//! `unixsocket` / `unixsocketperm` beside redis-sentinel 7.0.15: the socket
//! file's mode, CLIENT LIST's `addr`, `laddr` and flag `U`, the file removed
//! at shutdown, and a daemon with `port 0` serving on the socket alone.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use crate::clients::{run_bounded, Run};
use crate::harness::*;

fn cli(path: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-s", path]).args(args);
    run_bounded(cmd, Duration::from_secs(20))
}

/// What CLIENT LIST says of the asking client, less what differs by nature.
fn own_line(path: &str) -> String {
    let out = cli(path, &["CLIENT", "LIST"]).stdout;
    out.lines()
        .find(|l| l.contains("cmd=client|list"))
        .unwrap_or_default()
        .split(' ')
        .filter(|f| {
            ["addr=", "laddr=", "flags=", "cmd="]
                .iter()
                .any(|k| f.starts_with(k))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn unix_socket_like_redis_sentinel() {
    let mut seen = Vec::new();
    for kind in [Kind::Oracle, Kind::Raftinel] {
        let sock = tempfile::Builder::new()
            .prefix("it-unix-")
            .tempdir()
            .expect("tempdir");
        let path = sock.path().join("sentinel.sock").display().to_string();
        let mut s = SentinelProc::with_conf(kind, |port, dir| {
            sentinel_conf(
                port,
                dir,
                &[],
                &[format!("unixsocket {path}"), "unixsocketperm 700".into()],
            )
        });
        let meta = fs::metadata(&path).expect("the socket file");
        assert!(
            meta.file_type().is_socket(),
            "{kind:?}: {path} is not a socket"
        );
        let mode = meta.permissions().mode() & 0o777;
        let pong = cli(&path, &["PING"]).stdout;
        let line = own_line(&path).replace(&path, "<path>");
        s.stop();
        let removed = wait_until(Duration::from_secs(10), || fs::metadata(&path).is_err());
        seen.push(format!(
            "mode {mode:o}, PING {}, {line}, removed at shutdown {removed}",
            pong.trim()
        ));
    }
    assert_eq!(seen[0], seen[1], "redis-sentinel, then raftinel");
    assert_eq!(
        seen[1],
        "mode 700, PING PONG, addr=<path>:0 laddr=<path>:0 flags=U cmd=client|list, removed at shutdown true"
    );

    // The socket alone (`port 0`): served, and nothing on TCP.
    let sock = tempfile::Builder::new()
        .prefix("it-unix-")
        .tempdir()
        .expect("tempdir");
    let path = sock.path().join("only.sock").display().to_string();
    let dir = tempfile::Builder::new()
        .prefix("it-raftinel-")
        .tempdir()
        .expect("tempdir");
    let port = free_port();
    let conf = dir.path().join("sentinel.conf");
    fs::write(
        &conf,
        sentinel_conf(port, dir.path(), &[], &[format!("unixsocket {path}")]).replacen(
            &format!("port {port}\n"),
            "port 0\n",
            1,
        ),
    )
    .unwrap();
    let d = SentinelProc::spawn_unchecked(Kind::Raftinel, port, dir, conf);
    assert!(
        wait_until(Duration::from_secs(20), || cli(&path, &["PING"])
            .stdout
            .trim()
            == "PONG"),
        "no PONG on the socket\n{}",
        d.stderr()
    );
    assert!(!port_open(port));
}
