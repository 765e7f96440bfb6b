//! Users and permissions, with Redis 7.0 ACL semantics for what Sentinel
//! deployments use: `requirepass` (the `default` user's password), `user`
//! lines and `aclfile`, ACL SETUSER rules (on/off, passwords, key and channel
//! patterns, commands and categories, selectors), the ACL LIST description
//! (Redis 7.0's "best fit" category rendering), permission checks and the
//! ACL LOG.
//!
//! Not supported: first-argument rules for commands without subcommands
//! (`+select|0` style; no Sentinel command has meaningful first args), which
//! are rejected as unknown commands.

use std::collections::{BTreeMap, VecDeque};

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::glob;
use super::table::{self, Resolved, CATEGORIES};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("Unknown command or category name in ACL")]
    Unknown,
    #[error("Syntax error")]
    Syntax,
    #[error("Allowing first-arg of a subcommand is not supported")]
    FirstArgOfSubcommand,
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    KeysAfterAll,
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    ChannelsAfterAll,
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
}

const PERM_READ: u8 = 1;
const PERM_WRITE: u8 = 2;

/// Commands, keys and channels a user (or one of its selectors) may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Set by `+@all`/`allcommands`: "future commands" are allowed too.
    allcommands: bool,
    /// Bit per command id (see `table::all_ids`).
    allowed: u128,
    allkeys: bool,
    keys: Vec<(u8, Vec<u8>)>,
    allchannels: bool,
    channels: Vec<Vec<u8>>,
    /// `+cmd|arg` rules for commands without subcommands: the command is
    /// allowed only with one of these first arguments (case-insensitive).
    first_args: std::collections::BTreeMap<usize, Vec<Vec<u8>>>,
}

fn bit(id: usize) -> u128 {
    1u128 << id
}

fn cat_flag(name: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| 1u32 << i)
}

impl Selector {
    fn can(&self, id: usize) -> bool {
        self.allowed & bit(id) != 0
    }

    /// ACLChangeSelectorPerm: a container rule applies to all of its
    /// subcommands, and any first-arg rules of the command are dropped.
    fn set_cmd(&mut self, r: &Resolved, allow: bool) {
        let mut mask = bit(r.id);
        self.first_args.remove(&r.id);
        if r.sub.is_none() {
            for (i, _) in r.top.subs.iter().enumerate() {
                mask |= bit(r.id + 1 + i);
                self.first_args.remove(&(r.id + 1 + i));
            }
        }
        if allow {
            self.allowed |= mask;
        } else {
            self.allowed &= !mask;
        }
    }

    /// Like Redis, a container in the category carries all its subcommands
    /// (so `+@admin` also allows `sentinel|help`).
    fn set_category(&mut self, flag: u32, allow: bool) {
        for r in table::all_ids() {
            if r.spec().cats & flag != 0 {
                self.set_cmd(&r, allow);
            }
        }
    }

    fn can_with_args(&self, id: usize, argv: &[Vec<u8>]) -> bool {
        if self.can(id) {
            return true;
        }
        match (self.first_args.get(&id), argv.get(1)) {
            (Some(args), Some(first)) => args.iter().any(|a| a.eq_ignore_ascii_case(first)),
            _ => false,
        }
    }

