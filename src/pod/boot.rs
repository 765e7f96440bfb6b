//! `raftinel boot-redis`: the redis container's entry point. Redis never
//! elects itself: it starts as a replica of the committed master, as the
//! master only when the group committed this pod and the data on the volume
//! is the history the group recorded, and as a replica of nothing (an
//! address that never answers: read-only, data kept) when the group cannot
//! say. The daemon of the pod re-points a replica of nothing once the group
//! has a committed master (`repoint`).
//!
//! The decision ([`decide`], with the data check in [`data_matches`]) is a
//! pure function of the daemon's status and what the volume holds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::local::{self, Daemon, OnChange};
use super::probe::NOTHING;
use super::rdb::RdbInfo;
use super::status::{Addr, Status};
use crate::core::group::ReplHistory;

/// How Redis is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    Master,
    ReplicaOf(Addr),
    /// A replica of an address that never answers.
    Nothing,
}

/// What the volume holds, read before Redis starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalData {
    /// Where Redis keeps its data (for messages).
    pub dir: PathBuf,
    /// The RDB file's replication fields (None: no RDB file).
    pub rdb: Option<RdbInfo>,
    /// Any data file at all (RDB, or an AOF directory).
    pub has_data: bool,
}

/// Whether the data on the volume may be served as the master the group
/// recorded: the replication id the master took and at least the offset
/// recorded for it. Without a record (a set whose master was never
/// promoted by the group) any data is accepted: that is a new set, or the
/// master it was created with.
pub fn data_matches(history: Option<&ReplHistory>, data: &LocalData) -> Result<(), String> {
    let Some(h) = history else {
        return Ok(());
    };
    let dir = data.dir.display();
    let Some(rdb) = &data.rdb else {
        return Err(format!(
            "no RDB file in {dir}, the group recorded replication id {} offset {}",
            h.replid, h.offset
        ));
    };
    match (&rdb.repl_id, rdb.repl_offset) {
        (Some(id), Some(off)) if *id == h.replid && off >= h.offset => Ok(()),
        (Some(id), Some(off)) => Err(format!(
            "the data in {dir} is replication id {id} offset {off}, the group recorded {} offset {}",
            h.replid, h.offset
        )),
        _ => Err(format!(
            "the RDB file in {dir} carries no replication id, the group recorded {} offset {}",
            h.replid, h.offset
        )),
    }
}

/// Whether the group's answer can be acted on: the daemon is a loaded
/// voter in touch with its leader.
pub fn group_answers(s: &Status) -> Result<(), String> {
    let g = &s.group;
    if !g.running {
        return Err("the daemon has no Raft group".into());
    }
    if !g.loaded {
        return Err("the daemon is loading its Raft state".into());
    }
    if !g.voter {
        return Err("the daemon is not a voter of the group yet".into());
    }
    if !g.has_leader() {
        return Err("the group has no leader the daemon heard from (no quorum?)".into());
    }
    Ok(())
}

/// How to start Redis, and why; Err(why) when the group cannot say yet.
pub fn decide(s: &Status, data: &LocalData) -> Result<(Boot, String), String> {
    group_answers(s)?;
    let m = s.masters.first().ok_or("the daemon monitors no master")?;
    let this = |h: &str| super::status::is_this_pod(h, s.announce_ip.as_deref());
    match &m.committed {
        None if this(&m.configured.host) => Ok((
            Boot::Master,
            format!("{}: a new set, this pod is the configured master", m.name),
        )),
        None => Ok((
            Boot::ReplicaOf(m.configured.clone()),
            format!("{}: a new set, the configured master is {}", m.name, m.configured),
        )),
        Some(c) if !m.this_pod => Ok((
            Boot::ReplicaOf(c.clone()),
            format!("{}: the committed master is {c}", m.name),
        )),
        Some(_) => match data_matches(m.history.as_ref(), data) {
            Ok(()) => Ok((
                Boot::Master,
                format!("{}: this pod is the committed master and holds its data", m.name),
            )),
            Err(why) => Ok((
                Boot::Nothing,
                format!(
                    "{}: this pod is the committed master but {why}: the group will promote another pod",
                    m.name
                ),
            )),
        },
    }
}

