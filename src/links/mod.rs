//! Outbound links to Redis masters, replicas and peer sentinels (tokio and
//! the crate's RESP codec). Every command carries a timeout; results flow back
//! to the core as `core::Input`s.
//!
//! Each link is one task owning one connection: a *command* link (masters,
//! replicas, peers) runs PING / INFO / hello PUBLISH / IS-MASTER-DOWN-BY-ADDR /
//! the reconfiguration transaction, a *pubsub* link (masters and replicas)
//! listens to `__sentinel__:hello`. A link task connects once; when the
//! connection fails or drops it reports `LinkDown` and ends, and the core
//! decides when to reconnect (throttled to one attempt per ping-period, as
//! Sentinel does).
//! Messages carry a generation so the driver can drop the late words of a
//! link it already replaced.

pub mod command;
pub mod connect;
pub mod pubsub;
pub mod registry;
pub mod tls;

use tokio::sync::mpsc;

use crate::core::{HelloOut, Input, InstanceId, LinkKind, LinkSpec};

/// The hello channel of every Redis node and sentinel.
pub const HELLO_CHANNEL: &str = "__sentinel__:hello";

/// Work for a command link.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkCmd {
    Ping,
    Info,
    /// Boxed: it is the largest command, and every link's queue is sized
    /// by the largest.
    Hello(Box<HelloOut>),
    AskMasterDown {
        master_ip: String,
        master_port: u16,
        epoch: u64,
        runid: String,
    },
    ScriptKill,
    Reconfigure {
        replicaof: Option<(String, u16)>,
    },
    /// `CLIENT PAUSE <ms> WRITE` (coordinated failover).
    PauseWrites {
        ms: u64,
    },
    /// `CLIENT UNPAUSE`.
    Unpause,
}

/// A command for the instance `id` (a shared peer connection carries the
/// commands of many instances).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: InstanceId,
    pub cmd: LinkCmd,
}

/// What a link task reports to the driver.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkMsg {
    pub id: InstanceId,
    pub link: LinkKind,
    pub gen: u64,
    pub input: Input,
}

/// Everything a link task needs to run.
#[derive(Debug, Clone)]
pub struct LinkCtx {
    pub spec: LinkSpec,
    pub gen: u64,
    /// `bind-source-addr`, if configured.
    pub bind_source: Option<std::net::IpAddr>,
    /// `tls-replication yes`: the TLS client configuration of every link.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub out: mpsc::UnboundedSender<LinkMsg>,
}

impl LinkCtx {
    fn report(&self, link: LinkKind, input: Input) {
        self.report_as(self.spec.id, link, input)
    }

    /// Reports that this link is down (the task ends after this).
    fn report_down(&self, link: LinkKind) {
        let id = self.spec.id;
        self.report(link, Input::LinkDown { id, link })
    }

    /// Reports an input about instance `id` (the instance a command was for).
    fn report_as(&self, id: InstanceId, link: LinkKind, input: Input) {
        // The driver is gone only during shutdown; nothing left to tell then.
        let _ = self.out.send(LinkMsg {
            id,
            link,
            gen: self.gen,
            input,
        });
    }

    /// `name` mapped through the master's rename-command table.
    pub fn command_name<'a>(&'a self, name: &'a str) -> &'a str {
        renamed(&self.spec.renames, name)
    }

    /// The AUTH arguments for this link (without the command name), if any.
    /// The core already chose the credentials (auth-pass/auth-user
    /// for data nodes; sentinel-user/sentinel-pass, else requirepass, for peers).
    pub fn auth_args(&self) -> Option<Vec<String>> {
        let pass = self.spec.auth.pass.clone()?;
        Some(match &self.spec.auth.user {
            Some(user) => vec![user.clone(), pass],
            None => vec![pass],
        })
    }
}

/// Looks a command up in a rename table (original names compared
/// case-insensitively); unmapped commands keep their name.
pub fn renamed<'a>(renames: &'a [(String, String)], name: &'a str) -> &'a str {
    renames
        .iter()
        .find(|(from, _)| from.eq_ignore_ascii_case(name))
        .map_or(name, |(_, to)| to.as_str())
}

/// The link tasks of one instance, owned by the driver.
pub struct LinkTask {
    pub gen: u64,
    /// None for a pubsub link, which takes no commands.
    pub tx: Option<mpsc::UnboundedSender<Request>>,
    handle: tokio::task::JoinHandle<()>,
}

impl LinkTask {
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl Drop for LinkTask {
    fn drop(&mut self) {
        // Dropping the task closes its connection (and its in-flight commands).
        self.handle.abort();
    }
}

/// Starts a command link task.
pub fn spawn_command(ctx: LinkCtx) -> LinkTask {
    let (tx, rx) = mpsc::unbounded_channel();
    let gen = ctx.gen;
    let handle = tokio::spawn(command::run(ctx, rx));
    LinkTask {
        gen,
        tx: Some(tx),
        handle,
    }
}

/// Starts a pubsub link task (it takes no commands).
pub fn spawn_pubsub(ctx: LinkCtx) -> LinkTask {
    let gen = ctx.gen;
    let handle = tokio::spawn(pubsub::run(ctx));
    LinkTask {
        gen,
        tx: None,
        handle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{InstanceKind, LinkAuth};

    fn ctx(auth: LinkAuth) -> LinkCtx {
        let (out, _) = mpsc::unbounded_channel();
        LinkCtx {
            spec: LinkSpec {
                id: InstanceId(1),
                kind: InstanceKind::Sentinel,
                host: "127.0.0.1".into(),
                port: 1,
                auth,
                client_name: "sentinel-abcdef12".into(),
                renames: vec![("config".into(), "xconfig".into())],
            },
            gen: 1,
            bind_source: None,
            tls: None,
            out,
        }
    }

    /// A daemon runs two link tasks per monitored node (hundreds with many
    /// masters), each holding its future's state for its whole life: the
    /// connect and TLS states are boxed and the reader waits on a small
    /// buffer, so that an idle plain link costs little memory.
    #[test]
    fn link_tasks_stay_small() {
        let (_tx, rx) = mpsc::unbounded_channel();
        let command = command::run(ctx(LinkAuth::default()), rx);
        let pubsub = pubsub::run(ctx(LinkAuth::default()));
        let (c, p) = (size_of_val(&command), size_of_val(&pubsub));
        assert!(
            c <= 2048 && p <= 2048,
            "command link {c} B, pubsub link {p} B"
        );
    }

    #[test]
    fn auth_forms() {
        let none = ctx(LinkAuth::default());
        assert_eq!(none.auth_args(), None);
        let user_only = ctx(LinkAuth {
            user: Some("u".into()),
            pass: None,
        });
        assert_eq!(user_only.auth_args(), None);
        let pass = ctx(LinkAuth {
            user: None,
            pass: Some("p".into()),
        });
        assert_eq!(pass.auth_args(), Some(vec!["p".to_string()]));
        let acl = ctx(LinkAuth {
            user: Some("u".into()),
            pass: Some("p".into()),
        });
        assert_eq!(
            acl.auth_args(),
            Some(vec!["u".to_string(), "p".to_string()])
        );
    }

    #[test]
    fn renames_are_case_insensitive() {
        let c = ctx(LinkAuth::default());
        assert_eq!(c.command_name("CONFIG"), "xconfig");
        assert_eq!(c.command_name("PING"), "PING");
    }
}
