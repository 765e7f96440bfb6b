//! The Raft group through the operations operators and orchestrators do all
//! day, with real daemons: a master added at run time and daemons restarted
//! from their rewritten files (the group's identity does not move), a daemon
//! back on another port (same voter, new address), a daemon whose Raft data
//! was wiped (a new incarnation replaces its old voter), departed daemons
//! removed by `SENTINEL RAFT FORGET` / `raftinel forget` and by `SENTINEL
//! RESET`, and a static peer list scaled out and in.
//!
//! Every wait is bounded; assertions are about outcomes (who is a voter, what
//! every daemon answers), never about how long it took.

use crate::harness::group::*;
use crate::harness::resp::Resp;
use crate::harness::*;
use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

/// A group forming, a change of membership being committed, a failover:
/// generous for a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(60);

/// One member line of `INFO raft` (`raft_memberN:id=..,addr=..,myid=..,role=..`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberLine {
    id: String,
    addr: String,
    myid: String,
    role: String,
}

fn members(info: &BTreeMap<String, String>) -> Vec<MemberLine> {
    info.iter()
        .filter(|(k, _)| {
            k.starts_with("raft_member") && k[11..].chars().all(|c| c.is_ascii_digit())
        })
        .map(|(_, v)| {
            let f: BTreeMap<&str, &str> =
                v.split(',').filter_map(|kv| kv.split_once('=')).collect();
            let get = |k: &str| f.get(k).copied().unwrap_or("").to_string();
            MemberLine {
                id: get("id"),
                addr: get("addr"),
                myid: get("myid"),
                role: get("role"),
            }
        })
        .collect()
}

/// Waits until every daemon reports `n` voters and the same leader, and
/// (when given) `check` holds on every daemon's `INFO raft`; returns the
/// last `INFO raft` of each.
fn wait_group_where(
    ds: &[&Daemon],
    n: usize,
    what: &str,
    check: impl Fn(&BTreeMap<String, String>) -> Result<(), String>,
) -> Vec<BTreeMap<String, String>> {
    wait_for(LONG, what, || {
        let mut infos = Vec::new();
        let mut leaders = Vec::new();
        for d in ds {
            let info = d.raft_info()?;
            let get = |k: &str| info.get(k).cloned().unwrap_or_default();
            if get("raft_voters") != n.to_string() || get("raft_leader_id").is_empty() {
                return Err(format!(
                    "daemon {}: voters={} leader={:?}",
                    d.port,
                    get("raft_voters"),
                    get("raft_leader_id")
                ));
            }
            check(&info).map_err(|e| format!("daemon {}: {e}", d.port))?;
            leaders.push(get("raft_leader_id"));
            infos.push(info);
        }
        leaders.dedup();
        if leaders.len() != 1 {
            return Err(format!("daemons disagree on the leader: {leaders:?}"));
        }
        Ok(infos)
    })
}

fn wait_group(ds: &[&Daemon], n: usize) -> Vec<BTreeMap<String, String>> {
    wait_group_where(ds, n, &format!("one raft group of {n} voters"), |_| Ok(()))
}

fn field(info: &BTreeMap<String, String>, k: &str) -> String {
    info.get(k).cloned().unwrap_or_default()
}

fn refs(ds: &[Daemon]) -> Vec<&Daemon> {
    ds.iter().collect()
}

fn start_daemons(n: usize, master_port: u16) -> Vec<Daemon> {
    (0..n)
        .map(|_| Daemon::start(&monitor(master_port)))
        .collect()
}

/// The runids `SENTINEL SENTINELS mymaster` lists on `d`.
fn sentinel_runids(d: &Daemon) -> Vec<String> {
    match d.conn().cmd(&["SENTINEL", "SENTINELS", MASTER]) {
        Resp::Array(v) => v.iter().filter_map(|s| s.field("runid")).collect(),
        other => panic!("SENTINEL SENTINELS on {}: {}", d.port, other.pretty()),
    }
}

