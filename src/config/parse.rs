//! The `sentinel.conf` loader: Redis's line syntax, the generic directive
//! table, and the `sentinel ...` sub-directives applied after the whole input
//! in Sentinel's three passes (globals, then `monitor`, then everything else),
//! with redis-sentinel's validation and messages. raftinel.toml is turned into
//! the same lines (see `toml.rs`) so both formats share every rule here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::args::{atoi, split_args, strtoull, yes_no};
use super::directives::{self, Kind};
use super::{
    ConfigError, GlobalSentinelConfig, MasterState, PersistedState, ServerConfig,
    REFUSED_DOWN_AFTER,
};

/// One logical config line with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct SourceLine {
    pub file: String,
    pub line: usize,
    /// The trimmed original text (shown in errors).
    pub text: String,
    pub args: Vec<String>,
}

impl SourceLine {
    pub(crate) fn error(&self, directive: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line,
            directive: directive.to_string(),
            message: message.into(),
            text: self.text.clone(),
        }
    }
}

/// Splits a whole config text into lines the way Redis's loader does.
pub(crate) fn lines_of(file: &str, text: &str) -> Result<Vec<SourceLine>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let trimmed = raw.trim_matches([' ', '\t', '\r', '\n']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut sl = SourceLine {
            file: file.to_string(),
            line: i + 1,
            text: trimmed.to_string(),
            args: Vec::new(),
        };
        let Some(raw_args) = split_args(trimmed) else {
            let first = trimmed.split_whitespace().next().unwrap_or("");
            return Err(sl.error(first, "Unbalanced quotes in configuration line"));
        };
        let mut args = Vec::with_capacity(raw_args.len());
        for a in raw_args {
            match String::from_utf8(a) {
                Ok(s) => args.push(s),
                Err(_) => {
                    let first = trimmed.split_whitespace().next().unwrap_or("");
                    return Err(sl.error(first, "argument is not valid UTF-8"));
                }
            }
        }
        if args.is_empty() {
            continue;
        }
        sl.args = args;
        out.push(sl);
    }
    Ok(out)
}

/// Turns redis-server style command-line words into config lines, exactly as
/// redis-server's `main` does: `--name` starts a line, following words are
/// its (quoted) arguments; `--sentinel` alone is the sentinel-mode flag.
pub(crate) fn override_lines(words: &[String]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut handled_last = true;
    for (j, w) in words.iter().enumerate() {
        let next_is_option = words.get(j + 1).is_some_and(|n| n.starts_with("--"));
        if handled_last && w.starts_with("--") {
            let name = &w[2..];
            let mut line = format!("{name} ");
            let parts = split_args(w).map(|v| v.len()).unwrap_or(0);
            if parts == 1 {
                handled_last = false;
                let is_save = name.eq_ignore_ascii_case("save");
                let is_sentinel = name.eq_ignore_ascii_case("sentinel");
                if is_save && (next_is_option || j + 1 == words.len()) {
                    line.push_str("\"\"");
                    handled_last = true;
                } else if is_sentinel && next_is_option {
                    handled_last = true;
                }
            } else {
                handled_last = true;
            }
            lines.push(line);
        } else {
            let repr = super::args::repr(w);
            match lines.last_mut() {
                Some(l) => {
                    l.push_str(&repr);
                    l.push(' ');
                }
                None => lines.push(format!("{repr} ")),
            }
            handled_last = true;
        }
    }
    lines
}

/// Reads generic directives into `ServerConfig` (+ the ones only kept for the
/// rewrite) and queues `sentinel` lines for [`apply_sentinel`].
pub(crate) struct Loader {
    pub server: ServerConfig,
    /// Non-interpreted generic directives by canonical name (last one wins).
    pub extras: IndexMap<&'static str, Vec<String>>,
    /// Generic `rename-command` lines (kept for the rewrite).
    pub rename_commands: Vec<(String, String)>,
    pub sentinel_queue: Vec<SourceLine>,
    /// The line each `tls-*` directive was last set on (for the errors
    /// found when the certificates are read).
    tls_lines: IndexMap<&'static str, SourceLine>,
    cwd: PathBuf,
    depth: usize,
}

