//! The config file: learned state survives a restart, the rewritten file is
//! valid for a real redis-sentinel and vice versa, bad files exit with 64 and
//! `file:line` before any port is bound, `logfile` keeps stderr empty, and a
//! read-only file does not stop the daemon.

use crate::harness::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Replace the `port` line of a sentinel.conf.
fn with_port(conf: &str, port: u16) -> String {
    let mut out: Vec<String> = conf
        .lines()
        .filter(|l| !l.trim_start().to_ascii_lowercase().starts_with("port "))
        .map(String::from)
        .collect();
    out.insert(0, format!("port {port}"));
    out.join("\n") + "\n"
}

fn has_line(conf: &str, line: &str) -> bool {
    conf.lines().any(|l| l.trim() == line)
}

/// Wait until `s` lists exactly `ports` as replicas of mymaster.
fn wait_replicas(s: &SentinelProc, ports: &[u16]) {
    let mut want: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    want.sort();
    eventually(
        &format!("{:?} on {} lists replicas {want:?}", s.kind, s.port),
        || {
            let mut got: Vec<String> = s
                .descriptions("REPLICAS", MASTER)
                .iter()
                .filter_map(|d| d.field("name"))
                .collect();
            got.sort();
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
}

/// Wait until `s` lists the sentinel with run id `id`.
fn wait_sentinel(s: &SentinelProc, id: &str) {
    eventually(
        &format!("{:?} on {} lists sentinel {id}", s.kind, s.port),
        || {
            let ids: Vec<String> = s
                .descriptions("SENTINELS", MASTER)
                .iter()
                .filter_map(|d| d.field("runid"))
                .collect();
            if ids.iter().any(|i| i == id) {
                Ok(())
            } else {
                Err(format!("{ids:?}"))
            }
        },
    );
}

/// Wait until the config file holds the learned replicas and peer. (The
/// flush follows discovery; a reply may show the new state a moment earlier.)
fn wait_persisted(s: &SentinelProc, replica_ports: &[u16], peer_id: &str, peer_port: u16) {
    let mut want: Vec<String> = replica_ports
        .iter()
        .map(|p| format!("sentinel known-replica {MASTER} 127.0.0.1 {p}"))
        .collect();
    want.push(format!(
        "sentinel known-sentinel {MASTER} 127.0.0.1 {peer_port} {peer_id}"
    ));
    eventually(
        &format!("{:?} on {} persisted {want:?}", s.kind, s.port),
        || {
            let text = s.conf_text();
            if want.iter().all(|l| has_line(&text, l)) {
                Ok(())
            } else {
                Err(text)
            }
        },
    );
}

fn sentinel_ids(s: &SentinelProc) -> Vec<(String, String)> {
    s.descriptions("SENTINELS", MASTER)
        .iter()
        .map(|d| {
            (
                d.field("runid").unwrap_or_default(),
                d.field("port").unwrap_or_default(),
            )
        })
        .collect()
}

/// Learned state (myid, known-replica, known-sentinel) is written to the
/// file and comes back after a restart, even with the peer gone.
#[test]
fn state_persists_across_restart() {
    let topo = Topology::new(2);
    let m = [Monitor::new(topo.master.port, 2)];
    let mut a = Raftinel::raftinel(&m);
    let mut b = Raftinel::raftinel(&m);
    let (a_id, b_id) = (a.myid(), b.myid());
    let ports: Vec<u16> = topo.replicas.iter().map(|r| r.port).collect();
    wait_replicas(&a, &ports);
    wait_sentinel(&a, &b_id);
    wait_persisted(&a, &ports, &b_id, b.port);
    let text = a.conf_text();
    assert!(
        has_line(&text, &format!("sentinel myid {a_id}")),
        "myid not persisted:\n{text}"
    );
    for p in &ports {
        assert!(
            has_line(
                &text,
                &format!("sentinel known-replica {MASTER} 127.0.0.1 {p}")
            ),
            "known-replica {p} not persisted:\n{text}"
        );
    }
    assert!(
        has_line(
            &text,
            &format!(
                "sentinel known-sentinel {MASTER} 127.0.0.1 {} {b_id}",
                b.port
            )
        ),
        "known-sentinel not persisted:\n{text}"
    );
    for l in [
        format!("sentinel config-epoch {MASTER} 0"),
        format!("sentinel leader-epoch {MASTER} 0"),
        "sentinel current-epoch 0".to_string(),
    ] {
        assert!(
            has_line(&text, &l),
            "`{l}` missing (always written):\n{text}"
        );
    }
    // The original directives stay in place, in order.
    let first_monitor = text
        .lines()
        .position(|l| l.starts_with("sentinel monitor "))
        .expect("monitor line kept");
    assert_eq!(
        text.lines().nth(first_monitor),
        Some(format!("sentinel monitor {MASTER} 127.0.0.1 {} 2", topo.master.port).as_str())
    );

    b.stop();
    a.restart();
    assert_eq!(a.myid(), a_id, "myid changed across restart");
    // Known before any INFO or hello could arrive again: from the file.
    let names: Vec<String> = a
        .descriptions("REPLICAS", MASTER)
        .iter()
        .filter_map(|d| d.field("name"))
        .collect();
    assert_eq!(names.len(), 2, "replicas after restart: {names:?}");
    assert_eq!(
        sentinel_ids(&a),
        vec![(b_id.clone(), b.port.to_string())],
        "stopped peer still known after restart (from known-sentinel)"
    );
    assert_eq!(
        a.master_field(MASTER, "num-other-sentinels").as_deref(),
        Some("1")
    );
}

/// The file raftinel rewrote is accepted by a real redis-sentinel, which then
/// has the same myid, replicas and peer.
#[test]
fn rewritten_config_is_accepted_by_redis_sentinel() {
    let topo = Topology::new(2);
    let m = [Monitor::new(topo.master.port, 2)];
    let mut a = Raftinel::raftinel(&m);
    let b = Raftinel::raftinel(&m);
    let (a_id, b_id) = (a.myid(), b.myid());
    let ports: Vec<u16> = topo.replicas.iter().map(|r| r.port).collect();
    wait_replicas(&a, &ports);
    wait_sentinel(&a, &b_id);
    wait_persisted(&a, &ports, &b_id, b.port);
    a.stop();
    let text = a.conf_text();
    let oracle = SentinelProc::with_conf(Kind::Oracle, |port, _| with_port(&text, port));
    assert_eq!(oracle.myid(), a_id, "redis-sentinel read the myid");
    let names = oracle.descriptions("REPLICAS", MASTER).len();
    assert_eq!(names, 2, "redis-sentinel read both known-replica lines");
    let ids: Vec<String> = sentinel_ids(&oracle).into_iter().map(|x| x.0).collect();
    assert!(
        ids.contains(&b_id),
        "redis-sentinel read known-sentinel: {ids:?}"
    );
    assert_eq!(
        oracle.master_field(MASTER, "quorum").as_deref(),
        Some("2"),
        "monitor line read"
    );
    assert_eq!(
        oracle
            .master_field(MASTER, "down-after-milliseconds")
            .as_deref(),
        Some("1000")
    );
}

/// raftinel starts from a sentinel.conf that a real redis-sentinel wrote
/// (with its generated lines: user, latency-tracking, protected-mode, ...).
#[test]
fn starts_from_config_written_by_redis_sentinel() {
    let topo = Topology::new(2);
    let m = [Monitor::new(topo.master.port, 2)];
    let mut o1 = SentinelProc::oracle(&m);
    let o2 = SentinelProc::oracle(&m);
    let (o1_id, o2_id) = (o1.myid(), o2.myid());
    let ports: Vec<u16> = topo.replicas.iter().map(|r| r.port).collect();
    wait_replicas(&o1, &ports);
    wait_sentinel(&o1, &o2_id);
    wait_persisted(&o1, &ports, &o2_id, o2.port);
    o1.stop();
    let text = o1.conf_text();
    assert!(
        text.contains("# Generated by CONFIG REWRITE"),
        "oracle rewrote:\n{text}"
    );
    let d = SentinelProc::with_conf(Kind::Raftinel, |port, _| with_port(&text, port));
    assert_eq!(d.myid(), o1_id, "myid taken from the file");
    let names: Vec<String> = d
        .descriptions("REPLICAS", MASTER)
        .iter()
        .filter_map(|x| x.field("name"))
        .collect();
    assert_eq!(names.len(), 2, "known-replica lines read: {names:?}");
    let ids: Vec<String> = sentinel_ids(&d).into_iter().map(|x| x.0).collect();
    assert!(ids.contains(&o2_id), "known-sentinel read: {ids:?}");
    assert_eq!(d.master_field(MASTER, "quorum").as_deref(), Some("2"));
    assert_eq!(
        d.master_field(MASTER, "down-after-milliseconds").as_deref(),
        Some("1000")
    );
    assert_eq!(
        d.conn()
            .cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]),
        Resp::Array(vec![
            Resp::bulk("127.0.0.1"),
            Resp::bulk(&topo.master.port.to_string())
        ])
    );
}

