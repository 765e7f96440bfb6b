//! Every directive name redis-server 7.0.15 accepts in a config file (taken
//! from `CONFIG GET *` on a real 7.0.15, aliases included), with its value
//! kind and its default, so that any real `sentinel.conf` loads. Only the
//! ones in `ServerConfig` change the daemon's behaviour; the others are
//! validated by kind and kept for the rewrite, which writes them back the way
//! Redis's CONFIG REWRITE does (canonical name, quoted strings, `1gb` sizes).

use super::args::repr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Int,
    /// Byte sizes: `1gb`, `64mb`, `100` (memtoull).
    Memory,
    Enum(&'static [&'static str]),
    /// Written quoted on rewrite.
    Str,
    /// Takes any number of arguments (bind, save, ...).
    Multi,
    /// One argument written back as-is.
    Verbatim,
}

#[derive(Debug)]
pub(crate) struct Directive {
    pub name: &'static str,
    pub kind: Kind,
    /// The value CONFIG REWRITE compares against (Redis's compiled default).
    pub default: &'static str,
}

/// Accepted at load (ignored), unknown to the rewrite (`# ??? ` lines).
pub(crate) const DEPRECATED: &[&str] = &[
    "list-max-ziplist-entries",
    "list-max-ziplist-value",
    "lua-replicate-commands",
];

/// Lines the generic loader handles itself, outside the config table.
pub(crate) const SPECIAL: &[&str] = &[
    "include",
    "rename-command",
    "user",
    "loadmodule",
    "sentinel",
];

/// Directives kept for the rewrite that the daemon also acts on. The others
/// kept there load so that redis-sentinel's files do, and do nothing here
/// (most are redis-server data directives); `check-config` says so. Those
/// the daemon acts on through its own fields (port, bind, logfile, ...) are
/// not kept there.
pub(crate) const IN_FORCE: &[&str] = &[
    "bind-source-addr",
    "timeout",
    "tcp-keepalive",
    "tcp-backlog",
    "client-query-buffer-limit",
    "proto-max-bulk-len",
    "syslog-enabled",
    "syslog-ident",
    "syslog-facility",
    // With `tls-port` other than 0 or `tls-replication yes` (as in Redis,
    // inert without them). `tls-cluster yes` is refused.
    "tls-port",
    "tls-replication",
    "tls-client-cert-file",
    "tls-client-key-file",
    "tls-client-key-file-pass",
    "tls-cert-file",
    "tls-key-file",
    "tls-key-file-pass",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-auth-clients",
    "tls-protocols",
    "tls-ciphers",
    "tls-ciphersuites",
    "tls-prefer-server-ciphers",
    "tls-dh-params-file",
    "tls-session-caching",
    "tls-session-cache-size",
    "tls-session-cache-timeout",
    "unixsocket",
    "unixsocketperm",
];

/// raftinel's own directives (not Redis's): accepted in sentinel.conf,
/// rewritten in place if present, never appended (a file without them stays
/// loadable by a real redis-sentinel).
pub(crate) const EXTENSIONS: &[&str] = &["log-format", "admin-addr", "data-dir"];

pub(crate) fn canonical(name: &str) -> Option<&'static Directive> {
    let lower = name.to_ascii_lowercase();
    let target = ALIASES
        .iter()
        .find(|(a, _)| *a == lower)
        .map(|(_, c)| *c)
        .unwrap_or(lower.as_str());
    DIRECTIVES.iter().find(|d| d.name == target)
}

/// Whether Redis's rewrite recognises the line's directive (else `# ??? `).
pub(crate) fn known_to_rewrite(lower: &str) -> bool {
    canonical(lower).is_some() || SPECIAL.contains(&lower) || EXTENSIONS.contains(&lower)
}

/// Redis `memtoull`: a number with an optional k/kb/m/mb/g/gb/b unit.
pub(crate) fn memtoull(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(mul)
}

/// Redis `rewriteConfigBytesOption`: the largest exact unit.
pub(crate) fn format_bytes(v: u64) -> String {
    const GB: u64 = 1024 * 1024 * 1024;
    const MB: u64 = 1024 * 1024;
    if v != 0 && v.is_multiple_of(GB) {
        format!("{}gb", v / GB)
    } else if v != 0 && v.is_multiple_of(MB) {
        format!("{}mb", v / MB)
    } else if v != 0 && v.is_multiple_of(1024) {
        format!("{}kb", v / 1024)
    } else {
        v.to_string()
    }
}