const MAX_INCLUDE_DEPTH: usize = 16;

impl Loader {
    pub(crate) fn new(cwd: PathBuf) -> Self {
        Loader {
            server: ServerConfig::default(),
            extras: IndexMap::new(),
            rename_commands: Vec::new(),
            sentinel_queue: Vec::new(),
            tls_lines: IndexMap::new(),
            cwd,
            depth: 0,
        }
    }

    /// The directory relative paths resolve against (`dir` chdirs).
    pub(crate) fn base_dir(&self) -> PathBuf {
        self.server
            .dir
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.cwd.clone())
    }

    pub(crate) fn feed_text(&mut self, file: &str, text: &str) -> Result<(), ConfigError> {
        for sl in lines_of(file, text)? {
            self.feed_line(sl)?;
        }
        Ok(())
    }

    pub(crate) fn feed_line(&mut self, sl: SourceLine) -> Result<(), ConfigError> {
        let Some(first) = sl.args.first() else {
            return Ok(());
        };
        let name = first.to_ascii_lowercase();
        let args: Vec<String> = sl.args[1..].to_vec();
        let bad = || sl.error(&name, "Bad directive or wrong number of arguments");
        match name.as_str() {
            "sentinel" => {
                if !args.is_empty() {
                    self.sentinel_queue.push(sl.clone());
                }
                return Ok(());
            }
            "include" => {
                if args.len() != 1 {
                    return Err(bad());
                }
                return self.include(&sl, &args[0]);
            }
            "rename-command" => {
                if args.len() != 2 {
                    return Err(bad());
                }
                self.rename_commands
                    .push((args[0].clone(), args[1].clone()));
                return Ok(());
            }
            "user" => {
                if args.is_empty() {
                    return Err(bad());
                }
                self.server.users.push(args.join(" "));
                return Ok(());
            }
            "loadmodule" => {
                return Err(sl.error(&name, "modules are not supported by raftinel"));
            }
            "log-format" => {
                let [v] = args.as_slice() else {
                    return Err(sl.error(&name, "wrong number of arguments (expected 1)"));
                };
                let v = v.to_ascii_lowercase();
                if v != "text" && v != "json" {
                    return Err(sl.error(
                        &name,
                        "argument(s) must be one of the following: text, json",
                    ));
                }
                self.server.log_format = v;
                return Ok(());
            }
            "admin-addr" | "data-dir" => {
                let [v] = args.as_slice() else {
                    return Err(sl.error(&name, "wrong number of arguments (expected 1)"));
                };
                let v = if v.is_empty() { None } else { Some(v.clone()) };
                if name == "admin-addr" {
                    self.server.admin_addr = v;
                } else {
                    self.server.data_dir = v;
                }
                return Ok(());
            }
            _ => {}
        }
        if directives::DEPRECATED.contains(&name.as_str()) {
            return if args.len() == 1 { Ok(()) } else { Err(bad()) };
        }
        let Some(d) = directives::canonical(&name) else {
            return Err(bad());
        };
        directives::validate(d, &args).map_err(|m| sl.error(d.name, expected(d, m)))?;
        self.interpret(&sl, d, args)
    }

    fn include(&mut self, sl: &SourceLine, path: &str) -> Result<(), ConfigError> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(sl.error("include", "too many nested include files"));
        }
        // Redis opens it relative to the working directory, which an
        // earlier `dir` line has already changed.
        let p = self.base_dir().join(path);
        let text = std::fs::read_to_string(&p).map_err(|e| {
            sl.error(
                "include",
                format!("can't open config file '{}': {}", path, strerror(&e)),
            )
        })?;
        self.depth += 1;
        let r = self.feed_text(path, &text);
        self.depth -= 1;
        r
    }

    /// Directives the daemon acts on; the rest are kept for the rewrite.
    fn interpret(
        &mut self,
        sl: &SourceLine,
        d: &'static directives::Directive,
        args: Vec<String>,
    ) -> Result<(), ConfigError> {
        let one = args.first().cloned().unwrap_or_default();
        let s = &mut self.server;
        match d.name {
            "port" => {
                let v: i64 = one.parse().unwrap_or(-1);
                s.port = u16::try_from(v).map_err(|_| {
                    sl.error(d.name, "argument must be between 0 and 65535 inclusive")
                })?;
            }
            "bind" => {
                if args.is_empty() {
                    return Err(sl.error(
                        d.name,
                        "Configured to not listen anywhere (bind needs at least one address)",
                    ));
                }
                s.bind = if args == ["*", "-::*"] {
                    Vec::new()
                } else {
                    args
                };
            }
            "protected-mode" => s.protected_mode = yes_no(&one).unwrap_or(false),
            "daemonize" => s.daemonize = yes_no(&one).unwrap_or(false),
            "pidfile" => s.pidfile = non_empty(one),
            "logfile" => s.logfile = one,
            "loglevel" => s.loglevel = one.to_ascii_lowercase(),
            "requirepass" => s.requirepass = non_empty(one),
            "aclfile" => s.aclfile = non_empty(one),
            "acllog-max-len" => {
                s.acllog_max_len =
                    u64::try_from(one.parse::<i64>().unwrap_or(-1)).map_err(|_| {
                        sl.error(
                            d.name,
                            "argument must be between 0 and 9223372036854775807 inclusive",
                        )
                    })?;
            }
            "maxclients" => {
                let v: i64 = one.parse().unwrap_or(0);
                if !(1..=4_294_967_295).contains(&v) {
                    return Err(sl.error(
                        d.name,
                        "argument must be between 1 and 4294967295 inclusive",
                    ));
                }
                s.maxclients = v as u64;
            }
            "supervised" => {
                let v = one.to_ascii_lowercase();
                s.supervised = if v == "no" { None } else { Some(v) };
            }
            "timeout"
            | "tcp-keepalive"
            | "tcp-backlog"
            | "client-query-buffer-limit"
            | "proto-max-bulk-len" => return self.client_limit(sl, d, args),
            "syslog-enabled" | "syslog-ident" | "syslog-facility" => {
                match d.name {
                    "syslog-enabled" => s.syslog_enabled = yes_no(&one).unwrap_or(false),
                    "syslog-ident" => s.syslog_ident = one,
                    _ => s.syslog_facility = one.to_ascii_lowercase(),
                }
                // Kept for the rewrite as well.
                self.extras.insert(d.name, args);
            }
            _ if not_supported(d.name, &one).is_some() => {
                let why = not_supported(d.name, &one).unwrap_or_default();
                return Err(sl.error(d.name, why));
            }
            name if name.starts_with("tls-") => return self.tls_directive(sl, d, args),
            "unixsocket" => {
                s.unixsocket = non_empty(one);
                self.extras.insert(d.name, args);
            }
            "unixsocketperm" => {
                let v = u32::from_str_radix(&one, 8).map_err(|_| {
                    sl.error(d.name, "argument couldn't be parsed as an octal number")
                })?;
                if v > 0o777 {
                    return Err(sl.error(d.name, "argument must be between 0 and 777 inclusive"));
                }
                s.unixsocketperm = v;
                self.extras.insert(d.name, args);
            }
            "dir" => {
                let target = self.base_dir().join(&one);
                let abs = match std::fs::metadata(&target) {
                    Ok(m) if m.is_dir() => std::fs::canonicalize(&target)
                        .map_err(|e| sl.error(d.name, strerror(&e)))?,
                    Ok(_) => return Err(sl.error(d.name, "Not a directory")),
                    Err(e) => return Err(sl.error(d.name, strerror(&e))),
                };
                self.server.dir = Some(abs.to_string_lossy().into_owned());
            }
            _ => {
                self.extras.insert(d.name, args);
            }
        }
        Ok(())
    }
}

