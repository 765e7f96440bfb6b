//! ACL users and their rules: ACL SETUSER's rule language (on/off,
//! passwords, key and channel patterns, commands and categories, selectors),
//! the permission checks, and the ACL LIST description.

use sha2::{Digest, Sha256};

use crate::server::glob;
use crate::server::table::{self, Resolved, CATEGORIES};

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

pub(super) fn cat_flag(name: &str) -> Option<u32> {
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
            Some(b'~') | Some(b'%') => self.add_key_pattern(op),
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
                self.command_rule(sign == b'+', op.get(1..).unwrap_or_default())
            }
            _ => Err(RuleError::Syntax),
        }
    }

    /// `~pattern` (read and write) or `%RW~pattern`.
    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
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

    /// `+name`, `-name`, `+@category`, `-@category`, `+container|sub` and
    /// `+command|first-arg` (`rest` is what follows the sign).
    fn command_rule(&mut self, allow: bool, rest: &[u8]) -> Result<(), RuleError> {
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

/// Byte equality in time that depends only on the lengths.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        // Every stored hash is compared in full, as Redis's
        // time_independent_strcmp does: the time taken tells nothing of how
        // much of a hash matched.
        self.passwords.iter().fold(false, |found, p| {
            found | same_bytes(p.as_bytes(), h.as_bytes())
        })
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
