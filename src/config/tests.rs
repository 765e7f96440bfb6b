//! Tests of the loader, the TOML format and the rewrite (goldens from a real
//! redis-sentinel 7.0.15 in `testdata/`).

use std::path::{Path, PathBuf};

use super::*;

const ID: &str = "0123456789012345678901234567890123456789";

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn load_str(content: &str) -> Result<Config, ConfigError> {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "s.conf", content);
    load(&p, &[])
}

fn err_of(content: &str) -> ConfigError {
    match load_str(content) {
        Ok(_) => panic!("expected an error for {content:?}"),
        Err(e) => e,
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_string).collect()
}

const M: &str = "sentinel monitor m 127.0.0.1 6379 2\n";

#[test]
fn errors_carry_redis_messages_and_line_numbers() {
    let cases: Vec<(String, usize, &str)> = vec![
        ("foo bar\n".into(), 1, "Bad directive or wrong number of arguments"),
        ("port 1 2\n".into(), 1, "wrong number of arguments"),
        ("sentinel monitor m 127.0.0.1 6379 0\n".into(), 1, "Quorum must be 1 or greater."),
        ("sentinel foo\n".into(), 1, "Unrecognized sentinel configuration statement."),
        (
            format!("\n\nsentinel down-after-milliseconds m 0\n{M}"),
            3,
            "negative or zero time parameter.",
        ),
        ("sentinel down-after-milliseconds x 10\n".into(), 1, "No such master with specified name."),
        (format!("{M}sentinel down-after-milliseconds m abc\n"), 2, "negative or zero time parameter."),
        (format!("{M}sentinel failover-timeout m -5\n"), 2, "negative or zero time parameter."),
        (format!("{M}sentinel master-reboot-down-after-period m -1\n"), 2, "negative time parameter."),
        (
            format!("{M}sentinel notification-script m /nonexistent/x\n"),
            2,
            "Notification script seems non existing or non executable.",
        ),
        (
            format!("{M}sentinel client-reconfig-script m /nonexistent/x\n"),
            2,
            "Client reconfiguration script seems non existing or non executable.",
        ),
        (format!("{M}sentinel auth-pass m\n"), 2, "Unrecognized sentinel configuration statement."),
        (format!("{M}sentinel auth-pass m a b\n"), 2, "Unrecognized sentinel configuration statement."),
        (
            format!("{M}sentinel rename-command m config cfg\nsentinel rename-command m CONFIG x\n"),
            3,
            "Same command renamed multiple times with rename-command.",
        ),
        (format!("{M}{M}"), 2, "Duplicate master name."),
        (
            format!("{M}sentinel known-replica m 127.0.0.1 7000\nsentinel known-replica m 127.0.0.1 7000\n"),
            3,
            "Duplicate hostname and port for replica.",
        ),
        (
            format!(
                "{M}sentinel known-sentinel m 127.0.0.1 7000 {ID}\nsentinel known-sentinel m 127.0.0.2 7001 {ID}\n"
            ),
            3,
            "Duplicate runid for sentinel.",
        ),
        (format!("{M}sentinel known-replica m foo.invalid 7000\n"), 2, "Can't resolve instance hostname."),
        ("sentinel monitor m localhost 6379 2\n".into(), 1, "Can't resolve instance hostname."),
        ("sentinel monitor m 127.0.0.1 70000 2\n".into(), 1, "Invalid port number."),
        ("sentinel monitor m 127.0.0.1 6379\n".into(), 1, "Unrecognized sentinel configuration statement."),
        ("sentinel myid abc\n".into(), 1, "Malformed Sentinel id in myid option."),
        (
            "sentinel deny-scripts-reconfig maybe\n".into(),
            1,
            "Please specify yes or no for the deny-scripts-reconfig options.",
        ),
        (
            "sentinel resolve-hostnames maybe\n".into(),
            1,
            "Please specify yes or no for the resolve-hostnames option.",
        ),
        (
            "sentinel announce-hostnames maybe\n".into(),
            1,
            "Please specify yes or no for the announce-hostnames option.",
        ),
        ("port abc\n".into(), 1, "argument couldn't be parsed into an integer"),
        ("port 70000\n".into(), 1, "argument must be between 0 and 65535 inclusive"),
        ("port -1\n".into(), 1, "argument must be between 0 and 65535 inclusive"),
        ("daemonize maybe\n".into(), 1, "argument must be 'yes' or 'no'"),
        (
            "loglevel foo\n".into(),
            1,
            "argument(s) must be one of the following: debug, verbose, notice, warning",
        ),
        ("maxclients 0\n".into(), 1, "argument must be between 1 and 4294967295 inclusive"),
        ("user\n".into(), 1, "Bad directive or wrong number of arguments"),
        ("requirepass a b\n".into(), 1, "wrong number of arguments"),
        ("rename-command a\n".into(), 1, "Bad directive or wrong number of arguments"),
        ("tcp-keepalive x\n".into(), 1, "argument couldn't be parsed into an integer"),
        ("timeout -1\n".into(), 1, "argument must be between 0 and 2147483647 inclusive"),
        ("tcp-backlog 2147483648\n".into(), 1, "argument must be between 0 and 2147483647 inclusive"),
        (
            "proto-max-bulk-len 1000\n".into(),
            1,
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
        (
            "client-query-buffer-limit 1kb\n".into(),
            1,
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
        ("port 0\ntls-port 26379\n".into(), 2, "No tls-cert-file configured!"),
        ("tls-port 70000\n".into(), 1, "argument must be between 0 and 65535 inclusive"),
        (
            "tls-port 1\ntls-cert-file /nonexistent/x.crt\ntls-key-file k\n".into(),
            2,
            "can't read '/nonexistent/x.crt': No such file or directory",
        ),
        (
            "tls-replication yes\n".into(),
            1,
            "Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-replication is enabled",
        ),
        ("tls-cluster yes\n".into(), 1, "a sentinel has no cluster bus"),
        ("unixsocketperm 999\n".into(), 1, "argument couldn't be parsed as an octal number"),
        ("unixsocketperm 1000\n".into(), 1, "argument must be between 0 and 777 inclusive"),
        ("dir /nonexistent-raftinel\n".into(), 1, "No such file or directory"),
        ("port \"abc\n".into(), 1, "Unbalanced quotes in configuration line"),
        ("port 'a'b\n".into(), 1, "Unbalanced quotes in configuration line"),
        ("logfile\n".into(), 1, "wrong number of arguments"),
        ("maxmemory 1xb\n".into(), 1, "argument must be a memory value"),
        (
            "supervised foo\n".into(),
            1,
            "argument(s) must be one of the following: upstart, systemd, auto, no",
        ),
        (
            "client-output-buffer-limit normal 0 0\n".into(),
            1,
            "Wrong number of arguments in buffer limit configuration.",
        ),
        ("replicaof a\n".into(), 1, "wrong number of arguments"),
        ("include\n".into(), 1, "Bad directive or wrong number of arguments"),
        (
            "enable-debug-command maybe\n".into(),
            1,
            "argument(s) must be one of the following: no, yes, local",
        ),
        ("# c\n\nport 26379\n  bogus-directive 1\n".into(), 4, "Bad directive or wrong number of arguments"),
    ];
    for (content, line, msg) in cases {
        let e = err_of(&content);
        assert_eq!(e.line, line, "line for {content:?}: {e}");
        assert!(
            e.message.starts_with(msg),
            "message for {content:?}: got {:?}",
            e.message
        );
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{}:{line}: ", e.file)),
            "{shown}"
        );
        assert!(shown.contains(&format!(">>> '{}'", e.text)), "{shown}");
        assert!(e.redis_report().contains(msg));
    }
}

#[test]
fn accepts_what_redis_sentinel_accepts() {
    for content in [
        format!("{M}sentinel parallel-syncs m 0\n"),
        format!("{M}sentinel parallel-syncs m abc\n"),
        format!("{M}sentinel known-slave m 127.0.0.1 7000\n"),
        format!("{M}sentinel known-sentinel m 127.0.0.1 7000\n"),
        "sentinel monitor m 127.0.0.1 0 2\n".into(),
        "sentinel monitor m 127.0.0.1 abc 2\n".into(),
        "sentinel monitor m ::1 6379 2\n".into(),
        "sentinel\n".into(),
        "sentinel known-sentinel nosuch 127.0.0.1 7000\n".into(),
        format!("{M}sentinel known-sentinel m 127.0.0.1 7000 abc\n"),
        "sentinel current-epoch abc\n".into(),
        "sentinel announce-port abc\n".into(),
        "sentinel resolve-hostnames yes\nsentinel monitor m foo.invalid 6379 2\nsentinel known-replica m bar.invalid 1\n"
            .into(),
        "sentinel monitor m localhost 6379 2\nsentinel resolve-hostnames yes\n".into(),
        "list-max-ziplist-entries 5\nlua-replicate-commands yes\n".into(),
        "logfile \"\"\nappendonly yes\nenable-debug-command yes\ntls-port 0\nmaxmemory 1gb\n".into(),
        "requirepass \"\"\nsave 900 1\nsave \"\"\nsave\nbind 127.0.0.1 ::1\n".into(),
        "PORT 1234\nSentinel Monitor m 127.0.0.1 6379 2\n".into(),
        "tcp-keepalive 300\nmaxclients 100\ntls-cert-file /x.crt\ntls-replication no\nslaveof 127.0.0.1 1\n"
            .into(),
        "latency-tracking-info-percentiles\noom-score-adj-values 0 200 800\nhash-max-ziplist-entries 100\n".into(),
        "shutdown-on-sigterm save now\nmaxmemory-clients 10%\nrename-command config \"\"\n".into(),
    ] {
        if let Err(e) = load_str(&content) {
            panic!("{content:?} should load: {e}");
        }
    }
}

#[test]
fn parses_every_sentinel_directive() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("notify.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let content = format!(
        "sentinel myid {ID}
sentinel down-after-milliseconds mymaster 5000
sentinel monitor mymaster 10.0.0.1 6379 2
sentinel failover-timeout mymaster 60000
sentinel parallel-syncs mymaster 3
sentinel notification-script mymaster {s}
sentinel client-reconfig-script mymaster {s}
sentinel auth-pass mymaster \"pa ss\"
sentinel auth-user mymaster bob
sentinel rename-command mymaster CONFIG MYCONFIG
sentinel master-reboot-down-after-period mymaster 1000
sentinel config-epoch mymaster 7
sentinel leader-epoch mymaster 6
sentinel known-replica mymaster 10.0.0.2 6379
sentinel known-slave mymaster 10.0.0.3 6379
sentinel known-sentinel mymaster 10.0.0.4 26379 {ID}
sentinel current-epoch 5
sentinel announce-ip 1.2.3.4
sentinel announce-port 26999
sentinel deny-scripts-reconfig no
sentinel sentinel-user su
sentinel sentinel-pass sp
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
port 26380
bind 127.0.0.1 ::1
protected-mode yes
daemonize yes
pidfile /run/x.pid
logfile /tmp/x.log
loglevel warning
requirepass secret
user alice on >pw ~* +@all
aclfile /etc/users.acl
acllog-max-len 64
maxclients 500
supervised systemd
log-format json
admin-addr 127.0.0.1:9121
data-dir state
",
        s = script.display()
    );
    let p = write(d.path(), "s.conf", &content);
    let c = load(&p, &[]).unwrap();
    let st = &c.sentinel;
    assert_eq!(st.myid.as_deref(), Some(ID));
    assert_eq!(st.current_epoch, 7, "config-epoch raises current-epoch");
    let g = &st.globals;
    assert_eq!(g.announce_ip.as_deref(), Some("1.2.3.4"));
    assert_eq!(g.announce_port, 26999);
    assert!(!g.deny_scripts_reconfig && g.resolve_hostnames && g.announce_hostnames);
    assert_eq!(g.sentinel_user.as_deref(), Some("su"));
    assert_eq!(g.sentinel_pass.as_deref(), Some("sp"));
    let m = &st.masters[0];
    assert_eq!(
        (m.name.as_str(), m.host.as_str(), m.port, m.quorum),
        ("mymaster", "10.0.0.1", 6379, 2)
    );
    assert_eq!(
        (m.down_after_ms, m.failover_timeout_ms, m.parallel_syncs),
        (5000, 60000, 3)
    );
    let sp = script.display().to_string();
    assert_eq!(m.notification_script.as_deref(), Some(sp.as_str()));
    assert_eq!(m.client_reconfig_script.as_deref(), Some(sp.as_str()));
    assert_eq!(m.auth_pass.as_deref(), Some("pa ss"));
    assert_eq!(m.auth_user.as_deref(), Some("bob"));
    assert_eq!(
        m.rename_commands,
        vec![("CONFIG".to_string(), "MYCONFIG".to_string())]
    );
    assert_eq!(m.master_reboot_down_after_period_ms, 1000);
    assert_eq!((m.config_epoch, m.leader_epoch), (7, 6));
    assert_eq!(
        m.known_replicas,
        vec![
            ("10.0.0.2".to_string(), 6379),
            ("10.0.0.3".to_string(), 6379)
        ]
    );
    assert_eq!(
        m.known_sentinels,
        vec![("10.0.0.4".to_string(), 26379, ID.to_string())]
    );
    let s = &c.server;
    assert_eq!(s.port, 26380);
    assert_eq!(s.bind, vec!["127.0.0.1", "::1"]);
    assert!(s.protected_mode && s.daemonize);
    assert_eq!(s.pidfile.as_deref(), Some("/run/x.pid"));
    assert_eq!(s.logfile, "/tmp/x.log");
    assert_eq!(s.loglevel, "warning");
    assert_eq!(s.requirepass.as_deref(), Some("secret"));
    assert_eq!(s.users, vec!["alice on >pw ~* +@all"]);
    assert_eq!(s.aclfile.as_deref(), Some("/etc/users.acl"));
    assert_eq!((s.acllog_max_len, s.maxclients), (64, 500));
    assert_eq!(s.supervised.as_deref(), Some("systemd"));
    assert_eq!(s.log_format, "json");
    assert_eq!(s.admin_addr.as_deref(), Some("127.0.0.1:9121"));
    assert_eq!(s.data_dir.as_deref(), Some("state"));
    assert_eq!(c.file.flush_path(), p.as_path());
    assert!(c.file.fallback_warning().is_none());
}

