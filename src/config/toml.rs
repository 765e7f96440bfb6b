//! raftinel.toml: the same configuration as sentinel.conf in TOML. Every
//! value is translated into the sentinel.conf line it stands for and fed to
//! the same loader, so validation, defaults and messages are identical; the
//! error points at the TOML line of the value. Unknown keys are errors.
//!
//! Layout: `[server]` (generic directives, raftinel's log-format/admin-addr/
//! data-dir, `users`), `[redis]` (any other redis.conf directive by name),
//! `[sentinel]` (global sentinel options), `[[masters]]` (one table per
//! monitored master), `[raft]` (the Raft group: cluster id, peers, data, secret).
//!
//! `${NAME}` in any string value is replaced by the environment variable
//! `NAME` (see `env`); an unset one is an error at the value's line.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::args::split_args;
use super::directives;
use super::parse::{Loader, SourceLine};
use super::{ConfigError, KubeOptions, RaftOptions, SecretFile};

type V = Option<Spanned<Value>>;

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    server: ServerToml,
    #[serde(default)]
    redis: BTreeMap<String, Spanned<Value>>,
    #[serde(default)]
    sentinel: SentinelToml,
    #[serde(default)]
    masters: Vec<MasterToml>,
    #[serde(default)]
    raft: RaftToml,
    kubernetes: Option<Spanned<KubernetesToml>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct KubernetesToml {
    enabled: Option<bool>,
    api_url: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    pod: Option<Spanned<String>>,
    master: Option<Spanned<String>>,
    role_labels: Option<Vec<Spanned<String>>>,
    pod_selector: Option<Spanned<String>>,
    events: Option<bool>,
    redis: Option<Spanned<String>>,
    drain_switchover: Option<bool>,
    node: Option<Spanned<String>>,
    statefulset: Option<Spanned<String>>,
    peer_template: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ServerToml {
    port: V,
    bind: V,
    protected_mode: V,
    daemonize: V,
    pidfile: V,
    logfile: V,
    loglevel: V,
    log_format: V,
    admin_addr: V,
    data_dir: V,
    dir: V,
    requirepass: V,
    aclfile: V,
    acllog_max_len: V,
    maxclients: V,
    supervised: V,
    syslog_enabled: V,
    syslog_ident: V,
    syslog_facility: V,
    /// ACL rules, one user per entry: `"alice on >pw ~* +@all"`.
    users: V,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SentinelToml {
    myid: V,
    announce_ip: V,
    announce_port: V,
    resolve_hostnames: V,
    announce_hostnames: V,
    deny_scripts_reconfig: V,
    sentinel_user: V,
    sentinel_pass: V,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct MasterToml {
    name: Spanned<Value>,
    host: Spanned<Value>,
    port: Spanned<Value>,
    quorum: Spanned<Value>,
    down_after_milliseconds: V,
    failover_timeout: V,
    parallel_syncs: V,
    auth_pass: V,
    auth_user: V,
    notification_script: V,
    client_reconfig_script: V,
    master_reboot_down_after_period: V,
    refused_down_after_milliseconds: V,
    /// `{ CONFIG = "MYCONFIG" }`
    rename_commands: V,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RaftToml {
    cluster_id: Option<Spanned<String>>,
    #[serde(default)]
    peers: Vec<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    remove_unreachable_after_ms: Option<u64>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text
            .get(..end)
            .map(|t| t.matches('\n').count() + 1)
            .unwrap_or(1)
    }

    fn text_at(&self, line: usize) -> String {
        self.text
            .split('\n')
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .trim()
            .to_string()
    }

    fn error(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        let line = span.as_ref().map(|s| self.line_of(s)).unwrap_or(0);
        ConfigError {
            file: self.file.to_string(),
            line,
            directive: String::new(),
            message,
            text: if line > 0 {
                self.text_at(line)
            } else {
                String::new()
            },
        }
    }

    /// The sentinel.conf line `prefix + value` located at the value.
    fn line(&self, prefix: &[&str], v: &Spanned<Value>) -> Result<SourceLine, ConfigError> {
        let span = v.span();
        let line = self.line_of(&span);
        let mut args: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        args.extend(self.values(v.get_ref(), &span)?);
        Ok(self.source_line(line, args))
    }

    /// A string value with `${NAME}` expanded; an error points at it.
    fn expand(&self, s: &str, span: &Range<usize>) -> Result<String, ConfigError> {
        super::env::expand_env(s).map_err(|why| self.error(Some(span.clone()), why))
    }

    /// A spanned string of `[raft]`, expanded.
    fn string(&self, v: Spanned<String>) -> Result<String, ConfigError> {
        let span = v.span();
        self.expand(v.get_ref(), &span)
    }

    /// A config line made of `args`, located at `line` of the TOML file.
    fn source_line(&self, line: usize, args: Vec<String>) -> SourceLine {
        SourceLine {
            file: self.file.to_string(),
            line,
            text: self.text_at(line),
            args,
        }
    }

    fn values(&self, v: &Value, span: &Range<usize>) -> Result<Vec<String>, ConfigError> {
        Ok(match v {
            Value::String(s) => vec![self.expand(s, span)?],
            Value::Integer(i) => vec![i.to_string()],
            Value::Float(f) => vec![f.to_string()],
            Value::Boolean(b) => vec![if *b { "yes" } else { "no" }.to_string()],
            Value::Array(items) => {
                let mut out = Vec::new();
                for i in items {
                    if matches!(i, Value::Array(_) | Value::Table(_)) {
                        return Err(self.error(
                            Some(span.clone()),
                            "nested arrays and tables are not allowed here".into(),
                        ));
                    }
                    out.extend(self.values(i, span)?);
                }
                out
            }
            Value::Table(_) | Value::Datetime(_) => {
                return Err(self.error(
                    Some(span.clone()),
                    "expected a string, a number, a boolean or an array".into(),
                ))
            }
        })
    }
}

/// Where `key` first appears in the file (for the line of an error about a
/// `[raft]` value).
fn key_span(text: &str, key: &str) -> Option<Range<usize>> {
    text.find(key).map(|i| i..i + key.len())
}

/// Parses the TOML text into `loader` (as sentinel.conf lines) and returns
/// the `[raft]` options and `[kubernetes]`'s, if in force.
pub(crate) fn feed(
    loader: &mut Loader,
    file: &str,
    text: &str,
) -> Result<(RaftOptions, Option<KubeOptions>), ConfigError> {
    let ctx = Ctx { file, text };
    let parsed: TomlFile =
        ::toml::from_str(text).map_err(|e| ctx.error(e.span(), e.message().to_string()))?;
    feed_server(loader, &ctx, &parsed.server)?;
    for (key, v) in &parsed.redis {
        loader.feed_line(split_multi(ctx.line(&[key.as_str()], v)?))?;
    }
    let g = &parsed.sentinel;
    for (key, v) in [
        ("myid", &g.myid),
        ("announce-ip", &g.announce_ip),
        ("announce-port", &g.announce_port),
        ("resolve-hostnames", &g.resolve_hostnames),
        ("announce-hostnames", &g.announce_hostnames),
        ("deny-scripts-reconfig", &g.deny_scripts_reconfig),
        ("sentinel-user", &g.sentinel_user),
        ("sentinel-pass", &g.sentinel_pass),
    ] {
        if let Some(v) = v {
            loader.feed_line(ctx.line(&["sentinel", key], v)?)?;
        }
    }
    for m in &parsed.masters {
        feed_master(loader, &ctx, m)?;
    }
    let own = OwnEntry {
        announce_ip: first_string(&ctx, &g.announce_ip)?,
        announce_port: first_string(&ctx, &g.announce_port)?.and_then(|p| p.parse().ok()),
        port: first_string(&ctx, &parsed.server.port)?.and_then(|p| p.parse().ok()),
        pod_name: std::env::var("RAFTINEL_POD_NAME")
            .ok()
            .filter(|n| !n.is_empty()),
    };
    let peer_spans: Vec<Range<usize>> = parsed.raft.peers.iter().map(|p| p.span()).collect();
    let raft = raft_options(&ctx, parsed.raft)?;
    let kubernetes = match parsed.kubernetes {
        Some(k) => kube_options(&ctx, k)?,
        None => None,
    };
    // A peer list that follows the StatefulSet is only the first one: a pod
    // of a scaled-out set is not in the ConfigMap's.
    if kubernetes.as_ref().is_none_or(|k| k.peers_from.is_none()) {
        check_peers(&ctx, &raft.peers, &peer_spans, &own)?;
    }
    Ok((raft, kubernetes))
}

/// `[kubernetes]`, validated; None when `enabled = false`. A binary built
/// without the `k8s` feature cannot honour it and says so.
fn kube_options(
    ctx: &Ctx<'_>,
    k: Spanned<KubernetesToml>,
) -> Result<Option<KubeOptions>, ConfigError> {
    let span = k.span();
    let k = k.into_inner();
    if k.enabled == Some(false) {
        return Ok(None);
    }
    if !cfg!(feature = "k8s") {
        return Err(ctx.error(
            Some(span),
            "this raftinel was built without the Kubernetes API (cargo feature `k8s`): [kubernetes] cannot be in force; build with --features k8s, or remove the table or set enabled = false".into(),
        ));
    }
    let opt = |v: Option<Spanned<String>>| v.map(|v| ctx.string(v)).transpose();
    let mut role_labels = Vec::new();
    for v in k.role_labels.unwrap_or_default() {
        let s = v.span();
        let text = ctx.string(v)?;
        role_labels
            .push(crate::config::LabelSpec::parse(&text).map_err(|why| ctx.error(Some(s), why))?);
    }
    if role_labels.is_empty() {
        role_labels.push(
            crate::config::LabelSpec::parse("raftinel")
                .map_err(|why| ctx.error(Some(span.clone()), why))?,
        );
    }
    if let Some(w) = role_labels
        .iter()
        .enumerate()
        .find(|(i, a)| role_labels[..*i].iter().any(|b| b.key == a.key))
    {
        return Err(ctx.error(
            Some(span),
            format!("role label '{}' is given twice", w.1.key),
        ));
    }
    let url_span = k.api_url.as_ref().map(|v| v.span());
    let api_url = opt(k.api_url)?;
    if let Some(u) = &api_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(ctx.error(
                url_span,
                format!("api-url '{u}' is not an http:// or https:// URL"),
            ));
        }
    }
    let sts_span = k.statefulset.as_ref().map(|v| v.span());
    let peers_from = match (opt(k.statefulset)?, opt(k.peer_template)?) {
        (None, None) => None,
        (Some(sts), Some(t)) if t.contains("{ordinal}") && t.rsplit_once(':').is_some() => {
            Some((sts, t))
        }
        _ => {
            return Err(ctx.error(
                sts_span.or(Some(span.clone())),
                "statefulset and peer-template go together, and the template names {ordinal} and a port (e.g. \"raftinel-{ordinal}.raftinel-headless.ns.svc.cluster.local:26379\")".into(),
            ))
        }
    };
    let redis_span = k.redis.as_ref().map(|v| v.span());
    let redis = opt(k.redis)?;
    if let Some(r) = &redis {
        let ok = r
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(ctx.error(redis_span, format!("redis '{r}' is not host:port")));
        }
    }
    Ok(Some(KubeOptions {
        api_url,
        token_file: opt(k.token_file)?,
        namespace: opt(k.namespace)?,
        pod: opt(k.pod)?,
        master: opt(k.master)?,
        role_labels,
        pod_selector: opt(k.pod_selector)?,
        events: k.events.unwrap_or(true),
        redis,
        drain_switchover: k.drain_switchover.unwrap_or(false),
        node: opt(k.node)?,
        peers_from,
    }))
}

