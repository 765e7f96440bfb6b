//! Tests of the failover engine (`failover.rs`): scripted inputs with explicit
//! `Millis`, a hand-applied `GroupState` standing for the Raft log, and exact
//! event sequences and proposals.

use super::commands::CmdError;
use super::event::EventKind;
use super::failover::{BACK_EMPTY_PAUSE_MS, SUBSCRIBER_GRACE_MS, SWITCH_PUBLISH_WAIT_MS};
use super::sentinel::Sentinel;
use super::types::*;
use crate::core::group::node_id_from_myid;
use crate::core::group::Phase;
use crate::core::group::{Command, GroupState};
use crate::core::persisted::{MasterState, PersistedState};

pub(super) const MYID: &str = "55612eaa002986434ec916ab8760956e7119a840";
pub(super) const PEER: &str = "2864fe5b5ffed532dfe28f2e9b67801fcaf7b633";
const PEER2: &str = "819df12dcbb638ac6db263571690705072dd65c9";
const REPLID: &str = "1111111111111111111111111111111111111111";
const OTHER_REPLID: &str = "2222222222222222222222222222222222222222";

pub(super) fn node(id: &str) -> u64 {
    node_id_from_myid(id).expect("hex id")
}

pub(super) fn state(replicas: &[u16]) -> PersistedState {
    let mut m = MasterState::new("mymaster", "127.0.0.1", 6379, 2);
    m.down_after_ms = 5000;
    m.failover_timeout_ms = 60_000;
    for p in replicas {
        m.known_replicas.push(("127.0.0.1".into(), *p));
    }
    m.known_sentinels
        .push(("127.0.0.1".into(), 26380, PEER.into()));
    m.known_sentinels
        .push(("127.0.0.1".into(), 26381, PEER2.into()));
    PersistedState {
        myid: Some(MYID.into()),
        masters: vec![m],
        ..Default::default()
    }
}

pub(super) fn events(actions: &[Action]) -> Vec<(EventKind, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some((e.kind, e.message.clone())),
            _ => None,
        })
        .collect()
}

/// Events without the verbose role-change ones (they follow INFO, not the
/// engine).
fn engine_events(actions: &[Action]) -> Vec<(EventKind, String)> {
    events(actions)
        .into_iter()
        .filter(|(k, _)| {
            !matches!(
                k,
                EventKind::RoleChangeMatch | EventKind::RoleChangeMismatch
            )
        })
        .collect()
}

