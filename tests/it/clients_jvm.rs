//! The JVM clients Spring applications use with Sentinel, run for real
//! through real failovers: Jedis 4.4.8 (`JedisSentinelPool`) and Lettuce
//! 6.2.7 (a plain sentinel connection, as Spring's LettuceConnectionFactory
//! opens it by default, and `MasterReplica`), from `../shared/clients/jvm`
//! (jars built from their release sources) with Debian's class path.
//! `tests/clients/jvm/FailoverClients.java` is compiled by the test with
//! javac into the target directory; it writes continuously from each client
//! and logs which node acknowledged every write (`W <seq> <port> <ms>`).
//!
//! Against a three-daemon raftinel group (one master, two replicas): a
//! SIGKILL of the master, a `SENTINEL FAILOVER` (a coordinated switchover by
//! default), a plain one (`coordinated-failover no`, Sentinel's), an
//! explicitly coordinated switchover, a second SIGKILL, then ten
//! `SENTINEL FAILOVER`s in a row. After each, every client must write to the
//! master every daemon names. At the end, for each client: it ends on that
//! master; no write was acknowledged by a node after the group had moved
//! away from it (but the old master of the plain failover, until the client
//! wrote to the new one: those writes are lost by design and counted); no
//! write acknowledged before a planned switchover is missing; the recovery
//! time of each failover (last write acknowledged by the old master to
//! first by the new one) is printed, not asserted.
//!
//! The same clients through one `SENTINEL FAILOVER` of three real
//! redis-sentinel 7.0.15 processes, where the difference shows (it demotes
//! the old master about 10 s later and loses the writes taken meanwhile):
//! printed side by side, only the clients' convergence asserted.
//!
//! Missing java, javac or a jar: a skip line, or a failure when `CI` is set.
//! `RAFTINEL_JVM_DEBUG=1` prints the daemons' logs after the raftinel run.

use crate::clients::run_bounded;
use crate::clients_failover::ClientRun;
use crate::harness::group::*;
use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Writes a client must have acknowledged by a new master before the test
/// says it followed.
const WRITES_AFTER_SWITCH: usize = 20;
/// `SENTINEL FAILOVER`s in a row after the scripted sequence.
const MANUAL_ROUNDS: usize = 10;

const CLIENTS: [&str; 3] = ["jedis", "lettuce", "lettuce-mr"];

/// The jars of `../shared/clients/jvm` and Debian's `/usr/share/java` the
/// clients need (their README lists them).
const SHARED_JARS: &[&str] = &[
    "jedis-4.4.8.jar",
    "lettuce-core-6.2.7.jar",
    "reactor-core-3.4.32.jar",
];
const DEBIAN_JARS: &[&str] = &[
    "commons-pool2.jar",
    "slf4j-api.jar",
    "gson.jar",
    "json.jar",
    "reactive-streams.jar",
    "netty-common.jar",
    "netty-buffer.jar",
    "netty-transport.jar",
    "netty-handler.jar",
    "netty-codec.jar",
    "netty-resolver.jar",
    "netty-resolver-dns.jar",
    "netty-codec-dns.jar",
    "netty-transport-native-unix-common.jar",
];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------- the program