/// Run raftinel on a bad config: exit status 64, `sentinel.conf:<line>` on
/// stderr, and the port never accepted a connection.
pub(crate) fn assert_bad_config(body: &str, line: usize) {
    let dir = tempfile::Builder::new()
        .prefix("it-badconf-")
        .tempdir()
        .expect("tempdir");
    let port = free_port();
    let conf = dir.path().join("sentinel.conf");
    fs::write(&conf, format!("port {port}\n{body}")).expect("write config");
    let mut s = SentinelProc::spawn_unchecked(Kind::Raftinel, port, dir, conf);
    let mut bound = false;
    let mut status = None;
    wait_until(Duration::from_secs(15), || {
        status = s.proc().try_exit();
        if status.is_none() && port_open(port) {
            bound = true;
        }
        status.is_some()
    });
    let stderr = s.stderr();
    let shown = format!("config:\nport {port}\n{body}\nstderr:\n{stderr}");
    assert!(
        status.is_some(),
        "daemon still running 15 s after a bad config\n{shown}"
    );
    assert_eq!(
        status.and_then(|st| st.code()),
        Some(64),
        "exit status for a bad config\n{shown}"
    );
    assert!(
        stderr.contains(&format!("sentinel.conf:{line}")),
        "stderr lacks `sentinel.conf:{line}`\n{shown}"
    );
    assert!(
        !bound,
        "a port was bound before exiting on a bad config\n{shown}"
    );
}