#[test]
fn defaults_match_sentinel() {
    let c = load_str("").unwrap();
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.sentinel, PersistedState::default());
    let m = load_str(M).unwrap().sentinel.masters.remove(0);
    assert_eq!(m, MasterState::new("m", "127.0.0.1", 6379, 2));
}

#[test]
fn three_passes_and_dir_for_relative_scripts() {
    let d = tempfile::tempdir().unwrap();
    let sub = d.path().join("scripts");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("n.sh"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sub.join("n.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Per-master lines first, hostname before resolve-hostnames, script
    // relative to a `dir` given after it: all fine, as in Sentinel.
    let content = format!(
        "sentinel notification-script m n.sh\nsentinel known-replica m replica.local 6380\n\
         sentinel monitor m master.local 6379 2\nsentinel resolve-hostnames yes\ndir {}\n",
        sub.display()
    );
    let p = write(d.path(), "s.conf", &content);
    let c = load(&p, &[]).unwrap();
    let m = &c.sentinel.masters[0];
    assert_eq!(m.host, "master.local");
    assert_eq!(m.known_replicas, vec![("replica.local".to_string(), 6380)]);
    assert_eq!(m.notification_script.as_deref(), Some("n.sh"));
    assert_eq!(
        c.server.dir.as_deref(),
        Some(std::fs::canonicalize(&sub).unwrap().to_str().unwrap())
    );
}

#[test]
fn command_line_overrides() {
    assert_eq!(
        parse::override_lines(&words("--port 26380 --sentinel")),
        vec!["port \"26380\" ", "sentinel "]
    );
    assert_eq!(
        parse::override_lines(&words("--sentinel --port 1 --sentinel announce-ip 1.2.3.4")),
        vec![
            "sentinel ",
            "port \"1\" ",
            "sentinel \"announce-ip\" \"1.2.3.4\" "
        ]
    );
    assert_eq!(
        parse::override_lines(&words("--save --daemonize no")),
        vec!["save \"\"", "daemonize \"no\" "]
    );
    assert_eq!(
        parse::override_lines(&["--port 7".to_string()]),
        vec!["port 7 "]
    );
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "s.conf", &format!("port 26379\n{M}"));
    let c = load(
        &p,
        &words("--port 26380 --sentinel --daemonize no --sentinel announce-ip 1.2.3.4 --loglevel warning"),
    )
    .unwrap();
    assert_eq!(c.server.port, 26380);
    assert_eq!(c.server.loglevel, "warning");
    assert_eq!(c.sentinel.globals.announce_ip.as_deref(), Some("1.2.3.4"));
    // Sentinel lines on the command line take part in the three passes.
    let c = load(&p, &words("--sentinel down-after-milliseconds m 1000")).unwrap();
    assert_eq!(c.sentinel.masters[0].down_after_ms, 1000);
    let e = load(&p, &words("--port 1 --bogus x")).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("command line", 2));
    assert_eq!(e.message, "Bad directive or wrong number of arguments");
}

