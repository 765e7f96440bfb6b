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
//!
//! `rules` holds the users and their rules, `file` the configuration (`user`
//! lines, requirepass, the aclfile), `log` the ACL LOG.

mod file;
mod log;
mod rules;

use std::collections::{BTreeMap, VecDeque};

use super::table;

pub use log::LogEntry;
pub use rules::{hash_password, RuleError, Selector, User};

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
    pub fn default_nopass(&self) -> bool {
        self.users
            .get("default")
            .is_some_and(|u| u.nopass && u.enabled)
    }
}

/// Names of the commands in a category, as ACL CAT lists them.
pub fn category_commands(name: &str) -> Option<Vec<String>> {
    let flag = rules::cat_flag(name)?;
    Some(
        table::all_ids()
            .filter(|r| r.spec().cats & flag != 0)
            .map(|r| r.fullname())
            .collect(),
    )
}

#[cfg(test)]
mod tests;
