//! The state-changing and state-reading halves of the SENTINEL subcommands
//! (descriptions, MONITOR / REMOVE / SET, the vote rule, replica selection).
//! `server::sentinel_cmd` parses the
//! wire arguments, calls these, runs the returned actions and builds the RESP
//! reply; everything that decides an error text or an effect is here, so it is
//! unit-tested without a socket.
//!
//! I/O the core may not do itself (DNS for MONITOR, `access(X_OK)` for script
//! paths, glob matching owned by the server) comes in as closures.

use super::event::EventKind;
use super::failover::history_refusal;
use super::instance::{Instance, Role};
use super::persisted::{MasterState, REFUSED_DOWN_AFTER};
use super::sentinel::{emit, master_from_state, Master, Sentinel, MAX_DESYNC};
use super::types::{Action, InstanceKind, LinkKind, Millis};
use rand::Rng;

/// An error reply: the full line after `-` (`ERR ...`, `NOQUORUM ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CmdError(pub String);

impl CmdError {
    pub fn err(msg: impl AsRef<str>) -> CmdError {
        CmdError(format!("ERR {}", msg.as_ref()))
    }
    pub fn no_such_master() -> CmdError {
        CmdError::err("No such master with that name")
    }
    pub fn not_an_integer() -> CmdError {
        CmdError::err("value is not an integer or out of range")
    }
}

/// An instance description (SENTINEL MASTER(S), REPLICAS, SENTINELS):
/// field/value pairs in redis-sentinel's fixed order.
pub type Description = Vec<(&'static str, String)>;

/// Redis's strict `string2ll`: optional `-`, no `+`, no leading zeros, no spaces.
pub fn string2ll(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return if neg { None } else { Some(0) },
        [b'0', ..] => return None,
        _ => {}
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// [`string2ll`] of a string argument.
pub fn parse_ll(s: &str) -> Option<i64> {
    string2ll(s.as_bytes())
}

/// SENTINEL INFO-CACHE: per master, (age ms, cached INFO) of the master then
/// of each replica.
pub type InfoCache = Vec<(String, Vec<(i64, Option<String>)>)>;

/// Reply of IS-MASTER-DOWN-BY-ADDR: (down 0|1, leader run id or `*`, epoch).
pub type MasterDownVote = (i64, String, i64);

/// The four wire arguments of SENTINEL MONITOR, unparsed (their parse
/// errors are part of the check order).
#[derive(Debug, Clone, Copy)]
pub struct MonitorArgs<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub port: &'a str,
    pub quorum: &'a str,
}

/// Result of SENTINEL SIMULATE-FAILURE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimulateReply {
    Ok,
    /// `HELP`: the reply lists the two flag names.
    Help,
}

pub const SIMULATE_FAILURE_FLAGS: [&str; 2] = ["crash-after-election", "crash-after-promotion"];

/// The 13 SENTINEL DEBUG parameters: (name in the listing, lower-case name
/// for setting).
const DEBUG_PARAMS: [(&str, &str); 13] = [
    ("INFO-PERIOD", "info-period"),
    ("PING-PERIOD", "ping-period"),
    ("ASK-PERIOD", "ask-period"),
    ("PUBLISH-PERIOD", "publish-period"),
    ("DEFAULT-DOWN-AFTER", "default-down-after"),
    ("DEFAULT-FAILOVER-TIMEOUT", "default-failover-timeout"),
    ("TILT-TRIGGER", "tilt-trigger"),
    ("TILT-PERIOD", "tilt-period"),
    ("SLAVE-RECONF-TIMEOUT", "slave-reconf-timeout"),
    ("MIN-LINK-RECONNECT-PERIOD", "min-link-reconnect-period"),
    ("ELECTION-TIMEOUT", "election-timeout"),
    ("SCRIPT-MAX-RUNTIME", "script-max-runtime"),
    ("SCRIPT-RETRY-DELAY", "script-retry-delay"),
];

fn since(now: Millis, t: Millis) -> String {
    now.saturating_sub(t).to_string()
}

