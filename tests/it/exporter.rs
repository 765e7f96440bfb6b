//! Prometheus redis_exporter (Debian's `prometheus-redis-exporter`) scraping
//! raftinel and a real redis-sentinel 7.0.15 side by side: every
//! `redis_sentinel_*` series (name and full label set) the exporter produces
//! against redis-sentinel must also be produced against raftinel, with the
//! same values for the counts that describe the topology. Compared with
//! both watching the same nodes, with each side on its own identical nodes
//! as a replica dies and the master stops, and after a SIGKILL failover
//! (three redis-sentinels against raftinel's group of three). All
//! differences are printed on failure.
//!
//! The exporter detects Sentinel mode from the `# Sentinel` INFO section and
//! then runs SENTINEL MASTERS / CKQUORUM / SENTINELS / SLAVES per master, so
//! this checks those replies as the exporter parses them, not as we do.
//! A missing exporter fails under CI and prints a skip line otherwise.

use crate::harness::group::{self, Group};
use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const EXPORTER: &str = "prometheus-redis-exporter";

/// One series: metric name and its labels (sorted), e.g.
/// `redis_sentinel_master_slaves{master_address="…",master_name="mymaster"}`.
type Series = (String, BTreeMap<String, String>);

/// A redis_exporter process scraping one port (a sentinel's, or a Redis
/// node's: deploy.rs uses it for the metrics its alert rules read).
pub(crate) struct Exporter {
    web: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Exporter {
    pub(crate) fn start(bin: &std::path::Path, port: u16) -> Exporter {
        let dir = tempfile::Builder::new()
            .prefix("it-exporter-")
            .tempdir()
            .expect("temp dir");
        let web = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg("-redis.addr")
            .arg(format!("redis://127.0.0.1:{port}"))
            .arg("-web.listen-address")
            .arg(format!("127.0.0.1:{web}"));
        let proc = Proc::spawn(
            cmd,
            EXPORTER,
            &dir.path().join("stdout"),
            &dir.path().join("stderr"),
        );
        wait_for(EVENTUALLY, "redis_exporter listens", || {
            if port_open(web) {
                Ok(())
            } else {
                Err(std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default())
            }
        });
        Exporter {
            web,
            _proc: proc,
            _dir: dir,
        }
    }

    /// One scrape of `/metrics`: every `redis_*` sample as series → value.
    pub(crate) fn scrape(&self) -> Result<BTreeMap<Series, String>, String> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.web));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(|e| format!("connect to the exporter: {e}"))?;
        // A scrape runs several commands against the sentinel; bounded anyway.
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        s.write_all(
            format!(
                "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
                self.web
            )
            .as_bytes(),
        )
        .map_err(|e| format!("send the scrape request: {e}"))?;
        let mut body = Vec::new();
        s.read_to_end(&mut body)
            .map_err(|e| format!("read the scrape: {e}"))?;
        let text = String::from_utf8_lossy(&body);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("not an HTTP response: {text:?}"))?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            return Err(format!("scrape status: {head}"));
        }
        let mut out = BTreeMap::new();
        for line in body.lines() {
            if line.starts_with('#') || !line.starts_with("redis_") {
                continue;
            }
            let (series, value) = parse_sample(line)?;
            out.insert(series, value);
        }
        Ok(out)
    }
}

/// Parse `name{k="v",…} value` (label values may hold `\"`, `\\`, `\n`).
fn parse_sample(line: &str) -> Result<(Series, String), String> {
    let bad = || format!("unparsable sample line: {line:?}");
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return Err(bad()),
    };
    let mut labels = BTreeMap::new();
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices();
        let mut key = String::new();
        let end;
        loop {
            let (i, c) = chars.next().ok_or_else(bad)?;
            match c {
                '}' => {
                    end = i + 1;
                    break;
                }
                ',' => {}
                '=' => {
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return Err(bad());
                    }
                    let mut val = String::new();
                    loop {
                        let (_, c) = chars.next().ok_or_else(bad)?;
                        match c {
                            '"' => break,
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => val.push('\n'),
                                Some(c) => val.push(c),
                                None => return Err(bad()),
                            },
                            c => val.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), val);
                }
                c => key.push(c),
            }
        }
        rest = &r[end..];
    }
    let value = rest
        .trim()
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    Ok(((name.to_string(), labels), value))
}

