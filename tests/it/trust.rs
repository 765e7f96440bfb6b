//! Who may speak for the Raft group, with real daemons: forged RPCs from
//! clients that are not peers (plain, restricted ACL user, knowing the cluster
//! id but not the secret) change nothing and are counted; replayed RPCs are
//! refused; peer credentials changed at run time keep the group working; a
//! dead and a refusing peer cost a bounded number of log lines; bad secrets
//! stop the start with status 64.

use crate::harness::group::*;
use crate::harness::resp::Resp;
use crate::harness::*;
use raftinel::consensus::trust::{self, GroupSecret, SessionKey};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh random group secret (64 hex characters).
fn new_secret() -> String {
    format!("{}{}", trust::nonce(), trust::nonce())
}

fn secret_env(secret: &str) -> Vec<(String, String)> {
    vec![("RAFTINEL_SECRET".to_string(), secret.to_string())]
}

fn raft(d: &Daemon, key: &str) -> String {
    d.raft_info()
        .unwrap_or_else(|e| panic!("INFO raft on {}: {e}", d.port))
        .get(key)
        .cloned()
        .unwrap_or_default()
}

fn counter(d: &Daemon, key: &str) -> u64 {
    raft(d, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} in INFO raft of {}", d.port))
}

/// The refusal counters of `INFO raft`: total, auth, replay, cluster, malformed.
fn refusals(d: &Daemon) -> [u64; 5] {
    [
        "raft_rpc_refused",
        "raft_rpc_refused_auth",
        "raft_rpc_refused_replay",
        "raft_rpc_refused_cluster",
        "raft_rpc_refused_malformed",
    ]
    .map(|k| counter(d, k))
}

/// What forging clients send: a master switch to an address that serves
/// nothing, a join of a made-up voter, and an append from a made-up leader.
fn forged(cluster: &str) -> Vec<Vec<String>> {
    let switch = format!(
        "{{\"SwitchMaster\":{{\"name\":\"{MASTER}\",\"epoch\":99,\"host\":\"127.0.0.1\",\"port\":1}}}}"
    );
    let join = "{\"id\":4242,\"addr\":\"127.0.0.1:1\",\"fresh\":false}".to_string();
    let append = "{\"vote\":{\"leader_id\":{\"term\":99,\"node_id\":4242},\"committed\":true},\
                  \"prev_log_id\":null,\"leader_commit\":null,\"entries\":[]}"
        .to_string();
    [("propose", switch), ("join", join), ("append", append)]
        .into_iter()
        .map(|(op, body)| vec!["RAFTINEL".into(), cluster.into(), op.into(), body])
        .collect()
}

fn send(c: &mut Conn, args: &[String]) -> Resp {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    c.cmd(&a)
}

fn expect_error(r: &Resp, prefix: &str) {
    match r {
        Resp::Error(e) if e.starts_with(prefix) => {}
        other => panic!(
            "expected an error starting with {prefix:?}, got {}",
            other.pretty()
        ),
    }
}

/// What forged RPCs must not change: every daemon's master address, voters
/// and leader.
fn snapshot(g: &Group) -> Vec<(String, String, String)> {
    g.daemons
        .iter()
        .map(|d| {
            (
                d.master_addr(),
                raft(d, "raft_voters"),
                raft(d, "raft_leader_id"),
            )
        })
        .collect()
}

/// Peers authenticate as `peer`; `app` may only ask for the master.
fn acl_lines(peer_pass: &str) -> Vec<String> {
    vec![
        format!("user peer on >{peer_pass} ~* &* +@all"),
        "user app on >app-pass +ping +sentinel|get-master-addr-by-name".into(),
        "sentinel sentinel-user peer".into(),
        format!("sentinel sentinel-pass {peer_pass}"),
    ]
}