/// The first word of an optional value, expanded (for checks across tables).
fn first_string(ctx: &Ctx<'_>, v: &V) -> Result<Option<String>, ConfigError> {
    match v {
        Some(v) => Ok(ctx.values(v.get_ref(), &v.span())?.into_iter().next()),
        None => Ok(None),
    }
}

/// What tells this daemon's own entry in a static peer list apart.
struct OwnEntry {
    announce_ip: Option<String>,
    announce_port: Option<u16>,
    port: Option<u16>,
    /// `RAFTINEL_POD_NAME`: on Kubernetes the first label of the pod's name.
    pod_name: Option<String>,
}

/// A static peer list must be usable as it stands: every entry `host:port`,
/// none twice, and this daemon in it at its own port, found by its announced
/// address or its pod name. A daemon that cannot find itself would run with
/// a wrong view of its group (never a voter, or a second bootstrapper), so
/// that is refused at start.
fn check_peers(
    ctx: &Ctx<'_>,
    peers: &[String],
    spans: &[Range<usize>],
    own: &OwnEntry,
) -> Result<(), ConfigError> {
    if peers.is_empty() {
        return Ok(());
    }
    let span_of = |i: usize| {
        spans
            .get(i)
            .cloned()
            .or_else(|| key_span(ctx.text, "peers"))
    };
    let mut seen: Vec<(String, u16)> = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let parsed = p
            .rsplit_once(':')
            .and_then(|(h, port)| Some((h, port.parse::<u16>().ok()?)))
            .filter(|(h, port)| !h.is_empty() && *port != 0);
        let Some((host, port)) = parsed else {
            return Err(ctx.error(span_of(i), format!("peer {p:?} is not host:port")));
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if seen.contains(&(host.clone(), port)) {
            return Err(ctx.error(span_of(i), format!("peer {p:?} is listed twice")));
        }
        seen.push((host, port));
    }
    let port = own
        .announce_port
        .filter(|&p| p != 0)
        .or(own.port)
        .unwrap_or(26379);
    // This daemon's entry: its announced address, else the first label of
    // its pod's name; without either it is found at run time (host name or
    // a local address).
    let (what, host, whole) = match (&own.announce_ip, &own.pod_name) {
        (Some(ip), _) => (format!("announce-ip {ip}"), ip.to_ascii_lowercase(), true),
        (None, Some(pod)) => (
            format!("pod {pod} (RAFTINEL_POD_NAME)"),
            pod.to_ascii_lowercase(),
            false,
        ),
        (None, None) => return Ok(()),
    };
    let matches = |h: &str| {
        if whole {
            h == host
        } else {
            h.split('.').next() == Some(host.as_str())
        }
    };
    let mine: Vec<&(String, u16)> = seen.iter().filter(|(h, _)| matches(h)).collect();
    if mine.iter().any(|(_, p)| *p == port) {
        return Ok(());
    }
    match mine.first() {
        Some((h, p)) => Err(ctx.error(
            key_span(ctx.text, "peers"),
            format!("peer {h}:{p} is this daemon ({what}), but it listens on port {port}"),
        )),
        None => Err(ctx.error(
            key_span(ctx.text, "peers"),
            format!(
                "this daemon ({what}, port {port}) is not in [raft] peers: every daemon \
                 of the group must be listed"
            ),
        )),
    }
}

