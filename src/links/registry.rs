//! The driver's bookkeeping of link tasks: which task serves which instance,
//! their generations, and the connections shared by peer daemons.
//!
//! A peer daemon is one instance per monitored master in the core (as in
//! Sentinel), but one connection on the wire: every peer instance with the
//! same address, credentials and client name uses the same command link, as
//! Sentinel shares an `instanceLink` between them. With 200 masters and 2
//! peers that is 2 connections instead of 400, on both ends, and the PINGs
//! the 200 instances of a peer ask for together go out as one (see
//! `command`). A link event (up, down) of a shared connection is an event of
//! every instance on it; a forced reconnect of one of them (the core's
//! "pending PING for too long" rule) closes it for all of them, as it does in
//! Sentinel.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{spawn_command, spawn_pubsub, LinkCmd, LinkCtx, LinkMsg, LinkTask, Request};
use crate::core::{Input, InstanceId, InstanceKind, LinkKind, LinkSpec};

/// The links of one instance.
struct InstanceLinks {
    spec: LinkSpec,
    cmd: Option<Arc<LinkTask>>,
    pubsub: Option<LinkTask>,
}

/// A command link shared by the peer instances of one daemon.
struct PeerConn {
    task: std::sync::Weak<LinkTask>,
    gen: u64,
    up: bool,
}

/// Link tasks by instance, with their generations.
pub struct Registry {
    map: HashMap<InstanceId, InstanceLinks>,
    /// Shared peer connections, by their spec with the instance id zeroed.
    peers: HashMap<PeerKey, PeerConn>,
    next_gen: u64,
    bind_source: Option<IpAddr>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    out: mpsc::UnboundedSender<LinkMsg>,
}

/// What makes two peer instances share a connection: the whole spec but the
/// instance id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PeerKey(LinkSpec);

impl PeerKey {
    fn of(spec: &LinkSpec) -> PeerKey {
        let mut spec = spec.clone();
        spec.id = InstanceId(0);
        PeerKey(spec)
    }
}