impl Loader {
    /// The `tls-*` directives: read into `ServerConfig::tls`, kept for the
    /// rewrite, their line noted for [`Loader::check_tls`].
    fn tls_directive(
        &mut self,
        sl: &SourceLine,
        d: &'static directives::Directive,
        args: Vec<String>,
    ) -> Result<(), ConfigError> {
        let one = args.first().cloned().unwrap_or_default();
        let int = |max: i64| {
            one.parse::<i64>()
                .ok()
                .filter(|v| (0..=max).contains(v))
                .ok_or_else(|| {
                    sl.error(
                        d.name,
                        format!("argument must be between 0 and {max} inclusive"),
                    )
                })
        };
        let s = &mut self.server;
        let t = &mut s.tls;
        match d.name {
            "tls-port" => s.tls_port = int(65535)? as u16,
            "tls-cert-file" => t.cert_file = one,
            "tls-key-file" => t.key_file = one,
            "tls-key-file-pass" => t.key_file_pass = one,
            "tls-client-cert-file" => t.client_cert_file = one,
            "tls-client-key-file" => t.client_key_file = one,
            "tls-client-key-file-pass" => t.client_key_file_pass = one,
            "tls-ca-cert-file" => t.ca_cert_file = one,
            "tls-ca-cert-dir" => t.ca_cert_dir = one,
            "tls-auth-clients" => t.auth_clients = one.to_ascii_lowercase(),
            "tls-protocols" => t.protocols = one,
            "tls-ciphers" => t.ciphers = one,
            "tls-ciphersuites" => t.ciphersuites = one,
            "tls-prefer-server-ciphers" => t.prefer_server_ciphers = yes_no(&one).unwrap_or(false),
            "tls-dh-params-file" => t.dh_params_file = one,
            "tls-session-caching" => t.session_caching = yes_no(&one).unwrap_or(true),
            "tls-session-cache-size" => t.session_cache_size = int(i64::from(i32::MAX))? as u64,
            "tls-session-cache-timeout" => {
                t.session_cache_timeout = int(i64::from(i32::MAX))? as u64
            }
            "tls-replication" => s.tls_replication = yes_no(&one).unwrap_or(false),
            // tls-cluster no (`yes` is refused above).
            _ => {}
        }
        self.tls_lines.insert(d.name, sl.clone());
        self.extras.insert(d.name, args);
        Ok(())
    }