#[test]
fn include_reads_another_file() {
    let d = tempfile::tempdir().unwrap();
    let inc = write(
        d.path(),
        "inc.conf",
        "sentinel down-after-milliseconds m 1234\nbad line here\n",
    );
    let p = write(
        d.path(),
        "s.conf",
        &format!("{M}include {}\n", inc.display()),
    );
    let e = load(&p, &[]).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), (inc.to_str().unwrap(), 2));
    write(
        d.path(),
        "inc.conf",
        "sentinel down-after-milliseconds m 1234\n",
    );
    assert_eq!(
        load(&p, &[]).unwrap().sentinel.masters[0].down_after_ms,
        1234
    );
    // A relative include resolves against `dir` when `dir` comes first.
    let p = write(
        d.path(),
        "s2.conf",
        &format!("dir {}\n{M}include inc.conf\n", d.path().display()),
    );
    assert_eq!(
        load(&p, &[]).unwrap().sentinel.masters[0].down_after_ms,
        1234
    );
}

fn golden(name: &str, steps: &[&dyn Fn(&mut PersistedState)]) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/testdata");
    let input = std::fs::read_to_string(base.join(format!("{name}.in.conf"))).unwrap();
    let want = std::fs::read_to_string(base.join(format!("{name}.out.conf"))).unwrap();
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "s.conf", &input);
    let c = load(&p, &words("--port 46393")).unwrap();
    let mut state = c.sentinel.clone();
    for step in steps {
        step(&mut state);
        flush(&c.file, &c.server, &state).unwrap();
    }
    flush(&c.file, &c.server, &state).unwrap();
    let got = std::fs::read_to_string(&p).unwrap();
    assert_eq!(got, want, "golden {name}");
    // No temp file left behind.
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn golden_minimal() {
    golden("minimal", &[]);
}

