//! SENTINEL subcommand handlers (owner: CORE). The dispatcher has already
//! checked arity and subcommand names, and answers SENTINEL HELP itself.
//!
//! Each handler turns the wire arguments into a call on the core (which holds
//! every rule and error text, see `core::commands`), builds the RESP reply and
//! runs the actions the core returned through `Shared::execute` once the core
//! lock is released (execute flushes, and the flush reads the core). The only
//! I/O done here is what the core may not do: DNS for MONITOR with
//! resolve-hostnames, `access(X_OK)` on script paths.

use std::net::{IpAddr, ToSocketAddrs};

use super::client::ClientCtx;
use super::glob;
use super::resp::Value;
use crate::core::commands::{MonitorArgs, SIMULATE_FAILURE_FLAGS};
use crate::core::{Action, CmdError, Description, Millis, Sentinel, SimulateReply};
use crate::runtime::Shared;

const FLUSH_FAILED: &str = "ERR Failed to save config file. Check server logs.";

/// What to answer once the actions have run.
enum Outcome {
    Reply(Value),
    /// `+OK` if the config flush succeeded, else the flush error.
    OkAfterFlush,
}

pub fn execute(shared: &Shared, _client: &ClientCtx, args: &[Vec<u8>]) -> Value {
    // The query clients send most (every connect, every reconnect, health
    // checks): answered without copying the arguments.
    if let [_, sub, name] = args {
        if sub.eq_ignore_ascii_case(b"get-master-addr-by-name") {
            let addr = shared
                .lock_core()
                .master_addr(&String::from_utf8_lossy(name));
            return master_addr_reply(addr);
        }
    }
    let a: Vec<String> = args
        .iter()
        .map(|x| String::from_utf8_lossy(x).into_owned())
        .collect();
    let sub = a.get(1).map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    if sub == "pending-scripts" {
        return pending_scripts(shared);
    }
    let now = shared.now();
    let mut out = Vec::new();
    let outcome = {
        let mut core = shared.lock_core();
        dispatch(&mut core, now, &sub, &a, &mut out)
    };
    let flushed = if out.is_empty() {
        Ok(())
    } else {
        shared.execute(out)
    };
    match outcome {
        Outcome::Reply(v) => v,
        Outcome::OkAfterFlush => match flushed {
            Ok(()) => Value::ok(),
            Err(_) => Value::error(FLUSH_FAILED),
        },
    }
}

fn master_addr_reply(addr: Option<(String, u16)>) -> Value {
    match addr {
        Some((host, port)) => Value::Array(vec![Value::bulk(host), Value::bulk(port.to_string())]),
        None => Value::NullArray,
    }
}

fn arg(a: &[String], i: usize) -> &str {
    a.get(i).map(String::as_str).unwrap_or("")
}

fn err(e: CmdError) -> Outcome {
    Outcome::Reply(Value::Error(e.0))
}

fn desc(d: Description) -> Value {
    Value::bulk_map(d)
}

fn descs(r: Result<Vec<Description>, CmdError>) -> Outcome {
    match r {
        Ok(v) => Outcome::Reply(Value::Array(v.into_iter().map(desc).collect())),
        Err(e) => err(e),
    }
}

fn after_flush(r: Result<(), CmdError>) -> Outcome {
    match r {
        Ok(()) => Outcome::OkAfterFlush,
        Err(e) => err(e),
    }
}

/// MONITOR's address check: an IP literal, or with resolve-hostnames a name
/// that resolves now (Sentinel resolves synchronously too).
fn host_ok(host: &str, resolve: bool) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    resolve
        && !host.is_empty()
        && (host, 0u16)
            .to_socket_addrs()
            .is_ok_and(|mut it| it.next().is_some())
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