/// The proposals among `actions`, but for the leader's history records
/// (`history_records`), which go on beside everything these tests follow.
fn proposals(actions: &[Action]) -> Vec<Command> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Propose(Command::RecordHistory { .. }) => None,
            Action::Propose(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn history_records(actions: &[Action]) -> Vec<Command> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Propose(c @ Command::RecordHistory { .. }) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// A daemon that became the failover's leader at the committed
/// SendSlaveofNoone phase of replica 6381: Sentinel's events from
/// `+elected-leader` on, and SLAVEOF NO ONE sent to it (`r`).
fn expect_resumed_promotion(a: &[Action], r: InstanceId) {
    assert_eq!(
        events(a),
        vec![
            ev(EventKind::ElectedLeader, M),
            ev(EventKind::SelectedSlave, &slave(6381)),
            ev(EventKind::FailoverStateSendSlaveofNoone, &slave(6381)),
            ev(EventKind::FailoverStateWaitPromotion, &slave(6381)),
        ]
    );
    assert!(a.contains(&Action::Reconfigure {
        id: r,
        replicaof: None
    }));
}

pub(super) fn ev(kind: EventKind, msg: &str) -> (EventKind, String) {
    (kind, msg.to_string())
}

pub(super) const M: &str = "master mymaster 127.0.0.1 6379";

fn slave(port: u16) -> String {
    format!("slave 127.0.0.1:{port} 127.0.0.1 {port} @ mymaster 127.0.0.1 6379")
}

/// One daemon's core plus the group's log as applied so far.
pub(super) struct H {
    pub(super) s: Sentinel,
    gs: GroupState,
}

impl H {
    pub(super) fn new(st: PersistedState, leader: bool) -> H {
        let (s, _) = Sentinel::new(st, CoreOptions::default(), 0);
        let mut h = H {
            s,
            gs: GroupState::default(),
        };
        h.gs.apply(&Command::Monitor {
            name: "mymaster".into(),
            host: "127.0.0.1".into(),
            port: 6379,
            quorum: 2,
        });
        h.raft(0, leader, 3);
        h.deliver(0);
        h
    }

    fn raft(&mut self, now: Millis, leader: bool, voters: usize) -> Vec<Action> {
        let me = node(MYID);
        self.s.handle(
            now,
            Input::Raft(RaftView {
                node_id: me,
                initialized: true,
                is_leader: leader,
                voters,
                leader: Some(if leader { me } else { node(PEER) }),
            }),
        )
    }

    fn deliver(&mut self, now: Millis) -> Vec<Action> {
        self.s
            .handle(now, Input::Committed(Box::new(self.gs.clone())))
    }

    pub(super) fn commit(&mut self, now: Millis, cmd: Command) -> Vec<Action> {
        let r = self.gs.apply(&cmd);
        assert_eq!(r, crate::core::group::CommandResponse::Applied, "{cmd:?}");
        self.deliver(now)
    }

    pub(super) fn id(&self, port: u16) -> InstanceId {
        let m = &self.s.masters["mymaster"];
        if m.inst.port == port {
            return m.inst.id;
        }
        m.replicas[&format!("127.0.0.1:{port}")].id
    }

    pub(super) fn up(&mut self, id: InstanceId, now: Millis) {
        for link in [LinkKind::Command, LinkKind::PubSub] {
            self.s.handle(now, Input::LinkUp { id, link });
        }
    }

    /// Both peer daemons reachable (command link up, PING answered).
    fn peers_up(&mut self, now: Millis) {
        for peer in [PEER, PEER2] {
            let id = self.s.masters["mymaster"]
                .sentinels
                .values()
                .find(|s| s.runid.as_deref() == Some(peer))
                .map(|s| s.id)
                .expect("known peer");
            self.s.handle(
                now,
                Input::LinkUp {
                    id,
                    link: LinkKind::Command,
                },
            );
            self.pong(id, now);
        }
    }

    pub(super) fn pong(&mut self, id: InstanceId, now: Millis) -> Vec<Action> {
        self.s.handle(
            now,
            Input::PingReply {
                id,
                reply: PingReply::Valid { pong: true },
            },
        )
    }

    pub(super) fn info(&mut self, id: InstanceId, now: Millis, text: &str) -> Vec<Action> {
        self.s.handle(
            now,
            Input::InfoReply {
                id,
                text: text.to_string(),
            },
        )
    }

    fn master_info(&mut self, now: Millis, offset: u64) -> Vec<Action> {
        let id = self.s.masters["mymaster"].inst.id;
        self.info(
            id,
            now,
            &format!("role:master\r\nmaster_replid:{REPLID}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:{offset}\r\n"),
        )
    }

    fn replica_info(&mut self, port: u16, now: Millis, offset: u64, prio: u32) -> Vec<Action> {
        let id = self.id(port);
        self.info(id, now, &replica_text(6379, offset, prio, REPLID))
    }

    /// Master and replicas connected, answering, with fresh INFO.
    pub(super) fn healthy(&mut self, now: Millis, offsets: &[(u16, u64)]) {
        let mid = self.id(6379);
        self.up(mid, now);
        self.pong(mid, now);
        self.master_info(now, 1000);
        self.refresh(now, offsets);
    }

    fn refresh(&mut self, now: Millis, offsets: &[(u16, u64)]) {
        for (port, off) in offsets {
            let id = self.id(*port);
            if !self.s.masters["mymaster"].replicas[&format!("127.0.0.1:{port}")]
                .link
                .cmd_up
            {
                self.up(id, now);
            }
            self.pong(id, now);
            self.replica_info(*port, now, *off, 100);
        }
    }

    /// The master stops answering: a PING goes out at 1200 and SDOWN comes
    /// at 6300 (down-after 5000), replicas kept fresh meanwhile.
    fn master_dies(&mut self, offsets: &[(u16, u64)]) -> Vec<Action> {
        self.s.handle(1200, Input::Tick);
        self.refresh(6250, offsets);
        self.s.handle(6300, Input::Tick)
    }
}

pub(super) fn replica_text(master_port: u16, offset: u64, prio: u32, replid: &str) -> String {
    format!("role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:{master_port}\r\nmaster_link_status:up\r\nslave_priority:{prio}\r\nslave_repl_offset:{offset}\r\nmaster_replid:{replid}\r\n")
}

pub(super) fn start(epoch: u64, leader: &str, manual: bool, coordinated: bool) -> Command {
    Command::FailoverStart {
        name: "mymaster".into(),
        epoch,
        leader: node(leader),
        manual,
        coordinated,
        force: false,
        by: Some(node(leader)),
    }
}

fn opinion(who: &str, down: bool) -> Command {
    Command::Opinion {
        name: "mymaster".into(),
        node: node(who),
        down,
    }
}

pub(super) fn phase(epoch: u64, p: Phase, promoted: Option<u16>) -> Command {
    Command::FailoverPhase {
        name: "mymaster".into(),
        epoch,
        phase: p,
        promoted: promoted.map(|port| ("127.0.0.1".to_string(), port)),
        history: None,
        by: Some(node(MYID)),
    }
}

/// `ReconfSlaves` with the history the promoted replica reported.
fn reconf_phase(epoch: u64, replid: &str, replid2: &str, offset: u64) -> Command {
    Command::FailoverPhase {
        name: "mymaster".into(),
        epoch,
        phase: Phase::ReconfSlaves,
        promoted: None,
        history: Some(crate::core::group::ReplHistory {
            replid: replid.into(),
            replid2: replid2.into(),
            offset,
        }),
        by: Some(node(MYID)),
    }
}

fn published(epoch: u64, who: &str) -> Command {
    Command::SwitchPublished {
        name: "mymaster".into(),
        epoch,
        node: node(who),
    }
}

const NEW_REPLID: &str = "3333333333333333333333333333333333333333";

/// INFO of a replica just promoted: a new id, the old one as replid2.
fn promoted_text(offset: u64) -> String {
    format!("role:master\r\nmaster_replid:{NEW_REPLID}\r\nmaster_replid2:{REPLID}\r\nmaster_repl_offset:{offset}\r\n")
}

pub(super) fn switch(epoch: u64, port: u16) -> Command {
    Command::SwitchMaster {
        name: "mymaster".into(),
        epoch,
        host: "127.0.0.1".into(),
        port,
        by: Some(node(MYID)),
    }
}

fn sends_info(actions: &[Action], id: InstanceId) -> bool {
    actions.contains(&Action::SendInfo { id })
}

#[test]
fn unplanned_failover_on_the_leader_step_by_step() {
    let offsets = [(6380, 900), (6381, 1000)];
    let mut h = H::new(state(&[6380, 6381]), true);
    h.healthy(100, &offsets);
    let (r1, r2) = (h.id(6380), h.id(6381));

    // Local SDOWN: the opinion is proposed at once.
    // (The peer sentinels were never reachable in this script.)
    let a = h.master_dies(&offsets);
    assert_eq!(events(&a)[0], ev(EventKind::Sdown, M));
    assert!(events(&a)[1..]
        .iter()
        .all(|(k, m)| *k == EventKind::Sdown && m.starts_with("sentinel ")));
    assert_eq!(proposals(&a), vec![opinion(MYID, true)]);
    // Not re-proposed before 250 ms, then again while not committed.
    assert!(proposals(&h.s.handle(6400, Input::Tick)).is_empty());
    assert_eq!(
        proposals(&h.s.handle(6550, Input::Tick)),
        vec![opinion(MYID, true)]
    );

    // Committed votes reach the quorum: +odown and FailoverStart.
    let a = h.commit(6600, opinion(MYID, true));
    assert!(events(&a).is_empty());
    assert!(proposals(&a).is_empty());
    let a = h.commit(6610, opinion(PEER, true));
    assert_eq!(
        events(&a),
        vec![ev(EventKind::Odown, &format!("{M} #quorum 2/2"))]
    );
    assert_eq!(proposals(&a), vec![start(1, MYID, false, false)]);

    // Start committed: Sentinel's leader events, fresh INFO asked of every
    // replica.
    let a = h.commit(6620, start(1, MYID, false, false));
    assert_eq!(
        events(&a),
        vec![
            ev(EventKind::NewEpoch, "1"),
            ev(EventKind::TryFailover, M),
            ev(EventKind::VoteForLeader, &format!("{MYID} 1")),
            ev(EventKind::ElectedLeader, M),
            ev(EventKind::FailoverStateSelectSlave, M),
        ]
    );
    assert!(sends_info(&a, r1) && sends_info(&a, r2));
    assert_eq!(h.s.current_epoch(), 1);
    let d = h.s.master_desc("mymaster", 6620).unwrap();
    assert!(d.contains(&("flags", "s_down,o_down,master,failover_in_progress".into())));
    assert!(d.contains(&("failover-state", "select_slave".into())));

    // Selection waits for both answers, then proposes the best replica.
    let a = h.replica_info(6380, 6630, 900, 100);
    assert!(proposals(&a).is_empty());
    let a = h.replica_info(6381, 6640, 1000, 100);
    assert_eq!(
        proposals(&a),
        vec![phase(1, Phase::SendSlaveofNoone, Some(6381))]
    );

    // Committed: promotion sent, confirmed by INFO asked at once.
    let a = h.commit(6650, phase(1, Phase::SendSlaveofNoone, Some(6381)));
    assert_eq!(
        events(&a),
        vec![
            ev(EventKind::SelectedSlave, &slave(6381)),
            ev(EventKind::FailoverStateSendSlaveofNoone, &slave(6381)),
            ev(EventKind::FailoverStateWaitPromotion, &slave(6381)),
        ]
    );
    let reconf = a
        .iter()
        .position(|x| {
            *x == Action::Reconfigure {
                id: r2,
                replicaof: None,
            }
        })
        .expect("SLAVEOF NO ONE");
    let ask = a
        .iter()
        .position(|x| *x == Action::SendInfo { id: r2 })
        .expect("INFO right after");
    assert!(reconf < ask);
    // Polled every 100 ms (one INFO in flight at a time) until it says
    // master.
    assert!(!sends_info(&h.s.handle(6700, Input::Tick), r2));
    let a = h.info(
        r2,
        6760,
        "role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\n",
    );
    assert!(proposals(&a).is_empty());
    assert!(sends_info(&a, r2));
    let a = h.info(r2, 6810, &promoted_text(1000));
    assert_eq!(
        events(&a),
        vec![
            ev(
                EventKind::RoleChangeMismatch,
                &format!("{} new reported role is master", slave(6381))
            ),
            ev(EventKind::PromotedSlave, &slave(6381)),
        ]
    );
    // The history it took is committed with the phase.
    assert_eq!(
        proposals(&a),
        vec![reconf_phase(1, NEW_REPLID, REPLID, 1000)]
    );
    // Still the old master for clients until reconf_slaves is committed.
    assert_eq!(
        h.s.master_addr("mymaster"),
        Some(("127.0.0.1".into(), 6379))
    );

    // reconf_slaves committed: every client now gets the promoted replica.
    let a = h.commit(6820, reconf_phase(1, NEW_REPLID, REPLID, 1000));
    assert_eq!(
        h.s.master_addr("mymaster"),
        Some(("127.0.0.1".into(), 6381))
    );
    assert_eq!(
        events(&a),
        vec![
            ev(EventKind::FailoverStateReconfSlaves, M),
            ev(EventKind::SlaveReconfSent, &slave(6380)),
        ]
    );
    assert!(a.contains(&Action::Reconfigure {
        id: r1,
        replicaof: Some(("127.0.0.1".into(), 6381)),
    }));
    let d = h.s.replicas_desc("mymaster", 6820).unwrap();
    let flags: Vec<String> = d
        .iter()
        .map(|r| r.iter().find(|(k, _)| *k == "flags").unwrap().1.clone())
        .collect();
    assert_eq!(flags, vec!["slave,reconf_sent", "slave,promoted"]);
    // The replica follows the new master with its link up: done, end, and
    // the switch is proposed.
    let a = h.info(r1, 6900, &replica_text(6381, 1000, 100, REPLID));
    assert_eq!(
        engine_events(&a),
        vec![
            ev(EventKind::SlaveReconfInprog, &slave(6380)),
            ev(EventKind::SlaveReconfDone, &slave(6380)),
            ev(EventKind::FailoverEnd, M),
        ]
    );
    assert_eq!(proposals(&a), vec![switch(1, 6381)]);

    // SwitchMaster committed: the leader publishes +switch-master (no
    // +config-update-from), the replicas including the old master, then
    // says in the log that it published.
    let a = h.commit(6910, switch(1, 6381));
    assert_eq!(proposals(&a), vec![published(1, MYID)]);
    // The new master's history is the committed one.
    let m = &h.s.masters["mymaster"];
    assert_eq!(m.inst.repl_id.as_deref(), Some(NEW_REPLID));
    assert_eq!(m.inst.repl_id2.as_deref(), Some(REPLID));
    assert_eq!(
        events(&a),
        vec![
            ev(
                EventKind::SwitchMaster,
                "mymaster 127.0.0.1 6379 127.0.0.1 6381"
            ),
            ev(
                EventKind::Slave,
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6381"
            ),
            ev(
                EventKind::Slave,
                "slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6381"
            ),
        ]
    );
    assert!(a.contains(&Action::Flush));
    let p = h.s.persisted();
    assert_eq!((p.masters[0].port, p.masters[0].config_epoch), (6381, 1));
    assert_eq!(p.current_epoch, 1);
    let d = h.s.master_desc("mymaster", 6910).unwrap();
    assert!(d.contains(&("port", "6381".into())));
    assert!(!d.iter().any(|(k, _)| *k == "failover-state"));

    // The same committed state delivered again publishes nothing.
    let a = h.deliver(6920);
    assert!(events(&a).is_empty(), "{a:?}");
    assert!(proposals(&a).is_empty());
    let a = h.commit(6930, published(1, MYID));
    assert!(events(&a).is_empty(), "{a:?}");
    assert!(proposals(&a).is_empty());
}

#[test]
fn observer_publishes_the_switch_once_per_epoch() {
    let mut h = H::new(state(&[6380, 6381]), false);
    h.healthy(100, &[(6380, 900), (6381, 1000)]);
    let a = h.commit(200, start(1, PEER, false, false));
    assert_eq!(
        events(&a),
        vec![
            ev(EventKind::NewEpoch, "1"),
            ev(EventKind::VoteForLeader, &format!("{PEER} 1")),
        ]
    );
    // Observers act on nothing in Redis.
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    let a = h.commit(
        300,
        phase(1, Phase::SendSlaveofNoone, Some(6381)).signed(node(PEER)),
    );
    assert!(events(&a).is_empty());
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    let d = h.s.master_desc("mymaster", 300).unwrap();
    assert!(d.contains(&("flags", "master,failover_in_progress".into())));
    assert!(d.contains(&("failover-state", "send_slaveof_noone".into())));
    assert_eq!(
        h.s.master_addr("mymaster"),
        Some(("127.0.0.1".into(), 6379))
    );
    // The promotion committed: the observer publishes the switch now, as
    // Sentinel's observers do on the leader's hello (the leader publishes
    // it after +failover-end), switches its view and says so in the log.
    let a = h.commit(400, phase(1, Phase::ReconfSlaves, None).signed(node(PEER)));
    assert_eq!(
        h.s.master_addr("mymaster"),
        Some(("127.0.0.1".into(), 6381))
    );
    assert_eq!(
        events(&a),
        vec![
            ev(
                EventKind::ConfigUpdateFrom,
                &format!("sentinel {PEER} 127.0.0.1 26380 @ mymaster 127.0.0.1 6379")
            ),
            ev(
                EventKind::SwitchMaster,
                "mymaster 127.0.0.1 6379 127.0.0.1 6381"
            ),
            ev(
                EventKind::Slave,
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6381"
            ),
            ev(
                EventKind::Slave,
                "slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6381"
            ),
        ]
    );
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    let p = h.s.persisted();
    assert_eq!((p.masters[0].port, p.masters[0].config_epoch), (6381, 1));
    // It describes the new master, with no failover flags (Sentinel's
    // observers show the same).
    let d = h.s.master_desc("mymaster", 400).unwrap();
    assert!(d.contains(&("port", "6381".into())), "{d:?}");
    assert!(
        d.contains(&("flags", "master,disconnected".into())),
        "{d:?}"
    );
    assert!(!d.iter().any(|(k, _)| *k == "failover-state"), "{d:?}");
    // Published, then said so in the log (again until committed).
    assert_eq!(proposals(&a), vec![published(1, MYID)]);
    assert!(proposals(&h.s.handle(500, Input::Tick)).is_empty());
    assert_eq!(
        proposals(&h.s.handle(650, Input::Tick)),
        vec![published(1, MYID)]
    );
    h.commit(700, published(1, MYID));
    assert!(proposals(&h.s.handle(1000, Input::Tick)).is_empty());
    // The switch itself publishes nothing more here; the publication
    // recorded before it holds.
    let a = h.commit(1100, switch(1, 6381).signed(node(PEER)));
    assert!(events(&a).is_empty(), "{:?}", events(&a));
    assert!(proposals(&a).is_empty());
    assert!(proposals(&h.s.handle(1400, Input::Tick)).is_empty());
    // Delivered twice: nothing more.
    let a = h.deliver(800);
    assert!(events(&a).is_empty());
    assert!(proposals(&a).is_empty());

    // Restart from the flushed config, the whole log replayed: no event.
    let persisted = h.s.persisted();
    let (s, _) = Sentinel::new(persisted, CoreOptions::default(), 0);
    let mut h2 = H {
        s,
        gs: h.gs.clone(),
    };
    let a = h2.raft(0, false, 3);
    assert!(events(&a).is_empty());
    let a = h2.deliver(10);
    assert!(events(&a).is_empty(), "{a:?}");
    assert!(proposals(&a).is_empty());
    assert_eq!(
        h2.s.master_addr("mymaster"),
        Some(("127.0.0.1".into(), 6381))
    );
}

#[test]
fn observer_that_missed_the_steps_still_switches_once() {
    // The log arrives in one batch (a lagging follower): no start events for
    // a failover already over, one switch.
    let mut h = H::new(state(&[6380, 6381]), false);
    h.gs.apply(&start(1, PEER, false, false));
    h.gs.apply(&phase(1, Phase::SendSlaveofNoone, Some(6381)).signed(node(PEER)));
    h.gs.apply(&phase(1, Phase::ReconfSlaves, None).signed(node(PEER)));
    h.gs.apply(&switch(1, 6381).signed(node(PEER)));
    let a = h.deliver(100);
    let kinds: Vec<EventKind> = events(&a).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::NewEpoch,
            EventKind::SwitchMaster,
            EventKind::Slave,
            EventKind::Slave
        ]
    );
    assert!(events(&h.deliver(200)).is_empty());
}

