//! Fuzzing on stable Rust: a seeded mutational fuzzer over the parsers that
//! read what other machines send or operators write — RESP requests and
//! replies, sentinel.conf and raftinel.toml, hello messages, INFO, the Raft
//! RPC bodies and their signing — plus properties that must hold for every
//! input (a stream decodes the same whole or in pieces; what is encoded
//! decodes back; a replayed sequence number is never accepted twice).
//!
//! Each target starts from a corpus of valid inputs and stacks random
//! mutations (bit flips, insertions, deletions, duplications, splices with
//! another seed, tokens that parsers get wrong: huge and negative lengths,
//! CRLF, quotes, numbers at the edges of i64). A panic, or a case slower than
//! [`SLOW`], fails the test with the seed, the case and the input (saved
//! under the target's tmp dir), to be added to `REGRESSIONS` below and
//! fixed.
//!
//! CI runs every target for `RAFTINEL_FUZZ_SECS` seconds (default 1) from a
//! fixed seed; a long run is
//! `RAFTINEL_FUZZ_SECS=600 RAFTINEL_FUZZ_SEED=$RANDOM cargo test --release --test it fuzz:: -- --nocapture`.

use crate::harness::*;
use bytes::BytesMut;
use raftinel::resp::{encode_command, Decoder, Frame, Limits, RequestParser};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// A case slower than this is reported as a hang.
const SLOW: Duration = Duration::from_secs(2);

/// Inputs that once failed a target; run first, every time.
const REGRESSIONS: &[(&str, &[u8])] = &[];

fn budget() -> Duration {
    let secs: f64 = std::env::var("RAFTINEL_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    Duration::from_secs_f64(secs)
}

fn base_seed() -> u64 {
    std::env::var("RAFTINEL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20240601)
}

/// Tokens worth inserting into any of these formats.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b" ",
    b"\"",
    b"'",
    b"\\x",
    b"\\",
    b",",
    b":",
    b"=",
    b"#",
    b"-1",
    b"0",
    b"-0",
    b"+",
    b"*",
    b"$",
    b"%",
    b"~",
    b">",
    b"_",
    b"(",
    b"=",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"4294967296",
    b"2147483648",
    b"1e308",
    b"nan",
    b"inf",
    b"*2147483647\r\n",
    b"$2147483647\r\n",
    b"*-1\r\n",
    b"$-1\r\n",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\xe2\x82",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"\"\"",
    b"[[",
    b"null",
    b"true",
    b"1.5",
    b"1e1000",
];

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, corpus: &[Vec<u8>], extra: &[&[u8]]) {
    let rounds = rng.gen_range(1..=6);
    for _ in 0..rounds {
        let len = input.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] = rng.gen();
            }
            2 => {
                let i = rng.gen_range(0..=len);
                let n = rng.gen_range(1..8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                input.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = (a + rng.gen_range(1..=16)).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = (a + rng.gen_range(1..=32)).min(len);
                let chunk = input[a..b].to_vec();
                let at = rng.gen_range(0..=input.len());
                input.splice(at..at, chunk);
            }
            5 | 6 => {
                let pool = if !extra.is_empty() && rng.gen_bool(0.5) {
                    extra
                } else {
                    TOKENS
                };
                let t = pool[rng.gen_range(0..pool.len())];
                let at = rng.gen_range(0..=len);
                if rng.gen_bool(0.5) && len > 0 {
                    // Replace a digit run or a byte with the token.
                    let end = (at + 1).min(len);
                    input.splice(at.min(len - 1)..end, t.iter().copied());
                } else {
                    input.splice(at..at, t.iter().copied());
                }
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.gen_range(0..corpus.len())];
                if !other.is_empty() {
                    let a = rng.gen_range(0..other.len());
                    let b = rng.gen_range(a..=other.len());
                    let at = rng.gen_range(0..=len);
                    input.splice(at..at, other[a..b].iter().copied());
                }
            }
            8 if len > 1 => {
                let cut = rng.gen_range(0..len);
                input.truncate(cut);
            }
            _ => {}
        }
    }
    if input.len() > 1 << 16 {
        input.truncate(1 << 16);
    }
}