/// Checks a generic directive's arguments like Redis does and returns the
/// message Redis prints when they are wrong.
pub(crate) fn validate(d: &Directive, args: &[String]) -> Result<(), String> {
    match d.kind {
        Kind::Multi => {
            if d.name == "replicaof" && args.len() != 2 {
                return Err("wrong number of arguments".into());
            }
            if d.name == "client-output-buffer-limit" && !args.len().is_multiple_of(4) {
                return Err("Wrong number of arguments in buffer limit configuration.".into());
            }
            Ok(())
        }
        Kind::Enum(values) if d.name.starts_with("shutdown-on-") => {
            let ok = !args.is_empty()
                && args
                    .iter()
                    .all(|w| values.iter().any(|v| v.eq_ignore_ascii_case(w)));
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "argument(s) must be one of the following: {}",
                    values.join(", ")
                ))
            }
        }
        _ if args.len() != 1 => Err("wrong number of arguments".into()),
        Kind::Bool => match super::args::yes_no(&args[0]) {
            Some(_) => Ok(()),
            None => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int => args[0]
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| "argument couldn't be parsed into an integer".into()),
        Kind::Memory => {
            let a = &args[0];
            let ok = memtoull(a).is_some()
                || (d.name == "maxmemory-clients"
                    && a.strip_suffix('%')
                        .is_some_and(|p| p.parse::<u64>().is_ok()));
            if ok {
                Ok(())
            } else {
                Err("argument must be a memory value".into())
            }
        }
        Kind::Enum(values) => {
            let ok = values.iter().any(|v| v.eq_ignore_ascii_case(&args[0]));
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "argument(s) must be one of the following: {}",
                    values.join(", ")
                ))
            }
        }
        Kind::Str | Kind::Verbatim => Ok(()),
    }
}

/// The canonical rewrite line for a (validated) generic directive, or `None`
/// when Redis would drop it (unset string options).
pub(crate) fn rewrite_line(d: &Directive, args: &[String]) -> Option<String> {
    let value = match d.kind {
        Kind::Bool => args
            .first()
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_default(),
        Kind::Enum(_) => args
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" "),
        Kind::Int => args
            .first()
            .and_then(|a| a.parse::<i64>().ok())
            .map(|v| v.to_string())
            .unwrap_or_default(),
        Kind::Memory => {
            let a = args.first().map(String::as_str).unwrap_or("");
            match memtoull(a) {
                Some(v) => format_bytes(v),
                None => a.to_string(),
            }
        }
        Kind::Str => {
            let a = args.first().map(String::as_str).unwrap_or("");
            if a.is_empty() && nullable(d) {
                return None;
            }
            repr(a)
        }
        Kind::Multi | Kind::Verbatim => args
            .iter()
            .map(|a| super::args::raw_or_quoted(a))
            .collect::<Vec<_>>()
            .join(" "),
    };
    Some(if value.is_empty() && d.kind == Kind::Multi {
        d.name.to_string()
    } else {
        format!("{} {}", d.name, value)
    })
}

/// Whether the line differs from what Redis would consider the default
/// (only such lines are appended when absent from the file).
pub(crate) fn differs_from_default(d: &Directive, args: &[String]) -> bool {
    let default_args: Vec<String> = if d.default.is_empty() {
        if d.kind == Kind::Multi {
            Vec::new()
        } else {
            vec![String::new()]
        }
    } else if d.kind == Kind::Multi {
        d.default.split(' ').map(str::to_string).collect()
    } else {
        vec![d.default.to_string()]
    };
    rewrite_line(d, args) != rewrite_line(d, &default_args)
}

/// String options whose empty value means "unset" (Redis drops their lines).
fn nullable(d: &Directive) -> bool {
    d.default.is_empty() && !matches!(d.name, "logfile" | "ignore-warnings")
}