#[test]
fn selection_safety_rules_and_priority_zero() {
    let mut h = H::new(state(&[6380, 6381, 6382, 6383]), true);
    h.healthy(100, &[]);
    let mid = h.id(6379);
    h.pong(mid, 100);
    h.master_info(100, 1000);
    for port in [6380, 6381, 6382, 6383] {
        let id = h.id(port);
        h.up(id, 100);
        h.pong(id, 100);
    }
    // Priority 0: never promoted.
    h.replica_info(6380, 100, 5000, 0);
    // Empty while the master had data.
    h.replica_info(6381, 100, 0, 100);
    // Another replication history: the master's INFO, which may predate a
    // new id of its own, is asked again at once.
    let id = h.id(6382);
    let a = h.info(id, 100, &replica_text(6379, 5000, 100, OTHER_REPLID));
    assert!(a.contains(&Action::SendInfo { id: mid }), "{a:?}");
    // Unreachable (no INFO yet is not a candidate either).
    assert_eq!(h.s.select_slave("mymaster", 200), None);
    assert_eq!(
        h.s.failover("mymaster", false, 200, &mut Vec::new()),
        Err(CmdError(
            "NOGOODSLAVE No suitable replica to promote".into()
        ))
    );
    // The master's previous history (replid2) is accepted.
    let a = h.info(
        mid,
        150,
        &format!("role:master\r\nmaster_replid:{OTHER_REPLID}\r\nmaster_replid2:{REPLID}\r\nmaster_repl_offset:1000\r\n"),
    );
    assert!(events(&a).is_empty());
    h.replica_info(6383, 150, 10, 100);
    assert_eq!(
        h.s.select_slave("mymaster", 200).as_deref(),
        Some("127.0.0.1:6382")
    );
    // A replica that continued the master's known history under a newer
    // id (the master was promoted and this daemon has not read its INFO
    // since): accepted; a replica reporting role:master never is.
    let newer = "3333333333333333333333333333333333333333";
    let id = h.id(6382);
    h.info(id, 160, &replica_text(6379, 5000, 100, newer));
    assert_eq!(
        h.s.select_slave("mymaster", 200).as_deref(),
        Some("127.0.0.1:6383")
    );
    h.info(
        id,
        170,
        &format!(
            "{}master_replid2:{OTHER_REPLID}\r\n",
            replica_text(6379, 5000, 100, newer)
        ),
    );
    assert_eq!(
        h.s.select_slave("mymaster", 200).as_deref(),
        Some("127.0.0.1:6382")
    );
    h.info(
        id,
        180,
        &format!("role:master\r\nmaster_replid:{newer}\r\nmaster_replid2:{OTHER_REPLID}\r\nmaster_repl_offset:5000\r\n"),
    );
    assert_eq!(
        h.s.select_slave("mymaster", 200).as_deref(),
        Some("127.0.0.1:6383")
    );
}

/// The leader's (this daemon's) record of a master's history.
fn history_record(name: &str, replid: &str, offset: u64) -> Command {
    Command::RecordHistory {
        name: name.into(),
        config_epoch: 0,
        history: crate::core::group::ReplHistory {
            replid: replid.into(),
            replid2: "0000000000000000000000000000000000000000".into(),
            offset,
        },
        by: Some(node(MYID)),
    }
}

/// The settled Raft leader records the master's history once it shows
/// data, its offset again at most every HISTORY_REFRESH_MS while it moves,
/// and another id at once; a follower never does.
#[test]
fn the_leader_records_the_masters_history() {
    let record = |offset: u64| history_record("mymaster", REPLID, offset);
    // The master answers a PING (and an INFO with `offset`), then two
    // ticks (the first asks the INFO of a master whose last one is older
    // than HISTORY_INFO_MS; a PING reply about a quiet master steps
    // nothing): the history records proposed meanwhile.
    fn step(h: &mut H, now: Millis, offset: Option<u64>) -> Vec<Command> {
        let mid = h.id(6379);
        let mut a = h.pong(mid, now);
        if let Some(o) = offset {
            a.extend(h.master_info(now, o));
        }
        a.extend(h.s.handle(now, Input::Tick));
        a.extend(h.s.handle(now, Input::Tick));
        history_records(&a)
    }
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    // Not before the leadership settled (LEADER_SETTLE_MS).
    assert!(step(&mut h, 500, None).is_empty());
    assert_eq!(step(&mut h, 1100, None), vec![record(1000)]);
    // Proposed again until committed, then not while the offset stays.
    assert!(step(&mut h, 1200, None).is_empty());
    assert_eq!(step(&mut h, 1400, None), vec![record(1000)]);
    h.commit(1450, record(1000));
    assert!(step(&mut h, 1500, Some(1000)).is_empty());
    // The offset moves on the same id: recorded again once
    // HISTORY_REFRESH_MS passed since the last proposal, not before.
    assert!(step(&mut h, 3000, Some(4000)).is_empty());
    assert!(step(&mut h, 6400, Some(9000)).is_empty());
    assert!(step(&mut h, 11_000, Some(12_000)).is_empty());
    assert_eq!(step(&mut h, 11_400, None), vec![record(12_000)]);
    assert!(step(&mut h, 11_700, Some(13_000)).is_empty());
    h.commit(11_800, record(12_000));
    assert!(step(&mut h, 21_000, Some(12_000)).is_empty());
    // Another id (the master restarted from an AOF, say): recorded.
    let mid = h.id(6379);
    let mut got = history_records(&h.info(
        mid,
        22_000,
        &format!("role:master\r\nmaster_replid:{OTHER_REPLID}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:50\r\n"),
    ));
    got.extend(step(&mut h, 22_100, None));
    let mut other = record(50);
    if let Command::RecordHistory { history, .. } = &mut other {
        history.replid = OTHER_REPLID.into();
    }
    assert_eq!(got, vec![other]);

    let mut f = H::new(state(&[6380]), false);
    f.healthy(100, &[(6380, 1000)]);
    assert!(step(&mut f, 2000, Some(1000)).is_empty());
}

/// Every monitored master's offset moves (the hellos are PUBLISHed on it):
/// the leader refreshes the records of all masters together at most once
/// per HISTORY_REFRESH_GAP_MS, so that idle masters do not cost a Raft entry
/// each every HISTORY_REFRESH_MS; a new id is recorded at once regardless.
#[test]
fn offset_refreshes_are_spaced_across_masters() {
    let master = |replid: &str, offset: u64| {
        format!("role:master\r\nmaster_replid:{replid}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:{offset}\r\n")
    };
    let mut st = state(&[6380]);
    let mut other = MasterState::new("other", "127.0.0.1", 7379, 2);
    other.down_after_ms = 5000;
    other.known_replicas.push(("127.0.0.1".into(), 7380));
    st.masters.push(other);
    let mut h = H::new(st, true);
    h.commit(
        0,
        Command::Monitor {
            name: "other".into(),
            host: "127.0.0.1".into(),
            port: 7379,
            quorum: 2,
        },
    );
    let ids = |h: &H| {
        let o = &h.s.masters["other"];
        (h.id(6379), o.inst.id, o.replicas["127.0.0.1:7380"].id)
    };
    let (m1, m2, r2) = ids(&h);
    h.healthy(100, &[(6380, 1000)]);
    h.up(m2, 100);
    h.up(r2, 100);
    // Both masters answer, with their offsets; the records follow them.
    let step = |h: &mut H, now: Millis, o1: u64, o2: u64| {
        let mut a = Vec::new();
        for (id, text) in [
            (m1, master(REPLID, o1)),
            (m2, master(OTHER_REPLID, o2)),
            (r2, replica_text(7379, o2, 100, OTHER_REPLID)),
        ] {
            a.extend(h.pong(id, now));
            a.extend(h.info(id, now, &text));
        }
        h.pong(h.id(6380), now);
        a.extend(h.s.handle(now, Input::Tick));
        history_records(&a)
    };
    // The first records are not spaced: both at once.
    let got = step(&mut h, 1100, 1000, 2000);
    assert_eq!(
        got,
        vec![
            history_record("mymaster", REPLID, 1000),
            history_record("other", OTHER_REPLID, 2000)
        ]
    );
    h.commit(1200, history_record("mymaster", REPLID, 1000));
    h.commit(1200, history_record("other", OTHER_REPLID, 2000));
    // Both moved and both due: one refresh, the other a gap later.
    assert_eq!(
        step(&mut h, 11_200, 5000, 6000),
        vec![history_record("mymaster", REPLID, 5000)]
    );
    assert!(step(&mut h, 11_700, 5000, 6000).is_empty());
    assert_eq!(
        step(&mut h, 12_200, 5000, 6000),
        vec![history_record("other", OTHER_REPLID, 6000)]
    );
}

/// A master restarted in place without its data (a new run id, no key
/// loaded, another id than the group's record) while a replica still holds
/// the recorded history: `+master-back-empty`, SDOWN at the next tick
/// without waiting for down-after, the replica still chosen (judged against
/// the record, not against the empty master's new id) and the new id not
/// recorded. Once no replica holds the record any more, the rule lets go.
#[test]
fn a_master_back_empty_is_down_at_once_while_a_replica_holds_its_data() {
    let master = |run: char, replid: &str, loaded: u64| {
        format!(
            "run_id:{}\r\nrole:master\r\nmaster_replid:{replid}\r\n\
             master_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:50\r\n\
             rdb_last_load_keys_loaded:{loaded}\r\naof_enabled:0\r\n# Keyspace\r\n",
            run.to_string().repeat(40)
        )
    };
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    h.commit(150, history_record("mymaster", REPLID, 1000));
    let mid = h.id(6379);
    let has = |a: &[Action], kind: EventKind| events(a).contains(&ev(kind, M));
    h.info(mid, 200, &master('a', REPLID, 0));
    // Restarted with an RDB that had keys, on another id: not empty.
    let a = h.info(
        mid,
        300,
        &master('b', "5555555555555555555555555555555555555555", 7),
    );
    assert!(!has(&a, EventKind::MasterBackEmpty));
    // Restarted empty.
    let empty_id = "6666666666666666666666666666666666666666";
    let a = h.info(mid, 400, &master('c', empty_id, 0));
    assert!(has(&a, EventKind::MasterBackEmpty), "{a:?}");
    // The replica's INFO is asked at once (the last one may predate its
    // first sync); until it answers it counts as holding the data.
    assert!(a.contains(&Action::SendInfo { id: h.id(6380) }), "{a:?}");
    // Its writes are paused and answers naming it wait.
    assert!(
        a.contains(&Action::PauseWrites {
            id: mid,
            ms: BACK_EMPTY_PAUSE_MS
        }),
        "{a:?}"
    );
    assert!(has(&a, EventKind::Fence), "{a:?}");
    assert!(h.s.masters["mymaster"].inst.link.hold_hello);
    assert_eq!(
        h.s.master_addr_held("mymaster"),
        (Some(("127.0.0.1".to_string(), 6379)), true)
    );
    h.refresh(400, &[(6380, 1000)]);
    let a = h.s.handle(500, Input::Tick);
    assert!(has(&a, EventKind::Sdown), "{a:?}");
    assert!(history_records(&a).is_empty());
    assert_eq!(
        h.s.select_slave("mymaster", 500).as_deref(),
        Some("127.0.0.1:6380")
    );
    // Later INFO of the master (a write since: keys) keeps the judgement.
    let a = h.info(
        mid,
        600,
        &master('c', empty_id, 0).replace(
            "# Keyspace\r\n",
            "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n",
        ),
    );
    assert!(!has(&a, EventKind::MasterBackEmptyCleared));
    assert!(h.s.masters["mymaster"].inst.s_down);
    // The pause is sent again before it runs out.
    let a = h.s.handle(400 + BACK_EMPTY_PAUSE_MS / 3, Input::Tick);
    assert!(
        a.contains(&Action::PauseWrites {
            id: mid,
            ms: BACK_EMPTY_PAUSE_MS
        }),
        "{a:?}"
    );
    // The replica resynchronised from it: nothing left to save.
    let r = h.id(6380);
    h.pong(r, 700);
    h.info(r, 700, &replica_text(6379, 50, 100, empty_id));
    let a = h.s.handle(800, Input::Tick);
    assert!(has(&a, EventKind::MasterBackEmptyCleared), "{a:?}");
    assert!(has(&a, EventKind::SdownCleared), "{a:?}");
    assert!(h.s.masters["mymaster"].inst.back_empty.is_none());
    // Nothing left to save: the pause is lifted, answers name it again.
    assert!(a.contains(&Action::Unpause { id: mid }), "{a:?}");
    assert!(has(&a, EventKind::FenceLifted), "{a:?}");
    assert!(!h.s.masters["mymaster"].inst.link.hold_hello);
    assert!(!h.s.master_addr_held("mymaster").1);
}

