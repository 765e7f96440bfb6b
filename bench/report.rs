//! The Markdown report (tables with both daemons and the ratio) and the SVG failover timelines, generated from
//! the collected results without any plotting dependency.

use std::fmt::Write as _;

use crate::failover::{TrialResult, Trigger};
use crate::stats::{num, ratio, summarize, Summary};
use crate::topo::Kind;
use crate::Results;

const KINDS: [Kind; 2] = [Kind::RedisSentinel, Kind::Raftinel];

fn ratio_cell(a: &Summary, b: &Summary, better: &str) -> String {
    match ratio(a, b) {
        Some(r) => format!("{:.2} ({better})", r),
        None => "n/a".to_string(),
    }
}

fn row(md: &mut String, label: &str, a: &Summary, b: &Summary, missing: &str, better: &str) {
    let _ = writeln!(
        md,
        "| {label} | {} | {} | {} |",
        a.cell(missing),
        b.cell(missing),
        ratio_cell(a, b, better)
    );
}

fn outcomes(trials: &[&TrialResult]) -> String {
    let done = trials.iter().filter(|t| t.completed).count();
    let mut others: Vec<String> = trials
        .iter()
        .filter(|t| !t.completed)
        .map(|t| t.outcome.clone())
        .collect();
    others.sort();
    others.dedup();
    if others.is_empty() {
        format!("{done}/{} completed", trials.len())
    } else {
        format!("{done}/{} completed; {}", trials.len(), others.join("; "))
    }
}

