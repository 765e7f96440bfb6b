//! Command dispatch and the non-SENTINEL command handlers.
//!
//! [`execute`] follows Redis 7.0's `processCommand` order: resolve against the
//! table (unknown command / subcommand / arity), authentication, ACL,
//! the RESP2 subscribed-context restriction, then the handler. Each handler
//! checks its arguments before touching any state and produces one or more
//! [`Value`]s (several only for SUBSCRIBE-style commands).

use std::sync::Arc;

use indexmap::IndexSet;
use tokio::time::{Duration, Instant};

use super::acl::{Acl, User};
use super::client::{valid_client_name, ClientCtx, ClientHandle, ClientType};
use super::parse::string2ll;
use super::pubsub::Subscriber;
use super::resp::Value;
use super::stats;
use super::table::{self, Resolved};
use super::{info, Server};
use crate::core::Input;

/// How replies are sent (CLIENT REPLY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command.
    SkipNext,
}

/// Per-connection state the handlers read and change.
pub struct Session {
    pub handle: Arc<ClientHandle>,
    pub proto: u8,
    pub authenticated: bool,
    pub user: String,
    pub channels: IndexSet<Vec<u8>>,
    pub patterns: IndexSet<Vec<u8>>,
    pub subscriber: Subscriber,
    pub reply: ReplyMode,
    /// Close the connection once the pending replies are written.
    pub close_after_reply: bool,
}

impl Session {
    pub fn ctx(&self) -> ClientCtx {
        ClientCtx {
            proto: self.proto,
            id: self.handle.id,
        }
    }

    fn subscriptions(&self) -> i64 {
        (self.channels.len() + self.patterns.len()) as i64
    }

    fn sync_counts(&self) {
        let mut s = self.handle.state();
        s.sub = self.channels.len();
        s.psub = self.patterns.len();
        s.channels = self.channels.iter().cloned().collect();
        s.patterns = self.patterns.iter().cloned().collect();
    }
}

fn err(s: impl Into<String>) -> Value {
    Value::error(s)
}

fn syntax() -> Value {
    err("ERR syntax error")
}

fn lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}