fn escaped(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

/// Run `check` on the regressions of `name`, on the corpus, then on mutated
/// corpus entries until the budget is spent. Returns the number of cases.
fn fuzz(name: &str, corpus: &[Vec<u8>], extra: &[&[u8]], check: impl Fn(&[u8])) -> u64 {
    let seed = base_seed() ^ name.bytes().fold(0u64, |h, b| h.rotate_left(5) ^ b as u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let run_one = |case: u64, input: &[u8]| {
        let started = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| check(input)));
        let took = started.elapsed();
        if r.is_err() || took > SLOW {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{name}-{seed}-{case}"));
            let _ = std::fs::write(&file, input);
            panic!(
                "fuzz target {name}: {} on case {case} (RAFTINEL_FUZZ_SEED={}), input saved to {}:\n{}",
                if r.is_err() {
                    "panic".to_string()
                } else {
                    format!("took {took:?}")
                },
                base_seed(),
                file.display(),
                escaped(input)
            );
        }
    };
    for (n, input) in REGRESSIONS.iter().filter(|r| r.0 == name).enumerate() {
        run_one(n as u64, input.1);
    }
    for (n, input) in corpus.iter().enumerate() {
        run_one(n as u64, input);
    }
    let deadline = Instant::now() + budget();
    let mut cases = 0u64;
    while Instant::now() < deadline {
        let mut input = corpus[rng.gen_range(0..corpus.len())].clone();
        mutate(&mut rng, &mut input, corpus, extra);
        run_one(cases, &input);
        cases += 1;
    }
    eprintln!("fuzz {name}: {cases} cases, seed {seed}");
    cases
}

fn corpus(items: &[&[u8]]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.to_vec()).collect()
}

/// Random split points of `len` bytes (sorted, within 1..len).
fn splits(input: &[u8]) -> Vec<usize> {
    let mut rng =
        StdRng::seed_from_u64(input.len() as u64 ^ input.iter().map(|&b| b as u64).sum::<u64>());
    let mut v: Vec<usize> = (0..rng.gen_range(0..6))
        .filter(|_| input.len() > 1)
        .map(|_| rng.gen_range(1..input.len()))
        .collect();
    v.sort();
    v.dedup();
    v
}

// ---------------------------------------------------------------- RESP

const RESP_TOKENS: &[&[u8]] = &[
    b"*1\r\n$4\r\nPING\r\n",
    b"*3\r\n$8\r\nSENTINEL\r\n$6\r\nMASTER\r\n$8\r\nmymaster\r\n",
    b"$0\r\n\r\n",
    b"*0\r\n",
    b"%1\r\n+a\r\n:1\r\n",
    b">2\r\n+x\r\n+y\r\n",
    b"=7\r\ntxt:abc\r\n",
    b",1.5\r\n",
    b"#t\r\n",
    b"(123\r\n",
    b"!3\r\nerr\r\n",
    b"|1\r\n+k\r\n+v\r\n",
];

/// The request parser over the bytes in one piece and in random pieces:
/// never a panic, and the same commands (or the same error) either way.
fn parse_requests(
    input: &[u8],
    pieces: &[usize],
    authenticated: bool,
) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
    let mut p = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut cmds = Vec::new();
    let mut from = 0;
    for &to in pieces.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            match p.next(&mut buf, authenticated) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty(), "an empty command was returned");
                    cmds.push(args)
                }
                Ok(None) => break,
                Err(e) => return (cmds, Some(e.reply_text())),
            }
        }
    }
    (cmds, None)
}