#[test]
fn bad_config_unknown_directive() {
    assert_bad_config(
        "sentinel monitor mymaster 127.0.0.1 6379 2\nno-such-directive 1\n",
        3,
    );
}

/// Each of these is also refused by redis-sentinel 7.0.15 (which exits 1).
#[test]
fn bad_config_invalid_values() {
    let m = "sentinel monitor mymaster 127.0.0.1 6379 2\n";
    assert_bad_config("sentinel monitor mymaster 127.0.0.1 6379 0\n", 2);
    assert_bad_config(
        &format!("{m}sentinel down-after-milliseconds nosuch 1000\n"),
        3,
    );
    assert_bad_config(
        &format!("{m}sentinel down-after-milliseconds mymaster abc\n"),
        3,
    );
    assert_bad_config(&format!("{m}sentinel parallel-syncs mymaster\n"), 3);
    assert_bad_config(&format!("{m}sentinel foo bar\n"), 3);
    assert_bad_config("\n\nsentinel monitor mymaster 127.0.0.1 6379\n", 4);
    assert_bad_config("port abc\n", 2);
}

/// With `logfile` set nothing reaches stderr, and the log file gets the events.
#[test]
fn logfile_keeps_stderr_empty() {
    let topo = Topology::new(1);
    let m = [Monitor::new(topo.master.port, 2)];
    let mut d = SentinelProc::with_conf(Kind::Raftinel, |port, dir| {
        let log = dir.join("raftinel.log");
        sentinel_conf(port, dir, &m, &[format!("logfile \"{}\"", log.display())])
    });
    wait_replicas(&d, &[topo.replicas[0].port]);
    d.conn().cmd(&["SENTINEL", "MASTER", "nosuch"]);
    d.stop();
    let stderr = d.stderr();
    assert_eq!(stderr, "", "stderr must be empty with logfile set");
    let log = fs::read_to_string(d.dir.path().join("raftinel.log")).unwrap_or_default();
    assert!(
        log.contains("+monitor") && log.contains("+slave"),
        "log file lacks +monitor/+slave events:\n{log}"
    );
}

/// Makes a file immutable (read-only even for root) while alive.
struct Immutable<'a>(&'a Path, bool);

