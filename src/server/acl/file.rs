//! Users from the configuration: `user` lines, `requirepass`, the aclfile
//! (Redis 7.0's loading rules and error texts), and the `user` lines a config
//! rewrite persists.

use std::collections::{BTreeMap, VecDeque};

use super::{Acl, AclConfigError, User};

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
}
