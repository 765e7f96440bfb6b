//! TLS on the client port (`tls-port`), side by side with redis-sentinel
//! 7.0.15 given the same certificates: redis-cli `--tls`, redis-py with ssl
//! and `openssl s_client` get the same answers and the same refusals from
//! both. Certificates are made by `openssl` in each test's temp dir.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::clients::{run_bounded, Run};
use crate::harness::*;

/// A test CA, a server/client certificate it signed (EC P-256, X.509 v3,
/// SAN localhost and 127.0.0.1), one signed by another CA, and variants
/// for the bad-input tests.
pub(crate) struct Certs {
    pub dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    pub(crate) fn new() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("it-certs-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        fs::write(
            d.join("leaf.cnf"),
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for ca in ["ca", "other-ca"] {
            let (key, crt, subj) = (
                format!("{ca}.key"),
                format!("{ca}.crt"),
                format!("/CN={ca}"),
            );
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            a.extend([
                "-nodes", "-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj,
            ]);
            openssl(d, &a);
        }
        // `expired`: its validity ended yesterday.
        for (name, ca, days) in [
            ("server", "ca", "2"),
            ("client", "ca", "2"),
            ("stranger", "other-ca", "2"),
            ("expired", "ca", "-1"),
        ] {
            let (key, csr, crt) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
            );
            let mut a = vec!["req"];
            a.extend(ec);
            a.extend([
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=localhost",
            ]);
            openssl(d, &a);
            let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_crt,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    days,
                    "-extfile",
                    "leaf.cnf",
                ],
            );
        }
        Certs { dir }
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The server side directives, `auth` for tls-auth-clients.
    pub(crate) fn server_lines(&self, tls_port: u16, auth: &str) -> Vec<String> {
        vec![
            format!("tls-port {tls_port}"),
            format!("tls-cert-file {}", self.path("server.crt")),
            format!("tls-key-file {}", self.path("server.key")),
            format!("tls-ca-cert-file {}", self.path("ca.crt")),
            format!("tls-auth-clients {auth}"),
        ]
    }
}

/// A sentinel (`kind`) with `port` and `tls-port` (plain `port` may be 0),
/// monitoring `master`, ready once a TLS PING answers.
struct TlsSentinel {
    s: SentinelProc,
    tls_port: u16,
}

fn start(kind: Kind, certs: &Certs, plain: bool, master: u16, extra: &[String]) -> TlsSentinel {
    start_quorum(kind, certs, plain, master, 1, extra)
}

fn start_quorum(
    kind: Kind,
    certs: &Certs,
    plain: bool,
    master: u16,
    quorum: u32,
    extra: &[String],
) -> TlsSentinel {
    let dir = tempfile::Builder::new()
        .prefix("it-tls-")
        .tempdir()
        .expect("tempdir");
    let port = free_port();
    let tls_port = free_port();
    let mut lines = certs.server_lines(tls_port, "yes");
    lines.extend(extra.iter().cloned());
    let mut conf = sentinel_conf(port, dir.path(), &[Monitor::new(master, quorum)], &lines);
    if !plain {
        conf = conf.replacen(&format!("port {port}\n"), "port 0\n", 1);
    }
    let path = dir.path().join("sentinel.conf");
    fs::write(&path, conf).unwrap();
    let s = SentinelProc::spawn_unchecked(kind, port, dir, path);
    let ready = wait_until(Duration::from_secs(20), || {
        cli(certs, tls_port, true, &["PING"]).stdout.trim() == "PONG"
    });
    assert!(
        ready,
        "{kind:?} never answered PING on tls-port\n{}\n{}",
        s.conf_text(),
        s.stderr()
    );
    TlsSentinel { s, tls_port }
}

/// redis-cli over TLS, with the client certificate or without.
fn cli(certs: &Certs, port: u16, with_cert: bool, args: &[&str]) -> Run {
    cli_within(certs, port, with_cert, args, Duration::from_secs(20))
}

fn cli_within(certs: &Certs, port: u16, with_cert: bool, args: &[&str], bound: Duration) -> Run {
    cli_as(certs, port, with_cert.then_some("client"), args, bound)
}

/// redis-cli over TLS with the certificate `who` (`client`, `stranger`,
/// `expired`), or none.
fn cli_as(certs: &Certs, port: u16, who: Option<&str>, args: &[&str], bound: Duration) -> Run {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls"])
        .args(["--cacert", &certs.path("ca.crt")]);
    if let Some(who) = who {
        cmd.args(["--cert", &certs.path(&format!("{who}.crt"))])
            .args(["--key", &certs.path(&format!("{who}.key"))]);
    }
    cmd.args(args);
    run_bounded(cmd, bound)
}