    /// With `tls-port` set, reads the certificates and keys and builds the
    /// TLS configuration once, so that what cannot be put in force stops the
    /// start at the directive it comes from (or at `tls-port` when the
    /// directive is missing).
    pub(crate) fn check_tls(&self, label: &str, base_dir: &Path) -> Result<(), ConfigError> {
        let s = &self.server;
        let server = if s.tls_port == 0 {
            Ok(())
        } else {
            crate::links::tls::server_config(&s.tls, base_dir).map(|_| ())
        };
        let client = if s.tls_replication {
            crate::links::tls::client_config(&s.tls, base_dir).map(|_| ())
        } else {
            Ok(())
        };
        let Err(e) = server.and(client) else {
            return Ok(());
        };
        let at = self
            .tls_lines
            .get(e.directive)
            .or_else(|| self.tls_lines.get("tls-port"))
            .or_else(|| self.tls_lines.get("tls-replication"));
        Err(match at {
            Some(sl) => sl.error(e.directive, e.message),
            None => ConfigError {
                file: label.to_string(),
                line: 0,
                directive: e.directive.into(),
                message: e.message,
                text: String::new(),
            },
        })
    }

    /// `timeout`, `tcp-keepalive`, `tcp-backlog` (0 to INT_MAX) and
    /// `client-query-buffer-limit`, `proto-max-bulk-len` (1mb to LONG_MAX),
    /// with Redis's bounds; kept for the rewrite as well.
    fn client_limit(
        &mut self,
        sl: &SourceLine,
        d: &'static directives::Directive,
        args: Vec<String>,
    ) -> Result<(), ConfigError> {
        let one = args.first().cloned().unwrap_or_default();
        let s = &mut self.server;
        match d.name {
            "timeout" | "tcp-keepalive" | "tcp-backlog" => {
                let v = one
                    .parse::<i64>()
                    .ok()
                    .filter(|v| (0..=i64::from(i32::MAX)).contains(v))
                    .ok_or_else(|| {
                        sl.error(
                            d.name,
                            "argument must be between 0 and 2147483647 inclusive",
                        )
                    })?;
                match d.name {
                    "timeout" => s.timeout = v as u64,
                    "tcp-keepalive" => s.tcp_keepalive = v as u64,
                    _ => s.tcp_backlog = v as u32,
                }
            }
            _ => {
                let v = directives::memtoull(&one)
                    .filter(|v| (1024 * 1024..=i64::MAX as u64).contains(v))
                    .ok_or_else(|| {
                        sl.error(
                            d.name,
                            "argument must be between 1048576 and 9223372036854775807 inclusive",
                        )
                    })?;
                if d.name == "proto-max-bulk-len" {
                    s.proto_max_bulk_len = v as i64;
                } else {
                    s.query_buffer_limit = usize::try_from(v).unwrap_or(usize::MAX);
                }
            }
        }
        self.extras.insert(d.name, args);
        Ok(())
    }
}

