//! `raftinel demo`: a self-contained tour on loopback. Starts a real Redis
//! master with two replicas, three raftinel daemons (this same binary, each
//! with its own generated sentinel.conf) with down-after 1000 ms, waits until
//! every daemon sees both replicas and both peers, prints what each sees,
//! subscribes to every event (`PSUBSCRIBE *`), SIGKILLs the master and prints
//! the event timeline with millisecond offsets. Everything runs in a fresh
//! temp dir that is removed at the end (processes are killed on drop, also on
//! errors).
//!
//! Before the kill it also waits until the daemons formed their Raft group
//! (CKQUORUM answers +OK everywhere). The watch ends when [`timeline_complete`]
//! says so (every daemon published +switch-master) or after [`WATCH_FOR`]; then
//! every daemon is asked for the master's address.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::resp::{encode_command, Frame, FrameReader, Limits};

const MASTER_NAME: &str = "mymaster";
const DOWN_AFTER_MS: u64 = 1000;
/// Longest wait for the daemons to discover replicas and each other (the
/// replicas show up at the master's first INFO, peers within a few hellos).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(40);
/// Longest time the event timeline is watched after the master is killed.
pub const WATCH_FOR: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "redis-server not found on PATH (install Redis 7, e.g. `apt-get install redis-server`)"
    )]
    NoRedis,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