/// What differs by nature between two sentinels (ids, ports, run ids).
fn mask(text: &str, ports: &[u16]) -> String {
    let mut out = text.to_string();
    for p in ports {
        out = out.replace(&p.to_string(), "<port>");
    }
    out.lines()
        .map(|l| {
            if l.len() == 40 && l.bytes().all(|b| b.is_ascii_hexdigit()) {
                "<id>".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const SESSION: &[&[&str]] = &[
    &["PING"],
    &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER],
    &["SENTINEL", "MYID"],
    &["CONFIG", "SET", "tls-cert-file", "x.crt"],
    &["SENTINEL", "CONFIG", "SET", "tls-cert-file", "x.crt"],
    &["SENTINEL", "CONFIG", "GET", "tls*"],
    &["ROLE"],
];

/// The same redis-cli session and redis-py flow over TLS against
/// redis-sentinel and raftinel; the answers agree. Also the INFO port of a
/// TLS-only daemon (`port 0`).
#[test]
fn redis_cli_and_redis_py_over_tls_like_redis_sentinel() {
    let certs = Certs::new();
    let master = RedisNode::start();
    let oracle = start(Kind::Oracle, &certs, true, master.port, &[]);
    let ours = start(Kind::Raftinel, &certs, true, master.port, &[]);
    let mut transcripts = Vec::new();
    for t in [&oracle, &ours] {
        let mut text = String::new();
        for args in SESSION {
            let r = cli(&certs, t.tls_port, true, args);
            text.push_str(&format!("> {}\n{}{}\n", args.join(" "), r.stdout, r.stderr));
        }
        transcripts.push(mask(&text, &[master.port, t.tls_port, t.s.port]));
    }
    assert_eq!(transcripts[0], transcripts[1], "redis-cli over TLS");
    assert!(
        transcripts[1].contains("> PING\nPONG"),
        "{}",
        transcripts[1]
    );

    match std::env::var_os("RAFTINEL_PYTHON") {
        None => {
            skip_or_fail("RAFTINEL_PYTHON (a python with redis==8.1.0)");
        }
        Some(py) => {
            let mut outs = Vec::new();
            for t in [&oracle, &ours] {
                let run = redis_py(&py, &certs, t.tls_port);
                assert_eq!(
                    run.code,
                    Some(0),
                    "redis-py: {}\n{}",
                    run.stdout,
                    run.stderr
                );
                outs.push(mask(&run.stdout, &[master.port, t.tls_port]));
            }
            assert_eq!(outs[0], outs[1], "redis-py over TLS");
            assert!(
                outs[1].contains("discover ('127.0.0.1', <port>)"),
                "{}",
                outs[1]
            );
        }
    }

    // TLS only: INFO's tcp_port is the TLS port; nothing listens on plain TCP.
    let only = start(Kind::Raftinel, &certs, false, master.port, &[]);
    let info = cli(&certs, only.tls_port, true, &["INFO", "server"]).stdout;
    assert!(
        info.contains(&format!("tcp_port:{}", only.tls_port)),
        "{info}"
    );
    assert!(!port_open(only.s.port), "port 0 must not listen");
}

const PY: &str = r#"
import sys, redis
from redis.sentinel import Sentinel
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tls = dict(ssl=True, ssl_ca_certs=ca, ssl_certfile=cert, ssl_keyfile=key)
r = redis.Redis(host="127.0.0.1", port=port, **tls)
print("ping", r.ping())
print("addr", r.sentinel_get_master_addr_by_name("mymaster"))
print("keys", sorted(r.sentinel_master("mymaster").keys())[:8])
s = Sentinel([("127.0.0.1", port)], sentinel_kwargs=tls)
print("discover", s.discover_master("mymaster"))
bare = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca)
try:
    bare.ping()
    print("no client certificate: served")
except redis.exceptions.ConnectionError:
    print("no client certificate: refused")
"#;

fn redis_py(py: &std::ffi::OsStr, certs: &Certs, port: u16) -> Run {
    let mut cmd = Command::new(py);
    cmd.args(["-c", PY, &port.to_string()]).args([
        certs.path("ca.crt"),
        certs.path("client.crt"),
        certs.path("client.key"),
    ]);
    run_bounded(cmd, Duration::from_secs(60))
}

/// Reads what a plain client gets on the TLS port: closed (EOF or reset)
/// within a few seconds, never a reply.
fn plain_on_tls_port(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(b"PING\r\n");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return format!("closed after {} bytes", got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return format!("still open after 15 s ({} bytes)", got.len())
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return format!("still open after 15 s ({} bytes)", got.len())
            }
            Err(_) => return "reset".into(),
        }
    }
}