#[test]
fn golden_per_master_lines_before_monitor() {
    golden("permaster", &[]);
}

#[test]
fn golden_generic_directives() {
    golden("generic", &[]);
}

#[test]
fn golden_hostnames() {
    golden("hostnames", &[]);
}

#[test]
fn error_display_format() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "s.conf",
        &format!("\n\nsentinel down-after-milliseconds m 0\n{M}"),
    );
    let e = load(&p, &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3: sentinel down-after-milliseconds: negative or zero time parameter. >>> 'sentinel down-after-milliseconds m 0'",
            p.display()
        )
    );
    assert_eq!(
        e.redis_report(),
        "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 3\n>>> 'sentinel down-after-milliseconds m 0'\nnegative or zero time parameter.\n"
    );
    let e = load(&d.path().join("missing.conf"), &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("missing.conf:0: can't open config file"),
        "{e}"
    );
}

#[test]
fn golden_runtime_set_commands() {
    // runtime.cmds: each SENTINEL SET / CONFIG SET flushes.
    golden(
        "runtime",
        &[
            &|s: &mut PersistedState| s.masters[0].down_after_ms = 30000,
            &|s: &mut PersistedState| s.masters[0].quorum = 3,
            &|s: &mut PersistedState| s.masters[0].auth_pass = None,
            &|s: &mut PersistedState| s.masters[0].rename_commands.clear(),
            &|s: &mut PersistedState| s.globals.announce_ip = Some("127.0.0.9".into()),
            &|s: &mut PersistedState| s.globals.sentinel_user = None,
            &|s: &mut PersistedState| s.masters[0].master_reboot_down_after_period_ms = 0,
        ],
    );
}

#[test]
fn golden_remove_blanks_master_lines() {
    golden("remove", &[&|s: &mut PersistedState| s.masters.clear()]);
}

#[test]
fn golden_monitor_then_set() {
    golden(
        "monitor",
        &[
            &|s: &mut PersistedState| {
                s.masters
                    .push(MasterState::new("new", "127.0.0.1", 6500, 1))
            },
            &|s: &mut PersistedState| s.masters[0].failover_timeout_ms = 1000,
            &|s: &mut PersistedState| s.masters[0].parallel_syncs = 2,
            &|s: &mut PersistedState| s.masters[0].auth_user = Some("bob".into()),
        ],
    );
}

#[test]
fn rewrite_is_idempotent() {
    for name in ["minimal", "permaster", "generic"] {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/testdata");
        let input = std::fs::read_to_string(base.join(format!("{name}.in.conf"))).unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "s.conf", &input);
        let c = load(&p, &[]).unwrap();
        flush(&c.file, &c.server, &c.sentinel).unwrap();
        // Redis adds one trailing blank line on the second rewrite (the file
        // now ends in a newline); from then on the file is stable.
        flush(&c.file, &c.server, &c.sentinel).unwrap();
        let second = std::fs::read_to_string(&p).unwrap();
        let c2 = load(&p, &[]).unwrap();
        assert_eq!(c2.sentinel, c.sentinel, "{name}");
        flush(&c2.file, &c2.server, &c2.sentinel).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), second, "{name}");
    }
}

#[test]
fn rewrite_keeps_unknown_lines_and_reuses_known_slave() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "s.conf",
        &format!(
            "sentinel myid {ID}\n{M}sentinel known-slave m 127.0.0.1 7000\ninclude /dev/null\n"
        ),
    );
    let c = load(&p, &[]).unwrap();
    flush(&c.file, &c.server, &c.sentinel).unwrap();
    let got = std::fs::read_to_string(&p).unwrap();
    assert!(
        got.contains("sentinel known-replica m 127.0.0.1 7000\ninclude /dev/null\n"),
        "{got}"
    );
    assert!(!got.contains("known-slave"));
    // ... and it loads again (7.0 would have written a duplicate).
    assert_eq!(load(&p, &[]).unwrap().sentinel, c.sentinel);
}

#[test]
fn round_trip_keeps_learned_state() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "s.conf",
        "# my sentinel\nport 26379\nsentinel monitor m 127.0.0.1 6379 2\n",
    );
    let c = load(&p, &[]).unwrap();
    let mut st = c.sentinel.clone();
    st.myid = Some(ID.into());
    st.current_epoch = 9;
    st.globals.announce_hostnames = true;
    st.globals.resolve_hostnames = true;
    st.globals.sentinel_pass = Some("p w".into());
    let m = &mut st.masters[0];
    m.host = "10.1.1.1".into();
    m.config_epoch = 9;
    m.leader_epoch = 9;
    m.known_replicas = vec![("127.0.0.1".into(), 6379), ("db-2.local".into(), 6380)];
    m.known_sentinels = vec![("127.0.0.1".into(), 26380, "a".repeat(40))];
    m.auth_pass = Some("with space".into());
    m.parallel_syncs = 0;
    st.masters.push(MasterState::new("other", "::1", 7000, 1));
    flush(&c.file, &c.server, &st).unwrap();
    let c2 = load(&p, &[]).unwrap();
    assert_eq!(c2.sentinel, st);
    // The rewrite made `dir` and the implicit default user explicit, as Redis does.
    assert_eq!(c2.server.port, c.server.port);
    assert_eq!(c2.server.users, vec!["default on nopass ~* &* +@all"]);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        text.starts_with("# my sentinel\nport 26379\nsentinel monitor m 10.1.1.1 6379 2\n"),
        "{text}"
    );
}