    /// Applies one selector rule (keys, channels, commands).
    fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let lower = String::from_utf8_lossy(op).to_ascii_lowercase();
        match lower.as_str() {
            "allkeys" | "~*" => {
                self.allkeys = true;
                self.keys.clear();
                return Ok(());
            }
            "resetkeys" => {
                self.allkeys = false;
                self.keys.clear();
                return Ok(());
            }
            "allchannels" | "&*" => {
                self.allchannels = true;
                self.channels.clear();
                return Ok(());
            }
            "resetchannels" => {
                self.allchannels = false;
                self.channels.clear();
                return Ok(());
            }
            "allcommands" | "+@all" => {
                self.allcommands = true;
                self.allowed = u128::MAX;
                self.first_args.clear();
                return Ok(());
            }
            "nocommands" | "-@all" => {
                self.allcommands = false;
                self.allowed = 0;
                self.first_args.clear();
                return Ok(());
            }
            _ => {}
        }
        match op.first() {
            Some(b'~') | Some(b'%') => {
                let (flags, pat) = if op.first() == Some(&b'~') {
                    (PERM_READ | PERM_WRITE, op.get(1..).unwrap_or_default())
                } else {
                    let tilde = op
                        .iter()
                        .position(|&b| b == b'~')
                        .ok_or(RuleError::Syntax)?;
                    let mut f = 0;
                    for &c in op.get(1..tilde).unwrap_or_default() {
                        match c {
                            b'R' | b'r' => f |= PERM_READ,
                            b'W' | b'w' => f |= PERM_WRITE,
                            _ => return Err(RuleError::Syntax),
                        }
                    }
                    if f == 0 {
                        return Err(RuleError::Syntax);
                    }
                    (f, op.get(tilde + 1..).unwrap_or_default())
                };
                if self.allkeys {
                    return Err(RuleError::KeysAfterAll);
                }
                if let Some(e) = self.keys.iter_mut().find(|(_, p)| p == pat) {
                    e.0 |= flags;
                } else {
                    self.keys.push((flags, pat.to_vec()));
                }
                Ok(())
            }
            Some(b'&') => {
                if self.allchannels {
                    return Err(RuleError::ChannelsAfterAll);
                }
                let pat = op.get(1..).unwrap_or_default().to_vec();
                if !self.channels.contains(&pat) {
                    self.channels.push(pat);
                }
                Ok(())
            }
            Some(&sign @ (b'+' | b'-')) => {
                let allow = sign == b'+';
                let rest = op.get(1..).unwrap_or_default();
                if let Some(cat) = rest.strip_prefix(b"@") {
                    let flag = cat_flag(&String::from_utf8_lossy(cat)).ok_or(RuleError::Unknown)?;
                    self.set_category(flag, allow);
                    return Ok(());
                }
                if !allow {
                    let r = table::lookup_name(rest).ok_or(RuleError::Unknown)?;
                    self.set_cmd(&r, false);
                    return Ok(());
                }
                // `+a|b`: split at the last `|` like Redis: a subcommand of a
                // container, or a first argument of a plain command.
                let Some(bar) = rest.iter().rposition(|&b| b == b'|') else {
                    let r = table::lookup_name(rest).ok_or(RuleError::Unknown)?;
                    self.set_cmd(&r, true);
                    return Ok(());
                };
                let (head, arg) = (&rest[..bar], &rest[bar + 1..]);
                let r = table::lookup_name(head).ok_or(RuleError::Unknown)?;
                if r.sub.is_some() {
                    return Err(RuleError::FirstArgOfSubcommand);
                }
                if arg.is_empty() {
                    return Err(RuleError::Syntax);
                }
                if !r.top.subs.is_empty() {
                    let r = table::lookup_name(rest).ok_or(RuleError::Unknown)?;
                    self.set_cmd(&r, true);
                    return Ok(());
                }
                let args = self.first_args.entry(r.id).or_default();
                if !args.iter().any(|a| a.eq_ignore_ascii_case(arg)) {
                    args.push(arg.to_vec());
                }
                Ok(())
            }
            _ => Err(RuleError::Syntax),
        }
    }

    fn category_bits(&self, flag: u32) -> (usize, usize) {
        let (mut on, mut off) = (0, 0);
        for r in table::all_ids() {
            if r.spec().cats & flag != 0 {
                if self.can(r.id) {
                    on += 1;
                } else {
                    off += 1;
                }
            }
        }
        (on, off)
    }

    /// The command part of ACL LIST, as Redis 7.0 renders it: `+@all` or
    /// `-@all`, then each category that is mostly on (resp. off), then the
    /// single commands that still differ, in command-table order.
    pub fn describe_commands(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let additive = !self.allcommands;
        let mut fake = Selector::default();
        if additive {
            out.push("-@all".into());
        } else {
            out.push("+@all".into());
            fake.allcommands = true;
            fake.allowed = u128::MAX;
        }
        // Greedy best fit, as Redis 7.0 does: repeatedly take the category with
        // the fewest differences from what is left (ties: most in common), as
        // long as it has more in common than different.
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best: Option<usize> = None;
            let (mut min_diff, mut max_same) = (usize::MAX, 0);
            for (i, done) in applied.iter().enumerate() {
                if *done {
                    continue;
                }
                let (on, off) = temp.category_bits(1u32 << i);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                    best = Some(i);
                    min_diff = diff;
                    max_same = same;
                }
            }
            let Some(i) = best else {
                break;
            };
            let flag = 1u32 << i;
            fake.set_category(flag, additive);
            temp.set_category(flag, !additive);
            out.push(format!(
                "{}@{}",
                if additive { '+' } else { '-' },
                CATEGORIES[i]
            ));
            applied[i] = true;
        }
        for r in table::all_ids() {
            let user = self.can(r.id);
            if user != fake.can(r.id) {
                out.push(format!("{}{}", if user { '+' } else { '-' }, r.fullname()));
                fake.set_cmd(&r, user);
            }
            if !user {
                for a in self.first_args.get(&r.id).into_iter().flatten() {
                    out.push(format!("+{}|{}", r.fullname(), String::from_utf8_lossy(a)));
                }
            }
        }
        out.join(" ")
    }

    fn describe_keys(&self) -> Vec<String> {
        if self.allkeys {
            return vec!["~*".into()];
        }
        self.keys
            .iter()
            .map(|(f, p)| {
                let prefix = match *f {
                    PERM_READ => "%R~",
                    PERM_WRITE => "%W~",
                    _ => "~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(p))
            })
            .collect()
    }

    fn describe_channels(&self) -> Vec<String> {
        if self.allchannels {
            return vec!["&*".into()];
        }
        self.channels
            .iter()
            .map(|p| format!("&{}", String::from_utf8_lossy(p)))
            .collect()
    }

    /// Keys, channels and commands as in ACL LIST.
    pub fn describe(&self) -> String {
        let mut parts = self.describe_keys();
        if !self.allchannels {
            parts.push("resetchannels".into());
        }
        if self.allchannels {
            parts.push("&*".into());
        } else {
            parts.extend(self.describe_channels());
        }
        parts.push(self.describe_commands());
        parts.join(" ")
    }

    fn channel_ok(&self, channel: &[u8], is_pattern: bool) -> bool {
        if self.allchannels {
            return true;
        }
        self.channels.iter().any(|p| {
            if is_pattern {
                p == channel
            } else {
                glob::matches(p, channel, false)
            }
        })
    }
}

