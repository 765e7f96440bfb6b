//! Side-by-side tests: a real `redis-sentinel` 7.0.15 and raftinel watch the
//! same Redis nodes (same master name, quorum and down-after) and get the same
//! scripted conversations, in RESP2 and in RESP3. Replies are compared for
//! type, field names, field order, error texts and connection closing, after
//! masking what differs by nature (ids, times, ports of the daemons, counters).
//! Every difference is reported with both replies; a test fails only after
//! running its whole script, so one run shows every difference.

use crate::harness::resp::{Conn, Reply, Resp};
use crate::harness::*;
use std::time::Duration;

// ---------------------------------------------------------------- scripts

/// How a reply is normalized before comparison.
#[derive(Clone, Copy)]
enum Norm {
    Exact,
    /// One instance description (MASTER).
    Desc,
    /// An array of instance descriptions (MASTERS, REPLICAS, SENTINELS), sorted by name.
    DescList,
    /// Integers replaced by 0 (CLIENT ID and such), types kept.
    Ints,
    Custom(fn(&Resp) -> Resp),
}

enum Send {
    /// A command; `$MYID` in an argument is replaced by the side's own id.
    Cmd(Vec<String>),
    /// Raw bytes as they are.
    Raw(Vec<u8>),
    /// Nothing is sent: only report whether the server closed the connection.
    CheckClosed,
}

struct Step {
    send: Send,
    /// Number of reply frames to read (SUBSCRIBE a b gets 2).
    replies: usize,
    norm: Norm,
    /// Per-reply normalization for pipelines (else `norm` for every reply).
    per_reply: Vec<Norm>,
}

impl Step {
    fn norm_for(&self, reply: usize) -> Norm {
        self.per_reply.get(reply).copied().unwrap_or(self.norm)
    }
}

/// Several commands written at once (one TCP write), as clients pipeline
/// their handshakes; exactly one reply per command, in order.
fn pipeline(cmds: &[(&str, Norm)]) -> Step {
    let mut bytes = Vec::new();
    for (c, _) in cmds {
        let args: Vec<&[u8]> = c.split(' ').map(str::as_bytes).collect();
        bytes.extend_from_slice(&crate::harness::resp::encode(&args));
    }
    Step {
        send: Send::Raw(bytes),
        replies: cmds.len(),
        norm: Norm::Exact,
        per_reply: cmds.iter().map(|c| c.1).collect(),
    }
}

fn cmd(args: &str) -> Step {
    cmd_n(args, 1, Norm::Exact)
}

fn cmd_n(args: &str, replies: usize, norm: Norm) -> Step {
    Step {
        send: Send::Cmd(args.split(' ').map(String::from).collect()),
        replies,
        norm,
        per_reply: Vec::new(),
    }
}

fn cmd_norm(args: &str, norm: Norm) -> Step {
    cmd_n(args, 1, norm)
}

fn cmd_args(args: &[&str], norm: Norm) -> Step {
    Step {
        send: Send::Cmd(args.iter().map(|s| s.to_string()).collect()),
        replies: 1,
        norm,
        per_reply: Vec::new(),
    }
}

fn raw(bytes: &[u8], replies: usize) -> Step {
    Step {
        send: Send::Raw(bytes.to_vec()),
        replies,
        norm: Norm::Exact,
        per_reply: Vec::new(),
    }
}

fn check_closed() -> Step {
    Step {
        send: Send::CheckClosed,
        replies: 1,
        norm: Norm::Exact,
        per_reply: Vec::new(),
    }
}

fn label(step: &Step) -> String {
    match &step.send {
        Send::Cmd(a) => a.join(" "),
        Send::Raw(b) => {
            let s = String::from_utf8_lossy(b);
            let s: String = if s.len() > 60 {
                format!("{}... ({} bytes)", &s[..60], b.len())
            } else {
                s.into_owned()
            };
            format!("raw {s:?}")
        }
        Send::CheckClosed => "(is the connection closed?)".into(),
    }
}

/// Run a session on one connection; one `Vec<Reply>` per step.
fn run_session(port: u16, myid: &str, steps: &[Step]) -> Vec<Vec<Reply>> {
    let mut conn = Conn::open(port);
    let mut out = Vec::new();
    for step in steps {
        let mut replies = Vec::new();
        let sent = match &step.send {
            Send::Cmd(args) => {
                let args: Vec<String> = args.iter().map(|a| a.replace("$MYID", myid)).collect();
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                conn.send(&a).is_ok()
            }
            Send::Raw(b) => conn.send_raw(b).is_ok(),
            Send::CheckClosed => {
                let closed = conn.closed_by_peer();
                replies.push(if closed {
                    Reply::Closed
                } else {
                    Reply::Frame(Resp::Status("<connection still open>".into()))
                });
                out.push(replies);
                continue;
            }
        };
        for _ in 0..step.replies {
            if !sent {
                replies.push(Reply::Closed);
                continue;
            }
            replies.push(conn.read_reply(Duration::from_secs(5)));
        }
        out.push(replies);
    }
    out
}

// ---------------------------------------------------------------- masking

/// Description fields whose values depend on time or on the observer.
const VOLATILE_FIELDS: &[&str] = &[
    "link-pending-commands",
    "last-ping-sent",
    "last-ok-ping-reply",
    "last-ping-reply",
    "info-refresh",
    "role-reported-time",
    "s-down-time",
    "o-down-time",
    "master-link-down-time",
    "slave-repl-offset",
    "last-hello-message",
];

const MASKED: &str = "<masked>";

fn masked_bulk() -> Resp {
    Resp::bulk(MASKED)
}

/// Mask volatile values of one description. For sentinel descriptions the
/// identity (name, runid, port) differs by nature and is masked too.
fn mask_desc(d: &Resp) -> Resp {
    let is_sentinel = d
        .field("flags")
        .map(|f| f.split(',').any(|x| x == "sentinel"))
        .unwrap_or(false);
    let mask = |k: &str, v: &Resp| -> Resp {
        let volatile =
            VOLATILE_FIELDS.contains(&k) || (is_sentinel && matches!(k, "name" | "runid" | "port"));
        // Only bulk values are masked: a wrong type must still show up.
        if volatile && matches!(v, Resp::Bulk(_)) {
            masked_bulk()
        } else {
            v.clone()
        }
    };
    match d {
        Resp::Map(m) => Resp::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), mask(&k.as_str().unwrap_or_default(), v)))
                .collect(),
        ),
        Resp::Array(v) if v.len() % 2 == 0 => Resp::Array(
            v.chunks(2)
                .flat_map(|c| {
                    [
                        c[0].clone(),
                        mask(&c[0].as_str().unwrap_or_default(), &c[1]),
                    ]
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn mask_desc_list(v: &Resp) -> Resp {
    match v {
        Resp::Array(items) => {
            let mut items = items.clone();
            items.sort_by_key(|d| d.field("name").unwrap_or_default());
            Resp::Array(items.iter().map(mask_desc).collect())
        }
        other => other.clone(),
    }
}

fn map_leaves(v: &Resp, f: &dyn Fn(&Resp) -> Resp) -> Resp {
    match v {
        Resp::Array(x) => Resp::Array(x.iter().map(|i| map_leaves(i, f)).collect()),
        Resp::Set(x) => Resp::Set(x.iter().map(|i| map_leaves(i, f)).collect()),
        Resp::Push(x) => Resp::Push(x.iter().map(|i| map_leaves(i, f)).collect()),
        Resp::Map(m) => Resp::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), map_leaves(v, f)))
                .collect(),
        ),
        leaf => f(leaf),
    }
}

fn normalize(norm: Norm, r: &Reply) -> Reply {
    let Reply::Frame(v) = r else {
        return r.clone();
    };
    Reply::Frame(match norm {
        Norm::Exact => v.clone(),
        Norm::Desc => mask_desc(v),
        Norm::DescList => mask_desc_list(v),
        Norm::Ints => map_leaves(v, &|l| match l {
            Resp::Int(_) => Resp::Int(0),
            o => o.clone(),
        }),
        Norm::Custom(f) => f(v),
    })
}

/// HELLO reply: the client id differs by nature.
fn mask_hello(v: &Resp) -> Resp {
    match v {
        Resp::Map(m) => Resp::Map(
            m.iter()
                .map(|(k, val)| {
                    if k.as_str().as_deref() == Some("id") && matches!(val, Resp::Int(_)) {
                        (k.clone(), Resp::Int(0))
                    } else {
                        (k.clone(), val.clone())
                    }
                })
                .collect(),
        ),
        Resp::Array(items) => {
            let mut items = items.clone();
            for i in (0..items.len().saturating_sub(1)).step_by(2) {
                if items[i].as_str().as_deref() == Some("id")
                    && matches!(items[i + 1], Resp::Int(_))
                {
                    items[i + 1] = Resp::Int(0);
                }
            }
            Resp::Array(items)
        }
        o => o.clone(),
    }
}