fn show(s: &Series) -> String {
    let labels: Vec<String> = s.1.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{}{{{}}}", s.0, labels.join(","))
}

fn exporter_bin() -> Option<std::path::PathBuf> {
    which(EXPORTER)
}

/// Values that depend on the process or on time, not on the topology: only
/// their presence is compared.
fn value_compared(name: &str) -> bool {
    !name.contains("last_ok_ping_reply") && !name.contains("_seconds")
}

/// `m` with every label value rewritten by `f` (side-specific addresses).
fn masked(m: &BTreeMap<Series, String>, f: &dyn Fn(&str) -> String) -> BTreeMap<Series, String> {
    m.iter()
        .map(|((n, l), v)| {
            let l = l.iter().map(|(k, v)| (k.clone(), f(v))).collect();
            ((n.clone(), l), v.clone())
        })
        .collect()
}

/// Differences between the oracle's and raftinel's `redis_sentinel_*`
/// series, after `mask` rewrote side-specific label values. Empty = match.
fn sentinel_diffs(
    oracle: &BTreeMap<Series, String>,
    raftinel: &BTreeMap<Series, String>,
    mask_o: &dyn Fn(&str) -> String,
    mask_r: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let sentinel_only = |m: BTreeMap<Series, String>| {
        m.into_iter()
            .filter(|((n, _), _)| n.starts_with("redis_sentinel_"))
            .collect::<BTreeMap<Series, String>>()
    };
    let (o, r) = (
        sentinel_only(masked(oracle, mask_o)),
        sentinel_only(masked(raftinel, mask_r)),
    );
    let mut diffs = Vec::new();
    if o.is_empty() {
        diffs.push("no redis_sentinel_* series against redis-sentinel".into());
    }
    for (s, v) in &o {
        match r.get(s) {
            None => diffs.push(format!("missing against raftinel: {} {v}", show(s))),
            Some(rv) if value_compared(&s.0) && rv != v => diffs.push(format!(
                "value differs: {}: redis-sentinel {v}, raftinel {rv}",
                show(s)
            )),
            Some(_) => {}
        }
    }
    for (s, v) in &r {
        if !o.contains_key(s) {
            diffs.push(format!("only against raftinel: {} {v}", show(s)));
        }
    }
    diffs
}

/// Series names with their label *names* (values dropped), for every
/// `redis_*` metric: what a dashboard or alert rule can select on.
fn shapes(m: &BTreeMap<Series, String>) -> BTreeSet<String> {
    m.keys()
        .map(|(n, l)| format!("{n}{{{}}}", l.keys().cloned().collect::<Vec<_>>().join(",")))
        .collect()
}

/// Scrape both until `ready` holds on both (masked) and the series match, or fail
/// after the deadline printing every difference of the last scrape.
fn expect_same_series(
    what: &str,
    o: &Exporter,
    r: &Exporter,
    mask_o: &dyn Fn(&str) -> String,
    mask_r: &dyn Fn(&str) -> String,
    ready: &dyn Fn(&BTreeMap<Series, String>) -> bool,
    with_shapes: bool,
) {
    wait_for(EVENTUALLY, what, || {
        let (so, sr) = (o.scrape()?, r.scrape()?);
        let mut diffs = sentinel_diffs(&so, &sr, mask_o, mask_r);
        if with_shapes {
            let (a, b) = (shapes(&so), shapes(&sr));
            diffs.extend(
                a.difference(&b)
                    .map(|s| format!("metric only against redis-sentinel: {s}")),
            );
            diffs.extend(
                b.difference(&a)
                    .map(|s| format!("metric only against raftinel: {s}")),
            );
        }
        if !ready(&masked(&so, mask_o)) {
            diffs.push("redis-sentinel not in the expected state yet".into());
        }
        if !ready(&masked(&sr, mask_r)) {
            diffs.push("raftinel not in the expected state yet".into());
        }
        if diffs.is_empty() {
            let n = so
                .keys()
                .filter(|(n, _)| n.starts_with("redis_sentinel_"))
                .count();
            eprintln!("{what}: {n} redis_sentinel_* series match");
            Ok(())
        } else {
            Err(format!(
                "{} difference(s):\n  {}",
                diffs.len(),
                diffs.join("\n  ")
            ))
        }
    });
}