/// One ACL user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// SHA-256 hex of each password, in the order added.
    pub passwords: Vec<String>,
    /// `Some(true)` = sanitize-payload, `Some(false)` = skip-sanitize-payload.
    pub sanitize: Option<bool>,
    pub root: Selector,
    pub selectors: Vec<Selector>,
}

pub fn hash_password(p: &[u8]) -> String {
    hex::encode(Sha256::digest(p))
}

impl User {
    /// A user created by ACL SETUSER: off, no passwords, no permissions
    /// (acl-pubsub-default is resetchannels in 7.0).
    pub fn new(name: &str) -> User {
        User {
            name: name.into(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            sanitize: None,
            root: Selector::default(),
            selectors: Vec::new(),
        }
    }

    /// The `default` user before configuration: `on nopass ~* &* +@all`.
    pub fn default_user() -> User {
        let mut u = User::new("default");
        u.enabled = true;
        u.nopass = true;
        u.root.allkeys = true;
        u.root.allchannels = true;
        u.root.allcommands = true;
        u.root.allowed = u128::MAX;
        u
    }

    /// Applies one SETUSER rule.
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let lower = String::from_utf8_lossy(op).to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "skip-sanitize-payload" => self.sanitize = Some(false),
            "sanitize-payload" => self.sanitize = Some(true),
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "clearselectors" => self.selectors.clear(),
            "reset" => {
                for r in [
                    "resetpass",
                    "resetkeys",
                    "resetchannels",
                    "off",
                    "-@all",
                    "clearselectors",
                ] {
                    self.apply(r.as_bytes())?;
                }
                self.sanitize = Some(true);
            }
            _ => match op.first() {
                Some(b'>') => {
                    let h = hash_password(op.get(1..).unwrap_or_default());
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                Some(b'#') => {
                    let h = op.get(1..).unwrap_or_default();
                    if h.len() != 64 || !h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                        return Err(RuleError::BadHash);
                    }
                    let h = String::from_utf8_lossy(h).into_owned();
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                Some(b'<') => {
                    let h = hash_password(op.get(1..).unwrap_or_default());
                    let before = self.passwords.len();
                    self.passwords.retain(|p| p != &h);
                    if self.passwords.len() == before {
                        return Err(RuleError::NoSuchPassword);
                    }
                    self.nopass = false;
                }
                Some(b'!') => {
                    let h = op.get(1..).unwrap_or_default();
                    if h.len() != 64 || !h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                        return Err(RuleError::BadHash);
                    }
                    let h = String::from_utf8_lossy(h).into_owned();
                    let before = self.passwords.len();
                    self.passwords.retain(|p| p != &h);
                    if self.passwords.len() == before {
                        return Err(RuleError::NoSuchPassword);
                    }
                    self.nopass = false;
                }
                Some(b'(') if op.last() == Some(&b')') && op.len() >= 2 => {
                    let inner = op.get(1..op.len() - 1).unwrap_or_default();
                    let mut s = Selector::default();
                    for r in inner
                        .split(|b| b.is_ascii_whitespace())
                        .filter(|r| !r.is_empty())
                    {
                        s.apply(r)?;
                    }
                    self.selectors.push(s);
                }
                _ => self.root.apply(op)?,
            },
        }
        Ok(())
    }

    pub fn check_password(&self, pass: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let h = hash_password(pass);
        self.passwords.iter().any(|p| p == &h)
    }

    /// Whether the user may run command `id` with arguments `argv`
    /// (argv[0] is the command name; first-arg rules look at argv[1]).
    pub fn can_run(&self, id: usize, argv: &[Vec<u8>]) -> bool {
        self.root.can_with_args(id, argv)
            || self.selectors.iter().any(|s| s.can_with_args(id, argv))
    }

    pub fn can_use_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.root.channel_ok(channel, is_pattern)
            || self
                .selectors
                .iter()
                .any(|s| s.channel_ok(channel, is_pattern))
    }

    pub fn flag_names(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// The ACL LIST line (`user <name> <rules>`).
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("user {}", self.name)];
        parts.extend(self.flag_names().into_iter().map(String::from));
        parts.extend(self.passwords.iter().map(|p| format!("#{p}")));
        parts.push(self.root.describe());
        for s in &self.selectors {
            parts.push(format!("({})", s.describe()));
        }
        parts.join(" ")
    }

    /// GETUSER fields of a selector: commands, keys, channels.
    pub fn selector_fields(s: &Selector) -> (String, String, String) {
        (
            s.describe_commands(),
            s.describe_keys().join(" "),
            s.describe_channels().join(" "),
        )
    }
}