/// A 40-hex-char bulk becomes a placeholder (MYID, vote replies).
fn mask_runids(v: &Resp) -> Resp {
    map_leaves(v, &|l| match l {
        Resp::Bulk(b) if b.len() == 40 && b.iter().all(|c| c.is_ascii_hexdigit()) => {
            Resp::bulk("<40-hex runid>")
        }
        o => o.clone(),
    })
}

/// ROLE lists master names in hash order: compare them sorted.
fn role_sorted(v: &Resp) -> Resp {
    match v {
        Resp::Array(items) if items.len() == 2 => {
            Resp::Array(vec![items[0].clone(), sorted(&items[1])])
        }
        o => o.clone(),
    }
}

/// A master added a moment ago: its link state and INFO-derived fields depend
/// on timing; its configuration fields do not.
fn mask_new_master(v: &Resp) -> Resp {
    const CONFIG: &[&str] = &[
        "name",
        "ip",
        "port",
        "down-after-milliseconds",
        "config-epoch",
        "num-other-sentinels",
        "quorum",
        "failover-timeout",
        "parallel-syncs",
    ];
    let Some(pairs) = v.pairs() else {
        return v.clone();
    };
    let masked: Vec<(Resp, Resp)> = pairs
        .into_iter()
        .map(|(k, val)| {
            let keep = CONFIG.contains(&k.as_str()) || !matches!(val, Resp::Bulk(_));
            (Resp::bulk(&k), if keep { val } else { masked_bulk() })
        })
        .collect();
    match v {
        Resp::Map(_) => Resp::Map(masked),
        _ => Resp::Array(masked.into_iter().flat_map(|(k, v)| [k, v]).collect()),
    }
}

fn sorted(v: &Resp) -> Resp {
    match v {
        Resp::Array(items) => {
            let mut items = items.clone();
            items.sort_by_key(|i| i.as_str().unwrap_or_default());
            Resp::Array(items)
        }
        o => o.clone(),
    }
}

/// INFO values that are the same for any sentinel watching the same nodes;
/// everything else is compared by key only.
const INFO_STABLE_KEYS: &[&str] = &[
    "redis_version",
    "redis_mode",
    "arch_bits",
    "process_supervised",
    "configured_hz",
    "maxclients",
    "sentinel_masters",
    "sentinel_tilt",
    "sentinel_tilt_since_seconds",
    "sentinel_running_scripts",
    "sentinel_scripts_queue_length",
    "sentinel_simulate_failure_flags",
    "master0",
];

/// INFO: the reply type, then one line per INFO line (`# Section`, blank,
/// `key`, or `key:value` for stable keys); and whether every line ends in CRLF.
fn info_shape(v: &Resp) -> Resp {
    let (kind, text) = match v {
        Resp::Bulk(b) => ("bulk", String::from_utf8_lossy(b).into_owned()),
        Resp::Verbatim(_, b) => ("verbatim", String::from_utf8_lossy(b).into_owned()),
        other => return other.clone(),
    };
    let mut lines = vec![Resp::Status(format!("reply type: {kind}"))];
    if !text.is_empty() {
        lines.push(Resp::Status(format!(
            "ends with CRLF: {}; bare LF inside: {}",
            text.ends_with("\r\n"),
            text.replace("\r\n", "").contains('\n')
        )));
    }
    for line in text.split("\r\n") {
        let s = match line.split_once(':') {
            Some((k, val)) if INFO_STABLE_KEYS.contains(&k) => format!("{k}:{val}"),
            Some((k, _)) => k.to_string(),
            None => line.to_string(),
        };
        lines.push(Resp::Status(s));
    }
    Resp::Array(lines)
}

/// Only the `sentinel_simulate_failure_flags` line of INFO (the rest depends
/// on discovery timing in tests that do not settle).
fn simulate_flags(v: &Resp) -> Resp {
    match v.as_str() {
        Some(text) if !v.is_error() => Resp::Status(
            info_field(&text, "sentinel_simulate_failure_flags")
                .unwrap_or_else(|| "<missing>".into()),
        ),
        _ => v.clone(),
    }
}

/// INFO-CACHE: ages and cached INFO texts differ; keep the structure.
fn mask_info_cache(v: &Resp) -> Resp {
    map_leaves(v, &|l| match l {
        Resp::Int(_) => Resp::Int(0),
        Resp::Bulk(b) if b.len() > 100 => Resp::bulk("<cached INFO text>"),
        o => o.clone(),
    })
}

/// CLIENT INFO / CLIENT LIST: field names in order.
fn client_info_keys(v: &Resp) -> Resp {
    match v.as_str() {
        Some(s) if !matches!(v, Resp::Error(_)) => Resp::Array(
            s.split_whitespace()
                .map(|kv| Resp::Status(kv.split('=').next().unwrap_or("").to_string()))
                .collect(),
        ),
        _ => v.clone(),
    }
}

// ---------------------------------------------------------------- comparing