/// Children killed on drop and a temp dir removed on drop.
struct Stage {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Drop for Stage {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> Result<u16, DemoError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn make_temp_dir() -> Result<PathBuf, DemoError> {
    let dir = std::env::temp_dir().join(format!(
        "raftinel-demo-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A minimal RESP2 client for the demo's own questions.
struct Client {
    io: FrameReader<TcpStream>,
}

impl Client {
    async fn connect(port: u16) -> Result<Client, DemoError> {
        let s = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(("127.0.0.1", port)))
            .await
            .map_err(|_| DemoError::Timeout(format!("connect to port {port}")))??;
        Ok(Client {
            io: FrameReader::new(s, Limits::LINK),
        })
    }

    async fn call(&mut self, args: &[&str]) -> Result<Frame, DemoError> {
        tokio::time::timeout(IO_TIMEOUT, async {
            self.io.get_mut().write_all(&encode_command(args)).await?;
            self.io
                .read()
                .await
                .map_err(|e| DemoError::Protocol(e.to_string()))
        })
        .await
        .map_err(|_| DemoError::Timeout(args.join(" ")))?
    }
}

fn text(r: &Frame) -> String {
    match r {
        Frame::Integer(n) => n.to_string(),
        _ => r.text().unwrap_or_default(),
    }
}

/// A flat RESP2 map (`SENTINEL MASTER`) as key/value pairs.
fn pairs(r: &Frame) -> Vec<(String, String)> {
    r.items()
        .chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((text(k), text(v))),
            _ => None,
        })
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// One event seen by one daemon.
#[derive(Debug, Clone)]
pub struct Seen {
    pub daemon: usize,
    pub at: Instant,
    pub channel: String,
    pub message: String,
}

/// When the demo has shown what it wants to show: the failover reached
/// every daemon.
pub fn timeline_complete(events: &[Seen], daemons: usize) -> bool {
    (0..daemons).all(|d| {
        events
            .iter()
            .any(|e| e.daemon == d && e.channel == "+switch-master")
    })
}

async fn spawn_redis(
    stage: &mut Stage,
    redis: &Path,
    port: u16,
    replicaof: Option<u16>,
) -> Result<(), DemoError> {
    let dir = stage.dir.join(format!("redis-{port}"));
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new(redis);
    cmd.arg("--port")
        .arg(port.to_string())
        // Replicas sync at once (7.0 waits 5 s by default before a diskless
        // full sync): a replica that never synced is, rightly, never promoted.
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--repl-diskless-sync-delay", "0"])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"));
    if let Some(master) = replicaof {
        cmd.args(["--replicaof", "127.0.0.1"])
            .arg(master.to_string());
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    stage.children.push((format!("redis:{port}"), child));
    wait_for_ping(port).await
}

async fn wait_for_ping(port: u16) -> Result<(), DemoError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = Client::connect(port).await {
            if let Ok(r) = c.call(&["PING"]).await {
                if text(&r) == "PONG" {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            return Err(DemoError::Timeout(format!(
                "process on port {port} to answer PING"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn spawn_daemon(
    stage: &mut Stage,
    exe: &Path,
    port: u16,
    master_port: u16,
) -> Result<(), DemoError> {
    let conf = stage.dir.join(format!("sentinel-{port}.conf"));
    let log = stage.dir.join(format!("sentinel-{port}.log"));
    // Each daemon keeps its state (config rewrites, Raft log) in its own dir.
    let home = stage.dir.join(format!("sentinel-{port}"));
    std::fs::create_dir_all(&home)?;
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\nlogfile {}\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {MASTER_NAME} 10000\n",
            home.display(),
            log.display()
        ),
    )?;
    let child = Command::new(exe)
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    stage.children.push((format!("raftinel:{port}"), child));
    if let Err(e) = wait_for_ping(port).await {
        // Show why the daemon did not come up (its log is about to be removed).
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        for line in tail.iter().rev() {
            eprintln!("  raftinel:{port} log: {line}");
        }
        return Err(e);
    }
    Ok(())
}

/// Runs the demo, printing to stdout.
pub async fn run() -> Result<(), DemoError> {
    let redis = find_on_path("redis-server").ok_or(DemoError::NoRedis)?;
    let exe = std::env::current_exe()?;
    let mut stage = Stage {
        dir: make_temp_dir()?,
        children: Vec::new(),
    };
    println!("raftinel demo in {}", stage.dir.display());

    let master = free_port()?;
    let replicas = [free_port()?, free_port()?];
    spawn_redis(&mut stage, &redis, master, None).await?;
    for r in replicas {
        spawn_redis(&mut stage, &redis, r, Some(master)).await?;
    }
    println!(
        "redis master 127.0.0.1:{master}, replicas 127.0.0.1:{} and 127.0.0.1:{}",
        replicas[0], replicas[1]
    );

    let daemons = [free_port()?, free_port()?, free_port()?];
    for d in daemons {
        spawn_daemon(&mut stage, &exe, d, master).await?;
    }
    println!(
        "raftinel daemons on ports {}, {}, {} (down-after {DOWN_AFTER_MS} ms, quorum 2)",
        daemons[0], daemons[1], daemons[2]
    );

    wait_for_discovery(&daemons).await?;
    wait_for_raft_group(&daemons).await?;
    print_views(&daemons).await?;
    let (mut rx, mut readers) = subscribe_all(&daemons).await?;

    let killed_at = Instant::now();
    if let Some((_, child)) = stage
        .children
        .iter_mut()
        .find(|(n, _)| n == &format!("redis:{master}"))
    {
        child.start_kill()?;
    }
    let events = watch(&mut rx, killed_at, master, daemons.len()).await;
    readers.abort_all();
    summarize(&events, killed_at, &daemons).await?;
    stop(&mut stage).await;
    Ok(())
}

/// Waits until every daemon sees both replicas in sync and both peers.
async fn wait_for_discovery(daemons: &[u16]) -> Result<(), DemoError> {
    print!("waiting for discovery ");
    let started = Instant::now();
    loop {
        let mut ready = 0;
        for &d in daemons {
            let mut c = Client::connect(d).await?;
            let m = pairs(&c.call(&["SENTINEL", "MASTER", MASTER_NAME]).await?);
            let synced = match c.call(&["SENTINEL", "REPLICAS", MASTER_NAME]).await? {
                Frame::Array(list) => list
                    .iter()
                    .filter(|r| field(&pairs(r), "master-link-status") == "ok")
                    .count(),
                _ => 0,
            };
            if field(&m, "num-slaves") == "2"
                && field(&m, "num-other-sentinels") == "2"
                && synced == 2
            {
                ready += 1;
            }
        }
        if ready == daemons.len() {
            break;
        }
        if started.elapsed() > DISCOVERY_TIMEOUT {
            println!();
            return Err(DemoError::Timeout(
                "daemons to discover replicas and peers".into(),
            ));
        }
        print!(".");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(" done in {} ms", started.elapsed().as_millis());

    Ok(())
}

/// Failover decisions are committed through Raft: waits for the group.
async fn wait_for_raft_group(daemons: &[u16]) -> Result<(), DemoError> {
    print!("waiting for the raft group ");
    let started = Instant::now();
    loop {
        let mut ok = 0;
        for &d in daemons {
            let mut c = Client::connect(d).await?;
            let info = text(&c.call(&["INFO", "raft"]).await?);
            let voters = info
                .lines()
                .find_map(|l| l.strip_prefix("raft_voters:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if voters == daemons.len()
                && info.contains("raft_leader_id:")
                && !info.contains("raft_leader_id:\r")
            {
                ok += 1;
            }
        }
        if ok == daemons.len() {
            break;
        }
        if started.elapsed() > DISCOVERY_TIMEOUT {
            println!();
            return Err(DemoError::Timeout(
                "daemons to form their raft group".into(),
            ));
        }
        print!(".");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(" done in {} ms", started.elapsed().as_millis());

    Ok(())
}

/// Prints what each daemon sees: the master, its replicas, its peers.
async fn print_views(daemons: &[u16]) -> Result<(), DemoError> {
    for (i, &d) in daemons.iter().enumerate() {
        let mut c = Client::connect(d).await?;
        let m = pairs(&c.call(&["SENTINEL", "MASTER", MASTER_NAME]).await?);
        println!(
            "[s{}:{d}] master {} {}:{} flags={} quorum={} replicas={} other-sentinels={}",
            i + 1,
            field(&m, "name"),
            field(&m, "ip"),
            field(&m, "port"),
            field(&m, "flags"),
            field(&m, "quorum"),
            field(&m, "num-slaves"),
            field(&m, "num-other-sentinels")
        );
        if let Frame::Array(list) = c.call(&["SENTINEL", "REPLICAS", MASTER_NAME]).await? {
            for r in &list {
                let r = pairs(r);
                println!(
                    "        replica {} flags={}",
                    field(&r, "name"),
                    field(&r, "flags")
                );
            }
        }
        if let Frame::Array(list) = c.call(&["SENTINEL", "SENTINELS", MASTER_NAME]).await? {
            for s in &list {
                let s = pairs(s);
                println!(
                    "        sentinel {}:{} runid {}",
                    field(&s, "ip"),
                    field(&s, "port"),
                    field(&s, "runid")
                );
            }
        }
    }

    Ok(())
}

/// Subscribes to every event (`PSUBSCRIBE *`) on every daemon.
async fn subscribe_all(
    daemons: &[u16],
) -> Result<(mpsc::UnboundedReceiver<Seen>, tokio::task::JoinSet<()>), DemoError> {
    let (tx, rx) = mpsc::unbounded_channel::<Seen>();
    let mut readers = tokio::task::JoinSet::new();
    for (i, &d) in daemons.iter().enumerate() {
        let mut c = Client::connect(d).await?;
        c.call(&["PSUBSCRIBE", "*"]).await?;
        let tx = tx.clone();
        readers.spawn(async move {
            while let Ok(Frame::Array(items)) = c.io.read().await {
                if let [kind, _pattern, channel, message] = items.as_slice() {
                    if text(kind) == "pmessage" {
                        let _ = tx.send(Seen {
                            daemon: i,
                            at: Instant::now(),
                            channel: text(channel),
                            message: text(message),
                        });
                    }
                }
            }
        });
    }
    drop(tx);

    Ok((rx, readers))
}

/// Prints the events as they arrive, until the timeline is complete or
/// [`WATCH_FOR`] has passed.
async fn watch(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    killed_at: Instant,
    master: u16,
    daemon_count: usize,
) -> Vec<Seen> {
    println!("\nSIGKILL master 127.0.0.1:{master} at t=0; events (ms after the kill):");
    let mut events: Vec<Seen> = Vec::new();
    let deadline = killed_at + WATCH_FOR;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    println!(
                        "{:>6} ms  [s{}] {} {}",
                        ev.at.duration_since(killed_at).as_millis(),
                        ev.daemon + 1,
                        ev.channel,
                        ev.message
                    );
                    events.push(ev);
                    if timeline_complete(&events, daemon_count) {
                        // Let the last related events arrive before stopping.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        while let Ok(ev) = rx.try_recv() {
                            println!(
                                "{:>6} ms  [s{}] {} {}",
                                ev.at.duration_since(killed_at).as_millis(),
                                ev.daemon + 1,
                                ev.channel,
                                ev.message
                            );
                        }
                        break;
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    events
}

/// When the first events came, and where each daemon now says the master is.
async fn summarize(events: &[Seen], killed_at: Instant, daemons: &[u16]) -> Result<(), DemoError> {
    let first = |channel: &str| {
        events
            .iter()
            .find(|e| e.channel == channel)
            .map(|e| format!("{} ms", e.at.duration_since(killed_at).as_millis()))
            .unwrap_or_else(|| "not seen".into())
    };
    let all_switched = events
        .iter()
        .filter(|e| e.channel == "+switch-master")
        .map(|e| e.at.duration_since(killed_at).as_millis())
        .max();
    println!(
        "\nsummary: first +sdown {}, first +odown {}, +switch-master on every daemon {}",
        first("+sdown"),
        first("+odown"),
        match all_switched {
            Some(ms) if timeline_complete(events, daemons.len()) => format!("by {ms} ms"),
            _ => "not reached".into(),
        }
    );
    for (i, &d) in daemons.iter().enumerate() {
        let mut c = Client::connect(d).await?;
        let addr = c
            .call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
            .await?;
        let addr = match addr {
            Frame::Array(v) => v.iter().map(text).collect::<Vec<_>>().join(":"),
            other => text(&other),
        };
        println!(
            "[s{}:{d}] SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER_NAME} -> {addr}",
            i + 1
        );
    }
    Ok(())
}

/// SIGTERM to the daemons, then waits a little for every child.
async fn stop(stage: &mut Stage) {
    println!("\nstopping (temp dir {} removed)", stage.dir.display());
    for (name, child) in stage.children.iter_mut() {
        if name.starts_with("raftinel") {
            if let Some(pid) = child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
                // SAFETY: our own un-reaped child.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
    }
    for (_, child) in stage.children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(3), child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_rule() {
        let at = Instant::now();
        let ev = |daemon, channel: &str| Seen {
            daemon,
            at,
            channel: channel.into(),
            message: String::new(),
        };
        let mut events = vec![
            ev(0, "+odown"),
            ev(0, "+switch-master"),
            ev(1, "+switch-master"),
        ];
        assert!(!timeline_complete(&events, 3));
        events.push(ev(2, "+switch-master"));
        assert!(timeline_complete(&events, 3));
    }

    #[test]
    fn map_fields() {
        let m = pairs(&Frame::command(&["name", "mymaster", "num-slaves", "2"]));
        assert_eq!(field(&m, "num-slaves"), "2");
        assert_eq!(field(&m, "missing"), "");
    }
}
