//! Failover through Raft with real processes: three raftinel daemons (quorum
//! 2) watching one `redis-server` master and two replicas, down-after 1000 ms,
//! failover-timeout 10 s. Masters are SIGKILLed, SIGSTOPped, daemons killed or
//! restarted, manual and coordinated failovers requested, and our own writer
//! runs through them (real clients' writers are in `clients_failover`).
//!
//! Assertions are about outcomes — who is master, what every daemon answers
//! and publishes, which writes survive — never about how long it took; every
//! wait is bounded by a generous deadline. The group of daemons (`Group`,
//! `Daemon`, `Events`) is in `harness::group`, shared with the client tests.

use crate::harness::group::*;
use crate::harness::*;
use std::collections::BTreeSet;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- tests

/// Case 1: Master SIGKILLed: every daemon switches once to the same former
/// replica, the data nodes follow, the restarted old master is demoted.
#[test]
fn sigkill_master_fails_over() {
    let mut g = Group::new();
    let mut ev = g.subscribe(&[0, 1, 2]);
    g.topo.master.sigkill();
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    // Every daemon publishes what the log committed; SDOWN is each daemon's
    // own view (a slow observer may switch before its own down-after), but
    // the committed down votes mean at least `quorum` daemons saw it.
    for e in &ev {
        for ch in ["+new-epoch", "+vote-for-leader"] {
            assert!(
                e.count(ch) >= 1,
                "daemon {} published no {ch}:\n{}",
                e.port,
                e.dump()
            );
        }
    }
    let sdown = format!("master {MASTER} 127.0.0.1 {}", g.old_port);
    let saw = |ch: &str| {
        ev.iter()
            .filter(|e| e.find(ch, &|p| p.starts_with(&sdown)).is_some())
            .count()
    };
    let all: String = ev
        .iter()
        .map(|e| format!("daemon {}:\n{}", e.port, e.dump()))
        .collect();
    assert!(
        saw("+sdown") >= QUORUM as usize,
        "+sdown on fewer than quorum daemons:\n{all}"
    );
    assert!(saw("+odown") >= 1, "+odown on no daemon:\n{all}");
    g.topo.master.restart();
    g.expect_old_master_demoted(&mut ev, new_port);
    expect_switch_once(&g, &[0, 1, 2], &mut ev);
    let want = format!("sentinel monitor {MASTER} 127.0.0.1 {new_port} {QUORUM}");
    for d in &g.daemons {
        wait_for(
            BOUND,
            &format!("daemon {} persisted the new master", d.port),
            || {
                let text = fs::read_to_string(&d.conf).unwrap_or_default();
                if text.lines().any(|l| l == want) {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        );
    }
}

/// Case 2: Master SIGSTOPped: the same failover; SIGCONT → the old master is demoted.
#[test]
fn sigstop_master_fails_over_and_is_demoted_on_sigcont() {
    let g = Group::new();
    let mut ev = g.subscribe(&[0, 1, 2]);
    g.topo.master.sigstop();
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    g.topo.master.sigcont();
    g.expect_old_master_demoted(&mut ev, new_port);
    expect_switch_once(&g, &[0, 1, 2], &mut ev);
}

/// Case 2b: with `refused-down-after-milliseconds` (raftinel's opt-in fast
/// crash detection), a SIGKILLed master, whose host refuses connections, is
/// failed over long before down-after: down-after is ten minutes here, so a
/// failover within the test's bound comes from the refusals seen by every
/// daemon.
#[test]
fn refused_connections_fail_a_killed_master_over_before_down_after() {
    let mut g = Group::with_conf(2, |_| {
        vec![
            format!("sentinel down-after-milliseconds {MASTER} 600000"),
            format!("sentinel refused-down-after-milliseconds {MASTER} 250"),
        ]
    });
    let mut ev = g.subscribe(&[0, 1, 2]);
    g.topo.master.sigkill();
    g.expect_failover(&[0, 1, 2], &mut ev);
}

/// A master restarted in place without its data before down-after (a
/// supervisor or a kubelet restarting a Redis without persistence): its
/// replicas still hold the data while Redis waits `repl-diskless-sync-delay`
/// (5 s by default) before it sends them the empty dataset. Down-after is
/// ten minutes here, so a failover within the test's bound comes from the
/// back-empty rule: the group fails the master over at once to a replica on
/// the recorded history, and every node, the old master included, ends
/// with the data.
#[test]
fn a_master_back_empty_before_down_after_is_failed_over_to_its_data() {
    let (mut g, mut ev) = group_with_recorded_data();
    let restarted = Instant::now();
    g.topo.master.restart();
    let answering = restarted.elapsed();
    let old = format!("master {MASTER} 127.0.0.1 {}", g.old_port);
    let mut refs: Vec<&mut Events> = ev.iter_mut().collect();
    wait_any(&mut refs, "+master-back-empty", &|p| p == old, BOUND);
    let seen = restarted.elapsed();
    // Its writes are paused: a write sent to it now is never acknowledged
    // (it waits, then is refused once the node is demoted, or its
    // connection is killed by the demotion); and a daemon that paused it
    // does not name it any more (its answer waits for the switch, at most
    // 1.5 s: a slower switch is then answered with the paused node).
    wait_any(&mut refs, "+fence", &|p| p == old, BOUND);
    let paused = restarted.elapsed();
    let mut late = g.topo.master.conn();
    let writer = std::thread::spawn(move || late.try_cmd(&["SET", "late", "1"], BOUND));
    let old_addr = addr(g.old_port);
    for (i, e) in ev.iter().enumerate() {
        if e.find("+fence", &|p| p == old).is_some() {
            let asked = Instant::now();
            let answer = g.daemons[i].master_addr();
            assert!(
                answer != old_addr || asked.elapsed() >= Duration::from_millis(1400),
                "daemon {i} named the paused master at once"
            );
        }
    }
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    eprintln!(
        "master back empty: answering PING {} ms, seen {} ms, paused {} ms, every daemon answers the new master {} ms after the kill",
        answering.as_millis(),
        seen.as_millis(),
        paused.as_millis(),
        restarted.elapsed().as_millis()
    );
    g.expect_old_master_demoted(&mut ev, new_port);
    let late = writer.join().expect("writer thread");
    let fenced: Vec<usize> = (0..3)
        .filter(|&i| ev[i].find("+fence", &|p| p == old).is_some())
        .collect();
    eprintln!(
        "daemons that paused it: {fenced:?}; the write sent after +fence: {}",
        late.describe().trim_end()
    );
    match late {
        Reply::Closed => {}
        Reply::Frame(Resp::Error(e)) if e.starts_with("READONLY") => {}
        other => panic!(
            "a write to the master back empty, after +fence: {}",
            other.describe()
        ),
    }
    for node in std::iter::once(&g.topo.master).chain(&g.topo.replicas) {
        wait_keys(node, "every node holds the data");
    }
}

/// The same restart with disk-based replication (`repl-diskless-sync no`):
/// the empty master's snapshot is ready at once, and a replica that
/// reconnects before the switch (Redis's replication cron retries every
/// second) takes it. Whatever the race gives, no replica that took the empty
/// dataset is promoted: either the group fails over to one that still held
/// the data (every node holds it afterwards), or, nothing left to save, every
/// daemon that saw it back empty lets go and it stays the master.
#[test]
fn a_master_back_empty_with_disk_sync_never_promotes_an_empty_replica() {
    let (mut g, mut ev) = group_with_recorded_data();
    g.topo.master.restart_with(&["--repl-diskless-sync", "no"]);
    let old = format!("master {MASTER} 127.0.0.1 {}", g.old_port);
    let mut refs: Vec<&mut Events> = ev.iter_mut().collect();
    wait_any(&mut refs, "+master-back-empty", &|p| p == old, BOUND);
    let deadline = Instant::now() + BOUND;
    let switched = loop {
        if ev.iter().any(|e| e.count("+switch-master") > 0) {
            break true;
        }
        let saw = |e: &Events, ch: &str| e.find(ch, &|p| p == old).is_some();
        if ev
            .iter()
            .all(|e| !saw(e, "+master-back-empty") || saw(e, "-master-back-empty"))
        {
            break false;
        }
        assert!(
            Instant::now() < deadline,
            "neither a switch nor the rule let go:\n{}",
            ev.iter().map(Events::dump).collect::<String>()
        );
        for e in ev.iter_mut() {
            e.poll(Duration::from_millis(50));
        }
    };
    eprintln!(
        "master back empty with disk-based sync: {}",
        if switched {
            "failed over to a replica that held the data"
        } else {
            "every replica took the empty dataset, the rule let go"
        }
    );
    if switched {
        let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
        g.expect_old_master_demoted(&mut ev, new_port);
        for node in std::iter::once(&g.topo.master).chain(&g.topo.replicas) {
            wait_keys(node, "every node holds the data");
        }
        return;
    }
    let old_addr = addr(g.old_port);
    for (i, d) in g.daemons.iter().enumerate() {
        assert_eq!(d.master_addr(), old_addr, "daemon {i}");
    }
    for r in &g.topo.replicas {
        assert_eq!(role(r), "slave", "replica {} was promoted", r.port);
    }
}

/// A group whose down-after is ten minutes (a failover within a test's
/// bound comes from the back-empty rule), its data recorded
/// (`seed_recorded_data`), subscribed to every daemon.
fn group_with_recorded_data() -> (Group, Vec<Events>) {
    let g = Group::with_conf(2, |_| {
        vec![format!("sentinel down-after-milliseconds {MASTER} 600000")]
    });
    seed_recorded_data(&g);
    let ev = g.subscribe(&[0, 1, 2]);
    (g, ev)
}

/// 100 keys written to the master and held by every replica, then 3 s for
/// the Raft leader to record the master's history (within a second or so
/// of seeing the data).
fn seed_recorded_data(g: &Group) {
    let mut c = g.topo.master.conn();
    for i in 0..100 {
        assert_eq!(
            c.cmd(&["SET", &format!("k{i}"), "v"]),
            Resp::Status("OK".into())
        );
    }
    for r in &g.topo.replicas {
        wait_keys(r, "the replicas hold the data");
    }
    std::thread::sleep(Duration::from_secs(3));
}

/// Waits until `node` holds the 100 keys of `seed_recorded_data`.
fn wait_keys(node: &RedisNode, what: &str) {
    wait_for(BOUND, what, || match node.try_cmd(&["DBSIZE"])? {
        Resp::Int(100) => Ok(()),
        other => Err(format!("node {}: {other:?}", node.port)),
    });
}

/// Case 3: Two of three daemons killed, then the master: the survivor is a
/// minority and never fails over; it keeps answering the old master.
#[test]
fn minority_never_fails_over() {
    let mut g = Group::new();
    let mut ev = g.subscribe(&[2]);
    g.daemons[0].sigkill();
    g.daemons[1].sigkill();
    g.topo.master.sigkill();
    let old = addr(g.old_port);
    let sdown = format!("master {MASTER} 127.0.0.1 {}", g.old_port);
    ev[0].wait("+sdown", &|p| p == sdown, BOUND);
    // Observe well beyond down-after (the failover would have been done by
    // then with a majority): nothing may change.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert_eq!(
            g.daemons[2].master_addr(),
            old,
            "the minority daemon changed the master address"
        );
        for r in &g.topo.replicas {
            assert_eq!(role(r), "slave", "replica {} was promoted", r.port);
        }
        ev[0].poll(Duration::from_millis(250));
    }
    for ch in [
        "+switch-master",
        "+selected-slave",
        "+promoted-slave",
        "+failover-state-send-slaveof-noone",
    ] {
        assert_eq!(
            ev[0].count(ch),
            0,
            "the minority daemon published {ch}:\n{}",
            ev[0].dump()
        );
    }
}