/// The command line of `boot-redis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootArgs {
    pub config: PathBuf,
    pub run_dir: PathBuf,
    pub wait: Duration,
    /// `redis-server <redis.conf> [args…]`.
    pub command: Vec<OsString>,
}

/// What boot-redis reads in redis.conf (and the arguments after it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RedisConf {
    port: u16,
    /// The line of `port` (0: not in the file).
    port_line: usize,
    dir: PathBuf,
    dbfilename: String,
    appenddirname: String,
}

fn read_redis_conf(path: &Path, args: &[String]) -> Result<RedisConf, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}:0: can't read the file: {e}", path.display()))?;
    let mut c = RedisConf {
        port: 6379,
        port_line: 0,
        dir: PathBuf::from("."),
        dbfilename: "dump.rdb".into(),
        appenddirname: "appendonlydir".into(),
    };
    let mut set = |key: &str, value: &str, line: usize| -> Result<(), String> {
        let value = value.trim_matches('"');
        match key {
            "port" => {
                c.port = value.parse().map_err(|_| {
                    format!("{}:{line}: port {value:?} is not a port", path.display())
                })?;
                c.port_line = line;
            }
            "dir" => c.dir = PathBuf::from(value),
            "dbfilename" => c.dbfilename = value.to_string(),
            "appenddirname" => c.appenddirname = value.to_string(),
            _ => {}
        }
        Ok(())
    };
    for (i, l) in text.lines().enumerate() {
        let mut words = l.split_whitespace();
        if let (Some(k), Some(v)) = (words.next(), words.next()) {
            if !k.starts_with('#') {
                set(&k.to_ascii_lowercase(), v, i + 1)?;
            }
        }
    }
    // `--port 6380` and the like after the file override it (line 0).
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let (Some(k), Some(v)) = (a.strip_prefix("--"), it.clone().next()) {
            set(&k.to_ascii_lowercase(), v, 0)?;
        }
    }
    Ok(c)
}

fn local_data(c: &RedisConf) -> Result<LocalData, String> {
    let rdb_path = c.dir.join(&c.dbfilename);
    let rdb = super::rdb::read(&rdb_path).map_err(|e| format!("{}: {e}", rdb_path.display()))?;
    let aof = c.dir.join(&c.appenddirname);
    let has_aof = std::fs::read_dir(&aof).is_ok_and(|mut d| d.next().is_some());
    Ok(LocalData {
        dir: c.dir.clone(),
        has_data: rdb.is_some() || has_aof,
        rdb,
    })
}

/// Copies redis.conf where Redis may rewrite it (CONFIG REWRITE during a
/// failover): write a temporary file, then rename.
fn copy_conf(from: &Path, run_dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let to = run_dir.join("redis.conf");
    let tmp = run_dir.join(".redis.conf.tmp");
    std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::rename(&tmp, &to))
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
    Ok(to)
}