/// A daemon that has not seen the master since it started (a cold start,
/// the master still down) judges replicas on the committed record: an
/// empty replica, or one on another history, is refused while the record
/// says the master had data; without a record it would be chosen.
#[test]
fn the_recorded_history_refuses_an_empty_replica_after_a_restart() {
    let mut h = H::new(state(&[6380, 6381]), true);
    for port in [6380, 6381] {
        let id = h.id(port);
        h.up(id, 100);
        h.pong(id, 100);
    }
    let empty = "4444444444444444444444444444444444444444";
    let e = h.id(6380);
    h.info(e, 100, &replica_text(6379, 0, 100, empty));
    let o = h.id(6381);
    h.info(o, 100, &replica_text(6379, 900, 100, OTHER_REPLID));
    // No record: nothing says the master had data or which history.
    assert_eq!(
        h.s.select_slave("mymaster", 200).as_deref(),
        Some("127.0.0.1:6381")
    );
    h.commit(
        150,
        Command::RecordHistory {
            name: "mymaster".into(),
            config_epoch: 0,
            history: crate::core::group::ReplHistory {
                replid: REPLID.into(),
                replid2: "0000000000000000000000000000000000000000".into(),
                offset: 1000,
            },
            by: Some(node(MYID)),
        },
    );
    assert_eq!(h.s.select_slave("mymaster", 200), None);
    let why = h.s.history_refusals("mymaster");
    assert_eq!(
        why,
        vec![
            "slave 127.0.0.1:6380: offset 0 while the master's offset is 1000".to_string(),
            format!(
                "slave 127.0.0.1:6381: replid {OTHER_REPLID} replid2 - offset 900 is not the master's history (replid {REPLID} replid2 0000000000000000000000000000000000000000 offset 1000)"
            ),
        ]
    );
    assert_eq!(
        h.s.failover("mymaster", false, 200, &mut Vec::new()),
        Err(CmdError(
            "NOGOODSLAVE No suitable replica to promote".into()
        ))
    );
    // FORCE: the operator accepts the loss; the committed failover's
    // selection waives the history rules.
    let mut out = Vec::new();
    assert_eq!(h.s.failover_forced("mymaster", 200, &mut out), Ok(()));
    let started = proposals(&out);
    assert!(
        matches!(
            started.as_slice(),
            [Command::FailoverStart {
                manual: true,
                force: true,
                coordinated: false,
                ..
            }]
        ),
        "{started:?}"
    );
    h.commit(210, started[0].clone());
    assert_eq!(
        h.s.select_slave("mymaster", 220).as_deref(),
        Some("127.0.0.1:6381")
    );
    // A replica on the recorded history is chosen.
    h.info(o, 160, &replica_text(6379, 900, 100, REPLID));
    assert_eq!(
        h.s.select_slave("mymaster", 200).as_deref(),
        Some("127.0.0.1:6381")
    );
}

#[test]
fn no_good_slave_aborts_and_the_retry_waits_two_failover_timeouts() {
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 0)]);
    // The only replica is empty while the master had data.
    let a = h.master_dies(&[(6380, 0)]);
    assert_eq!(proposals(&a), vec![opinion(MYID, true)]);
    h.commit(6600, opinion(MYID, true));
    let a = h.commit(6610, opinion(PEER2, true));
    assert_eq!(proposals(&a), vec![start(1, MYID, false, false)]);
    let a = h.commit(6620, start(1, MYID, false, false));
    let r = h.id(6380);
    assert!(sends_info(&a, r));
    let a = h.replica_info(6380, 6630, 0, 100);
    let why = "slave 127.0.0.1:6380: offset 0 while the master's offset is 1000";
    let abort = Command::FailoverAbort {
        name: "mymaster".into(),
        epoch: 1,
        reason: "-failover-abort-no-good-slave".into(),
        detail: Some(why.into()),
        by: Some(node(MYID)),
    };
    assert_eq!(proposals(&a), vec![abort.clone()]);
    // Lost proposal: pushed again after 250 ms.
    assert!(!proposals(&h.s.handle(6700, Input::Tick)).contains(&abort));
    assert!(proposals(&h.s.handle(6900, Input::Tick)).contains(&abort));
    let a = h.commit(6950, abort);
    assert_eq!(events(&a), vec![ev(EventKind::FailoverAbortNoGoodSlave, M)]);
    // The payload is Sentinel's; the log line says why.
    let detail = a.iter().find_map(|x| match x {
        Action::Emit(e) if e.kind == EventKind::FailoverAbortNoGoodSlave => e.detail.clone(),
        _ => None,
    });
    assert_eq!(detail.as_deref(), Some(why));
    assert!(proposals(&a).is_empty());
    // Every daemon's SENTINEL MASTER says why the group waits, last, while
    // the master is down.
    let d = h.s.master_desc("mymaster", 6900).unwrap();
    assert!(d.contains(&("flags", "s_down,o_down,master".into())));
    assert_eq!(d.last(), Some(&("failover-wait", why.to_string())));
    // No new attempt within 2 × failover-timeout of the start.
    for t in [10_000, 60_000, 126_000] {
        h.refresh(t - 10, &[(6380, 0)]);
        assert!(
            !proposals(&h.s.handle(t, Input::Tick))
                .iter()
                .any(|c| matches!(c, Command::FailoverStart { .. })),
            "t={t}"
        );
    }
    let a = h.s.handle(126_700, Input::Tick);
    assert!(proposals(&a).contains(&start(2, MYID, false, false)));
}

#[test]
fn no_start_by_a_follower_or_a_minority_leader() {
    for (leader, voters) in [(false, 3), (true, 1)] {
        let mut h = H::new(state(&[6380]), leader);
        h.raft(0, leader, voters);
        h.healthy(100, &[(6380, 1000)]);
        h.master_dies(&[(6380, 1000)]);
        h.commit(6600, opinion(MYID, true));
        let a = h.commit(6610, opinion(PEER, true));
        // ODOWN is still reported locally.
        assert_eq!(
            events(&a),
            vec![ev(EventKind::Odown, &format!("{M} #quorum 2/2"))]
        );
        assert!(proposals(&a).is_empty(), "leader={leader} voters={voters}");
        assert!(proposals(&h.s.handle(7000, Input::Tick)).is_empty());
    }
}

#[test]
fn raft_leader_change_or_restart_causes_no_failover() {
    let mut h = H::new(state(&[6380]), false);
    h.healthy(100, &[(6380, 1000)]);
    // A stale committed vote of a peer, the master healthy here.
    h.commit(200, opinion(PEER, true));
    h.commit(210, opinion(PEER2, true));
    for (t, leader) in [(300, true), (400, false), (500, true)] {
        let a = h.raft(t, leader, 3);
        assert!(events(&a).is_empty());
        assert!(proposals(&a).is_empty());
        let a = h.deliver(t + 10);
        assert!(events(&a).is_empty());
        assert!(proposals(&a).is_empty());
    }
    // Restart of the leader: same.
    let (s, start_actions) = Sentinel::new(h.s.persisted(), CoreOptions::default(), 600);
    assert_eq!(events(&start_actions).len(), 1); // +monitor
    let mut h2 = H {
        s,
        gs: h.gs.clone(),
    };
    let a = h2.raft(600, true, 3);
    assert!(proposals(&a).is_empty());
    let a = h2.deliver(610);
    assert!(events(&a).is_empty());
    assert!(proposals(&a).is_empty());
}

#[test]
fn own_stale_vote_is_retracted() {
    let mut h = H::new(state(&[6380]), false);
    h.healthy(100, &[(6380, 1000)]);
    let a = h.commit(200, opinion(MYID, true));
    assert_eq!(proposals(&a), vec![opinion(MYID, false)]);
    let a = h.commit(300, opinion(MYID, false));
    assert!(proposals(&a).is_empty());
}

#[test]
fn new_leader_resumes_a_failover_from_its_committed_phase() {
    let mut h = H::new(state(&[6380, 6381]), false);
    h.healthy(100, &[(6380, 900), (6381, 1000)]);
    let r2 = h.id(6381);
    h.commit(200, start(1, PEER, false, false));
    h.commit(
        300,
        phase(1, Phase::SendSlaveofNoone, Some(6381)).signed(node(PEER)),
    );
    // The old leader is gone; this daemon becomes the Raft leader.
    let a = h.raft(400, true, 2);
    let take = Command::FailoverTakeover {
        name: "mymaster".into(),
        epoch: 1,
        leader: node(MYID),
    };
    assert_eq!(proposals(&a), vec![take.clone()]);
    // Nothing done to Redis before the takeover is committed.
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    let a = h.commit(450, take);
    expect_resumed_promotion(&a, r2);
    let a = h.info(r2, 500, &promoted_text(1000));
    assert_eq!(
        proposals(&a),
        vec![reconf_phase(1, NEW_REPLID, REPLID, 1000)]
    );
    // Leadership moves again while replicas are being reconfigured: the
    // next leader continues with the replicas left.
    let a = h.raft(510, false, 2);
    assert!(proposals(&a).is_empty());
    h.commit(520, phase(1, Phase::ReconfSlaves, None));
    h.gs.apply(&Command::FailoverTakeover {
        name: "mymaster".into(),
        epoch: 1,
        leader: node(PEER2),
    });
    // No longer leading a failover whose promotion is committed: this
    // daemon publishes the switch as an observer would, and says so.
    let a = h.deliver(530);
    assert_eq!(
        events(&a),
        vec![
            ev(
                EventKind::ConfigUpdateFrom,
                &format!("sentinel {PEER2} 127.0.0.1 26381 @ mymaster 127.0.0.1 6379")
            ),
            ev(
                EventKind::SwitchMaster,
                "mymaster 127.0.0.1 6379 127.0.0.1 6381"
            ),
            ev(
                EventKind::Slave,
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6381"
            ),
            ev(
                EventKind::Slave,
                "slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6381"
            ),
        ]
    );
    h.commit(540, published(1, MYID));
    let a = h.raft(600, true, 2);
    let take = Command::FailoverTakeover {
        name: "mymaster".into(),
        epoch: 1,
        leader: node(MYID),
    };
    assert_eq!(proposals(&a), vec![take.clone()]);
    // Its events still name the master being replaced; the replica is
    // reconfigured once its link (reset by the switch) is up again, the
    // old master (now among the replicas here) is left for the demotion.
    let a = h.commit(650, take);
    assert_eq!(
        events(&a),
        vec![
            ev(EventKind::ElectedLeader, M),
            ev(EventKind::FailoverStateReconfSlaves, M),
        ]
    );
    let (r1, old) = (h.id(6380), h.id(6379));
    h.up(old, 660);
    let mut a = Vec::new();
    for link in [LinkKind::Command, LinkKind::PubSub] {
        a.extend(h.s.handle(670, Input::LinkUp { id: r1, link }));
    }
    assert_eq!(
        events(&a),
        vec![ev(EventKind::SlaveReconfSent, &slave(6380))]
    );
    assert!(a.contains(&Action::Reconfigure {
        id: r1,
        replicaof: Some(("127.0.0.1".into(), 6381))
    }));
    assert!(!a
        .iter()
        .any(|x| matches!(x, Action::Reconfigure { id, .. } if *id == old)));
    let a = h.info(r1, 700, &replica_text(6381, 1000, 100, NEW_REPLID));
    assert_eq!(
        engine_events(&a),
        vec![
            ev(EventKind::SlaveReconfInprog, &slave(6380)),
            ev(EventKind::SlaveReconfDone, &slave(6380)),
            ev(EventKind::FailoverEnd, M),
        ]
    );
    assert_eq!(proposals(&a), vec![switch(1, 6381)]);
    // It published already: the switch publishes nothing again.
    let a = h.commit(710, switch(1, 6381));
    assert!(events(&a).is_empty(), "{:?}", events(&a));
    assert!(proposals(&a).is_empty());
}