/// One ACL LOG entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub count: u64,
    /// `auth`, `command`, `key` or `channel`.
    pub reason: String,
    pub context: String,
    pub object: String,
    pub username: String,
    pub created: Instant,
    pub updated: Instant,
    pub client_info: String,
}

/// Every user plus the ACL LOG.
#[derive(Debug, Clone)]
pub struct Acl {
    pub users: BTreeMap<String, User>,
    pub log: VecDeque<LogEntry>,
    pub log_max_len: usize,
    pub aclfile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclConfigError {
    #[error("Error in user declaration '{user}': {source}")]
    Rule { user: String, source: RuleError },
    #[error("{0}")]
    Other(String),
}

impl Acl {
    /// Users from the configuration: `user` lines, then `requirepass` as the
    /// password of `default` (both as Redis applies them at startup).
    pub fn from_config(
        users: &[String],
        requirepass: Option<&str>,
        aclfile: Option<&str>,
        log_max_len: u64,
    ) -> Result<Acl, AclConfigError> {
        let mut acl = Acl {
            users: BTreeMap::new(),
            log: VecDeque::new(),
            log_max_len: log_max_len as usize,
            aclfile: aclfile.map(String::from),
        };
        acl.users.insert("default".into(), User::default_user());
        for line in users {
            acl.load_user_line(line)?;
        }
        if let Some(pass) = requirepass {
            if let Some(d) = acl.users.get_mut("default") {
                let rule = format!(">{pass}");
                let _ = d.apply(b"resetpass");
                let _ = d.apply(rule.as_bytes());
            }
        }
        Ok(acl)
    }