/// Builds one instance description. Every value is a string; the
/// server sends them as bulk strings.
/// In a group the master's address, flags and failover state come from
/// committed state (`failover::failover_desc`).
fn describe(s: &Sentinel, inst: &Instance, m: &Master, now: Millis) -> Description {
    let mut d: Description = Vec::with_capacity(21);
    let is_master = inst.kind == InstanceKind::Master;
    let announce = s.globals.announce_hostnames;
    let (host, port) = if is_master {
        s.shown_addr(m)
    } else {
        (inst.shown_host(announce).to_string(), inst.port)
    };
    let (extras, fdesc) = s.failover_desc(m, inst);
    d.push(("name", inst.shown_name(announce).into_owned()));
    d.push(("ip", host));
    d.push(("port", port.to_string()));
    d.push(("runid", inst.runid.clone().unwrap_or_default()));
    d.push(("flags", inst.flags_with(&extras)));
    d.push(("link-pending-commands", inst.link.pending.to_string()));
    // The instances of one peer daemon (one per master both monitor) share
    // its connection, as in Sentinel.
    let refcount = match inst.kind {
        InstanceKind::Sentinel => s
            .masters
            .values()
            .flat_map(|m| m.sentinels.values())
            .filter(|o| o.host == inst.host && o.port == inst.port)
            .count(),
        _ => 1,
    };
    d.push(("link-refcount", refcount.to_string()));
    if let Some(state) = fdesc.failover_state {
        d.push(("failover-state", state.to_string()));
    }
    d.push((
        "last-ping-sent",
        inst.link
            .act_ping_time
            .map_or_else(|| "0".to_string(), |a| since(now, a)),
    ));
    d.push(("last-ok-ping-reply", since(now, inst.link.last_avail_time)));
    d.push(("last-ping-reply", since(now, inst.link.last_pong_time)));
    if inst.s_down {
        d.push(("s-down-time", since(now, inst.s_down_since.unwrap_or(now))));
    }
    if inst.o_down {
        d.push(("o-down-time", since(now, inst.o_down_since.unwrap_or(now))));
    }
    d.push(("down-after-milliseconds", inst.down_after.to_string()));
    if inst.kind != InstanceKind::Sentinel {
        d.push((
            "info-refresh",
            inst.info_refresh
                .map_or_else(|| "0".to_string(), |t| since(now, t)),
        ));
        let role = if inst.role_reported == Role::Master {
            "master"
        } else {
            "slave"
        };
        d.push(("role-reported", role.to_string()));
        d.push(("role-reported-time", since(now, inst.role_reported_time)));
    }
    match inst.kind {
        InstanceKind::Master => {
            d.push(("config-epoch", m.config_epoch.to_string()));
            d.push(("num-slaves", m.replicas.len().to_string()));
            d.push(("num-other-sentinels", m.sentinels.len().to_string()));
            d.push(("quorum", m.quorum.to_string()));
            d.push(("failover-timeout", m.failover_timeout.to_string()));
            d.push(("parallel-syncs", m.parallel_syncs.to_string()));
            if let Some(s) = &m.notification_script {
                d.push(("notification-script", s.clone()));
            }
            if let Some(s) = &m.client_reconfig_script {
                d.push(("client-reconfig-script", s.clone()));
            }
            // raftinel's own, last and only while the master is down and
            // the group waits for a node on its recorded history.
            if let Some(w) = s.cmaster(&m.inst.name).and_then(|c| c.wait.as_ref()) {
                if inst.s_down {
                    d.push(("failover-wait", w.clone()));
                }
            }
        }
        InstanceKind::Replica => {
            d.push((
                "master-link-down-time",
                inst.master_link_down_since.to_string(),
            ));
            let status = if inst.slave_master_link_up {
                "ok"
            } else {
                "err"
            };
            d.push(("master-link-status", status.to_string()));
            d.push((
                "master-host",
                inst.slave_master_host.clone().unwrap_or_else(|| "?".into()),
            ));
            d.push(("master-port", inst.slave_master_port.to_string()));
            d.push(("slave-priority", inst.slave_priority.to_string()));
            d.push(("slave-repl-offset", inst.slave_repl_offset.to_string()));
            d.push(("replica-announced", inst.replica_announced.to_string()));
        }
        InstanceKind::Sentinel => {
            d.push(("last-hello-message", since(now, inst.last_hello_time)));
            d.push((
                "voted-leader",
                inst.leader.clone().unwrap_or_else(|| "?".into()),
            ));
            d.push(("voted-leader-epoch", inst.leader_epoch.to_string()));
        }
    }
    d
}

/// How long an option set on this daemon wins over a different committed
/// value while its own proposal is on its way (a proposal lost with a Raft
/// leader is not retried: the committed value applies after this).
const PENDING_OPTION_MS: u64 = 10_000;

/// The options SENTINEL SET takes with one value (rename-command takes two).
const SET_OPTIONS: &[&str] = &[
    "down-after-milliseconds",
    "failover-timeout",
    "parallel-syncs",
    "quorum",
    "master-reboot-down-after-period",
    "notification-script",
    "client-reconfig-script",
    "auth-pass",
    "auth-user",
    super::failover::COORDINATED_OPTION,
    super::failover::FENCED_OPTION,
    REFUSED_DOWN_AFTER,
];

/// What `apply_set_option` needs besides the master.
struct SetCtx<'a> {
    /// The option as the client spelled it (error messages).
    option: &'a str,
    deny_scripts: bool,
    script_ok: &'a dyn Fn(&str) -> bool,
}