/// Case 4: A daemon stopped (SIGTERM) during a failover and started again on the
/// same config and dir keeps its myid and Raft state and agrees on the new master.
#[test]
fn restarted_daemon_keeps_identity_and_catches_up() {
    let mut g = Group::new();
    // Restart a daemon that joined (the bootstrapping one is test 5's).
    let k = (0..3)
        .find(|&i| !g.daemons[i].bootstrapped())
        .expect("two daemons joined the group");
    let others: Vec<usize> = (0..3).filter(|&i| i != k).collect();
    let myid = g.daemons[k].myid();
    let raft_id = g.daemons[k].raft_node_id();
    assert!(raft_id.is_some(), "raft status of daemon {k}");
    let st = g.daemons[k].sigterm();
    assert!(
        st.is_some_and(|s| s.success()),
        "daemon exits cleanly on SIGTERM: {st:?}"
    );
    let files = g.daemons[k].raft_files();
    assert!(
        files.iter().any(|(_, len)| *len > 0),
        "Raft data under <dir>/raftinel*/raft/ after a stop: {files:?}"
    );

    let mut ev = g.subscribe(&others);
    g.topo.master.sigkill();
    let new_port = g.expect_failover(&others, &mut ev);

    g.daemons[k].launch();
    let d = &g.daemons[k];
    assert_eq!(d.myid(), myid, "myid survives a restart");
    wait_for(BOUND, "the restarted daemon answers the new master", || {
        let a = d.master_addr();
        if a == addr(new_port) {
            Ok(())
        } else {
            Err(a)
        }
    });
    wait_for(BOUND, "the restarted daemon is back in the group", || {
        d.raft_member_of_three().map(|_| ())
    });
    assert_eq!(d.raft_node_id(), raft_id, "Raft node id survives a restart");
    let second = d.log_of(1);
    assert!(
        !second.contains("raft: bootstrapped") && !second.contains("raft: joined the group"),
        "a restarted member neither bootstraps nor joins again:\n{second}"
    );
    wait_for(BOUND, "all three daemons report one config epoch", || {
        let epochs: BTreeSet<String> = (0..3)
            .map(|i| {
                g.daemons[i]
                    .master_field("config-epoch")
                    .unwrap_or_default()
            })
            .collect();
        if epochs.len() == 1 {
            Ok(())
        } else {
            Err(format!("{epochs:?}"))
        }
    });
    // The restart caused no second failover.
    for i in 0..3 {
        assert_eq!(g.daemons[i].master_addr(), addr(new_port));
    }
    let promoted = g.topo.node(new_port);
    assert_eq!(role(promoted), "master");
}