#[test]
fn failed_write_leaves_the_old_file_intact() {
    let d = tempfile::tempdir().unwrap();
    let original = format!("sentinel myid {ID}\n{M}");
    let p = write(d.path(), "s.conf", &original);
    let c = load(&p, &[]).unwrap();
    // The temp file path is taken by a directory: creating it fails.
    let tmp = d.path().join(format!("s.conf.tmp.{}", std::process::id()));
    std::fs::create_dir(&tmp).unwrap();
    let mut st = c.sentinel.clone();
    st.current_epoch = 42;
    let e = flush(&c.file, &c.server, &st).unwrap_err();
    assert!(matches!(e, FlushError::Write { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), original);
    std::fs::remove_dir(&tmp).unwrap();
    flush(&c.file, &c.server, &st).unwrap();
    assert_eq!(load(&p, &[]).unwrap().sentinel.current_epoch, 42);
}

#[test]
fn read_only_config_falls_back_to_the_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let original = format!("{M}data-dir {}\n", data.display());
    let p = write(d.path(), "s.conf", &original);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
    let c = load(&p, &[]).unwrap();
    let state_file = data.join(STATE_FILE_NAME);
    assert_eq!(c.file.flush_path(), state_file.as_path());
    let w = c.file.fallback_warning().unwrap();
    assert!(
        w.contains("not writable") && w.contains(STATE_FILE_NAME),
        "{w}"
    );
    let mut st = c.sentinel.clone();
    st.myid = Some(ID.into());
    st.current_epoch = 3;
    st.masters[0].host = "127.0.0.2".into();
    st.masters[0]
        .known_replicas
        .push(("127.0.0.1".into(), 6379));
    flush(&c.file, &c.server, &st).unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), original);
    let saved = std::fs::read_to_string(&state_file).unwrap();
    assert!(
        saved.contains("sentinel monitor m 127.0.0.2 6379 2\n"),
        "{saved}"
    );
    assert!(
        !saved.contains("port ") && !saved.contains("user "),
        "{saved}"
    );
    let c2 = load(&p, &[]).unwrap();
    assert_eq!(c2.sentinel, st);
    // Flushing again keeps the state file loadable and stable.
    flush(&c2.file, &c2.server, &c2.sentinel).unwrap();
    assert_eq!(load(&p, &[]).unwrap().sentinel, st);
}

const TOML_FULL: &str = r#"
[server]
port = 26380
bind = ["127.0.0.1", "::1"]
loglevel = "warning"
log-format = "json"
admin-addr = "127.0.0.1:9121"
requirepass = "secret"
maxclients = 500
users = ["alice on >pw ~* +@all"]

[redis]
tcp-keepalive = 300
maxmemory = "1gb"

[sentinel]
myid = "0123456789012345678901234567890123456789"
announce-ip = "1.2.3.4"
announce-port = 26999
resolve-hostnames = true
announce-hostnames = true
deny-scripts-reconfig = false
sentinel-user = "su"
sentinel-pass = "sp"

[[masters]]
name = "mymaster"
host = "db-0.local"
port = 6379
quorum = 2
down-after-milliseconds = 5000
failover-timeout = 60000
parallel-syncs = 3
auth-pass = "s3cret"
auth-user = "bob"
master-reboot-down-after-period = 1000
refused-down-after-milliseconds = 250
rename-commands = { CONFIG = "MYCONFIG" }

[raft]
cluster-id = "prod"
peers = ["10.0.0.1:7000", "1.2.3.4:26999"]
"#;

const CONF_FULL: &str = "port 26380
bind 127.0.0.1 ::1
loglevel warning
log-format json
admin-addr 127.0.0.1:9121
requirepass secret
maxclients 500
user alice on >pw ~* +@all
tcp-keepalive 300
maxmemory 1gb
sentinel myid 0123456789012345678901234567890123456789
sentinel announce-ip 1.2.3.4
sentinel announce-port 26999
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel deny-scripts-reconfig no
sentinel sentinel-user su
sentinel sentinel-pass sp
sentinel monitor mymaster db-0.local 6379 2
sentinel down-after-milliseconds mymaster 5000
sentinel failover-timeout mymaster 60000
sentinel parallel-syncs mymaster 3
sentinel auth-pass mymaster s3cret
sentinel auth-user mymaster bob
sentinel master-reboot-down-after-period mymaster 1000
sentinel refused-down-after-milliseconds mymaster 250
sentinel rename-command mymaster CONFIG MYCONFIG
";

#[test]
fn raft_options_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let ok = write(
        d.path(),
        "ok.toml",
        "[raft]\nremove-unreachable-after-ms = 600000\n",
    );
    assert_eq!(
        load(&ok, &[]).unwrap().raft.remove_unreachable_after_ms,
        Some(600_000)
    );
    let off = write(
        d.path(),
        "off.toml",
        "[raft]\nremove-unreachable-after-ms = 0\n",
    );
    assert_eq!(
        load(&off, &[]).unwrap().raft.remove_unreachable_after_ms,
        None
    );
    for (name, text) in [
        ("short.toml", "[raft]\nremove-unreachable-after-ms = 500\n"),
        ("star.toml", "[raft]\ncluster-id = \"*\"\n"),
        ("space.toml", "[raft]\ncluster-id = \"a b\"\n"),
    ] {
        let p = write(d.path(), name, text);
        let e = load(&p, &[]).unwrap_err().to_string();
        assert!(e.contains(":2:"), "{name}: {e}");
    }
}

