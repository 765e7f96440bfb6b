//! The command table of sentinel mode: the 15 top-level commands and their
//! subcommands with the arities, flags and ACL categories of redis-sentinel
//! 7.0.15, in the order the real server lists them (its dict order, which
//! `COMMAND`, `COMMAND LIST`, `ACL CAT` and `ACL LIST` expose).
//!
//! The dispatcher resolves a request against this table first, so arity,
//! unknown-command and unknown-subcommand errors are produced before any
//! handler (including the SENTINEL subcommands) runs. The ACL code uses the
//! flattened index of a spec as its command id.

pub const F_ADMIN: u32 = 1;
pub const F_ALLOW_BUSY: u32 = 1 << 1;
pub const F_FAST: u32 = 1 << 2;
pub const F_LOADING: u32 = 1 << 3;
pub const F_NO_AUTH: u32 = 1 << 4;
pub const F_NO_MULTI: u32 = 1 << 5;
pub const F_NOSCRIPT: u32 = 1 << 6;
pub const F_PUBSUB: u32 = 1 << 7;
pub const F_STALE: u32 = 1 << 8;

/// ACL categories, in the order of Redis's category table (`ACL CAT`).
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];
pub const C_PUBSUB: u32 = 1 << 12;
pub const C_ADMIN: u32 = 1 << 13;
pub const C_FAST: u32 = 1 << 14;
pub const C_SLOW: u32 = 1 << 15;
pub const C_DANGEROUS: u32 = 1 << 17;
pub const C_CONNECTION: u32 = 1 << 18;

/// One command or subcommand. `name` is the lower-case name (without the
/// container prefix for subcommands).
#[derive(Debug)]
pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub cats: u32,
    pub subs: &'static [CommandSpec],
}

/// A resolved command: the top-level spec and, for containers, the subcommand.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    pub top: &'static CommandSpec,
    pub sub: Option<&'static CommandSpec>,
    /// Flattened index (ACL command id).
    pub id: usize,
}

impl Resolved {
    pub fn spec(&self) -> &'static CommandSpec {
        self.sub.unwrap_or(self.top)
    }
    /// `container|sub` or the plain name, as in Redis's error messages.
    /// Whether `name` is `fullname()`, without building it.
    pub fn is_named(&self, name: &str) -> bool {
        match self.sub {
            Some(s) => name
                .strip_prefix(self.top.name)
                .and_then(|rest| rest.strip_prefix('|'))
                .is_some_and(|rest| rest == s.name),
            None => name == self.top.name,
        }
    }

    pub fn fullname(&self) -> String {
        match self.sub {
            Some(s) => format!("{}|{}", self.top.name, s.name),
            None => self.top.name.to_string(),
        }
    }
}

/// Why a request does not name a runnable command (the error text is the
/// exact Redis 7.0 one, without the leading `ERR `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    UnknownCommand(String),
    UnknownSubcommand(String),
    Arity(String),
}

impl LookupError {
    pub fn message(&self) -> String {
        match self {
            LookupError::UnknownCommand(m) | LookupError::UnknownSubcommand(m) => {
                format!("ERR {m}")
            }
            LookupError::Arity(name) => {
                format!("ERR wrong number of arguments for '{name}' command")
            }
        }
    }
}