#[test]
fn manual_failover_replies_and_proposal() {
    // Not in a group: nothing can be committed.
    let (mut lone, _) = Sentinel::new(state(&[6380]), CoreOptions::default(), 0);
    let r = lone.masters["mymaster"].replicas["127.0.0.1:6380"].id;
    for link in [LinkKind::Command, LinkKind::PubSub] {
        lone.handle(100, Input::LinkUp { id: r, link });
    }
    lone.handle(
        100,
        Input::PingReply {
            id: r,
            reply: PingReply::Valid { pong: true },
        },
    );
    lone.handle(
        100,
        Input::InfoReply {
            id: r,
            text: replica_text(6379, 10, 100, REPLID),
        },
    );
    assert!(matches!(
        lone.failover("mymaster", false, 200, &mut Vec::new()),
        Err(CmdError(e)) if e.starts_with("NOQUORUM ")
    ));

    let mut h = H::new(state(&[6380]), false);
    assert_eq!(
        h.s.failover("mymaster", false, 100, &mut Vec::new()),
        Err(CmdError(
            "NOGOODSLAVE No suitable replica to promote".into()
        ))
    );
    assert_eq!(
        h.s.failover("nope", false, 100, &mut Vec::new()),
        Err(CmdError::no_such_master())
    );
    h.healthy(100, &[(6380, 1000)]);
    let mut out = Vec::new();
    assert_eq!(h.s.failover("mymaster", false, 200, &mut out), Ok(()));
    // Any daemon proposes; it names the Raft leader as the driver.
    // A coordinated switchover by default.
    assert_eq!(
        proposals(&out),
        vec![start(1, PEER, true, true).signed(node(MYID))]
    );
    // Pending: a second request is refused like a running failover.
    assert_eq!(
        h.s.failover("mymaster", false, 210, &mut Vec::new()),
        Err(CmdError("INPROG Failover already in progress".into()))
    );
    // Re-proposed until committed.
    assert_eq!(
        proposals(&h.s.handle(500, Input::Tick)),
        vec![start(1, PEER, true, true).signed(node(MYID))]
    );
    let a = h.commit(600, start(1, PEER, true, true).signed(node(MYID)));
    assert_eq!(
        events(&a),
        [
            ev(EventKind::NewEpoch, "1"),
            ev(EventKind::VoteForLeader, &format!("{PEER} 1")),
        ]
    );
    // The follower drives nothing; the request is no longer pending.
    assert!(!a.iter().any(|x| matches!(x, Action::SendInfo { .. })));
    let d = h.s.master_desc("mymaster", 600).unwrap();
    assert!(d.contains(&("flags", "master,failover_in_progress,force_failover".into())));
    assert_eq!(
        h.s.failover("mymaster", false, 700, &mut Vec::new()),
        Err(CmdError("INPROG Failover already in progress".into()))
    );
    assert!(proposals(&h.s.handle(900, Input::Tick)).is_empty());
}

#[test]
fn coordinated_switchover_pauses_waits_for_the_offset_then_promotes() {
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    let (mid, r) = (h.id(6379), h.id(6380));
    let mut out = Vec::new();
    let set = h.s.set(
        "mymaster",
        &["coordinated-failover".to_string(), "yes".to_string()],
        &|_| true,
        100,
        &mut out,
    );
    assert_eq!(set, Ok(()));
    let coordinated = Command::Set {
        name: "mymaster".into(),
        option: "coordinated-failover".into(),
        value: "yes".into(),
    };
    assert_eq!(proposals(&out), vec![coordinated.clone()]);
    assert_eq!(
        events(&out),
        vec![ev(EventKind::Set, &format!("{M} coordinated-failover yes"))]
    );
    h.commit(150, coordinated);

    let mut out = Vec::new();
    assert_eq!(h.s.failover("mymaster", false, 200, &mut out), Ok(()));
    assert_eq!(proposals(&out), vec![start(1, MYID, true, true)]);
    let a = h.commit(210, start(1, MYID, true, true));
    // Fresh INFO of both sides before the choice.
    assert!(sends_info(&a, r) && sends_info(&a, mid));
    let a = h.replica_info(6380, 220, 1000, 100);
    assert!(proposals(&a).is_empty());
    let a = h.master_info(221, 1000);
    assert_eq!(
        proposals(&a),
        vec![phase(1, Phase::SendSlaveofNoone, Some(6380))]
    );
    let a = h.commit(230, phase(1, Phase::SendSlaveofNoone, Some(6380)));
    assert_eq!(
        events(&a),
        vec![
            ev(EventKind::SelectedSlave, &slave(6380)),
            ev(EventKind::FailoverStateSendSlaveofNoone, &slave(6380)),
        ]
    );
    // Writes paused on the old master (its offset read in the same
    // pipeline); no hello PUBLISH on its link while paused.
    assert!(a.contains(&Action::PauseWrites {
        id: mid,
        ms: 60_000
    }));
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    assert!(h.s.masters["mymaster"].inst.link.hold_hello);
    let a = h.s.handle(
        240,
        Input::PauseReply {
            id: mid,
            info: Some("role:master\r\nmaster_repl_offset:2000\r\n".into()),
        },
    );
    assert!(sends_info(&a, r));
    // The replica is behind: no promotion yet.
    let a = h.replica_info(6380, 245, 1500, 100);
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    // Polled every 50 ms.
    let a = h.s.handle(300, Input::Tick);
    assert!(sends_info(&a, r));
    assert!(!a
        .iter()
        .any(|x| matches!(x, Action::SendHello { id, .. } if *id == mid)));
    // An offset of another history (a resync from a master restarted
    // empty) is not a catch-up.
    let other = "ffffffffffffffffffffffffffffffffffffffff";
    let a = h.info(r, 320, &replica_text(6379, 5000, 100, other));
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    let a = h.replica_info(6380, 345, 2000, 100);
    let promote = a
        .iter()
        .position(|x| {
            *x == Action::Reconfigure {
                id: r,
                replicaof: None,
            }
        })
        .expect("promotion once caught up");
    assert!(a[promote..].contains(&Action::SendInfo { id: r }));
    assert_eq!(
        events(&a),
        vec![ev(EventKind::FailoverStateWaitPromotion, &slave(6380))]
    );
    // Promoted: the old master is left paused, as it is, until the switch
    // has been published; the history the replica took goes with the phase.
    let a = h.info(r, 350, &promoted_text(2000));
    assert!(!a
        .iter()
        .any(|x| matches!(x, Action::Reconfigure { id, .. } if *id == mid)));
    assert!(!a.iter().any(|x| matches!(x, Action::Unpause { .. })));
    assert_eq!(
        proposals(&a),
        vec![reconf_phase(1, NEW_REPLID, REPLID, 2000)]
    );
    // No other replica: the switch follows at once, the old master paused.
    let a = h.commit(370, reconf_phase(1, NEW_REPLID, REPLID, 2000));
    assert_eq!(proposals(&a), vec![switch(1, 6380)]);
    assert!(!a.iter().any(|x| matches!(x, Action::Unpause { .. })));
    expect_demotion_after_publication(&mut h, 1380, 6380, true);
}

/// After the switch of epoch 1 to `to` is committed at `t` on the leader
/// `h`: the old master 6379 is demoted only once every daemon in reach
/// published `+switch-master` and subscribers had their grace time;
/// meanwhile a coordinated one (`paused`) is paused again and its hellos
/// held, and it is unpaused once it says it is a replica.
fn expect_demotion_after_publication(h: &mut H, t: Millis, to: u16, paused: bool) {
    let a = h.commit(t, switch(1, to));
    assert!(events(&a).contains(&ev(
        EventKind::SwitchMaster,
        &format!("mymaster 127.0.0.1 6379 127.0.0.1 {to}")
    )));
    assert_eq!(proposals(&a), vec![published(1, MYID)]);
    let old = h.id(6379);
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    assert_eq!(
        h.s.masters["mymaster"].replicas["127.0.0.1:6379"]
            .link
            .hold_hello,
        paused
    );
    // Both peers are reachable: both must publish.
    h.peers_up(t);
    // The old master answers, still a master: paused again (coordinated),
    // not demoted.
    h.up(old, t + 10);
    h.pong(old, t + 10);
    let a = h.info(old, t + 20, "role:master\r\n");
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    assert_eq!(
        a.contains(&Action::PauseWrites {
            id: old,
            ms: 60_000
        }),
        paused
    );
    h.master_info(t + 30, 3000);
    let demote = Action::Reconfigure {
        id: old,
        replicaof: Some(("127.0.0.1".into(), to)),
    };
    let a = h.commit(t + 40, published(1, MYID));
    assert!(!a.contains(&demote));
    let a = h.commit(t + 50, published(1, PEER));
    assert!(!a.contains(&demote));
    let a = h.commit(t + 60, published(1, PEER2));
    assert!(!a.contains(&demote), "subscribers get their grace time");
    assert!(!h.s.handle(t + 100, Input::Tick).contains(&demote));
    let a = h.s.handle(t + 60 + SUBSCRIBER_GRACE_MS, Input::Tick);
    assert!(a.contains(&demote));
    assert_eq!(
        engine_events(&a),
        vec![ev(
            EventKind::ConvertToSlave,
            &format!("slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 {to}")
        )]
    );
    assert!(sends_info(&a, old));
    assert!(!a.contains(&Action::Unpause { id: old }));
    let a = h.info(
        old,
        t + 200,
        &format!("role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:{to}\r\n"),
    );
    assert_eq!(a.contains(&Action::Unpause { id: old }), paused);
    assert!(
        !h.s.masters["mymaster"].replicas["127.0.0.1:6379"]
            .link
            .hold_hello
    );
    // Done once.
    let mut later = Vec::new();
    for t in (t + 300..=t + 3000).step_by(100) {
        later.extend(h.s.handle(t, Input::Tick));
    }
    assert!(!later.contains(&demote));
    assert!(!later.iter().any(|x| matches!(x, Action::Unpause { .. })));
}