impl<'a> Immutable<'a> {
    fn new(path: &'a Path) -> Immutable<'a> {
        let mut perms = fs::metadata(path).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
        fs::set_permissions(path, perms).expect("chmod 0444");
        let chattr = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !chattr {
            eprintln!("note: chattr +i unavailable; the config file is only mode 0444");
        }
        Immutable(path, chattr)
    }
}

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        if self.1 {
            let _ = Command::new("chattr").arg("-i").arg(self.0).status();
        }
    }
}

/// A read-only config file (a ConfigMap mount) does not stop the daemon: it
/// starts, monitors, learns replicas and keeps answering. (redis-sentinel
/// itself refuses to start here; raftinel deliberately differs.)
#[test]
fn read_only_config_still_runs() {
    let topo = Topology::new(1);
    let m = [Monitor::new(topo.master.port, 2)];
    // The config lives in its own dir, made immutable; logs and `dir` elsewhere.
    // Declaration order makes drops run daemon, guard, then the config dir.
    let cfgdir = tempfile::Builder::new()
        .prefix("it-roconf-")
        .tempdir()
        .expect("tempdir");
    let logdir = tempfile::Builder::new()
        .prefix("it-raftinel-")
        .tempdir()
        .expect("tempdir");
    let port = free_port();
    let conf = cfgdir.path().join("sentinel.conf");
    let text = sentinel_conf(port, logdir.path(), &m, &[]);
    fs::write(&conf, &text).expect("write config");
    let _guard = Immutable::new(&conf);
    let mut d = SentinelProc::spawn_unchecked(Kind::Raftinel, port, logdir, conf.clone());
    d.wait_ready();
    wait_replicas(&d, &[topo.replicas[0].port]);
    assert!(d.proc().running(), "daemon exited with a read-only config");
    assert_eq!(d.conn().cmd(&["PING"]), Resp::Status("PONG".into()));
    assert_eq!(
        fs::read_to_string(&conf).unwrap_or_default(),
        text,
        "read-only file unchanged"
    );
}

/// `--port N` after the config file overrides the file's `port`, as for
/// redis-sentinel.
#[test]
fn port_override_on_command_line() {
    let topo = Topology::new(0);
    let m = [Monitor::new(topo.master.port, 2)];
    let dir = tempfile::Builder::new()
        .prefix("it-raftinel-")
        .tempdir()
        .expect("tempdir");
    let (file_port, cli_port) = (free_port(), free_port());
    let conf = dir.path().join("sentinel.conf");
    fs::write(&conf, sentinel_conf(file_port, dir.path(), &m, &[])).expect("write config");
    let args = vec!["--port".to_string(), cli_port.to_string()];
    let mut d = SentinelProc::spawn_with_args(Kind::Raftinel, cli_port, dir, conf, args);
    d.wait_ready();
    assert!(!port_open(file_port), "the file's port must not be bound");
    let info = d
        .conn()
        .cmd(&["INFO", "server"])
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        info_field(&info, "tcp_port"),
        Some(cli_port.to_string()),
        "INFO tcp_port"
    );
}

/// SIGTERM: a clean exit with status 0.
#[test]
fn sigterm_exits_zero() {
    let topo = Topology::new(0);
    let mut d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let status = d.stop();
    assert!(status.is_some(), "still running 10 s after SIGTERM");
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status after SIGTERM"
    );
    assert!(!port_open(d.port), "port closed after exit");
}

/// `SHUTDOWN` closes the connection and the process exits with status 0.
#[test]
fn shutdown_command_exits_zero() {
    let topo = Topology::new(0);
    let mut d = Raftinel::raftinel(&[Monitor::new(topo.master.port, 2)]);
    let before = d.conf_text();
    let mut c = d.conn();
    let _ = c.send(&["SHUTDOWN", "NOSAVE"]);
    let reply = c.read_reply(Duration::from_secs(10));
    assert_eq!(
        reply,
        Reply::Closed,
        "SHUTDOWN gets no reply, the connection closes"
    );
    let status = d.proc().wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status after SHUTDOWN"
    );
    assert_eq!(d.conf_text(), before, "no config flush on shutdown");
}

