//! Builds the measured topology on loopback: M masters (redis-server), R replicas each, and D daemons of one
//! kind (redis-sentinel or raftinel) started from the same generated sentinel.conf. Also the readiness check
//! (every daemon sees every replica and every peer) that precedes a measurement.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use tokio::time::Instant;

use crate::procs::{free_port, Proc, WorkDir};
use crate::resp::{call_once, V};

/// The daemon under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Kind {
    #[serde(rename = "redis-sentinel")]
    RedisSentinel,
    #[serde(rename = "raftinel")]
    Raftinel,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::RedisSentinel => "redis-sentinel",
            Kind::Raftinel => "raftinel",
        }
    }
}

/// Paths of the programs the bench runs.
#[derive(Debug, Clone, Serialize)]
pub struct Bins {
    pub redis_server: PathBuf,
    pub redis_sentinel: PathBuf,
    pub redis_benchmark: PathBuf,
    pub raftinel: PathBuf,
}

impl Bins {
    pub fn daemon(&self, kind: Kind) -> &PathBuf {
        match kind {
            Kind::RedisSentinel => &self.redis_sentinel,
            Kind::Raftinel => &self.raftinel,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TopoSpec {
    pub masters: usize,
    pub replicas: usize,
    pub daemons: usize,
    pub quorum: usize,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
}

pub struct Group {
    pub name: String,
    pub master: Proc,
    pub replicas: Vec<Proc>,
}

pub struct Topology {
    pub kind: Kind,
    pub groups: Vec<Group>,
    pub daemons: Vec<Proc>,
    pub daemon_logs: Vec<PathBuf>,
    // Dropped last: the processes above are killed first.
    pub _dir: WorkDir,
}

/// How long the daemons took to see everything; `ready == false` is a result, not an error.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub after_ms: u64,
    pub detail: String,
}

pub const T_CALL: Duration = Duration::from_millis(500);

pub fn master_name(spec: &TopoSpec, i: usize) -> String {
    if spec.masters == 1 {
        "mymaster".to_string()
    } else {
        format!("m{i:03}")
    }
}

fn redis_args(dir: &std::path::Path, port: u16, replicaof: Option<u16>) -> Vec<String> {
    let mut a = vec![
        "--port".to_string(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        "".into(),
        "--appendonly".into(),
        "no".into(),
        "--daemonize".into(),
        "no".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--logfile".into(),
        dir.join(format!("redis-{port}.log")).display().to_string(),
    ];
    if let Some(m) = replicaof {
        a.extend(["--replicaof".into(), "127.0.0.1".into(), m.to_string()]);
    }
    a
}

/// Waits until `port` answers PING (bounded).
pub async fn wait_ping(p: &mut Proc, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(V::Simple(s)) = call_once(p.port, &["PING"], T_CALL).await {
            if s == "PONG" {
                return Ok(());
            }
        }
        if let Some(st) = p.exited() {
            bail!("{} (port {}) exited at startup: {st}", p.name, p.port);
        }
        if Instant::now() > deadline {
            bail!(
                "{} (port {}) did not answer PING within {limit:?}",
                p.name,
                p.port
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_link_up(port: u16, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(v) = call_once(port, &["INFO", "replication"], T_CALL).await {
            if v.text()
                .is_some_and(|t| t.contains("master_link_status:up"))
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("replica on port {port}: replication link not up within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `count` processes concurrently-waited: spawn all, then wait for every PING.
async fn wait_all(procs: &mut [Proc], limit: Duration) -> Result<()> {
    let mut set = tokio::task::JoinSet::new();
    // Probe by port only (the Proc stays here so it is killed on any error).
    for p in procs.iter() {
        let port = p.port;
        let name = p.name.clone();
        set.spawn(async move {
            let deadline = Instant::now() + limit;
            loop {
                if let Ok(V::Simple(s)) = call_once(port, &["PING"], T_CALL).await {
                    if s == "PONG" {
                        return Ok(());
                    }
                }
                if Instant::now() > deadline {
                    return Err(anyhow!(
                        "{name} (port {port}) did not answer PING within {limit:?}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| anyhow!("join: {e}"))??;
    }
    for p in procs.iter_mut() {
        if let Some(st) = p.exited() {
            bail!("{} exited: {st}", p.name);
        }
    }
    Ok(())
}

/// Starts the data nodes (masters then replicas) and waits for replication links.
pub async fn start_data(bins: &Bins, spec: &TopoSpec, dir: &WorkDir) -> Result<Vec<Group>> {
    let mut masters = Vec::new();
    for i in 0..spec.masters {
        let port = free_port()?;
        masters.push(Proc::spawn(
            format!("master {}", master_name(spec, i)),
            port,
            &bins.redis_server,
            &redis_args(&dir.0, port, None),
        )?);
    }
    wait_all(&mut masters, Duration::from_secs(20)).await?;
    let mut groups = Vec::new();
    for (i, m) in masters.into_iter().enumerate() {
        let mut replicas = Vec::new();
        for _ in 0..spec.replicas {
            let port = free_port()?;
            replicas.push(Proc::spawn(
                format!("replica of {}", master_name(spec, i)),
                port,
                &bins.redis_server,
                &redis_args(&dir.0, port, Some(m.port)),
            )?);
        }
        groups.push(Group {
            name: master_name(spec, i),
            master: m,
            replicas,
        });
    }
    for g in groups.iter_mut() {
        wait_all(&mut g.replicas, Duration::from_secs(20)).await?;
    }
    let mut set = tokio::task::JoinSet::new();
    for g in &groups {
        for r in &g.replicas {
            let port = r.port;
            set.spawn(async move { wait_link_up(port, Duration::from_secs(30)).await });
        }
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| anyhow!("join: {e}"))??;
    }
    Ok(groups)
}

/// The sentinel.conf both daemons get (only `port`, `dir` and `logfile` differ between daemons).
pub fn sentinel_conf(
    spec: &TopoSpec,
    groups: &[Group],
    port: u16,
    dir: &std::path::Path,
) -> String {
    let mut s = format!(
        "port {port}\nbind 127.0.0.1\ndaemonize no\nprotected-mode no\ndir {}\nlogfile {}\n",
        dir.display(),
        dir.join(format!("daemon-{port}.log")).display()
    );
    for g in groups {
        s.push_str(&format!(
            "sentinel monitor {} 127.0.0.1 {} {}\n\
             sentinel down-after-milliseconds {} {}\n\
             sentinel failover-timeout {} {}\n\
             sentinel parallel-syncs {} 1\n",
            g.name,
            g.master.port,
            spec.quorum,
            g.name,
            spec.down_after_ms,
            g.name,
            spec.failover_timeout_ms,
            g.name
        ));
    }
    s
}

impl Topology {
    /// Data nodes, then the daemons; returns once every daemon answers PING.
    pub async fn start(bins: &Bins, kind: Kind, spec: &TopoSpec) -> Result<Topology> {
        let dir = WorkDir::new(kind.name())?;
        let groups = start_data(bins, spec, &dir).await?;
        let mut daemons = Vec::new();
        let mut daemon_logs = Vec::new();
        for i in 0..spec.daemons {
            let port = free_port()?;
            let ddir = dir.0.join(format!("daemon-{i}"));
            std::fs::create_dir_all(&ddir)?;
            let conf = ddir.join("sentinel.conf");
            std::fs::write(&conf, sentinel_conf(spec, &groups, port, &ddir))?;
            daemon_logs.push(ddir.join(format!("daemon-{port}.log")));
            daemons.push(Proc::spawn(
                format!("{} #{}", kind.name(), i + 1),
                port,
                bins.daemon(kind),
                &[conf.display().to_string()],
            )?);
        }
        for (d, log) in daemons.iter_mut().zip(&daemon_logs) {
            // redis-sentinel fsyncs its config for every replica and peer it discovers, without answering
            // in between: with many masters it is unresponsive for a while at startup.
            let limit = Duration::from_secs(15 + spec.masters as u64 * 3 / 10);
            if let Err(e) = wait_ping(d, limit).await {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(10)..].join("\n");
                bail!("{e}; end of its log:\n{tail}");
            }
        }
        Ok(Topology {
            kind,
            groups,
            daemons,
            daemon_logs,
            _dir: dir,
        })
    }

    /// Daemons that have exited: name, status and the end of the log.
    pub fn exits(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (d, log) in self.daemons.iter_mut().zip(&self.daemon_logs) {
            if let Some(status) = d.exited() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                out.push(format!("{} exited ({status}); log tail:\n{tail}", d.name));
            }
        }
        out
    }

    pub fn daemon_ports(&self) -> Vec<u16> {
        self.daemons.iter().map(|d| d.port).collect()
    }

    /// Waits until every daemon reports, for every master, at least `replicas` replicas and
    /// `daemons - 1` other sentinels (bounded by `limit`).
    pub async fn wait_ready(&mut self, spec: &TopoSpec, limit: Duration) -> Result<Readiness> {
        let start = Instant::now();
        let want_peers = spec.daemons.saturating_sub(1);
        loop {
            let mut missing = Vec::new();
            for d in &self.daemons {
                match call_once(d.port, &["SENTINEL", "MASTERS"], Duration::from_secs(2)).await {
                    Ok(v) => {
                        let masters = v.items();
                        if masters.len() != spec.masters {
                            missing.push(format!("{}: {} masters", d.name, masters.len()));
                            continue;
                        }
                        let mut bad = 0;
                        for m in masters {
                            let p = m.pairs();
                            let get = |k: &str| {
                                p.iter()
                                    .find(|(kk, _)| kk == k)
                                    .and_then(|(_, v)| v.parse::<usize>().ok())
                                    .unwrap_or(0)
                            };
                            if get("num-slaves") < spec.replicas
                                || get("num-other-sentinels") < want_peers
                            {
                                bad += 1;
                            }
                        }
                        if bad > 0 {
                            missing.push(format!(
                                "{}: {bad} masters without all replicas/peers",
                                d.name
                            ));
                        }
                    }
                    Err(e) => missing.push(format!("{}: {e}", d.name)),
                }
            }
            for d in self.daemons.iter_mut() {
                if let Some(st) = d.exited() {
                    bail!("{} exited during setup: {st}", d.name);
                }
            }
            let after_ms = start.elapsed().as_millis() as u64;
            if missing.is_empty() {
                return Ok(Readiness {
                    ready: true,
                    after_ms,
                    detail: String::new(),
                });
            }
            if start.elapsed() > limit {
                return Ok(Readiness {
                    ready: false,
                    after_ms,
                    detail: missing.join("; "),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