pub(crate) const DIRECTIVES: &[Directive] = &[
    Directive {
        name: "acl-pubsub-default",
        kind: Kind::Enum(&["allchannels", "resetchannels"]),
        default: "resetchannels",
    },
    Directive {
        name: "aclfile",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "acllog-max-len",
        kind: Kind::Int,
        default: "128",
    },
    Directive {
        name: "active-defrag-cycle-max",
        kind: Kind::Int,
        default: "25",
    },
    Directive {
        name: "active-defrag-cycle-min",
        kind: Kind::Int,
        default: "1",
    },
    Directive {
        name: "active-defrag-ignore-bytes",
        kind: Kind::Memory,
        default: "104857600",
    },
    Directive {
        name: "active-defrag-max-scan-fields",
        kind: Kind::Int,
        default: "1000",
    },
    Directive {
        name: "active-defrag-threshold-lower",
        kind: Kind::Int,
        default: "10",
    },
    Directive {
        name: "active-defrag-threshold-upper",
        kind: Kind::Int,
        default: "100",
    },
    Directive {
        name: "active-expire-effort",
        kind: Kind::Int,
        default: "1",
    },
    Directive {
        name: "activedefrag",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "activerehashing",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "always-show-logo",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "aof-disable-auto-gc",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "aof-load-truncated",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "aof-rewrite-incremental-fsync",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "aof-timestamp-enabled",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "aof-use-rdb-preamble",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "aof_rewrite_cpulist",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "appenddirname",
        kind: Kind::Str,
        default: "appendonlydir",
    },
    Directive {
        name: "appendfilename",
        kind: Kind::Str,
        default: "appendonly.aof",
    },
    Directive {
        name: "appendfsync",
        kind: Kind::Enum(&["everysec", "always", "no"]),
        default: "everysec",
    },
    Directive {
        name: "appendonly",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "auto-aof-rewrite-min-size",
        kind: Kind::Memory,
        default: "67108864",
    },
    Directive {
        name: "auto-aof-rewrite-percentage",
        kind: Kind::Int,
        default: "100",
    },
    Directive {
        name: "bgsave_cpulist",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "bind",
        kind: Kind::Multi,
        default: "* -::*",
    },
    Directive {
        name: "bind-source-addr",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "bio_cpulist",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "busy-reply-threshold",
        kind: Kind::Int,
        default: "5000",
    },
    Directive {
        name: "client-output-buffer-limit",
        kind: Kind::Multi,
        default: "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    },
    Directive {
        name: "client-query-buffer-limit",
        kind: Kind::Memory,
        default: "1073741824",
    },
    Directive {
        name: "cluster-allow-pubsubshard-when-down",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "cluster-allow-reads-when-down",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "cluster-allow-replica-migration",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "cluster-announce-bus-port",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "cluster-announce-hostname",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "cluster-announce-ip",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "cluster-announce-port",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "cluster-announce-tls-port",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "cluster-config-file",
        kind: Kind::Str,
        default: "nodes.conf",
    },
    Directive {
        name: "cluster-enabled",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "cluster-link-sendbuf-limit",
        kind: Kind::Memory,
        default: "0",
    },
    Directive {
        name: "cluster-migration-barrier",
        kind: Kind::Int,
        default: "1",
    },
    Directive {
        name: "cluster-node-timeout",
        kind: Kind::Int,
        default: "15000",
    },
    Directive {
        name: "cluster-port",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "cluster-preferred-endpoint-type",
        kind: Kind::Enum(&["ip", "hostname", "unknown-endpoint"]),
        default: "ip",
    },
    Directive {
        name: "cluster-replica-no-failover",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "cluster-replica-validity-factor",
        kind: Kind::Int,
        default: "10",
    },
    Directive {
        name: "cluster-require-full-coverage",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "crash-log-enabled",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "crash-memcheck-enabled",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "daemonize",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "databases",
        kind: Kind::Int,
        default: "16",
    },
    Directive {
        name: "dbfilename",
        kind: Kind::Str,
        default: "dump.rdb",
    },
    Directive {
        name: "dir",
        kind: Kind::Verbatim,
        default: "",
    },
    Directive {
        name: "disable-thp",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "dynamic-hz",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "enable-debug-command",
        kind: Kind::Enum(&["no", "yes", "local"]),
        default: "no",
    },
    Directive {
        name: "enable-module-command",
        kind: Kind::Enum(&["no", "yes", "local"]),
        default: "no",
    },
    Directive {
        name: "enable-protected-configs",
        kind: Kind::Enum(&["no", "yes", "local"]),
        default: "no",
    },
    Directive {
        name: "hash-max-listpack-entries",
        kind: Kind::Int,
        default: "512",
    },
    Directive {
        name: "hash-max-listpack-value",
        kind: Kind::Memory,
        default: "64",
    },
    Directive {
        name: "hll-sparse-max-bytes",
        kind: Kind::Memory,
        default: "3000",
    },
    Directive {
        name: "hz",
        kind: Kind::Int,
        default: "10",
    },
    Directive {
        name: "ignore-warnings",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "io-threads",
        kind: Kind::Int,
        default: "1",
    },
    Directive {
        name: "io-threads-do-reads",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "jemalloc-bg-thread",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "latency-monitor-threshold",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "latency-tracking",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "latency-tracking-info-percentiles",
        kind: Kind::Multi,
        default: "50 99 99.9",
    },
    Directive {
        name: "lazyfree-lazy-eviction",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "lazyfree-lazy-expire",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "lazyfree-lazy-server-del",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "lazyfree-lazy-user-del",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "lazyfree-lazy-user-flush",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "lfu-decay-time",
        kind: Kind::Int,
        default: "1",
    },
    Directive {
        name: "lfu-log-factor",
        kind: Kind::Int,
        default: "10",
    },
    Directive {
        name: "list-compress-depth",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "list-max-listpack-size",
        kind: Kind::Int,
        default: "-2",
    },
    Directive {
        name: "logfile",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "loglevel",
        kind: Kind::Enum(&["debug", "verbose", "notice", "warning"]),
        default: "notice",
    },
    Directive {
        name: "masterauth",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "masteruser",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "maxclients",
        kind: Kind::Int,
        default: "10000",
    },
    Directive {
        name: "maxmemory",
        kind: Kind::Memory,
        default: "0",
    },
    Directive {
        name: "maxmemory-clients",
        kind: Kind::Memory,
        default: "0",
    },
    Directive {
        name: "maxmemory-eviction-tenacity",
        kind: Kind::Int,
        default: "10",
    },
    Directive {
        name: "maxmemory-policy",
        kind: Kind::Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ]),
        default: "noeviction",
    },
    Directive {
        name: "maxmemory-samples",
        kind: Kind::Int,
        default: "5",
    },
    Directive {
        name: "min-replicas-max-lag",
        kind: Kind::Int,
        default: "10",
    },
    Directive {
        name: "min-replicas-to-write",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "no-appendfsync-on-rewrite",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "notify-keyspace-events",
        kind: Kind::Verbatim,
        default: "",
    },
    Directive {
        name: "oom-score-adj",
        kind: Kind::Enum(&["no", "yes", "relative", "absolute"]),
        default: "no",
    },
    Directive {
        name: "oom-score-adj-values",
        kind: Kind::Multi,
        default: "0 200 800",
    },
    Directive {
        name: "pidfile",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "port",
        kind: Kind::Int,
        default: "6379",
    },
    Directive {
        name: "proc-title-template",
        kind: Kind::Str,
        default: "{title} {listen-addr} {server-mode}",
    },
    Directive {
        name: "propagation-error-behavior",
        kind: Kind::Enum(&["ignore", "panic", "panic-on-replicas"]),
        default: "ignore",
    },
    Directive {
        name: "protected-mode",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "proto-max-bulk-len",
        kind: Kind::Memory,
        default: "536870912",
    },
    Directive {
        name: "rdb-del-sync-files",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "rdb-save-incremental-fsync",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "rdbchecksum",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "rdbcompression",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "repl-backlog-size",
        kind: Kind::Memory,
        default: "1048576",
    },
    Directive {
        name: "repl-backlog-ttl",
        kind: Kind::Int,
        default: "3600",
    },
    Directive {
        name: "repl-disable-tcp-nodelay",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "repl-diskless-load",
        kind: Kind::Enum(&["disabled", "on-empty-db", "swapdb"]),
        default: "disabled",
    },
    Directive {
        name: "repl-diskless-sync",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "repl-diskless-sync-delay",
        kind: Kind::Int,
        default: "5",
    },
    Directive {
        name: "repl-diskless-sync-max-replicas",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "repl-ping-replica-period",
        kind: Kind::Int,
        default: "10",
    },
    Directive {
        name: "repl-timeout",
        kind: Kind::Int,
        default: "60",
    },
    Directive {
        name: "replica-announce-ip",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "replica-announce-port",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "replica-announced",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "replica-ignore-disk-write-errors",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "replica-ignore-maxmemory",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "replica-lazy-flush",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "replica-priority",
        kind: Kind::Int,
        default: "100",
    },
    Directive {
        name: "replica-read-only",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "replica-serve-stale-data",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "replicaof",
        kind: Kind::Multi,
        default: "",
    },
    Directive {
        name: "requirepass",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "sanitize-dump-payload",
        kind: Kind::Enum(&["no", "yes", "clients"]),
        default: "no",
    },
    Directive {
        name: "save",
        kind: Kind::Multi,
        default: "",
    },
    Directive {
        name: "server_cpulist",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "set-max-intset-entries",
        kind: Kind::Int,
        default: "512",
    },
    Directive {
        name: "set-proc-title",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "shutdown-on-sigint",
        kind: Kind::Enum(&["default", "save", "nosave", "now", "force"]),
        default: "default",
    },
    Directive {
        name: "shutdown-on-sigterm",
        kind: Kind::Enum(&["default", "save", "nosave", "now", "force"]),
        default: "default",
    },
    Directive {
        name: "shutdown-timeout",
        kind: Kind::Int,
        default: "10",
    },
    Directive {
        name: "slowlog-log-slower-than",
        kind: Kind::Int,
        default: "10000",
    },
    Directive {
        name: "slowlog-max-len",
        kind: Kind::Int,
        default: "128",
    },
    Directive {
        name: "socket-mark-id",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "stop-writes-on-bgsave-error",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "stream-node-max-bytes",
        kind: Kind::Memory,
        default: "4096",
    },
    Directive {
        name: "stream-node-max-entries",
        kind: Kind::Int,
        default: "100",
    },
    Directive {
        name: "supervised",
        kind: Kind::Enum(&["upstart", "systemd", "auto", "no"]),
        default: "no",
    },
    Directive {
        name: "syslog-enabled",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "syslog-facility",
        kind: Kind::Enum(&[
            "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
        ]),
        default: "local0",
    },
    Directive {
        name: "syslog-ident",
        kind: Kind::Str,
        default: "redis",
    },
    Directive {
        name: "tcp-backlog",
        kind: Kind::Int,
        default: "511",
    },
    Directive {
        name: "tcp-keepalive",
        kind: Kind::Int,
        default: "300",
    },
    Directive {
        name: "timeout",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "tls-auth-clients",
        kind: Kind::Enum(&["no", "yes", "optional"]),
        default: "yes",
    },
    Directive {
        name: "tls-ca-cert-dir",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-ca-cert-file",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-cert-file",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-ciphers",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-ciphersuites",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-client-cert-file",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-client-key-file",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-client-key-file-pass",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-cluster",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "tls-dh-params-file",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-key-file",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-key-file-pass",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-port",
        kind: Kind::Int,
        default: "0",
    },
    Directive {
        name: "tls-prefer-server-ciphers",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "tls-protocols",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "tls-replication",
        kind: Kind::Bool,
        default: "no",
    },
    Directive {
        name: "tls-session-cache-size",
        kind: Kind::Int,
        default: "20480",
    },
    Directive {
        name: "tls-session-cache-timeout",
        kind: Kind::Int,
        default: "300",
    },
    Directive {
        name: "tls-session-caching",
        kind: Kind::Bool,
        default: "yes",
    },
    Directive {
        name: "tracking-table-max-keys",
        kind: Kind::Int,
        default: "1000000",
    },
    Directive {
        name: "unixsocket",
        kind: Kind::Str,
        default: "",
    },
    Directive {
        name: "unixsocketperm",
        kind: Kind::Verbatim,
        default: "0",
    },
    Directive {
        name: "zset-max-listpack-entries",
        kind: Kind::Int,
        default: "128",
    },
    Directive {
        name: "zset-max-listpack-value",
        kind: Kind::Memory,
        default: "64",
    },
];

pub(crate) const ALIASES: &[(&str, &str)] = &[
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
    (
        "cluster-slave-validity-factor",
        "cluster-replica-validity-factor",
    ),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("lua-time-limit", "busy-reply-threshold"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("slave-announce-ip", "replica-announce-ip"),
    ("slave-announce-port", "replica-announce-port"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("slave-priority", "replica-priority"),
    ("slave-read-only", "replica-read-only"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slaveof", "replicaof"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
];