#[test]
fn old_master_is_converted_as_soon_as_it_answers() {
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    h.commit(200, start(1, PEER, false, false));
    h.commit(
        210,
        Command::FailoverTakeover {
            name: "mymaster".into(),
            epoch: 1,
            leader: node(MYID),
        },
    );
    h.gs.apply(&phase(1, Phase::SendSlaveofNoone, Some(6380)));
    h.gs.apply(&phase(1, Phase::ReconfSlaves, None));
    h.gs.apply(&switch(1, 6380));
    h.deliver(300);
    assert_eq!(h.s.masters["mymaster"].inst.port, 6380);
    // Published by this daemon and its peer (the third is out of reach).
    h.commit(310, published(1, MYID));
    h.commit(320, published(1, PEER));
    // The new master answers.
    h.master_info(1400, 3000);
    let old = h.id(6379);
    h.up(old, 1500);
    let a = h.pong(old, 1500);
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    let a = h.info(old, 1510, "role:master\r\n");
    assert!(a.contains(&Action::Reconfigure {
        id: old,
        replicaof: Some(("127.0.0.1".into(), 6380))
    }));
    assert!(engine_events(&a).contains(&ev(
        EventKind::ConvertToSlave,
        "slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6380"
    )));
    // INFO asked at once to confirm.
    assert!(sends_info(&a, old));
    // Not repeated on every input, nor before a newer INFO.
    let a = h.info(old, 1520, "role:master\r\n");
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    h.master_info(2500, 3000);
    let a = h.pong(old, 2600);
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    // Still a master in an INFO a second later: sent again.
    let a = h.info(old, 2610, "role:master\r\n");
    assert!(a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    // Done: it follows the new master; nothing more.
    let a = h.info(
        old,
        2700,
        "role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6380\r\n",
    );
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
}

#[test]
fn promotion_timeout_aborts_with_slave_timeout() {
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    h.commit(200, start(1, MYID, true, false));
    h.replica_info(6380, 210, 1000, 100);
    h.commit(220, phase(1, Phase::SendSlaveofNoone, Some(6380)));
    let a = h.s.handle(60_300, Input::Tick);
    let abort = Command::FailoverAbort {
        name: "mymaster".into(),
        epoch: 1,
        reason: "-failover-abort-slave-timeout".into(),
        detail: None,
        by: Some(node(MYID)),
    };
    assert_eq!(proposals(&a), vec![abort.clone()]);
    let a = h.commit(60_400, abort);
    assert_eq!(
        events(&a),
        vec![ev(EventKind::FailoverAbortSlaveTimeout, M)]
    );
    assert_eq!(
        h.s.master_addr("mymaster"),
        Some(("127.0.0.1".into(), 6379))
    );
}

#[test]
fn ckquorum_without_a_raft_leader_is_noquorum() {
    let mut h = H::new(state(&[]), false);
    h.s.handle(
        10,
        Input::Raft(RaftView {
            node_id: node(MYID),
            initialized: true,
            is_leader: false,
            voters: 3,
            leader: None,
        }),
    );
    assert!(matches!(
        h.s.ckquorum("mymaster"),
        Err(CmdError(e)) if e.starts_with("NOQUORUM 3 usable Sentinels. ")
    ));
    // Flags and INFO say so too.
    let flags = |h: &H| {
        let d = h.s.master_desc("mymaster", 10).expect("master");
        d.iter()
            .find(|(k, _)| *k == "flags")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(flags(&h), "master,disconnected,no_quorum");
    let info = h.s.info_sentinel_section(10, 0, 0);
    assert!(info.contains(",sentinels=3,quorum=no\r\n"), "{info}");
    h.raft(20, false, 3);
    assert_eq!(flags(&h), "master,disconnected");
    assert!(h
        .s
        .info_sentinel_section(20, 0, 0)
        .contains(",sentinels=3\r\n"));
    // With a leader, Sentinel's own rule (peers unreachable here count).
    assert_eq!(
        h.s.ckquorum("mymaster"),
        Ok("OK 3 usable Sentinels. Quorum and failover authorization can be reached".into())
    );
}

#[test]
fn epochs_start_above_a_migrated_config() {
    // sentinel.conf from redis-sentinel: current-epoch 5, config-epoch 4;
    // the new group starts at 0.
    let mut st = state(&[6380]);
    st.current_epoch = 5;
    st.masters[0].config_epoch = 4;
    let mut h = H::new(st, true);
    h.healthy(100, &[(6380, 1000)]);
    let mut out = Vec::new();
    assert_eq!(h.s.failover("mymaster", false, 200, &mut out), Ok(()));
    assert_eq!(proposals(&out), vec![start(6, MYID, true, true)]);
    let a = h.commit(210, start(6, MYID, true, true));
    assert_eq!(events(&a)[0], ev(EventKind::NewEpoch, "6"));
    // The switch of epoch 6 is newer than the local config epoch 4.
    h.gs.apply(&phase(6, Phase::SendSlaveofNoone, Some(6380)));
    h.gs.apply(&phase(6, Phase::ReconfSlaves, None));
    h.gs.apply(&switch(6, 6380));
    let a = h.deliver(300);
    assert!(events(&a).contains(&ev(
        EventKind::SwitchMaster,
        "mymaster 127.0.0.1 6379 127.0.0.1 6380"
    )));
    assert_eq!(h.s.persisted().masters[0].config_epoch, 6);
}

#[test]
fn coordinated_switchover_aborts_when_the_pause_fails() {
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    let mid = h.id(6379);
    h.commit(200, start(1, MYID, true, true));
    h.replica_info(6380, 210, 1000, 100);
    let a = h.commit(220, phase(1, Phase::SendSlaveofNoone, Some(6380)));
    assert!(a.iter().any(|x| matches!(x, Action::PauseWrites { .. })));
    let a = h.s.handle(
        230,
        Input::PauseReply {
            id: mid,
            info: None,
        },
    );
    let abort = Command::FailoverAbort {
        name: "mymaster".into(),
        epoch: 1,
        reason: "-failover-abort-slave-timeout".into(),
        detail: None,
        by: Some(node(MYID)),
    };
    assert_eq!(proposals(&a), vec![abort.clone()]);
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    let a = h.commit(240, abort);
    assert_eq!(
        events(&a),
        vec![ev(EventKind::FailoverAbortSlaveTimeout, M)]
    );
    assert!(a.contains(&Action::Unpause { id: mid }));
    assert!(!h.s.masters["mymaster"].inst.link.hold_hello);
}

#[test]
fn monitor_and_remove_are_replicated_in_a_group() {
    let mut h = H::new(state(&[]), false);
    let mut out = Vec::new();
    assert_eq!(h.s.remove("mymaster", &mut out), Ok(()));
    assert_eq!(
        proposals(&out),
        vec![Command::Remove {
            name: "mymaster".into()
        }]
    );
    h.commit(
        10,
        Command::Remove {
            name: "mymaster".into(),
        },
    );
    let mut out = Vec::new();
    let args = super::commands::MonitorArgs {
        name: "mymaster",
        host: "127.0.0.1",
        port: "7000",
        quorum: "2",
    };
    assert_eq!(
        h.s.monitor(20, args, &|h, _| Some(h.to_string()), &mut out),
        Ok(())
    );
    assert_eq!(
        proposals(&out),
        vec![Command::Monitor {
            name: "mymaster".into(),
            host: "127.0.0.1".into(),
            port: 7000,
            quorum: 2,
        }]
    );
    // Until committed, clients get the local address.
    assert_eq!(
        h.s.master_addr("mymaster"),
        Some(("127.0.0.1".into(), 7000))
    );
}

#[test]
fn restart_mid_failover_republishes_nothing_and_the_leader_resumes() {
    let mut h = H::new(state(&[6380, 6381]), true);
    h.healthy(100, &[(6380, 900), (6381, 1000)]);
    h.commit(200, start(1, MYID, true, false));
    h.replica_info(6380, 210, 900, 100);
    h.replica_info(6381, 210, 1000, 100);
    h.commit(220, phase(1, Phase::SendSlaveofNoone, Some(6381)));
    // Crash and restart from the flushed config (current epoch 1).
    let persisted = h.s.persisted();
    assert_eq!(persisted.current_epoch, 1);
    let gs = h.gs.clone();
    // As an observer: the replayed log publishes nothing.
    let (s, _) = Sentinel::new(persisted.clone(), CoreOptions::default(), 0);
    let mut obs = H { s, gs: gs.clone() };
    obs.raft(0, false, 3);
    let a = obs.deliver(10);
    assert!(events(&a).is_empty(), "{a:?}");
    assert!(!a.iter().any(|x| matches!(x, Action::Reconfigure { .. })));
    // As the Raft leader again: it resumes from the committed phase.
    let (s, _) = Sentinel::new(persisted, CoreOptions::default(), 0);
    let mut lead = H { s, gs };
    let r2 = lead.id(6381);
    lead.up(r2, 5);
    lead.raft(5, true, 3);
    let a = lead.deliver(10);
    expect_resumed_promotion(&a, r2);
}

#[test]
fn config_written_during_reconf_is_already_switched() {
    let mut h = H::new(state(&[6380, 6381]), false);
    h.commit(100, start(1, PEER, false, false));
    h.commit(
        110,
        phase(1, Phase::SendSlaveofNoone, Some(6381)).signed(node(PEER)),
    );
    h.commit(120, phase(1, Phase::ReconfSlaves, None).signed(node(PEER)));
    let p = h.s.persisted();
    assert_eq!(p.masters[0].port, 6381);
    assert_eq!(
        p.masters[0].known_replicas,
        vec![
            ("127.0.0.1".to_string(), 6380),
            ("127.0.0.1".to_string(), 6379)
        ]
    );
    // Restarted from that file, the committed switch changes nothing more.
    let (s, _) = Sentinel::new(p, CoreOptions::default(), 0);
    let mut h2 = H {
        s,
        gs: h.gs.clone(),
    };
    h2.raft(0, false, 3);
    h2.gs.apply(&switch(1, 6381).signed(node(PEER)));
    let a = h2.deliver(10);
    assert!(events(&a).is_empty(), "{a:?}");
    let m = &h2.s.masters["mymaster"];
    assert_eq!((m.inst.port, m.config_epoch), (6381, 1));
    assert!(m.replicas.contains_key("127.0.0.1:6379"));
}

fn odown_events(actions: &[Action]) -> Vec<(EventKind, String)> {
    events(actions)
        .into_iter()
        .filter(|(k, _)| matches!(k, EventKind::Odown | EventKind::OdownCleared))
        .collect()
}

fn peers_say_down(h: &mut H, now: Millis) -> Vec<Action> {
    let peers: Vec<InstanceId> = h.s.masters["mymaster"]
        .sentinels
        .values()
        .map(|s| s.id)
        .collect();
    let mut out = Vec::new();
    for peer in peers {
        out.extend(h.s.handle(
            now,
            Input::MasterDownReply {
                peer,
                reply: Some((1, "*".into(), 0)),
            },
        ));
    }
    out
}

/// The master dies while the group is still forming: the peer-reply rule
/// decides ODOWN first, then the committed votes take over without a
/// `-odown`/`+odown` pair (bench: `+odown 3/2`, `-odown`, `+odown 2/2`).
#[test]
fn odown_is_published_once_when_the_group_takes_over() {
    let (s, _) = Sentinel::new(state(&[6380]), CoreOptions::default(), 0);
    let mut h = H {
        s,
        gs: GroupState::default(),
    };
    h.healthy(0, &[(6380, 1000)]);
    let mut seen = Vec::new();
    seen.extend(h.master_dies(&[(6380, 1000)]));
    seen.extend(peers_say_down(&mut h, 6350));
    seen.extend(h.s.handle(6400, Input::Tick));
    assert_eq!(
        odown_events(&seen),
        vec![ev(EventKind::Odown, &format!("{M} #quorum 3/2"))]
    );
    // The group forms and registers the master: no votes committed yet.
    h.gs.apply(&Command::Monitor {
        name: "mymaster".into(),
        host: "127.0.0.1".into(),
        port: 6379,
        quorum: 2,
    });
    let mut seen = h.raft(6500, false, 3);
    seen.extend(h.deliver(6500));
    for t in (6600..=7000).step_by(100) {
        seen.extend(h.s.handle(t, Input::Tick));
    }
    assert!(h.s.masters["mymaster"].inst.o_down);
    seen.extend(h.commit(7050, opinion(MYID, true)));
    seen.extend(h.s.handle(7100, Input::Tick));
    seen.extend(h.commit(7150, opinion(PEER, true)));
    for t in (7200..=9000).step_by(100) {
        seen.extend(h.s.handle(t, Input::Tick));
    }
    assert_eq!(odown_events(&seen), vec![]);
    assert!(h.s.masters["mymaster"].inst.o_down);
    // From now on the votes alone decide: both retract, ODOWN ends once.
    let mut seen = h.commit(9100, opinion(PEER, false));
    seen.extend(h.s.handle(9200, Input::Tick));
    assert_eq!(odown_events(&seen), vec![ev(EventKind::OdownCleared, M)]);
}

/// An ODOWN handed over to the group is not kept forever when the votes
/// never reach the quorum.
#[test]
fn handed_over_odown_ends_when_the_votes_do_not_follow() {
    let (s, _) = Sentinel::new(state(&[6380]), CoreOptions::default(), 0);
    let mut h = H {
        s,
        gs: GroupState::default(),
    };
    h.healthy(0, &[(6380, 1000)]);
    h.master_dies(&[(6380, 1000)]);
    peers_say_down(&mut h, 6350);
    h.s.handle(6400, Input::Tick);
    assert!(h.s.masters["mymaster"].inst.o_down);
    h.gs.apply(&Command::Monitor {
        name: "mymaster".into(),
        host: "127.0.0.1".into(),
        port: 6379,
        quorum: 2,
    });
    h.raft(6500, false, 3);
    let mut seen = h.deliver(6500);
    for t in (6600..=6500 + super::sentinel::ODOWN_HANDOVER_MS + 200).step_by(100) {
        seen.extend(h.s.handle(t, Input::Tick));
    }
    assert_eq!(odown_events(&seen), vec![ev(EventKind::OdownCleared, M)]);
}

/// In a group the peers' IS-MASTER-DOWN-BY-ADDR replies never set ODOWN:
/// only the committed votes do, once.
#[test]
fn in_a_group_peer_replies_do_not_decide_odown() {
    let mut h = H::new(state(&[6380]), false);
    h.healthy(0, &[(6380, 1000)]);
    let mut seen = h.master_dies(&[(6380, 1000)]);
    seen.extend(peers_say_down(&mut h, 6350));
    seen.extend(h.s.handle(6400, Input::Tick));
    assert_eq!(odown_events(&seen), vec![]);
    assert!(!h.s.masters["mymaster"].inst.o_down);
    let mut seen = h.commit(6450, opinion(MYID, true));
    seen.extend(h.commit(6500, opinion(PEER, true)));
    seen.extend(peers_say_down(&mut h, 6550));
    seen.extend(h.commit(6600, opinion(PEER2, true)));
    for t in (6700..=8000).step_by(100) {
        seen.extend(h.s.handle(t, Input::Tick));
    }
    assert_eq!(
        odown_events(&seen),
        vec![ev(EventKind::Odown, &format!("{M} #quorum 2/2"))]
    );
}

/// Plain SENTINEL FAILOVER (`coordinated-failover no`): the healthy old
/// master keeps its clients through the promotion and the switch, and is
/// made a replica (its clients killed) only once every daemon published
/// `+switch-master`: a client that learns of failovers only from that
/// message moves before its connections drop. The switch keeps Sentinel's
/// order (`+failover-end`, then `+switch-master`).
#[test]
fn plain_manual_failover_demotes_the_old_master_after_the_switch_is_published() {
    let mut h = H::new(state(&[6380, 6381]), true);
    h.healthy(100, &[(6380, 1000), (6381, 900)]);
    let (mid, r, other) = (h.id(6379), h.id(6380), h.id(6381));
    let mut out = Vec::new();
    let no = ["coordinated-failover".to_string(), "no".to_string()];
    assert_eq!(h.s.set("mymaster", &no, &|_| true, 150, &mut out), Ok(()));
    h.commit(160, proposals(&out)[0].clone());
    let mut out = Vec::new();
    assert_eq!(h.s.failover("mymaster", false, 200, &mut out), Ok(()));
    assert_eq!(proposals(&out), vec![start(1, MYID, true, false)]);
    h.commit(210, start(1, MYID, true, false));
    h.replica_info(6380, 220, 1000, 100);
    h.replica_info(6381, 221, 900, 100);
    let a = h.master_info(222, 1000);
    assert_eq!(
        proposals(&a),
        vec![phase(1, Phase::SendSlaveofNoone, Some(6380))]
    );
    let a = h.commit(230, phase(1, Phase::SendSlaveofNoone, Some(6380)));
    assert!(a.contains(&Action::Reconfigure {
        id: r,
        replicaof: None
    }));
    let touches_old = |a: &[Action]| {
        a.iter()
            .any(|x| matches!(x, Action::Reconfigure { id, .. } if *id == mid))
    };
    let a = h.info(r, 300, &promoted_text(1000));
    assert_eq!(
        proposals(&a),
        vec![reconf_phase(1, NEW_REPLID, REPLID, 1000)]
    );
    let a = h.commit(310, reconf_phase(1, NEW_REPLID, REPLID, 1000));
    assert!(!touches_old(&a));
    assert!(a.contains(&Action::Reconfigure {
        id: other,
        replicaof: Some(("127.0.0.1".into(), 6380)),
    }));
    assert_eq!(
        engine_events(&a),
        vec![
            ev(EventKind::FailoverStateReconfSlaves, M),
            ev(EventKind::SlaveReconfSent, &slave(6381)),
        ]
    );
    let a = h.info(other, 330, &replica_text(6380, 900, 100, NEW_REPLID));
    assert_eq!(
        engine_events(&a),
        vec![
            ev(EventKind::SlaveReconfInprog, &slave(6381)),
            ev(EventKind::SlaveReconfDone, &slave(6381)),
            ev(EventKind::FailoverEnd, M),
        ]
    );
    assert!(!touches_old(&a));
    assert_eq!(proposals(&a), vec![switch(1, 6380)]);
    expect_demotion_after_publication(&mut h, 1340, 6380, false);
}

/// The observers publish once the promotion is committed, and say so before
/// the switch: at the switch only the leader's own publication (after its
/// `+failover-end`) is left, and the old master is demoted right after it.
#[test]
fn publications_before_the_switch_count_for_the_demotion() {
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    h.commit(200, start(1, MYID, true, false));
    h.commit(210, phase(1, Phase::SendSlaveofNoone, Some(6380)));
    let a = h.commit(220, reconf_phase(1, NEW_REPLID, REPLID, 1000));
    // The leader publishes nothing before its +failover-end.
    assert!(!events(&a)
        .iter()
        .any(|(k, _)| matches!(k, EventKind::SwitchMaster | EventKind::ConfigUpdateFrom)));
    assert_eq!(proposals(&a), vec![switch(1, 6380)]);
    h.commit(230, published(1, PEER));
    h.commit(240, published(1, PEER2));
    // (A leader demotes nothing in its first second.)
    h.peers_up(1250);
    let a = h.commit(1300, switch(1, 6380));
    assert_eq!(proposals(&a), vec![published(1, MYID)]);
    let old = h.id(6379);
    h.up(old, 1310);
    h.pong(old, 1310);
    h.info(old, 1320, "role:master\r\n");
    h.master_info(1330, 3000);
    let demote = Action::Reconfigure {
        id: old,
        replicaof: Some(("127.0.0.1".into(), 6380)),
    };
    let a = h.commit(1340, published(1, MYID));
    assert!(!a.contains(&demote));
    let a = h.s.handle(1340 + SUBSCRIBER_GRACE_MS, Input::Tick);
    assert!(a.contains(&demote));
}

/// An observer of a coordinated switchover that published at the committed
/// promotion lists the old master among the replicas: no hello PUBLISH to
/// it (it is paused) until it says it is a replica.
#[test]
fn observer_holds_hellos_to_the_paused_old_master_once_it_switched() {
    let mut h = H::new(state(&[6380]), false);
    h.healthy(100, &[(6380, 1000)]);
    h.commit(200, start(1, PEER, true, true));
    h.commit(
        210,
        phase(1, Phase::SendSlaveofNoone, Some(6380)).signed(node(PEER)),
    );
    let a = h.commit(
        220,
        reconf_phase(1, NEW_REPLID, REPLID, 1000).signed(node(PEER)),
    );
    assert!(events(&a).contains(&ev(
        EventKind::SwitchMaster,
        "mymaster 127.0.0.1 6379 127.0.0.1 6380"
    )));
    let old = h.id(6379);
    let held = |h: &H| {
        h.s.masters["mymaster"].replicas["127.0.0.1:6379"]
            .link
            .hold_hello
    };
    assert!(held(&h));
    h.up(old, 230);
    h.pong(old, 230);
    h.info(old, 240, "role:master\r\n");
    let mut later = Vec::new();
    for t in (300..=3000).step_by(100) {
        h.pong(old, t);
        later.extend(h.s.handle(t, Input::Tick));
    }
    assert!(held(&h));
    assert!(!later
        .iter()
        .any(|x| matches!(x, Action::SendHello { id, .. } if *id == old)));
    h.info(
        old,
        3100,
        "role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6380\r\n",
    );
    assert!(!held(&h));
}

/// A daemon that never says it published (it missed the commit) is waited
/// for `SWITCH_PUBLISH_WAIT_MS` at most.
#[test]
fn the_old_master_is_demoted_after_the_bound_when_a_daemon_stays_silent() {
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    h.commit(200, start(1, MYID, true, false));
    h.gs.apply(&phase(1, Phase::SendSlaveofNoone, Some(6380)));
    h.gs.apply(&reconf_phase(1, NEW_REPLID, REPLID, 1000));
    h.gs.apply(&switch(1, 6380));
    h.deliver(300);
    h.peers_up(300);
    h.commit(310, published(1, MYID));
    h.commit(320, published(1, PEER));
    let old = h.id(6379);
    h.up(old, 400);
    h.pong(old, 400);
    h.info(old, 410, "role:master\r\n");
    let demote = Action::Reconfigure {
        id: old,
        replicaof: Some(("127.0.0.1".into(), 6380)),
    };
    let mut before = Vec::new();
    for t in (500..300 + SWITCH_PUBLISH_WAIT_MS).step_by(100) {
        h.master_info(t, 3000);
        before.extend(h.pong(old, t));
        before.extend(h.s.handle(t, Input::Tick));
    }
    assert!(!before.contains(&demote));
    let a = h.s.handle(300 + SWITCH_PUBLISH_WAIT_MS, Input::Tick);
    assert!(a.contains(&demote));
}

/// SENTINEL SET on another daemon reaches this one through the log (no
/// `+set` here: the daemon that took the command published it), a local SET
/// not yet committed is not undone by an older committed value, and the
/// script paths stay local.
#[test]
fn set_options_are_replicated_through_the_group() {
    let mut st = state(&[6380]);
    st.globals.deny_scripts_reconfig = false;
    let mut h = H::new(st, true);
    let set = |name: &str, option: &str, value: &str| Command::Set {
        name: name.into(),
        option: option.into(),
        value: value.into(),
    };
    let a = h.commit(100, set("mymaster", "down-after-milliseconds", "4321"));
    assert!(events(&a).is_empty(), "{a:?}");
    assert!(a.contains(&Action::Flush));
    let m = &h.s.masters["mymaster"];
    assert_eq!(m.inst.down_after, 4321);
    assert!(m.replicas.values().all(|r| r.down_after == 4321));
    h.commit(110, set("mymaster", "quorum", "3"));
    h.commit(120, set("mymaster", "auth-pass", "s3cret"));
    h.commit(130, set("mymaster", "rename-command config", "xconfig"));
    let m = &h.s.masters["mymaster"];
    assert_eq!(m.quorum, 3);
    assert_eq!(m.auth_pass.as_deref(), Some("s3cret"));
    assert_eq!(
        m.renames,
        vec![("config".to_string(), "xconfig".to_string())]
    );

    // A local SET is applied at once and proposed; an unrelated commit in
    // between does not bring the old committed value back.
    let mut out = Vec::new();
    let args = [
        "failover-timeout",
        "7000",
        "client-reconfig-script",
        "/x.sh",
    ];
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    assert_eq!(h.s.set("mymaster", &args, &|_| true, 200, &mut out), Ok(()));
    assert_eq!(
        proposals(&out),
        vec![set("mymaster", "failover-timeout", "7000")],
        "script paths are not replicated"
    );
    h.commit(210, set("mymaster", "parallel-syncs", "2"));
    let m = &h.s.masters["mymaster"];
    assert_eq!((m.failover_timeout, m.parallel_syncs), (7000, 2));
    h.commit(220, set("mymaster", "failover-timeout", "7000"));
    assert_eq!(h.s.masters["mymaster"].failover_timeout, 7000);
    // A later committed value from elsewhere wins, and clearing works.
    h.commit(230, set("mymaster", "failover-timeout", "9000"));
    h.commit(240, set("mymaster", "auth-pass", ""));
    let m = &h.s.masters["mymaster"];
    assert_eq!(m.failover_timeout, 9000);
    assert_eq!(m.auth_pass, None);
    assert_eq!(m.client_reconfig_script.as_deref(), Some("/x.sh"));
}

/// SENTINEL SIMULATE-FAILURE: the crash comes right after `+elected-leader`
/// (before `+failover-state-select-slave`), or right after
/// `+promoted-slave`, as in Sentinel.
#[test]
fn simulated_crashes_follow_election_and_promotion() {
    let crash_index = |a: &[Action]| a.iter().position(|x| *x == Action::SimulatedCrash);
    let is_event = |x: &Action, k: EventKind| matches!(x, Action::Emit(e) if e.kind == k);

    let offsets = [(6380, 1000)];
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &offsets);
    h.s.simulate_failure(&["crash-after-election".to_string()])
        .expect("flag");
    h.master_dies(&offsets);
    h.commit(6600, opinion(MYID, true));
    h.commit(6610, opinion(PEER, true));
    let a = h.commit(6620, start(1, MYID, false, false));
    let i = crash_index(&a).expect("crash after the election");
    assert!(is_event(&a[i - 1], EventKind::ElectedLeader), "{a:?}");
    assert!(a[i + 1..]
        .iter()
        .any(|x| is_event(x, EventKind::FailoverStateSelectSlave)));

    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &offsets);
    h.s.simulate_failure(&["CRASH-AFTER-PROMOTION".to_string()])
        .expect("flag");
    h.master_dies(&offsets);
    h.commit(6600, opinion(MYID, true));
    h.commit(6610, opinion(PEER, true));
    let a = h.commit(6620, start(1, MYID, false, false));
    assert_eq!(crash_index(&a), None);
    h.replica_info(6380, 6630, 1000, 100);
    let a = h.commit(6650, phase(1, Phase::SendSlaveofNoone, Some(6380)));
    assert_eq!(crash_index(&a), None);
    let r = h.id(6380);
    let a = h.info(r, 6760, "role:master\r\n");
    let i = crash_index(&a).expect("crash after the promotion");
    assert!(is_event(&a[i - 1], EventKind::PromotedSlave), "{a:?}");
}

