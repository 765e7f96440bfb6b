//! Fencing (`failover/fence.rs`) with explicit time: the daemon next to the
//! committed master pauses writes on it once it is out of touch with the
//! group and no replica answers, and lifts the pause only when the group
//! still stands behind the master.

use super::event::EventKind;
use super::failover_tests::*;
use super::group::Phase;
use super::types::*;

/// A follower whose link to the master stays on one host, with two healthy
/// replicas, in touch with the group.
fn sidecar() -> H {
    let mut h = H::new(state(&[6380, 6381]), false);
    h.healthy(100, &[(6380, 1000), (6381, 1000)]);
    let id = h.id(6379);
    h.s.handle(100, Input::SameHost { id, same: true });
    h.s.handle(100, Input::GroupContact { in_touch: true });
    h
}

fn pauses(a: &[Action]) -> Vec<(InstanceId, u64)> {
    a.iter()
        .filter_map(|x| match x {
            Action::PauseWrites { id, ms } => Some((*id, *ms)),
            _ => None,
        })
        .collect()
}

fn pings(a: &[Action]) -> Vec<InstanceId> {
    a.iter()
        .filter_map(|x| match x {
            Action::SendPing { id } => Some(*id),
            _ => None,
        })
        .collect()
}

fn unpaused(a: &[Action], id: InstanceId) -> bool {
    a.contains(&Action::Unpause { id })
}

/// Out of touch at 3000: the replicas are asked a PING; none answers, so
/// writes are paused at the first step after `FENCE_PROBE_MS`.
fn fenced(h: &mut H) {
    let a = h.s.handle(3000, Input::GroupContact { in_touch: false });
    let (r1, r2) = (h.id(6380), h.id(6381));
    assert_eq!(pings(&a), vec![r1, r2], "the probe");
    assert!(pauses(&a).is_empty());
    let a = h.s.handle(3025, Input::Tick);
    assert!(pauses(&a).is_empty(), "within the probe's window");
    let a = h.s.handle(3050, Input::Tick);
    // down-after 5000: the pause outlives two renewals.
    assert_eq!(pauses(&a), vec![(h.id(6379), 15_000)]);
    assert_eq!(events(&a), vec![ev(EventKind::Fence, M)]);
}

#[test]
fn out_of_touch_and_no_replica_answering_pauses_the_master_then_lifts_it() {
    let mut h = sidecar();
    let mid = h.id(6379);
    fenced(&mut h);
    // Renewed a third of the pause later, while still out of touch.
    assert!(pauses(&h.s.handle(6000, Input::Tick)).is_empty());
    assert_eq!(pauses(&h.s.handle(8100, Input::Tick)), vec![(mid, 15_000)]);
    // Back in touch: lifted once the committed state had time to catch up,
    // the master still the group's with no failover under way.
    h.s.handle(9000, Input::GroupContact { in_touch: true });
    let a = h.s.handle(9100, Input::Tick);
    assert!(!unpaused(&a, mid));
    let a = h.s.handle(9500, Input::Tick);
    assert!(unpaused(&a, mid));
    assert_eq!(events(&a), vec![ev(EventKind::FenceLifted, M)]);
    let a = h.s.handle(13_000, Input::Tick);
    assert!(pauses(&a).is_empty() && !unpaused(&a, mid));
}

#[test]
fn a_replica_answering_keeps_the_master_writable() {
    let mut h = sidecar();
    let mid = h.id(6379);
    let a = h.s.handle(3000, Input::GroupContact { in_touch: false });
    assert_eq!(pings(&a).len(), 2);
    // Only the daemons are cut off: a replica answers, nothing is paused.
    h.pong(h.id(6380), 3003);
    for t in [3100, 3500, 3900] {
        assert!(pauses(&h.s.handle(t, Input::Tick)).is_empty(), "{t}");
    }
    // Probed again a second later; the cut widened: no answer now.
    let a = h.s.handle(4000, Input::Tick);
    assert!(pings(&a).contains(&h.id(6380)));
    assert!(pauses(&h.s.handle(4025, Input::Tick)).is_empty());
    assert_eq!(pauses(&h.s.handle(4050, Input::Tick)), vec![(mid, 15_000)]);
}

#[test]
fn no_fence_from_another_host_or_without_a_replica() {
    // The link to the master leaves the host: another daemon's node.
    let mut h = sidecar();
    let id = h.id(6379);
    h.s.handle(150, Input::SameHost { id, same: false });
    let a = h.s.handle(3000, Input::GroupContact { in_touch: false });
    assert!(pings(&a).is_empty());
    for t in [3100, 4000, 10_000] {
        assert!(pauses(&h.s.handle(t, Input::Tick)).is_empty());
    }
    // A master without replicas: nothing could be promoted instead.
    let mut h = H::new(state(&[]), false);
    h.healthy(100, &[]);
    let id = h.id(6379);
    h.s.handle(100, Input::SameHost { id, same: true });
    h.s.handle(3000, Input::GroupContact { in_touch: false });
    for t in [3100, 4000, 10_000] {
        assert!(pauses(&h.s.handle(t, Input::Tick)).is_empty());
    }
}