/// Why a directive Redis honours in sentinel mode is refused with this
/// value: raftinel does not provide what it turns on, and accepting it would
/// leave the operator believing it is in force. Their defaults (off) load.
fn not_supported(name: &str, value: &str) -> Option<&'static str> {
    let on = |v: &str| super::args::yes_no(v) == Some(true);
    match name {
        "tls-cluster" if on(value) => {
            Some("a sentinel has no cluster bus: remove the directive or set it to no")
        }
        _ => None,
    }
}

fn expected(d: &directives::Directive, message: String) -> String {
    if message == "wrong number of arguments" && d.kind != Kind::Multi {
        format!("{message} (expected 1)")
    } else if message == "wrong number of arguments" && d.name == "replicaof" {
        format!("{message} (expected 2)")
    } else {
        message
    }
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// `strerror`-like text (Rust appends " (os error N)").
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// How `apply_sentinel` treats `monitor` for a master that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MonitorMode {
    /// sentinel.conf semantics: `Duplicate master name.`
    Create,
    /// A learned-state file read over a base config: the state file's view of
    /// the master replaces the base's (it was written by a later flush).
    Replace,
}

const PRE_MONITOR: &[&str] = &[
    "announce-ip",
    "announce-port",
    "deny-scripts-reconfig",
    "sentinel-user",
    "sentinel-pass",
    "current-epoch",
    "myid",
    "resolve-hostnames",
    "announce-hostnames",
];

/// Applies queued `sentinel` lines in Sentinel's three passes.
pub(crate) fn apply_sentinel(
    state: &mut PersistedState,
    queue: &[SourceLine],
    script_dir: &Path,
    mode: MonitorMode,
) -> Result<(), ConfigError> {
    let sub = |sl: &SourceLine| {
        sl.args
            .get(1)
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default()
    };
    let pre: Vec<&SourceLine> = queue
        .iter()
        .filter(|sl| PRE_MONITOR.contains(&sub(sl).as_str()))
        .collect();
    let monitor: Vec<&SourceLine> = queue.iter().filter(|sl| sub(sl) == "monitor").collect();
    let post: Vec<&SourceLine> = queue
        .iter()
        .filter(|sl| {
            let s = sub(sl);
            s != "monitor" && !PRE_MONITOR.contains(&s.as_str())
        })
        .collect();
    let mut replaced: Vec<String> = Vec::new();
    for sl in pre.into_iter().chain(monitor).chain(post) {
        apply_one(state, sl, script_dir, mode, &mut replaced)?;
    }
    Ok(())
}

fn apply_one(
    state: &mut PersistedState,
    sl: &SourceLine,
    script_dir: &Path,
    mode: MonitorMode,
    replaced: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let a: Vec<&str> = sl.args[1..].iter().map(String::as_str).collect();
    let sub = a
        .first()
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let directive = format!("sentinel {sub}");
    let err = |m: &str| sl.error(&directive, m);
    match (sub.as_str(), a.len()) {
        ("monitor", 5) => apply_monitor(state, &a, mode, replaced, &err),
        (_, 2) => apply_global(state, &sub, &a, &err),
        _ => apply_master_option(state, &sub, &a, script_dir, &err),
    }
}