/// Wrong clients, the same on both: a plain client on the TLS port is
/// closed, a TLS client on the plain port fails at once, a client without a
/// certificate is refused under `tls-auth-clients yes` and served under
/// `optional` and `no`; one from another CA, or expired, is refused unless
/// `no`; the daemon serves valid clients throughout.
#[test]
fn wrong_clients_are_closed_like_redis_sentinel() {
    let certs = Certs::new();
    let master = RedisNode::start();
    let mut outcomes = Vec::new();
    for kind in [Kind::Oracle, Kind::Raftinel] {
        let mut seen = Vec::new();
        for auth in ["yes", "optional", "no"] {
            let t = start(
                kind,
                &certs,
                true,
                master.port,
                &[format!("tls-auth-clients {auth}")],
            );
            let plain = plain_on_tls_port(t.tls_port);
            assert!(!plain.contains("still open"), "{kind:?}: {plain}");
            // redis-sentinel waits for the end of an inline line that never
            // comes: bounded here (raftinel answers the first bytes at once).
            let wrong_port = cli_within(&certs, t.s.port, true, &["PING"], Duration::from_secs(3));
            let bare = cli(&certs, t.tls_port, false, &["PING"]);
            let bound = Duration::from_secs(20);
            let stranger = cli_as(&certs, t.tls_port, Some("stranger"), &["PING"], bound);
            let expired = cli_as(&certs, t.tls_port, Some("expired"), &["PING"], bound);
            let good = cli(&certs, t.tls_port, true, &["PING"]);
            let pong = |r: &Run| r.stdout.trim() == "PONG";
            seen.push(format!(
                "auth {auth}: plain-on-tls closed, tls-on-plain pong={} exit0={}, no-cert pong={}, other-CA pong={}, expired pong={}, good pong={}",
                pong(&wrong_port),
                wrong_port.code == Some(0),
                pong(&bare),
                pong(&stranger),
                pong(&expired),
                pong(&good)
            ));
        }
        outcomes.push(seen.join("\n"));
    }
    assert_eq!(outcomes[0], outcomes[1], "redis-sentinel, then raftinel");
    assert!(outcomes[1].contains("auth yes: plain-on-tls closed, tls-on-plain pong=false exit0=false, no-cert pong=false, other-CA pong=false, expired pong=false, good pong=true"), "{}", outcomes[1]);
    assert!(outcomes[1].contains("auth optional: plain-on-tls closed, tls-on-plain pong=false exit0=false, no-cert pong=true, other-CA pong=false"), "{}", outcomes[1]);
}

/// `openssl s_client` against a port: whether the handshake succeeded, the
/// protocol and cipher, and how many of the reconnections reused the session.
fn s_client(certs: &Certs, port: u16, opts: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-CAfile", &certs.path("ca.crt")])
        .args(["-cert", &certs.path("client.crt")])
        .args(["-key", &certs.path("client.key")])
        .args(opts);
    let r = run_bounded(cmd, Duration::from_secs(20));
    let all = format!("{}{}", r.stdout, r.stderr);
    let first = all
        .lines()
        .find(|l| l.starts_with("New,") || l.starts_with("Reused,"))
        .unwrap_or("no session");
    let reused = all.lines().filter(|l| l.starts_with("Reused,")).count();
    let first = if first.contains("(NONE)") {
        "no session"
    } else {
        first
    };
    format!(
        "{} reused={reused}",
        first.trim_start_matches("Reused").trim_start_matches("New")
    )
}