/// The `[raft]` table, checked.
fn raft_options(ctx: &Ctx<'_>, raft: RaftToml) -> Result<RaftOptions, ConfigError> {
    let remove_unreachable_after_ms = match raft.remove_unreachable_after_ms {
        None | Some(0) => None,
        Some(ms) if ms < super::MIN_REMOVE_UNREACHABLE_MS => {
            return Err(ctx.error(
                key_span(ctx.text, "remove-unreachable-after-ms"),
                format!(
                    "remove-unreachable-after-ms must be 0 (off) or at least {}",
                    super::MIN_REMOVE_UNREACHABLE_MS
                ),
            ))
        }
        Some(ms) => Some(ms),
    };
    let cluster_id = raft.cluster_id.map(|v| ctx.string(v)).transpose()?;
    if let Some(id) = &cluster_id {
        if id.is_empty()
            || id == "*"
            || id.len() > 200
            || id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ctx.error(
                key_span(ctx.text, "cluster-id"),
                "cluster-id must be 1 to 200 characters, not `*`, without spaces".to_string(),
            ));
        }
    }
    Ok(RaftOptions {
        secret_file: secret_file(ctx, raft.secret_file)?,
        secret: None,
        cluster_id,
        peers: raft
            .peers
            .into_iter()
            .map(|p| ctx.string(p))
            .collect::<Result<_, _>>()?,
        data_dir: raft.data_dir.map(|v| ctx.string(v)).transpose()?,
        remove_unreachable_after_ms,
    })
}