/// Path of the first difference between two values, for the report.
fn first_diff(a: &Resp, b: &Resp, path: &str) -> Option<String> {
    match (a, b) {
        (Resp::Array(x), Resp::Array(y))
        | (Resp::Set(x), Resp::Set(y))
        | (Resp::Push(x), Resp::Push(y)) => {
            for (i, (p, q)) in x.iter().zip(y.iter()).enumerate() {
                if let Some(d) = first_diff(p, q, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| {
                format!(
                    "{path}: length {} (redis-sentinel) vs {} (raftinel)",
                    x.len(),
                    y.len()
                )
            })
        }
        (Resp::Map(x), Resp::Map(y)) => {
            for (i, ((k1, v1), (k2, v2))) in x.iter().zip(y.iter()).enumerate() {
                if k1 != k2 {
                    return Some(format!(
                        "{path}: key #{i} is {:?} (redis-sentinel) vs {:?} (raftinel)",
                        k1.as_str().unwrap_or_default(),
                        k2.as_str().unwrap_or_default()
                    ));
                }
                let key = k1.as_str().unwrap_or_default();
                if let Some(d) = first_diff(v1, v2, &format!("{path}.{key}")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| {
                format!(
                    "{path}: {} pairs (redis-sentinel) vs {} (raftinel)",
                    x.len(),
                    y.len()
                )
            })
        }
        _ if a == b => None,
        _ => Some(format!(
            "{path}: {} (redis-sentinel) vs {} (raftinel)",
            clip(a.pretty().trim_end()),
            clip(b.pretty().trim_end())
        )),
    }
}

struct Sides<'a> {
    oracle: &'a SentinelProc,
    raftinel: &'a SentinelProc,
    oracle_id: String,
    raftinel_id: String,
}

impl<'a> Sides<'a> {
    fn new(oracle: &'a SentinelProc, raftinel: &'a SentinelProc, pass: Option<&str>) -> Sides<'a> {
        let id = |s: &SentinelProc| {
            let mut c = s.conn();
            if let Some(p) = pass {
                c.cmd(&["AUTH", p]);
            }
            match c.try_cmd(&["SENTINEL", "MYID"], Duration::from_secs(5)) {
                Reply::Frame(Resp::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
                _ => String::new(),
            }
        };
        Sides {
            oracle_id: id(oracle),
            raftinel_id: id(raftinel),
            oracle,
            raftinel,
        }
    }

    /// Run `steps` on both sides; append a report line per difference.
    fn compare(&self, session: &str, steps: &[Step], diffs: &mut Vec<String>) {
        let a = run_session(self.oracle.port, &self.oracle_id, steps);
        let b = run_session(self.raftinel.port, &self.raftinel_id, steps);
        for (i, step) in steps.iter().enumerate() {
            for r in 0..step.replies {
                let ra = normalize(step.norm_for(r), &a[i][r]);
                let rb = normalize(step.norm_for(r), &b[i][r]);
                if ra == rb {
                    continue;
                }
                let which = if step.replies > 1 {
                    format!(" (reply {} of {})", r + 1, step.replies)
                } else {
                    String::new()
                };
                let first = match (&ra, &rb) {
                    (Reply::Frame(x), Reply::Frame(y)) => {
                        first_diff(x, y, "reply").unwrap_or_default()
                    }
                    _ => String::new(),
                };
                diffs.push(format!(
                    "[{session}] step {}: {}{which}\n  first difference: {first}\n  --- redis-sentinel 7.0.15 (normalized) ---\n{}  --- raftinel (normalized) ---\n{}",
                    i + 1,
                    label(step),
                    indent(&ra.describe()),
                    indent(&rb.describe()),
                ));
            }
        }
    }
}

fn clip(s: &str) -> String {
    if s.len() <= 300 {
        s.to_string()
    } else {
        let cut = (0..=300)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}... ({} chars)", &s[..cut], s.len())
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

fn report(test: &str, diffs: &[String]) {
    if diffs.is_empty() {
        return;
    }
    let mut text = format!(
        "{test}: {} difference(s) between redis-sentinel 7.0.15 and raftinel:\n\n",
        diffs.len()
    );
    for d in diffs {
        text.push_str(d);
        text.push('\n');
    }
    panic!("{text}");
}

// ---------------------------------------------------------------- environments

/// A master (plus `replicas`), a real sentinel and raftinel, same config.
struct Env {
    topo: Topology,
    oracle: SentinelProc,
    raftinel: SentinelProc,
}

impl Env {
    fn new(replicas: usize) -> Env {
        Self::with_quorum(replicas, 2)
    }

    fn with_quorum(replicas: usize, quorum: u32) -> Env {
        Self::custom(Topology::new(replicas), quorum, &[])
    }

    /// Both sentinels with the same monitor block and extra config lines.
    fn custom(topo: Topology, quorum: u32, extra: &[String]) -> Env {
        let m = [Monitor::new(topo.master.port, quorum)];
        let conf = |port: u16, dir: &std::path::Path| sentinel_conf(port, dir, &m, extra);
        let oracle = SentinelProc::with_conf(Kind::Oracle, conf);
        let raftinel = SentinelProc::with_conf(Kind::Raftinel, conf);
        Env {
            topo,
            oracle,
            raftinel,
        }
    }

    /// Wait (bounded, not failing) until both sides know the replicas with
    /// fresh INFO and see each other, so replies are comparable. If raftinel
    /// never gets there the comparisons show how it differs.
    fn settle(&self) {
        let want_replicas = self.topo.replicas.len();
        for (side, name) in [
            (&self.oracle, "redis-sentinel"),
            (&self.raftinel, "raftinel"),
        ] {
            let ok = wait_until(EVENTUALLY, || {
                let mut c = match Conn::connect(side.port) {
                    Ok(c) => c,
                    Err(_) => return false,
                };
                let reps = c.try_cmd(&["SENTINEL", "REPLICAS", MASTER], Duration::from_secs(2));
                let sents = c.try_cmd(&["SENTINEL", "SENTINELS", MASTER], Duration::from_secs(2));
                let master = c.try_cmd(&["SENTINEL", "MASTER", MASTER], Duration::from_secs(2));
                let healthy = |r: &Reply, flag: &str, n: usize| match r {
                    Reply::Frame(Resp::Array(v)) => {
                        v.len() == n
                            && v.iter().all(|d| {
                                d.field("flags").as_deref() == Some(flag)
                                    && d.field("master-link-status").as_deref() != Some("err")
                                    && d.field("info-refresh").as_deref() != Some("0")
                            })
                    }
                    _ => false,
                };
                let master_ok = matches!(&master, Reply::Frame(m)
                    if m.field("flags").as_deref() == Some("master")
                        && m.field("info-refresh").as_deref() != Some("0"));
                healthy(&reps, "slave", want_replicas)
                    && healthy(&sents, "sentinel", 1)
                    && master_ok
            });
            if !ok {
                eprintln!("NOTE: {name} did not settle (replicas known, peer seen) within {EVENTUALLY:?}; comparing anyway");
            }
        }
    }

    fn sides(&self) -> Sides<'_> {
        Sides::new(&self.oracle, &self.raftinel, None)
    }

    fn sides_with_password(&self, pass: &str) -> Sides<'_> {
        Sides::new(&self.oracle, &self.raftinel, Some(pass))
    }
}

fn with_resp3(mut steps: Vec<Step>) -> Vec<Step> {
    steps.insert(0, cmd_norm("HELLO 3", Norm::Custom(mask_hello)));
    steps
}

// ---------------------------------------------------------------- tests

fn generic_steps() -> Vec<Step> {
    let long_args: Vec<String> = (0..40).map(|i| format!("argument-{i:02}")).collect();
    let mut unknown_long = vec!["NOSUCHCOMMAND"];
    unknown_long.extend(long_args.iter().map(String::as_str));
    let long_name = "X".repeat(200);
    vec![
        cmd("PING"),
        cmd("ping"),
        cmd("PING hello"),
        cmd("PING a b"),
        raw(b"PING\r\n", 1),
        raw(b"ping hello\r\n", 1),
        raw(b"PING\n", 1),
        raw(b"PING\r\n\n", 1),
        raw(b"\r\n", 0),
        cmd("PING"),
        cmd("ROLE"),
        cmd("role"),
        cmd("ROLE extra"),
        cmd_norm("HELLO", Norm::Custom(mask_hello)),
        cmd_norm("HELLO 2", Norm::Custom(mask_hello)),
        cmd("HELLO 4"),
        cmd("HELLO 1"),
        cmd("HELLO abc"),
        cmd_norm("HELLO 2 SETNAME hello-name", Norm::Custom(mask_hello)),
        cmd("CLIENT GETNAME"),
        cmd("HELLO 2 SETNAME"),
        cmd("HELLO 2 FOO"),
        cmd("AUTH foo"),
        cmd("AUTH default anything"),
        cmd("AUTH a b c"),
        cmd("AUTH"),
        cmd("COMMAND COUNT"),
        cmd_norm("COMMAND LIST", Norm::Custom(sorted)),
        cmd("COMMAND FOO"),
        cmd("COMMAND COUNT extra"),
        cmd("CLIENT SETNAME"),
        cmd("CLIENT SETNAME foo"),
        cmd("CLIENT GETNAME"),
        cmd_args(&["CLIENT", "SETNAME", "a b"], Norm::Exact),
        cmd_args(&["CLIENT", "SETNAME", ""], Norm::Exact),
        cmd("CLIENT GETNAME"),
        cmd_norm("CLIENT ID", Norm::Ints),
        cmd("CLIENT ID extra"),
        cmd_norm("CLIENT INFO", Norm::Custom(client_info_keys)),
        cmd("CLIENT SETINFO lib-name x"),
        cmd("CLIENT NO-TOUCH on"),
        cmd("CLIENT FOO"),
        cmd("CLIENT"),
        cmd("GET x"),
        cmd("FOO"),
        cmd("foo bar baz"),
        cmd("QUIT"),
        cmd("ECHO hi"),
        cmd("SELECT 0"),
        cmd("MULTI"),
        cmd("CONFIG GET *"),
        cmd("DEBUG SLEEP 0"),
        cmd("SSUBSCRIBE x"),
        cmd("PUBSUB CHANNELS"),
        cmd_args(&unknown_long, Norm::Exact),
        cmd_args(&[&long_name, "a"], Norm::Exact),
        cmd("PUBLISH foo bar"),
        cmd("PUBLISH foo"),
        cmd("SENTINEL"),
        cmd("sentinel FOO"),
        cmd("SENTINEL foo bar baz"),
        cmd("PING"),
    ]
}

/// ACL, COMMAND and the HELP texts: deterministic replies of the generic
/// commands that tools and operators use.
fn admin_steps() -> Vec<Step> {
    vec![
        cmd("ACL WHOAMI"),
        cmd("ACL USERS"),
        cmd("ACL LIST"),
        cmd("ACL CAT"),
        cmd_norm("ACL CAT pubsub", Norm::Custom(sorted)),
        cmd("ACL CAT nosuch"),
        cmd("ACL GETUSER default"),
        cmd("ACL GETUSER nosuch"),
        cmd("ACL DRYRUN default PING"),
        cmd("ACL DRYRUN default SENTINEL MASTERS"),
        cmd("ACL DRYRUN nosuch PING"),
        cmd_norm(
            "ACL GENPASS",
            Norm::Custom(|v| match v {
                Resp::Bulk(b) => Resp::bulk(&format!("<{} chars>", b.len())),
                o => o.clone(),
            }),
        ),
        cmd("ACL LOG"),
        cmd("ACL LOG RESET"),
        cmd("ACL SAVE"),
        cmd("ACL LOAD"),
        cmd("ACL FOO"),
        cmd("ACL HELP"),
        cmd("CLIENT HELP"),
        cmd("COMMAND HELP"),
        cmd("COMMAND INFO ping"),
        cmd("COMMAND INFO nosuch"),
        cmd("COMMAND DOCS ping"),
        cmd("COMMAND GETKEYS PING"),
        cmd("COMMAND GETKEYS"),
        cmd_norm("CLIENT TRACKINGINFO", Norm::Exact),
        cmd("CLIENT GETREDIR"),
        cmd("CLIENT NO-EVICT on"),
        cmd("CLIENT REPLY ON"),
        cmd("CLIENT KILL 1.2.3.4:5"),
        cmd("CLIENT KILL ID 999999999"),
        cmd("CLIENT UNBLOCK 999999999"),
        cmd("PING"),
    ]
}