#[test]
fn forged_rpcs_from_a_plain_client_and_a_restricted_user_are_refused() {
    let g = Group::with_conf(1, |_| acl_lines("peer-pass"));
    let before = snapshot(&g);
    let d = &g.daemons[0];
    let cluster = raft(d, "raft_cluster_id");
    let r0 = refusals(d);

    // A plain client is `default`, and `default` is not the peers' user.
    let mut plain = d.conn();
    for f in forged(&cluster) {
        let r = send(&mut plain, &f);
        assert_eq!(
            r,
            Resp::Error("NOPERM this user has no permissions to run the 'raftinel' command".into()),
            "{f:?}"
        );
    }
    let mut app = d.conn();
    assert_eq!(
        app.cmd(&["AUTH", "app", "app-pass"]),
        Resp::Status("OK".into())
    );
    for f in forged(&cluster) {
        expect_error(&send(&mut app, &f), "NOPERM");
    }
    let r1 = refusals(d);
    assert_eq!(
        r1[1],
        r0[1] + 6,
        "six refusals counted as auth: {r0:?} -> {r1:?}"
    );
    assert_eq!(r1[0], r0[0] + 6);
    // Like any denied command, in the ACL log (read as the peers' user).
    let mut peer = d.conn();
    assert_eq!(
        peer.cmd(&["AUTH", "peer", "peer-pass"]),
        Resp::Status("OK".into())
    );
    let log = peer.cmd(&["ACL", "LOG"]).pretty();
    assert!(log.contains("raftinel") && log.contains("app"), "{log}");

    // Bad input from the peers' own user: refused, counted, nothing done.
    let big = "x".repeat(17 * 1024 * 1024);
    let bad: Vec<(Vec<&str>, &str)> = vec![
        (vec!["RAFTINEL", &cluster], "ERR wrong number"),
        (
            vec!["RAFTINEL", &cluster, "append", "{not json"],
            "ERR malformed",
        ),
        (
            vec!["RAFTINEL", &cluster, "frobnicate", "{}"],
            "ERR unknown raftinel",
        ),
        (
            vec!["RAFTINEL", &cluster, "append", &big],
            "ERR raftinel request too large",
        ),
        (
            vec!["RAFTINEL", "another-cluster", "vote", "{}"],
            "ERR cluster id mismatch",
        ),
        (
            vec!["RAFTINEL", &cluster, "challenge", "00"],
            "ERR this daemon has no Raft group secret",
        ),
    ];
    for (args, prefix) in &bad {
        expect_error(&peer.cmd(args), prefix);
    }
    let r2 = refusals(d);
    assert_eq!(r2[4], r1[4] + 4, "malformed: {r1:?} -> {r2:?}");
    assert_eq!(r2[3], r1[3] + 1, "cluster: {r1:?} -> {r2:?}");
    assert_eq!(r2[1], r1[1] + 1, "auth: {r1:?} -> {r2:?}");
    // One log line for the whole burst (then at most one a minute).
    let lines = d.log().matches("refused a RAFTINEL request").count();
    assert_eq!(lines, 1, "{}", d.log_tail(30));

    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(snapshot(&g), before, "forged RPCs changed nothing");
    assert_eq!(d.conn().cmd(&["COMMAND", "COUNT"]), Resp::Int(15));
}

/// A session as a peer opens it: challenge, then signed requests.
struct Signer {
    key: SessionKey,
    cluster: String,
}

impl Signer {
    fn open(c: &mut Conn, cluster: &str, secret: &str) -> Signer {
        let secret = GroupSecret::new(secret.as_bytes()).expect("secret");
        let mine = trust::nonce();
        let theirs = c
            .cmd(&["RAFTINEL", cluster, "challenge", &mine])
            .as_str()
            .expect("a server nonce");
        Signer {
            key: SessionKey::derive(&secret, mine.as_bytes(), theirs.as_bytes()),
            cluster: cluster.to_string(),
        }
    }

    fn request(&self, seq: u64, op: &str, body: &str) -> Vec<String> {
        let sig =
            self.key
                .sign_request(seq, self.cluster.as_bytes(), op.as_bytes(), body.as_bytes());
        vec![
            "RAFTINEL".into(),
            self.cluster.clone(),
            op.into(),
            body.into(),
            seq.to_string(),
            sig,
        ]
    }
}

