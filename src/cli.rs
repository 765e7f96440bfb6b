//! Command line: the redis-sentinel forms plus raftinel's own subcommands.
//!
//! Accepted: `raftinel <conf> [--opt val ...]`,
//! `redis-sentinel <conf> [...]` (a symlink: the mode comes from argv[0]
//! like Debian's packaging), `redis-server <conf> --sentinel [...]`; the
//! overrides are redis-style `--directive value...` words handed to the
//! config loader (`--sentinel` itself is dropped). Subcommands:
//! `check-config FILE [overrides]`, `demo`, `members` and `forget NODE-ID`
//! (sent to a running daemon as `SENTINEL RAFT ...`), and for pods
//! `boot-redis` and `ctl status|prestop` (see `pod`); and `--version`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "raftinel",
    version,
    about = "Redis failover daemon, drop-in compatible with redis-sentinel 7.0.15",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// The sentinel.conf file (must be writable: learned state is saved there).
    config: Option<PathBuf>,
    /// Redis-style overrides, e.g. `--port 26380 --sentinel announce-ip 10.0.0.1`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    overrides: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Print the effective configuration (file + overrides) and exit; exit 64 on error.
    CheckConfig {
        file: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        overrides: Vec<String>,
    },
    /// Run a local demo: real redis-server processes, three daemons, a killed master.
    Demo,
    /// List the Raft group's members, as a running daemon sees them.
    Members {
        #[command(flatten)]
        target: Target,
    },
    /// Remove a departed daemon from the Raft group (SENTINEL RAFT FORGET).
    Forget {
        /// The node id (see `raftinel members` or `INFO raft`).
        node_id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// The redis container's entry point: start Redis as the group says
    /// (never a master the group did not choose).
    BootRedis {
        /// The daemon's raftinel.toml (`${NAME}` expanded).
        #[arg(long)]
        config: PathBuf,
        /// Where redis.conf is copied (writable, for CONFIG REWRITE).
        #[arg(long, default_value = "/run/redis")]
        run_dir: PathBuf,
        /// Seconds to wait for the group before starting as a replica of nothing.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// `redis-server <redis.conf> [args…]`, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
    /// Ask the daemon of this pod.
    Ctl {
        #[command(subcommand)]
        what: CtlSub,
    },
}

#[derive(Debug, Subcommand)]
enum CtlSub {
    /// What the daemon knows: per master the committed address, epoch, last
    /// failover and every node; the group's term, leader and voters.
    Status {
        #[arg(long)]
        config: PathBuf,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The preStop hook: switch the master away from this pod (or, with
    /// --wait-only, wait until it is away); exit 1 at the deadline.
    Prestop {
        #[arg(long)]
        config: PathBuf,
        /// Seconds.
        #[arg(long)]
        deadline: u64,
        /// Start nothing; wait until this pod no longer holds a master.
        #[arg(long)]
        wait_only: bool,
    },
}

/// Which daemon an admin subcommand talks to.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Target {
    /// Host of any daemon of the group.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Its sentinel port.
    #[arg(long, default_value_t = 26379)]
    pub port: u16,
    /// ACL user to authenticate as.
    #[arg(long)]
    pub user: Option<String>,
    /// Password (else the RAFTINEL_PASSWORD environment variable, if set).
    #[arg(long, env = "RAFTINEL_PASSWORD", hide_env_values = true)]
    pub pass: Option<String>,
}

/// What the process was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run {
        config: PathBuf,
        overrides: Vec<String>,
    },
    CheckConfig {
        config: PathBuf,
        overrides: Vec<String>,
    },
    Demo,
    /// `SENTINEL RAFT <args>` sent to `target`.
    RaftAdmin {
        target: Target,
        args: Vec<String>,
    },
    BootRedis(crate::pod::boot::BootArgs),
    Ctl(crate::pod::ctl::Ctl),
}

/// A command line that cannot be run, with the exit code to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub code: i32,
}

/// `--sentinel` selects the mode; it is not a config directive.
fn strip_sentinel_flag(words: Vec<String>) -> (Vec<String>, bool) {
    let had = words.iter().any(|w| w == "--sentinel");
    (
        words.into_iter().filter(|w| w != "--sentinel").collect(),
        had,
    )
}