/// One SENTINEL SET option applied to a master (`opt` lowercase, `vals` its
/// one or two values), with Sentinel's validation and error strings.
fn apply_set_option(
    m: &mut Master,
    opt: &str,
    vals: &[&str],
    ctx: &SetCtx<'_>,
    out: &mut Vec<Action>,
) -> Result<(), CmdError> {
    let option = ctx.option;
    let bad = |v: &str| {
        CmdError::err(format!(
            "Invalid argument '{v}' for SENTINEL SET '{option}'"
        ))
    };
    let v = vals.first().copied().unwrap_or_default();
    match opt {
        "down-after-milliseconds"
        | "failover-timeout"
        | "parallel-syncs"
        | "quorum"
        | "master-reboot-down-after-period"
        | REFUSED_DOWN_AFTER => {
            let ll = parse_ll(v).ok_or_else(|| bad(v))?;
            let min = if matches!(opt, "master-reboot-down-after-period" | REFUSED_DOWN_AFTER) {
                0
            } else {
                1
            };
            if ll < min {
                return Err(bad(v));
            }
            let n = ll as u64;
            match opt {
                "down-after-milliseconds" => {
                    m.inst.down_after = n;
                    for i in m.replicas.values_mut().chain(m.sentinels.values_mut()) {
                        i.down_after = n;
                    }
                }
                "failover-timeout" => m.failover_timeout = n,
                "parallel-syncs" => m.parallel_syncs = u32::try_from(n).map_err(|_| bad(v))?,
                "quorum" => m.quorum = u32::try_from(n).map_err(|_| bad(v))?,
                REFUSED_DOWN_AFTER => m.inst.refused_down_after = n,
                _ => m.reboot_down_after = n,
            }
        }
        "notification-script" | "client-reconfig-script" => {
            if ctx.deny_scripts {
                return Err(CmdError::err(
                    "Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration",
                ));
            }
            let notif = opt == "notification-script";
            if !v.is_empty() && !(ctx.script_ok)(v) {
                return Err(CmdError::err(if notif {
                    "Notification script seems non existing or non executable"
                } else {
                    "Client reconfiguration script seems non existing or non executable"
                }));
            }
            let val = (!v.is_empty()).then(|| v.to_string());
            if notif {
                m.notification_script = val;
            } else {
                m.client_reconfig_script = val;
            }
        }
        "auth-pass" | "auth-user" => {
            let val = (!v.is_empty()).then(|| v.to_string());
            if opt == "auth-pass" {
                m.auth_pass = val;
            } else {
                m.auth_user = val;
            }
            Sentinel::drop_data_links(m, out);
        }
        // raftinel extension: manual failovers pause writes on the old
        // master until the replica caught up (planned switchover without
        // losing acknowledged writes); `no` makes them Sentinel's plain
        // failover.
        super::failover::COORDINATED_OPTION => {
            m.fo.plain_manual = match v.to_ascii_lowercase().as_str() {
                "yes" => false,
                "no" => true,
                _ => return Err(bad(v)),
            };
        }
        // raftinel extension: the fenced nodes (`failover/fenced.rs`).
        super::failover::FENCED_OPTION => {
            m.fo.fenced = super::failover::parse_fenced(v).ok_or_else(|| bad(v))?;
        }
        "rename-command" => {
            let new = vals.get(1).copied().unwrap_or_default();
            if v.is_empty() {
                return Err(bad(v));
            }
            if new.is_empty() {
                return Err(bad(new));
            }
            m.renames.retain(|(o, _)| !o.eq_ignore_ascii_case(v));
            if !v.eq_ignore_ascii_case(new) {
                m.renames.push((v.to_string(), new.to_string()));
            }
            // Renames travel with the link spec: reconnect so they apply
            // (Sentinel applies them per command).
            Sentinel::drop_data_links(m, out);
        }
        _ => {
            return Err(CmdError::err(format!(
                "Unknown option or number of arguments for SENTINEL SET '{option}'"
            )))
        }
    }
    Ok(())
}

/// The group's key and value for an option set on one daemon; None for the
/// script paths (paths of that machine, and denied by default).
fn replicated_option(opt: &str, vals: &[&str]) -> Option<(String, String)> {
    let v = vals.first().copied().unwrap_or_default();
    match opt {
        "notification-script" | "client-reconfig-script" => None,
        "rename-command" => Some((
            format!("rename-command {}", v.to_ascii_lowercase()),
            vals.get(1).copied().unwrap_or_default().to_string(),
        )),
        super::failover::COORDINATED_OPTION => Some((opt.to_string(), v.to_ascii_lowercase())),
        _ => Some((opt.to_string(), v.to_string())),
    }
}

/// The inverse of `replicated_option`: the option and its values for a
/// group key and value ("" = unset: the option's empty value; a rename
/// to itself, which removes it).
fn option_args(key: &str, value: &str) -> Option<(String, Vec<String>)> {
    if let Some(old) = key.strip_prefix("rename-command ") {
        let new = if value.is_empty() { old } else { value };
        return Some(("rename-command".into(), vec![old.into(), new.into()]));
    }
    if value.is_empty()
        && !matches!(
            key,
            "auth-pass" | "auth-user" | super::failover::FENCED_OPTION
        )
    {
        // Numeric options and the coordinated flag are never cleared.
        return None;
    }
    SET_OPTIONS
        .contains(&key)
        .then(|| (key.to_string(), vec![value.to_string()]))
}

/// Whether the master already has this option value (nothing to apply, no
/// links to drop).
fn current_option(m: &Master, opt: &str, vals: &[String]) -> bool {
    let v = vals.first().map(String::as_str).unwrap_or_default();
    let n = parse_ll(v).and_then(|n| u64::try_from(n).ok());
    match opt {
        "down-after-milliseconds" => n == Some(m.inst.down_after),
        "failover-timeout" => n == Some(m.failover_timeout),
        "parallel-syncs" => n == Some(u64::from(m.parallel_syncs)),
        "quorum" => n == Some(u64::from(m.quorum)),
        "master-reboot-down-after-period" => n == Some(m.reboot_down_after),
        REFUSED_DOWN_AFTER => n == Some(m.inst.refused_down_after),
        "auth-pass" => m.auth_pass.as_deref().unwrap_or_default() == v,
        "auth-user" => m.auth_user.as_deref().unwrap_or_default() == v,
        super::failover::COORDINATED_OPTION => m.fo.plain_manual == v.eq_ignore_ascii_case("no"),
        super::failover::FENCED_OPTION => {
            super::failover::parse_fenced(v).is_some_and(|f| f == m.fo.fenced)
        }
        "rename-command" => {
            let new = vals.get(1).map(String::as_str).unwrap_or_default();
            let cur = m
                .renames
                .iter()
                .find(|(o, _)| o.eq_ignore_ascii_case(v))
                .map(|(_, n)| n.as_str());
            match cur {
                Some(c) => c == new,
                None => v.eq_ignore_ascii_case(new),
            }
        }
        _ => false,
    }
}