/// PING, inline PING, ROLE, HELLO 2/3/4, AUTH, COMMAND, CLIENT, unknown
/// commands, arity and unknown-subcommand errors, in RESP2 and RESP3.
#[test]
fn diff_generic_commands() {
    let env = Env::new(0);
    let sides = env.sides();
    let mut diffs = Vec::new();
    sides.compare("RESP2 generic", &generic_steps(), &mut diffs);
    sides.compare("RESP3 generic", &with_resp3(generic_steps()), &mut diffs);
    sides.compare("RESP2 acl/command/help", &admin_steps(), &mut diffs);
    sides.compare(
        "RESP3 acl/command/help",
        &with_resp3(admin_steps()),
        &mut diffs,
    );
    report("diff_generic_commands", &diffs);
}

fn pubsub_steps() -> Vec<Step> {
    vec![
        cmd_n("SUBSCRIBE foo bar", 2, Norm::Exact),
        cmd_n("PSUBSCRIBE nomatch*", 1, Norm::Exact),
        cmd("PING"),
        cmd("PING hi"),
        // RESP2 refuses these while subscribed; RESP3 runs them. (Content is
        // compared elsewhere: this env does not wait for INFO to arrive.)
        cmd_norm(
            "SENTINEL MASTERS",
            Norm::Custom(|v| match v {
                Resp::Array(items) => Resp::Array(items.iter().map(mask_new_master).collect()),
                o => o.clone(),
            }),
        ),
        cmd("ROLE"),
        cmd_norm("INFO", Norm::Custom(info_shape)),
        cmd("GET x"),
        cmd_n("SUBSCRIBE foo", 1, Norm::Exact),
        cmd_n("UNSUBSCRIBE foo", 1, Norm::Exact),
        cmd_n("PUNSUBSCRIBE", 1, Norm::Exact),
        cmd_n("UNSUBSCRIBE", 1, Norm::Exact),
        cmd("PING"),
        cmd_n("UNSUBSCRIBE", 1, Norm::Exact),
        cmd_n("PUNSUBSCRIBE", 1, Norm::Exact),
        cmd_n("UNSUBSCRIBE nosuch", 1, Norm::Exact),
        cmd_n("PSUBSCRIBE a* b*", 2, Norm::Exact),
        cmd_n("PUNSUBSCRIBE a*", 1, Norm::Exact),
        cmd("PING"),
        cmd_n("PUNSUBSCRIBE", 1, Norm::Exact),
        cmd("SUBSCRIBE"),
        cmd("PSUBSCRIBE"),
        cmd("PING"),
    ]
}

/// SUBSCRIBE/PSUBSCRIBE confirmations, the subscribed-context errors and PING
/// forms, UNSUBSCRIBE/PUNSUBSCRIBE replies, in RESP2 and RESP3.
#[test]
fn diff_pubsub() {
    let env = Env::new(0);
    let sides = env.sides();
    let mut diffs = Vec::new();
    sides.compare("RESP2 pubsub", &pubsub_steps(), &mut diffs);
    sides.compare("RESP3 pubsub", &with_resp3(pubsub_steps()), &mut diffs);
    report("diff_pubsub", &diffs);
}

/// Malformed requests: the error text and whether the connection is then
/// closed, exactly as real Sentinel does. Each case on a fresh connection.
#[test]
fn diff_malformed_resp() {
    let env = Env::new(0);
    let sides = env.sides();
    let mut diffs = Vec::new();
    let big_inline = vec![b'a'; 70 * 1024];
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("multibulk length not a number", b"*abc\r\n".to_vec(), 1),
        ("bulk length not a number", b"*1\r\n$abc\r\n".to_vec(), 1),
        ("expected $", b"*1\r\nPING\r\n".to_vec(), 1),
        (
            "negative bulk length",
            b"*2\r\n$4\r\nPING\r\n$-1\r\n".to_vec(),
            1,
        ),
        ("huge bulk length", b"*1\r\n$999999999999\r\n".to_vec(), 1),
        ("huge multibulk length", b"*99999999999\r\n".to_vec(), 1),
        ("unbalanced quotes", b"PING \"unbalanced\r\n".to_vec(), 1),
        (
            "negative multibulk then inline",
            b"*-5\r\nPING\r\n".to_vec(),
            1,
        ),
        (
            "zero multibulk then command",
            b"*0\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
            1,
        ),
        (
            "bulk without CRLF terminator",
            b"*1\r\n$4\r\nPINGxx".to_vec(),
            1,
        ),
        ("too big inline request", big_inline, 1),
        ("quoted inline arguments", b"PING \"a b\"\r\n".to_vec(), 1),
        (
            "escaped inline argument",
            b"PING \"\\x41\\n\"\r\n".to_vec(),
            1,
        ),
        (
            "single-quoted inline argument",
            b"PING 'x y'\r\n".to_vec(),
            1,
        ),
        (
            "pipelined commands",
            b"PING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n".to_vec(),
            3,
        ),
        (
            "500 pipelined PINGs",
            b"*1\r\n$4\r\nPING\r\n".repeat(500),
            500,
        ),
        (
            "PING with a 100 KB argument",
            {
                let arg = vec![b'x'; 100 * 1024];
                crate::harness::resp::encode(&[b"PING", &arg])
            },
            1,
        ),
        (
            "command split across writes is still one command",
            b"*2\r\n$4\r\nPI".to_vec(),
            0,
        ),
    ];
    for (name, bytes, replies) in cases {
        let steps = vec![raw(&bytes, replies), check_closed()];
        sides.compare(&format!("malformed: {name}"), &steps, &mut diffs);
    }
    report("diff_malformed_resp", &diffs);
}

fn info_steps() -> Vec<Step> {
    let info = |s: &str| cmd_norm(s, Norm::Custom(info_shape));
    vec![
        info("INFO"),
        info("INFO all"),
        info("INFO default"),
        info("INFO everything"),
        info("INFO server"),
        info("INFO clients"),
        info("INFO stats"),
        info("INFO cpu"),
        info("INFO sentinel"),
        info("INFO SENTINEL"),
        info("INFO replication"),
        info("INFO keyspace"),
        info("INFO server sentinel replication"),
        info("INFO cpu all"),
        info("INFO nosuchsection"),
    ]
}

/// INFO and each section: reply type, section order, the list of keys in
/// order, and the values that do not depend on the process.
#[test]
fn diff_info() {
    let env = Env::new(1);
    env.settle();
    let sides = env.sides();
    let mut diffs = Vec::new();
    sides.compare("RESP2 info", &info_steps(), &mut diffs);
    sides.compare("RESP3 info", &with_resp3(info_steps()), &mut diffs);
    report("diff_info", &diffs);
}

