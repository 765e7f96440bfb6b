//! The Raft group itself, with real daemons: how it forms (hello discovery
//! and a static peer list in raftinel.toml), what it refuses (another
//! cluster's RPCs, a damaged log), as seen from outside through `INFO raft`,
//! exit statuses and logs. How its membership follows the daemons is in
//! `membership`.

use crate::harness::resp::Resp;
use crate::harness::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A group forms within a few hello periods; allow for a loaded CI machine.
const FORM: Duration = Duration::from_secs(40);

/// `INFO raft` as key/value pairs.
fn raft_info(s: &SentinelProc) -> Vec<(String, String)> {
    let text = s.conn().cmd(&["INFO", "raft"]).as_str().unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn raft_field(s: &SentinelProc, key: &str) -> String {
    raft_info(s)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// Waits until every daemon reports `n` voters and the same known leader.
fn wait_group(daemons: &[&SentinelProc], n: usize) -> String {
    wait_for(FORM, "one raft group with every daemon", || {
        let mut leaders = Vec::new();
        for d in daemons {
            let voters = raft_field(d, "raft_voters");
            let leader = raft_field(d, "raft_leader_id");
            if voters != n.to_string() || leader.is_empty() {
                return Err(format!(
                    "port {}: voters={voters:?} leader={leader:?}",
                    d.port
                ));
            }
            leaders.push(leader);
        }
        leaders.dedup();
        if leaders.len() != 1 {
            return Err(format!("daemons disagree on the leader: {leaders:?}"));
        }
        Ok(leaders.remove(0))
    })
}

/// The daemon's Raft directory (`<dir>/raftinel-<first 8 hex of myid>`).
fn raft_dir(s: &SentinelProc) -> PathBuf {
    let myid = s.myid();
    s.dir
        .path()
        .join(format!("raftinel-{}", &myid[..8]))
        .join("raft")
}

fn logs(s: &SentinelProc) -> String {
    let out = fs::read_to_string(s.stdout_path()).unwrap_or_default();
    format!("{out}{}", s.stderr())
}

fn three_daemons(topo: &Topology) -> Vec<SentinelProc> {
    let m = [Monitor::new(topo.master.port, 2)];
    (0..3).map(|_| SentinelProc::raftinel(&m)).collect()
}

#[test]
fn daemons_discovered_by_hello_form_one_group() {
    let topo = Topology::new(1);
    let d = three_daemons(&topo);
    wait_group(&d.iter().collect::<Vec<_>>(), 3);
    let initialized: Vec<String> = d
        .iter()
        .map(|s| raft_field(s, "raft_initialized"))
        .collect();
    assert_eq!(initialized, vec!["1", "1", "1"]);
    let bootstrapped = d
        .iter()
        .filter(|s| logs(s).contains("bootstrapped a new group"))
        .count();
    assert_eq!(bootstrapped, 1, "exactly one daemon initializes the group");
}

/// raftinel.toml with a static peer list: the first peer bootstraps, the
/// others join through it.
#[test]
fn a_static_peer_list_forms_one_group() {
    let topo = Topology::new(1);
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers = ports
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let daemons: Vec<SentinelProc> = ports
        .iter()
        .map(|&port| {
            let dir = tempfile::Builder::new()
                .prefix("it-raft-toml-")
                .tempdir()
                .expect("temp dir");
            let path = dir.path().join("raftinel.toml");
            fs::write(
                &path,
                format!(
                    "[server]\nport = {port}\nbind = [\"127.0.0.1\"]\ndir = \"{}\"\n\n\
                     [[masters]]\nname = \"{MASTER}\"\nhost = \"127.0.0.1\"\nport = {}\nquorum = 2\n\
                     down-after-milliseconds = {DOWN_AFTER_MS}\n\n\
                     [raft]\ncluster-id = \"it-static\"\npeers = [{peers}]\n",
                    dir.path().display(),
                    topo.master.port
                ),
            )
            .expect("write raftinel.toml");
            let mut s = SentinelProc::spawn_unchecked(Kind::Raftinel, port, dir, path);
            s.wait_ready();
            s
        })
        .collect();
    wait_group(&daemons.iter().collect::<Vec<_>>(), 3);
    assert_eq!(raft_field(&daemons[0], "raft_cluster_id"), "it-static");
    assert!(
        logs(&daemons[0]).contains("bootstrapped a new group"),
        "the first peer bootstraps:\n{}",
        logs(&daemons[0])
    );
    for s in &daemons[1..] {
        assert!(
            !logs(s).contains("bootstrapped"),
            "only the first peer may bootstrap:\n{}",
            logs(s)
        );
    }
}

#[test]
fn rpcs_for_another_cluster_are_refused_and_counted() {
    let topo = Topology::new(1);
    let s = SentinelProc::raftinel(&[Monitor::new(topo.master.port, 1)]);
    let before: u64 = raft_field(&s, "raft_rpc_refused").parse().unwrap_or(0);
    let r = s.conn().cmd(&["RAFTINEL", "someone-else", "vote", "{}"]);
    assert_eq!(
        r,
        Resp::Error("ERR cluster id mismatch".into()),
        "{}",
        r.pretty()
    );
    let garbage = s.conn().cmd(&["RAFTINEL", "x"]);
    assert!(garbage.is_error(), "{}", garbage.pretty());
    let after: u64 = raft_field(&s, "raft_rpc_refused").parse().unwrap_or(0);
    assert!(after >= before + 2, "refusals counted: {before} -> {after}");
    // The hidden command does not change what clients see of the command table.
    assert_eq!(s.conn().cmd(&["COMMAND", "COUNT"]), Resp::Int(15));
}

#[test]
fn rpcs_need_the_sentinel_password() {
    let topo = Topology::new(1);
    let s = SentinelProc::with_conf(Kind::Raftinel, |port, dir| {
        sentinel_conf(
            port,
            dir,
            &[Monitor::new(topo.master.port, 1)],
            &["requirepass s3cret".to_string()],
        )
    });
    let mut c = s.conn();
    let r = c.cmd(&["RAFTINEL", "raftinel:mymaster", "status", "null"]);
    assert_eq!(
        r,
        Resp::Error("NOAUTH Authentication required.".into()),
        "{}",
        r.pretty()
    );
}

/// A flipped byte in the log is detected at start, never replayed.
#[test]
fn a_damaged_raft_log_stops_the_daemon() {
    let topo = Topology::new(1);
    let mut s = SentinelProc::raftinel(&[Monitor::new(topo.master.port, 1)]);
    wait_group(&[&s], 1);
    let dir = raft_dir(&s);
    s.stop();
    corrupt_first_record(&dir.join("log"));
    let port = s.port;
    let conf = s.conf.clone();
    let home = tempfile::Builder::new()
        .prefix("it-raft-corrupt-")
        .tempdir()
        .expect("temp dir");
    let mut again = SentinelProc::spawn_unchecked(Kind::Raftinel, port, home, conf);
    let status = again.proc().wait_exit(Duration::from_secs(20));
    let log = logs(&again);
    assert!(
        matches!(status, Some(s) if !s.success()),
        "must refuse to start, got {status:?}:\n{log}"
    );
    assert!(log.contains("corrupt"), "the damage is reported:\n{log}");
    assert!(
        !port_open(port),
        "no port bound by a daemon that refused to start"
    );
}

/// Flips one byte inside the first record's payload (after its 8-byte header).
fn corrupt_first_record(path: &Path) {
    let mut bytes = fs::read(path).expect("read raft log");
    assert!(
        bytes.len() > 12,
        "raft log too short: {} bytes",
        bytes.len()
    );
    bytes[10] ^= 0x01;
    fs::write(path, bytes).expect("write raft log");
}