/// The compiled program's class path (compiled once per test run), or why
/// it cannot run here.
fn classpath() -> Result<String, String> {
    static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Result<String, String> {
    let (Some(javac), Some(_)) = (which("javac"), which("java")) else {
        return Err("java and javac (Debian default-jdk-headless)".into());
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/clients/jvm");
    let mut jars: Vec<PathBuf> = SHARED_JARS.iter().map(|j| shared.join(j)).collect();
    jars.extend(
        DEBIAN_JARS
            .iter()
            .map(|j| Path::new("/usr/share/java").join(j)),
    );
    if let Some(missing) = jars.iter().find(|j| !j.is_file()) {
        return Err(format!(
            "{} (../shared/clients/jvm and the Debian packages of its README; .ci/deps installs them)",
            missing.display()
        ));
    }
    let cp: Vec<String> = jars.iter().map(|j| j.display().to_string()).collect();
    let cp = cp.join(":");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("jvm-clients");
    fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut cmd = Command::new(javac);
    cmd.arg("-d")
        .arg(&out)
        .arg("-cp")
        .arg(&cp)
        .arg(root.join("tests/clients/jvm/FailoverClients.java"));
    let run = run_bounded(cmd, Duration::from_secs(180));
    assert_eq!(
        run.code,
        Some(0),
        "javac FailoverClients.java failed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    Ok(format!("{}:{cp}", out.display()))
}

/// Whether the JVM clients can run (else a skip line, or a failure under CI).
fn available() -> Option<String> {
    match classpath() {
        Ok(cp) => Some(cp),
        Err(what) => {
            skip_or_fail(&what);
            None
        }
    }
}

/// One acknowledged write.
#[derive(Clone, Copy, Debug)]
struct Ack {
    seq: u64,
    port: u16,
    at: u64,
}

/// `FailoverClients` running in the background (`ClientRun`: a temp dir for
/// its logs, the stop file, killed on drop).
struct JvmRun {
    run: ClientRun,
}

impl JvmRun {
    fn start(cp: &str, sentinels: &[u16]) -> JvmRun {
        let list: Vec<String> = sentinels.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut cmd = Command::new("java");
        cmd.arg("-Xmx256m")
            .arg("-cp")
            .arg(cp)
            .arg("FailoverClients")
            .arg("--sentinels")
            .arg(list.join(","))
            .arg("--master")
            .arg(MASTER)
            .arg("--clients")
            .arg(CLIENTS.join(","))
            .arg("--deadline")
            .arg("900");
        JvmRun {
            run: ClientRun::spawn("java FailoverClients", cmd),
        }
    }

    fn read(&self, f: &str) -> String {
        self.run.read(f)
    }

    /// The complete lines of a client's log.
    fn lines(&self, client: &str) -> Vec<String> {
        let text = self.read(&format!("{client}.log"));
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete.lines().map(str::to_string).collect()
    }

    fn acks(&self, client: &str) -> Vec<Ack> {
        self.lines(client)
            .iter()
            .filter_map(|l| {
                let w: Vec<&str> = l.split(' ').collect();
                match w.as_slice() {
                    ["W", seq, port, at] => Some(Ack {
                        seq: seq.parse().ok()?,
                        port: port.parse().ok()?,
                        at: at.parse().ok()?,
                    }),
                    _ => None,
                }
            })
            .collect()
    }

    fn errors(&self, client: &str) -> Vec<String> {
        self.lines(client)
            .into_iter()
            .filter(|l| l.starts_with("E "))
            .collect()
    }

    fn dump(&self) -> String {
        let mut s = String::new();
        for c in CLIENTS {
            let lines = self.lines(c);
            let from = lines.len().saturating_sub(15);
            s.push_str(&format!("---- {c}: errors\n"));
            for e in self.errors(c).iter().rev().take(15).rev() {
                s.push_str(&format!("  {e}\n"));
            }
            s.push_str(&format!("---- {c}: last lines\n"));
            for l in &lines[from..] {
                s.push_str(&format!("  {l}\n"));
            }
        }
        s.push_str(&format!(
            "---- stdout\n{}\n---- stderr\n{}",
            self.read("stdout"),
            self.read("stderr")
        ));
        s
    }

    /// Waits until each of `clients` has `WRITES_AFTER_SWITCH` writes
    /// acknowledged by `port` at or after `since` (epoch ms).
    fn wait_on(&mut self, clients: &[&str], port: u16, since: u64, what: &str) {
        let deadline = Instant::now() + BOUND;
        loop {
            let behind: Vec<String> = clients
                .iter()
                .filter_map(|c| {
                    let n = self
                        .acks(c)
                        .iter()
                        .filter(|a| a.port == port && a.at >= since)
                        .count();
                    (n < WRITES_AFTER_SWITCH).then(|| format!("{c}: {n}"))
                })
                .collect();
            if behind.is_empty() {
                return;
            }
            if let Some(st) = self.run.exited() {
                panic!(
                    "FailoverClients exited ({st}) before {what}\n{}",
                    self.dump()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: clients without {WRITES_AFTER_SWITCH} writes acknowledged by {port}: {behind:?}\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        self.run.stop();
    }
}

impl Drop for JvmRun {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
    }
}

// ---------------------------------------------------------------- eras

/// A stretch of time with one master, as the test saw it: from the moment
/// every sentinel named `master` to the moment every one named the next.
#[derive(Debug, Clone)]
struct Era {
    master: u16,
    /// How this era ended (None: the last one).
    end: Option<(&'static str, u64)>,
    /// It ended with a planned switchover (no acknowledged write may be lost).
    planned: bool,
    /// It ended with a plain failover (`coordinated-failover no`, Sentinel's):
    /// the old master keeps its clients until it is demoted, and the writes
    /// it acknowledges meanwhile are lost, as with redis-sentinel.
    plain: bool,
}

/// The master every sentinel of `ports` names, once they agree on one other
/// than `from` and it answers ROLE master.
fn wait_switched(ports: &[u16], from: u16) -> u16 {
    let named = |p: u16| -> Option<u16> {
        let r = Conn::open(p).cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
        match r.items() {
            Some([_, port]) => port.as_str()?.parse().ok(),
            _ => None,
        }
    };
    wait_for(BOUND, "every sentinel names a new master", || {
        let all: BTreeSet<Option<u16>> = ports.iter().map(|&p| named(p)).collect();
        match all.iter().next() {
            Some(Some(m)) if all.len() == 1 && *m != from => {
                // Tolerates a connection the promotion's CLIENT KILL closed.
                let role = role_at(*m);
                if role == "master" {
                    Ok(*m)
                } else {
                    Err(format!("{m} is not a master yet: {role}"))
                }
            }
            _ => Err(format!("named: {all:?}")),
        }
    })
}

/// The failovers and their checks, shared by the raftinel and the
/// redis-sentinel runs.
struct Scenario {
    sentinels: Vec<u16>,
    eras: Vec<Era>,
    /// Era index where each failover began, with its label.
    failovers: Vec<(usize, String)>,
}

impl Scenario {
    fn new(sentinels: Vec<u16>, master: u16) -> Scenario {
        Scenario {
            sentinels,
            eras: vec![Era {
                master,
                end: None,
                planned: false,
                plain: false,
            }],
            failovers: Vec::new(),
        }
    }

    fn master(&self) -> u16 {
        self.eras.last().map_or(0, |e| e.master)
    }

    /// A failover began by `trigger`: waits until every sentinel names the
    /// new master, then until `clients` wrote there. Returns the new master.
    fn failover(
        &mut self,
        run: &mut JvmRun,
        clients: &[&str],
        label: &str,
        planned: bool,
        trigger: impl FnOnce(),
    ) -> u16 {
        let from = self.master();
        trigger();
        let to = wait_switched(&self.sentinels, from);
        let at = now_ms();
        if let Some(last) = self.eras.last_mut() {
            last.end = Some((leak(label), at));
            last.planned = planned;
        }
        self.failovers
            .push((self.eras.len() - 1, label.to_string()));
        self.eras.push(Era {
            master: to,
            end: None,
            planned: false,
            plain: false,
        });
        run.wait_on(clients, to, at, &format!("{label} ({from} -> {to})"));
        to
    }

    /// `failover` for a plain `SENTINEL FAILOVER` (`coordinated-failover
    /// no`): writes the old master acknowledges after the switch are
    /// allowed (and counted) until the client's first write on the new one.
    fn plain_failover(&mut self, run: &mut JvmRun, label: &str, trigger: impl FnOnce()) -> u16 {
        let to = self.failover(run, &CLIENTS, label, false, trigger);
        let k = self.eras.len() - 2;
        self.eras[k].plain = true;
        to
    }

    /// The era (index) the test saw at `t`.
    fn era_at(&self, t: u64) -> usize {
        self.eras
            .iter()
            .position(|e| e.end.is_none_or(|(_, end)| t < end))
            .unwrap_or(self.eras.len() - 1)
    }

    /// Per client: the recovery time of each failover (ms from the last
    /// write the old master acknowledged to the first the new one did), and
    /// the checks of the module's header. Returns the report lines.
    fn verify(
        &self,
        run: &JvmRun,
        final_lists: &BTreeMap<&str, BTreeSet<u64>>,
        name: &str,
    ) -> Vec<String> {
        let mut report = Vec::new();
        for c in CLIENTS {
            let acks = run.acks(c);
            assert!(
                !acks.is_empty(),
                "{name}/{c}: no write acknowledged\n{}",
                run.dump()
            );
            // No write acknowledged by a node the group had moved away from
            // (the test saw the move after it happened: the check errs on
            // the safe side), but the old master of a plain failover until
            // the client's first write on the new one (it never goes back).
            let first_on = |k: usize| {
                acks.iter()
                    .filter(|a| self.era_at(a.at) == k && a.port == self.eras[k].master)
                    .map(|a| a.at)
                    .min()
            };
            let late_plain = |k: usize, a: &Ack| {
                k > 0
                    && self.eras[k - 1].plain
                    && a.port == self.eras[k - 1].master
                    && first_on(k).is_none_or(|t| a.at <= t)
            };
            for a in &acks {
                let k = self.era_at(a.at);
                let ok = a.port == self.eras[k].master
                    || self.eras.get(k + 1).is_some_and(|n| n.master == a.port)
                    || late_plain(k, a);
                assert!(
                    ok,
                    "{name}/{c}: write {} acknowledged by {} at {} while the master was {} (era {k}: {:?})\n{}",
                    a.seq,
                    a.port,
                    a.at,
                    self.eras[k].master,
                    self.eras,
                    run.dump()
                );
            }
            // Ends on the master every sentinel names.
            let last = acks.last().map(|a| a.port);
            assert_eq!(
                last,
                Some(self.master()),
                "{name}/{c}: last write not on the final master"
            );
            // Planned switchovers lose nothing.
            let have = final_lists.get(c).cloned().unwrap_or_default();
            for (k, e) in self.eras.iter().enumerate() {
                if !e.planned {
                    continue;
                }
                let lost: Vec<u64> = acks
                    .iter()
                    .filter(|a| {
                        self.era_at(a.at) == k && a.port == e.master && !have.contains(&a.seq)
                    })
                    .map(|a| a.seq)
                    .collect();
                assert!(
                    lost.is_empty(),
                    "{name}/{c}: {} write(s) acknowledged by {} before the planned {:?} missing on the final master: {:?}",
                    lost.len(),
                    e.master,
                    e.end.map(|(l, _)| l),
                    &lost[..lost.len().min(20)]
                );
            }
            let mut line = format!("{name} {c:<10}");
            for (k, label) in &self.failovers {
                let (old, new) = (self.eras[*k].master, self.eras[k + 1].master);
                // A plain failover's old master takes writes after the
                // switch too (until the client moves or it is demoted).
                let until = if self.eras[*k].plain { k + 1 } else { *k };
                let last_old = acks
                    .iter()
                    .filter(|a| a.port == old && self.era_at(a.at) <= until)
                    .map(|a| a.at)
                    .max();
                // Only while the new master is the master (a client that
                // skipped this era, MasterReplica refreshing late, has none).
                let first_new = acks
                    .iter()
                    .filter(|a| {
                        a.port == new
                            && (*k..=k + 1).contains(&self.era_at(a.at))
                            && last_old.is_none_or(|t| a.at >= t)
                    })
                    .map(|a| a.at)
                    .min();
                match (last_old, first_new) {
                    (Some(o), Some(n)) => line.push_str(&format!(" | {label} {} ms", n - o)),
                    _ => line.push_str(&format!(" | {label} -")),
                }
                if self.eras[*k].plain {
                    let lost = acks
                        .iter()
                        .filter(|a| a.port == old && (*k..=k + 1).contains(&self.era_at(a.at)))
                        .filter(|a| !have.contains(&a.seq))
                        .count();
                    line.push_str(&format!(", {lost} lost"));
                }
            }
            report.push(line);
        }
        report
    }
}

/// Labels live as long as the test.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Every client's list on the final master.
fn lists(master: u16) -> BTreeMap<&'static str, BTreeSet<u64>> {
    let mut c = Conn::open(master);
    CLIENTS
        .iter()
        .map(|k| {
            let r = c.cmd(&["LRANGE", &format!("it-jvm-{k}"), "0", "-1"]);
            let set = r
                .items()
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
                .collect();
            (*k, set)
        })
        .collect()
}

/// SIGKILL of the master, then its restart: it rejoins as a replica.
fn kill(g: &mut Group, s: &mut Scenario, run: &mut JvmRun, label: &str) {
    let old = s.master();
    let new = s.failover(run, &CLIENTS, label, false, || {
        g.topo.node_mut(old).sigkill()
    });
    g.topo.node_mut(old).restart();
    // Made a replica of the new master by the group and resynced, so a
    // later failover can promote it.
    g.topo.node(old).wait_follows(new, BOUND);
}

/// `SENTINEL FAILOVER` until the group takes it.
fn sentinel_failover(port: u16) {
    let r = wait_for(BOUND, "SENTINEL FAILOVER accepted", || {
        let r = Conn::open(port).cmd(&["SENTINEL", "FAILOVER", MASTER]);
        match &r {
            // Not registered in the group yet, the last failover's end not
            // applied everywhere yet, or the replicas still resyncing from
            // it: ask again.
            Resp::Error(e)
                if e.starts_with("NOQUORUM")
                    || e.starts_with("INPROG")
                    || e.starts_with("NOGOODSLAVE") =>
            {
                Err(e.clone())
            }
            _ => Ok(r),
        }
    });
    assert_eq!(r, Resp::Status("OK".into()), "SENTINEL FAILOVER on {port}");
}

// ---------------------------------------------------------------- tests

/// Jedis, Lettuce and Lettuce MasterReplica through every kind of failover
/// of a raftinel group, and through one of redis-sentinel's for comparison.
#[test]
fn jedis_and_lettuce_follow_every_failover() {
    let Some(cp) = available() else {
        return;
    };
    let mut g = Group::new();
    let ports: Vec<u16> = g.daemons.iter().map(|d| d.port).collect();
    let mut run = JvmRun::start(&cp, &ports);
    let mut s = Scenario::new(ports.clone(), g.topo.master.port);
    run.wait_on(&CLIENTS, s.master(), 0, "the first writes");

    kill(&mut g, &mut s, &mut run, "SIGKILL");
    s.failover(&mut run, &CLIENTS, "FAILOVER", true, || {
        sentinel_failover(ports[0])
    });
    // Sentinel's plain failover (the option is replicated to every daemon).
    g.set_coordinated(&[2], "no");
    s.plain_failover(&mut run, "plain", || sentinel_failover(ports[2]));
    g.set_coordinated(&[1], "yes");
    s.failover(&mut run, &CLIENTS, "coordinated", true, || {
        sentinel_failover(ports[1])
    });
    kill(&mut g, &mut s, &mut run, "SIGKILL-2");
    // Manual failovers in a row: Jedis and the plain Lettuce connection must
    // follow each; MasterReplica refreshes its topology on its own schedule
    // and has to be on the final master at the end.
    for i in 0..MANUAL_ROUNDS {
        let p = ports[i % ports.len()];
        let label = format!("F{}", i + 1);
        s.failover(&mut run, &["jedis", "lettuce"], &label, true, || {
            sentinel_failover(p)
        });
    }
    let end = now_ms();
    run.wait_on(
        &CLIENTS,
        s.master(),
        end,
        "every client on the final master",
    );
    run.stop();
    let report = s.verify(&run, &lists(s.master()), "raftinel");
    for l in &report {
        println!("{l}");
    }
    if std::env::var_os("RAFTINEL_JVM_DEBUG").is_some() {
        for d in &g.daemons {
            println!("==== daemon {}\n{}", d.port, d.log());
        }
    }
    drop(g);

    // redis-sentinel 7.0.15: the same clients through one SENTINEL FAILOVER.
    let topo = Topology::new(2);
    let m = monitor(topo.master.port);
    let oracles: Vec<SentinelProc> = (0..3)
        .map(|_| SentinelProc::oracle(std::slice::from_ref(&m)))
        .collect();
    for o in &oracles {
        eventually("redis-sentinel knows both replicas and both peers", || {
            let peers = o.master_field(MASTER, "num-other-sentinels");
            let slaves = o.master_field(MASTER, "num-slaves");
            if peers.as_deref() == Some("2") && slaves.as_deref() == Some("2") {
                Ok(())
            } else {
                Err(format!("peers {peers:?}, replicas {slaves:?}"))
            }
        });
    }
    let oports: Vec<u16> = oracles.iter().map(|o| o.port).collect();
    let mut orun = JvmRun::start(&cp, &oports);
    let mut os = Scenario::new(oports.clone(), topo.master.port);
    orun.wait_on(&CLIENTS, os.master(), 0, "redis-sentinel: the first writes");
    let from = os.master();
    let to = os.failover(&mut orun, &[], "FAILOVER", false, || {
        sentinel_failover(oports[0])
    });
    let at = now_ms();
    orun.wait_on(
        &CLIENTS,
        to,
        at,
        "redis-sentinel: every client on the new master",
    );
    orun.stop();
    let have = lists(to);
    let mut lines = Vec::new();
    for c in CLIENTS {
        let acks = orun.acks(c);
        let lost = acks
            .iter()
            .filter(|a| a.port == from && !have.get(c).is_some_and(|h| h.contains(&a.seq)))
            .count();
        let last_old = acks.iter().filter(|a| a.port == from).map(|a| a.at).max();
        let first_new = acks.iter().filter(|a| a.port == to).map(|a| a.at).min();
        let gap = match (last_old, first_new) {
            (Some(o), Some(n)) => format!("{} ms", n.saturating_sub(o)),
            _ => "-".into(),
        };
        lines.push(format!(
            "redis-sentinel {c:<10} | FAILOVER {gap}, {lost} acknowledged write(s) lost"
        ));
    }
    for l in &lines {
        println!("{l}");
    }
}