/// Flattened table: (top-level index, optional subcommand index) per id.
pub fn all_ids() -> impl Iterator<Item = Resolved> {
    let mut out = Vec::new();
    for top in COMMANDS {
        out.push((top, None));
        for sub in top.subs {
            out.push((top, Some(sub)));
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(id, (top, sub))| Resolved { top, sub, id })
}

/// Number of ids (top-level commands plus subcommands): 72.
pub fn id_count() -> usize {
    COMMANDS.iter().map(|c| 1 + c.subs.len()).sum()
}

fn base_id(top_index: usize) -> usize {
    COMMANDS
        .iter()
        .take(top_index)
        .map(|c| 1 + c.subs.len())
        .sum()
}

fn find_top(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    COMMANDS
        .iter()
        .enumerate()
        .find(|(_, c)| c.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Resolves a command by name (`ping`, or `client|kill` for a subcommand), as
/// ACL rules and COMMAND INFO name them. Case-insensitive.
pub fn lookup_name(name: &[u8]) -> Option<Resolved> {
    let (top_name, sub_name) = match name.iter().position(|&b| b == b'|') {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    let (ti, top) = find_top(top_name)?;
    match sub_name {
        None => Some(Resolved {
            top,
            sub: None,
            id: base_id(ti),
        }),
        Some(s) => {
            let (si, sub) = top
                .subs
                .iter()
                .enumerate()
                .find(|(_, c)| c.name.as_bytes().eq_ignore_ascii_case(s))?;
            Some(Resolved {
                top,
                sub: Some(sub),
                id: base_id(ti) + 1 + si,
            })
        }
    }
}

/// Resolves a request (argv) the way Redis's `lookupCommand` does: the first
/// argument names the command, the second a subcommand when the command is a
/// container and there are at least two arguments.
pub fn lookup_argv(argv: &[Vec<u8>]) -> Option<Resolved> {
    let first = argv.first()?;
    let (ti, top) = find_top(first)?;
    if top.subs.is_empty() || argv.len() < 2 {
        return Some(Resolved {
            top,
            sub: None,
            id: base_id(ti),
        });
    }
    let s = argv.get(1)?;
    let (si, sub) = top
        .subs
        .iter()
        .enumerate()
        .find(|(_, c)| c.name.as_bytes().eq_ignore_ascii_case(s))?;
    Some(Resolved {
        top,
        sub: Some(sub),
        id: base_id(ti) + 1 + si,
    })
}

/// Lookup plus the existence and arity checks of `processCommand`.
pub fn resolve(argv: &[Vec<u8>]) -> Result<Resolved, LookupError> {
    let Some(r) = lookup_argv(argv) else {
        let first = argv.first().map(|a| a.as_slice()).unwrap_or_default();
        if argv.len() >= 2 && find_top(first).is_some() {
            let sub = argv.get(1).map(|a| a.as_slice()).unwrap_or_default();
            return Err(LookupError::UnknownSubcommand(format!(
                "unknown subcommand '{}'. Try {} HELP.",
                trunc(sub, 128),
                String::from_utf8_lossy(first).to_uppercase()
            )));
        }
        return Err(LookupError::UnknownCommand(unknown_command_message(argv)));
    };
    let arity = r.spec().arity;
    let argc = argv.len() as i32;
    if ((arity > 0 && arity != argc) || argc < -arity) && !valkey_form(&r, argc) {
        return Err(LookupError::Arity(r.fullname()));
    }
    Ok(r)
}

/// `SENTINEL FAILOVER <master> COORDINATED`, Valkey's form, and
/// `SENTINEL FAILOVER <master> FORCE` are taken on top of 7.0.15's arity
/// (which COMMAND keeps reporting).
fn valkey_form(r: &Resolved, argc: i32) -> bool {
    argc == 4 && r.fullname() == "sentinel|failover"
}

fn trunc(s: &[u8], max: usize) -> String {
    String::from_utf8_lossy(s.get(..max.min(s.len())).unwrap_or_default()).into_owned()
}

/// `unknown command 'X', with args beginning with: 'a' 'b' ` with Redis's
/// truncation: the name is cut at 128 bytes, each argument is cut so the list
/// stays within 128 bytes, and no argument is added once it reaches 128.
pub fn unknown_command_message(argv: &[Vec<u8>]) -> String {
    let name = argv.first().map(|a| a.as_slice()).unwrap_or_default();
    let mut args: Vec<u8> = Vec::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(a.get(..room.min(a.len())).unwrap_or_default());
        args.extend_from_slice(b"' ");
    }
    format!(
        "unknown command '{}', with args beginning with: {}",
        trunc(name, 128),
        String::from_utf8_lossy(&args)
    )
}

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "unsubscribe", arity: -1, flags: F_PUBSUB | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_PUBSUB | C_SLOW, subs: &[] },
    CommandSpec { name: "shutdown", arity: -1, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE | F_NO_MULTI | F_ALLOW_BUSY, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
    CommandSpec { name: "hello", arity: -1, flags: F_NOSCRIPT | F_LOADING | F_STALE | F_FAST | F_NO_AUTH | F_ALLOW_BUSY, cats: C_FAST | C_CONNECTION, subs: &[] },
    CommandSpec { name: "command", arity: -1, flags: F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[
        CommandSpec { name: "list", arity: -2, flags: F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "getkeys", arity: -4, flags: F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "getkeysandflags", arity: -4, flags: F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "help", arity: 2, flags: F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "docs", arity: -2, flags: F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "count", arity: 2, flags: F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "info", arity: -2, flags: F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
    ] },
    CommandSpec { name: "auth", arity: -2, flags: F_NOSCRIPT | F_LOADING | F_STALE | F_FAST | F_NO_AUTH | F_ALLOW_BUSY, cats: C_FAST | C_CONNECTION, subs: &[] },
    CommandSpec { name: "info", arity: -1, flags: F_LOADING | F_STALE, cats: C_SLOW | C_DANGEROUS, subs: &[] },
    CommandSpec { name: "ping", arity: -1, flags: F_FAST, cats: C_FAST | C_CONNECTION, subs: &[] },
    CommandSpec { name: "role", arity: 1, flags: F_NOSCRIPT | F_LOADING | F_STALE | F_FAST, cats: C_ADMIN | C_FAST | C_DANGEROUS, subs: &[] },
    CommandSpec { name: "sentinel", arity: -2, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[
        CommandSpec { name: "monitor", arity: 6, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "is-master-down-by-addr", arity: 6, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "replicas", arity: 3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "remove", arity: 3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "flushconfig", arity: 2, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "help", arity: 2, flags: F_LOADING | F_STALE, cats: C_SLOW, subs: &[] },
        CommandSpec { name: "failover", arity: 3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "master", arity: 3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "get-master-addr-by-name", arity: 3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "pending-scripts", arity: 2, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "ckquorum", arity: 3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "debug", arity: -2, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "config", arity: -3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "sentinels", arity: 3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "simulate-failure", arity: -3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "info-cache", arity: -3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "myid", arity: 2, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "masters", arity: 2, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "set", arity: -5, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "slaves", arity: 3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "reset", arity: 3, flags: F_ADMIN, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
    ] },
    CommandSpec { name: "acl", arity: -2, flags: 0, cats: C_SLOW, subs: &[
        CommandSpec { name: "dryrun", arity: -4, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "cat", arity: -2, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW, subs: &[] },
        CommandSpec { name: "load", arity: 2, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "log", arity: -2, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "whoami", arity: 2, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW, subs: &[] },
        CommandSpec { name: "save", arity: 2, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "getuser", arity: 3, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "setuser", arity: -3, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "list", arity: 2, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "genpass", arity: -2, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW, subs: &[] },
        CommandSpec { name: "users", arity: 2, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "deluser", arity: -3, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS, subs: &[] },
        CommandSpec { name: "help", arity: 2, flags: F_LOADING | F_STALE, cats: C_SLOW, subs: &[] },
    ] },
    CommandSpec { name: "client", arity: -2, flags: 0, cats: C_SLOW, subs: &[
        CommandSpec { name: "id", arity: 2, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "reply", arity: 3, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "caching", arity: 3, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "tracking", arity: -3, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "getredir", arity: 2, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "setname", arity: 3, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "no-evict", arity: 3, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS | C_CONNECTION, subs: &[] },
        CommandSpec { name: "info", arity: 2, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "unblock", arity: -3, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS | C_CONNECTION, subs: &[] },
        CommandSpec { name: "getname", arity: 2, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "list", arity: -2, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS | C_CONNECTION, subs: &[] },
        CommandSpec { name: "unpause", arity: 2, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS | C_CONNECTION, subs: &[] },
        CommandSpec { name: "kill", arity: -3, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS | C_CONNECTION, subs: &[] },
        CommandSpec { name: "trackinginfo", arity: 2, flags: F_NOSCRIPT | F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "help", arity: 2, flags: F_LOADING | F_STALE, cats: C_SLOW | C_CONNECTION, subs: &[] },
        CommandSpec { name: "pause", arity: -3, flags: F_ADMIN | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_ADMIN | C_SLOW | C_DANGEROUS | C_CONNECTION, subs: &[] },
    ] },
    CommandSpec { name: "punsubscribe", arity: -1, flags: F_PUBSUB | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_PUBSUB | C_SLOW, subs: &[] },
    CommandSpec { name: "publish", arity: 3, flags: F_PUBSUB | F_LOADING | F_STALE | F_FAST, cats: C_PUBSUB | C_FAST, subs: &[] },
    CommandSpec { name: "subscribe", arity: -2, flags: F_PUBSUB | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_PUBSUB | C_SLOW, subs: &[] },
    CommandSpec { name: "psubscribe", arity: -2, flags: F_PUBSUB | F_NOSCRIPT | F_LOADING | F_STALE, cats: C_PUBSUB | C_SLOW, subs: &[] },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|a| a.as_bytes().to_vec()).collect()
    }

    fn err(s: &str) -> String {
        resolve(&argv(s)).unwrap_err().message()
    }

    #[test]
    fn counts_match_sentinel_mode() {
        assert_eq!(COMMANDS.len(), 15);
        assert_eq!(id_count(), 72);
    }

    #[test]
    fn errors_match_redis_sentinel() {
        assert_eq!(
            err("FOO a b c"),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' 'c' "
        );
        assert_eq!(
            err("quit"),
            "ERR unknown command 'quit', with args beginning with: "
        );
        assert_eq!(
            err("sentinel"),
            "ERR wrong number of arguments for 'sentinel' command"
        );
        assert_eq!(
            err("sentinel foo"),
            "ERR unknown subcommand 'foo'. Try SENTINEL HELP."
        );
        assert_eq!(
            err("Client SetInfo x y"),
            "ERR unknown subcommand 'SetInfo'. Try CLIENT HELP."
        );
        assert_eq!(
            err("sentinel set m opt"),
            "ERR wrong number of arguments for 'sentinel|set' command"
        );
        assert_eq!(
            err("sentinel help x"),
            "ERR wrong number of arguments for 'sentinel|help' command"
        );
        assert_eq!(
            err("role x"),
            "ERR wrong number of arguments for 'role' command"
        );
        assert_eq!(
            err("publish"),
            "ERR wrong number of arguments for 'publish' command"
        );
        assert!(resolve(&argv("SENTINEL get-master-addr-by-name x")).is_ok());
        assert_eq!(
            lookup_name(b"client|kill").unwrap().fullname(),
            "client|kill"
        );
    }

    #[test]
    fn unknown_command_truncates_like_redis() {
        let long = "x".repeat(200);
        let m = err(&format!("{long} {long} b"));
        let expect = format!(
            "ERR unknown command '{}', with args beginning with: '{}' ",
            "x".repeat(128),
            "x".repeat(128)
        );
        assert_eq!(m, expect);
        // 100 + 3 = 103 < 128, so a second (cut) argument follows.
        let a = "a".repeat(100);
        let m = err(&format!("foo {a} {long}"));
        assert_eq!(
            m,
            format!(
                "ERR unknown command 'foo', with args beginning with: '{a}' '{}' ",
                "x".repeat(25)
            )
        );
    }
}