impl Sentinel {
    fn master(&self, name: &str) -> Result<&Master, CmdError> {
        self.masters.get(name).ok_or_else(CmdError::no_such_master)
    }

    fn master_idx(&self, name: &str) -> Result<usize, CmdError> {
        self.masters
            .get_index_of(name)
            .ok_or_else(CmdError::no_such_master)
    }

    /// SENTINEL MASTERS.
    pub fn masters_desc(&self, now: Millis) -> Vec<Description> {
        self.masters
            .values()
            .map(|m| describe(self, &m.inst, m, now))
            .collect()
    }

    /// SENTINEL MASTER.
    pub fn master_desc(&self, name: &str, now: Millis) -> Result<Description, CmdError> {
        let m = self.master(name)?;
        Ok(describe(self, &m.inst, m, now))
    }

    /// SENTINEL REPLICAS / SLAVES: replicas that said `replica_announced:0`
    /// are hidden (they still count in num-slaves).
    pub fn replicas_desc(&self, name: &str, now: Millis) -> Result<Vec<Description>, CmdError> {
        let m = self.master(name)?;
        Ok(m.replicas
            .values()
            .filter(|r| r.replica_announced != 0)
            .map(|r| describe(self, r, m, now))
            .collect())
    }

    /// SENTINEL SENTINELS.
    pub fn sentinels_desc(&self, name: &str, now: Millis) -> Result<Vec<Description>, CmdError> {
        let m = self.master(name)?;
        Ok(m.sentinels
            .values()
            .map(|s| describe(self, s, m, now))
            .collect())
    }

    /// SENTINEL GET-MASTER-ADDR-BY-NAME (None = null array): in a group the
    /// committed address, the promoted replica's from reconf_slaves on.
    pub fn master_addr(&self, name: &str) -> Option<(String, u16)> {
        let m = self.masters.get(name)?;
        Some(self.show(m, self.client_addr(m)))
    }

    /// SENTINEL MONITOR, with Sentinel's check order. `host_ip(host,
    /// resolve_hostnames)` is the IP of the address: itself if an IP
    /// literal, what it resolved to with resolve-hostnames, else None.
    pub fn monitor(
        &mut self,
        now: Millis,
        args: MonitorArgs<'_>,
        host_ip: &dyn Fn(&str, bool) -> Option<String>,
        out: &mut Vec<Action>,
    ) -> Result<(), CmdError> {
        let MonitorArgs {
            name,
            host,
            port: port_arg,
            quorum: quorum_arg,
        } = args;
        let quorum = parse_ll(quorum_arg).ok_or_else(|| CmdError::err("Invalid quorum"))?;
        let port = parse_ll(port_arg).ok_or_else(|| CmdError::err("Invalid port"))?;
        if quorum <= 0 {
            return Err(CmdError::err("Quorum must be 1 or greater."));
        }
        let Some(ip) = host_ip(host, self.globals.resolve_hostnames) else {
            return Err(CmdError::err("Invalid IP address or hostname specified"));
        };
        // Observed on 7.0.15: the port range is checked before the name.
        let port = u16::try_from(port).map_err(|_| CmdError::err("Invalid port number."))?;
        if self.masters.contains_key(name) {
            return Err(CmdError::err("Duplicate master name."));
        }
        let mut ms = MasterState::new(name, host, port, u32::try_from(quorum).unwrap_or(u32::MAX));
        ms.down_after_ms = self.timing.default_down_after;
        ms.failover_timeout_ms = self.timing.default_failover_timeout;
        let mut m = master_from_state(&ms, &mut self.next_id, now);
        m.fo.start_seen = self.current_epoch;
        // Resolved now, as Sentinel does at MONITOR.
        m.inst.ip = Some(ip);
        let msg = format!(
            "{} quorum {}",
            m.prefix(self.globals.announce_hostnames),
            m.quorum
        );
        let register = crate::core::group::Command::Monitor {
            name: name.to_string(),
            host: m.inst.host.clone(),
            port: m.inst.port,
            quorum: m.quorum,
        };
        let (mi, _) = self.masters.insert_full(name.to_string(), m);
        self.register_master(mi);
        out.push(Action::Flush);
        emit(out, EventKind::Monitor, msg, Some(name));
        // In a group the monitoring configuration is replicated: the group
        // learns the master (a duplicate name is rejected by the group).
        if self.committed.is_some() && self.raft.initialized {
            out.push(Action::Propose(register));
        }
        Ok(())
    }

    /// SENTINEL REMOVE.
    pub fn remove(&mut self, name: &str, out: &mut Vec<Action>) -> Result<(), CmdError> {
        let m = self.master(name)?;
        emit(
            out,
            EventKind::Unmonitor,
            m.prefix(self.globals.announce_hostnames),
            Some(name),
        );
        let ids: Vec<_> = std::iter::once(m.inst.id)
            .chain(m.replicas.values().map(|r| r.id))
            .chain(m.sentinels.values().map(|s| s.id))
            .collect();
        for &id in &ids {
            out.push(Action::Disconnect { id, link: None });
        }
        self.unregister(ids);
        self.masters.shift_remove(name);
        out.push(Action::Flush);
        // The group forgets it too, so a later MONITOR of the same name at
        // another address is not answered with the old committed address.
        if self.cmaster(name).is_some() {
            out.push(Action::Propose(crate::core::group::Command::Remove {
                name: name.to_string(),
            }));
        }
        Ok(())
    }