/// With a secret, a client that knows the cluster id (and is even the peers'
/// user, `default` here) but not the secret is refused, and a captured
/// request replayed on its own or another connection is refused too.
#[test]
fn with_a_secret_unsigned_forged_and_replayed_rpcs_are_refused() {
    let secret = new_secret();
    let g = Group::with_env(1, |_| Vec::new(), |_| secret_env(&secret));
    let before = snapshot(&g);
    let d = &g.daemons[0];
    assert_eq!(raft(d, "raft_secret"), "1");
    let cluster = raft(d, "raft_cluster_id");
    let r0 = refusals(d);

    let mut c = d.conn();
    for f in forged(&cluster) {
        assert_eq!(
            send(&mut c, &f),
            Resp::Error("NOAUTH this Raft group requires the group secret".into())
        );
        // Signature-shaped arguments without a challenge.
        let mut f = f.clone();
        f.extend(["1".to_string(), "00".repeat(32)]);
        expect_error(&send(&mut c, &f), "NOAUTH no raftinel challenge");
    }
    // A challenge answered with another secret.
    let wrong = Signer::open(&mut c, &cluster, &new_secret());
    for (i, f) in forged(&cluster).iter().enumerate() {
        let r = send(&mut c, &wrong.request(i as u64 + 1, &f[2], &f[3]));
        expect_error(&r, "NOAUTH raftinel signature mismatch");
    }
    let r1 = refusals(d);
    assert_eq!(r1[1], r0[1] + 9, "{r0:?} -> {r1:?}");

    // The right secret: a status request, its reply signed.
    let mut peer = d.conn();
    let s = Signer::open(&mut peer, &cluster, &secret);
    let status = s.request(1, "status", "null");
    let reply = send(&mut peer, &status);
    let Some([Resp::Bulk(body), Resp::Bulk(sig)]) = reply.items() else {
        panic!("a signed reply: {}", reply.pretty());
    };
    assert!(s.key.verify_reply(1, body, sig), "the reply verifies");
    assert!(String::from_utf8_lossy(body).contains("\"initialized\":true"));
    // The same request again, on the same connection.
    assert_eq!(
        send(&mut peer, &status),
        Resp::Error("ERR replayed raftinel request refused".into())
    );
    // The next number is fine; numbers a little out of order too.
    assert!(send(&mut peer, &s.request(3, "status", "null"))
        .items()
        .is_some());
    assert!(send(&mut peer, &s.request(2, "status", "null"))
        .items()
        .is_some());
    // The captured request on another connection: no session, then another key.
    let mut other = d.conn();
    expect_error(&send(&mut other, &status), "NOAUTH no raftinel challenge");
    let _ = Signer::open(&mut other, &cluster, &secret);
    expect_error(
        &send(&mut other, &status),
        "NOAUTH raftinel signature mismatch",
    );
    // Signed for another cluster.
    let foreign = Signer::open(&mut peer, "another-cluster", &secret);
    expect_error(
        &send(&mut peer, &foreign.request(1, "status", "null")),
        "ERR cluster id mismatch",
    );
    let r2 = refusals(d);
    assert_eq!(r2[2], r1[2] + 1, "replays: {r1:?} -> {r2:?}");
    assert_eq!(r2[1], r1[1] + 2, "auth: {r1:?} -> {r2:?}");
    assert_eq!(r2[3], r1[3] + 1, "cluster: {r1:?} -> {r2:?}");

    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(snapshot(&g), before, "refused RPCs changed nothing");
    // The secret is in no log line and no rewritten file.
    for d in &g.daemons {
        assert!(d
            .log()
            .contains("signed with the group secret from RAFTINEL_SECRET"));
        assert!(!d.log().contains(&secret), "{}", d.log_tail(20));
        assert!(!fs::read_to_string(&d.conf).unwrap().contains(&secret));
    }
}

/// Without a secret the daemon says at start who can act for the group.
#[test]
fn without_a_secret_the_start_warns() {
    let topo = Topology::new(0);
    let d = Daemon::start(&monitor(topo.master.port));
    wait_for(EVENTUALLY, "the start-up warning", || {
        let log = d.log();
        if log.contains(&format!(
            "raft: no group secret ([raft] secret-file or RAFTINEL_SECRET): any client that can \
             reach port {} can act for the Raft group",
            d.port
        )) {
            Ok(())
        } else {
            Err(d.log_tail(20))
        }
    });
    assert_eq!(raft(&d, "raft_secret"), "0");
}