#[test]
fn a_master_replaced_meanwhile_stays_paused_until_it_follows() {
    let mut h = sidecar();
    fenced(&mut h);
    // Back in touch; the log brings the failover the others made.
    h.s.handle(9000, Input::GroupContact { in_touch: true });
    h.commit(9010, start(1, PEER, false, false));
    h.commit(
        9020,
        phase(1, Phase::SendSlaveofNoone, Some(6381)).signed(node(PEER)),
    );
    h.commit(9030, phase(1, Phase::ReconfSlaves, None).signed(node(PEER)));
    h.commit(9040, switch(1, 6381).signed(node(PEER)));
    // The old master is a replica of the record now: a new link to it.
    let old = h.id(6379);
    h.up(old, 9050);
    let as_master = "role:master\r\nmaster_repl_offset:1000\r\n";
    let a = h.info(old, 9300, as_master);
    assert!(
        !a.iter().any(|x| matches!(x, Action::Reconfigure { .. })),
        "settling"
    );
    // Still a master: this daemon, whose link holds no hello, demotes it
    // (the others' hellos wait behind the pause).
    let a = h.info(old, 9600, as_master);
    assert!(a.contains(&Action::Reconfigure {
        id: old,
        replicaof: Some(("127.0.0.1".into(), 6381))
    }));
    assert_eq!(
        events(&a),
        vec![ev(EventKind::ConvertToSlave, &slave6379())]
    );
    assert!(!unpaused(&a, old));
    let mut infos = 0;
    let mut renewed = 0;
    for t in (9100..=14_100).step_by(100) {
        let a = h.s.handle(t, Input::Tick);
        assert!(!unpaused(&a, old), "{t}: still a master");
        infos += usize::from(a.contains(&Action::SendInfo { id: old }));
        renewed += pauses(&a).iter().filter(|(id, _)| *id == old).count();
    }
    assert!(infos >= 3, "its INFO asked every second: {infos}");
    assert!(renewed >= 1, "the pause renewed on the new link");
    // Demoted by the group's leader: it follows the new master, its held
    // writes get -READONLY, the pause goes.
    let a = h.info(old, 14_150, &replica_text(6381, 1000, 100, "x"));
    assert!(unpaused(&a, old));
    assert_eq!(
        events(&a).last(),
        Some(&ev(EventKind::FenceLifted, &slave6379()))
    );
}

/// The old master, a replica of the new one now.
fn slave6379() -> String {
    "slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6381".into()
}

#[test]
fn a_failover_under_way_keeps_the_pause() {
    let mut h = sidecar();
    let mid = h.id(6379);
    fenced(&mut h);
    h.s.handle(9000, Input::GroupContact { in_touch: true });
    // A failover started while this pod was cut off, not promoted yet: the
    // master may be replaced any moment.
    h.commit(9010, start(1, PEER, false, false));
    for t in (9100..=10_000).step_by(100) {
        assert!(!unpaused(&h.s.handle(t, Input::Tick), mid), "{t}");
    }
}

#[test]
fn a_daemon_just_started_gives_its_group_half_of_down_after() {
    let mut h = H::new(state(&[6380, 6381]), false);
    h.healthy(100, &[(6380, 1000), (6381, 1000)]);
    let id = h.id(6379);
    h.s.handle(100, Input::SameHost { id, same: true });
    // Never heard since the start: out of touch from the first report.
    h.s.handle(100, Input::GroupContact { in_touch: false });
    let probing = |h: &H| h.s.masters["mymaster"].fo.fence.is_some();
    h.s.handle(2400, Input::Tick);
    assert!(!probing(&h));
    let a = h.s.handle(2500, Input::Tick);
    assert!(probing(&h), "down-after 5000");
    assert_eq!(pings(&a).len(), 2);
}

#[test]
fn a_restarted_daemon_names_no_master_before_it_heard_its_group() {
    use super::sentinel::STARTUP_HOLD_MS;
    // Restarted into a group (the Raft view says so at once).
    let h = H::new(state(&[6380]), false);
    let mut s = h.s;
    assert!(s.answer_held(100));
    s.handle(300, Input::GroupContact { in_touch: true });
    assert!(s.answer_held(350), "the committed state catching up");
    assert!(!s.answer_hold_over(350));
    assert!(!s.answer_held(400));
    assert!(s.answer_hold_over(400), "caught up: never held again");
    // Never heard: held until the bound, then answered from what it has.
    let mut s = H::new(state(&[6380]), false).s;
    s.handle(100, Input::GroupContact { in_touch: false });
    assert!(s.answer_held(STARTUP_HOLD_MS - 1));
    assert!(!s.answer_hold_over(STARTUP_HOLD_MS - 1));
    assert!(!s.answer_held(STARTUP_HOLD_MS));
    assert!(s.answer_hold_over(STARTUP_HOLD_MS));
}