/// `[raft] secret-file`, with its line for errors; the file is read once
/// the whole configuration is known (it is relative to `dir`).
fn secret_file(
    ctx: &Ctx<'_>,
    v: Option<Spanned<String>>,
) -> Result<Option<SecretFile>, ConfigError> {
    let Some(f) = v else { return Ok(None) };
    let span = f.span();
    let line = ctx.line_of(&span);
    let path = ctx.expand(f.get_ref(), &span)?;
    if path.is_empty() {
        return Err(ctx.error(Some(span), "secret-file must name a file".into()));
    }
    Ok(Some(SecretFile {
        path,
        line,
        text: ctx.text_at(line),
    }))
}

/// The `[server]` table.
fn feed_server(loader: &mut Loader, ctx: &Ctx<'_>, s: &ServerToml) -> Result<(), ConfigError> {
    let server_keys: [(&str, &V); 19] = [
        ("port", &s.port),
        ("bind", &s.bind),
        ("protected-mode", &s.protected_mode),
        ("daemonize", &s.daemonize),
        ("pidfile", &s.pidfile),
        ("logfile", &s.logfile),
        ("loglevel", &s.loglevel),
        ("log-format", &s.log_format),
        ("admin-addr", &s.admin_addr),
        ("data-dir", &s.data_dir),
        ("dir", &s.dir),
        ("requirepass", &s.requirepass),
        ("aclfile", &s.aclfile),
        ("acllog-max-len", &s.acllog_max_len),
        ("maxclients", &s.maxclients),
        ("supervised", &s.supervised),
        ("syslog-enabled", &s.syslog_enabled),
        ("syslog-ident", &s.syslog_ident),
        ("syslog-facility", &s.syslog_facility),
    ];
    for (key, v) in server_keys {
        if let Some(v) = v {
            loader.feed_line(split_multi(ctx.line(&[key], v)?))?;
        }
    }
    if let Some(users) = &s.users {
        let span = users.span();
        for u in ctx.values(users.get_ref(), &span)? {
            let line = ctx.line_of(&span);
            let mut args = vec!["user".to_string()];
            let parts = split_args(&u).ok_or_else(|| {
                ctx.error(Some(span.clone()), "Unbalanced quotes in user rules".into())
            })?;
            args.extend(
                parts
                    .into_iter()
                    .map(|p| String::from_utf8_lossy(&p).into_owned()),
            );
            loader.feed_line(ctx.source_line(line, args))?;
        }
    }
    Ok(())
}