/// `SENTINEL CONFIG SET sentinel-user / sentinel-pass` at run time: the
/// group's RPCs use the new credentials, the old user is deleted, and a
/// failover still commits.
#[test]
fn peer_credentials_changed_at_run_time_keep_the_group_working() {
    let mut g = Group::with_conf(2, |_| acl_lines("old-pass"));
    for d in &g.daemons {
        let mut c = d.conn();
        assert_eq!(
            c.cmd(&[
                "ACL",
                "SETUSER",
                "peer2",
                "on",
                ">new-pass",
                "~*",
                "&*",
                "+@all"
            ]),
            Resp::Status("OK".into())
        );
    }
    for d in &g.daemons {
        let mut c = d.conn();
        for (k, v) in [("sentinel-user", "peer2"), ("sentinel-pass", "new-pass")] {
            assert_eq!(
                c.cmd(&["SENTINEL", "CONFIG", "SET", k, v]),
                Resp::Status("OK".into())
            );
        }
    }
    // The old user goes, and with it every connection authenticated as it.
    for d in &g.daemons {
        assert_eq!(d.conn().cmd(&["ACL", "DELUSER", "peer"]), Resp::Int(1));
    }
    wait_for(BOUND, "the group has a leader again", || {
        let leaders: std::collections::BTreeSet<String> = g
            .daemons
            .iter()
            .map(|d| raft(d, "raft_leader_id"))
            .collect();
        match leaders.len() {
            1 if !leaders.contains("") => Ok(()),
            _ => Err(format!("{leaders:?}")),
        }
    });
    let mut events = g.subscribe(&[0, 1, 2]);
    g.topo.master.sigkill();
    let new_port = g.expect_failover(&[0, 1, 2], &mut events);
    assert_ne!(new_port, g.old_port);
    for d in &g.daemons {
        assert!(
            fs::read_to_string(&d.conf)
                .unwrap()
                .contains("sentinel sentinel-user peer2"),
            "the new user is persisted"
        );
    }
}

/// User and system CPU time of a process so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz.max(1.0)
}

/// Five daemons; one is stopped (SIGSTOP: connections hang, every RPC times
/// out) and one restarted with another secret (it refuses every RPC and is
/// refused). For 60 s the others keep their group and log each peer's
/// failure once (plus at most one reminder), nothing of openraft's.
#[test]
fn a_stopped_and_a_refusing_peer_keep_the_logs_quiet() {
    let topo = Topology::new(1);
    let m = monitor(topo.master.port);
    let secret = new_secret();
    let mut d: Vec<Daemon> = (0..5)
        .map(|_| Daemon::start_with_env(&m, &[], secret_env(&secret)))
        .collect();
    let leader = wait_for(Duration::from_secs(90), "five daemons in one group", || {
        let mut leaders = std::collections::BTreeSet::new();
        for x in &d {
            let info = x.raft_info()?;
            if info.get("raft_voters").map(String::as_str) != Some("5") {
                return Err(format!("{}: {info:?}", x.port));
            }
            leaders.insert(info.get("raft_leader_id").cloned().unwrap_or_default());
        }
        match leaders.into_iter().collect::<Vec<_>>().as_slice() {
            [l] if !l.is_empty() => Ok(l.clone()),
            other => Err(format!("leaders {other:?}")),
        }
    });
    let ids: Vec<String> = d.iter().map(|x| raft(x, "raft_node_id")).collect();
    let lead = ids
        .iter()
        .position(|i| *i == leader)
        .expect("leader is one of us");
    let others: Vec<usize> = (0..5).filter(|&i| i != lead).collect();
    let (stopped, refusing) = (others[0], others[1]);

    d[stopped].signal(libc::SIGSTOP);
    d[refusing].sigkill();
    d[refusing].env = secret_env(&new_secret());
    d[refusing].launch();
    let live: Vec<usize> = (0..5).filter(|&i| i != stopped).collect();
    let lines = |x: &Daemon| x.log().lines().count();
    let start: Vec<(usize, f64)> = live
        .iter()
        .map(|&i| (lines(&d[i]), cpu_seconds(d[i].child.as_ref().unwrap().id())))
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    let took = t0.elapsed().as_secs_f64();
    let mut report = String::new();
    for (k, &i) in live.iter().enumerate() {
        let x = &d[i];
        let new_lines = lines(x) - start[k].0;
        let cpu = cpu_seconds(x.child.as_ref().unwrap().id()) - start[k].1;
        let role = match i {
            _ if i == lead => "leader",
            _ if i == refusing => "refusing",
            _ => "follower",
        };
        report.push_str(&format!(
            "daemon {} ({role}): {new_lines} log lines, {cpu:.2} s CPU in {took:.0} s\n",
            x.port
        ));
        let log = x.log();
        for bad in ["RPCError", "update progress error", "backoff mode"] {
            assert!(
                !log.contains(bad),
                "daemon {} logs {bad:?}:\n{}",
                x.port,
                x.log_tail(40)
            );
        }
        assert!(
            new_lines <= 30,
            "daemon {} wrote {new_lines} lines:\n{}",
            x.port,
            x.log_tail(40)
        );
    }
    eprintln!("{report}");
    // The leader reported each failing peer once, and at most once more a
    // minute later.
    let leader_log = d[lead].log();
    for i in [stopped, refusing] {
        let n = leader_log
            .matches(&format!("+raft-peer-down {} ", ids[i]))
            .count();
        assert!(
            (1..=2).contains(&n),
            "peer {}: {n} reports\n{leader_log}",
            ids[i]
        );
    }
    // The three left keep the group (3 of 5 voters).
    for &i in &live {
        if i != refusing {
            assert_eq!(
                raft(&d[i], "raft_leader_id"),
                leader,
                "daemon {}",
                d[i].port
            );
        }
    }
    d[stopped].signal(libc::SIGCONT);
}