/// A hung master (SIGSTOP): the group's quorum says ODOWN while the
/// leader's own SDOWN is still a ping period away. The leader starts as soon
/// as its PING has been pending a while and it heard nothing for more than
/// down-after; a master that answers it is not failed over.
#[test]
fn leader_with_a_pending_ping_starts_on_the_groups_odown() {
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    let mid = h.id(6379);
    // The leader's PING goes out and is never answered.
    let a = h.s.handle(1200, Input::Tick);
    assert!(a.contains(&Action::SendPing { id: mid }));
    let a = h.commit(5000, opinion(PEER, true));
    assert!(proposals(&a).is_empty());
    let a = h.commit(5050, opinion(PEER2, true));
    assert!(events(&a).is_empty(), "no +odown without its own SDOWN");
    assert!(proposals(&a).is_empty(), "heard from it 4950 ms ago");
    assert!(!h.s.masters["mymaster"].inst.s_down);
    let a = h.s.handle(5150, Input::Tick);
    assert_eq!(proposals(&a), vec![start(1, MYID, false, false)]);
    // Selection asks the replica only: the hung master's INFO would never
    // come, and waiting SELECT_INFO_WAIT_MS for it delayed every SIGSTOP
    // failover. The replica's answer decides at once.
    // The hung master accepts a new connection (the kernel does); the
    // INFO it had answered just before it hung is fresh, so none is in
    // flight.
    h.up(mid, 5155);
    let m = &mut h.s.masters.get_mut("mymaster").unwrap().inst;
    m.link.info_inflight = false;
    m.info_refresh = Some(5100);
    let r = h.id(6380);
    h.up(r, 5155);
    h.pong(r, 5155);
    let a = h.commit(5160, start(1, MYID, false, false));
    assert!(sends_info(&a, r));
    assert!(
        !sends_info(&a, mid),
        "no INFO to a master with a PING pending"
    );
    // (Two INFO in flight to it: the one of its reconnection, and the ask.)
    h.replica_info(6380, 5165, 1000, 100);
    let a = h.replica_info(6380, 5170, 1000, 100);
    assert_eq!(
        proposals(&a),
        vec![phase(1, Phase::SendSlaveofNoone, Some(6380))]
    );

    // The same with a master that answers the leader: no start.
    let mut h = H::new(state(&[6380]), true);
    h.healthy(100, &[(6380, 1000)]);
    let mid = h.id(6379);
    h.s.handle(1200, Input::Tick);
    h.commit(5000, opinion(PEER, true));
    h.commit(5050, opinion(PEER2, true));
    h.pong(mid, 5100);
    for t in [5150, 5300, 6000, 7000] {
        assert!(proposals(&h.s.handle(t, Input::Tick))
            .iter()
            .all(|c| !matches!(c, Command::FailoverStart { .. })));
    }
}