/// One `[[masters]]` entry: its monitor line, then its options.
fn feed_master(loader: &mut Loader, ctx: &Ctx<'_>, m: &MasterToml) -> Result<(), ConfigError> {
    let name_span = m.name.span();
    let name = match m.name.get_ref() {
        Value::String(n) if !n.is_empty() => n.clone(),
        _ => {
            return Err(ctx.error(
                Some(name_span),
                "master name must be a non-empty string".into(),
            ))
        }
    };
    let mut monitor = ctx.line(&["sentinel", "monitor", &name], &m.host)?;
    monitor
        .args
        .extend(ctx.values(m.port.get_ref(), &m.port.span())?);
    monitor
        .args
        .extend(ctx.values(m.quorum.get_ref(), &m.quorum.span())?);
    loader.feed_line(monitor)?;
    for (key, v) in [
        ("down-after-milliseconds", &m.down_after_milliseconds),
        ("failover-timeout", &m.failover_timeout),
        ("parallel-syncs", &m.parallel_syncs),
        ("auth-pass", &m.auth_pass),
        ("auth-user", &m.auth_user),
        ("notification-script", &m.notification_script),
        ("client-reconfig-script", &m.client_reconfig_script),
        (
            "master-reboot-down-after-period",
            &m.master_reboot_down_after_period,
        ),
        (
            super::REFUSED_DOWN_AFTER,
            &m.refused_down_after_milliseconds,
        ),
    ] {
        if let Some(v) = v {
            loader.feed_line(ctx.line(&["sentinel", key, &name], v)?)?;
        }
    }
    if let Some(rc) = &m.rename_commands {
        let span = rc.span();
        let Value::Table(t) = rc.get_ref() else {
            return Err(ctx.error(
                Some(span),
                "rename-commands must be a table { OLD = \"NEW\" }".into(),
            ));
        };
        for (old, new) in t {
            let line = ctx.line_of(&span);
            let mut args = vec![
                "sentinel".to_string(),
                "rename-command".into(),
                name.clone(),
                old.clone(),
            ];
            args.extend(ctx.values(new, &span)?);
            loader.feed_line(ctx.source_line(line, args))?;
        }
    }
    Ok(())
}

/// Multi-argument directives given as one TOML string (`bind = "127.0.0.1
/// ::1"`, `client-output-buffer-limit = "normal 0 0 0"`) are split like a
/// sentinel.conf line would be.
fn split_multi(mut sl: SourceLine) -> SourceLine {
    let multi = sl
        .args
        .first()
        .and_then(|n| directives::canonical(n))
        .is_some_and(|d| d.kind == directives::Kind::Multi);
    if multi && sl.args.len() == 2 {
        if let Some(parts) = split_args(&sl.args[1]) {
            let name = sl.args[0].clone();
            sl.args = std::iter::once(name)
                .chain(
                    parts
                        .into_iter()
                        .map(|p| String::from_utf8_lossy(&p).into_owned()),
                )
                .collect();
        }
    }
    sl
}