fn dispatch(
    core: &mut Sentinel,
    now: Millis,
    sub: &str,
    a: &[String],
    out: &mut Vec<Action>,
) -> Outcome {
    match sub {
        "masters" => Outcome::Reply(Value::Array(
            core.masters_desc(now).into_iter().map(desc).collect(),
        )),
        "master" => match core.master_desc(arg(a, 2), now) {
            Ok(d) => Outcome::Reply(desc(d)),
            Err(e) => err(e),
        },
        "replicas" | "slaves" => descs(core.replicas_desc(arg(a, 2), now)),
        "sentinels" => descs(core.sentinels_desc(arg(a, 2), now)),
        "get-master-addr-by-name" => Outcome::Reply(master_addr_reply(core.master_addr(arg(a, 2)))),
        "myid" => Outcome::Reply(Value::bulk(core.myid())),
        "monitor" => {
            let args = MonitorArgs {
                name: arg(a, 2),
                host: arg(a, 3),
                port: arg(a, 4),
                quorum: arg(a, 5),
            };
            after_flush(core.monitor(now, args, &host_ok, out))
        }
        "remove" => after_flush(core.remove(arg(a, 2), out)),
        "set" => after_flush(core.set(arg(a, 2), a.get(3..).unwrap_or(&[]), &executable, now, out)),
        "reset" => {
            let pattern = arg(a, 2).as_bytes().to_vec();
            let n = core.reset(
                now,
                &|name| glob::matches(&pattern, name.as_bytes(), false),
                out,
            );
            Outcome::Reply(Value::Integer(n as i64))
        }
        "failover" => match core.failover(arg(a, 2), now, out) {
            Ok(()) => Outcome::Reply(Value::ok()),
            Err(e) => err(e),
        },
        "ckquorum" => match core.ckquorum(arg(a, 2)) {
            Ok(s) => Outcome::Reply(Value::Simple(s)),
            Err(e) => err(e),
        },
        "flushconfig" => {
            out.push(Action::Flush);
            Outcome::OkAfterFlush
        }
        "is-master-down-by-addr" => {
            match core.is_master_down_by_addr(now, arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5), out)
            {
                Ok((down, leader, epoch)) => Outcome::Reply(Value::Array(vec![
                    Value::Integer(down),
                    Value::bulk(leader),
                    Value::Integer(epoch),
                ])),
                Err(e) => err(e),
            }
        }
        "config" => config(core, a, out),
        "info-cache" => {
            let cache = core.info_cache(a.get(2..).unwrap_or(&[]), now);
            let mut items = Vec::with_capacity(cache.len() * 2);
            for (name, entries) in cache {
                items.push(Value::bulk(name));
                items.push(Value::Array(
                    entries
                        .into_iter()
                        .map(|(age, info)| {
                            Value::Array(vec![
                                Value::Integer(age),
                                info.map_or(Value::NullBulk, Value::bulk),
                            ])
                        })
                        .collect(),
                ));
            }
            Outcome::Reply(Value::Array(items))
        }
        "debug" => {
            if a.len() <= 2 {
                Outcome::Reply(Value::bulk_map(
                    core.debug_info()
                        .into_iter()
                        .map(|(k, v)| (k, v.to_string())),
                ))
            } else {
                match core.debug_set(a.get(2..).unwrap_or(&[])) {
                    Ok(()) => Outcome::Reply(Value::ok()),
                    Err(e) => err(e),
                }
            }
        }
        "simulate-failure" => match core.simulate_failure(a.get(2..).unwrap_or(&[])) {
            Ok(SimulateReply::Ok) => Outcome::Reply(Value::ok()),
            Ok(SimulateReply::Help) => Outcome::Reply(Value::Array(
                SIMULATE_FAILURE_FLAGS.iter().map(Value::bulk).collect(),
            )),
            Err(e) => err(e),
        },
        _ => Outcome::Reply(Value::error(format!(
            "ERR unknown subcommand '{}'. Try SENTINEL HELP.",
            arg(a, 1)
        ))),
    }
}

/// SENTINEL CONFIG GET <pattern> / SET <param> <value> (7.0: exactly these
/// two shapes).
fn config(core: &mut Sentinel, a: &[String], out: &mut Vec<Action>) -> Outcome {
    let verb = arg(a, 2).to_ascii_lowercase();
    match (verb.as_str(), a.len()) {
        ("set", 5) => after_flush(core.config_set(arg(a, 3), arg(a, 4), out)),
        ("get", 4) => {
            let pattern = arg(a, 3).as_bytes().to_vec();
            let found = core.config_get(&|name| glob::matches(&pattern, name.as_bytes(), true));
            Outcome::Reply(Value::bulk_map(found))
        }
        _ => Outcome::Reply(Value::error(
            "ERR Only SENTINEL CONFIG GET <option> / SET <option> <value> are supported.",
        )),
    }
}

/// SENTINEL PENDING-SCRIPTS: the script queue lives in the runtime.
fn pending_scripts(shared: &Shared) -> Value {
    let jobs = shared.scripts.pending();
    Value::Array(
        jobs.into_iter()
            .map(|j| {
                let timing = if j.running { "run-time" } else { "run-delay" };
                Value::Map(vec![
                    (
                        Value::bulk("argv"),
                        Value::Array(j.argv.iter().map(Value::bulk).collect()),
                    ),
                    (
                        Value::bulk("flags"),
                        Value::bulk(if j.running { "running" } else { "scheduled" }),
                    ),
                    (
                        Value::bulk("pid"),
                        Value::bulk(j.pid.unwrap_or(0).to_string()),
                    ),
                    (
                        Value::bulk(timing),
                        Value::bulk(j.run_time_or_delay_ms.to_string()),
                    ),
                    (
                        Value::bulk("retry-num"),
                        Value::bulk(j.retry_num.to_string()),
                    ),
                ])
            })
            .collect(),
    )
}