/// `tls-protocols`, `tls-ciphers`, `tls-ciphersuites`,
/// `tls-prefer-server-ciphers` and `tls-session-caching` honoured as
/// redis-sentinel honours them: the same handshakes succeed and fail.
#[test]
fn protocols_ciphers_and_sessions_like_redis_sentinel() {
    let certs = Certs::new();
    let master = RedisNode::start();
    let configs: Vec<Vec<String>> = vec![
        vec![
            "tls-protocols TLSv1.2".into(),
            "tls-ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305".into(),
            "tls-prefer-server-ciphers yes".into(),
        ],
        vec![
            "tls-protocols TLSv1.3".into(),
            "tls-ciphersuites TLS_CHACHA20_POLY1305_SHA256".into(),
        ],
        vec!["tls-session-caching no".into()],
    ];
    let probes: &[&[&str]] = &[
        &["-tls1_2", "-reconnect"],
        &["-tls1_3"],
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384",
        ],
        &["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"],
    ];
    for extra in &configs {
        let mut results = Vec::new();
        for kind in [Kind::Oracle, Kind::Raftinel] {
            let t = start(kind, &certs, true, master.port, extra);
            let r: Vec<String> = probes
                .iter()
                .map(|p| format!("{p:?}: {}", s_client(&certs, t.tls_port, p)))
                .collect();
            results.push(r.join("\n"));
        }
        assert_eq!(
            results[0], results[1],
            "{extra:?}: redis-sentinel, then raftinel"
        );
    }
}

/// A TLS configuration that cannot be put in force stops the start:
/// exit 64, `sentinel.conf:<line>` of the directive at fault, no port bound.
#[test]
fn bad_tls_configs_exit_64_at_the_line() {
    let certs = Certs::new();
    let d = certs.dir.path();
    openssl(
        d,
        &[
            "pkey",
            "-in",
            "server.key",
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            "enc.key",
        ],
    );
    fs::write(d.join("garbage.crt"), "not a certificate\n").unwrap();
    let p = |n: &str| certs.path(n);
    let tls_port = free_port();
    let base = |cert: &str, key: &str| {
        format!(
            "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n",
            p(cert),
            p(key),
            p("ca.crt")
        )
    };
    // (body after the `port` line, line of the error in sentinel.conf)
    let cases: Vec<(String, usize)> = vec![
        (base("missing.crt", "server.key"), 3),
        (base("garbage.crt", "server.key"), 3),
        (base("server.crt", "client.key"), 4),
        (base("server.crt", "enc.key"), 4),
        (
            format!(
                "{}tls-key-file-pass secret\n",
                base("server.crt", "enc.key")
            ),
            6,
        ),
        (
            format!(
                "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\n",
                p("server.crt"),
                p("server.key")
            ),
            2,
        ),
        (
            format!("tls-port {tls_port}\ntls-key-file {}\n", p("server.key")),
            2,
        ),
        (
            format!(
                "{}tls-protocols \"TLSv1.1 TLSv1.2\"\n",
                base("server.crt", "server.key")
            ),
            6,
        ),
        (
            format!(
                "{}tls-ciphers HIGH:!aNULL\n",
                base("server.crt", "server.key")
            ),
            6,
        ),
        (
            format!(
                "{}tls-ciphersuites TLS_AES_128_CCM_SHA256\n",
                base("server.crt", "server.key")
            ),
            6,
        ),
        (
            format!(
                "{}tls-dh-params-file {}\n",
                base("server.crt", "server.key"),
                p("ca.crt")
            ),
            6,
        ),
        (
            format!(
                "{}tls-ca-cert-dir {}/nowhere\n",
                base("server.crt", "server.key"),
                d.display()
            ),
            6,
        ),
    ];
    for (body, line) in cases {
        crate::config::assert_bad_config(&body, line);
    }
    // The same certificate directives with tls-port 0 are inert, as in Redis.
    let inert = SentinelProc::with_conf(Kind::Raftinel, |port, dir| {
        sentinel_conf(
            port,
            dir,
            &[],
            &[
                format!("tls-cert-file {}", p("missing.crt")),
                "tls-port 0".into(),
            ],
        )
    });
    assert_eq!(inert.conn().cmd(&["PING"]), Resp::Status("PONG".into()));
}

/// A redis-server on a TLS port only (`port 0`), replicating over TLS.
struct TlsRedis {
    port: u16,
    proc: Proc,
    _dir: tempfile::TempDir,
}

fn tls_redis(certs: &Certs, replica_of: Option<u16>) -> TlsRedis {
    let dir = tempfile::Builder::new()
        .prefix("it-tls-redis-")
        .tempdir()
        .expect("tempdir");
    let port = free_port();
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--protected-mode", "no", "--tls-replication", "yes"])
        .args(["--tls-cert-file", &certs.path("server.crt")])
        .args(["--tls-key-file", &certs.path("server.key")])
        .args(["--tls-ca-cert-file", &certs.path("ca.crt")])
        .arg("--dir")
        .arg(dir.path())
        .arg("--logfile")
        .arg(dir.path().join("redis.log"));
    if let Some(m) = replica_of {
        cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
    }
    let proc = Proc::spawn(
        cmd,
        "redis-server",
        &dir.path().join("stdout"),
        &dir.path().join("stderr"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            cli(certs, port, true, &["PING"]).stdout.trim() == "PONG"
        }),
        "redis-server on tls-port {port} never answered"
    );
    TlsRedis {
        port,
        proc,
        _dir: dir,
    }
}

