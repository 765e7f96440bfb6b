//! Processes the bench starts (redis-server, redis-sentinel, raftinel), free loopback ports, scratch
//! directories and /proc sampling. Every child is killed when its `Proc` is dropped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use tokio::process::{Child, Command};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free loopback port. Ports are taken below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`) and checked by binding them: with hundreds of processes opening outbound
/// connections, a port picked by binding port 0 is itself ephemeral and can be taken by an outbound socket
/// before the child binds it. Falls back to binding port 0 when nothing below the range is free. Ports handed
/// out in this process are never returned twice.
pub fn free_port() -> Result<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let mut g = HANDED_OUT
        .lock()
        .map_err(|_| anyhow!("port registry poisoned"))?;
    let used = g.get_or_insert_with(HashSet::new);
    let (start, end) = (10_000u16, low.max(10_001));
    let span = u32::from(end - start);
    let offset = std::process::id() % span;
    for i in 0..span {
        let port = start + ((offset + i) % span) as u16;
        if used.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            used.insert(port);
            return Ok(port);
        }
    }
    for _ in 0..100 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind port 0")?;
        let port = l.local_addr()?.port();
        drop(l);
        if used.insert(port) {
            return Ok(port);
        }
    }
    Err(anyhow!("no free port found"))
}

/// A scratch directory removed on drop.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new(tag: &str) -> Result<WorkDir> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "raftinel-bench-{}-{}-{}",
            std::process::id(),
            tag,
            n
        ));
        std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(WorkDir(p))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, killed (SIGKILL) on drop.
pub struct Proc {
    pub name: String,
    pub port: u16,
    pub pid: u32,
    child: Child,
}

impl Proc {
    pub fn spawn(name: String, port: u16, program: &Path, args: &[String]) -> Result<Proc> {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {} ({})", name, program.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("{name}: no pid after spawn"))?;
        Ok(Proc {
            name,
            port,
            pid,
            child,
        })
    }

    pub fn signal(&self, sig: i32) -> Result<()> {
        let pid = libc::pid_t::try_from(self.pid).map_err(|_| anyhow!("pid out of range"))?;
        // SAFETY: kill(2) on a pid we spawned and have not reaped (the Child is still owned here).
        let rc = unsafe { libc::kill(pid, sig) };
        if rc != 0 {
            return Err(anyhow!(
                "kill({}, {sig}) failed: {}",
                self.pid,
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// `Some(status)` when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    pub fn sample(&self) -> Option<ProcSample> {
        sample(self.pid)
    }
}

/// RSS and cumulative CPU time of one process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcSample {
    pub rss_kb: u64,
    pub cpu_ticks: u64,
}

pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// VmRSS from /proc/<pid>/status and utime+stime from /proc/<pid>/stat.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields are counted after the closing parenthesis.
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after ')' : state(3) ... utime is field 14, stime 15 (1-based over the whole line) → index 11, 12 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(ProcSample {
        rss_kb,
        cpu_ticks: utime + stime,
    })
}

/// First line of `program --version`, or the error.
pub fn version_of(program: &Path) -> String {
    match std::process::Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => {
            let s = String::from_utf8_lossy(&o.stdout);
            s.lines().next().unwrap_or("").trim().to_string()
        }
        Err(e) => format!("unavailable ({e})"),
    }
}

/// Looks a program up on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