/// The binary also runs under the names Redis uses: `redis-sentinel <conf>`
/// and `redis-server <conf> --sentinel` (bitnami's exec line), via symlinks.
#[test]
fn runs_as_redis_sentinel_and_redis_server_sentinel() {
    let topo = Topology::new(0);
    let m = [Monitor::new(topo.master.port, 2)];
    for (name, extra) in [
        ("redis-sentinel", &[][..]),
        ("redis-server", &["--sentinel"][..]),
    ] {
        let dir = tempfile::Builder::new()
            .prefix("it-argv0-")
            .tempdir()
            .expect("tempdir");
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(raftinel_bin(), &link).expect("symlink");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        fs::write(&conf, sentinel_conf(port, dir.path(), &m, &[])).expect("write config");
        let mut cmd = Command::new(&link);
        cmd.arg(&conf).args(extra).current_dir(dir.path());
        let (out, err) = (dir.path().join("stdout.log"), dir.path().join("stderr.log"));
        let mut p = Proc::spawn(cmd, name, &out, &err);
        wait_pong(port, name, || match p.try_exit() {
            Some(s) => Err(format!(
                "{s}; stderr: {}",
                fs::read_to_string(&err).unwrap_or_default()
            )),
            None => Ok(()),
        });
        let mut c = Conn::open(port);
        let role = c.cmd(&["ROLE"]);
        assert_eq!(
            role,
            Resp::Array(vec![
                Resp::bulk("sentinel"),
                Resp::Array(vec![Resp::bulk(MASTER)])
            ]),
            "{name}: ROLE"
        );
        p.kill();
    }
}

/// `syslog-enabled yes`: the daemon and redis-sentinel, each with the
/// same `syslog-ident` and `syslog-facility`, send the same datagram for
/// the same `+monitor` line to `/dev/log` (the date and pid aside). Each
/// runs in a mount namespace of its own whose `/dev/log` is this test's
/// socket. `+monitor` is a warning line: local3 (19) * 8 + 4. Needs root
/// and unshare(1).
#[test]
fn syslog_lines_as_redis_sentinel_sends_them() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || which("unshare").is_none() {
        skip_or_fail("root and unshare (a mount namespace for /dev/log)");
        return;
    }
    let Some(oracle) = which("redis-sentinel") else {
        skip_or_fail("redis-sentinel");
        return;
    };
    let master = RedisNode::start();
    let line = |bin: &Path| -> String {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let sock = std::os::unix::net::UnixDatagram::bind(dir.path().join("log")).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let port = free_port();
        fs::write(
            dir.path().join("s.conf"),
            format!(
                "port {port}\nsyslog-enabled yes\nsyslog-ident sentinel-x\n\
                 syslog-facility local3\nsentinel monitor {MASTER} 127.0.0.1 {} 1\n",
                master.port
            ),
        )
        .unwrap();
        // /dev as a fresh tmpfs holding only null and log, bound to the
        // host's /dev/null and to this test's socket.
        let script = format!(
            "set -e; touch {d}/null; mount --bind /dev/null {d}/null; \
             mount -t tmpfs none /dev; touch /dev/null /dev/log; \
             mount --bind {d}/null /dev/null; mount --bind {d}/log /dev/log; \
             exec {} {d}/s.conf",
            bin.display()
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
        let _proc = Proc::spawn(
            cmd,
            "syslog",
            &dir.path().join("stdout"),
            &dir.path().join("stderr"),
        );
        let mut buf = vec![0u8; 65536];
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                let d = String::from_utf8_lossy(&buf[..n]).into_owned();
                if d.contains("+monitor") {
                    return d;
                }
            }
        }
        panic!(
            "no +monitor datagram from {}: {}",
            bin.display(),
            fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
        );
    };
    // `<PRI>Mmm dd hh:mm:ss ident[pid]: message` without the date and pid.
    let shape = |d: &str| -> String {
        let (head, rest) = d.split_at(d.find('>').unwrap() + 1);
        let ident = &rest[16..rest.find('[').unwrap()];
        let message = &rest[rest.find("]: ").unwrap() + 3..];
        format!("{head} {ident} {message}")
    };
    let ours = line(&raftinel_bin());
    let theirs = line(&oracle);
    assert_eq!(shape(&ours), shape(&theirs), "{ours}\n{theirs}");
    assert_eq!(
        shape(&ours),
        format!(
            "<156> sentinel-x +monitor master {MASTER} 127.0.0.1 {} quorum 1",
            master.port
        )
    );
}