    /// Closes the links of a master and its replicas (credentials or command
    /// names changed: the driver reconnects with the new ones).
    fn drop_data_links(m: &mut Master, out: &mut Vec<Action>) {
        for inst in std::iter::once(&mut m.inst).chain(m.replicas.values_mut()) {
            inst.link.cmd_lost();
            inst.link.pc_up = false;
            out.push(Action::Disconnect {
                id: inst.id,
                link: None,
            });
        }
    }

    /// SENTINEL SET. Options are applied left to right with a `+set`
    /// each; a flush is queued at the end if anything changed, also when a
    /// later option fails. `script_ok(path)` = the file is executable. In a
    /// group every applied option but the two script paths (paths of this
    /// machine) is also proposed as a `Set` command, so every daemon and
    /// every restart converges on it (`apply_committed_options`).
    pub fn set(
        &mut self,
        name: &str,
        args: &[String],
        script_ok: &dyn Fn(&str) -> bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> Result<(), CmdError> {
        let mi = self.master_idx(name)?;
        let deny_scripts = self.globals.deny_scripts_reconfig;
        let mut changes = 0;
        let mut group_sets: Vec<(String, String)> = Vec::new();
        let result = (|| {
            let mut j = 0;
            while j < args.len() {
                let option = args[j].as_str();
                let opt = option.to_ascii_lowercase();
                let moreargs = args.len() - 1 - j;
                let nvals = match opt.as_str() {
                    "rename-command" if moreargs > 1 => 2,
                    "rename-command" => 0,
                    _ if moreargs > 0 && SET_OPTIONS.contains(&opt.as_str()) => 1,
                    _ => 0,
                };
                if nvals == 0 {
                    return Err(CmdError::err(format!(
                        "Unknown option or number of arguments for SENTINEL SET '{option}'"
                    )));
                }
                let vals: Vec<&str> = args[j + 1..=j + nvals].iter().map(String::as_str).collect();
                let m = &mut self.masters[mi];
                let ctx = SetCtx {
                    option,
                    deny_scripts,
                    script_ok,
                };
                apply_set_option(m, &opt, &vals, &ctx, out)?;
                if let Some(kv) = replicated_option(&opt, &vals) {
                    m.fo.pending_options
                        .insert(kv.0.clone(), (kv.1.clone(), now));
                    group_sets.push(kv);
                }
                changes += 1;
                let p = m.prefix(self.globals.announce_hostnames);
                let msg = match nvals {
                    1 if opt == "auth-pass" => format!("{p} {option} ******"),
                    1 => format!("{p} {option} {}", vals[0]),
                    _ => format!("{p} {option} {} {}", vals[0], vals[1]),
                };
                emit(out, EventKind::Set, msg, Some(name));
                j += nvals + 1;
            }
            Ok(())
        })();
        if changes > 0 {
            out.push(Action::Flush);
        }
        if self.cmaster(name).is_some() {
            for (option, value) in group_sets {
                out.push(Action::Propose(crate::core::group::Command::Set {
                    name: name.to_string(),
                    option,
                    value,
                }));
            }
        }
        result
    }

    /// Applies the options a committed `Set` changed since this daemon last
    /// looked (another daemon's SENTINEL SET, or one made before a restart)
    /// where they differ from the local value, without `+set` (the daemon
    /// that took the command published it). An option set here and not yet
    /// committed is not undone meanwhile (for at most `PENDING_OPTION_MS`,
    /// should the proposal be lost). Returns whether anything changed.
    pub(crate) fn apply_committed_options(
        &mut self,
        mi: usize,
        quorum: u32,
        options: &std::collections::BTreeMap<String, String>,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return false;
        };
        let mut wanted: Vec<(String, String)> = options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        wanted.push(("quorum".to_string(), quorum.to_string()));
        // Options cleared in the group (value "" is not stored there).
        for k in m.fo.seen_options.keys() {
            if k != "quorum" && !options.contains_key(k) {
                wanted.push((k.clone(), String::new()));
            }
        }
        let mut changed = false;
        for (key, value) in wanted {
            if let Some((mine, since)) = m.fo.pending_options.get(&key) {
                if *mine == value {
                    m.fo.pending_options.remove(&key);
                    m.fo.seen_options.insert(key, value);
                    continue;
                }
                if now.saturating_sub(*since) < PENDING_OPTION_MS {
                    continue;
                }
                m.fo.pending_options.remove(&key);
            }
            if m.fo.seen_options.get(&key) == Some(&value) {
                continue;
            }
            m.fo.seen_options.insert(key.clone(), value.clone());
            let Some((opt, vals)) = option_args(&key, &value) else {
                continue;
            };
            if current_option(m, &opt, &vals) {
                continue;
            }
            let vals: Vec<&str> = vals.iter().map(String::as_str).collect();
            let ctx = SetCtx {
                option: &opt,
                deny_scripts: false,
                script_ok: &|_| true,
            };
            match apply_set_option(m, &opt, &vals, &ctx, out) {
                Ok(()) => changed = true,
                Err(e) => out.push(Action::Warn(format!(
                    "committed option {key} {value:?} for master {} not applied: {e:?}",
                    m.inst.name
                ))),
            }
        }
        if changed {
            out.push(Action::Flush);
        }
        changed
    }