/// Runs boot-redis; returns only on failure, with the exit status.
pub fn run(args: BootArgs) -> u8 {
    let fail = |code: u8, why: String| {
        eprintln!("boot-redis: {why}");
        code
    };
    let (daemon, cfg) = match Daemon::from_config(&args.config) {
        Ok(d) => d,
        Err(e) => return fail(crate::config::EXIT_CONFIG as u8, e),
    };
    let (program, conf, rest) = match args.command.as_slice() {
        [p, c, rest @ ..] => (p.clone(), PathBuf::from(c), rest.to_vec()),
        _ => {
            return fail(
                crate::config::EXIT_CONFIG as u8,
                "usage: boot-redis --config <file> -- redis-server <redis.conf> [args…]".into(),
            )
        }
    };
    let rest_text: Vec<String> = rest
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let redis_conf = match read_redis_conf(&conf, &rest_text) {
        Ok(c) => c,
        Err(e) => return fail(crate::config::EXIT_CONFIG as u8, e),
    };
    let Some(master) = cfg.sentinel.masters.first() else {
        return fail(
            crate::config::EXIT_CONFIG as u8,
            format!(
                "{}: no [[masters]] to boot Redis for",
                args.config.display()
            ),
        );
    };
    if master.port != redis_conf.port {
        return fail(
            crate::config::EXIT_CONFIG as u8,
            format!(
                "{}:{}: Redis listens on port {}, but the daemon monitors {} on port {} ({})",
                conf.display(),
                redis_conf.port_line,
                redis_conf.port,
                master.name,
                master.port,
                args.config.display()
            ),
        );
    }
    let data = match local_data(&redis_conf) {
        Ok(d) => d,
        Err(e) => return fail(1, e),
    };
    let copy = match copy_conf(&conf, &args.run_dir) {
        Ok(c) => c,
        Err(e) => return fail(1, e),
    };
    let announce = cfg
        .sentinel
        .globals
        .announce_ip
        .clone()
        .filter(|a| !a.is_empty());
    let decided = local::block_on(wait_for_decision(&daemon, &data, args.wait));
    let (boot, why) = match decided.and_then(|d| d) {
        Ok(d) => d,
        Err(e) => return fail(1, e),
    };
    let mut cmd = std::process::Command::new(program);
    cmd.arg(&copy).args(&rest);
    if let Some(a) = &announce {
        cmd.args(["--replica-announce-ip", a]);
    }
    let role = match &boot {
        Boot::Master => "as the master".to_string(),
        Boot::ReplicaOf(a) => {
            cmd.args(["--replicaof", &a.host, &a.port.to_string()]);
            format!("as a replica of {a}")
        }
        Boot::Nothing => {
            cmd.args(["--replicaof", NOTHING.0, &NOTHING.1.to_string()]);
            "as a replica of nothing".to_string()
        }
    };
    eprintln!("boot-redis: starting Redis {role}: {why}");
    use std::os::unix::process::CommandExt;
    let e = cmd.exec();
    fail(1, format!("cannot run redis-server: {e}"))
}