    /// `name rule rule ...`: a `user` config line without the keyword.
    pub fn load_user_line(&mut self, line: &str) -> Result<(), AclConfigError> {
        let mut words = line.split_whitespace();
        let name = words
            .next()
            .ok_or_else(|| AclConfigError::Other("missing user name".into()))?;
        // Like ACLLoadConfiguredUsers, a line for an existing user (e.g. the
        // `user default ...` that a config rewrite writes) starts from `reset`.
        let mut u = match self.users.get(name) {
            Some(existing) => {
                let mut u = existing.clone();
                u.apply(b"reset").map_err(|source| AclConfigError::Rule {
                    user: name.into(),
                    source,
                })?;
                u
            }
            None => User::new(name),
        };
        for w in words {
            u.apply(w.as_bytes())
                .map_err(|source| AclConfigError::Rule {
                    user: name.into(),
                    source,
                })?;
        }
        self.users.insert(name.into(), u);
        Ok(())
    }

    /// Parses a whole aclfile (named `path` in errors) into a fresh user set,
    /// all or nothing, with Redis 7.0's error texts; the default user is
    /// recreated if the file does not define it.
    pub fn parse_file(text: &str, path: &str) -> Result<BTreeMap<String, User>, String> {
        const TRAILER: &str =
            "WARNING: ACL errors detected, no change to the previously active ACL rules was performed";
        let mut users: BTreeMap<String, User> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut words = l.split_whitespace();
            let (Some("user"), Some(name)) = (words.next(), words.next()) else {
                return Err(format!(
                    "{path}:{n} should start with user keyword followed by the username. {TRAILER}"
                ));
            };
            if users.contains_key(name) {
                return Err(format!(
                    "{path}:{n}: Duplicate user '{name}' found. {TRAILER}"
                ));
            }
            let mut u = User::new(name);
            for op in words {
                u.apply(op.as_bytes()).map_err(|e| {
                    format!("{path}:{n}: Error in applying operation '{op}': {e}. {TRAILER}")
                })?;
            }
            users.insert(name.to_string(), u);
        }
        if !users.contains_key("default") {
            users.insert("default".into(), User::default_user());
        }
        Ok(users)
    }

    /// The users as `user` config lines without the keyword (what a config
    /// rewrite persists when there is no aclfile).
    pub fn config_lines(&self) -> Vec<String> {
        self.users
            .values()
            .map(|u| u.describe().trim_start_matches("user ").to_string())
            .collect()
    }

    pub fn default_nopass(&self) -> bool {
        self.users
            .get("default")
            .is_some_and(|u| u.nopass && u.enabled)
    }

