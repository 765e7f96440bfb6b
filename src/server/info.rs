//! INFO in sentinel mode: sections server, clients, stats, cpu (ours) and
//! sentinel (rendered by the core's `info_sentinel_section`), with Redis 7.0.15's keys in
//! its order. `all`/`default`/`everything` select the five sections; unknown
//! names are silently dropped, so `INFO replication` is an empty bulk.

use std::fmt::Write;

use super::stats::get;
use super::Server;

const SECTIONS: [&str; 5] = ["server", "clients", "stats", "cpu", "sentinel"];

/// Which sections a request asks for, in output order.
pub fn selected(args: &[Vec<u8>]) -> Vec<&'static str> {
    if args.is_empty() {
        return SECTIONS.to_vec();
    }
    let mut want = [false; 5];
    for a in args {
        let a = String::from_utf8_lossy(a).to_ascii_lowercase();
        match a.as_str() {
            "all" | "default" | "everything" => want = [true; 5],
            s => {
                if let Some(i) = SECTIONS.iter().position(|x| *x == s) {
                    want[i] = true;
                }
            }
        }
    }
    let mut out: Vec<&'static str> = SECTIONS
        .iter()
        .zip(want)
        .filter(|(_, w)| *w)
        .map(|(s, _)| *s)
        .collect();
    // raftinel's own section is shown only when asked for by name, so that
    // INFO / INFO ALL stay exactly Sentinel's five sections.
    if args.iter().any(|a| a.eq_ignore_ascii_case(b"raft")) {
        out.push("raft");
    }
    out
}

/// `# Raft`: the local node's place in the group (raftinel extension).
fn raft_section(server: &Server, out: &mut String) {
    out.push_str("# Raft\r\n");
    let refused = server.rpc_counters.refusals.info();
    let Some(node) = server.raft.get() else {
        let _ = write!(out, "raft_enabled:0\r\n{refused}");
        return;
    };
    let st = crate::consensus::rpc::status(node);
    let m = node.raft.metrics().borrow().clone();
    let (leader_id, leader_addr) = st
        .leader
        .map(|(id, addr)| (id.to_string(), addr))
        .unwrap_or_default();
    let membership = m.membership_config.membership().clone();
    let _ = write!(
        out,
        "raft_enabled:1\r\nraft_cluster_id:{}\r\nraft_node_id:{}\r\nraft_initialized:{}\r\n\
         raft_is_leader:{}\r\nraft_leader_id:{leader_id}\r\nraft_leader_addr:{leader_addr}\r\n\
         raft_voters:{}\r\nraft_term:{}\r\nraft_last_applied:{}\r\n\
         raft_secret:{}\r\nraft_peers_down:{}\r\n{refused}\
         raft_learners:{}\r\nraft_commands_refused:{}\r\nraft_membership_refused:{}\r\n",
        node.cluster_id.get().unwrap_or(""),
        node.id,
        u8::from(st.initialized),
        u8::from(m.current_leader == Some(node.id)),
        st.voters.len(),
        m.current_term,
        m.last_applied.map(|l| l.index).unwrap_or(0),
        u8::from(node.secret().is_some()),
        node.network.health().down(),
        membership.learner_ids().count(),
        node.state.borrow().refused,
        server
            .rpc_counters
            .membership_refused
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    for (i, (id, n)) in membership.nodes().enumerate() {
        let role = if membership.voter_ids().any(|v| v == *id) {
            "voter"
        } else {
            "learner"
        };
        let _ = write!(
            out,
            "raft_member{i}:id={id},addr={},myid={},role={role}\r\n",
            n.addr, n.myid
        );
    }
}

/// The INFO text for `args` (the section names after INFO).
pub fn render(server: &Server, args: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for (i, s) in selected(args).into_iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        match s {
            "server" => server_section(server, &mut out),
            "clients" => clients_section(server, &mut out),
            "stats" => stats_section(server, &mut out),
            "cpu" => cpu_section(&mut out),
            "raft" => raft_section(server, &mut out),
            _ => {
                let now = server.core.now();
                let (running, queued) =
                    (server.scripts.running_count(), server.scripts.queue_len());
                out.push_str(
                    &server
                        .core
                        .lock()
                        .info_sentinel_section(now, running, queued),
                );
            }
        }
    }
    out
}