/// Runs the daemon on `toml` with `env`; returns its exit status and stderr.
/// Panics if it is still running after 15 s or ever bound `port`.
fn bad_start(dir: &Path, port: u16, toml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let conf = dir.join("raftinel.toml");
    fs::write(&conf, toml).expect("write raftinel.toml");
    let stderr = dir.join("stderr.log");
    let mut child = Command::new(raftinel_bin())
        .arg(&conf)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn raftinel");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        assert!(!port_open(port), "port {port} bound before a config error");
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 15 s after a bad secret:\n{toml}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        fs::read_to_string(&stderr).unwrap_or_default(),
    )
}

#[test]
fn bad_secrets_stop_the_start_with_status_64() {
    let dir = tempfile::Builder::new()
        .prefix("it-trust-")
        .tempdir()
        .expect("tempdir");
    let port = free_port();
    let toml = |file: &str| {
        format!(
            "[server]\nport = {port}\nbind = [\"127.0.0.1\"]\n\n\
             [[masters]]\nname = \"{MASTER}\"\nhost = \"127.0.0.1\"\nport = 6379\nquorum = 1\n\n\
             [raft]\nsecret-file = \"{file}\"\n"
        )
    };
    fs::write(dir.path().join("empty"), "\n").unwrap();
    fs::write(dir.path().join("short"), "abc\n").unwrap();
    fs::write(dir.path().join("good"), new_secret()).unwrap();
    fs::create_dir(dir.path().join("adir")).unwrap();
    // (raftinel.toml, environment, what stderr says)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case> = vec![
        (
            toml("missing"),
            vec![],
            "raftinel.toml:12: secret-file: can't read the group secret file 'missing': No such file or directory".into(),
        ),
        (
            toml("adir"),
            vec![],
            "raftinel.toml:12: secret-file: can't read the group secret file 'adir': Is a directory".into(),
        ),
        (
            toml("empty"),
            vec![],
            "raftinel.toml:12: secret-file: 'empty': the group secret is empty".into(),
        ),
        (
            toml("short"),
            vec![],
            "raftinel.toml:12: secret-file: 'short': the group secret is 3 bytes long; at least 16 are needed".into(),
        ),
        (
            toml("good"),
            vec![("RAFTINEL_SECRET", "0123456789abcdef0123")],
            "raftinel.toml:12: secret-file: RAFTINEL_SECRET is set too".into(),
        ),
        (
            toml("good").replace("secret-file = \"good\"\n", ""),
            vec![("RAFTINEL_SECRET", "short")],
            "RAFTINEL_SECRET: the group secret is 5 bytes long".into(),
        ),
    ];
    for (text, env, expected) in cases {
        let (code, stderr) = bad_start(dir.path(), port, &text, &env);
        assert_eq!(code, Some(64), "{stderr}\n{text}");
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
}