fn sentinel_steps(mport: u16) -> Vec<Step> {
    let p = mport.to_string();
    let with_port = |s: &str, norm: Norm| cmd_norm(&s.replace("$MPORT", &p), norm);
    vec![
        cmd_norm("SENTINEL MASTERS", Norm::DescList),
        cmd_norm("SENTINEL MASTER mymaster", Norm::Desc),
        cmd_norm("sentinel master mymaster", Norm::Desc),
        cmd("SENTINEL MASTER nosuch"),
        cmd("SENTINEL MASTER MYMASTER"),
        cmd_norm("SENTINEL REPLICAS mymaster", Norm::DescList),
        cmd_norm("SENTINEL SLAVES mymaster", Norm::DescList),
        cmd("SENTINEL REPLICAS nosuch"),
        cmd("SENTINEL SLAVES nosuch"),
        cmd_norm("SENTINEL SENTINELS mymaster", Norm::DescList),
        cmd("SENTINEL SENTINELS nosuch"),
        cmd("SENTINEL GET-MASTER-ADDR-BY-NAME mymaster"),
        cmd("SENTINEL get-master-addr-by-name mymaster"),
        cmd("SENTINEL GET-MASTER-ADDR-BY-NAME nosuch"),
        cmd_norm("SENTINEL MYID", Norm::Custom(mask_runids)),
        cmd("SENTINEL MYID extra"),
        cmd("SENTINEL CKQUORUM mymaster"),
        cmd("SENTINEL CKQUORUM nosuch"),
        cmd_norm(
            "SENTINEL INFO-CACHE mymaster",
            Norm::Custom(mask_info_cache),
        ),
        cmd_norm("SENTINEL INFO-CACHE nosuch", Norm::Custom(mask_info_cache)),
        cmd_norm(
            "SENTINEL INFO-CACHE nosuch mymaster",
            Norm::Custom(mask_info_cache),
        ),
        cmd("SENTINEL INFO-CACHE"),
        cmd("SENTINEL PENDING-SCRIPTS"),
        cmd("SENTINEL PENDING-SCRIPTS extra"),
        cmd("SENTINEL DEBUG"),
        cmd("SENTINEL DEBUG nosuch 1"),
        cmd("SENTINEL DEBUG info-period 0"),
        cmd("SENTINEL DEBUG info-period"),
        cmd("SENTINEL SIMULATE-FAILURE HELP"),
        cmd("SENTINEL SIMULATE-FAILURE help"),
        cmd("SENTINEL SIMULATE-FAILURE nosuch"),
        cmd("SENTINEL SIMULATE-FAILURE"),
        with_port(
            "SENTINEL IS-MASTER-DOWN-BY-ADDR 127.0.0.1 $MPORT 0 *",
            Norm::Exact,
        ),
        cmd("SENTINEL IS-MASTER-DOWN-BY-ADDR 10.255.255.1 1 0 *"),
        cmd("SENTINEL IS-MASTER-DOWN-BY-ADDR 127.0.0.1 abc 0 *"),
        with_port(
            "SENTINEL IS-MASTER-DOWN-BY-ADDR 127.0.0.1 $MPORT abc *",
            Norm::Exact,
        ),
        cmd("SENTINEL IS-MASTER-DOWN-BY-ADDR 127.0.0.1 1 0"),
        cmd("SENTINEL CONFIG GET *"),
        cmd("SENTINEL CONFIG GET announce-*"),
        cmd("SENTINEL CONFIG GET ANNOUNCE-PORT"),
        cmd("SENTINEL CONFIG GET nomatch"),
        cmd("SENTINEL CONFIG GET loglevel"),
        cmd("SENTINEL CONFIG GET"),
        cmd("SENTINEL CONFIG"),
        cmd("SENTINEL CONFIG SET nosuch x"),
        cmd("SENTINEL CONFIG SET resolve-hostnames maybe"),
        cmd("SENTINEL CONFIG SET announce-port 70000"),
        cmd("SENTINEL CONFIG SET announce-port"),
        cmd("SENTINEL CONFIG REWRITE"),
        cmd("SENTINEL HELP"),
        cmd("sentinel help"),
        cmd("SENTINEL HELP extra"),
        cmd("SENTINEL FAILOVER nosuch"),
        cmd("SENTINEL RESET nosuch*"),
        cmd("SENTINEL RESET"),
        cmd("SENTINEL SET mymaster"),
        cmd("SENTINEL SET mymaster quorum"),
        cmd("SENTINEL SET nosuch quorum 2"),
        cmd("SENTINEL SET mymaster nosuch 1"),
        cmd("SENTINEL SET mymaster quorum abc"),
        cmd("SENTINEL SET mymaster quorum 0"),
        cmd("SENTINEL SET mymaster down-after-milliseconds -1"),
        cmd("SENTINEL SET mymaster notification-script /bin/true"),
        cmd("SENTINEL SET mymaster rename-command PING"),
        cmd("SENTINEL REMOVE nosuch"),
        cmd("SENTINEL REMOVE"),
        cmd("SENTINEL MONITOR"),
        cmd("SENTINEL MONITOR mymaster 127.0.0.1 1 2"),
        cmd("SENTINEL MASTER"),
        cmd("SENTINEL MASTERS extra"),
        cmd("SENTINEL GET-MASTER-ADDR-BY-NAME"),
        cmd("SENTINEL IS-MASTER-DOWN-BY-ADDR a b c"),
        cmd("SENTINEL FOO"),
        cmd("SENTINEL foo bar"),
        cmd("SENTINEL PING"),
        cmd("PING"),
    ]
}

/// Every SENTINEL subcommand (read-only forms and error paths), RESP2 and
/// RESP3, then a vote request carrying the daemon's own id.
#[test]
fn diff_sentinel_subcommands() {
    let env = Env::new(1);
    env.settle();
    let sides = env.sides();
    let mport = env.topo.master.port;
    let mut diffs = Vec::new();
    sides.compare("RESP2 sentinel", &sentinel_steps(mport), &mut diffs);
    sides.compare(
        "RESP3 sentinel",
        &with_resp3(sentinel_steps(mport)),
        &mut diffs,
    );
    // A vote request with the daemon's own id and a higher epoch is granted
    // and echoed, as Sentinel does; a repeat in the same epoch returns the vote.
    let vote = format!("SENTINEL IS-MASTER-DOWN-BY-ADDR 127.0.0.1 {mport} 50 $MYID");
    let steps = vec![
        cmd_norm(&vote, Norm::Custom(mask_runids)),
        cmd_norm(&vote, Norm::Custom(mask_runids)),
        cmd_norm(
            &format!("SENTINEL IS-MASTER-DOWN-BY-ADDR 127.0.0.1 {mport} 40 $MYID"),
            Norm::Custom(mask_runids),
        ),
        cmd_norm("SENTINEL MASTER mymaster", Norm::Desc),
        cmd_norm("INFO sentinel", Norm::Custom(info_shape)),
    ];
    sides.compare("RESP2 vote", &steps, &mut diffs);
    report("diff_sentinel_subcommands", &diffs);
}

/// MONITOR / SET / REMOVE sent to every daemon one by one (two real
/// sentinels and two raftinel daemons watching the same master): each daemon
/// gives the same replies as the real sentinels, and its config file follows.
#[test]
fn diff_monitor_remove_set() {
    let topo = Topology::new(0);
    let other = RedisNode::start();
    let m = [Monitor::new(topo.master.port, 2)];
    let oracles = [SentinelProc::oracle(&m), SentinelProc::oracle(&m)];
    let daemons = [SentinelProc::raftinel(&m), SentinelProc::raftinel(&m)];
    let op = other.port.to_string();
    let steps = || -> Vec<Step> {
        let c = |s: &str| cmd(&s.replace("$OP", &op));
        let d = |s: &str, n: Norm| cmd_norm(&s.replace("$OP", &op), n);
        vec![
            c("SENTINEL MONITOR other 127.0.0.1 $OP abc"),
            c("SENTINEL MONITOR other 127.0.0.1 notaport 2"),
            c("SENTINEL MONITOR other 127.0.0.1 $OP 0"),
            c("SENTINEL MONITOR other not-an-ip $OP 2"),
            c("SENTINEL MONITOR mymaster 127.0.0.1 $OP 2"),
            c("SENTINEL MONITOR other 127.0.0.1 70000 2"),
            c("SENTINEL MONITOR other 127.0.0.1 $OP 2"),
            c("SENTINEL MONITOR other 127.0.0.1 $OP 2"),
            c("SENTINEL SET other down-after-milliseconds 1000"),
            c("SENTINEL SET other failover-timeout 5000 parallel-syncs 2"),
            c("SENTINEL SET other quorum 1"),
            c("SENTINEL SET other quorum 0"),
            c("SENTINEL SET other parallel-syncs 0"),
            c("SENTINEL SET other master-reboot-down-after-period 0"),
            c("SENTINEL SET other auth-pass secret"),
            c("SENTINEL SET other auth-pass"),
            c("SENTINEL SET other foo bar"),
            c("SENTINEL SET other quorum 2 foo bar"),
            d("SENTINEL MASTER other", Norm::Custom(mask_new_master)),
            d("ROLE", Norm::Custom(role_sorted)),
            c("SENTINEL GET-MASTER-ADDR-BY-NAME other"),
            c("SENTINEL REMOVE other"),
            c("SENTINEL REMOVE other"),
            c("SENTINEL MASTER other"),
            c("ROLE"),
            c("SENTINEL MONITOR other 127.0.0.1 $OP 2"),
            c("SENTINEL RESET other"),
            c("SENTINEL REMOVE other"),
            // Global settings, set to their defaults (no behaviour change).
            c("SENTINEL CONFIG SET resolve-hostnames no"),
            c("SENTINEL CONFIG SET announce-hostnames NO"),
            c("SENTINEL CONFIG SET announce-port 0"),
            c("SENTINEL CONFIG SET announce-ip 1.2.3.4 extra"),
            c("SENTINEL CONFIG GET announce-*"),
            c("SENTINEL FLUSHCONFIG"),
            c("SENTINEL FLUSHCONFIG extra"),
            c("SENTINEL DEBUG info-period 10000 ping-period 1000"),
            c("SENTINEL DEBUG"),
            c("SENTINEL SIMULATE-FAILURE crash-after-election crash-after-promotion"),
            d("INFO sentinel", Norm::Custom(simulate_flags)),
            c("SENTINEL SIMULATE-FAILURE CRASH-AFTER-ELECTION nosuch"),
            d("INFO sentinel", Norm::Custom(simulate_flags)),
            c("SENTINEL SIMULATE-FAILURE nosuch"),
            d("INFO sentinel", Norm::Custom(simulate_flags)),
            c("SENTINEL RESET nosuch"),
            c("SENTINEL RESET *"),
        ]
    };
    let mut diffs = Vec::new();
    // Daemons in turn: oracle, raftinel, oracle, raftinel.
    for (i, (o, d)) in oracles.iter().zip(daemons.iter()).enumerate() {
        let sides = Sides::new(o, d, None);
        sides.compare(&format!("daemon pair {}", i + 1), &steps(), &mut diffs);
    }
    // The config file of each daemon follows MONITOR/REMOVE.
    for d in &daemons {
        let mut c = d.conn();
        assert_eq!(
            c.cmd(&["SENTINEL", "MONITOR", "cfgcheck", "127.0.0.1", &op, "2"]),
            Resp::Status("OK".into())
        );
        let text = d.conf_text();
        assert!(
            text.lines()
                .any(|l| l == format!("sentinel monitor cfgcheck 127.0.0.1 {op} 2")),
            "config after MONITOR lacks the monitor line:\n{text}"
        );
        assert_eq!(
            c.cmd(&[
                "SENTINEL",
                "SET",
                "cfgcheck",
                "down-after-milliseconds",
                "4321"
            ]),
            Resp::Status("OK".into())
        );
        let text = d.conf_text();
        assert!(
            text.lines()
                .any(|l| l == "sentinel down-after-milliseconds cfgcheck 4321"),
            "config after SET lacks the down-after line:\n{text}"
        );
        assert_eq!(
            c.cmd(&["SENTINEL", "REMOVE", "cfgcheck"]),
            Resp::Status("OK".into())
        );
        let text = d.conf_text();
        assert!(
            !text.contains("cfgcheck"),
            "config after REMOVE still names the master:\n{text}"
        );
    }
    report("diff_monitor_remove_set", &diffs);
}

