//! Hostile input against a running raftinel: a
//! 512 MB bulk header whose body never ends, a million-argument request,
//! binary garbage on many connections, a client that sends without ever
//! reading, and malformed headers not already in
//! `differential::diff_malformed_resp` (which covers non-numeric lengths,
//! `$-1` inside a request, `*-5`, huge lengths, missing CRLF, unbalanced
//! quotes and pipelining; none of that is repeated here).
//!
//! During every attack a second connection keeps asking `SENTINEL
//! GET-MASTER-ADDR-BY-NAME` and must always get the right answer; the daemon
//! never exits; the attacking connection gets an error or is closed; and the
//! daemon's peak resident memory (VmHWM) grows by at most [`RSS_BOUND_MB`].
//!
//! Where the same bytes mean something to redis-sentinel 7.0.15 they are
//! sent to it too and the replies compared. Two deliberate differences
//! (README): raftinel closes a client whose unparsed input passes 64 MiB
//! (Redis buffers a declared 512 MB bulk), and it stops reading from a client
//! that does not read its replies (Redis buffers the replies without limit:
//! by hand, 200 MB of unread `SENTINEL MASTERS` took redis-sentinel to 4 GB).

use crate::harness::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Allowed growth of the daemon's peak RSS during one attack, in MiB. One
/// connection may hold at most 64 MiB of unparsed input (the daemon's
/// default `client-query-buffer-limit`; a million small arguments, 7 MB on the wire, are
/// counted with a per-argument overhead and stay under it too); its read
/// buffer can transiently hold a second copy while growing, and the
/// allocator keeps some slack: 64 × 2 + 32. An unbounded daemon would go
/// past it: every attack below offers more than that (256 MiB of bulk body,
/// 256 MiB of unread requests).
const RSS_BOUND_MB: u64 = 160;
/// What an attacker offers at most before the test gives up on being cut off.
const OFFER: usize = 256 * 1024 * 1024;

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn mem_kb(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// A raftinel watching a master, with the pid to measure and a watcher that
/// keeps checking the daemon answers other clients.
struct Target {
    topo: Topology,
    daemon: SentinelProc,
    pid: i32,
    master: String,
}

impl Target {
    fn raftinel() -> Target {
        let topo = Topology::new(1);
        let mut daemon = SentinelProc::raftinel(&[Monitor::new(topo.master.port, 2)]);
        let pid = daemon.proc().pid().expect("raftinel running");
        let master = topo.master.port.to_string();
        Target {
            topo,
            daemon,
            pid,
            master,
        }
    }

    /// Run `attack` while a second client keeps asking for the master; then
    /// check that client was always answered correctly, the daemon still
    /// runs and its peak RSS grew by at most the bound.
    fn under_attack<T>(&mut self, what: &str, attack: impl FnOnce(u16) -> T) -> T {
        let (rss_before, _) = mem_kb(self.pid);
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let answers = Arc::new(Mutex::new(0u64));
        let (port, want) = (self.daemon.port, self.master.clone());
        let watcher = {
            let (stop, failures, answers) = (stop.clone(), failures.clone(), answers.clone());
            std::thread::spawn(move || {
                let mut c = Conn::open(port);
                while !stop.load(Ordering::SeqCst) {
                    let r = c.try_cmd(
                        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER],
                        resp::READ_TIMEOUT,
                    );
                    let ok = matches!(&r, Reply::Frame(f)
                        if f.items().map(|i| i.iter().map(|x| x.as_str()).collect::<Vec<_>>())
                            == Some(vec![Some("127.0.0.1".into()), Some(want.clone())]));
                    if ok {
                        *answers.lock().unwrap() += 1;
                    } else {
                        failures.lock().unwrap().push(r.describe());
                        // A closed or desynchronised watcher starts over.
                        match Conn::connect(port) {
                            Ok(n) => c = n,
                            Err(e) => failures.lock().unwrap().push(format!("reconnect: {e}")),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        // At least one answer before the attack, so "answered during" means something.
        wait_until(EVENTUALLY, || *answers.lock().unwrap() > 0);
        let before = *answers.lock().unwrap();
        let out = attack(port);
        // And at least one answer after it.
        let answered_after = wait_until(EVENTUALLY, || *answers.lock().unwrap() > before);
        stop.store(true, Ordering::SeqCst);
        watcher.join().expect("watcher thread");
        let (rss_after, hwm) = mem_kb(self.pid);
        let failures = failures.lock().unwrap().clone();
        assert!(
            failures.is_empty(),
            "{what}: another client was not answered correctly: {failures:?}"
        );
        assert!(
            answered_after,
            "{what}: another client got no answer after the attack"
        );
        assert!(
            self.daemon.proc().running(),
            "{what}: the daemon exited\n{}",
            self.daemon.stderr()
        );
        let grew_mb = hwm.saturating_sub(rss_before) / 1024;
        eprintln!(
            "{what}: VmRSS {} MiB before, {} MiB after, peak (VmHWM) {} MiB; {} answers to the other client",
            rss_before / 1024,
            rss_after / 1024,
            hwm / 1024,
            *answers.lock().unwrap()
        );
        assert!(
            grew_mb <= RSS_BOUND_MB,
            "{what}: peak RSS grew by {grew_mb} MiB (bound {RSS_BOUND_MB} MiB)"
        );
        out
    }
}

/// Write `chunk` repeatedly until the peer stops taking it (error or write
/// timeout) or `OFFER` bytes went out; returns the bytes written.
fn offer(c: &mut Conn, chunk: &[u8]) -> usize {
    let mut sent = 0;
    while sent < OFFER {
        if c.send_raw(chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    sent
}

/// A `$536870912` header (exactly the 512 MB bulk limit, so a valid header)
/// and then a body that never ends: no reply to the header alone, then the
/// daemon cuts the connection off after 64 MiB of input instead of buffering
/// the declared 512 MB.
#[test]
fn hostile_512mb_bulk_header() {
    let mut t = Target::raftinel();
    let sent = t.under_attack("512 MB bulk header", |port| {
        let mut c = Conn::open(port);
        c.send_raw(b"*2\r\n$4\r\nPING\r\n$536870912\r\n")
            .expect("send header");
        assert!(
            matches!(c.read_reply(Duration::from_secs(1)), Reply::Timeout),
            "a valid 512 MB bulk header alone gets no reply (it waits for the body)"
        );
        let sent = offer(&mut c, &vec![b'x'; 1024 * 1024]);
        assert!(
            c.closed_by_peer(),
            "the connection is closed after {} MiB of body",
            sent >> 20
        );
        sent
    });
    assert!(
        sent < OFFER,
        "the daemon kept reading the whole {} MiB body",
        OFFER >> 20
    );
}

/// `*1000000` followed by a million one-byte arguments: the same
/// unknown-command error as redis-sentinel (the connection stays usable),
/// within the memory bound. One more than the daemon's limit of 1,048,576
/// arguments is refused at the header (a documented difference).
#[test]
fn hostile_million_arguments() {
    let mut body = b"*1000000\r\n".to_vec();
    body.extend(b"$1\r\na\r\n".repeat(1_000_000));
    let run = |c: &mut Conn| {
        c.send_raw(&body).expect("send a million arguments");
        let r = c.read_reply(Duration::from_secs(60));
        let after = c.try_cmd(&["PING"], resp::READ_TIMEOUT);
        (r.describe(), after.describe())
    };
    let mut t = Target::raftinel();
    let got = t.under_attack("a million arguments", |port| run(&mut Conn::open(port)));
    let oracle = SentinelProc::oracle(&[Monitor::new(t.topo.master.port, 2)]);
    let want = run(&mut oracle.conn());
    assert_eq!(got, want, "raftinel vs redis-sentinel (reply, then PING)");
    assert!(
        got.0.starts_with("-ERR unknown command 'a'") || got.0.contains("unknown command 'a'"),
        "{got:?}"
    );

    t.under_attack("1,048,577 arguments", |port| {
        let mut c = Conn::open(port);
        c.send_raw(b"*1048577\r\n").expect("send header");
        assert_eq!(
            c.read(),
            Resp::Error("ERR Protocol error: invalid multibulk length".into())
        );
        assert!(c.closed_by_peer(), "closed after the protocol error");
    });
}

/// 200 connections each sending 4 KiB of seeded random bytes: every reply
/// is an error, each connection is answered or closed on its own, and the
/// other client is served throughout.
#[test]
fn hostile_binary_garbage() {
    let mut t = Target::raftinel();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*: reproducible garbage.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    };
    let (mut closed, mut errors) = (0, 0);
    t.under_attack("binary garbage", |port| {
        for _ in 0..200 {
            let bytes: Vec<u8> = (0..4096).map(|_| next()).collect();
            let mut c = Conn::open(port);
            let _ = c.send_raw(&bytes);
            loop {
                match c.read_reply(Duration::from_millis(500)) {
                    Reply::Frame(Resp::Error(_)) => errors += 1,
                    Reply::Frame(other) => {
                        panic!("garbage got a non-error reply: {}", other.pretty())
                    }
                    Reply::Closed => {
                        closed += 1;
                        break;
                    }
                    Reply::Timeout => break,
                }
            }
        }
    });
    eprintln!("binary garbage: {errors} error replies, {closed} connections closed");
    assert!(errors > 0, "garbage got no error reply at all");
}

/// A client that pipelines `SENTINEL MASTERS` without ever reading: the
/// daemon stops reading from it once its replies back up (our writes then
/// block) instead of buffering them, and everyone else is still served.
#[test]
fn hostile_client_never_reads() {
    let mut t = Target::raftinel();
    let mut batch = Vec::new();
    for _ in 0..1000 {
        batch.extend(resp::encode(&[b"SENTINEL", b"MASTERS"]));
    }
    let sent = t.under_attack("a client that never reads", |port| {
        let mut c = Conn::open(port);
        offer(&mut c, &batch)
    });
    assert!(
        sent < OFFER,
        "the daemon kept reading {} MiB of requests whose replies were never read",
        OFFER >> 20
    );
}

/// Malformed or hostile headers not in `diff_malformed_resp`, sent to
/// raftinel and to redis-sentinel: the same replies, the same closing.
#[test]
fn hostile_headers_match_redis_sentinel() {
    let topo = Topology::new(0);
    let m = [Monitor::new(topo.master.port, 2)];
    let raftinel = SentinelProc::raftinel(&m);
    let oracle = SentinelProc::oracle(&m);
    // (name, first bytes, rest sent after checking there is no reply yet)
    let cases: Vec<(&str, &[u8], &[u8])> = vec![
        ("negative bulk length -5", b"*1\r\n$-5\r\n", b""),
        ("bulk length over 512 MB", b"*1\r\n$536870913\r\n", b""),
        (
            "bulk length overflowing i64",
            b"*1\r\n$99999999999999999999\r\n",
            b"",
        ),
        (
            "multibulk length overflowing i64",
            b"*99999999999999999999\r\n",
            b"",
        ),
        ("negative multibulk -1 then PING", b"*-1\r\nPING\r\n", b""),
        (
            "fewer arguments than announced, completed later",
            b"*3\r\n$4\r\nPING\r\n",
            b"$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            "bulk body cut, completed later",
            b"*2\r\n$4\r\nPING\r\n$5\r\nhe",
            b"llo\r\n",
        ),
        ("array type byte inside a request", b"*1\r\n*1\r\n", b""),
        ("bulk length with a sign", b"*1\r\n$+4\r\nPING\r\n", b""),
        ("only CRLFs then PING", b"\r\n\r\n\r\nPING\r\n", b""),
    ];
    // Every reply until a silence or the close, described.
    let drain = |c: &mut Conn, out: &mut Vec<String>| loop {
        let r = c.read_reply(Duration::from_millis(800));
        let done = !matches!(r, Reply::Frame(_));
        out.push(r.describe());
        if done {
            break;
        }
    };
    let run = |port: u16, first: &[u8], rest: &[u8]| -> Vec<String> {
        let mut c = Conn::open(port);
        let mut out = Vec::new();
        c.send_raw(first).expect("send");
        drain(&mut c, &mut out);
        if !rest.is_empty() && !out.last().is_some_and(|l| l.contains("closed")) {
            let _ = c.send_raw(rest);
            drain(&mut c, &mut out);
        }
        out.push(if c.closed_by_peer() {
            "then closed".into()
        } else {
            "then open".into()
        });
        out
    };
    let mut diffs = Vec::new();
    for (name, first, rest) in &cases {
        let (o, r) = (
            run(oracle.port, first, rest),
            run(raftinel.port, first, rest),
        );
        if o != r {
            diffs.push(format!(
                "[{name}]\n  redis-sentinel: {o:?}\n  raftinel:       {r:?}"
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} difference(s):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    // A NUL byte in an inline command: redis-sentinel does not answer at all
    // (observed; its inline parser finds the newline with strchr, which
    // stops at the NUL), and later commands on that connection get no reply
    // either. raftinel answers the line (unknown command) and the
    // connection stays usable: not compared.
    let mut c = raftinel.conn();
    c.send_raw(b"PI\0NG\r\n").expect("send");
    assert!(c.read().is_error(), "an inline command with a NUL byte");
    assert_eq!(
        c.cmd(&["PING"]),
        Resp::Status("PONG".into()),
        "the connection is usable after it"
    );
}
