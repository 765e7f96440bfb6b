//! A real Raft node (openraft, the on-disk store, the RPC client) whose
//! leader replicates to a dead peer and to a peer that refuses every RPC, in
//! paused time: how many RPCs it makes and how many lines it logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::network::{Backoff, PeerAuth, REPORT_EVERY};
use super::node::{raft_timing, Policy, RaftNode};
use super::store::IdentitySeed;
use crate::config::ServerConfig;
use crate::core::group::Member;
use crate::core::LinkAuth;

/// A port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A peer that answers every request with a refusal; counts connections.
async fn refusing_peer(accepted: Arc<AtomicU64>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            accepted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(b"-ERR cluster id mismatch\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Attempts a failing peer may get in `t`: the first ones at the backoff's
/// growing delays, then one per `cap`.
fn max_attempts(b: Backoff, t: Duration) -> u64 {
    let (mut n, mut at, mut failures) = (1u64, Duration::ZERO, 1u32);
    loop {
        at += b.delay(failures);
        if at > t {
            return n;
        }
        n += 1;
        failures += 1;
    }
}

#[tokio::test(start_paused = true)]
async fn a_dead_and_a_refusing_peer_cost_one_attempt_per_backoff_and_a_line_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("s.log");
    let cfg = ServerConfig {
        logfile: log_path.to_string_lossy().into_owned(),
        ..ServerConfig::default()
    };
    // The test runtime has one thread: every task logs through this default.
    let _log = tracing::subscriber::set_default(crate::observe::log::build(&cfg).unwrap());

    let down_after = 1000;
    let auth = PeerAuth::fixed(None, LinkAuth::default());
    let seed = IdentitySeed::fresh(1, Some("t".into()));
    let (node, _) = RaftNode::start(
        &dir.path().join("raft"),
        &seed,
        "",
        down_after,
        auth,
        Policy::default(),
    )
    .await
    .unwrap();
    node.bootstrap("127.0.0.1:1").await.unwrap();
    let mut metrics = node.raft.metrics();
    tokio::time::timeout(Duration::from_secs(10), async {
        while metrics.borrow_and_update().current_leader != Some(1) {
            metrics.changed().await.unwrap();
        }
    })
    .await
    .expect("a one-node group elects itself");

    let accepted = Arc::new(AtomicU64::new(0));
    let refusing = refusing_peer(accepted.clone()).await;
    let dead = dead_port();
    let start = tokio::time::Instant::now();
    for (id, port) in [(2, dead), (3, refusing)] {
        node.raft
            .add_learner(id, Member::new(format!("127.0.0.1:{port}"), ""), false)
            .await
            .unwrap();
    }
    let span = Duration::from_secs(150);
    tokio::time::sleep(span).await;
    let elapsed = start.elapsed();

    let health = node.network.health().clone();
    let policy = health.policy();
    let (hb, _, _) = raft_timing(down_after);
    assert_eq!(policy, Backoff::for_heartbeat(Duration::from_millis(hb)));
    let bound = max_attempts(policy, elapsed);
    for id in [2, 3] {
        let n = health.attempts(id);
        // Without backoff a dead peer got one RPC per 200 ms and a refusing
        // one was retried at once (thousands per second).
        assert!(
            n <= bound && n >= bound / 3,
            "peer {id}: {n} attempts in {elapsed:?}, expected at most {bound}"
        );
    }
    // Every attempt to the refusing peer is one fresh connection.
    let conns = accepted.load(Ordering::Relaxed);
    assert!(
        conns <= health.attempts(3) && conns + 2 >= health.attempts(3),
        "{conns} connections for {} attempts",
        health.attempts(3)
    );
    assert_eq!(health.down(), 2);

    node.shutdown().await;
    drop(_log);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let reports = |id: u64| {
        log.lines()
            .filter(|l| l.contains(&format!("+raft-peer-down {id} 127.0.0.1:")))
            .count() as u64
    };
    // Once when it went down, then once per REPORT_EVERY.
    let expected = 1 + elapsed.as_secs() / REPORT_EVERY.as_secs();
    assert_eq!(reports(2), expected, "{log}");
    assert_eq!(reports(3), expected, "{log}");
    assert!(log.contains(&format!(
        "+raft-peer-down 2 127.0.0.1:{dead} connection refused"
    )));
    assert!(log.contains(&format!(
        "+raft-peer-down 3 127.0.0.1:{refusing} refused: ERR cluster id mismatch"
    )));
    assert!(
        !log.contains("RPCError") && !log.contains("backoff"),
        "{log}"
    );
    assert!(
        log.lines().count() as u64 <= 2 * expected + 4,
        "a quiet log:\n{log}"
    );
}

#[test]
fn backoff_doubles_up_to_three_heartbeats() {
    let b = Backoff::for_heartbeat(Duration::from_millis(100));
    let delays: Vec<u64> = (1..=6).map(|n| b.delay(n).as_millis() as u64).collect();
    assert_eq!(delays, vec![50, 100, 200, 300, 300, 300]);
    assert_eq!(b.delay(u32::MAX), Duration::from_millis(300));
    // The default down-after (30 s): heartbeats of 1 s, at most 3 s apart.
    let (hb, _, _) = raft_timing(30_000);
    let b = Backoff::for_heartbeat(Duration::from_millis(hb));
    assert_eq!(
        (b.first, b.cap),
        (Duration::from_millis(500), Duration::from_secs(3))
    );
}