impl Registry {
    pub fn new(
        out: mpsc::UnboundedSender<LinkMsg>,
        bind_source: Option<IpAddr>,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Registry {
        Registry {
            map: HashMap::new(),
            peers: HashMap::new(),
            next_gen: 0,
            bind_source,
            tls,
            out,
        }
    }

    fn ctx(&mut self, spec: &LinkSpec) -> LinkCtx {
        self.next_gen += 1;
        LinkCtx {
            spec: spec.clone(),
            gen: self.next_gen,
            bind_source: self.bind_source,
            tls: self.tls.clone(),
            out: self.out.clone(),
        }
    }

    /// Opens the links of `spec` that are not already open or opening; a
    /// changed spec (address, credentials, renames) replaces them all. A peer
    /// instance joins its daemon's connection if there is one; if that
    /// connection is already up, the `LinkUp` the instance would have got is
    /// added to `inputs`.
    pub fn connect(&mut self, spec: LinkSpec, inputs: &mut Vec<Input>) {
        let id = spec.id;
        if self.map.get(&id).is_some_and(|l| l.spec != spec) {
            self.map.remove(&id);
        }
        let need_cmd = self
            .map
            .get(&id)
            .is_none_or(|l| l.cmd.as_deref().is_none_or(LinkTask::is_finished));
        let need_pubsub = spec.kind != InstanceKind::Sentinel
            && self
                .map
                .get(&id)
                .is_none_or(|l| l.pubsub.as_ref().is_none_or(LinkTask::is_finished));
        let cmd = need_cmd.then(|| self.command_link(&spec, inputs));
        let pubsub = need_pubsub.then(|| spawn_pubsub(self.ctx(&spec)));
        let entry = self.map.entry(id).or_insert_with(|| InstanceLinks {
            spec: spec.clone(),
            cmd: None,
            pubsub: None,
        });
        if cmd.is_some() {
            entry.cmd = cmd;
        }
        if pubsub.is_some() {
            entry.pubsub = pubsub;
        }
    }

    /// A new command link, or for a peer instance its daemon's live one.
    fn command_link(&mut self, spec: &LinkSpec, inputs: &mut Vec<Input>) -> Arc<LinkTask> {
        if spec.kind != InstanceKind::Sentinel {
            return Arc::new(spawn_command(self.ctx(spec)));
        }
        let key = PeerKey::of(spec);
        if let Some(peer) = self.peers.get(&key) {
            if let Some(task) = peer.task.upgrade().filter(|t| !t.is_finished()) {
                if peer.up {
                    inputs.push(Input::LinkUp {
                        id: spec.id,
                        link: LinkKind::Command,
                    });
                }
                return task;
            }
        }
        let task = Arc::new(spawn_command(self.ctx(spec)));
        self.peers.insert(
            key,
            PeerConn {
                task: Arc::downgrade(&task),
                gen: task.gen,
                up: false,
            },
        );
        task
    }

    /// Closes links. `link: None` (the instance is removed or reset) leaves a
    /// shared connection to the other instances on it; closing the command
    /// link of a peer instance closes it for every instance on it, and each
    /// of them gets its `LinkDown` through `inputs`.
    pub fn disconnect(&mut self, id: InstanceId, link: Option<LinkKind>, inputs: &mut Vec<Input>) {
        match link {
            None => {
                self.map.remove(&id);
            }
            Some(LinkKind::PubSub) => {
                if let Some(l) = self.map.get_mut(&id) {
                    l.pubsub = None;
                }
            }
            Some(LinkKind::Command) => {
                let Some(task) = self.map.get_mut(&id).and_then(|l| l.cmd.take()) else {
                    return;
                };
                self.retire(task.gen, Some(id), inputs);
            }
        }
    }

    /// Takes the command link of generation `gen` from every instance on it,
    /// reporting `LinkDown` for each but `except`.
    fn retire(&mut self, gen: u64, except: Option<InstanceId>, inputs: &mut Vec<Input>) {
        for (&other, l) in self.map.iter_mut() {
            if l.cmd.as_ref().is_some_and(|t| t.gen == gen) {
                l.cmd = None;
                if Some(other) != except {
                    inputs.push(Input::LinkDown {
                        id: other,
                        link: LinkKind::Command,
                    });
                }
            }
        }
        self.peers.retain(|_, p| p.task.strong_count() > 0);
    }

    /// Hands a command to the instance's command link (dropped, as a closed
    /// link would drop it, when there is none).
    pub fn send(&self, id: InstanceId, cmd: LinkCmd) {
        match self.map.get(&id).and_then(|l| l.cmd.as_ref()) {
            Some(task) => {
                if let Some(tx) = &task.tx {
                    let _ = tx.send(Request { id, cmd });
                }
            }
            None => tracing::trace!("no command link for {id:?}: dropping {cmd:?}"),
        }
    }

    /// The inputs a link message stands for: none if it comes from a link
    /// that was closed or replaced since, one per instance on the link for
    /// the `LinkUp` / `LinkDown` of a shared connection. A `LinkDown` (or a
    /// `Refused`) also retires the link so the next `Connect` reopens it.
    pub fn accept(&mut self, msg: LinkMsg, inputs: &mut Vec<Input>) {
        let down = matches!(msg.input, Input::LinkDown { .. } | Input::Refused { .. });
        let link_event = down || matches!(msg.input, Input::LinkUp { .. });
        if link_event && msg.link == LinkKind::Command {
            // Found by generation: the instance that opened a shared
            // connection may have left it since.
            if let Some(peer) = self.peers.values_mut().find(|p| p.gen == msg.gen) {
                if down {
                    return self.retire(msg.gen, None, inputs);
                }
                peer.up = true;
                for (&id, l) in self.map.iter() {
                    if l.cmd.as_ref().is_some_and(|t| t.gen == msg.gen) {
                        inputs.push(Input::LinkUp {
                            id,
                            link: LinkKind::Command,
                        });
                    }
                }
                return;
            }
        }
        let Some(l) = self.map.get_mut(&msg.id) else {
            return;
        };
        let slot = match msg.link {
            LinkKind::Command => l.cmd.as_ref().map(|t| t.gen),
            LinkKind::PubSub => l.pubsub.as_ref().map(|t| t.gen),
        };
        if slot != Some(msg.gen) {
            return;
        }
        if down {
            match msg.link {
                LinkKind::Command => l.cmd = None,
                LinkKind::PubSub => l.pubsub = None,
            }
        }
        inputs.push(msg.input);
    }

    /// The generation of an instance's command link, if it has one.
    pub fn command_gen(&self, id: InstanceId) -> Option<u64> {
        self.map.get(&id)?.cmd.as_ref().map(|t| t.gen)
    }

    /// Closes every link.
    pub fn clear(&mut self) {
        self.map.clear();
        self.peers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u64, kind: InstanceKind) -> LinkSpec {
        LinkSpec {
            id: InstanceId(id),
            kind,
            host: "127.0.0.1".into(),
            port: 1,
            auth: Default::default(),
            client_name: "sentinel-01234567".into(),
            renames: Vec::new(),
        }
    }

    fn msg(id: u64, gen: u64, input: Input) -> LinkMsg {
        LinkMsg {
            id: InstanceId(id),
            link: LinkKind::Command,
            gen,
            input,
        }
    }

    fn up(id: u64) -> Input {
        Input::LinkUp {
            id: InstanceId(id),
            link: LinkKind::Command,
        }
    }

    fn down(id: u64) -> Input {
        Input::LinkDown {
            id: InstanceId(id),
            link: LinkKind::Command,
        }
    }

    #[tokio::test]
    async fn stale_link_messages_are_dropped() {
        let (out, _results) = mpsc::unbounded_channel();
        let mut reg = Registry::new(out, None, None);
        let mut inputs = Vec::new();
        let master = spec(7, InstanceKind::Master);
        reg.connect(master.clone(), &mut inputs);
        let gen = reg.command_gen(InstanceId(7)).unwrap();
        reg.accept(msg(7, gen, up(7)), &mut inputs);
        reg.accept(msg(7, gen + 100, up(7)), &mut inputs);
        assert_eq!(inputs, [up(7)]);
        inputs.clear();
        // A LinkDown retires the link: a later Connect opens a new one.
        reg.accept(msg(7, gen, down(7)), &mut inputs);
        assert_eq!(inputs, [down(7)]);
        assert_eq!(reg.command_gen(InstanceId(7)), None);
        let ping = Input::PingReply {
            id: InstanceId(7),
            reply: crate::core::PingReply::Valid { pong: true },
        };
        reg.accept(msg(7, gen, ping), &mut inputs);
        assert_eq!(inputs.len(), 1);
        reg.connect(master, &mut inputs);
        assert!(reg.command_gen(InstanceId(7)).unwrap() > gen);
        // Removing the instance drops everything that is still in flight.
        reg.disconnect(InstanceId(7), None, &mut inputs);
        reg.accept(msg(7, gen, up(7)), &mut inputs);
        assert_eq!(inputs.len(), 1);
    }

    /// The peer instances of one daemon share one connection: its LinkUp
    /// and LinkDown reach all of them, one that joins later is told it is
    /// up, removing one leaves it to the others, and a forced reconnect of
    /// one closes it for all.
    #[tokio::test]
    async fn peer_instances_share_one_connection() {
        let (out, _results) = mpsc::unbounded_channel();
        let mut reg = Registry::new(out, None, None);
        let mut inputs = Vec::new();
        reg.connect(spec(1, InstanceKind::Sentinel), &mut inputs);
        reg.connect(spec(2, InstanceKind::Sentinel), &mut inputs);
        let gen = reg.command_gen(InstanceId(1)).unwrap();
        assert_eq!(reg.command_gen(InstanceId(2)), Some(gen));
        assert!(inputs.is_empty());
        reg.accept(msg(1, gen, up(1)), &mut inputs);
        inputs.sort_by_key(|i| format!("{i:?}"));
        assert_eq!(inputs, [up(1), up(2)]);
        inputs.clear();
        reg.connect(spec(3, InstanceKind::Sentinel), &mut inputs);
        assert_eq!(inputs, [up(3)]);
        assert_eq!(reg.command_gen(InstanceId(3)), Some(gen));
        inputs.clear();
        // Another address is another connection.
        let mut other = spec(4, InstanceKind::Sentinel);
        other.port = 2;
        reg.connect(other, &mut inputs);
        assert_ne!(reg.command_gen(InstanceId(4)), Some(gen));
        reg.disconnect(InstanceId(3), None, &mut inputs);
        assert_eq!(reg.command_gen(InstanceId(1)), Some(gen));
        assert!(inputs.is_empty());
        reg.disconnect(InstanceId(1), Some(LinkKind::Command), &mut inputs);
        assert_eq!(inputs, [down(2)]);
        assert_eq!(reg.command_gen(InstanceId(2)), None);
        inputs.clear();
        // A new connection after that; its LinkDown reaches both.
        reg.connect(spec(1, InstanceKind::Sentinel), &mut inputs);
        reg.connect(spec(2, InstanceKind::Sentinel), &mut inputs);
        let gen2 = reg.command_gen(InstanceId(1)).unwrap();
        assert!(gen2 > gen);
        reg.accept(msg(1, gen2, down(1)), &mut inputs);
        inputs.sort_by_key(|i| format!("{i:?}"));
        assert_eq!(inputs, [down(1), down(2)]);
    }
}