#[test]
fn resp_requests() {
    let seeds = corpus(&[
        b"*1\r\n$4\r\nPING\r\n",
        b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nGET-MASTER-ADDR-BY-NAME\r\n$8\r\nmymaster\r\n",
        b"PING\r\nSENTINEL masters\r\n",
        b"set \"a b\" 'c\\'d' \"\\x41\\n\"\r\n",
        b"*2\r\n$4\r\nAUTH\r\n$3\r\npwd\r\n*1\r\n$4\r\nQUIT\r\n",
        b"\r\n\r\n*0\r\n*-1\r\nPING\n",
        b"*5\r\n$8\r\nRAFTINEL\r\n$4\r\nabcd\r\n$6\r\nappend\r\n$2\r\n{}\r\n",
    ]);
    fuzz("resp_requests", &seeds, RESP_TOKENS, |input| {
        for auth in [true, false] {
            let whole = parse_requests(input, &[], auth);
            let pieces = parse_requests(input, &splits(input), auth);
            assert_eq!(whole, pieces, "whole vs in pieces");
        }
    });
}

/// What is encoded as a request parses back to the same arguments.
#[test]
fn resp_requests_round_trip() {
    let mut rng = StdRng::seed_from_u64(base_seed());
    let deadline = Instant::now() + budget();
    let mut cases = 0;
    while Instant::now() < deadline {
        let n = rng.gen_range(1..8);
        let args: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let len = rng.gen_range(0..40);
                (0..len).map(|_| rng.gen()).collect()
            })
            .collect();
        let wire = encode_command(&args);
        let (cmds, err) = parse_requests(&wire, &splits(&wire), true);
        assert_eq!(err, None, "{}", escaped(&wire));
        assert_eq!(cmds, vec![args], "{}", escaped(&wire));
        cases += 1;
    }
    eprintln!("resp_requests_round_trip: {cases} cases");
}

fn decode_all(input: &[u8], pieces: &[usize], limits: Limits) -> (Vec<Frame>, Option<String>) {
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut from = 0;
    for &to in pieces.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            match d.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
    }
    (frames, None)
}

#[test]
fn resp_replies() {
    let seeds = corpus(&[
        b"+OK\r\n-ERR no\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n",
        b"*2\r\n$8\r\nmymaster\r\n*2\r\n+a\r\n:1\r\n",
        b"%2\r\n+name\r\n$8\r\nmymaster\r\n+flags\r\n~2\r\n+master\r\n+s_down\r\n",
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n",
        b",3.14\r\n,inf\r\n,-nan\r\n#f\r\n(12345678901234567890\r\n_\r\n",
        b"=15\r\ntxt:Some string\r\n!21\r\nSYNTAX invalid syntax\r\n",
        b"|1\r\n+ttl\r\n:3600\r\n+OK\r\n",
    ]);
    let small = Limits {
        max_line: 64,
        max_bulk: 64,
        max_elements: 8,
        max_depth: 3,
        max_frame: 256,
    };
    fuzz("resp_replies", &seeds, RESP_TOKENS, |input| {
        for limits in [Limits::LINK, small] {
            // Debug forms: NaN is not equal to itself.
            let whole = format!("{:?}", decode_all(input, &[], limits));
            let pieces = format!("{:?}", decode_all(input, &splits(input), limits));
            assert_eq!(whole, pieces, "whole vs in pieces");
        }
    });
}

