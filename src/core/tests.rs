//! Unit tests of the core's timing rules, event payloads and command replies,
//! all with explicit `Millis` (no clock, no I/O). Expected strings are what a
//! real redis-sentinel 7.0.15 sends.

use super::commands::CmdError;
use super::event::EventKind;
use super::sentinel::Sentinel;
use super::types::*;
use crate::core::persisted::{MasterState, PersistedState};

const MYID: &str = "55612eaa002986434ec916ab8760956e7119a840";
const PEER: &str = "2864fe5b5ffed532dfe28f2e9b67801fcaf7b633";
const PEER2: &str = "819df12dcbb638ac6db263571690705072dd65c9";

fn state(down_after: u64, quorum: u32) -> PersistedState {
    let mut m = MasterState::new("mymaster", "127.0.0.1", 6379, quorum);
    m.down_after_ms = down_after;
    PersistedState {
        myid: Some(MYID.into()),
        masters: vec![m],
        ..Default::default()
    }
}

fn core(st: PersistedState) -> Sentinel {
    Sentinel::new(st, CoreOptions::default(), 0).0
}

fn events(actions: &[Action]) -> Vec<(EventKind, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some((e.kind, e.message.clone())),
            _ => None,
        })
        .collect()
}

fn has_event(actions: &[Action], kind: EventKind) -> bool {
    events(actions).iter().any(|(k, _)| *k == kind)
}

/// The `+odown` event of mymaster, with `#quorum <votes>/<quorum>`.
fn odown(quorum: &str) -> (EventKind, String) {
    let msg = format!("master mymaster 127.0.0.1 6379 #quorum {quorum}");
    (EventKind::Odown, msg)
}

fn master_id(s: &Sentinel) -> InstanceId {
    s.masters["mymaster"].inst.id
}

/// A core monitoring `mymaster` with one known replica (127.0.0.1:6380),
/// and that replica's id.
fn with_replica(down_after: u64, quorum: u32) -> (Sentinel, InstanceId) {
    let mut st = state(down_after, quorum);
    st.masters[0]
        .known_replicas
        .push(("127.0.0.1".into(), 6380));
    let s = core(st);
    let rid = s.masters["mymaster"].replicas["127.0.0.1:6380"].id;
    (s, rid)
}

fn links_up(s: &mut Sentinel, id: InstanceId, now: Millis) {
    s.handle(
        now,
        Input::LinkUp {
            id,
            link: LinkKind::Command,
        },
    );
    s.handle(
        now,
        Input::LinkUp {
            id,
            link: LinkKind::PubSub,
        },
    );
}

fn pong(s: &mut Sentinel, id: InstanceId, now: Millis) -> Vec<Action> {
    s.handle(
        now,
        Input::PingReply {
            id,
            reply: PingReply::Valid { pong: true },
        },
    )
}

fn info(s: &mut Sentinel, id: InstanceId, now: Millis, text: &str) -> Vec<Action> {
    s.handle(
        now,
        Input::InfoReply {
            id,
            text: text.to_string(),
        },
    )
}

/// A hello as it comes on the named master's channel (the link that may
/// teach new peers).
fn hello(s: &mut Sentinel, now: Millis, payload: &str) -> Vec<Action> {
    let master = payload.split(',').nth(4).unwrap_or_default();
    let via = s.masters.get(master).map(|m| m.inst.id);
    s.handle(
        now,
        Input::Hello {
            via,
            payload: payload.to_string(),
        },
    )
}

/// A hello PUBLISHed to this daemon by any client.
fn published(s: &mut Sentinel, now: Millis, payload: &str) -> Vec<Action> {
    s.handle(
        now,
        Input::Hello {
            via: None,
            payload: payload.to_string(),
        },
    )
}

fn peer_hello(runid: &str, port: u16, epoch: u64, cfg: u64, mport: u16) -> String {
    format!("127.0.0.1,{port},{runid},{epoch},mymaster,127.0.0.1,{mport},{cfg}")
}