/// Valkey's `SENTINEL FAILOVER <master> COORDINATED`: a coordinated
/// switchover even on a master set `coordinated-failover no`.
#[test]
fn the_coordinated_argument_overrides_a_plain_master() {
    let mut h = H::new(state(&[6380, 6381]), true);
    h.healthy(100, &[(6380, 1000), (6381, 900)]);
    let mut out = Vec::new();
    let no = ["coordinated-failover".to_string(), "no".to_string()];
    assert_eq!(h.s.set("mymaster", &no, &|_| true, 150, &mut out), Ok(()));
    h.commit(160, proposals(&out)[0].clone());
    let mut out = Vec::new();
    assert_eq!(h.s.failover("mymaster", true, 200, &mut out), Ok(()));
    assert_eq!(proposals(&out), vec![start(1, MYID, true, true)]);
}

/// `fenced-nodes` committed: a fenced replica is never selected; a fenced
/// master makes the settled Raft leader ask a coordinated switchover (with
/// `+fenced-master`), once per failover-timeout; clearing it lifts it.
#[test]
fn fenced_nodes_are_never_promoted_and_a_fenced_master_is_switched_away() {
    let fence = |v: &str| Command::Set {
        name: "mymaster".into(),
        option: "fenced-nodes".into(),
        value: v.into(),
    };
    let mut h = H::new(state(&[6380, 6381]), true);
    h.healthy(100, &[(6380, 1000), (6381, 900)]);
    assert_eq!(
        h.s.select_slave("mymaster", 200).as_deref(),
        Some("127.0.0.1:6380")
    );
    h.commit(200, fence("127.0.0.1:6380"));
    assert!(h.s.is_fenced("mymaster", "127.0.0.1", 6380));
    assert_eq!(
        h.s.select_slave("mymaster", 300).as_deref(),
        Some("127.0.0.1:6381")
    );
    // The master fenced: a coordinated manual failover is asked and then
    // proposed, not again before failover-timeout.
    let mut a = h.commit(1500, fence("127.0.0.1:6380, 127.0.0.1:6379"));
    assert!(
        events(&a).contains(&ev(EventKind::FencedMaster, M)),
        "{:?}",
        events(&a)
    );
    a.extend(h.s.handle(1600, Input::Tick));
    assert!(
        proposals(&a).iter().any(|c| matches!(
            c,
            Command::FailoverStart {
                manual: true,
                coordinated: true,
                ..
            }
        )),
        "{:?}",
        proposals(&a)
    );
    assert!(!events(&h.s.handle(2000, Input::Tick)).contains(&ev(EventKind::FencedMaster, M)));
    // Cleared: nothing fenced.
    h.commit(2100, fence(""));
    assert!(!h.s.is_fenced("mymaster", "127.0.0.1", 6380));
    assert_eq!(
        h.s.select_slave("mymaster", 2200).as_deref(),
        Some("127.0.0.1:6380")
    );
    // A bad value is refused by SENTINEL SET with Sentinel's message.
    let r = h.s.set(
        "mymaster",
        &["fenced-nodes".to_string(), "nohostport".to_string()],
        &|_| true,
        2300,
        &mut Vec::new(),
    );
    assert_eq!(
        r,
        Err(CmdError(
            "ERR Invalid argument 'nohostport' for SENTINEL SET 'fenced-nodes'".into()
        ))
    );
}

/// A PING reply about a master with nothing under way does not step its
/// engine (the tick does, every 100 ms); one about a master that is down,
/// or whose failover the group committed, does.
#[test]
fn replies_about_a_quiet_master_wait_for_the_tick() {
    let mut h = H::new(state(&[6380]), false);
    h.healthy(100, &[(6380, 1000)]);
    assert!(h.s.quiet(0));
    h.master_dies(&[(6380, 1000)]);
    assert!(h.s.masters["mymaster"].inst.s_down);
    assert!(!h.s.quiet(0));

    let mut h = H::new(state(&[6380]), false);
    h.healthy(100, &[(6380, 1000)]);
    h.commit(200, start(1, PEER, true, false));
    assert!(!h.s.quiet(0), "a committed failover is under way");
}