/// Replaces the `port` line of a daemon's config and starts it there.
fn relaunch_on_port(d: &mut Daemon, port: u16) {
    let text = fs::read_to_string(&d.conf).expect("read config");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("port ") {
                format!("port {port}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&d.conf, text).expect("write config");
    d.port = port;
    d.launch();
}

/// `SENTINEL MONITOR <name> 127.0.0.1 <port> 2` sent to each daemon, as an
/// operator's script does; the group may have registered it already
/// through another daemon (`Duplicate master name`).
fn monitor_on(ds: &[Daemon], name: &str, port: u16) {
    for d in ds {
        let r = d.conn().cmd(&[
            "SENTINEL",
            "MONITOR",
            name,
            "127.0.0.1",
            &port.to_string(),
            "2",
        ]);
        assert!(
            r == Resp::Status("OK".into()) || r.as_str().is_some_and(|e| e.contains("Duplicate")),
            "SENTINEL MONITOR on {}: {}",
            d.port,
            r.pretty()
        );
    }
}

/// The Raft directory of a daemon whose `dir` is its temp dir.
fn raft_dirs(d: &Daemon) -> Vec<std::path::PathBuf> {
    fs::read_dir(d.dir.path())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("raftinel-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- identity

/// A master added at run time on every daemon, then daemons killed and
/// restarted from their rewritten files: the group keeps its cluster id, the
/// restarted daemons are voters again, and with quorum = every daemon, a
/// killed master is replaced and every daemon reports the new one.
fn runtime_monitor_then_restarts(n: usize, restarts: usize) {
    let mut topo = Topology::new(1);
    let mut ds = start_daemons(n, topo.master.port);
    let infos = wait_group(&refs(&ds), n);
    let cluster = field(&infos[0], "raft_cluster_id");
    assert!(!cluster.is_empty());
    let second = RedisNode::start();
    monitor_on(&ds, "second", second.port);
    for d in ds.iter_mut().take(restarts) {
        d.sigkill();
    }
    for d in ds.iter_mut().take(restarts) {
        d.launch();
    }
    wait_group_where(
        &refs(&ds),
        n,
        "the restarted daemons back in the group",
        |info| {
            let c = field(info, "raft_cluster_id");
            if c == cluster {
                Ok(())
            } else {
                Err(format!("cluster id {c:?}, the group's is {cluster:?}"))
            }
        },
    );
    let q = n.to_string();
    for d in &ds {
        let r = d.conn().cmd(&["SENTINEL", "SET", MASTER, "quorum", &q]);
        assert_eq!(r, Resp::Status("OK".into()), "{}", r.pretty());
    }
    wait_for(LONG, "quorum set everywhere", || {
        for d in &ds {
            let got = d.master_field("quorum").unwrap_or_default();
            if got != q {
                return Err(format!("daemon {}: quorum {got}", d.port));
            }
        }
        Ok(())
    });
    let replica = format!("127.0.0.1:{}", topo.replicas[0].port);
    topo.master.sigkill();
    wait_for(LONG, "every daemon reports the promoted replica", || {
        for d in &ds {
            let a = d.master_addr();
            if a != replica {
                return Err(format!("daemon {} answers {a}, expected {replica}", d.port));
            }
        }
        Ok(())
    });
}

#[test]
fn five_daemons_keep_their_group_through_a_runtime_monitor_and_three_restarts() {
    runtime_monitor_then_restarts(5, 3);
}

#[test]
fn three_daemons_keep_their_group_through_a_runtime_monitor_and_a_restart() {
    runtime_monitor_then_restarts(3, 1);
}

// ---------------------------------------------------------------- membership

/// The Raft leader is moved (the harder case: restarted with its vote, it
/// may still lead, and must update its own entry).
#[test]
fn a_daemon_back_on_another_port_keeps_its_voter_with_the_new_address() {
    let topo = Topology::new(1);
    let mut ds = start_daemons(3, topo.master.port);
    let infos = wait_group(&refs(&ds), 3);
    let leader = field(&infos[0], "raft_leader_id");
    let i = (0..3)
        .find(|&i| ds[i].raft_node_id().as_deref() == Some(leader.as_str()))
        .expect("the leader among the daemons");
    ds.swap(i, 2);
    let id = ds[2].raft_node_id().expect("node id");
    ds[2].sigterm();
    let port = free_port();
    relaunch_on_port(&mut ds[2], port);
    let want = format!("127.0.0.1:{port}");
    wait_group_where(&refs(&ds), 3, "the moved daemon's entry updated", |info| {
        let ms = members(info);
        match ms.iter().find(|m| m.id == id) {
            Some(m) if m.addr == want && m.role == "voter" => Ok(()),
            other => Err(format!("member {id}: {other:?}")),
        }
    });
    assert_eq!(ds[2].raft_node_id().as_deref(), Some(id.as_str()));
}

#[test]
fn a_daemon_with_wiped_raft_data_replaces_its_old_voter() {
    wiped_data_replaces_the_old_voter(Vec::new());
}

/// The same with a group secret: the wiped daemon, which no longer knows its
/// group's cluster id, asks under `*` with signed requests.
#[test]
fn with_a_group_secret_a_wiped_daemon_replaces_its_old_voter() {
    wiped_data_replaces_the_old_voter(vec![(
        "RAFTINEL_SECRET".to_string(),
        "membership-test-secret-0123456789".to_string(),
    )]);
}

fn wiped_data_replaces_the_old_voter(env: Vec<(String, String)>) {
    let topo = Topology::new(1);
    let mut ds: Vec<Daemon> = (0..3)
        .map(|_| Daemon::start_with_env(&monitor(topo.master.port), &[], env.clone()))
        .collect();
    let infos = wait_group(&refs(&ds), 3);
    let cluster = field(&infos[0], "raft_cluster_id");
    let old = ds[2].raft_node_id().expect("node id");
    let myid = ds[2].myid();
    ds[2].sigkill();
    for dir in raft_dirs(&ds[2]) {
        fs::remove_dir_all(dir).expect("wipe raft data");
    }
    ds[2].launch();
    let infos = wait_group_where(
        &refs(&ds),
        3,
        "the new incarnation in place of the old voter",
        |info| {
            let ms = members(info);
            if ms.iter().any(|m| m.id == old) {
                return Err(format!("old node {old} still a member: {ms:?}"));
            }
            if !ms.iter().any(|m| m.myid == myid && m.role == "voter") {
                return Err(format!("no voter with myid {myid}: {ms:?}"));
            }
            Ok(())
        },
    );
    let new = field(&infos[2], "raft_node_id");
    assert_ne!(new, old, "a wiped daemon is a new incarnation");
    assert_eq!(
        field(&infos[2], "raft_cluster_id"),
        cluster,
        "it joined its group"
    );
    assert!(
        ds.iter().any(|d| d.log().contains("+raft-member-replace")),
        "the leader logs the replacement"
    );
}

#[test]
fn forget_and_reset_remove_departed_daemons() {
    let topo = Topology::new(1);
    let mut ds = start_daemons(4, topo.master.port);
    wait_group(&refs(&ds), 4);
    wait_for(LONG, "every daemon knows its 3 peers", || {
        for d in &ds {
            let n = sentinel_runids(d).len();
            if n != 3 {
                return Err(format!("daemon {}: {n} peers", d.port));
            }
        }
        Ok(())
    });
    let gone = ds.pop().expect("a daemon");
    let gone_id = gone.raft_node_id().expect("node id");
    let gone_runid = gone.myid();
    // A daemon that still answers is not removed (a leader that has not
    // probed its members long enough says so and is asked again).
    wait_for(LONG, "FORGET of a live daemon refused", || {
        let r = ds[0].conn().cmd(&["SENTINEL", "RAFT", "FORGET", &gone_id]);
        match r.as_str() {
            // Refused as live, or, when it happens to lead the group, as
            // the leader (it cannot remove itself).
            Some(e)
                if r.is_error()
                    && (e.contains("still answers") || e.contains("is the raft leader")) =>
            {
                Ok(())
            }
            Some(e) if r.is_error() && e.contains("retry") => Err(e),
            _ => panic!("FORGET of a live daemon: {}", r.pretty()),
        }
    });
    drop(gone);
    // `raftinel forget` on any daemon, once the leader sees it silent.
    let port = ds[1].port.to_string();
    wait_for(LONG, "raftinel forget accepted", || {
        let out = std::process::Command::new(raftinel_bin())
            .args(["forget", &gone_id, "--port", &port])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    wait_group(&refs(&ds), 3);
    wait_for(LONG, "the forgotten daemon no longer listed", || {
        for d in &ds {
            let ids = sentinel_runids(d);
            if ids.contains(&gone_runid) || ids.len() != 2 {
                return Err(format!("daemon {}: SENTINELS {ids:?}", d.port));
            }
            let n = d.master_field("num-other-sentinels").unwrap_or_default();
            if n != "2" {
                return Err(format!("daemon {}: num-other-sentinels {n}", d.port));
            }
            if fs::read_to_string(&d.conf)
                .unwrap_or_default()
                .contains(&gone_runid)
            {
                return Err(format!("daemon {}: config still lists it", d.port));
            }
        }
        Ok(())
    });
    // The departed daemon of a deleted pod: the operator sends RESET to
    // every daemon; the one hellos do not rediscover leaves the group.
    let gone = ds.pop().expect("a daemon");
    let gone_runid = gone.myid();
    drop(gone);
    for d in &ds {
        assert_eq!(d.conn().cmd(&["SENTINEL", "RESET", MASTER]), Resp::Int(1));
    }
    wait_group(&refs(&ds), 2);
    wait_for(LONG, "only the live peer listed after RESET", || {
        for d in &ds {
            let ids = sentinel_runids(d);
            if ids.contains(&gone_runid) || ids.len() != 1 {
                return Err(format!("daemon {}: SENTINELS {ids:?}", d.port));
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------- static list

fn write_toml(d: &Daemon, master_port: u16, peers: &[u16]) {
    write_toml_with(d, master_port, peers, "");
}

fn write_toml_with(d: &Daemon, master_port: u16, peers: &[u16], raft_extra: &str) {
    let list = peers
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    fs::write(
        &d.conf,
        format!(
            "[server]\nport = {}\nbind = [\"127.0.0.1\"]\ndir = \"{}\"\n\n\
             [[masters]]\nname = \"{MASTER}\"\nhost = \"127.0.0.1\"\nport = {master_port}\nquorum = 2\n\
             down-after-milliseconds = {DOWN_AFTER_MS}\n\n\
             [raft]\npeers = [{list}]\n{raft_extra}",
            d.port,
            d.dir.path().display(),
        ),
    )
    .expect("write raftinel.toml");
}

fn toml_daemon(port: u16) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("it-members-toml-")
        .tempdir()
        .expect("temp dir");
    let conf = dir.path().join("raftinel.toml");
    Daemon {
        port,
        dir,
        conf,
        child: None,
        starts: 0,
        env: Vec::new(),
    }
}

/// Rewrites the peer list of each daemon and restarts them one at a time,
/// each back in the group (with a leader) before the next.
fn rolling_restart(ds: &mut [Daemon], master_port: u16, peers: &[u16]) {
    for d in ds.iter_mut() {
        d.sigterm();
        write_toml(d, master_port, peers);
        d.launch();
        let d = &*d;
        wait_for(LONG, "the restarted daemon hears a leader", || {
            let info = d.raft_info()?;
            if field(&info, "raft_leader_id").is_empty() {
                Err(format!("daemon {}: no leader", d.port))
            } else {
                Ok(())
            }
        });
    }
}

#[test]
fn a_static_peer_list_scales_out_and_in() {
    let topo = Topology::new(1);
    let mp = topo.master.port;
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let mut ds: Vec<Daemon> = ports.iter().map(|&p| toml_daemon(p)).collect();
    for d in ds.iter_mut().take(3) {
        write_toml(d, mp, &ports[..3]);
        d.launch();
    }
    wait_group(&refs(&ds[..3]), 3);
    // Scale out: the new daemons start with the list of five, the others
    // are restarted with it one at a time.
    for d in ds.iter_mut().skip(3) {
        write_toml(d, mp, &ports);
        d.launch();
    }
    rolling_restart(&mut ds[..3], mp, &ports);
    wait_group(&refs(&ds), 5);
    // Scale in: the last two go away, the others get the list of three.
    for d in ds.iter_mut().skip(3) {
        d.sigkill();
    }
    ds.truncate(3);
    rolling_restart(&mut ds, mp, &ports[..3]);
    let infos = wait_group(&refs(&ds), 3);
    let addrs: Vec<String> = members(&infos[0]).into_iter().map(|m| m.addr).collect();
    let want: Vec<String> = ports[..3]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let mut got = addrs.clone();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "members after scale-in: {addrs:?}");
}

/// `remove-unreachable-after-ms`: a voter down longer than that is removed
/// (the others are a live majority); back with its data, it finds out it is
/// no longer a member and joins again.
#[test]
fn an_unreachable_voter_is_removed_when_enabled_and_rejoins_when_back() {
    let topo = Topology::new(1);
    let mp = topo.master.port;
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut ds: Vec<Daemon> = ports.iter().map(|&p| toml_daemon(p)).collect();
    for d in ds.iter_mut() {
        write_toml_with(d, mp, &ports, "remove-unreachable-after-ms = 10000\n");
        d.launch();
    }
    let infos = wait_group(&refs(&ds), 3);
    let leader = field(&infos[0], "raft_leader_id");
    let i = (0..3)
        .find(|&i| ds[i].raft_node_id().as_deref() != Some(leader.as_str()))
        .expect("a follower");
    let id = ds[i].raft_node_id().expect("node id");
    ds[i].sigkill();
    let rest: Vec<&Daemon> = ds
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, d)| d)
        .collect();
    wait_group_where(&rest, 2, "the unreachable voter removed", |info| {
        if members(info).iter().any(|m| m.id == id) {
            Err(format!("node {id} still a member"))
        } else {
            Ok(())
        }
    });
    // A follower applies the new membership as soon as it has the entry;
    // the leader logs the removal once the change is committed.
    wait_for(Duration::from_secs(15), "the removal is logged", || {
        if rest
            .iter()
            .any(|d| d.log().contains(&format!("-raft-member {id}")))
        {
            Ok(())
        } else {
            Err("no -raft-member line yet".to_string())
        }
    });
    ds[i].launch();
    wait_group_where(
        &refs(&ds),
        3,
        "the removed daemon back as a voter",
        |info| {
            if members(info)
                .iter()
                .any(|m| m.id == id && m.role == "voter")
            {
                Ok(())
            } else {
                Err(format!("node {id} not a voter"))
            }
        },
    );
}

// ---------------------------------------------------------------- bad joins

/// Joins that would take a live voter's place, move it, or make no sense:
/// a clear refusal, counted, nothing changed.
#[test]
fn bad_joins_are_refused_counted_and_change_nothing() {
    let topo = Topology::new(1);
    let ds = start_daemons(3, topo.master.port);
    let infos = wait_group(&refs(&ds), 3);
    let cluster = field(&infos[0], "raft_cluster_id");
    let leader_id = field(&infos[0], "raft_leader_id");
    let leader = ds
        .iter()
        .find(|d| d.raft_node_id().as_deref() == Some(leader_id.as_str()))
        .expect("the leader");
    let victim = ds
        .iter()
        .find(|d| d.raft_node_id().as_deref() != Some(leader_id.as_str()))
        .expect("a follower");
    let victim_id = victim.raft_node_id().expect("node id");
    let victim_myid = victim.myid();
    let before = members(&leader.raft_info().expect("INFO raft"));
    let refused_before: u64 = field(
        &leader.raft_info().expect("INFO raft"),
        "raft_membership_refused",
    )
    .parse()
    .unwrap_or(0);
    // A leader that has not probed its members long enough answers Retry
    // (not counted): asked again.
    let join = |body: String| {
        wait_for(LONG, "a join answered", || {
            let r = leader
                .conn()
                .cmd(&["RAFTINEL", &cluster, "join", &body])
                .as_str()
                .unwrap_or_default();
            if r.contains("Retry") {
                Err(r)
            } else {
                Ok(r)
            }
        })
    };
    // A live voter's id at another address.
    let r = join(format!(
        r#"{{"id":{victim_id},"addr":"127.0.0.1:1","fresh":false,"myid":"{victim_myid}"}}"#
    ));
    assert!(r.contains("Refused") && r.contains("still answers"), "{r}");
    // A new id claiming a live voter's runid (a replacement while it lives).
    let r = join(format!(
        r#"{{"id":12345,"addr":"127.0.0.1:2","fresh":true,"myid":"{victim_myid}"}}"#
    ));
    assert!(r.contains("Refused") && r.contains("still answers"), "{r}");
    // A voter's id from an empty storage.
    let r = join(format!(
        r#"{{"id":{victim_id},"addr":"127.0.0.1:{}","fresh":true,"myid":"{victim_myid}"}}"#,
        victim.port
    ));
    assert!(r.contains("LostState"), "{r}");
    // Malformed: no port, a bad runid.
    let r = join(r#"{"id":777,"addr":"nohost","fresh":false,"myid":""}"#.to_string());
    assert!(r.contains("Refused") && r.contains("malformed"), "{r}");
    let r = join(r#"{"id":778,"addr":"127.0.0.1:3","fresh":false,"myid":"xyz"}"#.to_string());
    assert!(r.contains("Refused") && r.contains("malformed"), "{r}");
    let after = leader.raft_info().expect("INFO raft");
    assert_eq!(members(&after), before, "nothing changed");
    let refused: u64 = field(&after, "raft_membership_refused")
        .parse()
        .unwrap_or(0);
    assert_eq!(refused, refused_before + 5, "every refusal counted");
    wait_group(&refs(&ds), 3);
}

// ---------------------------------------------------------------- two groups

/// Two deployments, each bootstrapped under its own cluster id, made to
/// reach each other: every daemon of both monitors the same master, so each
/// hears the other deployment's daemons in the hellos. Neither group takes a
/// member of the other, and a daemon of the second whose Raft data is wiped
/// comes back into its own group (its configured cluster id), not into the
/// first.
#[test]
fn two_deployments_that_reach_each_other_never_merge() {
    let topo_a = Topology::new(1);
    let topo_b = Topology::new(1);
    let start = |port: u16, cluster: &str| -> Vec<Daemon> {
        (0..3)
            .map(|_| {
                Daemon::start_with_env(
                    &monitor(port),
                    &[],
                    vec![("RAFTINEL_CLUSTER_ID".to_string(), cluster.to_string())],
                )
            })
            .collect()
    };
    let a = start(topo_a.master.port, "deployment-a");
    let mut b = start(topo_b.master.port, "deployment-b");
    let ids = |ds: &[Daemon]| -> Vec<String> {
        let mut v: Vec<String> = ds.iter().filter_map(|d| d.raft_node_id()).collect();
        v.sort();
        v
    };
    let in_cluster = |cluster: &'static str| {
        move |info: &BTreeMap<String, String>| {
            let c = field(info, "raft_cluster_id");
            if c == cluster {
                Ok(())
            } else {
                Err(format!("cluster id {c:?}, expected {cluster:?}"))
            }
        }
    };
    wait_group_where(&refs(&a), 3, "group a", in_cluster("deployment-a"));
    wait_group_where(&refs(&b), 3, "group b", in_cluster("deployment-b"));
    let (ids_a, ids_b) = (ids(&a), ids(&b));

    let shared = RedisNode::start();
    monitor_on(&a, "shared", shared.port);
    monitor_on(&b, "shared", shared.port);
    // Every daemon hears the five others on the shared master.
    wait_for(LONG, "the two deployments hear each other", || {
        for d in a.iter().chain(b.iter()) {
            let n = match d.conn().cmd(&["SENTINEL", "SENTINELS", "shared"]) {
                Resp::Array(v) => v.len(),
                other => return Err(format!("daemon {}: {}", d.port, other.pretty())),
            };
            if n != 5 {
                return Err(format!("daemon {} hears {n} other daemons", d.port));
            }
        }
        Ok(())
    });
    // Several hello periods and leader probes later, neither group moved.
    std::thread::sleep(Duration::from_secs(10));
    let member_ids = |infos: &[BTreeMap<String, String>]| -> Vec<String> {
        let mut v: Vec<String> = members(&infos[0]).into_iter().map(|m| m.id).collect();
        v.sort();
        v
    };
    let infos = wait_group_where(
        &refs(&a),
        3,
        "group a unchanged",
        in_cluster("deployment-a"),
    );
    assert_eq!(member_ids(&infos), ids_a, "group a's members");
    let infos = wait_group_where(
        &refs(&b),
        3,
        "group b unchanged",
        in_cluster("deployment-b"),
    );
    assert_eq!(member_ids(&infos), ids_b, "group b's members");

    // A daemon of b with wiped Raft data: its configured cluster id chooses
    // its group among the two it can reach.
    let old = b[2].raft_node_id().expect("node id");
    b[2].sigkill();
    for dir in raft_dirs(&b[2]) {
        fs::remove_dir_all(dir).expect("wipe raft data");
    }
    b[2].launch();
    let infos = wait_group_where(&refs(&b), 3, "the wiped daemon back in group b", |info| {
        in_cluster("deployment-b")(info)?;
        if members(info).iter().any(|m| m.id == old) {
            return Err(format!("old node {old} still a member"));
        }
        Ok(())
    });
    assert!(!member_ids(&infos).iter().any(|id| ids_a.contains(id)));
    let infos = wait_group_where(
        &refs(&a),
        3,
        "group a unchanged",
        in_cluster("deployment-a"),
    );
    assert_eq!(member_ids(&infos), ids_a, "group a's members");
}