/// `sentinel monitor <name> <host> <port> <quorum>`.
fn apply_monitor(
    state: &mut PersistedState,
    a: &[&str],
    mode: MonitorMode,
    replaced: &mut Vec<String>,
    err: &dyn Fn(&str) -> ConfigError,
) -> Result<(), ConfigError> {
    let quorum = atoi(a[4]);
    if quorum <= 0 {
        return Err(err("Quorum must be 1 or greater."));
    }
    let (host, port) = check_addr(a[2], a[3], state.globals.resolve_hostnames).map_err(err)?;
    let quorum = u32::try_from(quorum).unwrap_or(u32::MAX);
    let fresh = MasterState::new(a[1], &host, port, quorum);
    match state.masters.iter().position(|m| m.name == a[1]) {
        Some(i) if mode == MonitorMode::Replace && !replaced.iter().any(|n| n == a[1]) => {
            replaced.push(a[1].to_string());
            state.masters[i] = fresh;
        }
        Some(_) => return Err(err("Duplicate master name.")),
        None => {
            replaced.push(a[1].to_string());
            state.masters.push(fresh);
        }
    }
    Ok(())
}

/// The global `sentinel` directives (one value each).
fn apply_global(
    state: &mut PersistedState,
    sub: &str,
    a: &[&str],
    err: &dyn Fn(&str) -> ConfigError,
) -> Result<(), ConfigError> {
    let g: &mut GlobalSentinelConfig = &mut state.globals;
    match (sub, a.len()) {
        ("current-epoch", 2) => {
            state.current_epoch = state.current_epoch.max(strtoull(a[1]));
        }
        ("myid", 2) => {
            if a[1].len() != 40 {
                return Err(err("Malformed Sentinel id in myid option."));
            }
            state.myid = Some(a[1].to_string());
        }
        ("announce-ip", 2) => {
            if !a[1].is_empty() {
                g.announce_ip = Some(a[1].to_string());
            }
        }
        ("announce-port", 2) => {
            // Sentinel stores atoi() unchecked; a value that is no port at
            // all is refused here rather than silently truncated.
            g.announce_port = u16::try_from(atoi(a[1])).map_err(|_| err("Invalid port number."))?;
        }
        ("deny-scripts-reconfig", 2) => {
            g.deny_scripts_reconfig = yes_no(a[1]).ok_or_else(|| {
                err("Please specify yes or no for the deny-scripts-reconfig options.")
            })?;
        }
        ("resolve-hostnames", 2) => {
            g.resolve_hostnames = yes_no(a[1])
                .ok_or_else(|| err("Please specify yes or no for the resolve-hostnames option."))?;
        }
        ("announce-hostnames", 2) => {
            g.announce_hostnames = yes_no(a[1]).ok_or_else(|| {
                err("Please specify yes or no for the announce-hostnames option.")
            })?;
        }
        ("sentinel-user", 2) => {
            if !a[1].is_empty() {
                g.sentinel_user = Some(a[1].to_string());
            }
        }
        ("sentinel-pass", 2) => {
            if !a[1].is_empty() {
                g.sentinel_pass = Some(a[1].to_string());
            }
        }
        _ => return Err(err("Unrecognized sentinel configuration statement.")),
    }
    Ok(())
}