/// Asks the local daemon every second until it can answer, saying why it
/// waits once per change; after `wait`, a replica of nothing.
async fn wait_for_decision(
    daemon: &Daemon,
    data: &LocalData,
    wait: Duration,
) -> Result<(Boot, String), String> {
    let started = tokio::time::Instant::now();
    let mut log = OnChange::default();
    loop {
        let why = match daemon.status().await {
            Ok(s) => match decide(&s, data) {
                Ok(d) => return Ok(d),
                Err(why) => why,
            },
            Err(e) => e,
        };
        if started.elapsed() >= wait {
            return Ok((
                Boot::Nothing,
                format!(
                    "no answer from the group after {} s ({why}); the daemon re-points it once \
                     the group has a committed master",
                    wait.as_secs()
                ),
            ));
        }
        log.say(format!("boot-redis: waiting for the group: {why}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::status::{Daemon as Member, Group, MasterStatus};
    use super::*;

    fn addr(h: &str) -> Addr {
        Addr {
            host: h.into(),
            port: 6379,
        }
    }

    fn status(committed: Option<&str>, history: Option<ReplHistory>) -> Status {
        Status {
            announce_ip: Some("pod-1".into()),
            group: Group {
                running: true,
                loaded: true,
                voter: true,
                leader: Some(Member::default()),
                leader_heard_ms: Some(10),
                lease_ms: 1000,
                ..Group::default()
            },
            masters: vec![MasterStatus {
                name: "m".into(),
                committed: committed.map(addr),
                configured: addr("pod-0"),
                config_epoch: 1,
                history,
                failover: None,
                last_failover: None,
                fenced: Vec::new(),
                this_pod: committed == Some("pod-1"),
                nodes: vec![],
                sentinels: vec![],
            }],
            ..Status::default()
        }
    }

    fn history(offset: u64) -> ReplHistory {
        ReplHistory {
            replid: "a".repeat(40),
            replid2: "b".repeat(40),
            offset,
        }
    }

    fn data(id: &str, offset: u64) -> LocalData {
        LocalData {
            dir: "/data".into(),
            rdb: Some(RdbInfo {
                repl_id: Some(id.into()),
                repl_offset: Some(offset),
            }),
            has_data: true,
        }
    }

    #[test]
    fn a_replica_follows_the_committed_master() {
        let (b, _) = decide(&status(Some("pod-2"), None), &LocalData::default()).unwrap();
        assert_eq!(b, Boot::ReplicaOf(addr("pod-2")));
    }

    #[test]
    fn the_committed_master_starts_as_master_only_on_its_history() {
        let s = status(Some("pod-1"), Some(history(100)));
        let a = "a".repeat(40);
        assert_eq!(decide(&s, &data(&a, 150)).unwrap().0, Boot::Master);
        assert_eq!(decide(&s, &data(&a, 100)).unwrap().0, Boot::Master);
        let (b, why) = decide(&s, &data(&a, 99)).unwrap();
        assert_eq!(b, Boot::Nothing, "behind the recorded offset");
        assert!(why.contains("offset 99, the group recorded"), "{why}");
        let (b, _) = decide(&s, &data(&"b".repeat(40), 500)).unwrap();
        assert_eq!(
            b,
            Boot::Nothing,
            "another history (the one before the promotion)"
        );
        let (b, why) = decide(&s, &LocalData::default()).unwrap();
        assert_eq!(b, Boot::Nothing, "a wiped volume");
        assert!(why.contains("no RDB file"), "{why}");
        // Nothing recorded: the master the set was created with.
        assert_eq!(
            decide(&status(Some("pod-1"), None), &LocalData::default())
                .unwrap()
                .0,
            Boot::Master
        );
    }

    #[test]
    fn a_new_set_starts_from_the_configuration() {
        let mut s = status(None, None);
        assert_eq!(
            decide(&s, &LocalData::default()).unwrap().0,
            Boot::ReplicaOf(addr("pod-0"))
        );
        s.announce_ip = Some("POD-0".into());
        assert_eq!(decide(&s, &LocalData::default()).unwrap().0, Boot::Master);
    }

    #[test]
    fn no_answer_without_a_leader_a_vote_or_the_state() {
        let mut s = status(Some("pod-1"), None);
        s.group.leader_heard_ms = Some(5000);
        assert!(decide(&s, &LocalData::default())
            .unwrap_err()
            .contains("no leader"));
        s.group.leader_heard_ms = Some(1);
        s.group.voter = false;
        assert!(decide(&s, &LocalData::default())
            .unwrap_err()
            .contains("not a voter"));
        s.group.voter = true;
        s.group.loaded = false;
        assert!(decide(&s, &LocalData::default())
            .unwrap_err()
            .contains("loading"));
    }

    #[test]
    fn redis_conf_port_dir_and_overrides() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("redis.conf");
        std::fs::write(&p, "# c\nport 6380\ndir /data\nappendonly yes\n").unwrap();
        let c = read_redis_conf(&p, &[]).unwrap();
        assert_eq!((c.port, c.port_line), (6380, 2));
        assert_eq!(c.dir, PathBuf::from("/data"));
        let c = read_redis_conf(&p, &["--port".into(), "6379".into()]).unwrap();
        assert_eq!((c.port, c.port_line), (6379, 0));
        std::fs::write(&p, "port x\n").unwrap();
        assert!(read_redis_conf(&p, &[])
            .unwrap_err()
            .ends_with(":1: port \"x\" is not a port"));
    }
}