/// The connection sequences of real clients, pipelined as
/// they send them: Jedis 8, Lettuce, redis-py 8, go-redis, redis-rs, fred and
/// redis_exporter. Exactly one reply per command, each as real Sentinel's.
#[test]
fn diff_client_handshakes() {
    let env = Env::new(1);
    env.settle();
    let sides = env.sides();
    let hello = Norm::Custom(mask_hello);
    let x = Norm::Exact;
    let mut diffs = Vec::new();
    let sessions: Vec<(&str, Vec<Step>)> = vec![
        (
            "Jedis 8",
            vec![
                cmd_norm("HELLO 3 AUTH default anything", hello),
                pipeline(&[
                    ("CLIENT SETNAME jedis-it", x),
                    ("CLIENT SETINFO LIB-NAME jedis", x),
                    ("CLIENT SETINFO LIB-VER 8.0.0", x),
                ]),
                cmd("SENTINEL GET-MASTER-ADDR-BY-NAME mymaster"),
                cmd("SUBSCRIBE +switch-master"),
                cmd("PING"),
            ],
        ),
        (
            "Jedis 4 (RESP2)",
            vec![
                pipeline(&[
                    ("CLIENT SETNAME jedis-it", x),
                    ("CLIENT SETINFO LIB-NAME jedis", x),
                    ("CLIENT SETINFO LIB-VER 4.4.8", x),
                ]),
                cmd("SENTINEL GET-MASTER-ADDR-BY-NAME mymaster"),
                cmd("SUBSCRIBE +switch-master"),
                cmd("PING"),
            ],
        ),
        (
            "Lettuce",
            vec![
                cmd_norm("HELLO 3 SETNAME lettuce#it", hello),
                pipeline(&[
                    ("CLIENT SETINFO lib-name Lettuce", x),
                    ("CLIENT SETINFO lib-ver 6.5.0", x),
                    ("SENTINEL get-master-addr-by-name mymaster", x),
                ]),
                cmd_norm("SENTINEL master mymaster", Norm::Desc),
                cmd_norm("SENTINEL REPLICAS mymaster", Norm::DescList),
                cmd("CLIENT GETNAME"),
            ],
        ),
        (
            "redis-py 8",
            vec![
                cmd_norm("HELLO 3", hello),
                cmd("CLIENT MAINT_NOTIFICATIONS ON moving-endpoint-type internal-ip"),
                pipeline(&[
                    ("CLIENT SETINFO LIB-NAME redis-py", x),
                    ("CLIENT SETINFO LIB-VER 8.1.0", x),
                ]),
                cmd_norm("SENTINEL MASTERS", Norm::DescList),
                cmd_norm("SENTINEL SLAVES mymaster", Norm::DescList),
            ],
        ),
        (
            "go-redis",
            vec![
                cmd_norm("hello 3 setname go-redis-it", hello),
                pipeline(&[
                    ("client setname go-redis-it", x),
                    ("client setinfo LIB-NAME go-redis", x),
                    ("client setinfo LIB-VER 9.7.0", x),
                ]),
                cmd("sentinel get-master-addr-by-name mymaster"),
                cmd_norm("sentinel sentinels mymaster", Norm::DescList),
                cmd_n("SUBSCRIBE +switch-master +replica-reconf-done", 2, x),
            ],
        ),
        (
            "redis-rs",
            vec![
                pipeline(&[
                    ("HELLO 3", hello),
                    ("CLIENT SETINFO LIB-NAME redis-rs", x),
                    ("CLIENT SETINFO LIB-VER 1.8.1", x),
                ]),
                cmd("ROLE"),
                cmd_norm("SENTINEL MASTERS", Norm::DescList),
                cmd("SELECT 1"),
                cmd_norm("SENTINEL SLAVES mymaster", Norm::DescList),
            ],
        ),
        (
            "fred (RESP2)",
            vec![
                cmd("SENTINEL GET-MASTER-ADDR-BY-NAME mymaster"),
                cmd_norm("SENTINEL SENTINELS mymaster", Norm::DescList),
            ],
        ),
        (
            "ioredis 6",
            vec![
                cmd_norm("hello 3", hello),
                pipeline(&[
                    ("client SETINFO LIB-VER 6.0.0", x),
                    ("client SETINFO LIB-NAME ioredis", x),
                ]),
                cmd("sentinel get-master-addr-by-name mymaster"),
                cmd_norm("sentinel sentinels mymaster", Norm::DescList),
            ],
        ),
        (
            "redis_exporter (RESP2)",
            vec![
                pipeline(&[
                    ("CLIENT SETNAME redis_exporter", x),
                    ("CONFIG GET *", x),
                    ("INFO ALL", Norm::Custom(info_shape)),
                    ("LATENCY LATEST", x),
                    ("SLOWLOG LEN", x),
                    ("SLOWLOG GET 1", x),
                ]),
                cmd_norm("SENTINEL MASTERS", Norm::DescList),
                cmd("SENTINEL CKQUORUM mymaster"),
                cmd_norm("SENTINEL SENTINELS mymaster", Norm::DescList),
                cmd_norm("SENTINEL SLAVES mymaster", Norm::DescList),
                cmd("SENTINEL CONFIG GET *"),
            ],
        ),
    ];
    for (name, steps) in &sessions {
        sides.compare(name, steps, &mut diffs);
    }
    report("diff_client_handshakes", &diffs);
}