/// Case 5: The Raft leader killed together with the master: the two survivors
/// elect a new leader and fail over.
#[test]
fn raft_leader_killed_with_master() {
    let mut g = Group::new();
    let l = g.raft_leader();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let mut ev = g.subscribe(&survivors);
    g.daemons[l].sigkill();
    g.topo.master.sigkill();
    let _new_port = g.expect_failover(&survivors, &mut ev);
    expect_switch_once(&g, &survivors, &mut ev);
}

/// `SENTINEL SIMULATE-FAILURE crash-after-election` on the Raft leader: it
/// logs Sentinel's crash line and exits with status 99 right after
/// `+elected-leader`; the two others take the committed failover over and
/// finish it.
#[test]
fn simulated_crash_after_election_is_taken_over() {
    let mut g = Group::new();
    let l = g.raft_leader();
    let reply = g.daemons[l]
        .conn()
        .cmd(&["SENTINEL", "SIMULATE-FAILURE", "crash-after-election"]);
    assert_eq!(reply, Resp::Status("OK".into()));
    let survivors: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let mut ev = g.subscribe(&survivors);
    g.topo.master.sigkill();
    let status = wait_for(BOUND, "the elected daemon exits", || {
        match g.daemons[l].child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => Ok(st),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(status.code(), Some(99), "{}", g.daemons[l].log_tail(20));
    let log = g.daemons[l].log();
    assert!(
        log.contains("Sentinel CRASH because of SENTINEL simulate-failure"),
        "{}",
        g.daemons[l].log_tail(20)
    );
    let _new_port = g.expect_failover(&survivors, &mut ev);
}

/// Send `SENTINEL FAILOVER` until the group can take it: `-NOQUORUM` only
/// means the master is not registered in the group yet.
fn request_failover(d: &Daemon) -> Resp {
    wait_for(BOUND, "SENTINEL FAILOVER accepted or refused", || {
        let r = d.conn().cmd(&["SENTINEL", "FAILOVER", MASTER]);
        match &r {
            Resp::Error(e) if e.starts_with("NOQUORUM") => Err(e.clone()),
            _ => Ok(r),
        }
    })
}

/// Case 6: plain `SENTINEL FAILOVER` (`coordinated-failover no`): +OK,
/// -INPROG while it runs, every daemon switches, the old (running) master
/// keeps its clients until every daemon published `+switch-master`, then is
/// demoted.
#[test]
fn manual_failover_switches_every_daemon() {
    let g = Group::new();
    g.set_coordinated(&[0, 1, 2], "no");
    let mut ev = g.subscribe(&[0, 1, 2]);
    let mut client = g.old_master_client();
    let mut c = g.daemons[1].conn();
    let first = request_failover(&g.daemons[1]);
    assert_eq!(first, Resp::Status("OK".into()), "SENTINEL FAILOVER");
    assert_eq!(
        c.cmd(&["SENTINEL", "FAILOVER", MASTER]),
        Resp::Error("INPROG Failover already in progress".into()),
        "a second SENTINEL FAILOVER while the first runs"
    );
    g.expect_killed_after_switch(&mut client, &mut ev);
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    g.expect_old_master_demoted(&mut ev, new_port);
    expect_switch_once(&g, &[0, 1, 2], &mut ev);
}

/// Case 6b: `SENTINEL FAILOVER` with no suitable replica (the only one has
/// replica-priority 0): -NOGOODSLAVE, nothing changes.
#[test]
fn manual_failover_without_good_replica() {
    let g = Group::with_replicas(1);
    let r = &g.topo.replicas[0];
    assert_eq!(
        r.conn().cmd(&["CONFIG", "SET", "replica-priority", "0"]),
        Resp::Status("OK".into())
    );
    for d in &g.daemons {
        wait_for(BOUND, "daemons see replica-priority 0", || {
            let p = d.replicas().first().and_then(|r| r.field("slave-priority"));
            if p.as_deref() == Some("0") {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        });
    }
    assert_eq!(
        g.daemons[0].conn().cmd(&["SENTINEL", "FAILOVER", MASTER]),
        Resp::Error("NOGOODSLAVE No suitable replica to promote".into())
    );
    for d in &g.daemons {
        assert_eq!(d.master_addr(), addr(g.old_port));
    }
    assert_eq!(role(&g.topo.master), "master");
    assert_eq!(role(r), "slave");
}

/// A writer: acknowledged `RPUSH`es of increasing integers (and `INCR`s)
/// against the master named by a daemon, re-resolving on any error.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<WriterLog>,
}

#[derive(Default, Debug)]
struct WriterLog {
    /// (value pushed, port that acknowledged it)
    pushed: Vec<(u64, u16)>,
    /// Largest acknowledged INCR reply.
    max_incr: i64,
    errors: Vec<String>,
}

const LIST: &str = "it-failover-list";
const COUNTER: &str = "it-failover-counter";

impl Writer {
    fn start(sentinel_port: u16) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut log = WriterLog::default();
            let mut next = 0u64;
            let mut conn: Option<Conn> = None;
            while !flag.load(Ordering::SeqCst) {
                if conn.is_none() {
                    let a = Conn::connect(sentinel_port).ok().and_then(|mut s| {
                        match s.try_cmd(
                            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER],
                            Duration::from_secs(2),
                        ) {
                            Reply::Frame(r) => r
                                .items()
                                .and_then(|i| i.get(1))
                                .and_then(|p| p.as_str())
                                .and_then(|p| p.parse::<u16>().ok()),
                            _ => None,
                        }
                    });
                    conn = a.and_then(|p| Conn::connect(p).ok());
                    if conn.is_none() {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let port = c.port;
                next += 1;
                let v = next.to_string();
                let pushed = c.try_cmd(&["RPUSH", LIST, &v], Duration::from_secs(2));
                let incr = match &pushed {
                    Reply::Frame(Resp::Int(_)) => {
                        log.pushed.push((next, port));
                        c.try_cmd(&["INCR", COUNTER], Duration::from_secs(2))
                    }
                    other => other.clone(),
                };
                match incr {
                    Reply::Frame(Resp::Int(n)) => log.max_incr = log.max_incr.max(n),
                    other => {
                        if log.errors.len() < 50 {
                            log.errors
                                .push(format!("{port}: {}", other.describe().trim_end()));
                        }
                        conn = None;
                    }
                }
            }
            log
        });
        Writer { stop, handle }
    }

    fn finish(self) -> WriterLog {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("writer thread")
    }
}

