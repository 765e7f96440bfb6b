//! How the pod commands reach the daemon of their own pod: over the
//! configuration's sentinel port on this host, with its password, each call
//! under a deadline; and what they read back (the status snapshot).

use std::path::Path;
use std::time::Duration;

use super::status::Status;
use crate::config::{self, Config};
use crate::core::LinkAuth;

/// sysexits: the daemon cannot be reached or cannot answer.
pub const EXIT_UNAVAILABLE: u8 = 69;
/// How long one question to the local daemon may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The local daemon as the configuration describes it.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub host: String,
    pub port: u16,
    pub auth: LinkAuth,
    /// The credentials of the (first) master's Redis nodes.
    pub redis_auth: LinkAuth,
}

impl Daemon {
    /// From the configuration at `path` (`${NAME}` expanded). A bad file is
    /// the error, as `file:line: reason`.
    pub fn from_config(path: &Path) -> Result<(Daemon, Config), String> {
        let cfg = config::load(path, &[]).map_err(|e| e.to_string())?;
        let mut d = Daemon::of_server(&cfg.server);
        d.redis_auth = cfg
            .sentinel
            .masters
            .first()
            .map(|m| LinkAuth {
                user: m.auth_user.clone(),
                pass: m.auth_pass.clone(),
            })
            .unwrap_or_default();
        Ok((d, cfg))
    }

    /// The daemon serving `server` (no Redis credentials).
    pub fn of_server(server: &config::ServerConfig) -> Daemon {
        // A bind address that is not a wildcard is where the daemon
        // listens; else this host's loopback.
        let host = server
            .bind
            .iter()
            .map(|b| b.trim_start_matches('-'))
            .find(|b| !matches!(*b, "*" | "0.0.0.0" | "::" | "::*" | ""))
            .unwrap_or("127.0.0.1")
            .to_string();
        let pass = server
            .requirepass
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| std::env::var("RAFTINEL_PASSWORD").ok());
        Daemon {
            host,
            port: server.port,
            auth: LinkAuth { user: None, pass },
            redis_auth: LinkAuth::default(),
        }
    }

    /// `SENTINEL RAFT STATUS`, decoded.
    pub async fn status(&self) -> Result<Status, String> {
        let reply = super::client::call_one(
            &self.host,
            self.port,
            &self.auth,
            &["SENTINEL", "RAFT", "STATUS"],
            CALL_TIMEOUT,
        )
        .await
        .map_err(|e| format!("the local daemon at {}:{}: {e}", self.host, self.port))?;
        let text = super::client::text(reply)?;
        serde_json::from_str(&text).map_err(|e| format!("unreadable status: {e}"))
    }

    /// One command to the daemon; its reply.
    pub async fn command(&self, args: &[&str]) -> Result<crate::resp::Frame, String> {
        super::client::call_one(&self.host, self.port, &self.auth, args, CALL_TIMEOUT).await
    }
}

/// Runs `f` on a fresh current-thread runtime (the pod commands are short
/// programs, not the daemon).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(f))
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))
}

/// Logs `line` to stderr when it differs from the last one logged (one
/// line per change of state, not per retry).
#[derive(Default)]
pub struct OnChange(Option<String>);

impl OnChange {
    pub fn say(&mut self, line: String) {
        if self.0.as_deref() != Some(line.as_str()) {
            eprintln!("{line}");
            self.0 = Some(line);
        }
    }
}