/// `[kubernetes]` is in force only in a build with the `k8s` feature; the
/// default build refuses it at its line, and `enabled = false` keeps it off.
#[test]
fn the_kubernetes_table_is_in_force_or_refused() {
    let d = tempfile::tempdir().unwrap();
    let off = write(d.path(), "off.toml", "[kubernetes]\nenabled = false\n");
    assert_eq!(load(&off, &[]).unwrap().kubernetes, None);
    let on = write(
        d.path(),
        "on.toml",
        "[kubernetes]\nrole-labels = [\"raftinel\", \"bitnami\"]\nredis = \"127.0.0.1:6380\"\n",
    );
    if cfg!(feature = "k8s") {
        let k = load(&on, &[]).unwrap().kubernetes.expect("in force");
        assert_eq!(k.role_labels.len(), 2);
        assert_eq!(k.redis.as_deref(), Some("127.0.0.1:6380"));
        assert!(k.events);
        for (name, text) in [
            ("labels.toml", "[kubernetes]\nrole-labels = [\"nope\"]\n"),
            (
                "twice.toml",
                "[kubernetes]\nrole-labels = [\"raftinel\", \"raftinel.io/role=a/b/c\"]\n",
            ),
            ("url.toml", "[kubernetes]\napi-url = \"ftp://x\"\n"),
            ("redis.toml", "[kubernetes]\nredis = \"nohost\"\n"),
            ("key.toml", "[kubernetes]\nbogus = 1\n"),
            ("sts.toml", "[kubernetes]\nstatefulset = \"raftinel\"\n"),
            (
                "template.toml",
                "[kubernetes]\nstatefulset = \"r\"\npeer-template = \"r-0.svc:26379\"\n",
            ),
        ] {
            let p = write(d.path(), name, text);
            let e = load(&p, &[]).unwrap_err().to_string();
            assert!(e.contains(":1:") || e.contains(":2:"), "{name}: {e}");
        }
    } else {
        let e = load(&on, &[]).unwrap_err().to_string();
        assert!(e.contains("cargo feature `k8s`"), "{e}");
    }
}

#[test]
fn toml_is_equivalent_to_sentinel_conf() {
    let d = tempfile::tempdir().unwrap();
    let t = write(d.path(), "raftinel.toml", TOML_FULL);
    let s = write(d.path(), "sentinel.conf", CONF_FULL);
    let ct = load(&t, &[]).unwrap();
    let cs = load(&s, &[]).unwrap();
    assert_eq!(ct.server, cs.server);
    assert_eq!(ct.sentinel, cs.sentinel);
    assert_eq!(ct.sentinel.masters[0].refused_down_after_ms, 250);
    assert_eq!(ct.file.extras, cs.file.extras);
    assert_eq!(ct.file.format(), ConfigFormat::Toml);
    assert_eq!(
        ct.raft,
        RaftOptions {
            cluster_id: Some("prod".into()),
            peers: vec!["10.0.0.1:7000".into(), "1.2.3.4:26999".into()],
            ..RaftOptions::default()
        }
    );
    // Multi-argument directives may be one string.
    let t2 = write(d.path(), "b.toml", "[server]\nbind = \"127.0.0.1 ::1\"\n[redis]\nclient-output-buffer-limit = \"normal 0 0 0\"\n");
    let c2 = load(&t2, &[]).unwrap();
    assert_eq!(c2.server.bind, vec!["127.0.0.1", "::1"]);
    // Overrides apply to TOML too.
    assert_eq!(load(&t, &words("--port 1")).unwrap().server.port, 1);
}

#[test]
fn toml_errors_point_at_the_line() {
    let e = load_str_named("raftinel.toml", "[server]\nport = 1\nbogus = 2\n");
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("unknown field `bogus`"), "{e}");
    let e = load_str_named(
        "raftinel.toml",
        "[[masters]]\nname = \"m\"\nhost = \"127.0.0.1\"\nport = 6379\nquorum = 0\n",
    );
    assert_eq!(
        (e.line, e.message.as_str()),
        (3, "Quorum must be 1 or greater."),
        "{e}"
    );
    let e = load_str_named(
        "raftinel.toml",
        "[[masters]]\nname = \"m\"\nhost = \"127.0.0.1\"\nport = 6379\nquorum = 2\n\ndown-after-milliseconds = 0\n",
    );
    assert_eq!(
        (e.line, e.message.as_str()),
        (7, "negative or zero time parameter."),
        "{e}"
    );
    let e = load_str_named("raftinel.toml", "[redis]\ntcp-keepalive = \"x\"\n");
    assert_eq!(e.line, 2, "{e}");
    let e = load_str_named("raftinel.toml", "[server]\nport = \n");
    assert_eq!(e.line, 2, "{e}");
    let e = load_str_named("raftinel.toml", "[nope]\n");
    assert_eq!(e.line, 1, "{e}");
}

fn load_str_named(name: &str, content: &str) -> ConfigError {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), name, content);
    load(&p, &[]).unwrap_err()
}

#[test]
fn toml_state_goes_to_the_data_dir_and_is_merged_back() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let toml_text = format!(
        "[server]\ndata-dir = \"{}\"\n\n[[masters]]\nname = \"m\"\nhost = \"127.0.0.1\"\nport = 6379\nquorum = 2\n\n[[masters]]\nname = \"n\"\nhost = \"127.0.0.1\"\nport = 6380\nquorum = 1\n",
        data.display()
    );
    let t = write(d.path(), "raftinel.toml", &toml_text);
    let c = load(&t, &[]).unwrap();
    assert!(c.file.fallback_warning().is_none());
    assert_eq!(c.file.flush_path(), data.join(STATE_FILE_NAME).as_path());
    let mut st = c.sentinel.clone();
    st.myid = Some(ID.into());
    st.current_epoch = 4;
    st.masters[0].host = "127.0.0.9".into();
    st.masters[0].config_epoch = 4;
    st.masters[0]
        .known_sentinels
        .push(("127.0.0.1".into(), 26380, "b".repeat(40)));
    flush(&c.file, &c.server, &st).unwrap();
    assert_eq!(std::fs::read_to_string(&t).unwrap(), toml_text);
    let c2 = load(&t, &[]).unwrap();
    assert_eq!(c2.sentinel, st);
    flush(&c2.file, &c2.server, &c2.sentinel).unwrap();
    assert_eq!(load(&t, &[]).unwrap().sentinel, st);
}

#[test]
fn sample_files_load_and_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let s = load(&root.join("sentinel.conf"), &[]).unwrap();
    let t = load(&root.join("raftinel.toml"), &[]).unwrap();
    assert_eq!(s.sentinel, t.sentinel);
    assert_eq!(s.server, t.server);
    assert_eq!(
        s.sentinel.masters[0],
        MasterState::new("mymaster", "127.0.0.1", 6379, 2)
    );
}