    /// SENTINEL RESET: `matches(name)` is the glob test. Returns the number
    /// of masters reset. No flush (Sentinel does not flush here).
    pub fn reset(
        &mut self,
        now: Millis,
        matches: &dyn Fn(&str) -> bool,
        out: &mut Vec<Action>,
    ) -> usize {
        let hits: Vec<usize> = self
            .masters
            .keys()
            .enumerate()
            .filter(|(_, n)| matches(n))
            .map(|(i, _)| i)
            .collect();
        for &mi in &hits {
            self.reset_master(mi, now, true, true, out);
        }
        if !hits.is_empty() {
            self.reset_rediscovery(now);
        }
        hits.len()
    }

    /// SENTINEL CKQUORUM: Ok(status text) or the NOQUORUM error. In a group
    /// without a known Raft leader nothing can be committed: NOQUORUM.
    pub fn ckquorum(&self, name: &str) -> Result<String, CmdError> {
        let m = self.master(name)?;
        if self.cut_off(name) {
            let usable = 1 + m
                .sentinels
                .values()
                .filter(|s| !s.s_down && !s.o_down)
                .count();
            return Err(CmdError(format!(
                "NOQUORUM {usable} usable Sentinels. No Raft leader is known: a failover cannot be authorized"
            )));
        }
        let voters = m.sentinels.len() + 1;
        let usable = 1 + m
            .sentinels
            .values()
            .filter(|s| !s.s_down && !s.o_down)
            .count();
        let no_quorum = usable < m.quorum as usize;
        let no_auth = usable < voters / 2 + 1;
        if !no_quorum && !no_auth {
            return Ok(format!(
                "OK {usable} usable Sentinels. Quorum and failover authorization can be reached"
            ));
        }
        let mut e = format!("NOQUORUM {usable} usable Sentinels. ");
        if no_quorum {
            e.push_str(
                "Not enough available Sentinels to reach the specified quorum for this master",
            );
        }
        if no_auth {
            if no_quorum {
                e.push_str(". ");
            }
            e.push_str(
                "Not enough available Sentinels to reach the majority and authorize a failover",
            );
        }
        Err(CmdError(e))
    }

    /// Sentinel's vote rule (one vote per epoch). Returns the stored vote (leader, epoch).
    pub(crate) fn vote_leader(
        &mut self,
        mi: usize,
        req_epoch: u64,
        req_runid: &str,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> (Option<String>, u64) {
        let Some(name) = self.masters.get_index(mi).map(|(n, _)| n.clone()) else {
            return (None, 0);
        };
        if req_epoch > self.current_epoch {
            self.current_epoch = req_epoch;
            out.push(Action::Flush);
            emit(out, EventKind::NewEpoch, req_epoch.to_string(), Some(&name));
        }
        let current = self.current_epoch;
        let desync = self.rng.gen_range(0..MAX_DESYNC);
        let m = &mut self.masters[mi];
        if m.leader_epoch < req_epoch && current <= req_epoch {
            m.leader = Some(req_runid.to_string());
            m.leader_epoch = current;
            out.push(Action::Flush);
            emit(
                out,
                EventKind::VoteForLeader,
                format!("{req_runid} {current}"),
                Some(&name),
            );
            // Having voted for another sentinel, do not start our own failover
            // of this master for 2 × failover-timeout.
            if !req_runid.eq_ignore_ascii_case(&self.myid) {
                m.failover_start_time = now + desync;
            }
        }
        (m.leader.clone(), m.leader_epoch)
    }

    /// SENTINEL IS-MASTER-DOWN-BY-ADDR: (down, leader or "*", leader epoch).
    pub fn is_master_down_by_addr(
        &mut self,
        now: Millis,
        ip: &str,
        port_arg: &str,
        epoch_arg: &str,
        runid: &str,
        out: &mut Vec<Action>,
    ) -> Result<MasterDownVote, CmdError> {
        let port = parse_ll(port_arg).ok_or_else(CmdError::not_an_integer)?;
        let epoch = parse_ll(epoch_arg).ok_or_else(CmdError::not_an_integer)?;
        let Some(mi) = self
            .masters
            .values()
            .position(|m| m.inst.at_host(ip) && i64::from(m.inst.port) == port)
        else {
            return Ok((0, "*".into(), 0));
        };
        let down = i64::from(self.masters[mi].inst.s_down);
        if runid == "*" {
            return Ok((down, "*".into(), 0));
        }
        // redis-sentinel casts a negative epoch to a huge unsigned one and
        // adopts it forever; here it cannot win a vote and changes nothing.
        let (leader, leader_epoch) = match u64::try_from(epoch) {
            Ok(e) => self.vote_leader(mi, e, runid, now, out),
            Err(_) => {
                let m = &self.masters[mi];
                (m.leader.clone(), m.leader_epoch)
            }
        };
        Ok((
            down,
            leader.unwrap_or_else(|| "*".into()),
            i64::try_from(leader_epoch).unwrap_or(i64::MAX),
        ))
    }

    /// Sentinel's replica selection (priority, offset, run id) with the
    /// history rules, unless the committed failover of the master waives
    /// them (FORCE); returns the key of the best candidate.
    pub fn select_slave(&self, name: &str, now: Millis) -> Option<String> {
        let forced = self
            .cmaster(name)
            .is_some_and(|c| c.failover.as_ref().is_some_and(|f| f.force));
        self.select_slave_as(name, now, !forced)
    }

    /// [`Sentinel::select_slave`], with the history rules or without
    /// (`history`); a replica reporting role:master is never chosen.
    pub(crate) fn select_slave_as(&self, name: &str, now: Millis, history: bool) -> Option<String> {
        let m = self.masters.get(name)?;
        let judged = self.judged_history(m);
        let t = &self.timing;
        let mut max_down: i64 = 0;
        if m.inst.s_down {
            max_down += now.saturating_sub(m.inst.s_down_since.unwrap_or(now)) as i64;
        }
        max_down = max_down.saturating_add((m.inst.down_after as i64).saturating_mul(10));
        let validity = if m.inst.s_down {
            t.ping_period.saturating_mul(5)
        } else {
            t.info_period.saturating_mul(3)
        };
        let mut candidates: Vec<(&String, &Instance)> = m
            .replicas
            .iter()
            .filter(|(_, r)| {
                !r.s_down
                    && !r.o_down
                    && !r.link.disconnected()
                    && now.saturating_sub(r.link.last_avail_time) <= t.ping_period.saturating_mul(5)
                    && r.slave_priority != 0
                    && r.info_refresh
                        .is_some_and(|i| now.saturating_sub(i) <= validity)
                    && r.master_link_down_since <= max_down
                    && r.role_reported != Role::Master
                    && !self.is_fenced(name, &r.host, r.port)
                    && (!history || history_refusal(judged, r).is_none())
            })
            .collect();
        candidates.sort_by(|(_, a), (_, b)| {
            a.slave_priority
                .cmp(&b.slave_priority)
                .then(b.slave_repl_offset.cmp(&a.slave_repl_offset))
                .then_with(|| match (&a.runid, &b.runid) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (Some(x), Some(y)) => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
                })
        });
        candidates.first().map(|(k, _)| (*k).clone())
    }