fn arity_err(name: &str) -> Value {
    err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Runs one request and returns its replies (empty = no reply, e.g.
/// SHUTDOWN). Updates the counters of INFO.
pub fn execute(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Vec<Value> {
    // Like Redis's `c->lastcmd = lookupCommand(...)`: set even when the command
    // is then rejected (arity, auth, ACL), NULL when it does not exist.
    let r = match table::resolve(argv) {
        Ok(r) => r,
        Err(e) => {
            let last = match e {
                table::LookupError::Arity(ref name) => Some(name.clone()),
                _ => None,
            };
            sess.handle.state().last_cmd = last;
            return vec![err(e.message())];
        }
    };
    sess.handle.state().last_cmd = Some(r.fullname());
    if !sess.authenticated && auth_required(server) && r.top.flags & table::F_NO_AUTH == 0 {
        return vec![err("NOAUTH Authentication required.")];
    }
    if let Some(denied) = check_acl(server, sess, &r, argv) {
        return vec![denied];
    }
    let name = r.top.name;
    if sess.proto == 2
        && sess.subscriptions() > 0
        && !matches!(
            name,
            "ping" | "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe"
        )
    {
        return vec![err(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            r.fullname()
        ))];
    }
    stats::add(&server.stats.commands_processed, 1);
    let sub = r.sub.map(|s| s.name).unwrap_or("");
    match name {
        "ping" => vec![ping(sess, argv)],
        "role" => vec![role(server)],
        "info" => vec![Value::Bulk(
            info::render(server, argv.get(1..).unwrap_or_default()).into_bytes(),
        )],
        "auth" => vec![auth(server, sess, argv)],
        "hello" => vec![hello(server, sess, argv)],
        "publish" => vec![publish(server, argv)],
        "shutdown" => shutdown(server, argv),
        "subscribe" | "psubscribe" => subscribe(server, sess, argv, name == "psubscribe"),
        "unsubscribe" | "punsubscribe" => unsubscribe(server, sess, argv, name == "punsubscribe"),
        "sentinel" if sub == "help" => vec![help(SENTINEL_HELP)],
        "sentinel" => vec![super::sentinel_cmd::execute(
            &server.shared,
            &sess.ctx(),
            argv,
        )],
        "client" => vec![client(server, sess, sub, argv)],
        "acl" => vec![acl(server, sess, sub, argv)],
        "command" => vec![command(sub, argv)],
        _ => vec![err(format!("ERR unknown command '{name}'"))],
    }
}

pub(crate) fn auth_required(server: &Server) -> bool {
    !server.acl().default_nopass()
}

fn check_acl(server: &Server, sess: &Session, r: &Resolved, argv: &[Vec<u8>]) -> Option<Value> {
    if r.top.flags & table::F_NO_AUTH != 0 {
        return None;
    }
    let mut acl = server.acl();
    let Some(user) = acl.users.get(&sess.user) else {
        return Some(err(format!(
            "NOPERM this user has no permissions to run the '{}' command",
            r.fullname()
        )));
    };
    let now = Instant::now();
    if !user.can_run(r.id, argv.get(r.sub.map_or(0, |_| 1)..).unwrap_or_default()) {
        let info = sess.handle.info_line(now);
        acl.add_log("command", "toplevel", &r.fullname(), &sess.user, info, now);
        return Some(err(format!(
            "NOPERM this user has no permissions to run the '{}' command",
            r.fullname()
        )));
    }
    let channels = channel_args(r, argv);
    if let Some((bad, _)) = channels.iter().find(|(c, p)| !user.can_use_channel(c, *p)) {
        let object = String::from_utf8_lossy(bad).into_owned();
        let info = sess.handle.info_line(now);
        acl.add_log("channel", "toplevel", &object, &sess.user, info, now);
        return Some(err(
            "NOPERM this user has no permissions to access one of the channels used as arguments",
        ));
    }
    None
}

/// The channels (or patterns, `true`) a command would use, for ACL checks.
fn channel_args<'a>(r: &Resolved, argv: &'a [Vec<u8>]) -> Vec<(&'a [u8], bool)> {
    match r.top.name {
        "subscribe" => argv.iter().skip(1).map(|c| (c.as_slice(), false)).collect(),
        "psubscribe" => argv.iter().skip(1).map(|c| (c.as_slice(), true)).collect(),
        "publish" => argv
            .get(1)
            .map(|c| vec![(c.as_slice(), false)])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn ping(sess: &Session, argv: &[Vec<u8>]) -> Value {
    if argv.len() > 2 {
        return arity_err("ping");
    }
    if sess.proto == 2 && sess.subscriptions() > 0 {
        let msg = argv.get(1).cloned().unwrap_or_default();
        return Value::Array(vec![Value::bulk("pong"), Value::Bulk(msg)]);
    }
    match argv.get(1) {
        Some(m) => Value::Bulk(m.clone()),
        None => Value::simple("PONG"),
    }
}

fn role(server: &Server) -> Value {
    let names = server.shared.lock_core().master_names();
    Value::Array(vec![
        Value::bulk("sentinel"),
        Value::Array(names.into_iter().map(Value::bulk).collect()),
    ])
}

fn wrongpass() -> Value {
    err("WRONGPASS invalid username-password pair or user is disabled.")
}

/// ACL authentication; on failure logs an `auth` entry like Redis.
fn authenticate(
    server: &Server,
    sess: &mut Session,
    user: &[u8],
    pass: &[u8],
    object: &str,
) -> bool {
    let name = String::from_utf8_lossy(user).into_owned();
    let now = Instant::now();
    let mut acl = server.acl();
    let ok = acl
        .users
        .get(&name)
        .is_some_and(|u| u.enabled && u.check_password(pass));
    if ok {
        sess.authenticated = true;
        sess.user = name.clone();
        sess.handle.state().user = name;
    } else {
        let info = sess.handle.info_line(now);
        acl.add_log("auth", "toplevel", object, &name, info, now);
    }
    ok
}

fn auth(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Value {
    if argv.len() > 3 {
        return syntax();
    }
    let (user, pass) = match argv {
        [_, pass] => {
            if server.acl().default_nopass() {
                return err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            }
            (b"default".as_slice(), pass.as_slice())
        }
        [_, user, pass] => (user.as_slice(), pass.as_slice()),
        _ => return arity_err("auth"),
    };
    if authenticate(server, sess, user, pass, "auth") {
        Value::ok()
    } else {
        wrongpass()
    }
}

fn hello(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Value {
    let mut ver = 0i64;
    if let Some(v) = argv.get(1) {
        match string2ll(v) {
            Some(v) => ver = v,
            None => return err("ERR Protocol version is not an integer or out of range"),
        }
        if !(2..=3).contains(&ver) {
            return err("NOPROTO unsupported protocol version");
        }
    }
    let mut creds: Option<(&[u8], &[u8])> = None;
    let mut name: Option<&[u8]> = None;
    let mut j = 2;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        let opt = argv.get(j).map(|a| a.as_slice()).unwrap_or_default();
        if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            if let (Some(u), Some(p)) = (argv.get(j + 1), argv.get(j + 2)) {
                creds = Some((u, p));
            }
            j += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            let n = argv.get(j + 1).map(|a| a.as_slice()).unwrap_or_default();
            if !valid_client_name(n) {
                return err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            name = Some(n);
            j += 2;
        } else {
            return err(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    if let Some((u, p)) = creds {
        if !authenticate(server, sess, u, p, "hello") {
            return wrongpass();
        }
    }
    if !sess.authenticated && auth_required(server) {
        return err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = name {
        sess.handle.state().name = n.to_vec();
    }
    if ver != 0 {
        sess.proto = ver as u8;
        sess.handle.state().resp = sess.proto;
    }
    Value::Map(vec![
        (Value::bulk("server"), Value::bulk("redis")),
        (Value::bulk("version"), Value::bulk("7.0.15")),
        (Value::bulk("proto"), Value::Integer(i64::from(sess.proto))),
        (Value::bulk("id"), Value::Integer(sess.handle.id as i64)),
        (Value::bulk("mode"), Value::bulk("sentinel")),
        (Value::bulk("modules"), Value::Array(vec![])),
    ])
}

fn publish(server: &Server, argv: &[Vec<u8>]) -> Value {
    let (Some(channel), Some(msg)) = (argv.get(1), argv.get(2)) else {
        return arity_err("publish");
    };
    if channel.as_slice() != b"__sentinel__:hello" {
        return err("ERR Only HELLO messages are accepted by Sentinel instances.");
    }
    let shared = &server.shared;
    let now = shared.now();
    let input = Input::Hello {
        via: None,
        payload: String::from_utf8_lossy(msg).into_owned(),
    };
    let actions = shared.lock_core().handle(now, input);
    // The hello is accepted whatever the flush outcome; a failure is logged by execute.
    let _ = shared.execute(actions);
    Value::Integer(1)
}

fn shutdown(server: &Server, argv: &[Vec<u8>]) -> Vec<Value> {
    let (mut nosave, mut save, mut abort, mut other) = (false, false, false, false);
    for a in argv.iter().skip(1) {
        match lower(a).as_str() {
            "nosave" => nosave = true,
            "save" => save = true,
            "now" | "force" => other = true,
            "abort" => abort = true,
            _ => return vec![syntax()],
        }
    }
    if (abort && (nosave || save || other)) || (nosave && save) {
        return vec![syntax()];
    }
    if abort {
        return vec![err("ERR No shutdown in progress.")];
    }
    // Sentinel mode never saves: SAVE is treated as NOSAVE, and no config flush.
    tracing::warn!("User requested shutdown...");
    server.shared.shutdown.cancel();
    Vec::new()
}

fn subscribe(server: &Server, sess: &mut Session, argv: &[Vec<u8>], pattern: bool) -> Vec<Value> {
    let kind = if pattern { "psubscribe" } else { "subscribe" };
    let mut out = Vec::new();
    for ch in argv.iter().skip(1) {
        let added = if pattern {
            sess.patterns.insert(ch.clone())
        } else {
            sess.channels.insert(ch.clone())
        };
        if added {
            if pattern {
                server.shared.hub.psubscribe(&sess.subscriber, ch);
            } else {
                server.shared.hub.subscribe(&sess.subscriber, ch);
            }
        }
        out.push(Value::Push(vec![
            Value::bulk(kind),
            Value::Bulk(ch.clone()),
            Value::Integer(sess.subscriptions()),
        ]));
    }
    sess.sync_counts();
    out
}

fn unsubscribe(server: &Server, sess: &mut Session, argv: &[Vec<u8>], pattern: bool) -> Vec<Value> {
    let kind = if pattern {
        "punsubscribe"
    } else {
        "unsubscribe"
    };
    let targets: Vec<Vec<u8>> = if argv.len() > 1 {
        argv.iter().skip(1).cloned().collect()
    } else if pattern {
        sess.patterns.iter().cloned().collect()
    } else {
        sess.channels.iter().cloned().collect()
    };
    let mut out = Vec::new();
    for ch in &targets {
        let removed = if pattern {
            sess.patterns.shift_remove(ch)
        } else {
            sess.channels.shift_remove(ch)
        };
        if removed {
            if pattern {
                server.shared.hub.punsubscribe(sess.handle.id, ch);
            } else {
                server.shared.hub.unsubscribe(sess.handle.id, ch);
            }
        }
        out.push(Value::Push(vec![
            Value::bulk(kind),
            Value::Bulk(ch.clone()),
            Value::Integer(sess.subscriptions()),
        ]));
    }
    if targets.is_empty() {
        out.push(Value::Push(vec![
            Value::bulk(kind),
            Value::NullBulk,
            Value::Integer(sess.subscriptions()),
        ]));
    }
    sess.sync_counts();
    out
}

/// Drops every subscription of a closing connection.
pub fn unsubscribe_all(server: &Server, sess: &mut Session) {
    for ch in sess.channels.drain(..) {
        server.shared.hub.unsubscribe(sess.handle.id, &ch);
    }
    for p in sess.patterns.drain(..) {
        server.shared.hub.punsubscribe(sess.handle.id, &p);
    }
}

fn help(lines: &[&str]) -> Value {
    Value::Array(lines.iter().map(|l| Value::simple(*l)).collect())
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

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

const ACL_HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

// ---------------------------------------------------------------- CLIENT

fn client(server: &Server, sess: &mut Session, sub: &str, argv: &[Vec<u8>]) -> Value {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    let now = Instant::now();
    match sub {
        "help" => help(CLIENT_HELP),
        "id" => Value::Integer(sess.handle.id as i64),
        "info" => Value::Verbatim("txt", sess.handle.info_line(now).into_bytes()),
        "list" => client_list(server, argv, now),
        "kill" => client_kill(server, sess, argv),
        "getname" => {
            let n = sess.handle.state().name.clone();
            if n.is_empty() {
                Value::NullBulk
            } else {
                Value::Bulk(n)
            }
        }
        "setname" => {
            let n = arg(2);
            if !valid_client_name(n) {
                return err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            sess.handle.state().name = n.to_vec();
            Value::ok()
        }
        "reply" => match lower(arg(2)).as_str() {
            "on" => {
                sess.reply = ReplyMode::On;
                Value::ok()
            }
            "off" => {
                sess.reply = ReplyMode::Off;
                Value::ok()
            }
            "skip" => {
                if sess.reply != ReplyMode::Off {
                    sess.reply = ReplyMode::SkipNext;
                }
                Value::ok()
            }
            _ => syntax(),
        },
        "no-evict" => match lower(arg(2)).as_str() {
            "on" => {
                sess.handle.state().no_evict = true;
                Value::ok()
            }
            "off" => {
                sess.handle.state().no_evict = false;
                Value::ok()
            }
            _ => syntax(),
        },
        "pause" => {
            let Some(ms) = string2ll(arg(2)) else {
                return err("ERR timeout is not an integer or out of range");
            };
            if ms < 0 {
                return err("ERR timeout is negative");
            }
            let all = match argv.get(3).map(|a| lower(a)) {
                None => true,
                Some(m) if m == "all" => true,
                Some(m) if m == "write" => false,
                Some(_) => return err("ERR CLIENT PAUSE mode must be WRITE or ALL"),
            };
            if argv.len() > 4 {
                return err(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                    String::from_utf8_lossy(arg(1))
                ));
            }
            server.set_pause(Some((now + Duration::from_millis(ms as u64), all)));
            Value::ok()
        }
        "unpause" => {
            server.set_pause(None);
            Value::ok()
        }
        "unblock" => {
            if string2ll(arg(2)).is_none() {
                return err("ERR value is not an integer or out of range");
            }
            if let Some(r) = argv.get(3) {
                let r = lower(r);
                if r != "timeout" && r != "error" {
                    return err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
                }
            }
            if argv.len() > 4 {
                return syntax();
            }
            // Nothing in sentinel mode ever blocks.
            Value::Integer(0)
        }
        "getredir" => {
            let t = sess.handle.state().tracking.clone();
            Value::Integer(if t.on { t.redirect } else { -1 })
        }
        "caching" => {
            let t = sess.handle.state().tracking.clone();
            if !t.on || !(t.optin || t.optout) {
                return err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
            }
            match lower(arg(2)).as_str() {
                "yes" if t.optin => {
                    sess.handle.state().tracking.caching = Some(true);
                    Value::ok()
                }
                "yes" => err(
                    "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
                ),
                "no" if t.optout => {
                    sess.handle.state().tracking.caching = Some(false);
                    Value::ok()
                }
                "no" => err(
                    "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
                ),
                _ => syntax(),
            }
        }
        "tracking" => client_tracking(server, sess, argv),
        "trackinginfo" => {
            let t = sess.handle.state().tracking.clone();
            let mut flags = Vec::new();
            if !t.on {
                flags.push("off");
            } else {
                flags.push("on");
                if t.bcast {
                    flags.push("bcast");
                }
                if t.optin {
                    flags.push("optin");
                    if t.caching == Some(true) {
                        flags.push("caching-yes");
                    }
                }
                if t.optout {
                    flags.push("optout");
                    if t.caching == Some(false) {
                        flags.push("caching-no");
                    }
                }
                if t.noloop {
                    flags.push("noloop");
                }
            }
            Value::Map(vec![
                (
                    Value::bulk("flags"),
                    Value::Set(flags.into_iter().map(Value::bulk).collect()),
                ),
                (
                    Value::bulk("redirect"),
                    Value::Integer(if t.on { t.redirect } else { -1 }),
                ),
                (
                    Value::bulk("prefixes"),
                    Value::Array(t.prefixes.iter().map(Value::bulk).collect()),
                ),
            ])
        }
        _ => err(format!("ERR unknown subcommand '{sub}'. Try CLIENT HELP.")),
    }
}

fn client_tracking(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Value {
    let on = match argv.get(2).map(|a| lower(a)).as_deref() {
        Some("on") => true,
        Some("off") => false,
        _ => return syntax(),
    };
    let mut t = super::client::Tracking {
        on,
        ..Default::default()
    };
    let mut j = 3;
    while j < argv.len() {
        let opt = argv.get(j).map(|a| lower(a)).unwrap_or_default();
        let more = argv.len() - j - 1;
        match opt.as_str() {
            "redirect" if more >= 1 => {
                j += 1;
                let Some(id) = argv.get(j).and_then(|a| string2ll(a)) else {
                    return err("ERR value is not an integer or out of range");
                };
                if id != sess.handle.id as i64 && server.registry.get(id as u64).is_none() {
                    return err("ERR The client ID you want redirect to does not exist");
                }
                t.redirect = id;
            }
            "bcast" => t.bcast = true,
            "optin" => t.optin = true,
            "optout" => t.optout = true,
            "noloop" => t.noloop = true,
            "prefix" if more >= 1 => {
                j += 1;
                if let Some(p) = argv.get(j) {
                    t.prefixes.push(p.clone());
                }
            }
            _ => return syntax(),
        }
        j += 1;
    }
    if on {
        let cur = sess.handle.state().tracking.clone();
        if !t.bcast && !t.prefixes.is_empty() {
            return err("ERR PREFIX option requires BCAST mode to be enabled");
        }
        if cur.on && cur.bcast != t.bcast {
            return err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
        if t.bcast && (t.optin || t.optout) {
            return err("ERR OPTIN and OPTOUT are not compatible with BCAST");
        }
        if t.optin && t.optout {
            return err("ERR You can't specify both OPTIN mode and OPTOUT mode");
        }
        if (t.optin && cur.optout) || (t.optout && cur.optin) {
            return err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
        if cur.on {
            // Enabling again adds to the current mode, like enableTracking.
            t.bcast |= cur.bcast;
            t.optin |= cur.optin;
            t.optout |= cur.optout;
            t.noloop |= cur.noloop;
            let mut prefixes = cur.prefixes;
            for p in t.prefixes.drain(..) {
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
            t.prefixes = prefixes;
            t.caching = cur.caching;
        }
        sess.handle.state().tracking = t;
    } else {
        sess.handle.state().tracking = Default::default();
    }
    Value::ok()
}

fn client_list(server: &Server, argv: &[Vec<u8>], now: Instant) -> Value {
    let mut type_filter = None;
    let mut ids: Option<Vec<u64>> = None;
    if argv.len() == 4 && lower(&argv[2]) == "type" {
        match ClientType::parse(&argv[3]) {
            Some(t) => type_filter = Some(t),
            None => {
                return err(format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(&argv[3])
                ))
            }
        }
    } else if argv.len() > 3 && lower(&argv[2]) == "id" {
        let mut v = Vec::new();
        for a in argv.iter().skip(3) {
            match string2ll(a) {
                Some(id) if id >= 1 => v.push(id as u64),
                _ => return err("ERR Invalid client ID"),
            }
        }
        ids = Some(v);
    } else if argv.len() != 2 {
        return syntax();
    }
    let mut text = String::new();
    for c in server.registry.all() {
        if type_filter.is_some_and(|t| c.client_type() != t) {
            continue;
        }
        if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
            continue;
        }
        text.push_str(&c.info_line(now));
    }
    Value::Verbatim("txt", text.into_bytes())
}

fn client_kill(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Value {
    if argv.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let addr = String::from_utf8_lossy(&argv[2]).into_owned();
        let Some(c) = server.registry.all().into_iter().find(|c| c.addr == addr) else {
            return err("ERR No such client");
        };
        if c.id == sess.handle.id {
            sess.close_after_reply = true;
        } else {
            c.kill.cancel();
        }
        return Value::ok();
    }
    let (mut id, mut ctype, mut addr, mut laddr, mut user) = (None, None, None, None, None);
    let mut skipme = true;
    let mut j = 2;
    while j < argv.len() {
        let (Some(opt), Some(val)) = (argv.get(j), argv.get(j + 1)) else {
            return syntax();
        };
        match lower(opt).as_str() {
            "id" => match string2ll(val) {
                Some(v) if v >= 1 => id = Some(v as u64),
                _ => return err("ERR client-id should be greater than 0"),
            },
            "type" => match ClientType::parse(val) {
                Some(t) => ctype = Some(t),
                None => {
                    return err(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(val)
                    ))
                }
            },
            "addr" => addr = Some(String::from_utf8_lossy(val).into_owned()),
            "laddr" => laddr = Some(String::from_utf8_lossy(val).into_owned()),
            "user" => {
                let name = String::from_utf8_lossy(val).into_owned();
                if !server.acl().users.contains_key(&name) {
                    return err(format!("ERR No such user '{name}'"));
                }
                user = Some(name);
            }
            "skipme" => match lower(val).as_str() {
                "yes" => skipme = true,
                "no" => skipme = false,
                _ => return syntax(),
            },
            _ => return syntax(),
        }
        j += 2;
    }
    let mut killed = 0;
    for c in server.registry.all() {
        if id.is_some_and(|id| c.id != id)
            || ctype.is_some_and(|t| c.client_type() != t)
            || addr.as_ref().is_some_and(|a| &c.addr != a)
            || laddr.as_ref().is_some_and(|a| &c.laddr != a)
            || user.as_ref().is_some_and(|u| &c.state().user != u)
        {
            continue;
        }
        if c.id == sess.handle.id {
            if skipme {
                continue;
            }
            sess.close_after_reply = true;
        } else {
            c.kill.cancel();
        }
        killed += 1;
    }
    Value::Integer(killed)
}

// ---------------------------------------------------------------- ACL

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn getuser_reply(u: &User) -> Value {
    let (cmds, keys, chans) = User::selector_fields(&u.root);
    let selectors = u
        .selectors
        .iter()
        .map(|s| {
            let (c, k, ch) = User::selector_fields(s);
            Value::Map(vec![
                (Value::bulk("commands"), Value::bulk(c)),
                (Value::bulk("keys"), Value::bulk(k)),
                (Value::bulk("channels"), Value::bulk(ch)),
            ])
        })
        .collect();
    Value::Map(vec![
        (
            Value::bulk("flags"),
            Value::Set(u.flag_names().into_iter().map(Value::bulk).collect()),
        ),
        (
            Value::bulk("passwords"),
            Value::Array(u.passwords.iter().map(Value::bulk).collect()),
        ),
        (Value::bulk("commands"), Value::bulk(cmds)),
        (Value::bulk("keys"), Value::bulk(keys)),
        (Value::bulk("channels"), Value::bulk(chans)),
        (Value::bulk("selectors"), Value::Array(selectors)),
    ])
}

fn acl(server: &Server, sess: &mut Session, sub: &str, argv: &[Vec<u8>]) -> Value {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    match sub {
        "help" => help(ACL_HELP),
        "whoami" => Value::bulk(&sess.user),
        "users" => Value::Array(server.acl().users.keys().map(Value::bulk).collect()),
        "list" => Value::Array(
            server
                .acl()
                .users
                .values()
                .map(|u| Value::bulk(u.describe()))
                .collect(),
        ),
        "getuser" => {
            let name = String::from_utf8_lossy(arg(2)).into_owned();
            match server.acl().users.get(&name) {
                Some(u) => getuser_reply(u),
                None => Value::NullBulk,
            }
        }
        "setuser" => {
            let name = String::from_utf8_lossy(arg(2)).into_owned();
            if name.contains(' ') || name.contains('\0') {
                return err("ERR Usernames can't contain spaces or null characters");
            }
            let mut acl = server.acl();
            let mut u = acl
                .users
                .get(&name)
                .cloned()
                .unwrap_or_else(|| User::new(&name));
            for op in argv.iter().skip(3) {
                if let Err(e) = u.apply(op) {
                    return err(format!(
                        "ERR Error in ACL SETUSER modifier '{}': {}",
                        String::from_utf8_lossy(op),
                        e
                    ));
                }
            }
            // Like ACLKillPubsubClientsIfNeeded: clients of this user whose
            // subscriptions are no longer allowed are disconnected.
            for c in server.registry.all() {
                let st = c.state();
                if st.user != name {
                    continue;
                }
                let lost = st.channels.iter().any(|ch| !u.can_use_channel(ch, false))
                    || st.patterns.iter().any(|p| !u.can_use_channel(p, true));
                drop(st);
                if lost {
                    if c.id == sess.handle.id {
                        sess.close_after_reply = true;
                    } else {
                        c.kill.cancel();
                    }
                }
            }
            acl.users.insert(name, u);
            drop(acl);
            sync_users_to_config(server);
            Value::ok()
        }
        "deluser" => {
            let mut acl = server.acl();
            let mut deleted = 0;
            for n in argv.iter().skip(2) {
                let n = String::from_utf8_lossy(n).into_owned();
                if n == "default" {
                    return err("ERR The 'default' user cannot be removed");
                }
            }
            for n in argv.iter().skip(2) {
                let n = String::from_utf8_lossy(n).into_owned();
                if acl.users.remove(&n).is_some() {
                    deleted += 1;
                    // Clients authenticated as a deleted user are disconnected.
                    for c in server.registry.all() {
                        if c.state().user == n {
                            if c.id == sess.handle.id {
                                sess.close_after_reply = true;
                            } else {
                                c.kill.cancel();
                            }
                        }
                    }
                }
            }
            drop(acl);
            sync_users_to_config(server);
            Value::Integer(deleted)
        }
        "cat" => match argv.get(2) {
            None => Value::Array(table::CATEGORIES.iter().map(|c| Value::bulk(*c)).collect()),
            Some(c) => match super::acl::category_commands(&String::from_utf8_lossy(c)) {
                Some(v) => Value::Array(v.into_iter().map(Value::bulk).collect()),
                None => err(format!(
                    "ERR Unknown category '{}'",
                    String::from_utf8_lossy(c)
                )),
            },
        },
        "genpass" => {
            let bits = match argv.get(2) {
                None => 256,
                Some(b) => match string2ll(b) {
                    None => return err("ERR value is not an integer or out of range"),
                    Some(b) if !(1..=4096).contains(&b) => {
                        return err("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096")
                    }
                    Some(b) => b as usize,
                },
            };
            use rand::RngCore;
            let chars = bits.div_ceil(4);
            let mut bytes = vec![0u8; chars.div_ceil(2)];
            rand::thread_rng().fill_bytes(&mut bytes);
            let mut s = hex::encode(bytes);
            s.truncate(chars);
            Value::bulk(s)
        }
        "dryrun" => {
            let name = String::from_utf8_lossy(arg(2)).into_owned();
            let acl = server.acl();
            let Some(u) = acl.users.get(&name) else {
                return err(format!("ERR User '{name}' not found"));
            };
            let inner = argv.get(3..).unwrap_or_default();
            let Some(r) = table::lookup_argv(inner) else {
                return err(format!(
                    "ERR Command '{}' not found",
                    String::from_utf8_lossy(arg(3))
                ));
            };
            let arity = r.spec().arity;
            let argc = inner.len() as i32;
            if (arity > 0 && arity != argc) || argc < -arity {
                return arity_err(&r.fullname());
            }
            if !u.can_run(r.id, inner) {
                return Value::bulk(format!(
                    "This user has no permissions to run the '{}' command",
                    r.fullname()
                ));
            }
            if let Some(bad) = channel_args(&r, inner)
                .into_iter()
                .find(|(c, p)| !u.can_use_channel(c, *p))
            {
                return Value::bulk(format!(
                    "This user has no permissions to access the '{}' channel",
                    String::from_utf8_lossy(bad.0)
                ));
            }
            Value::ok()
        }
        "log" => acl_log(server, argv),
        "load" => {
            let Some(path) = server.acl().aclfile.clone() else {
                return err(NO_ACLFILE);
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    return err(format!(
                        "ERR Error loading ACLs, opening file '{path}': {}",
                        io_error_text(&e)
                    ))
                }
            };
            match Acl::parse_file(&text, &path) {
                Ok(users) => {
                    server.acl().users = users;
                    Value::ok()
                }
                Err(e) => err(format!("ERR {e}")),
            }
        }
        "save" => {
            let (path, lines) = {
                let acl = server.acl();
                let Some(path) = acl.aclfile.clone() else {
                    return err(NO_ACLFILE);
                };
                let lines: String = acl.users.values().map(|u| u.describe() + "\n").collect();
                (path, lines)
            };
            let tmp = format!("{path}.tmp-{}", std::process::id());
            let res = std::fs::write(&tmp, lines).and_then(|_| std::fs::rename(&tmp, &path));
            match res {
                Ok(()) => Value::ok(),
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!("ACL SAVE to {path} failed: {e}");
                    err("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
                }
            }
        }
        _ => err(format!("ERR unknown subcommand '{sub}'. Try ACL HELP.")),
    }
}

/// Without an aclfile, users live in the config file: keep the `user` lines
/// of the server config current so the next config rewrite persists them,
/// as Redis's CONFIG REWRITE (and so SENTINEL FLUSHCONFIG) does.
fn sync_users_to_config(server: &Server) {
    let (lines, has_file) = {
        let acl = server.acl();
        (acl.config_lines(), acl.aclfile.is_some())
    };
    if !has_file {
        server
            .shared
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .users = lines;
    }
}

/// strerror-style text of an I/O error (without Rust's "(os error N)").
pub(crate) fn io_error_text(e: &std::io::Error) -> String {
    let t = e.to_string();
    match t.rfind(" (os error ") {
        Some(i) => t[..i].to_string(),
        None => t,
    }
}

fn acl_log(server: &Server, argv: &[Vec<u8>]) -> Value {
    let mut count = usize::MAX;
    if let Some(a) = argv.get(2) {
        if lower(a) == "reset" {
            server.acl().log.clear();
            return Value::ok();
        }
        match string2ll(a) {
            Some(n) if n >= 0 => count = n as usize,
            _ => return err("ERR value is not an integer or out of range"),
        }
    }
    let now = Instant::now();
    let acl = server.acl();
    Value::Array(
        acl.log
            .iter()
            .take(count)
            .map(|e| {
                let age = now.saturating_duration_since(e.updated).as_millis() as f64 / 1000.0;
                Value::Map(vec![
                    (Value::bulk("count"), Value::Integer(e.count as i64)),
                    (Value::bulk("reason"), Value::bulk(&e.reason)),
                    (Value::bulk("context"), Value::bulk(&e.context)),
                    (Value::bulk("object"), Value::bulk(&e.object)),
                    (Value::bulk("username"), Value::bulk(&e.username)),
                    (Value::bulk("age-seconds"), Value::Double(age)),
                    (
                        Value::bulk("client-info"),
                        Value::bulk(e.client_info.trim_end()),
                    ),
                ])
            })
            .collect(),
    )
}

// ---------------------------------------------------------------- COMMAND

fn command(sub: &str, argv: &[Vec<u8>]) -> Value {
    match sub {
        "" => super::cmd_docs::all_info(),
        "help" => help(COMMAND_HELP),
        "count" => Value::Integer(table::COMMANDS.len() as i64),
        "list" => command_list(argv),
        "info" => match argv.get(2..) {
            Some(names) if !names.is_empty() => Value::Array(
                names
                    .iter()
                    .map(|n| super::cmd_docs::info_of(n).unwrap_or(Value::NullBulk))
                    .collect(),
            ),
            _ => super::cmd_docs::all_info(),
        },
        "docs" => match argv.get(2..) {
            Some(names) if !names.is_empty() => Value::Map(
                names
                    .iter()
                    .filter_map(|n| {
                        super::cmd_docs::docs_of(n).map(|d| (Value::Bulk(n.clone()), d))
                    })
                    .collect(),
            ),
            _ => super::cmd_docs::all_docs(),
        },
        "getkeys" | "getkeysandflags" => {
            let inner = argv.get(2..).unwrap_or_default();
            if table::lookup_argv(inner).is_none() {
                err("ERR Invalid command specified")
            } else {
                // No sentinel-mode command takes keys.
                err("ERR The command has no key arguments")
            }
        }
        _ => err(format!("ERR unknown subcommand '{sub}'. Try COMMAND HELP.")),
    }
}

fn command_list(argv: &[Vec<u8>]) -> Value {
    let names: Vec<String> = table::all_ids().map(|r| r.fullname()).collect();
    let filtered: Vec<String> = match argv.len() {
        2 => names,
        5 if lower(&argv[2]) == "filterby" => {
            let val = &argv[4];
            match lower(&argv[3]).as_str() {
                "module" => Vec::new(),
                "aclcat" => {
                    super::acl::category_commands(&String::from_utf8_lossy(val)).unwrap_or_default()
                }
                "pattern" => names
                    .into_iter()
                    .filter(|n| super::glob::matches(val, n.as_bytes(), true))
                    .collect(),
                _ => return syntax(),
            }
        }
        _ => return syntax(),
    };
    Value::Array(filtered.into_iter().map(Value::bulk).collect())
}