/// Events as `channel payload` lines, run ids masked.
fn event_lines(msgs: &[crate::harness::resp::Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| {
            let payload: Vec<String> = m
                .payload
                .split(' ')
                .map(|w| {
                    if w.len() == 40 && w.bytes().all(|c| c.is_ascii_hexdigit()) {
                        "<runid>".to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            format!("{} {}", m.channel, payload.join(" "))
        })
        .collect()
}

fn compare_events(what: &str, oracle: &[String], raftinel: &[String], diffs: &mut Vec<String>) {
    if oracle != raftinel {
        diffs.push(format!(
            "[{what}] event streams differ\n  --- redis-sentinel 7.0.15 ---\n{}  --- raftinel ---\n{}",
            indent(&oracle.join("\n")),
            indent(&raftinel.join("\n"))
        ));
    }
}

/// `node` hangs (SIGSTOP) then resumes: both sentinels publish the same
/// events with the same payloads, to RESP2 and RESP3 `PSUBSCRIBE *`
/// subscribers. `instance` is the event prefix of the node.
/// `while_down` runs on both sides once both published `+sdown`.
fn hang_events(
    env: &Env,
    node: &RedisNode,
    instance: &str,
    while_down: &[Step],
    diffs: &mut Vec<String>,
) {
    let mut subs: Vec<(Conn, Conn)> = [&env.oracle, &env.raftinel]
        .iter()
        .map(|s| (s.psubscribe_all(false), s.psubscribe_all(true)))
        .collect();
    node.sigstop();
    let mut got: Vec<Vec<crate::harness::resp::Message>> = Vec::new();
    for (r2, _) in subs.iter_mut() {
        let r = r2.wait_message("+sdown", EVENTUALLY, |p| p == instance);
        got.push(match r {
            Ok(m) => vec![m],
            Err(e) => {
                diffs.push(format!("no +sdown {instance}: {e}"));
                Vec::new()
            }
        });
    }
    env.sides().compare("while SDOWN", while_down, diffs);
    node.sigcont();
    for (i, (r2, _)) in subs.iter_mut().enumerate() {
        match r2.wait_message("-sdown", EVENTUALLY, |p| p == instance) {
            Ok(m) => got[i].push(m),
            Err(e) => diffs.push(format!("no -sdown {instance}: {e}")),
        }
    }
    // Anything else published meanwhile must match too.
    let rest: Vec<Vec<String>> = subs
        .iter_mut()
        .map(|(r2, _)| {
            event_lines(&r2.drain_messages(Duration::from_millis(1500), Duration::from_secs(10)))
        })
        .collect();
    compare_events(
        "RESP2 +sdown/-sdown",
        &event_lines(&got[0]),
        &event_lines(&got[1]),
        diffs,
    );
    compare_events("RESP2 later events", &rest[0], &rest[1], diffs);
    // The RESP3 subscribers saw the same, as push frames.
    let r3: Vec<Vec<crate::harness::resp::Message>> = subs
        .iter_mut()
        .map(|(_, r3)| r3.drain_messages(Duration::from_millis(500), Duration::from_secs(10)))
        .collect();
    for (name, msgs) in ["redis-sentinel", "raftinel"].iter().zip(r3.iter()) {
        if msgs.iter().any(|m| !m.push) {
            diffs.push(format!("{name}: RESP3 event not sent as a push frame"));
        }
    }
    compare_events(
        "RESP3 all events",
        &event_lines(&r3[0]),
        &event_lines(&r3[1]),
        diffs,
    );
}

/// The master hangs and resumes. Quorum 3 with two sentinels: ODOWN (and so
/// a failover) is impossible.
#[test]
fn diff_events_on_master_hang() {
    let env = Env::with_quorum(1, 3);
    env.settle();
    let mut diffs = Vec::new();
    let prefix = format!("master {MASTER} 127.0.0.1 {}", env.topo.master.port);
    let mp = env.topo.master.port;
    let while_down = vec![
        cmd(&format!(
            "SENTINEL IS-MASTER-DOWN-BY-ADDR 127.0.0.1 {mp} 0 *"
        )),
        cmd_norm("SENTINEL MASTER mymaster", Norm::Desc),
        cmd_norm("INFO sentinel", Norm::Custom(info_shape)),
        cmd("SENTINEL CKQUORUM mymaster"),
        cmd("SENTINEL GET-MASTER-ADDR-BY-NAME mymaster"),
    ];
    hang_events(&env, &env.topo.master, &prefix, &while_down, &mut diffs);
    report("diff_events_on_master_hang", &diffs);
}

/// A replica hangs and resumes.
#[test]
fn diff_events_on_replica_hang() {
    let env = Env::with_quorum(1, 3);
    env.settle();
    let mut diffs = Vec::new();
    let r = &env.topo.replicas[0];
    let prefix = format!(
        "slave 127.0.0.1:{p} 127.0.0.1 {p} @ {MASTER} 127.0.0.1 {}",
        env.topo.master.port,
        p = r.port
    );
    let while_down = vec![
        cmd_norm("SENTINEL REPLICAS mymaster", Norm::DescList),
        cmd_norm("SENTINEL MASTER mymaster", Norm::Desc),
        cmd_norm("INFO sentinel", Norm::Custom(info_shape)),
    ];
    hang_events(&env, r, &prefix, &while_down, &mut diffs);
    report("diff_events_on_replica_hang", &diffs);
}

/// A master with `requirepass` and no `auth-pass`: both sentinels see it
/// down with the same flags; after `SENTINEL SET auth-pass` both recover.
#[test]
fn diff_master_requires_password() {
    let master = RedisNode::start_with(&["--requirepass", "secret"]);
    let topo = Topology {
        master,
        replicas: Vec::new(),
    };
    let env = Env::custom(topo, 3, &[]);
    let prefix = format!("master {MASTER} 127.0.0.1 {}", env.topo.master.port);
    let mut diffs = Vec::new();
    let mut subs: Vec<Conn> = [&env.oracle, &env.raftinel]
        .iter()
        .map(|s| s.subscribe(&["+sdown", "-sdown"]))
        .collect();
    for (sub, name) in subs.iter_mut().zip(["redis-sentinel", "raftinel"]) {
        if let Err(e) = sub.wait_message("+sdown", EVENTUALLY, |p| p == prefix) {
            diffs.push(format!("{name}: no +sdown for a master refusing PING: {e}"));
        }
    }
    let sides = env.sides();
    let steps = vec![
        cmd_norm("SENTINEL MASTER mymaster", Norm::Desc),
        cmd_norm("SENTINEL MASTERS", Norm::DescList),
        cmd("SENTINEL CKQUORUM mymaster"),
        cmd_norm("INFO sentinel", Norm::Custom(info_shape)),
        cmd("SENTINEL SET mymaster auth-pass secret"),
    ];
    sides.compare("password refused", &steps, &mut diffs);
    for (sub, name) in subs.iter_mut().zip(["redis-sentinel", "raftinel"]) {
        if let Err(e) = sub.wait_message("-sdown", EVENTUALLY, |p| p == prefix) {
            diffs.push(format!("{name}: no -sdown after auth-pass: {e}"));
        }
    }
    for (s, name) in [(&env.oracle, "redis-sentinel"), (&env.raftinel, "raftinel")] {
        let ok = wait_until(EVENTUALLY, || {
            s.master_field(MASTER, "flags").as_deref() == Some("master")
        });
        if !ok {
            diffs.push(format!(
                "{name}: flags after auth-pass are {:?}, want \"master\"",
                s.master_field(MASTER, "flags")
            ));
        }
    }
    let text = env.raftinel.conf_text();
    if !text
        .lines()
        .any(|l| l == "sentinel auth-pass mymaster secret")
    {
        diffs.push(format!(
            "raftinel config lacks `sentinel auth-pass mymaster secret`:\n{text}"
        ));
    }
    report("diff_master_requires_password", &diffs);
}

fn requirepass_steps() -> Vec<Step> {
    let hello = Norm::Custom(mask_hello);
    vec![
        cmd("PING"),
        raw(b"PING\r\n", 1),
        cmd("HELLO 3"),
        cmd("HELLO 2"),
        cmd("SENTINEL MASTERS"),
        cmd("CLIENT SETNAME x"),
        cmd("ROLE"),
        cmd("SUBSCRIBE foo"),
        cmd("NOSUCH"),
        cmd("AUTH wrong"),
        cmd("AUTH default wrong"),
        cmd("AUTH nosuchuser secret"),
        cmd("HELLO 3 AUTH default wrong"),
        cmd("AUTH secret"),
        cmd("PING"),
        cmd("AUTH default secret"),
        cmd_norm("HELLO 3 AUTH default secret SETNAME n1", hello),
        cmd("CLIENT GETNAME"),
        cmd("ACL WHOAMI"),
        cmd_norm("SENTINEL MYID", Norm::Custom(mask_runids)),
        cmd("AUTH wrong"),
        cmd("PING"),
    ]
}

/// `requirepass` on the sentinel: NOAUTH / WRONGPASS texts, HELLO AUTH, and
/// the limits applied to unauthenticated connections.
#[test]
fn diff_sentinel_requirepass() {
    let env = Env::custom(Topology::new(0), 2, &["requirepass secret".to_string()]);
    let sides = env.sides_with_password("secret");
    let mut diffs = Vec::new();
    sides.compare("requirepass", &requirepass_steps(), &mut diffs);
    let hello = Norm::Custom(mask_hello);
    sides.compare(
        "requirepass HELLO AUTH first",
        &[
            cmd_norm("HELLO 3 AUTH default secret", hello),
            cmd("PING"),
            cmd_norm("HELLO 2 AUTH default wrong", hello),
            cmd("PING"),
        ],
        &mut diffs,
    );
    for (name, bytes) in [
        ("unauthenticated big multibulk", b"*20\r\n".to_vec()),
        ("unauthenticated big bulk", b"*1\r\n$20000\r\n".to_vec()),
    ] {
        sides.compare(name, &[raw(&bytes, 1), check_closed()], &mut diffs);
    }
    report("diff_sentinel_requirepass", &diffs);
}

/// Events of MONITOR / SET / REMOVE / RESET (`+monitor`, `+set`, `-monitor`,
/// `+reset-master`) match real Sentinel's, payloads included.
#[test]
fn diff_admin_events() {
    let env = Env::new(0);
    let other = RedisNode::start();
    let op = other.port.to_string();
    let script: Vec<Vec<String>> = [
        "SENTINEL MONITOR other 127.0.0.1 $OP 2",
        "SENTINEL SET other down-after-milliseconds 1000 quorum 1",
        "SENTINEL SET other auth-pass secret",
        "SENTINEL SET other auth-pass ",
        "SENTINEL SET other rename-command CONFIG XCONFIG",
        "SENTINEL SET other quorum 0",
        "SENTINEL RESET other",
        "SENTINEL REMOVE other",
    ]
    .iter()
    .map(|l| l.replace("$OP", &op).split(' ').map(String::from).collect())
    .collect();
    let mut diffs = Vec::new();
    let mut streams = Vec::new();
    for side in [&env.oracle, &env.raftinel] {
        let mut sub = side.psubscribe_all(false);
        let mut c = side.conn();
        for args in &script {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            c.cmd(&a);
        }
        let msgs = sub.drain_messages(Duration::from_millis(1500), Duration::from_secs(10));
        let wanted = ["+monitor", "-monitor", "+set", "+reset-master"];
        let lines: Vec<String> = event_lines(&msgs)
            .into_iter()
            .filter(|l| wanted.iter().any(|w| l.starts_with(&format!("{w} "))))
            .collect();
        streams.push(lines);
    }
    compare_events("admin events", &streams[0], &streams[1], &mut diffs);
    if streams[0].is_empty() {
        diffs.push("redis-sentinel published no admin event: test setup problem".into());
    }
    report("diff_admin_events", &diffs);
}

/// Only the `sentinel_tilt` line of INFO.
fn tilt_flag(v: &Resp) -> Resp {
    match v.as_str() {
        Some(text) if !v.is_error() => {
            Resp::Status(info_field(&text, "sentinel_tilt").unwrap_or_else(|| "<missing>".into()))
        }
        _ => v.clone(),
    }
}

/// Both processes paused (SIGSTOP) for longer than the 2 s tilt trigger: on
/// resuming both enter TILT with the same event, report it in INFO, and
/// refuse to say the master is down.
#[test]
#[ignore = "raftinel deliberately has no TILT (see the module doc of src/core/sentinel.rs); run with --ignored to compare"]
fn diff_tilt_after_process_pause() {
    let env = Env::new(0);
    let mut diffs = Vec::new();
    let mut subs: Vec<Conn> = [&env.oracle, &env.raftinel]
        .iter()
        .map(|s| s.subscribe(&["+tilt"]))
        .collect();
    env.oracle.sigstop();
    env.raftinel.sigstop();
    // Creates the condition (a 3 s gap between ticks); nothing is timed.
    std::thread::sleep(Duration::from_secs(3));
    env.oracle.sigcont();
    env.raftinel.sigcont();
    let mut events = Vec::new();
    for (sub, name) in subs.iter_mut().zip(["redis-sentinel", "raftinel"]) {
        match sub.wait_message("+tilt", EVENTUALLY, |_| true) {
            Ok(m) => events.push(vec![format!("{} {}", m.channel, m.payload)]),
            Err(e) => {
                diffs.push(format!("{name}: no +tilt: {e}"));
                events.push(Vec::new());
            }
        }
    }
    compare_events("+tilt", &events[0], &events[1], &mut diffs);
    let mp = env.topo.master.port;
    env.sides().compare(
        "in TILT",
        &[
            cmd_norm("INFO sentinel", Norm::Custom(tilt_flag)),
            cmd(&format!(
                "SENTINEL IS-MASTER-DOWN-BY-ADDR 127.0.0.1 {mp} 0 *"
            )),
        ],
        &mut diffs,
    );
    report("diff_tilt_after_process_pause", &diffs);
}

/// INFO with the `masterN:` lines (hash order in Redis) sorted by value and
/// renumbered, then shaped like `info_shape`.
fn info_masters_sorted(v: &Resp) -> Resp {
    let Some(text) = v.as_str().filter(|_| !v.is_error()) else {
        return v.clone();
    };
    let is_master_line = |l: &str| {
        l.strip_prefix("master")
            .and_then(|r| r.split_once(':'))
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
    };
    let mut values: Vec<String> = text
        .split("\r\n")
        .filter(|l| is_master_line(l))
        .filter_map(|l| l.split_once(':').map(|x| x.1.to_string()))
        .collect();
    values.sort();
    let mut i = 0;
    let lines: Vec<String> = text
        .split("\r\n")
        .map(|l| {
            if is_master_line(l) {
                let out = format!("master{i}:{}", values.get(i).cloned().unwrap_or_default());
                i += 1;
                out
            } else {
                l.to_string()
            }
        })
        .collect();
    info_shape(&Resp::Bulk(lines.join("\r\n").into_bytes()))
}

/// Two masters watched by both: ROLE, MASTERS, INFO master lines, INFO-CACHE,
/// and the peer listed under both masters.
#[test]
fn diff_two_masters() {
    let (m1, m2) = (RedisNode::start(), RedisNode::start());
    let monitors = [
        Monitor::new(m1.port, 2),
        Monitor {
            name: "second".into(),
            ..Monitor::new(m2.port, 2)
        },
    ];
    let oracle = SentinelProc::oracle(&monitors);
    let raftinel = SentinelProc::raftinel(&monitors);
    for (s, name) in [(&oracle, "redis-sentinel"), (&raftinel, "raftinel")] {
        let ok = wait_until(EVENTUALLY, || {
            ["mymaster", "second"].iter().all(|m| {
                let mut c = match Conn::connect(s.port) {
                    Ok(c) => c,
                    Err(_) => return false,
                };
                let peers = c.try_cmd(&["SENTINEL", "SENTINELS", m], Duration::from_secs(2));
                let master = c.try_cmd(&["SENTINEL", "MASTER", m], Duration::from_secs(2));
                matches!(&peers, Reply::Frame(Resp::Array(v)) if v.len() == 1
                    && v[0].field("flags").as_deref() == Some("sentinel"))
                    && matches!(&master, Reply::Frame(d) if d.field("info-refresh").as_deref() != Some("0"))
            })
        });
        if !ok {
            eprintln!("NOTE: {name} did not settle with two masters; comparing anyway");
        }
    }
    let sides = Sides::new(&oracle, &raftinel, None);
    let steps = || {
        vec![
            cmd_norm("ROLE", Norm::Custom(role_sorted)),
            cmd_norm("SENTINEL MASTERS", Norm::DescList),
            cmd_norm("SENTINEL MASTER second", Norm::Desc),
            // Both share one link per peer between the masters:
            // `link-refcount` is 2 on both sides.
            cmd_norm("SENTINEL SENTINELS mymaster", Norm::DescList),
            cmd_norm("SENTINEL SENTINELS second", Norm::DescList),
            cmd("SENTINEL GET-MASTER-ADDR-BY-NAME second"),
            cmd_norm("INFO sentinel", Norm::Custom(info_masters_sorted)),
            cmd_norm("SENTINEL INFO-CACHE second", Norm::Custom(mask_info_cache)),
            cmd("SENTINEL CKQUORUM second"),
            cmd("SENTINEL RESET nosuch*"),
        ]
    };
    let mut diffs = Vec::new();
    sides.compare("RESP2 two masters", &steps(), &mut diffs);
    sides.compare("RESP3 two masters", &with_resp3(steps()), &mut diffs);
    report("diff_two_masters", &diffs);
}