fn uname() -> String {
    // SAFETY: uname fills a caller-provided struct; we read it only on success.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.machine)
    )
}

#[allow(clippy::disallowed_methods)] // server_time_usec and lru_clock are wall-clock by definition
fn unix_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

fn build_id() -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(concat!("raftinel ", env!("CARGO_PKG_VERSION")).as_bytes());
    hex::encode(h).chars().take(15).collect()
}

fn server_section(server: &Server, out: &mut String) {
    let (supervised, port) = {
        let cfg = server
            .config
            .lock()
            .expect("the server configuration lock is poisoned");
        let sup = match cfg.supervised.as_deref() {
            Some("systemd") => "systemd",
            Some("upstart") => "upstart",
            _ => "no",
        };
        (
            sup,
            if server.port != 0 {
                server.port
            } else {
                cfg.port
            },
        )
    };
    let uptime = server.started.elapsed().as_secs();
    let usec = unix_micros();
    let executable = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "# Server\r\n\
         redis_version:7.0.15\r\n\
         redis_git_sha1:00000000\r\n\
         redis_git_dirty:0\r\n\
         redis_build_id:{}\r\n\
         redis_mode:sentinel\r\n\
         os:{}\r\n\
         arch_bits:{}\r\n\
         monotonic_clock:POSIX clock_gettime\r\n\
         multiplexing_api:epoll\r\n\
         atomicvar_api:c11-builtin\r\n\
         gcc_version:0.0.0\r\n\
         process_id:{}\r\n\
         process_supervised:{}\r\n\
         run_id:{}\r\n\
         tcp_port:{}\r\n\
         server_time_usec:{}\r\n\
         uptime_in_seconds:{}\r\n\
         uptime_in_days:{}\r\n\
         hz:10\r\n\
         configured_hz:10\r\n\
         lru_clock:{}\r\n\
         executable:{}\r\n\
         config_file:{}\r\n\
         io_threads_active:0\r\n",
        build_id(),
        uname(),
        usize::BITS,
        std::process::id(),
        supervised,
        super::run_id(),
        port,
        usec,
        uptime,
        uptime / 86400,
        (usec / 1_000_000) & ((1 << 24) - 1),
        executable,
        super::config_file(),
    );
}

fn clients_section(server: &Server, out: &mut String) {
    let clients = server.registry.all();
    let mut max_in = 0;
    let mut max_out = 0;
    let mut tracking = 0;
    for c in &clients {
        let s = c.state();
        // Reported as the allocation size, like Redis's malloc usable size of
        // the query buffer (a fresh 20474-byte buffer shows as 20480).
        if s.qbuf_cap > 0 {
            max_in = max_in.max((s.qbuf_cap + 6).div_ceil(4096) * 4096);
        }
        max_out = max_out.max(s.obl);
        if s.tracking.on {
            tracking += 1;
        }
    }
    let _ = write!(
        out,
        "# Clients\r\n\
         connected_clients:{}\r\n\
         cluster_connections:0\r\n\
         maxclients:{}\r\n\
         client_recent_max_input_buffer:{}\r\n\
         client_recent_max_output_buffer:{}\r\n\
         blocked_clients:0\r\n\
         tracking_clients:{}\r\n\
         clients_in_timeout_table:0\r\n",
        clients.len(),
        server.maxclients,
        max_in,
        max_out,
        tracking
    );
}