#[test]
fn check_config_lists_effective_values() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "s.conf",
        &format!("{M}tcp-keepalive 300\nmaxmemory 1gb\ntls-cert-file /x.crt\ntls-client-cert-file /c.crt\n"),
    );
    let out = check_config(&p, &words("--port 26390")).unwrap();
    // TLS directives are in force with tls-port or tls-replication only, as
    // in Redis.
    for name in ["tls-cert-file", "tls-client-cert-file"] {
        assert!(out.contains(&format!(
            "# {name}: in force with tls-port or tls-replication, both off here (as in Redis); kept for the rewrite\n{name} "
        )), "{out}");
    }
    // What the daemon does not act on is said so, above its line.
    assert!(out.contains(
        "# maxmemory: accepted for redis-sentinel's files, not acted on by raftinel; kept for the rewrite\nmaxmemory 1gb\n"
    ));
    assert!(!out.contains("# tcp-keepalive"));
    for l in [
        "port 26390\n",
        "loglevel notice\n",
        "maxclients 10000\n",
        "tcp-keepalive 300\n",
        "user default on nopass ~* &* +@all\n",
        "sentinel deny-scripts-reconfig yes\n",
        "sentinel monitor m 127.0.0.1 6379 2\n",
        "sentinel down-after-milliseconds m 30000\n",
        "sentinel failover-timeout m 180000\n",
        "sentinel parallel-syncs m 1\n",
        "sentinel current-epoch 0\n",
    ] {
        assert!(out.contains(l), "missing {l:?} in\n{out}");
    }
    assert!(check_config(&p, &words("--port x")).is_err());
    // The output is itself a configuration that loads to the same values.
    let again = write(d.path(), "effective.conf", &out);
    let (c1, c2) = (
        load(&p, &words("--port 26390")).unwrap(),
        load(&again, &[]).unwrap(),
    );
    assert_eq!(c2.sentinel, c1.sentinel);
    assert_eq!(c2.file.extras, c1.file.extras);
    assert_eq!(c2.server.port, 26390);
}

/// Garbage in: the loader answers with errors and the rewrite with a file,
/// never a panic.
#[test]
fn no_panic_on_garbage() {
    let tokens = [
        "sentinel",
        "monitor",
        "m",
        "127.0.0.1",
        "::1",
        "host.local",
        "6379",
        "0",
        "-1",
        "70000",
        "abc",
        "known-replica",
        "known-sentinel",
        "config-epoch",
        "current-epoch",
        "rename-command",
        "\"",
        "'",
        "\"a b\"",
        "\\x41",
        "port",
        "bind",
        "dir",
        "include",
        "user",
        "yes",
        "no",
        "#",
        "\t",
        "resolve-hostnames",
        "down-after-milliseconds",
        "myid",
        ID,
        "save",
        "",
        "maxmemory",
        "1gb",
        "\u{e9}",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.conf");
    for _ in 0..400 {
        let mut text = String::new();
        for _ in 0..(next() % 8) {
            for _ in 0..(next() % 7) {
                text.push_str(tokens[(next() % tokens.len() as u64) as usize]);
                text.push(' ');
            }
            text.push('\n');
        }
        std::fs::write(&p, &text).unwrap();
        let loaded = load(&p, &[]).is_ok();
        let t = d.path().join("x.toml");
        std::fs::write(&t, text.replace(' ', " = ")).unwrap();
        let _ = load(&t, &[]);
        let file = ConfigFile::sentinel_conf(&p);
        let mut st = PersistedState::default();
        st.masters.push(MasterState::new("m", "127.0.0.1", 6379, 2));
        flush(&file, &ServerConfig::default(), &st).unwrap();
        flush(&file, &ServerConfig::default(), &st).unwrap();
        let twice = std::fs::read_to_string(&p).unwrap();
        flush(&file, &ServerConfig::default(), &st).unwrap();
        let thrice = std::fs::read_to_string(&p).unwrap();
        // Stable from the second rewrite on (see rewrite_is_idempotent).
        assert_eq!(twice, thrice, "input {text:?}");
        if loaded {
            // A file that loaded still loads after the rewrite, with our masters.
            let again = load(&p, &[]).unwrap_or_else(|e| panic!("{e} for input {text:?}"));
            assert_eq!(again.sentinel.masters, st.masters, "input {text:?}");
        }
    }
}

#[test]
fn the_group_secret_comes_from_secret_file_or_the_environment() {
    let d = tempfile::tempdir().unwrap();
    let secret = "a-group-secret-of-32-characters!";
    write(d.path(), "secret", &format!("{secret}\n"));
    let t = write(
        d.path(),
        "raftinel.toml",
        &format!(
            "[server]\ndir = \"{}\"\n\n[raft]\nsecret-file = \"secret\"\n",
            d.path().display()
        ),
    );
    let c = load(&t, &[]).unwrap();
    let f = c.raft.secret_file.clone().unwrap();
    assert_eq!((f.path.as_str(), f.line), ("secret", 5));
    assert_eq!(
        c.raft.secret,
        Some(GroupSecret::new(secret.as_bytes()).unwrap()),
        "relative to dir, the trailing newline dropped"
    );
    // check-config names where the secret comes from, never the secret.
    let shown = check_config(&t, &[]).unwrap();
    assert!(shown.contains("# raft secret-file secret") && !shown.contains(secret));

    let file = |path: &str| SecretFile {
        path: path.into(),
        line: 5,
        text: format!("secret-file = \"{path}\""),
    };
    let err = |path: &str, env: Option<&str>| {
        group_secret("r.toml", Some(&file(path)), env.map(Into::into), d.path())
            .unwrap_err()
            .to_string()
    };
    write(d.path(), "short", "0123456789\n");
    write(d.path(), "blank", " \n");
    assert_eq!(
        err("nope", None),
        "r.toml:5: secret-file: can't read the group secret file 'nope': No such file or directory >>> 'secret-file = \"nope\"'"
    );
    assert!(err(".", None).ends_with("'.': Is a directory >>> 'secret-file = \".\"'"));
    assert!(err("short", None).contains(
        "secret-file: 'short': the group secret is 10 bytes long; at least 16 are needed"
    ));
    assert!(err("blank", None).contains("'blank': the group secret is empty"));
    assert!(err("secret", Some("x")).contains("RAFTINEL_SECRET is set too"));

    // The environment alone (any format, sentinel.conf included).
    let env = |v: &str| group_secret("s.conf", None, Some(v.into()), d.path());
    assert_eq!(
        env(secret).unwrap(),
        Some(GroupSecret::new(secret.as_bytes()).unwrap())
    );
    assert_eq!(
        env("").unwrap_err().to_string(),
        "environment:0: RAFTINEL_SECRET: the group secret is empty"
    );
    assert!(env("too short").is_err());
    assert_eq!(group_secret("s.conf", None, None, d.path()).unwrap(), None);
    let bad = write(d.path(), "b.toml", "[raft]\nsecret-file = \"\"\n");
    assert_eq!(load(&bad, &[]).unwrap_err().line, 2);
}

#[test]
fn client_directives_are_read_into_the_server_config() {
    let c = load_str(
        "timeout 30\ntcp-keepalive 60\ntcp-backlog 128\nproto-max-bulk-len 2mb\n\
         client-query-buffer-limit 8mb\nsyslog-enabled no\ntls-port 0\nunixsocket \"\"\n",
    )
    .expect("loads");
    let s = &c.server;
    assert_eq!((s.timeout, s.tcp_keepalive, s.tcp_backlog), (30, 60, 128));
    assert_eq!(s.proto_max_bulk_len, 2 * 1024 * 1024);
    assert_eq!(s.query_buffer_limit, 8 * 1024 * 1024);
    let d = load_str("").expect("loads").server;
    assert_eq!((d.timeout, d.tcp_keepalive, d.tcp_backlog), (0, 300, 511));
    assert_eq!(
        (
            d.syslog_enabled,
            d.syslog_ident.as_str(),
            d.syslog_facility.as_str()
        ),
        (false, "redis", "local0")
    );
    let c = load_str("syslog-enabled yes\nsyslog-ident sentinel-a\nsyslog-facility LOCAL3\n")
        .expect("loads")
        .server;
    assert_eq!(
        (
            c.syslog_enabled,
            c.syslog_ident.as_str(),
            c.syslog_facility.as_str()
        ),
        (true, "sentinel-a", "local3")
    );
    assert!(load_str("syslog-facility kern\n").is_err());
    let d = tempfile::tempdir().unwrap();
    let t = write(
        d.path(),
        "s.toml",
        "[server]\nsyslog-enabled = true\nsyslog-ident = \"a\"\nsyslog-facility = \"user\"\n",
    );
    let t = load(&t, &[]).expect("loads").server;
    assert_eq!(
        (
            t.syslog_enabled,
            t.syslog_ident.as_str(),
            t.syslog_facility.as_str()
        ),
        (true, "a", "user")
    );
}

/// `${NAME}` is expanded in string values; an unset variable is an error at
/// its line (the test's variable names are its own: nothing else sets them).
#[test]
fn toml_env_expansion() {
    std::env::set_var("RAFTINEL_TEST_EXPANSION_NS", "7");
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "raftinel.toml",
        "# ${NOT_EXPANDED} in a comment\n[sentinel]\nannounce-ip = \"a.${RAFTINEL_TEST_EXPANSION_NS}.svc\"\n\
         [[masters]]\nname = \"m\"\nhost = \"10.0.${RAFTINEL_TEST_EXPANSION_NS}.1\"\nport = 6379\nquorum = 2\n\
         [raft]\npeers = [\"a.${RAFTINEL_TEST_EXPANSION_NS}.svc:26379\", \"b.${RAFTINEL_TEST_EXPANSION_NS}.svc:26379\"]\n",
    );
    let cfg = load(&p, &[]).unwrap();
    assert_eq!(cfg.sentinel.globals.announce_ip.as_deref(), Some("a.7.svc"));
    assert_eq!(cfg.sentinel.masters[0].host, "10.0.7.1");
    assert_eq!(cfg.raft.peers, vec!["a.7.svc:26379", "b.7.svc:26379"]);
    let e = load_str_named(
        "raftinel.toml",
        "[[masters]]\nname = \"m\"\nhost = \"${RAFTINEL_TEST_EXPANSION_UNSET}\"\nport = 6379\nquorum = 2\n",
    );
    assert_eq!(
        (e.line, e.message.as_str()),
        (
            3,
            "the environment variable RAFTINEL_TEST_EXPANSION_UNSET is not set"
        ),
        "{e}"
    );
    let e = load_str_named(
        "raftinel.toml",
        "[raft]\npeers = [\"a:1\",\n  \"${RAFTINEL_TEST_EXPANSION_UNSET}:2\"]\n",
    );
    assert_eq!(e.line, 3, "{e}");
}