    /// Records a denial, merging with a recent identical entry like Redis
    /// (same reason, context, object and user within 60 s).
    pub fn add_log(
        &mut self,
        reason: &str,
        context: &str,
        object: &str,
        username: &str,
        client_info: String,
        now: Instant,
    ) {
        if let Some(e) = self.log.iter_mut().find(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && now.saturating_duration_since(e.updated).as_secs() < 60
        }) {
            e.count += 1;
            e.updated = now;
            e.client_info = client_info;
            return;
        }
        self.log.push_front(LogEntry {
            count: 1,
            reason: reason.into(),
            context: context.into(),
            object: object.into(),
            username: username.into(),
            created: now,
            updated: now,
            client_info,
        });
        while self.log.len() > self.log_max_len {
            self.log.pop_back();
        }
    }
}

/// Names of the commands in a category, as ACL CAT lists them.
pub fn category_commands(name: &str) -> Option<Vec<String>> {
    let flag = cat_flag(name)?;
    Some(
        table::all_ids()
            .filter(|r| r.spec().cats & flag != 0)
            .map(|r| r.fullname())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &str) -> Result<User, RuleError> {
        let mut u = User::new("t");
        for r in rules.split(' ').filter(|r| !r.is_empty()) {
            u.apply(r.as_bytes())?;
        }
        Ok(u)
    }

    fn list(rules: &str) -> String {
        user(rules).unwrap().describe()
    }

    #[test]
    fn acl_list_lines_match_redis_7_0() {
        assert_eq!(
            User::default_user().describe(),
            "user default on nopass ~* &* +@all"
        );
        assert_eq!(list(""), "user t off resetchannels -@all");
        assert_eq!(list("+@all -ping"), "user t off resetchannels +@all -ping");
        assert_eq!(
            list("-@all +@connection -ping"),
            "user t off resetchannels -@all +@connection -ping"
        );
        assert_eq!(list("-@all +ping -ping"), "user t off resetchannels -@all");
        assert_eq!(
            list("+@all -@admin +role"),
            "user t off resetchannels +@all -@admin +role"
        );
        assert_eq!(
            list("+client -client|kill"),
            "user t off resetchannels -@all +@connection -hello -command -auth -ping +client -client|kill"
        );
        assert_eq!(
            list("+client|kill +client"),
            "user t off resetchannels -@all +@connection -hello -command -auth -ping +client"
        );
        assert_eq!(
            list("+@connection +@connection -@connection"),
            "user t off resetchannels -@all"
        );
        assert_eq!(
            list("+PING +acl|CAT"),
            "user t off resetchannels -@all +ping +acl|cat"
        );
        assert_eq!(
            list("+@all +@all -@all +@admin"),
            "user t off resetchannels -@all +@admin"
        );
        assert_eq!(
            list("on nopass resetchannels -@all +ping +client|id allchannels ~*"),
            "user t on nopass ~* &* -@all +ping +client|id"
        );
        assert_eq!(
            list("+client|setname +acl|whoami -acl"),
            "user t off resetchannels -@all +client|setname"
        );
        assert_eq!(
            list("+sentinel|help -sentinel|help"),
            "user t off resetchannels -@all"
        );
        assert_eq!(list("on >pw ~* &* +@all"), "user t on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~* &* +@all");
        assert_eq!(
            list("on >p1 >p2 nopass"),
            "user t on nopass resetchannels -@all"
        );
        assert_eq!(list("on nopass >p1"), "user t on #f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a resetchannels -@all");
        assert_eq!(
            list("on resetkeys allkeys"),
            "user t on ~* resetchannels -@all"
        );
        assert_eq!(
            list("reset"),
            "user t off sanitize-payload resetchannels -@all"
        );
        assert_eq!(
            list("skip-sanitize-payload ~key"),
            "user t off skip-sanitize-payload ~key resetchannels -@all"
        );
        assert_eq!(
            list("&a &b %R~k"),
            "user t off %R~k resetchannels &a &b -@all"
        );
    }

    #[test]
    fn rule_errors_match_redis() {
        assert_eq!(user("+@foo"), Err(RuleError::Unknown));
        assert_eq!(user("foo"), Err(RuleError::Syntax));
        assert_eq!(user("+nosuch"), Err(RuleError::Unknown));
        assert_eq!(user("+client|nosuch"), Err(RuleError::Unknown));
        assert_eq!(user("+client|kill|x"), Err(RuleError::FirstArgOfSubcommand));
        assert_eq!(user("-ping|x"), Err(RuleError::Unknown));
        assert_eq!(user("#abc"), Err(RuleError::BadHash));
        assert_eq!(user("<nonexist"), Err(RuleError::NoSuchPassword));
        assert_eq!(user("allchannels &foo"), Err(RuleError::ChannelsAfterAll));
        assert_eq!(user("allkeys ~foo"), Err(RuleError::KeysAfterAll));
        assert_eq!(
            RuleError::Unknown.to_string(),
            "Unknown command or category name in ACL"
        );
    }

    #[test]
    fn permissions() {
        let u = user("on nopass -@all +ping +client|id &ch*").unwrap();
        let ping = table::lookup_name(b"ping").unwrap().id;
        let role = table::lookup_name(b"role").unwrap().id;
        let cid = table::lookup_name(b"client|id").unwrap().id;
        let ckill = table::lookup_name(b"client|kill").unwrap().id;
        let none: Vec<Vec<u8>> = Vec::new();
        assert!(u.can_run(ping, &none) && u.can_run(cid, &none));
        assert!(!u.can_run(role, &none) && !u.can_run(ckill, &none));
        let f = user("on nopass -@all +ping|x").unwrap();
        let args = |a: &[&str]| a.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert!(f.can_run(ping, &args(&["ping", "X"])));
        assert!(!f.can_run(ping, &args(&["ping", "y"])));
        assert!(!f.can_run(ping, &args(&["ping"])));
        let adm = user("on nopass -@all +@admin").unwrap();
        assert!(adm.can_run(table::lookup_name(b"sentinel|help").unwrap().id, &none));
        assert!(u.can_use_channel(b"chan", false));
        assert!(!u.can_use_channel(b"other", false));
        assert!(u.can_use_channel(b"ch*", true));
        assert!(!u.can_use_channel(b"c*", true));
        assert!(u.check_password(b"anything"));
        let p = user("on >secret").unwrap();
        assert!(p.check_password(b"secret") && !p.check_password(b"x"));
    }

    #[test]
    fn aclfile_parsing() {
        let users = Acl::parse_file(
            "user default on nopass ~* &* +@all\n\nuser alice on >pw +@all\n",
            "/x.acl",
        )
        .unwrap();
        assert_eq!(
            users["default"].describe(),
            "user default on nopass ~* &* +@all"
        );
        assert_eq!(
            users["alice"].describe(),
            "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 resetchannels +@all"
        );
        assert_eq!(
            Acl::parse_file("user alice on\nbogus line\n", "/x.acl").unwrap_err(),
            "/x.acl:2 should start with user keyword followed by the username. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
        );
        assert_eq!(
            Acl::parse_file("user alice on +nosuch\n", "/x.acl").unwrap_err(),
            "/x.acl:1: Error in applying operation '+nosuch': Unknown command or category name in ACL. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
        );
        let only = Acl::parse_file("user bob on\n", "/x.acl").unwrap();
        assert_eq!(only["default"], User::default_user());
    }

    #[test]
    fn config_users_and_requirepass() {
        let acl =
            Acl::from_config(&["alice on >pw +@all ~* &*".into()], Some("foo"), None, 128).unwrap();
        assert!(!acl.default_nopass());
        assert!(acl.users["default"].check_password(b"foo"));
        assert!(acl.users["alice"].check_password(b"pw"));
        assert_eq!(
            acl.users["alice"].describe(),
            "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~* &* +@all"
        );
        let acl =
            Acl::from_config(&["default on nopass ~* &* +@all".into()], None, None, 128).unwrap();
        assert_eq!(
            acl.users["default"].describe(),
            "user default on nopass sanitize-payload ~* &* +@all"
        );
        assert_eq!(
            category_commands("pubsub").unwrap(),
            vec![
                "unsubscribe",
                "punsubscribe",
                "publish",
                "subscribe",
                "psubscribe"
            ]
        );
    }
}