/// Case 7: Coordinated manual failover (the default of `SENTINEL
/// FAILOVER`; set explicitly on one daemon, the group carries it): writes
/// paused on the old master until the replica caught up and until every
/// daemon published the switch, so every acknowledged write is on the new
/// master and the old master's clients are killed only after the switch.
#[test]
fn coordinated_failover_loses_no_acknowledged_write() {
    let g = Group::new();
    g.set_coordinated(&[1], "yes");
    let mut ev = g.subscribe(&[0, 1, 2]);
    let mut client = g.old_master_client();
    let writer = Writer::start(g.daemons[0].port);
    // Some writes acknowledged by the old master before the switch.
    wait_for(BOUND, "writes acknowledged by the old master", || {
        match g.topo.master.try_cmd(&["LLEN", LIST])?.as_int() {
            Some(n) if n >= 200 => Ok(()),
            other => Err(format!("LLEN {other:?}")),
        }
    });
    let first = request_failover(&g.daemons[2]);
    assert_eq!(first, Resp::Status("OK".into()), "SENTINEL FAILOVER");
    g.expect_killed_after_switch(&mut client, &mut ev);
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    let new_master = g.topo.node(new_port);
    // The writer reached the new master and wrote there for a while.
    let before = new_master.conn().cmd(&["LLEN", LIST]).as_int().unwrap_or(0);
    wait_for(
        BOUND,
        "the writer writes to the new master",
        || match new_master.try_cmd(&["LLEN", LIST])?.as_int() {
            Some(n) if n >= before + 200 => Ok(()),
            other => Err(format!("LLEN {other:?} (before {before})")),
        },
    );
    let log = writer.finish();
    let on_old = log.pushed.iter().filter(|(_, p)| *p == g.old_port).count();
    let on_new = log.pushed.iter().filter(|(_, p)| *p == new_port).count();
    assert!(
        on_old > 0 && on_new > 0,
        "writes acknowledged by the old ({on_old}) and the new ({on_new}) master"
    );
    let list = new_master.conn().cmd(&["LRANGE", LIST, "0", "-1"]);
    let have: BTreeSet<u64> = list
        .items()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
        .collect();
    let lost: Vec<&(u64, u16)> = log
        .pushed
        .iter()
        .filter(|(v, _)| !have.contains(v))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged RPUSH(es) missing on the new master {new_port} (value, acknowledging port), first ones: {:?}; writer errors: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)],
        log.errors
    );
    let counter = new_master
        .conn()
        .cmd(&["GET", COUNTER])
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    assert!(
        counter >= log.max_incr,
        "counter on the new master {counter} < largest acknowledged INCR {}",
        log.max_incr
    );
    // Made a replica of the new one once the switch was published.
    g.expect_old_master_demoted(&mut ev, new_port);
    // It was paused for writes (CLIENT PAUSE) and released (CLIENT UNPAUSE).
    wait_for(BOUND, "the old master was paused and unpaused", || {
        let stats = g.topo.master.info("commandstats");
        let calls = |cmd: &str| {
            info_field(&stats, &format!("cmdstat_client|{cmd}"))
                .and_then(|v| {
                    v.split(',')
                        .find_map(|kv| kv.strip_prefix("calls="))
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        if calls("pause") >= 1 && calls("unpause") >= 1 {
            Ok(())
        } else {
            Err(stats)
        }
    });
    expect_switch_once(&g, &[0, 1, 2], &mut ev);
}

/// The operator's override, end to end: the group recorded the master's
/// history (it held data, replicated); the master dies and both replicas
/// come back without their data. No replica is promoted, each being empty on
/// a new history (`-failover-abort-no-good-slave`); `SENTINEL FAILOVER
/// <master> FORCE` accepts the loss and promotes one, on every daemon.
#[test]
fn force_promotes_an_empty_replica_only_when_asked() {
    let mut g = Group::new();
    seed_recorded_data(&g);
    let mut ev = g.subscribe(&[0, 1, 2]);
    g.topo.master.sigkill();
    let old = g.old_port.to_string();
    for r in &mut g.topo.replicas {
        r.restart_with(&["--replicaof", "127.0.0.1", &old]);
    }
    // Replicas of the dead master, empty, on a new history: refused.
    let leader = g.raft_leader();
    ev[leader].wait("-failover-abort-no-good-slave", &|_| true, BOUND);
    for d in &g.daemons {
        assert_eq!(d.master_addr(), addr(g.old_port), "nothing promoted");
    }
    // Every daemon says why, in SENTINEL MASTER's last field.
    for d in &g.daemons {
        wait_for(BOUND, "failover-wait on every daemon", || {
            match d.master_field("failover-wait") {
                Some(w) if w.contains("offset 0 while the master's offset is") => Ok(()),
                other => Err(format!("daemon {}: {other:?}", d.port)),
            }
        });
    }
    for r in &g.topo.replicas {
        assert_eq!(
            r.conn().cmd(&["DBSIZE"]),
            Resp::Int(0),
            "{} is empty",
            r.port
        );
    }
    // The override, retried while an automatic attempt is under way.
    let reply = wait_for(BOUND, "SENTINEL FAILOVER FORCE accepted", || {
        let r = g.daemons[0]
            .conn()
            .cmd(&["SENTINEL", "FAILOVER", MASTER, "FORCE"]);
        match &r {
            Resp::Error(e) if e.starts_with("INPROG") || e.starts_with("NOQUORUM") => {
                Err(e.clone())
            }
            // Selection judges the replicas as this daemon sees them at that
            // moment (a PING or INFO late on a loaded machine): retried, and
            // what the daemon saw is kept for a failure's message.
            Resp::Error(e) if e.starts_with("NOGOODSLAVE") => {
                let seen = g.daemons[0].conn().cmd(&["SENTINEL", "REPLICAS", MASTER]);
                Err(format!("{e}; SENTINEL REPLICAS: {seen:?}"))
            }
            _ => Ok(r),
        }
    });
    assert_eq!(reply, Resp::Status("OK".into()));
    let new_port = g.expect_failover(&[0, 1, 2], &mut ev);
    assert_eq!(role(g.topo.node(new_port)), "master");
}