/// A static peer list this daemon cannot use stops it at start.
#[test]
fn toml_peer_list_must_name_this_daemon() {
    let base = "[server]\nport = 26379\n[sentinel]\nannounce-ip = \"pod-1.h\"\n[raft]\n";
    let ok = format!("{base}peers = [\"pod-0.h:26379\", \"POD-1.h:26379\"]\n");
    let d = tempfile::tempdir().unwrap();
    load(&write(d.path(), "raftinel.toml", &ok), &[]).unwrap();
    let e = load_str_named(
        "raftinel.toml",
        &format!("{base}peers = [\"pod-0.h:26379\", \"pod-2.h:26379\"]\n"),
    );
    assert_eq!(e.line, 6, "{e}");
    assert!(
        e.message
            .contains("this daemon (announce-ip pod-1.h, port 26379) is not in [raft] peers"),
        "{e}"
    );
    let e = load_str_named(
        "raftinel.toml",
        &format!("{base}peers = [\"pod-0.h:26379\", \"pod-1.h:26380\"]\n"),
    );
    assert!(
        e.message.contains(
            "peer pod-1.h:26380 is this daemon (announce-ip pod-1.h), but it listens on port 26379"
        ),
        "{e}"
    );
    let e = load_str_named(
        "raftinel.toml",
        &format!("{base}peers = [\"pod-1.h:26379\",\n \"pod-1.h:26379\"]\n"),
    );
    assert_eq!(
        (e.line, e.message.as_str()),
        (7, "peer \"pod-1.h:26379\" is listed twice"),
        "{e}"
    );
    let e = load_str_named("raftinel.toml", &format!("{base}peers = [\"pod-1.h\"]\n"));
    assert_eq!(e.message, "peer \"pod-1.h\" is not host:port", "{e}");
}
