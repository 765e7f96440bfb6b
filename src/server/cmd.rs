//! Command dispatch and the non-SENTINEL command handlers.
//!
//! [`execute`] follows Redis 7.0's `processCommand` order: resolve against the
//! table (unknown command / subcommand / arity), authentication, ACL,
//! the RESP2 subscribed-context restriction, then the handler. Each handler
//! checks its arguments before touching any state and produces one or more
//! [`Value`]s (several only for SUBSCRIBE-style commands). The containers
//! live in their own files: `client_cmd`, `acl_cmd`, `command_cmd`, and
//! CORE's `sentinel_cmd` (SENTINEL HELP is answered here).

use std::sync::Arc;

use indexmap::IndexSet;
use tokio::time::Instant;

use super::client::{valid_client_name, ClientCtx, ClientHandle};
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

pub(super) fn err(s: impl Into<String>) -> Value {
    Value::error(s)
}

pub(super) fn syntax() -> Value {
    err("ERR syntax error")
}

pub(super) fn lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}

pub(super) fn arity_err(name: &str) -> Value {
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
    {
        // Pipelined clients repeat one command: keep the name, no new String.
        let mut st = sess.handle.state();
        if !st.last_cmd.as_deref().is_some_and(|l| r.is_named(l)) {
            st.last_cmd = Some(r.fullname());
        }
    }
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
        "client" => vec![super::client_cmd::client(server, sess, sub, argv)],
        "acl" => vec![super::acl_cmd::acl(server, sess, sub, argv)],
        "command" => vec![super::command_cmd::command(sub, argv)],
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
pub(super) fn channel_args<'a>(r: &Resolved, argv: &'a [Vec<u8>]) -> Vec<(&'a [u8], bool)> {
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
    // The hello is accepted whatever the flush outcome: its flush (a peer
    // discovered) runs in the background, a failure is logged there.
    shared.execute_background(actions);
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

pub(super) fn help(lines: &[&str]) -> Value {
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
