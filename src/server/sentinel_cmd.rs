//! SENTINEL and its subcommands, typed.
//!
//! [`SentinelCmd::parse`] turns the wire arguments into one variant per
//! subcommand, borrowing them (names are `Cow<str>`: borrowed when they are
//! UTF-8, which every master name is). The dispatcher has already checked the
//! subcommand name and its arity against the command table, so the parse here
//! only shapes arguments; a missing argument is still an arity error, never an
//! empty string.
//!
//! [`SentinelCmd::execute`] turns the command into a call on the core (which
//! holds every rule and error text, see `core::commands`), builds the RESP
//! reply and hands the actions the core returned to the daemon's executor once
//! the core lock is released (a flush reads the core).
//! The only I/O done here is what the core may not do: DNS for MONITOR with
//! resolve-hostnames, `access(X_OK)` on script paths.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use super::cmd::{arity_err, help};
use super::glob;
use super::Server;
use crate::core::commands::{MonitorArgs, SIMULATE_FAILURE_FLAGS};
use crate::core::{Action, CmdError, Description, Millis, Sentinel, SimulateReply};
use crate::resp::Frame;

const FLUSH_FAILED: &str = "ERR Failed to save config file. Check server logs.";

/// One SENTINEL subcommand with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum SentinelCmd<'a> {
    Help,
    Masters,
    Master(Cow<'a, str>),
    Replicas(Cow<'a, str>),
    Sentinels(Cow<'a, str>),
    GetMasterAddrByName(Cow<'a, str>),
    MyId,
    Monitor {
        name: Cow<'a, str>,
        host: Cow<'a, str>,
        port: Cow<'a, str>,
        quorum: Cow<'a, str>,
    },
    Remove(Cow<'a, str>),
    Set {
        name: Cow<'a, str>,
        options: Vec<String>,
    },
    Reset {
        pattern: &'a [u8],
    },
    /// `coordinated`: Valkey's `COORDINATED` argument, a coordinated
    /// switchover whatever the master's `coordinated-failover` says;
    /// `force`: raftinel's `FORCE`, selection without the history rules.
    Failover {
        name: Cow<'a, str>,
        coordinated: bool,
        force: bool,
    },
    CkQuorum(Cow<'a, str>),
    FlushConfig,
    IsMasterDownByAddr {
        ip: Cow<'a, str>,
        port: Cow<'a, str>,
        epoch: Cow<'a, str>,
        runid: Cow<'a, str>,
    },
    ConfigGet {
        pattern: &'a [u8],
    },
    ConfigSet {
        param: Cow<'a, str>,
        value: Cow<'a, str>,
    },
    InfoCache {
        names: Vec<String>,
    },
    DebugShow,
    DebugSet {
        args: Vec<String>,
    },
    SimulateFailure {
        flags: Vec<String>,
    },
    PendingScripts,
}

/// What to answer once the actions have run.
enum Outcome {
    Reply(Frame),
    /// `+OK` if the config flush succeeded, else the flush error.
    OkAfterFlush,
}

/// The arguments after the subcommand name, with typed access.
struct Args<'a> {
    sub: &'static str,
    rest: &'a [Vec<u8>],
}

impl<'a> Args<'a> {
    fn bytes(&self, i: usize) -> Result<&'a [u8], Frame> {
        self.rest
            .get(i)
            .map(Vec::as_slice)
            .ok_or_else(|| arity_err(&format!("sentinel|{}", self.sub)))
    }
    fn text(&self, i: usize) -> Result<Cow<'a, str>, Frame> {
        self.bytes(i).map(String::from_utf8_lossy)
    }
    /// Every argument from `i` on, as owned text (the core's option parsers
    /// take `&[String]`; only rarely used admin subcommands come here).
    fn texts_from(&self, i: usize) -> Vec<String> {
        self.rest
            .get(i..)
            .unwrap_or_default()
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
}

impl<'a> SentinelCmd<'a> {
    /// Parses `SENTINEL <sub> args...`; `sub` is the lower-case subcommand
    /// name the command table resolved, `argv` the whole request.
    pub fn parse(sub: &'static str, argv: &'a [Vec<u8>]) -> Result<SentinelCmd<'a>, Frame> {
        let a = Args {
            sub,
            rest: argv.get(2..).unwrap_or_default(),
        };
        Ok(match sub {
            "help" => SentinelCmd::Help,
            "masters" => SentinelCmd::Masters,
            "master" => SentinelCmd::Master(a.text(0)?),
            "replicas" | "slaves" => SentinelCmd::Replicas(a.text(0)?),
            "sentinels" => SentinelCmd::Sentinels(a.text(0)?),
            "get-master-addr-by-name" => SentinelCmd::GetMasterAddrByName(a.text(0)?),
            "myid" => SentinelCmd::MyId,
            "monitor" => SentinelCmd::Monitor {
                name: a.text(0)?,
                host: a.text(1)?,
                port: a.text(2)?,
                quorum: a.text(3)?,
            },
            "remove" => SentinelCmd::Remove(a.text(0)?),
            "set" => SentinelCmd::Set {
                name: a.text(0)?,
                options: a.texts_from(1),
            },
            "reset" => SentinelCmd::Reset {
                pattern: a.bytes(0)?,
            },
            "failover" => {
                let (coordinated, force) = match a.rest.get(1) {
                    None => (false, false),
                    Some(w) if w.eq_ignore_ascii_case(b"coordinated") => (true, false),
                    Some(w) if w.eq_ignore_ascii_case(b"force") => (false, true),
                    Some(_) => return Err(Frame::error("ERR syntax error")),
                };
                SentinelCmd::Failover {
                    name: a.text(0)?,
                    coordinated,
                    force,
                }
            }
            "ckquorum" => SentinelCmd::CkQuorum(a.text(0)?),
            "flushconfig" => SentinelCmd::FlushConfig,
            "is-master-down-by-addr" => SentinelCmd::IsMasterDownByAddr {
                ip: a.text(0)?,
                port: a.text(1)?,
                epoch: a.text(2)?,
                runid: a.text(3)?,
            },
            "config" => parse_config(&a)?,
            "info-cache" => SentinelCmd::InfoCache {
                names: a.texts_from(0),
            },
            "debug" if a.rest.is_empty() => SentinelCmd::DebugShow,
            "debug" => SentinelCmd::DebugSet {
                args: a.texts_from(0),
            },
            "simulate-failure" => SentinelCmd::SimulateFailure {
                flags: a.texts_from(0),
            },
            "pending-scripts" => SentinelCmd::PendingScripts,
            _ => {
                return Err(Frame::error(format!(
                    "ERR unknown subcommand '{}'. Try SENTINEL HELP.",
                    String::from_utf8_lossy(argv.get(1).map(Vec::as_slice).unwrap_or_default())
                )))
            }
        })
    }

    /// Runs the command against the core and answers. What may block is
    /// done off the core lock and off the async workers: MONITOR's name
    /// resolution before the lock is taken, the config flush after it is
    /// released, both on the blocking pool.
    pub async fn execute(self, server: &Server) -> Frame {
        match self {
            // The query clients send most (every connect, every reconnect,
            // health checks): one lock, no flush, no allocation but the reply.
            SentinelCmd::GetMasterAddrByName(name) => {
                hold_until_caught_up(server).await;
                master_addr_reply(master_addr_unless_paused(server, &name).await)
            }
            SentinelCmd::Help => help(SENTINEL_HELP),
            SentinelCmd::PendingScripts => pending_scripts(server),
            cmd => {
                if matches!(cmd, SentinelCmd::Masters | SentinelCmd::Master(_)) {
                    hold_until_caught_up(server).await;
                }
                let resolved = match &cmd {
                    SentinelCmd::Monitor { host, .. } => resolves(server, host).await,
                    _ => None,
                };
                let host_ip = |host: &str, resolve: bool| match host.parse::<IpAddr>() {
                    Ok(_) => Some(host.to_string()),
                    Err(_) => resolved.filter(|_| resolve).map(|ip| ip.to_string()),
                };
                let now = server.core.now();
                let (outcome, out) = server
                    .core
                    .lock()
                    .command(|core, out| cmd.run(core, now, &host_ip, out));
                let flushed = if out.is_empty() {
                    Ok(())
                } else {
                    super::execute_off_workers(&server.core, out).await
                };
                match outcome {
                    Outcome::Reply(v) => v,
                    Outcome::OkAfterFlush => match flushed {
                        Ok(()) => Frame::ok(),
                        Err(_) => Frame::error(FLUSH_FAILED),
                    },
                }
            }
        }
    }

    /// The part that runs under the core lock.
    fn run(
        self,
        core: &mut Sentinel,
        now: Millis,
        host_ip: &dyn Fn(&str, bool) -> Option<String>,
        out: &mut Vec<Action>,
    ) -> Outcome {
        match self {
            SentinelCmd::Masters => Outcome::Reply(Frame::Array(
                core.masters_desc(now).into_iter().map(desc).collect(),
            )),
            SentinelCmd::Master(name) => reply(core.master_desc(&name, now).map(desc)),
            SentinelCmd::Replicas(name) => descs(core.replicas_desc(&name, now)),
            SentinelCmd::Sentinels(name) => descs(core.sentinels_desc(&name, now)),
            SentinelCmd::GetMasterAddrByName(name) => {
                Outcome::Reply(master_addr_reply(core.master_addr(&name)))
            }
            SentinelCmd::MyId => Outcome::Reply(Frame::bulk(core.myid())),
            SentinelCmd::Monitor {
                name,
                host,
                port,
                quorum,
            } => {
                let args = MonitorArgs {
                    name: &name,
                    host: &host,
                    port: &port,
                    quorum: &quorum,
                };
                after_flush(core.monitor(now, args, host_ip, out))
            }
            SentinelCmd::Remove(name) => after_flush(core.remove(&name, out)),
            SentinelCmd::Set { name, options } => {
                after_flush(core.set(&name, &options, &executable, now, out))
            }
            SentinelCmd::Reset { pattern } => {
                let n = core.reset(
                    now,
                    &|name| glob::matches(pattern, name.as_bytes(), false),
                    out,
                );
                Outcome::Reply(Frame::Integer(n as i64))
            }
            SentinelCmd::Failover {
                name,
                coordinated,
                force,
            } => reply(
                if force {
                    core.failover_forced(&name, now, out)
                } else {
                    core.failover(&name, coordinated, now, out)
                }
                .map(|()| Frame::ok()),
            ),
            SentinelCmd::CkQuorum(name) => reply(core.ckquorum(&name).map(Frame::Simple)),
            SentinelCmd::FlushConfig => {
                out.push(Action::Flush);
                Outcome::OkAfterFlush
            }
            SentinelCmd::IsMasterDownByAddr {
                ip,
                port,
                epoch,
                runid,
            } => reply(
                core.is_master_down_by_addr(now, &ip, &port, &epoch, &runid, out)
                    .map(|(down, leader, epoch)| {
                        Frame::Array(vec![
                            Frame::Integer(down),
                            Frame::bulk(leader),
                            Frame::Integer(epoch),
                        ])
                    }),
            ),
            SentinelCmd::ConfigGet { pattern } => {
                let found = core.config_get(&|name| glob::matches(pattern, name.as_bytes(), true));
                Outcome::Reply(Frame::bulk_map(found))
            }
            SentinelCmd::ConfigSet { param, value } => {
                after_flush(core.config_set(&param, &value, out))
            }
            SentinelCmd::InfoCache { names } => {
                Outcome::Reply(info_cache_reply(core.info_cache(&names, now)))
            }
            SentinelCmd::DebugShow => Outcome::Reply(Frame::bulk_map(
                core.debug_info()
                    .into_iter()
                    .map(|(k, v)| (k, v.to_string())),
            )),
            SentinelCmd::DebugSet { args } => reply(core.debug_set(&args).map(|()| Frame::ok())),
            SentinelCmd::SimulateFailure { flags } => {
                reply(core.simulate_failure(&flags).map(|r| match r {
                    SimulateReply::Ok => Frame::ok(),
                    SimulateReply::Help => {
                        Frame::Array(SIMULATE_FAILURE_FLAGS.iter().map(Frame::bulk).collect())
                    }
                }))
            }
            // Answered without the core lock by `execute`.
            SentinelCmd::Help => Outcome::Reply(help(SENTINEL_HELP)),
            SentinelCmd::PendingScripts => Outcome::Reply(Frame::Array(Vec::new())),
        }
    }
}

/// SENTINEL CONFIG GET <pattern> / SET <param> <value> (7.0: exactly these
/// two shapes).
fn parse_config<'a>(a: &Args<'a>) -> Result<SentinelCmd<'a>, Frame> {
    let verb = a.bytes(0)?;
    if verb.eq_ignore_ascii_case(b"set") && a.rest.len() == 3 {
        return Ok(SentinelCmd::ConfigSet {
            param: a.text(1)?,
            value: a.text(2)?,
        });
    }
    if verb.eq_ignore_ascii_case(b"get") && a.rest.len() == 2 {
        return Ok(SentinelCmd::ConfigGet {
            pattern: a.bytes(1)?,
        });
    }
    Err(Frame::error(
        "ERR Only SENTINEL CONFIG GET <option> / SET <option> <value> are supported.",
    ))
}