#[test]
fn start_generates_myid_flushes_then_monitors() {
    let mut st = state(30_000, 2);
    st.myid = None;
    let (s, actions) = Sentinel::new(st.clone(), CoreOptions::default(), 0);
    assert_eq!(s.myid().len(), 40);
    assert!(s.myid().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(actions[0], Action::Flush);
    assert_eq!(
        events(&actions),
        vec![(
            EventKind::Monitor,
            "master mymaster 127.0.0.1 6379 quorum 2".to_string()
        )]
    );
    // Same seed, same id (the simulator relies on it).
    let (s2, _) = Sentinel::new(st, CoreOptions::default(), 0);
    assert_eq!(s.myid(), s2.myid());
    let (s3, actions) = Sentinel::new(state(30_000, 2), CoreOptions::default(), 0);
    assert_eq!(s3.myid(), MYID);
    assert!(!actions.contains(&Action::Flush));
    assert_eq!(s3.persisted().myid.as_deref(), Some(MYID));
}

#[test]
fn connect_is_throttled_and_periodic_commands_follow_link_up() {
    let mut s = core(state(30_000, 2));
    let id = master_id(&s);
    let a = s.handle(0, Input::Tick);
    assert!(
        matches!(&a[0], Action::Connect(spec) if spec.id == id && spec.port == 6379
        && spec.client_name == format!("sentinel-{}", &MYID[..8]))
    );
    // A master is retried on every tick (Sentinel: once a ping-period; the
    // registry starts no attempt while one is still connecting); replicas
    // and peers once a ping-period.
    assert!(!s
        .handle(50, Input::Tick)
        .iter()
        .any(|a| matches!(a, Action::Connect(_))));
    assert!(s
        .handle(100, Input::Tick)
        .iter()
        .any(|a| matches!(a, Action::Connect(_))));
    assert!(s
        .handle(1000, Input::Tick)
        .iter()
        .any(|a| matches!(a, Action::Connect(_))));
    let a = s.handle(
        1100,
        Input::LinkUp {
            id,
            link: LinkKind::Command,
        },
    );
    // A master's INFO goes with the PING, not at the next tick.
    assert_eq!(a, vec![Action::SendPing { id }, Action::SendInfo { id }]);
    s.handle(
        1100,
        Input::LinkUp {
            id,
            link: LinkKind::PubSub,
        },
    );
    // INFO is not repeated while in flight, and is due again after 10 s.
    assert!(!s
        .handle(1200, Input::Tick)
        .contains(&Action::SendInfo { id }));
    assert!(!s
        .handle(1300, Input::Tick)
        .contains(&Action::SendInfo { id }));
    info(&mut s, id, 1300, "role:master\r\n");
    let hello_sent = |a: &[Action]| a.iter().any(|a| matches!(a, Action::SendHello { .. }));
    // Hello after the publish period (first one 2 s after creation).
    assert!(!hello_sent(&s.handle(2000, Input::Tick)));
    let a = s.handle(2001, Input::Tick);
    let hello = a.iter().find_map(|a| match a {
        Action::SendHello { id: i, hello } if *i == id => Some(hello.clone()),
        _ => None,
    });
    let hello = hello.expect("hello sent");
    assert_eq!(
        hello.payload("127.0.0.1"),
        format!("127.0.0.1,26379,{MYID},0,mymaster,127.0.0.1,6379,0")
    );
    // Not re-sent while unanswered; a failed PUBLISH is retried next tick.
    assert!(!hello_sent(&s.handle(2100, Input::Tick)));
    s.handle(2150, Input::PublishReply { id, ok: false });
    assert!(hello_sent(&s.handle(2200, Input::Tick)));
    s.handle(2250, Input::PublishReply { id, ok: true });
    assert!(!hello_sent(&s.handle(4250, Input::Tick)));
    assert!(hello_sent(&s.handle(4251, Input::Tick)));
    assert!(!s
        .handle(11_300, Input::Tick)
        .contains(&Action::SendInfo { id }));
    assert!(s
        .handle(11_301, Input::Tick)
        .contains(&Action::SendInfo { id }));
    // The command link drops and comes back: the INFO is asked with the
    // PING, and no hello is sent before it is read (the node may have restarted
    // empty and be paused by another daemon: a PUBLISH would block the
    // link).
    s.handle(4300, Input::PublishReply { id, ok: true });
    info(&mut s, id, 11_400, "role:master\r\n");
    s.handle(
        11_500,
        Input::LinkDown {
            id,
            link: LinkKind::Command,
        },
    );
    let a = s.handle(
        11_600,
        Input::LinkUp {
            id,
            link: LinkKind::Command,
        },
    );
    assert!(a.contains(&Action::SendInfo { id }), "{a:?}");
    let a = s.handle(11_700, Input::Tick);
    assert!(!a.contains(&Action::SendInfo { id }), "{a:?}");
    assert!(!hello_sent(&a), "{a:?}");
    assert!(!hello_sent(&s.handle(11_800, Input::Tick)));
    info(&mut s, id, 11_850, "role:master\r\n");
    assert!(hello_sent(&s.handle(11_900, Input::Tick)));
}

#[test]
fn sdown_after_down_after_and_not_before() {
    let mut s = core(state(5000, 2));
    let a = s.handle(5000, Input::Tick);
    assert!(!has_event(&a, EventKind::Sdown));
    let a = s.handle(5001, Input::Tick);
    assert_eq!(
        events(&a),
        vec![(
            EventKind::Sdown,
            "master mymaster 127.0.0.1 6379".to_string()
        )]
    );
    assert_eq!(
        s.masters_desc(5001)[0][4],
        ("flags", "s_down,master,disconnected".to_string())
    );
}

#[test]
fn error_replies_do_not_count_as_available() {
    let mut s = core(state(5000, 2));
    let id = master_id(&s);
    links_up(&mut s, id, 0);
    pong(&mut s, id, 100);
    let mut t = 200;
    let mut sdown_at = None;
    while t <= 8000 {
        let a = s.handle(t, Input::Tick);
        if a.contains(&Action::SendPing { id }) {
            s.handle(
                t + 10,
                Input::PingReply {
                    id,
                    reply: PingReply::Other { busy: false },
                },
            );
        }
        if has_event(&a, EventKind::Sdown) {
            sdown_at = Some(t);
            break;
        }
        t += 100;
    }
    // First unanswered PING went out at 1200 (P = 1000 after the PONG at 100).
    assert_eq!(sdown_at, Some(6300));
    // -BUSY while SDOWN: SCRIPT KILL exactly once.
    let busy = Input::PingReply {
        id,
        reply: PingReply::Other { busy: true },
    };
    assert_eq!(
        s.handle(6400, busy.clone()),
        vec![Action::ScriptKill { id }]
    );
    assert!(s.handle(6500, busy).is_empty());
    pong(&mut s, id, 6600);
    let a = s.handle(6700, Input::Tick);
    assert!(has_event(&a, EventKind::SdownCleared));
    assert_eq!(s.masters_desc(6700)[0][4].1, "master");
}

#[test]
fn master_reporting_slave_goes_sdown_after_down_after_plus_two_info_periods() {
    let mut s = core(state(3000, 2));
    s.debug_set(&["info-period".into(), "1000".into()]).unwrap();
    let id = master_id(&s);
    links_up(&mut s, id, 0);
    pong(&mut s, id, 0);
    let a = info(
        &mut s,
        id,
        1000,
        "role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6380\r\n",
    );
    assert_eq!(
        events(&a),
        vec![(
            EventKind::RoleChangeMismatch,
            "master mymaster 127.0.0.1 6379 new reported role is slave".to_string()
        )]
    );
    for t in (1100..=6000).step_by(100) {
        pong(&mut s, id, t);
        assert!(
            !has_event(&s.handle(t, Input::Tick), EventKind::Sdown),
            "at {t}"
        );
    }
    pong(&mut s, id, 6001);
    assert!(has_event(&s.handle(6001, Input::Tick), EventKind::Sdown));
    // Back to master: +role-change and -sdown.
    let a = info(&mut s, id, 6100, "role:master\r\n");
    assert_eq!(events(&a)[0].0, EventKind::RoleChangeMatch);
    assert!(has_event(
        &s.handle(6100, Input::Tick),
        EventKind::SdownCleared
    ));
}

#[test]
fn reboot_rule_uses_master_reboot_down_after_period() {
    let mut st = state(30_000, 2);
    st.masters[0].master_reboot_down_after_period_ms = 2000;
    let mut s = core(st);
    let id = master_id(&s);
    links_up(&mut s, id, 0);
    pong(&mut s, id, 0);
    let a = "a".repeat(40);
    let b = "b".repeat(40);
    assert!(events(&info(
        &mut s,
        id,
        100,
        &format!("run_id:{a}\r\nrole:master\r\n")
    ))
    .is_empty());
    let ev = events(&info(
        &mut s,
        id,
        1000,
        &format!("run_id:{b}\r\nrole:master\r\n"),
    ));
    assert_eq!(
        ev,
        vec![(
            EventKind::Reboot,
            "master mymaster 127.0.0.1 6379".to_string()
        )]
    );
    let loading = Input::PingReply {
        id,
        reply: PingReply::Valid { pong: false },
    };
    s.handle(2900, loading.clone());
    assert!(!has_event(&s.handle(3000, Input::Tick), EventKind::Sdown));
    s.handle(3001, loading);
    assert!(has_event(&s.handle(3001, Input::Tick), EventKind::Sdown));
    // -LOADING did not clear the flag; +PONG does.
    pong(&mut s, id, 3100);
    assert!(has_event(
        &s.handle(3100, Input::Tick),
        EventKind::SdownCleared
    ));
    // Without the period set, a reboot is only an event.
    let mut s = core(state(30_000, 2));
    let id = master_id(&s);
    info(&mut s, id, 100, &format!("run_id:{a}\r\n"));
    info(&mut s, id, 200, &format!("run_id:{b}\r\n"));
    assert!(!has_event(&s.handle(20_000, Input::Tick), EventKind::Sdown));
}

fn with_peer(down_after: u64, quorum: u32) -> (Sentinel, InstanceId, InstanceId) {
    let mut st = state(down_after, quorum);
    st.masters[0]
        .known_sentinels
        .push(("127.0.0.1".into(), 26380, PEER.into()));
    let s = core(st);
    let mid = master_id(&s);
    let pid = s.masters["mymaster"].sentinels[PEER].id;
    (s, mid, pid)
}

/// The peer's answer to is-master-down-by-addr: `down` 1 or 0, no vote.
fn peer_says(s: &mut Sentinel, pid: InstanceId, now: Millis, down: i64) {
    s.handle(
        now,
        Input::MasterDownReply {
            peer: pid,
            reply: Some((down, "*".into(), 0)),
        },
    );
}

#[test]
fn odown_counts_peer_opinions_against_quorum() {
    let (mut s, _mid, pid) = with_peer(1000, 2);
    s.handle(
        0,
        Input::LinkUp {
            id: pid,
            link: LinkKind::Command,
        },
    );
    pong(&mut s, pid, 0);
    let a = s.handle(1001, Input::Tick);
    assert!(has_event(&a, EventKind::Sdown));
    assert!(!has_event(&a, EventKind::Odown));
    let ask = a
        .iter()
        .find(|a| matches!(a, Action::AskMasterDown { .. }))
        .cloned();
    assert_eq!(
        ask,
        Some(Action::AskMasterDown {
            peer: pid,
            master_ip: "127.0.0.1".into(),
            master_port: 6379,
            epoch: 0,
            runid: "*".into(),
        })
    );
    peer_says(&mut s, pid, 1050, 1);
    let a = s.handle(1100, Input::Tick);
    assert_eq!(events(&a), vec![odown("2/2")]);
    assert_eq!(
        s.info_sentinel_section(1100, 0, 0).lines().last(),
        Some("master0:name=mymaster,status=odown,address=127.0.0.1:6379,slaves=0,sentinels=2")
    );
    // Not asked again before ask-period after the last reply.
    assert!(!s
        .handle(1200, Input::Tick)
        .iter()
        .any(|a| matches!(a, Action::AskMasterDown { .. })));
    peer_says(&mut s, pid, 2100, 0);
    pong(&mut s, pid, 2150);
    let a = s.handle(2200, Input::Tick);
    assert_eq!(
        events(&a),
        vec![(
            EventKind::OdownCleared,
            "master mymaster 127.0.0.1 6379".to_string()
        )]
    );
    // Quorum 1: local SDOWN suffices.
    let mut s = core(state(1000, 1));
    let a = s.handle(1001, Input::Tick);
    assert_eq!(events(&a)[1], odown("1/1"));
}

#[test]
fn stale_peer_opinion_is_forgotten() {
    let (mut s, _mid, pid) = with_peer(1000, 2);
    s.handle(
        500,
        Input::MasterDownReply {
            peer: pid,
            reply: Some((1, PEER2.into(), 3)),
        },
    );
    let d = s.sentinels_desc("mymaster", 600).unwrap();
    assert_eq!(d[0][4].1, "sentinel,disconnected,master_down");
    assert_eq!(d[0][12], ("voted-leader", PEER2.to_string()));
    assert_eq!(d[0][13], ("voted-leader-epoch", "3".to_string()));
    s.handle(5501, Input::Tick);
    let d = s.sentinels_desc("mymaster", 5501).unwrap();
    // SDOWN by now (never answered), hence one more field before these.
    assert_eq!(d[0][4].1, "s_down,sentinel,disconnected");
    assert_eq!(d[0][13], ("voted-leader", "?".to_string()));
}

#[test]
fn hello_adds_sentinel_and_adopts_epoch() {
    let mut s = core(state(30_000, 2));
    let a = hello(&mut s, 100, &peer_hello(PEER, 26380, 5, 0, 6379));
    assert_eq!(
        events(&a),
        vec![
            (
                EventKind::Sentinel,
                format!("sentinel {PEER} 127.0.0.1 26380 @ mymaster 127.0.0.1 6379")
            ),
            (EventKind::NewEpoch, "5".to_string()),
        ]
    );
    assert_eq!(a.iter().filter(|a| **a == Action::Flush).count(), 2);
    assert_eq!(s.current_epoch(), 5);
    assert_eq!(
        s.persisted().masters[0].known_sentinels,
        vec![("127.0.0.1".to_string(), 26380, PEER.to_string())]
    );
    // The same hello again changes nothing.
    assert!(hello(&mut s, 2100, &peer_hello(PEER, 26380, 5, 0, 6379)).is_empty());
    assert_eq!(s.hello_rejected(), 0);
    let d = s.sentinels_desc("mymaster", 2100).unwrap();
    assert_eq!(d[0][11], ("last-hello-message", "0".to_string()));
}

#[test]
fn hostile_hellos_are_ignored_and_counted() {
    let mut s = core(state(30_000, 2));
    let bad = [
        "".to_string(),
        "a,b,c".to_string(),
        format!("127.0.0.1,26380,{PEER},0,mymaster,127.0.0.1,6379,0,extra"),
        format!("127.0.0.1,99999,{PEER},0,mymaster,127.0.0.1,6379,0"),
        format!("127.0.0.1,26380,{PEER},NaN,mymaster,127.0.0.1,6379,0"),
        format!("127.0.0.1,26380,{PEER},0,mymaster,127.0.0.1,6379,-3"),
        format!("127.0.0.1,26380,{PEER},0,unknown,127.0.0.1,6379,0"),
        format!("127.0.0.1,26380,{MYID},0,mymaster,127.0.0.1,6379,0"),
        format!(
            "{},26380,{PEER},0,mymaster,127.0.0.1,6379,0",
            "x".repeat(100_000)
        ),
        format!("not-an-ip,26380,{PEER},0,mymaster,127.0.0.1,6379,0"),
    ];
    for (n, p) in bad.iter().enumerate() {
        assert!(published(&mut s, 100, p).is_empty(), "case {n}");
        assert_eq!(s.hello_rejected(), n as u64 + 1);
    }
    assert_eq!(s.current_epoch(), 0);
    assert!(s.masters["mymaster"].sentinels.is_empty());
    // Our own hellos echoed on a pubsub link are expected, not counted.
    let mid = master_id(&s);
    let own = format!("127.0.0.1,26379,{MYID},0,mymaster,127.0.0.1,6379,0");
    s.handle(
        200,
        Input::Hello {
            via: Some(mid),
            payload: own,
        },
    );
    assert_eq!(s.hello_rejected(), bad.len() as u64);
}

/// A hello PUBLISHed to the daemon (anyone reaching its port can) only
/// refreshes a peer known at that address; new peers and addresses come
/// from the monitored instances' channels, and a master lists at most
/// MAX_SENTINELS_PER_MASTER peers.
#[test]
fn published_hellos_teach_no_new_peer_and_peers_are_capped() {
    let mut s = core(state(30_000, 2));
    assert!(published(&mut s, 100, &peer_hello(PEER, 26380, 0, 0, 6379)).is_empty());
    assert!(s.masters["mymaster"].sentinels.is_empty());
    assert_eq!(s.hello_rejected(), 1);
    assert!(!hello(&mut s, 200, &peer_hello(PEER, 26380, 0, 0, 6379)).is_empty());
    assert_eq!(s.masters["mymaster"].sentinels.len(), 1);
    // A known peer at its address: refreshed (epochs taken) through PUBLISH.
    published(&mut s, 300, &peer_hello(PEER, 26380, 4, 0, 6379));
    assert_eq!(s.current_epoch(), 4);
    assert_eq!(s.hello_rejected(), 1);
    // The same runid at another address, through PUBLISH: refused.
    assert!(published(&mut s, 400, &peer_hello(PEER, 26399, 4, 0, 6379)).is_empty());
    assert_eq!(s.hello_rejected(), 2);
    assert_eq!(s.masters["mymaster"].sentinels[PEER].port, 26380);
    // Invented peers on the master's channel: at most the cap.
    let cap = super::discovery::MAX_SENTINELS_PER_MASTER;
    for i in 0..cap + 10 {
        let runid = format!("{:040x}", i + 1);
        hello(
            &mut s,
            500,
            &peer_hello(&runid, 30000 + i as u16, 4, 0, 6379),
        );
    }
    assert_eq!(s.masters["mymaster"].sentinels.len(), cap);
    assert_eq!(s.hello_rejected(), 2 + 11);
}

#[test]
fn sentinel_address_switch_and_invalid_addr() {
    let mut s = core(state(30_000, 2));
    hello(&mut s, 100, &peer_hello(PEER, 26380, 0, 0, 6379));
    // Same run id, new port.
    let a = hello(&mut s, 200, &peer_hello(PEER, 26381, 0, 0, 6379));
    assert_eq!(
        events(&a),
        vec![(
            EventKind::SentinelAddressSwitch,
            format!("master mymaster 127.0.0.1 6379 ip 127.0.0.1 port 26381 for {PEER}")
        )]
    );
    assert!(a.contains(&Action::Flush));
    // New run id at an address already in use.
    let a = hello(&mut s, 300, &peer_hello(PEER2, 26381, 0, 0, 6379));
    assert_eq!(
        events(&a),
        vec![
            (
                EventKind::SentinelInvalidAddr,
                format!("sentinel {PEER} 127.0.0.1 26381 @ mymaster 127.0.0.1 6379")
            ),
            (
                EventKind::Sentinel,
                format!("sentinel {PEER2} 127.0.0.1 26381 @ mymaster 127.0.0.1 6379")
            ),
        ]
    );
    let keys: Vec<&String> = s.masters["mymaster"].sentinels.keys().collect();
    assert_eq!(keys, vec![PEER2]);
}

#[test]
fn replicas_are_discovered_from_both_info_formats() {
    let mut s = core(state(30_000, 2));
    let id = master_id(&s);
    let a = info(
        &mut s,
        id,
        100,
        "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.1,port=6380,state=online,offset=100,lag=0\r\nslave1:127.0.0.2,6381,online\r\n",
    );
    assert_eq!(
        events(&a),
        vec![
            (
                EventKind::Slave,
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379".to_string()
            ),
            (
                EventKind::Slave,
                "slave 127.0.0.2:6381 127.0.0.2 6381 @ mymaster 127.0.0.1 6379".to_string()
            ),
        ]
    );
    assert_eq!(a.last(), Some(&Action::Flush));
    // Known ones are not re-announced; hostile lines are dropped.
    let a = info(
        &mut s,
        id,
        200,
        "role:master\r\nslave0:ip=127.0.0.1,port=6380,state=online\r\nslave1:ip=evil,port=1\r\nslave2:ip=127.0.0.3,port=70000\r\n",
    );
    assert!(a.is_empty());
    assert_eq!(
        s.persisted().masters[0].known_replicas,
        vec![
            ("127.0.0.1".to_string(), 6380),
            ("127.0.0.2".to_string(), 6381)
        ]
    );
    assert_eq!(
        s.info_sentinel_section(200, 0, 0).lines().last(),
        Some("master0:name=mymaster,status=ok,address=127.0.0.1:6379,slaves=2,sentinels=1")
    );
}

#[test]
fn replica_info_fields_reboot_and_role_change() {
    let (mut s, rid) = with_replica(30_000, 2);
    let a = "a".repeat(40);
    let t = format!(
        "run_id:{a}\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:up\r\nslave_priority:50\r\nslave_repl_offset:777\r\nreplica_announced:1\r\n"
    );
    assert!(events(&info(&mut s, rid, 100, &t)).is_empty());
    let d = &s.replicas_desc("mymaster", 100).unwrap()[0];
    let get = |k: &str| d.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    assert_eq!(get("runid").as_deref(), Some(a.as_str()));
    assert_eq!(get("master-link-status").as_deref(), Some("ok"));
    assert_eq!(get("master-host").as_deref(), Some("127.0.0.1"));
    assert_eq!(get("master-port").as_deref(), Some("6379"));
    assert_eq!(get("slave-priority").as_deref(), Some("50"));
    assert_eq!(get("slave-repl-offset").as_deref(), Some("777"));
    let b = "b".repeat(40);
    let ev = events(&info(
        &mut s,
        rid,
        200,
        &format!("run_id:{b}\r\nrole:master\r\n"),
    ));
    assert_eq!(
        ev,
        vec![
            (
                EventKind::Reboot,
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379".to_string()
            ),
            (
                EventKind::RoleChangeMismatch,
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379 new reported role is master"
                    .to_string()
            ),
        ]
    );
    // Unannounced replicas are hidden from REPLICAS but counted.
    info(&mut s, rid, 300, "role:slave\r\nreplica_announced:0\r\n");
    assert!(s.replicas_desc("mymaster", 300).unwrap().is_empty());
    assert_eq!(s.masters_desc(300)[0][15], ("num-slaves", "1".to_string()));
}

#[test]
fn newer_config_in_hello_switches_master() {
    let mut st = state(30_000, 2);
    st.masters[0]
        .known_replicas
        .push(("127.0.0.1".into(), 6380));
    st.masters[0]
        .known_replicas
        .push(("127.0.0.1".into(), 6381));
    let mut s = core(st);
    hello(&mut s, 100, &peer_hello(PEER, 26380, 1, 0, 6379));
    let a = hello(&mut s, 200, &peer_hello(PEER, 26380, 1, 1, 6380));
    assert_eq!(
        events(&a),
        vec![
            (
                EventKind::ConfigUpdateFrom,
                format!("sentinel {PEER} 127.0.0.1 26380 @ mymaster 127.0.0.1 6379")
            ),
            (
                EventKind::SwitchMaster,
                "mymaster 127.0.0.1 6379 127.0.0.1 6380".to_string()
            ),
            (
                EventKind::Slave,
                "slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6380".to_string()
            ),
            (
                EventKind::Slave,
                "slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6380".to_string()
            ),
        ]
    );
    assert!(a.contains(&Action::Flush));
    assert_eq!(
        s.master_addr("mymaster"),
        Some(("127.0.0.1".to_string(), 6380))
    );
    let p = s.persisted();
    assert_eq!(p.masters[0].config_epoch, 1);
    assert_eq!(p.masters[0].port, 6380);
    // Sentinels are kept across the switch.
    assert_eq!(p.masters[0].known_sentinels.len(), 1);
    // Same address with a newer epoch: adopted silently.
    let a = hello(&mut s, 300, &peer_hello(PEER, 26380, 1, 2, 6380));
    assert!(events(&a).is_empty());
    assert_eq!(s.persisted().masters[0].config_epoch, 2);
}

fn names(d: &[(&'static str, String)]) -> Vec<&'static str> {
    d.iter().map(|(k, _)| *k).collect()
}

#[test]
fn description_field_order() {
    let mut st = state(30_000, 2);
    st.masters[0]
        .known_replicas
        .push(("127.0.0.1".into(), 6380));
    st.masters[0]
        .known_sentinels
        .push(("127.0.0.1".into(), 26380, PEER.into()));
    let s = core(st);
    let m = s.master_desc("mymaster", 862).unwrap();
    assert_eq!(
        names(&m),
        vec![
            "name",
            "ip",
            "port",
            "runid",
            "flags",
            "link-pending-commands",
            "link-refcount",
            "last-ping-sent",
            "last-ok-ping-reply",
            "last-ping-reply",
            "down-after-milliseconds",
            "info-refresh",
            "role-reported",
            "role-reported-time",
            "config-epoch",
            "num-slaves",
            "num-other-sentinels",
            "quorum",
            "failover-timeout",
            "parallel-syncs",
        ]
    );
    // Element 33 of the flat RESP2 reply is num-other-sentinels' value.
    assert_eq!(m[16], ("num-other-sentinels", "1".to_string()));
    assert_eq!(m[7], ("last-ping-sent", "862".to_string()));
    assert_eq!(m[11], ("info-refresh", "0".to_string()));
    let r = &s.replicas_desc("mymaster", 0).unwrap()[0];
    assert_eq!(
        names(r),
        vec![
            "name",
            "ip",
            "port",
            "runid",
            "flags",
            "link-pending-commands",
            "link-refcount",
            "last-ping-sent",
            "last-ok-ping-reply",
            "last-ping-reply",
            "down-after-milliseconds",
            "info-refresh",
            "role-reported",
            "role-reported-time",
            "master-link-down-time",
            "master-link-status",
            "master-host",
            "master-port",
            "slave-priority",
            "slave-repl-offset",
            "replica-announced",
        ]
    );
    assert_eq!(r[0].1, "127.0.0.1:6380");
    assert_eq!(r[4].1, "slave,disconnected");
    assert_eq!(r[16].1, "?");
    let se = &s.sentinels_desc("mymaster", 0).unwrap()[0];
    assert_eq!(
        names(se),
        vec![
            "name",
            "ip",
            "port",
            "runid",
            "flags",
            "link-pending-commands",
            "link-refcount",
            "last-ping-sent",
            "last-ok-ping-reply",
            "last-ping-reply",
            "down-after-milliseconds",
            "last-hello-message",
            "voted-leader",
            "voted-leader-epoch",
        ]
    );
    assert_eq!(se[0].1, PEER);
    // Conditional fields appear only when set.
    let mut s = s;
    s.set(
        "mymaster",
        &["down-after-milliseconds".into(), "100".into()],
        &|_| true,
        0,
        &mut Vec::new(),
    )
    .unwrap();
    s.handle(101, Input::Tick);
    let m = s.master_desc("mymaster", 150).unwrap();
    assert_eq!(m[10], ("s-down-time", "49".to_string()));
    assert_eq!(m[11], ("down-after-milliseconds", "100".to_string()));
    // down-after was propagated to sentinels (SDOWN now too, hence the extra
    // s-down-time field).
    let se = &s.sentinels_desc("mymaster", 150).unwrap()[0];
    assert_eq!(se[10], ("s-down-time", "49".to_string()));
    assert_eq!(se[11], ("down-after-milliseconds", "100".to_string()));
}

fn vote(
    s: &mut Sentinel,
    epoch: &str,
    runid: &str,
) -> (
    Result<super::commands::MasterDownVote, CmdError>,
    Vec<Action>,
) {
    let mut out = Vec::new();
    let r = s.is_master_down_by_addr(1000, "127.0.0.1", "6379", epoch, runid, &mut out);
    (r, out)
}

#[test]
fn vote_rule() {
    let mut s = core(state(30_000, 2));
    let (r, out) = vote(&mut s, "5", PEER);
    assert_eq!(r, Ok((0, PEER.to_string(), 5)));
    assert_eq!(
        events(&out),
        vec![
            (EventKind::NewEpoch, "5".to_string()),
            (EventKind::VoteForLeader, format!("{PEER} 5")),
        ]
    );
    assert_eq!(out.iter().filter(|a| **a == Action::Flush).count(), 2);
    // Voting for someone else delays our own failover.
    let fst = s.masters["mymaster"].failover_start_time;
    assert!((1000..2000).contains(&fst));
    // Same epoch, other candidate: the earlier vote comes back.
    let (r, out) = vote(&mut s, "5", PEER2);
    assert_eq!(r, Ok((0, PEER.to_string(), 5)));
    assert!(out.is_empty());
    // Lower epoch: same.
    assert_eq!(vote(&mut s, "3", PEER2).0, Ok((0, PEER.to_string(), 5)));
    // `*` never votes nor bumps the epoch.
    let (r, out) = vote(&mut s, "9", "*");
    assert_eq!(r, Ok((0, "*".to_string(), 0)));
    assert!(out.is_empty());
    assert_eq!(s.current_epoch(), 5);
    // Our own run id with a higher epoch is granted and echoed, as
    // redis-sentinel does.
    let (r, _) = vote(&mut s, "50", MYID);
    assert_eq!(r, Ok((0, MYID.to_string(), 50)));
    assert_eq!(s.persisted().masters[0].leader_epoch, 50);
    // Unknown address.
    let mut out = Vec::new();
    assert_eq!(
        s.is_master_down_by_addr(0, "10.0.0.9", "6379", "99", PEER, &mut out),
        Ok((0, "*".to_string(), 0))
    );
    assert!(out.is_empty());
    // Non-integers.
    let e = Err(CmdError::not_an_integer());
    assert_eq!(
        s.is_master_down_by_addr(0, "127.0.0.1", "x", "1", "*", &mut out),
        e
    );
    assert_eq!(
        s.is_master_down_by_addr(0, "127.0.0.1", "6379", "1.5", "*", &mut out),
        e
    );
    // A negative epoch changes nothing.
    let (r, out) = vote(&mut s, "-1", PEER2);
    assert_eq!(r, Ok((0, MYID.to_string(), 50)));
    assert!(out.is_empty());
}

#[test]
fn vote_reports_down_only_when_sdown() {
    let mut s = core(state(1000, 5));
    s.handle(1001, Input::Tick);
    assert_eq!(vote(&mut s, "0", "*").0, Ok((1, "*".to_string(), 0)));
}

fn ip_only(h: &str, _resolve: bool) -> Option<String> {
    h.parse::<std::net::IpAddr>().is_ok().then(|| h.to_string())
}

#[test]
fn monitor_checks_in_order() {
    let mut s = core(state(30_000, 2));
    let mut out = Vec::new();
    let mut mon = |name: &str, ip: &str, port: &str, q: &str| {
        let args = super::commands::MonitorArgs {
            name,
            host: ip,
            port,
            quorum: q,
        };
        s.monitor(0, args, &ip_only, &mut out).map_err(|e| e.0)
    };
    assert_eq!(mon("m2", "bad", "x", "x"), Err("ERR Invalid quorum".into()));
    assert_eq!(mon("m2", "bad", "x", "2"), Err("ERR Invalid port".into()));
    assert_eq!(
        mon("m2", "bad", "1", "0"),
        Err("ERR Quorum must be 1 or greater.".into())
    );
    assert_eq!(
        mon("mymaster", "bad", "1", "1"),
        Err("ERR Invalid IP address or hostname specified".into())
    );
    // Observed on 7.0.15: port range before duplicate name.
    assert_eq!(
        mon("mymaster", "127.0.0.1", "70000", "2"),
        Err("ERR Invalid port number.".into())
    );
    assert_eq!(
        mon("m2", "127.0.0.1", "-1", "2"),
        Err("ERR Invalid port number.".into())
    );
    assert_eq!(
        mon("mymaster", "127.0.0.1", "1", "2"),
        Err("ERR Duplicate master name.".into())
    );
    assert_eq!(mon("m2", "127.0.0.1", "6390", "3"), Ok(()));
    assert_eq!(out[0], Action::Flush);
    assert_eq!(
        events(&out),
        vec![(
            EventKind::Monitor,
            "master m2 127.0.0.1 6390 quorum 3".to_string()
        )]
    );
    assert_eq!(
        s.master_names(),
        vec!["mymaster".to_string(), "m2".to_string()]
    );
    let m2 = s.master_desc("m2", 0).unwrap();
    assert_eq!(m2[10], ("down-after-milliseconds", "30000".to_string()));
    let mut out = Vec::new();
    assert_eq!(s.remove("nope", &mut out), Err(CmdError::no_such_master()));
    s.remove("mymaster", &mut out).unwrap();
    assert_eq!(
        events(&out),
        vec![(
            EventKind::Unmonitor,
            "master mymaster 127.0.0.1 6379".to_string()
        )]
    );
    assert_eq!(out.last(), Some(&Action::Flush));
    assert_eq!(s.master_names(), vec!["m2".to_string()]);
}

fn set(s: &mut Sentinel, args: &[&str]) -> (Result<(), String>, Vec<Action>) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut out = Vec::new();
    let r = s
        .set("mymaster", &args, &|p| p == "/ok", 0, &mut out)
        .map_err(|e| e.0);
    (r, out)
}

#[test]
fn sentinel_set_options_events_and_errors() {
    let mut s = core(state(30_000, 2));
    let (r, out) = set(&mut s, &["auth-pass", "x", "quorum", "3", "foo", "1"]);
    assert_eq!(
        r,
        Err("ERR Unknown option or number of arguments for SENTINEL SET 'foo'".into())
    );
    assert_eq!(
        events(&out),
        vec![
            (
                EventKind::Set,
                "master mymaster 127.0.0.1 6379 auth-pass ******".to_string()
            ),
            (
                EventKind::Set,
                "master mymaster 127.0.0.1 6379 quorum 3".to_string()
            ),
        ]
    );
    // Flushed at the end even though the last option failed.
    assert_eq!(out.last(), Some(&Action::Flush));
    assert!(out.contains(&Action::Disconnect {
        id: master_id(&s),
        link: None
    }));
    assert_eq!(s.masters["mymaster"].quorum, 3);
    let cases: &[(&[&str], &str)] = &[
        (&["quorum", "0"], "ERR Invalid argument '0' for SENTINEL SET 'quorum'"),
        (&["QUORUM", "x"], "ERR Invalid argument 'x' for SENTINEL SET 'QUORUM'"),
        (&["down-after-milliseconds", "-5"], "ERR Invalid argument '-5' for SENTINEL SET 'down-after-milliseconds'"),
        (&["failover-timeout", "0"], "ERR Invalid argument '0' for SENTINEL SET 'failover-timeout'"),
        (&["parallel-syncs", "0"], "ERR Invalid argument '0' for SENTINEL SET 'parallel-syncs'"),
        (
            &["master-reboot-down-after-period", "-1"],
            "ERR Invalid argument '-1' for SENTINEL SET 'master-reboot-down-after-period'",
        ),
        (&["rename-command", "a"], "ERR Unknown option or number of arguments for SENTINEL SET 'rename-command'"),
        (&["rename-command", "", "b"], "ERR Invalid argument '' for SENTINEL SET 'rename-command'"),
        (
            &["notification-script", "/ok"],
            "ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration",
        ),
    ];
    for (args, want) in cases {
        let (r, out) = set(&mut s, args);
        assert_eq!(r, Err(want.to_string()), "{args:?}");
        assert!(!out.contains(&Action::Flush), "{args:?}");
    }
    s.globals.deny_scripts_reconfig = false;
    assert_eq!(
        set(&mut s, &["notification-script", "/nope"]).0,
        Err("ERR Notification script seems non existing or non executable".into())
    );
    assert_eq!(
        set(&mut s, &["client-reconfig-script", "/nope"]).0,
        Err("ERR Client reconfiguration script seems non existing or non executable".into())
    );
    let (r, out) = set(
        &mut s,
        &[
            "notification-script",
            "/ok",
            "rename-command",
            "CONFIG",
            "GUESS",
        ],
    );
    assert_eq!(r, Ok(()));
    assert_eq!(
        events(&out),
        vec![
            (
                EventKind::Set,
                "master mymaster 127.0.0.1 6379 notification-script /ok".to_string()
            ),
            (
                EventKind::Set,
                "master mymaster 127.0.0.1 6379 rename-command CONFIG GUESS".to_string()
            ),
        ]
    );
    assert_eq!(s.notification_script("mymaster"), Some("/ok"));
    let p = s.persisted();
    assert_eq!(
        p.masters[0].rename_commands,
        vec![("CONFIG".to_string(), "GUESS".to_string())]
    );
    // `X X` deletes the mapping.
    set(&mut s, &["rename-command", "config", "config"])
        .0
        .unwrap();
    assert!(s.persisted().masters[0].rename_commands.is_empty());
    assert_eq!(
        s.master_desc("mymaster", 0).unwrap().last(),
        Some(&("notification-script", "/ok".to_string()))
    );
    let mut out = Vec::new();
    assert_eq!(
        s.set(
            "nope",
            &["quorum".into(), "1".into()],
            &|_| true,
            0,
            &mut out
        ),
        Err(CmdError::no_such_master())
    );
}

#[test]
fn config_set_and_get() {
    let mut s = core(state(30_000, 2));
    let mut out = Vec::new();
    let e = |s: &str| Err(CmdError(s.to_string()));
    assert_eq!(
        s.config_set("loglevel", "debug", &mut out),
        e("ERR Invalid argument 'loglevel' to SENTINEL CONFIG SET")
    );
    assert_eq!(
        s.config_set("resolve-hostnames", "maybe", &mut out),
        e("ERR Invalid value 'maybe' to SENTINEL CONFIG SET 'resolve-hostnames'")
    );
    assert_eq!(
        s.config_set("announce-port", "65536", &mut out),
        e("ERR Invalid value '65536' to SENTINEL CONFIG SET 'announce-port'")
    );
    assert!(out.is_empty());
    s.config_set("ANNOUNCE-HOSTNAMES", "YES", &mut out).unwrap();
    assert_eq!(out, vec![Action::Flush]);
    s.config_set("announce-ip", "", &mut out).unwrap();
    assert_eq!(s.globals().announce_ip.as_deref(), Some(""));
    let all = s.config_get(&|_| true);
    let keys: Vec<&str> = all.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        vec![
            "resolve-hostnames",
            "announce-hostnames",
            "announce-ip",
            "announce-port",
            "sentinel-user",
            "sentinel-pass"
        ]
    );
    assert_eq!(all[1].1, "yes");
    // Changing sentinel credentials drops the peer links after the flush.
    let (mut s, _mid, pid) = with_peer(30_000, 2);
    let mut out = Vec::new();
    s.config_set("sentinel-pass", "pw", &mut out).unwrap();
    assert_eq!(
        out,
        vec![
            Action::Flush,
            Action::Disconnect {
                id: pid,
                link: Some(LinkKind::Command)
            }
        ]
    );
}

#[test]
fn ckquorum_texts() {
    let s = core(state(30_000, 3));
    assert_eq!(
        s.ckquorum("mymaster"),
        Err(CmdError(
            "NOQUORUM 1 usable Sentinels. Not enough available Sentinels to reach the specified quorum for this master"
                .into()
        ))
    );
    let mut st = state(1000, 2);
    st.masters[0]
        .known_sentinels
        .push(("127.0.0.1".into(), 26380, PEER.into()));
    st.masters[0]
        .known_sentinels
        .push(("127.0.0.1".into(), 26381, PEER2.into()));
    let mut s = core(st);
    assert_eq!(
        s.ckquorum("mymaster"),
        Ok("OK 3 usable Sentinels. Quorum and failover authorization can be reached".into())
    );
    // Both peers SDOWN: 1 usable of 3 voters.
    s.handle(1001, Input::Tick);
    assert_eq!(
        s.ckquorum("mymaster"),
        Err(CmdError(
            "NOQUORUM 1 usable Sentinels. Not enough available Sentinels to reach the specified quorum for this master. Not enough available Sentinels to reach the majority and authorize a failover"
                .into()
        ))
    );
    assert_eq!(s.ckquorum("x"), Err(CmdError::no_such_master()));
}

#[test]
fn info_sentinel_section_text() {
    let mut s = core(state(30_000, 2));
    s.simulate_failure(&["crash-after-promotion".into()])
        .unwrap();
    assert_eq!(
        s.info_sentinel_section(0, 1, 3),
        "# Sentinel\r\nsentinel_masters:1\r\nsentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\nsentinel_running_scripts:1\r\nsentinel_scripts_queue_length:3\r\nsentinel_simulate_failure_flags:2\r\nmaster0:name=mymaster,status=ok,address=127.0.0.1:6379,slaves=0,sentinels=1\r\n"
    );
    let empty = Sentinel::new(PersistedState::default(), CoreOptions::default(), 0).0;
    assert!(!empty.info_sentinel_section(0, 0, 0).contains("master0"));
}

#[test]
fn debug_and_simulate_failure() {
    let mut s = core(state(30_000, 2));
    let d = s.debug_info();
    assert_eq!(d.len(), 13);
    assert_eq!(d[0], ("INFO-PERIOD", 10_000));
    assert_eq!(d[12], ("SCRIPT-RETRY-DELAY", 30_000));
    assert_eq!(
        s.debug_set(&["info-period".into()]),
        Err(CmdError::err(
            "Unknown option or number of arguments for SENTINEL DEBUG 'info-period'"
        ))
    );
    assert_eq!(
        s.debug_set(&[
            "ping-period".into(),
            "500".into(),
            "info-period".into(),
            "0".into()
        ]),
        Err(CmdError::err(
            "Invalid argument '0' for SENTINEL DEBUG 'info-period'"
        ))
    );
    assert_eq!(s.timing().ping_period, 500);
    assert_eq!(
        s.simulate_failure(&["crash-after-election".into(), "bogus".into()]),
        Err(CmdError::err("Unknown failure simulation specified"))
    );
    assert_eq!(s.simulate_failure_flags(), 1);
    assert_eq!(
        s.simulate_failure(&["help".into()]),
        Ok(super::commands::SimulateReply::Help)
    );
}

#[test]
fn reset_drops_replicas_and_sentinels_without_flush() {
    let mut st = state(30_000, 2);
    st.masters[0]
        .known_replicas
        .push(("127.0.0.1".into(), 6380));
    st.masters[0]
        .known_sentinels
        .push(("127.0.0.1".into(), 26380, PEER.into()));
    let mut s = core(st);
    let mut out = Vec::new();
    assert_eq!(s.reset(0, &|n| n == "other", &mut out), 0);
    assert_eq!(s.reset(0, &|n| n.starts_with("my"), &mut out), 1);
    assert_eq!(
        events(&out),
        vec![(
            EventKind::ResetMaster,
            "master mymaster 127.0.0.1 6379".to_string()
        )]
    );
    assert!(!out.contains(&Action::Flush));
    let p = s.persisted();
    assert!(p.masters[0].known_replicas.is_empty() && p.masters[0].known_sentinels.is_empty());
}

#[test]
fn failover_checks_and_replica_selection() {
    let mut st = state(30_000, 2);
    st.masters[0]
        .known_replicas
        .push(("127.0.0.1".into(), 6380));
    st.masters[0]
        .known_replicas
        .push(("127.0.0.1".into(), 6381));
    let mut s = core(st);
    assert_eq!(
        s.failover("mymaster", false, 0, &mut Vec::new()),
        Err(CmdError(
            "NOGOODSLAVE No suitable replica to promote".into()
        ))
    );
    assert_eq!(
        s.failover("x", false, 0, &mut Vec::new()),
        Err(CmdError::no_such_master())
    );
    let r1 = s.masters["mymaster"].replicas["127.0.0.1:6380"].id;
    let r2 = s.masters["mymaster"].replicas["127.0.0.1:6381"].id;
    for (id, prio, off) in [(r1, 100, 10), (r2, 100, 20)] {
        links_up(&mut s, id, 0);
        pong(&mut s, id, 100);
        info(
            &mut s,
            id,
            100,
            &format!("role:slave\r\nmaster_link_status:up\r\nslave_priority:{prio}\r\nslave_repl_offset:{off}\r\n"),
        );
    }
    // Larger offset wins at equal priority.
    assert_eq!(
        s.select_slave("mymaster", 200).as_deref(),
        Some("127.0.0.1:6381")
    );
    // Priority 0 is never promoted; lower priority wins over offset.
    info(&mut s, r2, 150, "role:slave\r\nslave_priority:0\r\n");
    assert_eq!(
        s.select_slave("mymaster", 200).as_deref(),
        Some("127.0.0.1:6380")
    );
    assert_eq!(
        s.failover("mymaster", false, 200, &mut Vec::new()),
        Err(CmdError(
            "NOQUORUM No Raft group: a failover cannot be committed now".into()
        ))
    );
    // Stale availability excludes a replica.
    assert_eq!(s.select_slave("mymaster", 5101), None);
    s.masters[0].failover_in_progress = true;
    assert_eq!(
        s.failover("mymaster", false, 200, &mut Vec::new()),
        Err(CmdError("INPROG Failover already in progress".into()))
    );
}

#[test]
fn info_cache_ages_and_dedup() {
    let (mut s, _) = with_replica(30_000, 2);
    let names = vec![
        "mymaster".to_string(),
        "mymaster".to_string(),
        "nope".to_string(),
    ];
    let c = s.info_cache(&names, 500);
    assert_eq!(
        c,
        vec![("mymaster".to_string(), vec![(0, None), (0, None)])]
    );
    let mid = master_id(&s);
    info(&mut s, mid, 100, "role:master\r\n");
    let c = s.info_cache(&names, 500);
    assert_eq!(c[0].1[0], (400, Some("role:master\r\n".to_string())));
    // 7.0 quirk: replica without INFO gets `now - 0`.
    assert_eq!(c[0].1[1], (500, None));
}

#[test]
fn forced_reconnect_of_idle_pubsub_link() {
    let mut s = core(state(30_000, 2));
    let id = master_id(&s);
    links_up(&mut s, id, 0);
    let mut t = 0;
    let mut dropped = None;
    while t < 20_000 {
        t += 100;
        pong(&mut s, id, t);
        let a = s.handle(t, Input::Tick);
        if a.contains(&Action::Disconnect {
            id,
            link: Some(LinkKind::PubSub),
        }) {
            dropped = Some(t);
            break;
        }
    }
    // Link older than 15 s and silent for more than 6 s.
    assert_eq!(dropped, Some(15_100));
}

/// A command link that drops counts as a PING unanswered from the loss:
/// SDOWN down-after later, and the runtime is told when to look.
#[test]
fn lost_link_counts_from_the_loss() {
    let mut s = core(state(5000, 2));
    let id = master_id(&s);
    links_up(&mut s, id, 0);
    pong(&mut s, id, 500);
    s.handle(
        900,
        Input::LinkDown {
            id,
            link: LinkKind::Command,
        },
    );
    assert_eq!(s.next_sdown_deadline(), Some(5901));
    let a = s.handle(1000, Input::Tick);
    assert!(a.iter().any(|a| matches!(a, Action::Connect(_))));
    assert!(!has_event(&s.handle(5900, Input::Tick), EventKind::Sdown));
    assert!(has_event(&s.handle(5901, Input::Tick), EventKind::Sdown));
    assert_eq!(s.next_sdown_deadline(), None, "already SDOWN");
}

#[test]
fn silent_command_link_is_dropped_after_min_reconnect_period() {
    let mut s = core(state(30_000, 2));
    let id = master_id(&s);
    links_up(&mut s, id, 0);
    let cmd = Action::Disconnect {
        id,
        link: Some(LinkKind::Command),
    };
    assert!(!s.handle(15_000, Input::Tick).contains(&cmd));
    let a = s.handle(15_001, Input::Tick);
    assert!(a.contains(&cmd));
    // Reconnected at once (the throttle counts attempts, not drops).
    let a = s.handle(15_101, Input::Tick);
    assert!(a.iter().any(|a| matches!(a, Action::Connect(_))));
}

#[test]
fn replica_info_every_second_while_master_odown() {
    let (mut s, rid) = with_replica(1000, 1);
    links_up(&mut s, rid, 0);
    pong(&mut s, rid, 0);
    s.handle(10, Input::Tick);
    info(&mut s, rid, 20, "role:slave\r\n");
    pong(&mut s, rid, 900);
    // The master never answered: it goes ODOWN in this tick (quorum 1),
    // before its replicas are handled, and their INFO is due after 1 s.
    let a = s.handle(1100, Input::Tick);
    assert!(has_event(&a, EventKind::Odown));
    assert!(a.contains(&Action::SendInfo { id: rid }));
}

#[test]
fn replica_info_every_second_once_the_master_stops_answering() {
    let (mut s, rid) = with_replica(1000, 2);
    let mid = master_id(&s);
    links_up(&mut s, mid, 0);
    links_up(&mut s, rid, 0);
    s.handle(10, Input::Tick);
    info(&mut s, rid, 20, "role:slave\r\n");
    let send_info = Action::SendInfo { id: rid };
    // The master answers: the replica's INFO waits for the 10 s period.
    let mut now = 10;
    while now < 1500 {
        now += 100;
        pong(&mut s, mid, now - 1);
        assert!(!s.handle(now, Input::Tick).contains(&send_info), "at {now}");
    }
    // The master's command link drops (a SIGKILL): the replica is read at
    // the next tick, long before SDOWN.
    s.handle(
        1550,
        Input::LinkDown {
            id: mid,
            link: LinkKind::Command,
        },
    );
    let a = s.handle(1600, Input::Tick);
    assert!(a.contains(&send_info));
    assert!(!has_event(&a, EventKind::Sdown));
    info(&mut s, rid, 1610, "role:slave\r\n");
    // Once a second while it stays unanswered.
    assert!(!s.handle(2600, Input::Tick).contains(&send_info));
    assert!(s.handle(2700, Input::Tick).contains(&send_info));
}

#[test]
fn sentinel_address_update_reaches_other_masters() {
    let mut st = state(30_000, 2);
    let mut m2 = MasterState::new("other", "127.0.0.1", 7000, 2);
    m2.known_sentinels
        .push(("127.0.0.1".into(), 26380, PEER.into()));
    st.masters[0]
        .known_sentinels
        .push(("127.0.0.1".into(), 26380, PEER.into()));
    st.masters.push(m2);
    let mut s = core(st);
    let a = hello(&mut s, 100, &peer_hello(PEER, 26390, 0, 0, 6379));
    assert_eq!(
        events(&a),
        vec![
            (
                EventKind::SentinelAddressSwitch,
                format!("master mymaster 127.0.0.1 6379 ip 127.0.0.1 port 26390 for {PEER}")
            ),
            (
                EventKind::SentinelAddressUpdate,
                format!(
                    "sentinel {PEER} 127.0.0.1 26390 @ mymaster 127.0.0.1 6379 1 additional matching instances"
                )
            ),
        ]
    );
    let p = s.persisted();
    assert_eq!(p.masters[1].known_sentinels[0].1, 26390);
}

/// A master that stops answering (SIGSTOP: the link stays, PINGs go
/// unanswered) is seen down between down-after and down-after plus its probe
/// period (200 ms with down-after 1000) after it stopped, whatever the phase
/// of the PINGs at the stop; it is never seen down before down-after of
/// silence. Ticks every 100 ms, replies 1 ms after each PING while it runs.
#[test]
fn stopped_master_is_seen_down_within_a_probe_period_of_down_after() {
    assert_eq!(super::detection::master_probe_period(1000, 1000), 200);
    assert_eq!(super::detection::master_probe_period(5000, 1000), 1000);
    assert_eq!(super::detection::master_probe_period(30_000, 1000), 1000);
    assert_eq!(super::detection::master_probe_period(200, 200), 100);
    for stop in (5_000..6_000).step_by(37) {
        let mut s = core(state(1000, 2));
        let id = master_id(&s);
        links_up(&mut s, id, 0);
        pong(&mut s, id, 1);
        let mut t = 0;
        let mut pings = 0;
        let sdown_at = loop {
            t += 100;
            assert!(t < 10_000, "never seen down (stop {stop})");
            let a = s.handle(t, Input::Tick);
            if has_event(&a, EventKind::Sdown) {
                break t;
            }
            let pinged = a.contains(&Action::SendPing { id });
            pings += usize::from(pinged && t < 5_000);
            if pinged && t + 1 < stop {
                pong(&mut s, id, t + 1);
            }
            // The runtime wakes at the SDOWN deadline too.
            if let Some(due) = s.next_sdown_deadline().filter(|&d| d < t + 100) {
                let a = s.handle(due, Input::Tick);
                if has_event(&a, EventKind::Sdown) {
                    break due;
                }
            }
        };
        let late = sdown_at - stop;
        assert!(
            (1000..=1000 + 200 + 1).contains(&late),
            "stop at {stop}: SDOWN {late} ms after"
        );
        // Every 200 ms while it answers, not every tick.
        assert!((24..=26).contains(&pings), "{pings} PINGs in 5 s");
    }
}

/// A master that answers every PING late (but within half of down-after,
/// past which Sentinel reconnects the link) is never SDOWN, though it is
/// probed more often than once a second.
#[test]
fn slow_master_within_down_after_is_not_down() {
    let mut s = core(state(1000, 2));
    let id = master_id(&s);
    links_up(&mut s, id, 0);
    let mut reply_due: Option<Millis> = Some(450);
    for t in (100..20_000).step_by(100) {
        if reply_due.is_some_and(|d| d <= t) {
            pong(&mut s, id, t);
            reply_due = None;
        }
        let a = s.handle(t, Input::Tick);
        assert!(!has_event(&a, EventKind::Sdown), "down at {t}");
        // The idle pubsub link is reconnected every so often (no hellos
        // here); it comes back at once.
        if a.iter().any(|a| matches!(a, Action::Connect(_))) {
            s.handle(
                t,
                Input::LinkUp {
                    id,
                    link: LinkKind::PubSub,
                },
            );
        }
        if a.contains(&Action::SendPing { id }) && reply_due.is_none() {
            // Each reply takes 450 ms.
            reply_due = Some(t + 450);
        }
    }
}

/// `refused-down-after-milliseconds`: a master whose link drops is
/// reconnected at once and then on every tick while refused; refusals
/// lasting the configured time make it SDOWN before down-after, with the
/// usual event; an attempt that fails otherwise (a timeout) or a connection
/// ends the streak; without the option nothing changes.
#[test]
fn refused_connections_are_down_after_the_refused_period() {
    let refused_state = |ms: u64| {
        let mut st = state(5000, 1);
        st.masters[0].refused_down_after_ms = ms;
        st
    };
    let connects = |a: &[Action]| a.iter().filter(|a| matches!(a, Action::Connect(_))).count();
    // Drives: link up at 0, dropped at 1000, then every connect refused
    // from `refuse_from` (a timeout before that), ticks every 100 ms.
    let run = |ms: u64, refuse_from: Millis| -> (Option<Millis>, Sentinel) {
        let mut s = core(refused_state(ms));
        let id = master_id(&s);
        links_up(&mut s, id, 0);
        pong(&mut s, id, 1);
        let cmd = LinkKind::Command;
        let a = s.handle(1000, Input::LinkDown { id, link: cmd });
        assert_eq!(connects(&a), usize::from(ms > 0), "reconnected at once");
        let fail = |s: &mut Sentinel, t: Millis| {
            let input = if t >= refuse_from {
                Input::Refused { id }
            } else {
                Input::LinkDown { id, link: cmd }
            };
            s.handle(t, input)
        };
        if ms > 0 {
            fail(&mut s, 1001);
        }
        let mut t = 1000;
        while t < 8000 {
            t += 100;
            let mut a = s.handle(t, Input::Tick);
            if connects(&a) > 0 {
                a.extend(fail(&mut s, t + 1));
            }
            if let Some(due) = s.next_sdown_deadline().filter(|&d| d < t + 100) {
                a.extend(s.handle(due, Input::Tick));
                if has_event(&a, EventKind::Sdown) {
                    return (Some(due), s);
                }
            }
            if has_event(&a, EventKind::Sdown) {
                return (Some(t), s);
            }
        }
        (None, s)
    };
    let (at, s) = run(250, 0);
    assert_eq!(at, Some(1251), "250 ms after the first refusal");
    let m = &s.masters["mymaster"];
    assert!(m.inst.o_down, "quorum 1 and no other daemon: ODOWN at once");
    assert!(m.inst.s_down_refused_only);
    // A timed-out attempt ends the streak (there is none yet here) and is
    // retried at the next tick, as any failed connect to a master; the
    // streak starts with the refusal of that retry (1201).
    assert_eq!(run(250, 1200).0, Some(1451));
    // Option off: down-after after the loss, as before.
    assert_eq!(run(0, 0).0, Some(6001));

    // A connection ends the streak; connecting again costs a new one.
    let mut s = core(refused_state(250));
    let id = master_id(&s);
    links_up(&mut s, id, 0);
    pong(&mut s, id, 1);
    s.handle(1000, Input::Refused { id });
    s.handle(
        1100,
        Input::LinkUp {
            id,
            link: LinkKind::Command,
        },
    );
    pong(&mut s, id, 1101);
    assert!(!has_event(&s.handle(1300, Input::Tick), EventKind::Sdown));
    assert_eq!(s.masters["mymaster"].inst.link.refused_since, None);
}

/// Refused connections make ODOWN only when every daemon sees the master
/// down: a refusal seen by some daemons waits for down-after.
#[test]
fn refusal_needs_every_daemon() {
    let (mut s, mid, pid) = with_peer(5000, 1);
    s.masters
        .get_index_mut(0)
        .unwrap()
        .1
        .inst
        .refused_down_after = 200;
    s.handle(
        0,
        Input::LinkUp {
            id: pid,
            link: LinkKind::Command,
        },
    );
    links_up(&mut s, mid, 0);
    pong(&mut s, mid, 1);
    pong(&mut s, pid, 1);
    s.handle(1000, Input::Refused { id: mid });
    let a = s.handle(1200, Input::Tick);
    assert!(has_event(&a, EventKind::Sdown));
    assert!(
        !has_event(&a, EventKind::Odown),
        "quorum 1 but the peer has not said"
    );
    pong(&mut s, pid, 1250);
    peer_says(&mut s, pid, 1260, 1);
    let a = s.handle(1300, Input::Tick);
    assert_eq!(events(&a), vec![odown("2/1")]);
}

#[test]
fn refused_down_after_is_a_set_option() {
    let mut s = core(state(5000, 2));
    assert_eq!(
        set(&mut s, &["refused-down-after-milliseconds", "300"]).0,
        Ok(())
    );
    assert_eq!(s.masters["mymaster"].inst.refused_down_after, 300);
    assert_eq!(s.persisted().masters[0].refused_down_after_ms, 300);
    assert_eq!(
        set(&mut s, &["refused-down-after-milliseconds", "-1"]).0,
        Err("ERR Invalid argument '-1' for SENTINEL SET 'refused-down-after-milliseconds'".into())
    );
    assert_eq!(
        set(&mut s, &["refused-down-after-milliseconds", "0"]).0,
        Ok(())
    );
    assert_eq!(s.masters["mymaster"].inst.refused_down_after, 0);
}