/// Parses the command line. `Err(clap error)` covers --help / --version
/// (clap prints those itself via `exit()`).
pub fn parse<I, T>(argv: I) -> Result<Command, Refusal>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let invoked_as = argv
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let args = match Args::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 64,
            };
            return Err(Refusal {
                message: e.render().to_string(),
                code,
            });
        }
    };
    match args.command {
        Some(Sub::CheckConfig { file, overrides }) => Ok(Command::CheckConfig {
            config: file,
            overrides: strip_sentinel_flag(overrides).0,
        }),
        Some(Sub::Demo) => Ok(Command::Demo),
        Some(Sub::Members { target }) => Ok(Command::RaftAdmin {
            target,
            args: vec!["MEMBERS".into()],
        }),
        Some(Sub::Forget { node_id, target }) => Ok(Command::RaftAdmin {
            target,
            args: vec!["FORGET".into(), node_id.to_string()],
        }),
        Some(Sub::BootRedis {
            config,
            run_dir,
            wait,
            command,
        }) => Ok(Command::BootRedis(crate::pod::boot::BootArgs {
            config,
            run_dir,
            wait: std::time::Duration::from_secs(wait),
            command,
        })),
        Some(Sub::Ctl { what }) => Ok(Command::Ctl(match what {
            CtlSub::Status { config, json } => crate::pod::ctl::Ctl::Status { config, json },
            CtlSub::Prestop {
                config,
                deadline,
                wait_only,
            } => crate::pod::ctl::Ctl::Prestop {
                config,
                deadline: std::time::Duration::from_secs(deadline),
                wait_only,
            },
        })),
        None => {
            let (overrides, sentinel_flag) = strip_sentinel_flag(args.overrides);
            if invoked_as == "redis-server" && !sentinel_flag {
                return Err(Refusal {
                    message: "raftinel only implements sentinel mode: run it as \
                              `redis-server <config> --sentinel` or `redis-sentinel <config>`"
                        .into(),
                    code: 1,
                });
            }
            match args.config {
                Some(config) if config.as_os_str() != "--sentinel" => {
                    Ok(Command::Run { config, overrides })
                }
                // Same words and exit status as redis-sentinel without a file.
                _ => Err(Refusal {
                    message: "Sentinel needs config file on disk to save state. Exiting...".into(),
                    code: 1,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &str, overrides: &[&str]) -> Command {
        Command::Run {
            config: config.into(),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn daemon_forms() {
        assert_eq!(parse(["raftinel", "s.conf"]).unwrap(), run("s.conf", &[]));
        assert_eq!(
            parse(["raftinel", "s.conf", "--port", "26380", "--sentinel"]).unwrap(),
            run("s.conf", &["--port", "26380"])
        );
        assert_eq!(
            parse([
                "/usr/bin/redis-sentinel",
                "/etc/s.conf",
                "--daemonize",
                "no"
            ])
            .unwrap(),
            run("/etc/s.conf", &["--daemonize", "no"])
        );
        assert_eq!(
            parse(["redis-server", "s.conf", "--sentinel", "--port", "1"]).unwrap(),
            run("s.conf", &["--port", "1"])
        );
        assert_eq!(
            parse([
                "raftinel",
                "s.conf",
                "--sentinel",
                "announce-ip",
                "10.0.0.1"
            ])
            .unwrap(),
            run("s.conf", &["announce-ip", "10.0.0.1"])
        );
    }

    #[test]
    fn refusals() {
        let e = parse(["redis-server", "s.conf"]).unwrap_err();
        assert_eq!(e.code, 1);
        let e = parse(["redis-sentinel"]).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.message.contains("Sentinel needs config file"));
        let e = parse(["raftinel", "--version"]).unwrap_err();
        assert_eq!(e.code, 0);
        assert!(e.message.contains("raftinel"));
    }

    #[test]
    fn subcommands() {
        assert_eq!(
            parse(["raftinel", "check-config", "a.conf", "--port", "2"]).unwrap(),
            Command::CheckConfig {
                config: "a.conf".into(),
                overrides: vec!["--port".into(), "2".into()]
            }
        );
        assert_eq!(parse(["raftinel", "demo"]).unwrap(), Command::Demo);
        match parse(["raftinel", "forget", "42", "--port", "26380"]).unwrap() {
            Command::RaftAdmin { target, args } => {
                assert_eq!(target.port, 26380);
                assert_eq!(args, vec!["FORGET".to_string(), "42".into()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(["raftinel", "forget", "x"]).unwrap_err().code, 64);
    }

    #[test]
    fn pod_subcommands() {
        match parse([
            "raftinel",
            "boot-redis",
            "--config",
            "/etc/raftinel/raftinel.toml",
            "--",
            "redis-server",
            "/etc/redis/redis.conf",
            "--loglevel",
            "verbose",
        ])
        .unwrap()
        {
            Command::BootRedis(b) => {
                assert_eq!(b.run_dir, PathBuf::from("/run/redis"));
                assert_eq!(b.wait, std::time::Duration::from_secs(30));
                assert_eq!(b.command.len(), 4);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(["raftinel", "boot-redis", "--config", "c"])
                .unwrap_err()
                .code,
            64,
            "no command"
        );
        assert_eq!(
            parse([
                "raftinel",
                "ctl",
                "prestop",
                "--config",
                "c",
                "--deadline",
                "20",
                "--wait-only"
            ])
            .unwrap(),
            Command::Ctl(crate::pod::ctl::Ctl::Prestop {
                config: "c".into(),
                deadline: std::time::Duration::from_secs(20),
                wait_only: true
            })
        );
        assert_eq!(
            parse(["raftinel", "ctl", "status", "--config", "c", "--json"]).unwrap(),
            Command::Ctl(crate::pod::ctl::Ctl::Status {
                config: "c".into(),
                json: true
            })
        );
        assert_eq!(
            parse(["raftinel", "ctl", "prestop", "--config", "c"])
                .unwrap_err()
                .code,
            64
        );
    }
}