/// Three redis-servers and three daemons with every link under TLS (plain
/// ports 0): the daemons' links to the nodes, their hello and peer links
/// and their Raft RPCs. The master is SIGKILLed; every daemon answers the
/// promoted replica.
#[test]
fn failover_with_every_link_under_tls() {
    let certs = Certs::new();
    let mut master = tls_redis(&certs, None);
    let replicas = [
        tls_redis(&certs, Some(master.port)),
        tls_redis(&certs, Some(master.port)),
    ];
    for r in &replicas {
        eventually("the replica synced with the master over TLS", || {
            let info = cli(&certs, r.port, true, &["INFO", "replication"]).stdout;
            if info.contains("master_link_status:up") {
                Ok(())
            } else {
                Err(info)
            }
        });
    }
    let lines = [
        "tls-replication yes".to_string(),
        format!("sentinel failover-timeout {MASTER} 10000"),
    ];
    let daemons: Vec<TlsSentinel> = (0..3)
        .map(|_| start_quorum(Kind::Raftinel, &certs, false, master.port, 2, &lines))
        .collect();
    let field = |t: &TlsSentinel, name: &str| -> String {
        let out = cli(&certs, t.tls_port, true, &["SENTINEL", "MASTER", MASTER]).stdout;
        let l: Vec<&str> = out.lines().collect();
        l.iter()
            .position(|x| *x == name)
            .and_then(|i| l.get(i + 1))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    for t in &daemons {
        eventually("every daemon sees 2 replicas and 2 peers over TLS", || {
            let (s, r) = (field(t, "num-other-sentinels"), field(t, "num-slaves"));
            if s == "2" && r == "2" {
                Ok(())
            } else {
                Err(format!("sentinels {s}, replicas {r}\n{}", t.s.stderr()))
            }
        });
    }
    master.proc.kill();
    let promoted: Vec<String> = replicas.iter().map(|r| r.port.to_string()).collect();
    for t in &daemons {
        wait_for(
            Duration::from_secs(60),
            "every daemon answers the promoted replica",
            || {
                let out = cli(
                    &certs,
                    t.tls_port,
                    true,
                    &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER],
                )
                .stdout;
                let port = out.lines().nth(1).unwrap_or_default().to_string();
                if promoted.contains(&port) {
                    Ok(())
                } else {
                    let logs: Vec<String> = daemons
                        .iter()
                        .map(|d| tail(&d.s.stdout_path(), 40))
                        .collect();
                    Err(format!("answers {out:?}\n{}", logs.join("\n---\n")))
                }
            },
        );
    }
}

/// With `tls-replication yes` a sentinel announces its `tls-port` in the
/// hellos it publishes through the (TLS) master, as redis-sentinel does.
#[test]
fn hello_announces_tls_port_like_redis_sentinel() {
    let certs = Certs::new();
    let master = tls_redis(&certs, None);
    let lines = ["tls-replication yes".to_string()];
    let sentinels = [
        start(Kind::Oracle, &certs, true, master.port, &lines),
        start(Kind::Raftinel, &certs, true, master.port, &lines),
    ];
    let ids: Vec<String> = sentinels
        .iter()
        .map(|t| {
            cli(&certs, t.tls_port, true, &["SENTINEL", "MYID"])
                .stdout
                .trim()
                .to_string()
        })
        .collect();
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &master.port.to_string(), "--tls"])
        .args(["--cacert", &certs.path("ca.crt")])
        .args(["--cert", &certs.path("client.crt")])
        .args(["--key", &certs.path("client.key")])
        .args(["SUBSCRIBE", "__sentinel__:hello"]);
    // Hellos go out every 2 s: 6 s of them, then redis-cli is stopped.
    let run = run_bounded(cmd, Duration::from_secs(6));
    for (t, id) in sentinels.iter().zip(&ids) {
        let hello = run
            .stdout
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("{:?}: no hello from {id}\n{}", t.s.kind, run.stdout));
        let port = hello.split(',').nth(1).unwrap_or_default();
        assert_eq!(
            port,
            t.tls_port.to_string(),
            "{:?} announces {hello} (port {}, tls-port {})",
            t.s.kind,
            t.s.port,
            t.tls_port
        );
    }
}