/// Frames encoded in RESP3 decode back to themselves (RESP2 folds types, so
/// only its decoding is exercised, in `resp_replies`).
#[test]
fn resp_frames_round_trip() {
    fn frame(rng: &mut StdRng, depth: u32) -> Frame {
        let leaf = depth >= 3 || rng.gen_bool(0.6);
        let text = |rng: &mut StdRng| -> String {
            (0..rng.gen_range(0..12))
                .map(|_| rng.gen_range(b'!'..=b'~') as char)
                .collect()
        };
        if leaf {
            match rng.gen_range(0..8) {
                0 => Frame::Simple(text(rng)),
                1 => Frame::Error(format!("ERR {}", text(rng))),
                2 => Frame::Integer(rng.gen()),
                3 => Frame::Bulk((0..rng.gen_range(0..20)).map(|_| rng.gen()).collect()),
                4 => Frame::Null,
                5 => Frame::Boolean(rng.gen()),
                6 => Frame::Double(rng.gen_range(-1e9..1e9)),
                _ => Frame::Verbatim(*b"txt", text(rng).into_bytes()),
            }
        } else {
            let n = rng.gen_range(0..4);
            match rng.gen_range(0..4) {
                0 => Frame::Array((0..n).map(|_| frame(rng, depth + 1)).collect()),
                1 => Frame::Set((0..n).map(|_| frame(rng, depth + 1)).collect()),
                2 => Frame::Push((0..n.max(1)).map(|_| frame(rng, depth + 1)).collect()),
                _ => Frame::Map(
                    (0..n)
                        .map(|_| (frame(rng, depth + 1), frame(rng, depth + 1)))
                        .collect(),
                ),
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(base_seed());
    let deadline = Instant::now() + budget();
    let mut cases = 0;
    while Instant::now() < deadline {
        let f = frame(&mut rng, 0);
        let wire = f.to_wire(3);
        let (got, err) = decode_all(&wire, &splits(&wire), Limits::GENEROUS);
        assert_eq!(err, None, "{f:?}: {}", escaped(&wire));
        assert_eq!(got.len(), 1, "{f:?}: {}", escaped(&wire));
        // Doubles go through %.17g: compare their text.
        assert_eq!(
            format!("{:?}", got[0]).replace(".0)", ")"),
            format!("{f:?}").replace(".0)", ")"),
            "{}",
            escaped(&wire)
        );
        cases += 1;
    }
    eprintln!("resp_frames_round_trip: {cases} cases");
}

#[test]
fn string2ll_agrees_with_integer_parsing() {
    let mut rng = StdRng::seed_from_u64(base_seed());
    for _ in 0..20000 {
        let n: i64 = match rng.gen_range(0..3) {
            0 => rng.gen(),
            1 => rng.gen_range(-1000..1000),
            _ => [i64::MIN, i64::MAX, 0, -1][rng.gen_range(0..4)],
        };
        assert_eq!(raftinel::resp::string2ll(n.to_string().as_bytes()), Some(n));
    }
    let seeds = corpus(&[
        b"0",
        b"-1",
        b"9223372036854775807",
        b"-9223372036854775808",
        b"123",
    ]);
    fuzz("string2ll", &seeds, &[], |input| {
        let got = raftinel::resp::string2ll(input);
        if let Some(n) = got {
            // Only the canonical form of a number is accepted.
            assert_eq!(n.to_string().as_bytes(), input);
        }
    });
}

// ---------------------------------------------------------------- config

const CONF_TOKENS: &[&[u8]] = &[
    b"sentinel monitor mymaster 127.0.0.1 6379 2\n",
    b"sentinel down-after-milliseconds mymaster ",
    b"sentinel known-replica mymaster 127.0.0.1 6380\n",
    b"sentinel known-sentinel mymaster 127.0.0.1 26380 ",
    b"sentinel config-epoch mymaster ",
    b"sentinel rename-command mymaster ",
    b"sentinel auth-pass mymaster ",
    b"sentinel myid ",
    b"sentinel resolve-hostnames yes\n",
    b"sentinel announce-hostnames yes\n",
    b"include ",
    b"port ",
    b"bind ",
    b"user ",
    b"requirepass ",
    b"dir ",
    b"0123456789012345678901234567890123456789",
    b"[raft]\n",
    b"[[masters]]\n",
    b"[sentinel]\n",
    b" = ",
    b"\"\"\"\n",
];

fn load(text: &[u8], file: &str) {
    let dir = tempfile::Builder::new()
        .prefix("it-fuzz-conf-")
        .tempdir()
        .unwrap();
    let path = dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    let _ = raftinel::config::load(&path, &[]);
    let _ = raftinel::config::check_config(&path, &["--port".into(), "26390".into()]);
}

#[test]
fn sentinel_conf() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/testdata");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    seeds.push(
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/sentinel.conf"))
            .unwrap(),
    );
    fuzz("sentinel_conf", &seeds, CONF_TOKENS, |input| {
        load(input, "sentinel.conf")
    });
}

#[test]
fn raftinel_toml() {
    let seeds = vec![
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/raftinel.toml"))
            .unwrap(),
        b"[sentinel]\nport = 26379\n\n[[masters]]\nname = \"m\"\nhost = \"127.0.0.1\"\nport = 6379\nquorum = 2\n".to_vec(),
    ];
    fuzz("raftinel_toml", &seeds, CONF_TOKENS, |input| {
        load(input, "raftinel.toml")
    });
}

// ---------------------------------------------------------------- hello, INFO

#[test]
fn hello_messages() {
    let seeds = corpus(&[
        b"127.0.0.1,26379,0123456789012345678901234567890123456789,3,mymaster,127.0.0.1,6379,2",
        b"::1,26380,abcdefabcdefabcdefabcdefabcdefabcdefabcd,0,mymaster,::1,6380,0",
        b"redis-0.redis.svc,26379,ffffffffffffffffffffffffffffffffffffffff,18446744073709551615,m,redis-1.redis.svc,65535,1",
    ]);
    fuzz(
        "hello",
        &seeds,
        &[b"mymaster", b"256.0.0.1", b"65536"],
        |input| {
            let text = String::from_utf8_lossy(input);
            for resolve in [false, true] {
                let _ = raftinel::core::hello::parse(
                    &text,
                    "0123456789012345678901234567890123456789",
                    resolve,
                    |m| m == "mymaster",
                );
            }
        },
    );
}

#[test]
fn info_replies() {
    let master =
        b"# Server\r\nredis_version:7.0.15\r\nrun_id:0123456789012345678901234567890123456789\r\n\
uptime_in_seconds:12\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
slave0:ip=127.0.0.1,port=6380,state=online,offset=1234,lag=0\r\n\
slave1:127.0.0.1,6381,online\r\nmaster_failover_state:no-failover\r\n\
master_replid:47c0b5b6104bc9a00b51939395167d4a99c57dc9\r\n\
master_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:1234\r\n\
min_slaves_good_slaves:2\r\n";
    let replica =
        b"# Server\r\nredis_version:7.0.15\r\nrun_id:abcdefabcdefabcdefabcdefabcdefabcdefabcd\r\n\
# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\n\
master_link_status:up\r\nmaster_last_io_seconds_ago:1\r\nmaster_sync_in_progress:0\r\n\
slave_repl_offset:1234\r\nslave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\n\
master_link_down_since_seconds:-1\r\n";
    let seeds = corpus(&[master, replica]);
    fuzz(
        "info",
        &seeds,
        &[b"role:", b"slave9:", b"ip=", b"port=", b"offset="],
        |input| {
            let text = String::from_utf8_lossy(input);
            let _ = raftinel::core::info::parse(&text, true);
            let _ = raftinel::core::info::parse(&text, false);
        },
    );
}

// ---------------------------------------------------------------- Raft RPCs

#[test]
fn rpc_bodies() {
    use raftinel::consensus::rpc::{ForgetRequest, JoinRequest};
    use raftinel::consensus::{Command, TypeConfig};
    type Vote = openraft::raft::VoteRequest<u64>;
    type Append = openraft::raft::AppendEntriesRequest<TypeConfig>;
    type Snapshot = openraft::raft::InstallSnapshotRequest<TypeConfig>;
    let seeds = rpc_seeds();
    fuzz(
        "rpc_bodies",
        &seeds,
        &[b"\"id\":", b"\"to\":", b"18446744073709551616"],
        |input| {
            let _ = serde_json::from_slice::<JoinRequest>(input);
            let _ = serde_json::from_slice::<ForgetRequest>(input);
            let _ = serde_json::from_slice::<Command>(input);
            let _ = serde_json::from_slice::<Vote>(input);
            let _ = serde_json::from_slice::<Append>(input);
            let _ = serde_json::from_slice::<Snapshot>(input);
        },
    );
}

fn rpc_seeds() -> Vec<Vec<u8>> {
    corpus(&[
        br#"{"id":3,"addr":"127.0.0.1:26379","fresh":true,"myid":"0123456789012345678901234567890123456789"}"#,
        br#"{"id":3,"reason":"forget"}"#,
        br#"{"to":2,"vote":{"leader_id":{"term":3,"node_id":1},"committed":false},"last_log_id":{"leader_id":{"term":2,"node_id":1},"index":17}}"#,
        br#"{"to":2,"vote":{"leader_id":{"term":3,"node_id":1},"committed":true},"prev_log_id":null,"entries":[],"leader_commit":null}"#,
        br#"{"to":2,"vote":{"leader_id":{"term":3,"node_id":1},"committed":true},"meta":{"last_log_id":null,"last_membership":{"log_id":null,"membership":{"configs":[[1,2,3]],"nodes":{}}},"snapshot_id":"s"},"offset":0,"data":[1,2,3],"done":true}"#,
    ])
}

/// Signed RPC framing: a signature checks only for the exact request it was
/// made for; arbitrary signatures, nonces and sequence numbers are refused
/// without a panic; the replay window accepts a number at most once.
#[test]
fn rpc_signing() {
    use raftinel::consensus::trust::{valid_nonce, GroupSecret, ReplayWindow, SessionKey, WINDOW};
    let secret = GroupSecret::new(b"0123456789abcdef0123456789abcdef").unwrap();
    let key = SessionKey::derive(&secret, b"client-nonce", b"server-nonce");
    let seeds = corpus(&[b"append\x00{\"to\":1}\x0042", b"vote\x00{}\x001"]);
    fuzz("rpc_signing", &seeds, &[b"\x00"], |input| {
        let parts: Vec<&[u8]> = input.splitn(3, |&b| b == 0).collect();
        let (op, body) = (parts[0], parts.get(1).copied().unwrap_or(b""));
        let seq = input.len() as u64;
        let sig = key.sign_request(seq, b"cluster", op, body);
        assert!(key.verify_request(seq, b"cluster", op, body, sig.as_bytes()));
        assert!(!key.verify_request(seq + 1, b"cluster", op, body, sig.as_bytes()));
        assert!(!key.verify_request(seq, b"cluster", body, op, sig.as_bytes()) || op == body);
        assert!(!key.verify_request(seq, b"cluster", op, body, input));
        let _ = valid_nonce(input);
    });
    // The replay window over random sequences.
    let mut rng = StdRng::seed_from_u64(base_seed());
    let deadline = Instant::now() + budget();
    while Instant::now() < deadline {
        let mut w = ReplayWindow::default();
        let mut accepted = std::collections::BTreeSet::new();
        let mut top = 0u64;
        for _ in 0..200 {
            let seq = match rng.gen_range(0..4) {
                0 => top.saturating_sub(rng.gen_range(0..WINDOW * 2)),
                1 => top + rng.gen_range(1..4),
                2 => top + rng.gen_range(0..WINDOW * 3),
                _ => rng.gen_range(0..u64::MAX),
            };
            let ok = w.accept(seq);
            if ok {
                assert!(accepted.insert(seq), "{seq} accepted twice");
                assert!(
                    seq + WINDOW > top,
                    "{seq} accepted below the window (top {top})"
                );
                top = top.max(seq);
            }
            assert!(seq != 0 || !ok, "0 accepted");
        }
    }
}

/// RAFTINEL requests, mutated, against a live daemon with a group secret:
/// each gets an error reply (or a closed connection), the daemon keeps
/// answering, and its group state is unchanged.
#[test]
fn rpc_requests_on_the_wire() {
    use crate::harness::group::{monitor, Daemon};
    let master = RedisNode::start();
    let secret = "0123456789abcdef0123456789abcdef";
    let d = Daemon::start_with_env(
        &monitor(master.port),
        &[],
        vec![("RAFTINEL_SECRET".into(), secret.into())],
    );
    let cluster = wait_for(Duration::from_secs(30), "the daemon's cluster id", || {
        d.raft_info()
            .ok()
            .and_then(|i| i.get("raft_cluster_id").cloned())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| "none yet".to_string())
    });
    let before = d.master_addr();
    let seeds: Vec<Vec<u8>> = [
        vec![
            "RAFTINEL",
            &cluster,
            "challenge",
            "00112233445566778899aabbccddeeff",
        ],
        vec!["RAFTINEL", &cluster, "status", "{}"],
        vec!["RAFTINEL", &cluster, "vote", "{\"to\":1}", "1", "00"],
        vec![
            "RAFTINEL",
            &cluster,
            "append",
            "{}",
            "18446744073709551615",
            "zz",
        ],
        vec!["RAFTINEL", "*", "status", "{}"],
    ]
    .iter()
    .map(|a| {
        let b: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
        encode_command(&b)
    })
    .collect();
    let budget = budget().min(Duration::from_secs(5));
    let mut rng = StdRng::seed_from_u64(base_seed());
    let deadline = Instant::now() + budget;
    let mut sent = 0;
    while Instant::now() < deadline {
        let mut input = seeds[rng.gen_range(0..seeds.len())].clone();
        mutate(&mut rng, &mut input, &seeds, RESP_TOKENS);
        // One connection per request, closed for writing after it: the
        // daemon answers what it could parse, then closes on end of file
        // (an incomplete request included).
        let mut conn = Conn::open(d.port);
        let _ = conn.send_raw(&input);
        conn.shutdown_write();
        loop {
            match conn.read_reply(Duration::from_secs(5)) {
                Reply::Frame(_) => {}
                Reply::Closed => break,
                Reply::Timeout => panic!(
                    "no end after a request closed for writing: {}",
                    escaped(&input)
                ),
            }
        }
        sent += 1;
        if sent % 50 == 0 {
            assert!(
                matches!(Conn::open(d.port).try_cmd(&["PING"], Duration::from_secs(5)),
                    Reply::Frame(Resp::Status(s)) if s == "PONG"),
                "the daemon stopped answering after {}",
                escaped(&input)
            );
        }
    }
    // Signed requests with mutated bodies reach the JSON decoding of every
    // operation (membership changes excepted: a signed join is obeyed).
    let bodies = rpc_seeds();
    let key_for = |c: &mut Conn| {
        use raftinel::consensus::trust::{nonce, GroupSecret, SessionKey};
        let mine = nonce();
        let theirs = c
            .cmd(&["RAFTINEL", &cluster, "challenge", &mine])
            .as_str()
            .expect("a server nonce");
        let secret = GroupSecret::new(secret.as_bytes()).unwrap();
        SessionKey::derive(&secret, mine.as_bytes(), theirs.as_bytes())
    };
    let mut conn = Conn::open(d.port);
    let mut key = key_for(&mut conn);
    let mut seq = 0u64;
    let deadline = Instant::now() + budget;
    let mut signed = 0;
    while Instant::now() < deadline {
        let op = ["append", "vote", "snapshot", "status", "propose"][rng.gen_range(0..5)];
        let mut body = bodies[rng.gen_range(0..bodies.len())].clone();
        mutate(&mut rng, &mut body, &bodies, &[]);
        seq += 1;
        let sig = key.sign_request(seq, cluster.as_bytes(), op.as_bytes(), &body);
        let seq_text = seq.to_string();
        let args: Vec<&[u8]> = vec![
            b"RAFTINEL",
            cluster.as_bytes(),
            op.as_bytes(),
            &body,
            seq_text.as_bytes(),
            sig.as_bytes(),
        ];
        let _ = conn.send_raw(&encode_command(&args));
        match conn.read_reply(Duration::from_secs(5)) {
            Reply::Frame(_) => {}
            Reply::Closed => {
                conn = Conn::open(d.port);
                key = key_for(&mut conn);
                seq = 0;
            }
            Reply::Timeout => panic!("no reply to a signed {op} with body {}", escaped(&body)),
        }
        signed += 1;
    }
    eprintln!("rpc_requests_on_the_wire: {signed} signed requests");
    assert!(matches!(
        Conn::open(d.port).try_cmd(&["PING"], Duration::from_secs(5)),
        Reply::Frame(Resp::Status(s)) if s == "PONG"
    ));
    assert_eq!(d.master_addr(), before);
    eprintln!("rpc_requests_on_the_wire: {sent} requests");
}
