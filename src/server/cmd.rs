//! Command dispatch: the per-connection [`Session`], the typed [`Command`]
//! and [`execute`], which runs one request.
//!
//! [`execute`] follows Redis 7.0's `processCommand` order: resolve against the
//! table (unknown command / subcommand / arity), authentication, ACL, the
//! RESP2 subscribed-context restriction, then the command's own parse (its
//! argument errors) and, only when that succeeded, its execution. Each command
//! is a small struct in the file of its group (`connection_cmd`,
//! `pubsub_cmd`, `sentinel_cmd`, `client_cmd`, `acl_cmd`, `command_cmd`); it
//! borrows its arguments from the request and produces one or more
//! [`Frame`]s (several only for SUBSCRIBE-style commands).

use std::sync::Arc;

use indexmap::IndexSet;
use tokio::time::Instant;

use super::client::ClientHandle;
use super::connection_cmd::{self, Auth, Hello, Ping, Shutdown};
use super::pubsub::Subscriber;
use super::pubsub_cmd::{Publish, Subscribe, Unsubscribe};
use super::sentinel_cmd::SentinelCmd;
use super::stats;
use super::table::{self, Resolved};
use super::Server;
use crate::resp::Frame;

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
    /// The signing state of the connection's Raft RPCs (`raft_rpc`).
    pub raft: crate::consensus::trust::ServerSession,
}

impl Session {
    /// A fresh connection: RESP2, the default user, authenticated only when
    /// the default user needs no password.
    pub fn new(handle: Arc<ClientHandle>, subscriber: Subscriber, authenticated: bool) -> Session {
        Session {
            handle,
            proto: 2,
            authenticated,
            user: "default".into(),
            channels: IndexSet::new(),
            patterns: IndexSet::new(),
            subscriber,
            reply: ReplyMode::On,
            close_after_reply: false,
            raft: Default::default(),
        }
    }

    pub(super) fn subscriptions(&self) -> i64 {
        (self.channels.len() + self.patterns.len()) as i64
    }

    pub(super) fn sync_counts(&self) {
        let mut s = self.handle.state();
        s.sub = self.channels.len();
        s.psub = self.patterns.len();
        s.channels = self.channels.iter().cloned().collect();
        s.patterns = self.patterns.iter().cloned().collect();
    }
}

pub(super) fn err(s: impl Into<String>) -> Frame {
    Frame::error(s)
}

pub(super) fn syntax() -> Frame {
    err("ERR syntax error")
}

pub(super) fn lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}

pub(super) fn arity_err(name: &str) -> Frame {
    err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub(super) fn help(lines: &[&str]) -> Frame {
    Frame::Array(lines.iter().map(|l| Frame::simple(*l)).collect())
}

/// A request parsed into the command it names, its arguments borrowed from
/// the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Command<'a> {
    Ping(Ping<'a>),
    Role,
    Info(&'a [Vec<u8>]),
    Auth(Auth<'a>),
    Hello(Hello<'a>),
    Publish(Publish<'a>),
    Shutdown(Shutdown),
    Subscribe(Subscribe<'a>),
    Unsubscribe(Unsubscribe<'a>),
    Sentinel(SentinelCmd<'a>),
    /// CLIENT, ACL and COMMAND: the resolved subcommand name and the request.
    Client(&'static str, &'a [Vec<u8>]),
    Acl(&'static str, &'a [Vec<u8>]),
    CommandInfo(&'static str, &'a [Vec<u8>]),
}

impl<'a> Command<'a> {
    /// Parses a request the table resolved to `r`. Errors are the command's
    /// argument errors, exactly as Redis words them.
    pub fn parse(r: &Resolved, argv: &'a [Vec<u8>]) -> Result<Command<'a>, Frame> {
        let rest = argv.get(1..).unwrap_or_default();
        let sub = r.sub.map(|s| s.name).unwrap_or("");
        Ok(match r.top.name {
            "ping" => Command::Ping(Ping::parse(argv)?),
            "role" => Command::Role,
            "info" => Command::Info(rest),
            "auth" => Command::Auth(Auth::parse(argv)?),
            "hello" => Command::Hello(Hello::parse(argv)?),
            "publish" => Command::Publish(Publish::parse(argv)?),
            "shutdown" => Command::Shutdown(Shutdown::parse(argv)?),
            "subscribe" | "psubscribe" => Command::Subscribe(Subscribe {
                pattern: r.top.name == "psubscribe",
                channels: rest,
            }),
            "unsubscribe" | "punsubscribe" => Command::Unsubscribe(Unsubscribe {
                pattern: r.top.name == "punsubscribe",
                channels: rest,
            }),
            "sentinel" => Command::Sentinel(SentinelCmd::parse(sub, argv)?),
            "client" => Command::Client(sub, argv),
            "acl" => Command::Acl(sub, argv),
            "command" => Command::CommandInfo(sub, argv),
            name => return Err(err(format!("ERR unknown command '{name}'"))),
        })
    }

    /// Runs the command; its replies in order (none for SHUTDOWN).
    pub async fn execute(self, server: &Server, sess: &mut Session) -> Vec<Frame> {
        let one = match self {
            Command::Ping(c) => c.execute(sess),
            Command::Role => connection_cmd::role(server),
            Command::Info(sections) => connection_cmd::info(server, sections),
            Command::Auth(c) => c.execute(server, sess),
            Command::Hello(c) => c.execute(server, sess),
            Command::Publish(c) => c.execute(server),
            Command::Shutdown(c) => {
                c.execute(server);
                return Vec::new();
            }
            Command::Subscribe(c) => return c.execute(server, sess),
            Command::Unsubscribe(c) => return c.execute(server, sess),
            Command::Sentinel(c) => c.execute(server).await,
            Command::Client(sub, argv) => super::client_cmd::client(server, sess, sub, argv),
            Command::Acl(sub, argv) => super::acl_cmd::acl(server, sess, sub, argv),
            Command::CommandInfo(sub, argv) => super::command_cmd::command(sub, argv),
        };
        vec![one]
    }
}

/// Runs one request and returns its replies (empty = no reply, e.g.
/// SHUTDOWN). Updates the counters of INFO.
pub async fn execute(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Vec<Frame> {
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
    if sess.proto == 2
        && sess.subscriptions() > 0
        && !matches!(
            r.top.name,
            "ping" | "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe"
        )
    {
        return vec![err(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            r.fullname()
        ))];
    }
    stats::add(&server.stats.commands_processed, 1);
    match Command::parse(&r, argv) {
        Ok(cmd) => cmd.execute(server, sess).await,
        Err(e) => vec![e],
    }
}
pub(crate) fn auth_required(server: &Server) -> bool {
    !server.acl().default_nopass()
}

/// The ACL check of the command `argv` would be (for commands kept out of
/// the table that need the rights of one in it).
pub(super) fn check_acl_as(server: &Server, sess: &Session, argv: &[Vec<u8>]) -> Option<Frame> {
    let r = table::resolve(argv).ok()?;
    check_acl(server, sess, &r, argv)
}

fn check_acl(server: &Server, sess: &Session, r: &Resolved, argv: &[Vec<u8>]) -> Option<Frame> {
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
    if !user.can_run(r.id, argv.get(r.sub.map_or(0, |_| 1)..).unwrap_or_default()) {
        let now = Instant::now();
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
        let now = Instant::now();
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