/// The value of the one `name` series (labels ignored), if exactly one.
fn value(m: &BTreeMap<Series, String>, name: &str) -> Option<String> {
    let v: Vec<&String> = m
        .iter()
        .filter(|((n, _), _)| n == name)
        .map(|(_, v)| v)
        .collect();
    match v.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// redis-sentinel and raftinel watching the same master and replicas (they
/// see each other as peers): the exporter produces the same `redis_sentinel_*`
/// series with the same values, and the same metric names and label names
/// overall.
#[test]
fn exporter_same_series_as_redis_sentinel() {
    let Some(bin) = exporter_bin() else {
        skip_or_fail(EXPORTER);
        return;
    };
    let topo = Topology::new(2);
    // Quorum 2 with two sentinels: nothing here ever fails over.
    let m = [Monitor::new(topo.master.port, 2)];
    let oracle = SentinelProc::oracle(&m);
    let raftinel = SentinelProc::raftinel(&m);
    for s in [&oracle, &raftinel] {
        eventually("both replicas and the peer sentinel known", || {
            let peers = s.master_field(MASTER, "num-other-sentinels");
            let slaves = s.master_field(MASTER, "num-slaves");
            if peers.as_deref() == Some("1") && slaves.as_deref() == Some("2") {
                Ok(())
            } else {
                Err(format!("{:?}: peers {peers:?}, slaves {slaves:?}", s.kind))
            }
        });
    }
    let (eo, er) = (
        Exporter::start(&bin, oracle.port),
        Exporter::start(&bin, raftinel.port),
    );
    let same = |s: &str| s.to_string();
    expect_same_series(
        "the same series against redis-sentinel and raftinel (shared nodes)",
        &eo,
        &er,
        &same,
        &same,
        &|m| {
            value(m, "redis_sentinel_master_ok_slaves").as_deref() == Some("2")
                && value(m, "redis_sentinel_master_ok_sentinels").as_deref() == Some("2")
        },
        true,
    );
}

/// Identical but separate topologies, one sentinel each (quorum 2, so never
/// a failover): healthy, then a replica killed, then the master stopped. At
/// each stage the exporter's `redis_sentinel_*` series match (the master's
/// address masked, since each side has its own).
#[test]
fn exporter_series_match_as_nodes_fail() {
    let Some(bin) = exporter_bin() else {
        skip_or_fail(EXPORTER);
        return;
    };
    let mut to = Topology::new(2);
    let mut tr = Topology::new(2);
    let oracle = SentinelProc::oracle(&[Monitor::new(to.master.port, 2)]);
    let raftinel = SentinelProc::raftinel(&[Monitor::new(tr.master.port, 2)]);
    let (eo, er) = (
        Exporter::start(&bin, oracle.port),
        Exporter::start(&bin, raftinel.port),
    );
    let mask = |port: u16| {
        let a = format!("127.0.0.1:{port}");
        move |v: &str| v.replace(&a, "127.0.0.1:<master>")
    };
    let (mo, mr) = (mask(to.master.port), mask(tr.master.port));
    let stage = |what: &str, slaves: &str, ok_slaves: &str, status: &str| {
        let (slaves, ok_slaves, status) = (slaves.to_string(), ok_slaves.to_string(), status);
        expect_same_series(
            &format!("the same series against both ({what})"),
            &eo,
            &er,
            &mo,
            &mr,
            &move |m| {
                value(m, "redis_sentinel_master_slaves").as_deref() == Some(slaves.as_str())
                    && value(m, "redis_sentinel_master_ok_slaves").as_deref()
                        == Some(ok_slaves.as_str())
                    && m.keys().any(|(n, l)| {
                        n == "redis_sentinel_master_status"
                            && l.get("master_status").map(String::as_str) == Some(status)
                    })
            },
            false,
        );
    };
    stage("healthy", "2", "2", "ok");
    to.replicas[1].sigkill();
    tr.replicas[1].sigkill();
    stage("a replica killed", "2", "1", "ok");
    to.master.sigstop();
    tr.master.sigstop();
    stage("the master stopped", "2", "1", "sdown");
    to.master.sigcont();
    tr.master.sigcont();
}

/// Three redis-sentinels and raftinel's group of three, each over its own
/// master and two replicas, through a SIGKILL of the master: afterwards the
/// exporter (on one sentinel of each side) produces the same series, naming
/// the new master (addresses masked as old/new master per side).
#[test]
fn exporter_series_match_after_failover() {
    let Some(bin) = exporter_bin() else {
        skip_or_fail(EXPORTER);
        return;
    };
    let mut to = Topology::new(2);
    let m = group::monitor(to.master.port);
    let oracles: Vec<SentinelProc> = (0..3)
        .map(|_| SentinelProc::oracle(std::slice::from_ref(&m)))
        .collect();
    let mut g = Group::new();
    for s in &oracles {
        eventually("redis-sentinel knows both replicas and both peers", || {
            let peers = s.master_field(MASTER, "num-other-sentinels");
            let slaves = s.master_field(MASTER, "num-slaves");
            if peers.as_deref() == Some("2") && slaves.as_deref() == Some("2") {
                Ok(())
            } else {
                Err(format!("peers {peers:?}, slaves {slaves:?}"))
            }
        });
    }
    let (eo, er) = (
        Exporter::start(&bin, oracles[0].port),
        Exporter::start(&bin, g.daemons[0].port),
    );
    let same_before = |port: u16| {
        let a = format!("127.0.0.1:{port}");
        move |v: &str| v.replace(&a, "<old master>")
    };
    expect_same_series(
        "the same series against both before the failover",
        &eo,
        &er,
        &same_before(to.master.port),
        &same_before(g.old_port),
        &|m| value(m, "redis_sentinel_master_ok_sentinels").as_deref() == Some("3"),
        false,
    );
    to.master.sigkill();
    g.topo.master.sigkill();
    let new_master = |port: u16, old: u16| {
        wait_for(group::BOUND, "the sentinel names a new master", || {
            let r = Conn::open(port).cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
            match r.items().and_then(|i| i.get(1)).and_then(|p| p.as_str()) {
                Some(p) if p != old.to_string() => p.parse::<u16>().map_err(|e| e.to_string()),
                other => Err(format!("{other:?}")),
            }
        })
    };
    let (no, nr) = (
        new_master(oracles[0].port, to.master.port),
        new_master(g.daemons[0].port, g.old_port),
    );
    let roles = |old: u16, new: u16| {
        let (a, b) = (format!("127.0.0.1:{old}"), format!("127.0.0.1:{new}"));
        move |v: &str| v.replace(&a, "<old master>").replace(&b, "<new master>")
    };
    // The dead old master is now listed as a down replica of the new one.
    expect_same_series(
        "the same series against both after the failover",
        &eo,
        &er,
        &roles(to.master.port, no),
        &roles(g.old_port, nr),
        &|m| {
            value(m, "redis_sentinel_master_slaves").as_deref() == Some("2")
                && value(m, "redis_sentinel_master_ok_slaves").as_deref() == Some("1")
                && m.keys().any(|(n, l)| {
                    n == "redis_sentinel_master_status"
                        && l.get("master_address").map(String::as_str) == Some("<new master>")
                })
        },
        false,
    );
}