/// A daemon restarted into its group answers which node is master only once
/// it heard the group (or `STARTUP_HOLD_MS` after its start): see
/// `Sentinel::answer_held`.
async fn hold_until_caught_up(server: &Server) {
    use std::sync::atomic::Ordering;
    if server.hold_over.load(Ordering::Relaxed) {
        return;
    }
    loop {
        let now = server.core.now();
        let (held, over) = {
            let core = server.core.lock();
            (core.answer_held(now), core.answer_hold_over(now))
        };
        if over {
            server.hold_over.store(true, Ordering::Relaxed);
        }
        if !held {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// How long an answer naming a master back empty that this daemon paused
/// waits for the switch: well within the 2 s that Jedis gives a sentinel's
/// answer by default.
const PAUSED_MASTER_HOLD_MS: u64 = 1500;

/// The master's address; while it is a node back empty that this daemon
/// paused (`Sentinel::master_addr_held`), the answer waits for the switch,
/// at most `PAUSED_MASTER_HOLD_MS` (then it names the paused node: writes
/// sent there wait, and are refused once it is demoted).
async fn master_addr_unless_paused(server: &Server, name: &str) -> Option<(String, u16)> {
    let mut since = None;
    loop {
        let (addr, held) = server.core.lock().master_addr_held(name);
        if !held {
            return addr;
        }
        let now = server.core.now();
        if now.saturating_sub(*since.get_or_insert(now)) >= PAUSED_MASTER_HOLD_MS {
            return addr;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn master_addr_reply(addr: Option<(String, u16)>) -> Frame {
    match addr {
        Some((host, port)) => Frame::Array(vec![
            Frame::Bulk(host.into_bytes()),
            Frame::Bulk(port.to_string().into_bytes()),
        ]),
        None => Frame::NullArray,
    }
}

fn reply(r: Result<Frame, CmdError>) -> Outcome {
    Outcome::Reply(r.unwrap_or_else(|e| Frame::Error(e.0)))
}

fn desc(d: Description) -> Frame {
    Frame::bulk_map(d)
}

fn descs(r: Result<Vec<Description>, CmdError>) -> Outcome {
    reply(r.map(|v| Frame::Array(v.into_iter().map(desc).collect())))
}

fn after_flush(r: Result<(), CmdError>) -> Outcome {
    match r {
        Ok(()) => Outcome::OkAfterFlush,
        Err(e) => Outcome::Reply(Frame::Error(e.0)),
    }
}

fn info_cache_reply(cache: crate::core::commands::InfoCache) -> Frame {
    let mut items = Vec::with_capacity(cache.len() * 2);
    for (name, entries) in cache {
        items.push(Frame::bulk(name));
        items.push(Frame::Array(
            entries
                .into_iter()
                .map(|(age, info)| {
                    Frame::Array(vec![
                        Frame::Integer(age),
                        info.map_or(Frame::NullBulk, Frame::bulk),
                    ])
                })
                .collect(),
        ));
    }
    Frame::Array(items)
}

/// How long MONITOR waits for a name to resolve (as long as the links wait
/// for theirs).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// For MONITOR's address check: what `host`, a name, resolves to now, when
/// resolve-hostnames is on (Sentinel resolves at MONITOR too, and shows
/// that IP without announce-hostnames). Done before the core is locked,
/// with tokio's resolver (the blocking pool) under a timeout, so a slow DNS
/// server holds neither the core nor a worker.
async fn resolves(server: &Server, host: &str) -> Option<IpAddr> {
    // A literal is checked as such; brackets are not part of a name.
    if host.is_empty() || host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return None;
    }
    if !server.core.lock().globals().resolve_hostnames {
        return None;
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 1))).await {
        Ok(Ok(mut addrs)) => addrs.next().map(|a| a.ip()),
        _ => None,
    }
}

/// `access(path, X_OK)`, as Sentinel checks script paths.
fn executable(path: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// SENTINEL PENDING-SCRIPTS: the script queue lives in the runtime.
fn pending_scripts(server: &Server) -> Frame {
    let jobs = server.scripts.pending();
    Frame::Array(
        jobs.into_iter()
            .map(|j| {
                let timing = if j.running { "run-time" } else { "run-delay" };
                Frame::Map(vec![
                    (
                        Frame::bulk("argv"),
                        Frame::Array(j.argv.iter().map(Frame::bulk).collect()),
                    ),
                    (
                        Frame::bulk("flags"),
                        Frame::bulk(if j.running { "running" } else { "scheduled" }),
                    ),
                    (
                        Frame::bulk("pid"),
                        Frame::bulk(j.pid.unwrap_or(0).to_string()),
                    ),
                    (
                        Frame::bulk(timing),
                        Frame::bulk(j.run_time_or_delay_ms.to_string()),
                    ),
                    (
                        Frame::bulk("retry-num"),
                        Frame::bulk(j.retry_num.to_string()),
                    ),
                ])
            })
            .collect(),
    )
}

pub const SENTINEL_HELP: &[&str] = &[
    "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CKQUORUM <master-name>",
    "    Check if the current Sentinel configuration is able to reach the quorum",
    "    needed to failover a master and the majority needed to authorize the",
    "    failover.",
    "CONFIG SET <param> <value>",
    "    Set a global Sentinel configuration parameter.",
    "CONFIG GET <param>",
    "    Get global Sentinel configuration parameter.",
    "DEBUG [<param> <value> ...]",
    "    Show a list of configurable time parameters and their values (milliseconds).",
    "    Or update current configurable parameters values (one or more).",
    "GET-MASTER-ADDR-BY-NAME <master-name>",
    "    Return the ip and port number of the master with that name.",
    "FAILOVER <master-name>",
    "    Manually failover a master node without asking for agreement from other",
    "    Sentinels",
    "FLUSHCONFIG",
    "    Force Sentinel to rewrite its configuration on disk, including the current",
    "    Sentinel state.",
    "INFO-CACHE <master-name>",
    "    Return last cached INFO output from masters and all its replicas.",
    "IS-MASTER-DOWN-BY-ADDR <ip> <port> <current-epoch> <runid>",
    "    Check if the master specified by ip:port is down from current Sentinel's",
    "    point of view.",
    "MASTER <master-name>",
    "    Show the state and info of the specified master.",
    "MASTERS",
    "    Show a list of monitored masters and their state.",
    "MONITOR <name> <ip> <port> <quorum>",
    "    Start monitoring a new master with the specified name, ip, port and quorum.",
    "MYID",
    "    Return the ID of the Sentinel instance.",
    "PENDING-SCRIPTS",
    "    Get pending scripts information.",
    "REMOVE <master-name>",
    "    Remove master from Sentinel's monitor list.",
    "REPLICAS <master-name>",
    "    Show a list of replicas for this master and their state.",
    "RESET <pattern>",
    "    Reset masters for specific master name matching this pattern.",
    "SENTINELS <master-name>",
    "    Show a list of Sentinel instances for this master and their state.",
    "SET <master-name> <option> <value> [<option> <value> ...]",
    "    Set configuration parameters for certain masters.",
    "SIMULATE-FAILURE [CRASH-AFTER-ELECTION] [CRASH-AFTER-PROMOTION] [HELP]",
    "    Simulate a Sentinel crash.",
    "HELP",
    "    Prints this help.",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn names_are_borrowed_from_the_request() {
        let a = argv("SENTINEL get-master-addr-by-name mymaster");
        let cmd = SentinelCmd::parse("get-master-addr-by-name", &a).unwrap();
        match cmd {
            SentinelCmd::GetMasterAddrByName(Cow::Borrowed(n)) => assert_eq!(n, "mymaster"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_argument_is_an_arity_error_not_an_empty_string() {
        let a = argv("SENTINEL monitor m 127.0.0.1 6379");
        assert_eq!(
            SentinelCmd::parse("monitor", &a),
            Err(Frame::error(
                "ERR wrong number of arguments for 'sentinel|monitor' command"
            ))
        );
    }

    #[test]
    fn config_has_exactly_two_shapes() {
        let a = argv("SENTINEL CONFIG GET resolve-*");
        assert_eq!(
            SentinelCmd::parse("config", &a),
            Ok(SentinelCmd::ConfigGet {
                pattern: b"resolve-*"
            })
        );
        let a = argv("SENTINEL config set announce-port 1");
        assert!(matches!(
            SentinelCmd::parse("config", &a),
            Ok(SentinelCmd::ConfigSet { .. })
        ));
        for bad in [
            "SENTINEL config get",
            "SENTINEL config set x",
            "SENTINEL config del x",
        ] {
            assert_eq!(
                SentinelCmd::parse("config", &argv(bad)),
                Err(Frame::error(
                    "ERR Only SENTINEL CONFIG GET <option> / SET <option> <value> are supported."
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_without_arguments_shows() {
        assert_eq!(
            SentinelCmd::parse("debug", &argv("SENTINEL debug")),
            Ok(SentinelCmd::DebugShow)
        );
        assert_eq!(
            SentinelCmd::parse("debug", &argv("SENTINEL debug ping-period 100")),
            Ok(SentinelCmd::DebugSet {
                args: vec!["ping-period".into(), "100".into()]
            })
        );
    }
}