/// The per-master `sentinel` directives (`sentinel <option> <master> ...`).
fn apply_master_option(
    state: &mut PersistedState,
    sub: &str,
    a: &[&str],
    script_dir: &Path,
    err: &dyn Fn(&str) -> ConfigError,
) -> Result<(), ConfigError> {
    match (sub, a.len()) {
        ("down-after-milliseconds" | "failover-timeout", 3) => {
            let v = atoi(a[2]);
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            if v <= 0 {
                return Err(err("negative or zero time parameter."));
            }
            if sub == "failover-timeout" {
                m.failover_timeout_ms = v as u64;
            } else {
                m.down_after_ms = v as u64;
            }
        }
        ("parallel-syncs", 3) => {
            let v = atoi(a[2]);
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            // Sentinel accepts any value here (only SENTINEL SET checks > 0).
            m.parallel_syncs = u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        }
        ("notification-script" | "client-reconfig-script", 3) => {
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            if !executable(&script_dir.join(a[2])) {
                return Err(err(if sub == "notification-script" {
                    "Notification script seems non existing or non executable."
                } else {
                    "Client reconfiguration script seems non existing or non executable."
                }));
            }
            if sub == "notification-script" {
                m.notification_script = Some(a[2].to_string());
            } else {
                m.client_reconfig_script = Some(a[2].to_string());
            }
        }
        ("config-epoch", 3) => {
            let v = strtoull(a[2]);
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            m.config_epoch = v;
            state.current_epoch = state.current_epoch.max(v);
        }
        ("leader-epoch", 3) => {
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            m.leader_epoch = strtoull(a[2]);
        }
        ("known-slave" | "known-replica", 4) => {
            let resolve = state.globals.resolve_hostnames;
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            let (host, port) = check_addr(a[2], a[3], resolve).map_err(err)?;
            if m.known_replicas
                .iter()
                .any(|(h, p)| *p == port && h == &host)
            {
                return Err(err("Duplicate hostname and port for replica."));
            }
            m.known_replicas.push((host, port));
        }
        // The old form without a run id is ignored, master or not.
        ("known-sentinel", 4) => {}
        ("known-sentinel", 5) => {
            let resolve = state.globals.resolve_hostnames;
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            let (host, port) = check_addr(a[2], a[3], resolve).map_err(err)?;
            if m.known_sentinels.iter().any(|(_, _, id)| id == a[4]) {
                return Err(err("Duplicate runid for sentinel."));
            }
            m.known_sentinels.push((host, port, a[4].to_string()));
        }
        ("rename-command", 4) => {
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            if m.rename_commands
                .iter()
                .any(|(old, _)| old.eq_ignore_ascii_case(a[2]))
            {
                return Err(err(
                    "Same command renamed multiple times with rename-command.",
                ));
            }
            m.rename_commands.push((a[2].to_string(), a[3].to_string()));
        }
        ("auth-pass", 3) => {
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            m.auth_pass = Some(a[2].to_string());
        }
        ("auth-user", 3) => {
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            m.auth_user = Some(a[2].to_string());
        }
        // REFUSED_DOWN_AFTER is raftinel's: see `core::sentinel::refused_down`.
        (which @ ("master-reboot-down-after-period" | REFUSED_DOWN_AFTER), 3) => {
            let v = atoi(a[2]);
            let m =
                master(state, a[1]).ok_or_else(|| err("No such master with specified name."))?;
            if v < 0 {
                return Err(err("negative time parameter."));
            }
            if which == REFUSED_DOWN_AFTER {
                m.refused_down_after_ms = v as u64;
            } else {
                m.master_reboot_down_after_period_ms = v as u64;
            }
        }
        _ => return Err(err("Unrecognized sentinel configuration statement.")),
    }
    Ok(())
}

fn master<'a>(state: &'a mut PersistedState, name: &str) -> Option<&'a mut MasterState> {
    state.masters.iter_mut().find(|m| m.name == name)
}

/// Sentinel's `createSentinelAddr`: port 0..65535 (atoi, so garbage is 0),
/// then a literal IP unless resolve-hostnames is on. A hostname is kept as
/// given (Sentinel accepts unresolvable names from the config file and
/// retries resolution on every reconnect).
pub(crate) fn check_addr(
    host: &str,
    port: &str,
    resolve: bool,
) -> Result<(String, u16), &'static str> {
    let port = u16::try_from(atoi(port)).map_err(|_| "Invalid port number.")?;
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok((ip.to_string(), port)),
        Err(_) if resolve && !host.is_empty() => Ok((host.to_string(), port)),
        Err(_) => Err("Can't resolve instance hostname."),
    }
}

/// `access(path, X_OK)`.
pub(crate) fn executable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// `access(path, W_OK)`.
pub(crate) fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}
