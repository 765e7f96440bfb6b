//! Helpers for the unit tests that talk to a real `redis-server` (links,
//! runtime). Without redis-server on PATH such a test is skipped, except under
//! CI, where that is a setup error.

use std::path::{Path, PathBuf};

/// redis-server's path; None means "skip" (and panics when `CI` is set).
pub fn redis_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("redis-server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is not on PATH (CI installs it through .ci/deps)"
        );
        eprintln!("redis-server not on PATH: skipped");
    }
    found
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts redis-server on `port` (no persistence, its files in `dir`), with
/// extra arguments; killed when the child is dropped.
pub fn spawn_redis(redis: &Path, dir: &Path, port: u16, extra: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(redis)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir)
        .arg("--dbfilename")
        .arg(format!("{port}.rdb"))
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start redis-server")
}