fn trial_table(
    md: &mut String,
    res: &Results,
    trigger: Trigger,
    down_after: u64,
    with_detection: bool,
) {
    let pick = |k: Kind| -> Vec<&TrialResult> {
        res.failover
            .iter()
            .chain(res.switchover.iter())
            .filter(|t| t.kind == k && t.trigger == trigger && t.down_after_ms == down_after)
            .collect()
    };
    let a = pick(Kind::RedisSentinel);
    let b = pick(Kind::Raftinel);
    if a.is_empty() && b.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n**{}**, down-after-milliseconds {down_after} (ms from the trigger; median / p90 / max over runs)\n",
        trigger.label()
    );
    let _ = writeln!(
        md,
        "| metric | redis-sentinel | raftinel | ratio raftinel/redis-sentinel |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    let _ = writeln!(
        md,
        "| outcome | {} | {} | |",
        cell_esc(&outcomes(&a)),
        cell_esc(&outcomes(&b))
    );
    let refused = |v: &[&TrialResult]| v.iter().all(|t| t.outcome.starts_with("command refused"));
    if refused(&a) && refused(&b) {
        let _ = writeln!(
            md,
            "\nBoth daemons refused the command, so there is nothing to time."
        );
        return;
    }
    let cap_a = a.first().map_or(0, |t| t.cap_ms) as f64 / 1000.0;
    let cap_b = b.first().map_or(0, |t| t.cap_ms) as f64 / 1000.0;
    let miss = |cap: f64| format!("not reached within {cap:.0} s");
    type Get = fn(&TrialResult) -> Option<f64>;
    let mut metrics: Vec<(&str, Get, &str)> = Vec::new();
    if with_detection {
        metrics.push(("first +sdown", |t| t.first_sdown_ms, "lower is better"));
        metrics.push(("first +odown", |t| t.first_odown_ms, "lower is better"));
    }
    metrics.push((
        "+switch-master on every daemon",
        |t| t.switch_master_all_ms,
        "lower is better",
    ));
    metrics.push((
        "every daemon answers the new address",
        |t| t.new_addr_all_ms,
        "lower is better",
    ));
    metrics.push((
        "first acknowledged write on the new master",
        |t| t.first_write_new_master_ms,
        "lower is better",
    ));
    metrics.push((
        "write pause seen by the client (last ack on old → first ack on new)",
        |t| t.write_pause_ms,
        "lower is better",
    ));
    metrics.push((
        "acknowledged writes lost (count)",
        |t| t.lost_writes.map(|x| x as f64),
        "lower is better",
    ));
    for (label, get, better) in metrics {
        let sa = summarize(&a.iter().map(|t| get(t)).collect::<Vec<_>>());
        let sb = summarize(&b.iter().map(|t| get(t)).collect::<Vec<_>>());
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            sa.cell(&miss(cap_a)),
            sb.cell(&miss(cap_b)),
            ratio_cell(&sa, &sb, better)
        );
    }
    let replies: Vec<String> = a
        .iter()
        .chain(b.iter())
        .filter_map(|t| {
            t.command_reply.as_ref().map(|r| {
                let retried = match t.command_retry_ms {
                    Some(ms) if t.command_attempts > 1 => {
                        format!(" after {} attempts over {} ms", t.command_attempts, num(ms))
                    }
                    _ => String::new(),
                };
                format!("{}: `{}`{retried}", t.kind.name(), r)
            })
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !replies.is_empty() {
        let _ = writeln!(md, "\nReplies to the command: {}.", replies.join(", "));
    }
}

pub fn markdown(res: &Results) -> String {
    let mut md = String::new();
    let m = &res.machine;
    let _ = writeln!(
        md,
        "Run: `{}`{}\n",
        res.command,
        if res.smoke {
            " (smoke mode: tiny sizes, one run — not a benchmark)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "Machine: {} CPUs ({}), {} MiB RAM, Linux {}.",
        m.nproc, m.cpu_model, m.mem_mib, m.kernel
    );
    let _ = writeln!(
        md,
        "Versions: redis-sentinel `{}`; raftinel `{}`; redis-benchmark `{}`.\n",
        m.redis_sentinel_version, m.raftinel_version, m.redis_benchmark_version
    );

    if !res.failover.is_empty() {
        let _ = writeln!(md, "### 1. Failover latency\n");
        let _ = writeln!(md, "Topology: 1 master, 2 replicas, 3 daemons (quorum 2, failover-timeout 10000), loopback; a Sentinel-aware writer RPUSHes sequence numbers about once a millisecond. {} run(s) per cell.", res.config.runs);
        let mut das: Vec<u64> = res.failover.iter().map(|t| t.down_after_ms).collect();
        das.sort();
        das.dedup();
        for trig in [Trigger::Kill, Trigger::Stop, Trigger::KillRefused] {
            for &da in &das {
                trial_table(&mut md, res, trig, da, true);
            }
        }
    }
    if !res.switchover.is_empty() {
        let _ = writeln!(md, "\n### 2. Planned switchover\n");
        let _ = writeln!(md, "`SENTINEL FAILOVER mymaster` sent to the first daemon while the writer runs: plain (raftinel's `SENTINEL SET mymaster coordinated-failover no` sent to every daemon first, since its default is coordinated), and coordinated (`coordinated-failover yes`; redis-sentinel has no such mode and refuses the option).");
        let mut das: Vec<u64> = res.switchover.iter().map(|t| t.down_after_ms).collect();
        das.sort();
        das.dedup();
        for trig in [Trigger::Failover, Trigger::Coordinated] {
            for &da in &das {
                trial_table(&mut md, res, trig, da, false);
            }
        }
    }
    if !res.footprint.is_empty() {
        let _ = writeln!(md, "\n### 3. Footprint (idle)\n");
        let _ = writeln!(md, "Each cell: median / p90 / max over the 3 daemons of one topology; CPU in % of one core over the window, RSS from VmRSS.\n");
        let _ = writeln!(
            md,
            "| setup | metric | redis-sentinel | raftinel | ratio raftinel/redis-sentinel |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        let mut setups: Vec<(usize, usize)> = res
            .footprint
            .iter()
            .map(|f| (f.masters, f.replicas_per_master))
            .collect();
        setups.sort();
        setups.dedup();
        for (masters, reps) in setups {
            let get = |k: Kind| {
                res.footprint
                    .iter()
                    .find(|f| f.kind == k && f.masters == masters && f.replicas_per_master == reps)
            };
            let (a, b) = (get(Kind::RedisSentinel), get(Kind::Raftinel));
            let window = a.or(b).map_or(0.0, |f| f.window_s);
            let setup = format!("{masters} master(s) × {reps} replica(s), 2 peers, {window:.0} s");
            let cpu = |f: Option<&crate::footprint::FootprintResult>| {
                summarize(
                    &f.map(|f| {
                        f.daemons
                            .iter()
                            .map(|d| Some(d.cpu_pct))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
                )
            };
            let rss = |f: Option<&crate::footprint::FootprintResult>| {
                summarize(
                    &f.map(|f| {
                        f.daemons
                            .iter()
                            .map(|d| Some(d.rss_kb_max as f64 / 1024.0))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
                )
            };
            let _ = writeln!(
                md,
                "| {setup} | CPU % | {} | {} | {} |",
                cpu(a).cell("—"),
                cpu(b).cell("—"),
                ratio_cell(&cpu(a), &cpu(b), "lower is better")
            );
            let _ = writeln!(
                md,
                "| {setup} | max RSS MiB | {} | {} | {} |",
                rss(a).cell("—"),
                rss(b).cell("—"),
                ratio_cell(&rss(a), &rss(b), "lower is better")
            );
            for f in [a, b].into_iter().flatten() {
                if !f.daemon_exits.is_empty() {
                    let _ = writeln!(
                        md,
                        "\nNote: {} daemon(s) of {} exited during this measurement (see daemon_exits in the JSON).",
                        f.daemon_exits.len(),
                        f.kind.name()
                    );
                }
                if !f.readiness.ready {
                    let _ = writeln!(
                        md,
                        "\nNote: {} did not reach readiness ({}).",
                        f.kind.name(),
                        f.readiness.detail
                    );
                }
            }
        }
    }
    if !res.query.is_empty() {
        let _ = writeln!(
            md,
            "\n### 4. Query throughput and latency (redis-benchmark, 50 clients)\n"
        );
        let rounds = res.query.iter().map(|q| q.round).max().map_or(0, |r| r + 1);
        let reqs = res.query.first().map_or(0, |q| q.requests);
        let _ = writeln!(
            md,
            "{rounds} alternated round(s), -n {reqs}; median / p90 / max over rounds.\n"
        );
        let _ = writeln!(
            md,
            "| command | -P | metric | redis-sentinel | raftinel | ratio raftinel/redis-sentinel |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for (test, _) in crate::query::TESTS {
            for p in [1u32, 16] {
                let sel = |k: Kind, f: fn(&crate::query::QueryResult) -> f64| {
                    summarize(
                        &res.query
                            .iter()
                            .filter(|q| q.kind == k && q.test == test && q.pipeline == p)
                            .map(|q| Some(f(q)))
                            .collect::<Vec<_>>(),
                    )
                };
                type G = fn(&crate::query::QueryResult) -> f64;
                let ms: [(&str, G, &str); 3] = [
                    ("requests/s", |q| q.rps, "higher is better"),
                    ("p50 ms", |q| q.p50_ms, "lower is better"),
                    ("p99 ms", |q| q.p99_ms, "lower is better"),
                ];
                for (label, f, better) in ms {
                    let (a, b) = (sel(Kind::RedisSentinel, f), sel(Kind::Raftinel, f));
                    let _ = writeln!(
                        md,
                        "| {test} | {p} | {label} | {} | {} | {} |",
                        a.cell("—"),
                        b.cell("—"),
                        ratio_cell(&a, &b, better)
                    );
                }
            }
        }
    }
    if !res.scale.is_empty() {
        let _ = writeln!(md, "\n### 5. Scale\n");
        let _ = writeln!(
            md,
            "| metric | redis-sentinel | raftinel | ratio raftinel/redis-sentinel |"
        );
        let _ = writeln!(md, "|---|---|---|---|");
        let get = |k: Kind| res.scale.iter().find(|s| s.kind == k);
        let (a, b) = (get(Kind::RedisSentinel), get(Kind::Raftinel));
        let any = a.or(b);
        let masters = any.map_or(0, |s| s.masters);
        let window = any.map_or(0.0, |s| s.window_s);
        let cpu = |s: Option<&crate::scale::ScaleResult>| {
            summarize(
                &s.map(|s| {
                    s.daemons
                        .iter()
                        .map(|d| Some(d.cpu_pct))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            )
        };
        let rss = |s: Option<&crate::scale::ScaleResult>| {
            summarize(
                &s.map(|s| {
                    s.daemons
                        .iter()
                        .map(|d| Some(d.rss_kb_max as f64 / 1024.0))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            )
        };
        row(&mut md, &format!("idle CPU % per daemon, {masters} masters × 1 replica, {window:.0} s (median / p90 / max over 3 daemons)"), &cpu(a), &cpu(b), "—", "lower is better");
        row(
            &mut md,
            "max RSS MiB per daemon",
            &rss(a),
            &rss(b),
            "—",
            "lower is better",
        );
        let one = |s: Option<&crate::scale::ScaleResult>,
                   f: fn(&crate::scale::ScaleResult) -> Option<f64>| {
            summarize(&[s.and_then(f)])
        };
        let kill = any.map_or(0, |s| s.killed);
        let miss_a = a.map_or("—".to_string(), |s| s.outcome.clone());
        let miss_b = b.map_or("—".to_string(), |s| s.outcome.clone());
        for (label, f) in [
            (
                format!(
                    "{kill} masters killed at once: +switch-master for all on every daemon (ms)"
                ),
                (|s: &crate::scale::ScaleResult| s.all_switch_events_ms)
                    as fn(&crate::scale::ScaleResult) -> Option<f64>,
            ),
            (
                "… every daemon answers all new addresses (ms)".to_string(),
                |s: &crate::scale::ScaleResult| s.all_new_addr_ms,
            ),
        ] {
            let (x, y) = (one(a, f), one(b, f));
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {} |",
                x.cell(&miss_a),
                y.cell(&miss_b),
                ratio_cell(&x, &y, "lower is better")
            );
        }
        let _ = writeln!(
            md,
            "| outcome | {} | {} | |",
            cell_esc(&miss_a),
            cell_esc(&miss_b)
        );
    }
    md
}

/// The failover timeline of one trial as SVG: one row per daemon (+ the writer), markers at event times.
pub fn timeline_svg(t: &TrialResult) -> String {
    const KEY_EVENTS: [&str; 9] = [
        "+sdown",
        "+odown",
        "+try-failover",
        "+elected-leader",
        "+selected-slave",
        "+promoted-slave",
        "+config-update-from",
        "+switch-master",
        "+failover-end",
    ];
    let colors = [
        "#999999", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#2ca02c", "#17becf", "#1f77b4",
        "#000000",
    ];
    let n = t.switch_master_each_ms.len().max(1);
    let evs: Vec<_> = t
        .events
        .iter()
        .filter(|e| e.t_ms >= 0.0 && KEY_EVENTS.contains(&e.channel.as_str()))
        .filter(|e| e.channel != "+sdown" || e.payload.starts_with("master "))
        .collect();
    let mut tmax = evs.iter().map(|e| e.t_ms).fold(0.0f64, f64::max);
    for x in t
        .new_addr_each_ms
        .iter()
        .flatten()
        .chain(t.first_write_new_master_ms.iter())
    {
        tmax = tmax.max(*x);
    }
    if !t.completed {
        tmax = tmax.max(t.cap_ms as f64);
    }
    let tmax = (tmax * 1.08).max(1000.0);
    let (left, right, top, row_h) = (150.0, 140.0, 70.0, 110.0);
    let width = 1320.0;
    let rows = n + 1;
    let height = top + row_h * rows as f64 + 120.0;
    let x = |ms: f64| left + (width - left - right) * ms / tmax;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "{}: {} of the master at t=0, down-after-milliseconds {} — {}",
        t.kind.name(),
        t.trigger.label(),
        t.down_after_ms,
        t.outcome
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
        esc(&title)
    );
    // Axis and grid.
    let axis_y = top + row_h * rows as f64;
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/>"#,
        width - right
    );
    let step = nice_step(tmax);
    let mut g = 0.0;
    while g <= tmax {
        let gx = x(g);
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{axis_y}" stroke="#eeeeee"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            axis_y + 15.0,
            fmt_ms(g)
        );
        g += step;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{:.1}" y1="{}" x2="{:.1}" y2="{axis_y}" stroke="red" stroke-width="2"/>"#,
        x(0.0),
        top - 20.0,
        x(0.0)
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" fill="red">{}</text>"#,
        x(0.0) + 4.0,
        top - 8.0,
        esc(t.trigger.label())
    );
    for d in 0..n {
        let y = top + row_h * (d as f64 + 0.5);
        let _ = writeln!(
            s,
            r#"<text x="10" y="{y:.1}">{} #{}</text>"#,
            t.kind.name(),
            d + 1
        );
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#cccccc"/>"##,
            width - right
        );
        for (k, e) in evs.iter().filter(|e| e.daemon == d).enumerate() {
            let ci = KEY_EVENTS.iter().position(|c| *c == e.channel).unwrap_or(0);
            let col = colors.get(ci).copied().unwrap_or("#000000");
            let ex = x(e.t_ms);
            let _ = writeln!(
                s,
                r#"<circle cx="{ex:.1}" cy="{y:.1}" r="4" fill="{col}"><title>{} {} ms: {}</title></circle>"#,
                esc(&e.channel),
                num(e.t_ms),
                esc(&e.payload)
            );
            let ly = y - 8.0 - 11.0 * (k % 5) as f64;
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{ly:.1}" fill="{col}" font-size="10">{} {}</text>"#,
                ex + 3.0,
                esc(&e.channel),
                num(e.t_ms)
            );
        }
        if let Some(Some(a)) = t.new_addr_each_ms.get(d) {
            let ax = x(*a);
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="black"><title>answers the new address at {} ms</title></rect>"#,
                ax - 4.0,
                y + 6.0,
                num(*a)
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="10">new address {}</text>"#,
                ax + 6.0,
                y + 14.0,
                num(*a)
            );
        }
    }
    if !t.completed {
        let cx = x(t.cap_ms as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{cx:.1}" y1="{top}" x2="{cx:.1}" y2="{axis_y}" stroke="#d62728" stroke-dasharray="6,4"/>"##
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#d62728">cap {}: no failover</text>"##,
            cx - 4.0,
            top - 8.0,
            fmt_ms(t.cap_ms as f64)
        );
    }
    // Writer row.
    let y = top + row_h * (n as f64 + 0.5);
    let _ = writeln!(s, r#"<text x="10" y="{y:.1}">writer (acks)</text>"#);
    if let Some(last) = t.last_write_old_master_ms {
        let lx = x(last.max(0.0));
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{:.1}" width="{:.1}" height="10" fill="#7f7f7f"><title>acks on the old master until {} ms</title></rect>"##,
            y - 5.0,
            (lx - left).max(1.0),
            num(last)
        );
    }
    if let Some(first) = t.first_write_new_master_ms {
        let fx = x(first);
        let _ = writeln!(
            s,
            r##"<rect x="{fx:.1}" y="{:.1}" width="{:.1}" height="10" fill="#2ca02c"><title>first ack on the new master at {} ms</title></rect>"##,
            y - 5.0,
            (width - right - fx).max(1.0),
            num(first)
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="10">first ack on new master {} ms</text>"#,
            fx + 3.0,
            y - 9.0,
            num(first)
        );
    } else {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="10">no acknowledged write on a new master</text>"#,
            x(0.0) + 6.0,
            y - 9.0
        );
    }
    // Legend.
    let ly = axis_y + 40.0;
    for (i, (ev, col)) in KEY_EVENTS.iter().zip(colors.iter()).enumerate() {
        let lx = left + 128.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<circle cx="{lx:.1}" cy="{ly:.1}" r="4" fill="{col}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 7.0,
            ly + 4.0,
            esc(ev)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{:.1}">time since the trigger; ■ = the daemon first answers the new master address (GET-MASTER-ADDR-BY-NAME polled every 10 ms)</text>"#,
        ly + 25.0
    );
    let _ = writeln!(s, "</svg>");
    s
}

/// A Markdown table cell must not contain a bare `|`.
fn cell_esc(s: &str) -> String {
    s.replace('|', "\\|")
}

fn nice_step(tmax: f64) -> f64 {
    for s in [
        100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 60000.0,
    ] {
        if tmax / s <= 12.0 {
            return s;
        }
    }
    120000.0
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The trial drawn for `kind`: the first completed SIGKILL trial with the smallest down-after, else the first
/// SIGKILL trial.
pub fn timeline_pick(res: &Results, kind: Kind) -> Option<&TrialResult> {
    let mut c: Vec<&TrialResult> = res
        .failover
        .iter()
        .filter(|t| t.kind == kind && t.trigger == Trigger::Kill)
        .collect();
    c.sort_by_key(|t| (t.down_after_ms, !t.completed, t.run));
    let da = c.first().map(|t| t.down_after_ms);
    c.iter()
        .find(|t| Some(t.down_after_ms) == da && t.completed)
        .or(c.first())
        .copied()
}

pub fn kinds() -> [Kind; 2] {
    KINDS
}