    /// Why the replicas that are up and answer were refused by the
    /// history rule (`slave <addr>: <reason>`), for the log line of a
    /// failover that finds no replica.
    pub(crate) fn history_refusals(&self, name: &str) -> Vec<String> {
        let Some(m) = self.masters.get(name) else {
            return Vec::new();
        };
        let judged = self.judged_history(m);
        m.replicas
            .iter()
            .filter(|(_, r)| !r.s_down && !r.link.disconnected())
            .filter_map(|(k, r)| Some(format!("slave {k}: {}", history_refusal(judged, r)?)))
            .collect()
    }

    /// SENTINEL FAILOVER: Sentinel's checks (-INPROG, -NOGOODSLAVE), then a
    /// manual failover is proposed to the group (`failover::manual_failover`);
    /// without a group nothing can be committed and the reply says NOQUORUM.
    /// SENTINEL FAILOVER; `coordinated` (Valkey's `COORDINATED` argument)
    /// asks for the coordinated switchover even on a master set
    /// `coordinated-failover no`.
    pub fn failover(
        &mut self,
        name: &str,
        coordinated: bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> Result<(), CmdError> {
        let mi = self.master_idx(name)?;
        self.manual_failover(mi, coordinated, false, now, out)
    }

    /// SENTINEL FAILOVER <master> FORCE: a failover whose selection waives
    /// the history rules, for an operator who accepts losing the recorded
    /// history (every node that had it is gone). Plain (not coordinated):
    /// the master is usually down.
    pub fn failover_forced(
        &mut self,
        name: &str,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> Result<(), CmdError> {
        let mi = self.master_idx(name)?;
        self.manual_failover(mi, false, true, now, out)
    }

    /// SENTINEL CONFIG GET: parameters whose name `matches`, in Sentinel's
    /// fixed order.
    pub fn config_get(&self, matches: &dyn Fn(&str) -> bool) -> Vec<(&'static str, String)> {
        let g = &self.globals;
        let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
        let all = [
            ("resolve-hostnames", yn(g.resolve_hostnames)),
            ("announce-hostnames", yn(g.announce_hostnames)),
            ("announce-ip", g.announce_ip.clone().unwrap_or_default()),
            ("announce-port", g.announce_port.to_string()),
            ("sentinel-user", g.sentinel_user.clone().unwrap_or_default()),
            ("sentinel-pass", g.sentinel_pass.clone().unwrap_or_default()),
        ];
        all.into_iter().filter(|(k, _)| matches(k)).collect()
    }

    /// SENTINEL CONFIG SET (7.0: one pair). Queues the flush, then the
    /// disconnection of every peer-sentinel link when their credentials
    /// changed.
    pub fn config_set(
        &mut self,
        param: &str,
        value: &str,
        out: &mut Vec<Action>,
    ) -> Result<(), CmdError> {
        let bad = || {
            CmdError::err(format!(
                "Invalid value '{value}' to SENTINEL CONFIG SET '{param}'"
            ))
        };
        let yesno = |v: &str| match v.to_ascii_lowercase().as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        let g = &mut self.globals;
        let mut drop_conns = false;
        match param.to_ascii_lowercase().as_str() {
            "resolve-hostnames" => g.resolve_hostnames = yesno(value).ok_or_else(bad)?,
            "announce-hostnames" => g.announce_hostnames = yesno(value).ok_or_else(bad)?,
            // 7.0 quirk kept: "" stores an empty announce IP.
            "announce-ip" => g.announce_ip = Some(value.to_string()),
            "announce-port" => {
                let n = parse_ll(value).ok_or_else(bad)?;
                g.announce_port = u16::try_from(n).map_err(|_| bad())?;
            }
            "sentinel-user" => {
                g.sentinel_user = (!value.is_empty()).then(|| value.to_string());
                drop_conns = true;
            }
            "sentinel-pass" => {
                g.sentinel_pass = (!value.is_empty()).then(|| value.to_string());
                drop_conns = true;
            }
            _ => {
                return Err(CmdError::err(format!(
                    "Invalid argument '{param}' to SENTINEL CONFIG SET"
                )))
            }
        }
        out.push(Action::Flush);
        if drop_conns {
            for m in self.masters.values_mut() {
                for s in m.sentinels.values_mut() {
                    s.link.cmd_lost();
                    out.push(Action::Disconnect {
                        id: s.id,
                        link: Some(LinkKind::Command),
                    });
                }
            }
        }
        Ok(())
    }

    /// SENTINEL DEBUG without arguments.
    pub fn debug_info(&self) -> Vec<(&'static str, u64)> {
        let t = &self.timing;
        let v = [
            t.info_period,
            t.ping_period,
            t.ask_period,
            t.publish_period,
            t.default_down_after,
            t.default_failover_timeout,
            t.tilt_trigger,
            t.tilt_period,
            t.slave_reconf_timeout,
            t.min_link_reconnect_period,
            t.election_timeout,
            t.script_max_runtime,
            t.script_retry_delay,
        ];
        DEBUG_PARAMS.iter().map(|(n, _)| *n).zip(v).collect()
    }

    /// SENTINEL DEBUG <param> <value> ...: pairs applied in order; an error
    /// leaves the earlier ones applied.
    pub fn debug_set(&mut self, args: &[String]) -> Result<(), CmdError> {
        let mut j = 0;
        while j < args.len() {
            let option = args[j].as_str();
            let lower = option.to_ascii_lowercase();
            let known = DEBUG_PARAMS.iter().any(|(_, n)| *n == lower);
            if !known || j + 1 >= args.len() {
                return Err(CmdError::err(format!(
                    "Unknown option or number of arguments for SENTINEL DEBUG '{option}'"
                )));
            }
            let v = args[j + 1].as_str();
            let n = match parse_ll(v) {
                Some(n) if n > 0 => n as u64,
                _ => {
                    return Err(CmdError::err(format!(
                        "Invalid argument '{v}' for SENTINEL DEBUG '{option}'"
                    )))
                }
            };
            let t = &mut self.timing;
            let field = match lower.as_str() {
                "info-period" => &mut t.info_period,
                "ping-period" => &mut t.ping_period,
                "ask-period" => &mut t.ask_period,
                "publish-period" => &mut t.publish_period,
                "default-down-after" => &mut t.default_down_after,
                "default-failover-timeout" => &mut t.default_failover_timeout,
                "tilt-trigger" => &mut t.tilt_trigger,
                "tilt-period" => &mut t.tilt_period,
                "slave-reconf-timeout" => &mut t.slave_reconf_timeout,
                "min-link-reconnect-period" => &mut t.min_link_reconnect_period,
                "election-timeout" => &mut t.election_timeout,
                "script-max-runtime" => &mut t.script_max_runtime,
                _ => &mut t.script_retry_delay,
            };
            *field = n;
            j += 2;
        }
        Ok(())
    }

    /// SENTINEL SIMULATE-FAILURE: flags reset, then each argument ORed in.
    pub fn simulate_failure(&mut self, args: &[String]) -> Result<SimulateReply, CmdError> {
        self.simfailure_flags = 0;
        for a in args {
            match a.to_ascii_lowercase().as_str() {
                "crash-after-election" => {
                    self.simfailure_flags |= super::failover::SIMFAILURE_CRASH_AFTER_ELECTION
                }
                "crash-after-promotion" => {
                    self.simfailure_flags |= super::failover::SIMFAILURE_CRASH_AFTER_PROMOTION
                }
                "help" => return Ok(SimulateReply::Help),
                _ => return Err(CmdError::err("Unknown failure simulation specified")),
            }
        }
        Ok(SimulateReply::Ok)
    }

    pub fn simulate_failure_flags(&self) -> u32 {
        self.simfailure_flags
    }

    /// SENTINEL INFO-CACHE: per requested (known, de-duplicated) master, its
    /// cached INFO then each replica's, with the age in ms. 7.0 quirk kept: a
    /// replica's age is computed only when the master has INFO at all.
    pub fn info_cache(&self, names: &[String], now: Millis) -> InfoCache {
        let mut seen: Vec<&str> = Vec::new();
        let mut res = Vec::new();
        for n in names {
            let Some(m) = self.masters.get(n.as_str()) else {
                continue;
            };
            if seen.contains(&n.as_str()) {
                continue;
            }
            seen.push(n);
            let age = |i: &Instance| -> i64 {
                match m.inst.info_refresh {
                    Some(_) => now.saturating_sub(i.info_refresh.unwrap_or(0)) as i64,
                    None => 0,
                }
            };
            let mut items = vec![(age(&m.inst), m.inst.info.clone())];
            items.extend(m.replicas.values().map(|r| (age(r), r.info.clone())));
            res.push((m.inst.name.clone(), items));
        }
        res
    }
}