fn stats_section(server: &Server, out: &mut String) {
    let st = &server.stats;
    let (ops, kin, kout) = st.rates();
    let (channels, patterns) = server.hub.counts();
    let _ = write!(
        out,
        "# Stats\r\n\
         total_connections_received:{}\r\n\
         total_commands_processed:{}\r\n\
         instantaneous_ops_per_sec:{}\r\n\
         total_net_input_bytes:{}\r\n\
         total_net_output_bytes:{}\r\n\
         total_net_repl_input_bytes:0\r\n\
         total_net_repl_output_bytes:0\r\n\
         instantaneous_input_kbps:{:.2}\r\n\
         instantaneous_output_kbps:{:.2}\r\n\
         instantaneous_input_repl_kbps:0.00\r\n\
         instantaneous_output_repl_kbps:0.00\r\n\
         rejected_connections:{}\r\n\
         sync_full:0\r\n\
         sync_partial_ok:0\r\n\
         sync_partial_err:0\r\n\
         expired_keys:0\r\n\
         expired_stale_perc:0.00\r\n\
         expired_time_cap_reached_count:0\r\n\
         expire_cycle_cpu_milliseconds:0\r\n\
         evicted_keys:0\r\n\
         evicted_clients:0\r\n\
         total_eviction_exceeded_time:0\r\n\
         current_eviction_exceeded_time:0\r\n\
         keyspace_hits:0\r\n\
         keyspace_misses:0\r\n\
         pubsub_channels:{}\r\n\
         pubsub_patterns:{}\r\n\
         pubsubshard_channels:0\r\n\
         latest_fork_usec:0\r\n\
         total_forks:0\r\n\
         migrate_cached_sockets:0\r\n\
         slave_expires_tracked_keys:0\r\n\
         active_defrag_hits:0\r\n\
         active_defrag_misses:0\r\n\
         active_defrag_key_hits:0\r\n\
         active_defrag_key_misses:0\r\n\
         total_active_defrag_time:0\r\n\
         current_active_defrag_time:0\r\n\
         tracking_total_keys:0\r\n\
         tracking_total_items:0\r\n\
         tracking_total_prefixes:0\r\n\
         unexpected_error_replies:0\r\n\
         total_error_replies:{}\r\n\
         dump_payload_sanitizations:0\r\n\
         total_reads_processed:{}\r\n\
         total_writes_processed:{}\r\n\
         io_threaded_reads_processed:0\r\n\
         io_threaded_writes_processed:0\r\n\
         reply_buffer_shrinks:0\r\n\
         reply_buffer_expands:0\r\n",
        get(&st.connections_received),
        get(&st.commands_processed),
        ops,
        get(&st.net_input_bytes),
        get(&st.net_output_bytes),
        kin,
        kout,
        get(&st.rejected_connections),
        channels,
        patterns,
        get(&st.error_replies),
        get(&st.reads_processed),
        get(&st.writes_processed),
    );
}

fn rusage(who: libc::c_int) -> (String, String) {
    // SAFETY: getrusage fills a caller-provided struct; zeroed is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return ("0.000000".into(), "0.000000".into());
    }
    let f = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    (f(ru.ru_stime), f(ru.ru_utime))
}

fn cpu_section(out: &mut String) {
    let (sys, user) = rusage(libc::RUSAGE_SELF);
    let (csys, cuser) = rusage(libc::RUSAGE_CHILDREN);
    let (tsys, tuser) = rusage(libc::RUSAGE_THREAD);
    let _ = write!(
        out,
        "# CPU\r\n\
         used_cpu_sys:{sys}\r\n\
         used_cpu_user:{user}\r\n\
         used_cpu_sys_children:{csys}\r\n\
         used_cpu_user_children:{cuser}\r\n\
         used_cpu_sys_main_thread:{tsys}\r\n\
         used_cpu_user_main_thread:{tuser}\r\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Vec<&'static str> {
        let args: Vec<Vec<u8>> = s
            .split_whitespace()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        selected(&args)
    }

    #[test]
    fn section_selection_like_sentinel() {
        assert_eq!(sel(""), SECTIONS.to_vec());
        assert_eq!(sel("ALL"), SECTIONS.to_vec());
        assert_eq!(sel("cpu all"), SECTIONS.to_vec());
        assert_eq!(sel("cpu"), vec!["cpu"]);
        assert_eq!(
            sel("sentinel server replication"),
            vec!["server", "sentinel"]
        );
        assert!(sel("replication").is_empty());
        assert_eq!(sel("all"), SECTIONS.to_vec(), "raft is never implied");
        assert_eq!(sel("raft sentinel"), vec!["sentinel", "raft"]);
        assert!(sel("keyspace x y").is_empty());
    }

    #[test]
    fn cpu_section_keys() {
        let mut s = String::new();
        cpu_section(&mut s);
        let keys: Vec<&str> = s
            .lines()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            keys,
            vec![
                "# CPU",
                "used_cpu_sys",
                "used_cpu_user",
                "used_cpu_sys_children",
                "used_cpu_user_children",
                "used_cpu_sys_main_thread",
                "used_cpu_user_main_thread"
            ]
        );
        assert!(s.ends_with("\r\n"));
    }
}
