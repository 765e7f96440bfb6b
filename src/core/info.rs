//! Parsing the INFO reply of a master or replica into the few fields Sentinel
//! uses. Only the reading is here; what the core does with the result lives
//! in `discovery.rs`.
//!
//! Parsing follows redis-sentinel line by line, including its quirk that the
//! replica fields (`master_host:` ...) are read only after the `role:slave`
//! line, and its C number parsing (`atoi`: leading digits, garbage = 0).

use super::instance::Role;

/// What one INFO text says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedInfo {
    pub run_id: Option<String>,
    /// `slaveN:` lines of a master, as (ip, port) in order of appearance.
    pub slaves: Vec<(String, i64)>,
    /// `master_link_down_since_seconds` × 1000, 0 when absent.
    pub master_link_down_since: i64,
    pub role: Option<Role>,
    pub master_host: Option<String>,
    pub master_port: Option<i64>,
    pub master_link_up: Option<bool>,
    pub slave_priority: Option<i64>,
    pub slave_repl_offset: Option<u64>,
    pub replica_announced: Option<i64>,
    /// Replication history (any role): `master_replid`, `master_replid2` and
    /// `master_repl_offset`. The failover's safety rules compare a replica's
    /// history and offset with the master's last known ones.
    pub master_replid: Option<String>,
    pub master_replid2: Option<String>,
    pub master_repl_offset: Option<u64>,
    /// What the node loaded at its start: `aof_enabled` and
    /// `rdb_last_load_keys_loaded` (Redis 7.0), and the keys its `# Keyspace`
    /// section counts (None when the reply has no such section).
    pub aof_enabled: Option<bool>,
    pub rdb_keys_loaded: Option<u64>,
    pub keys: Option<u64>,
}

impl ParsedInfo {
    /// Whether the node started without data: no AOF and an RDB load of no
    /// key (none loaded, whatever was written since), or with an AOF (whose
    /// load Redis does not count) and no key at all now.
    pub fn started_empty(&self) -> bool {
        match self.aof_enabled {
            Some(false) => self.rdb_keys_loaded == Some(0),
            Some(true) => self.keys == Some(0),
            None => false,
        }
    }
}

/// C `atoi`/`strtoll`: optional spaces and sign, then leading digits; anything
/// else ends the number (no digits = 0). Saturates instead of overflowing.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

/// C `strtoull` restricted to what INFO can carry: leading digits.
fn atou(s: &str) -> u64 {
    let mut n: u64 = 0;
    for b in s.trim_start().bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    n
}

/// Parses an INFO reply. `is_master` = the instance is monitored as a master
/// (only then are `slaveN:` lines used: replicas of replicas are never
/// discovered).
pub fn parse(text: &str, is_master: bool) -> ParsedInfo {
    let mut p = ParsedInfo::default();
    let mut role: Option<Role> = None;
    for line in text.split('\n') {
        let l = line.strip_suffix('\r').unwrap_or(line);
        if l.len() >= 47 && l.starts_with("run_id:") {
            if let Some(id) = l.get(7..47) {
                p.run_id = Some(id.to_string());
            }
        }
        if is_master
            && l.len() >= 7
            && l.starts_with("slave")
            && l.as_bytes().get(5).is_some_and(u8::is_ascii_digit)
        {
            if let Some(s) = parse_slave_line(l) {
                p.slaves.push(s);
            }
        }
        if l.len() >= 32 && l.starts_with("master_link_down_since_seconds") {
            p.master_link_down_since = l.get(31..).map(atoi).unwrap_or(0).saturating_mul(1000);
        }
        if let Some(v) = l.strip_prefix("master_replid:") {
            p.master_replid = Some(v.trim().to_string());
        }
        if let Some(v) = l.strip_prefix("master_replid2:") {
            p.master_replid2 = Some(v.trim().to_string());
        }
        if let Some(v) = l.strip_prefix("master_repl_offset:") {
            p.master_repl_offset = Some(atou(v));
        }
        if let Some(v) = l.strip_prefix("aof_enabled:") {
            p.aof_enabled = Some(atoi(v) != 0);
        }
        if let Some(v) = l.strip_prefix("rdb_last_load_keys_loaded:") {
            p.rdb_keys_loaded = Some(atou(v));
        }
        if l.starts_with("# Keyspace") {
            p.keys = Some(0);
        }
        if let Some(keys) = keyspace_keys(l) {
            p.keys = Some(p.keys.unwrap_or(0).saturating_add(keys));
        }
        if l.starts_with("role:master") {
            role = Some(Role::Master);
        } else if l.starts_with("role:slave") {
            role = Some(Role::Slave);
        }
        if role == Some(Role::Slave) {
            if let Some(v) = l.strip_prefix("master_host:") {
                p.master_host = Some(v.to_string());
            }
            if let Some(v) = l.strip_prefix("master_port:") {
                p.master_port = Some(atoi(v));
            }
            if let Some(v) = l.strip_prefix("master_link_status:") {
                p.master_link_up = Some(v.get(..2).is_some_and(|s| s.eq_ignore_ascii_case("up")));
            }
            if let Some(v) = l.strip_prefix("slave_priority:") {
                p.slave_priority = Some(atoi(v));
            }
            if let Some(v) = l.strip_prefix("slave_repl_offset:") {
                p.slave_repl_offset = Some(atou(v));
            }
            if let Some(v) = l.strip_prefix("replica_announced:") {
                p.replica_announced = Some(atoi(v));
            }
        }
    }
    p.role = role;
    p
}

/// The keys of a `db0:keys=3,expires=0,avg_ttl=0` line.
fn keyspace_keys(l: &str) -> Option<u64> {
    let rest = l.strip_prefix("db")?;
    let (db, fields) = rest.split_once(':')?;
    if db.is_empty() || !db.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    fields.strip_prefix("keys=").map(atou)
}

/// `slave0:ip=127.0.0.1,port=6380,state=online,...` (Redis ≥ 2.8) or the old
/// `slave0:127.0.0.1,6380,online`.
fn parse_slave_line(l: &str) -> Option<(String, i64)> {
    if let Some(ip_at) = l.find("ip=") {
        let port_at = l.find("port=")?;
        let ip_rest = &l[ip_at + 3..];
        let ip = ip_rest.split(',').next().unwrap_or("");
        let port_rest = &l[port_at + 5..];
        let port = port_rest.split(',').next().unwrap_or("");
        Some((ip.to_string(), atoi(port)))
    } else {
        let (_, rest) = l.split_once(':')?;
        let (ip, rest) = rest.split_once(',')?;
        let (port, _) = rest.split_once(',')?;
        Some((ip.to_string(), atoi(port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("6380"), 6380);
        assert_eq!(atoi("-1"), -1);
        assert_eq!(atoi("12abc"), 12);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn replica_lines_both_formats() {
        let new = "role:master\r\nslave0:ip=127.0.0.1,port=6380,state=online,offset=1,lag=0\r\nslave1:ip=::1,port=6381,state=online\r\n";
        let p = parse(new, true);
        assert_eq!(
            p.slaves,
            vec![("127.0.0.1".into(), 6380), ("::1".into(), 6381)]
        );
        let old = "slave0:10.0.0.2,6390,online\r\nslave1:10.0.0.3,6391\r\n";
        let p = parse(old, true);
        assert_eq!(p.slaves, vec![("10.0.0.2".into(), 6390)]);
        // Replicas of replicas are never discovered.
        assert!(parse(new, false).slaves.is_empty());
        // `slaveof`-like keys without a digit are not replica lines.
        assert!(parse("slave_read_only:1\r\n", true).slaves.is_empty());
    }

    #[test]
    fn replica_fields_only_after_role_line() {
        let t = "master_host:1.2.3.4\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:up\r\nslave_priority:0\r\nslave_repl_offset:1234\r\nreplica_announced:0\r\nmaster_link_down_since_seconds:-1\r\n";
        let p = parse(t, false);
        assert_eq!(p.role, Some(Role::Slave));
        assert_eq!(p.master_host.as_deref(), Some("10.0.0.1"));
        assert_eq!(p.master_port, Some(6379));
        assert_eq!(p.master_link_up, Some(true));
        assert_eq!(p.slave_priority, Some(0));
        assert_eq!(p.slave_repl_offset, Some(1234));
        assert_eq!(p.replica_announced, Some(0));
        assert_eq!(p.master_link_down_since, -1000);
        let p = parse("master_host:1.2.3.4\r\nrole:master\r\n", false);
        assert_eq!(p.master_host, None);
        assert_eq!(p.role, Some(Role::Master));
    }

    #[test]
    fn replication_history_fields_for_any_role() {
        let t =
            "role:master\r\nmaster_replid:aaaa\r\nmaster_replid2:0000\r\nmaster_repl_offset:42\r\n";
        let p = parse(t, true);
        assert_eq!(p.master_replid.as_deref(), Some("aaaa"));
        assert_eq!(p.master_replid2.as_deref(), Some("0000"));
        assert_eq!(p.master_repl_offset, Some(42));
        let p = parse("role:slave\r\nmaster_replid:bbbb\r\n", false);
        assert_eq!(p.master_replid.as_deref(), Some("bbbb"));
        assert_eq!(p.master_repl_offset, None);
    }

    #[test]
    fn what_the_node_started_with() {
        let info = |aof: u8, loaded: u64, dbs: &str| {
            parse(
                &format!(
                    "# Persistence\r\nloading:0\r\nrdb_last_load_keys_loaded:{loaded}\r\n\
                     aof_enabled:{aof}\r\n# Keyspace\r\n{dbs}"
                ),
                true,
            )
        };
        let p = info(
            0,
            0,
            "db0:keys=3,expires=0,avg_ttl=0\r\ndb2:keys=4,expires=1,avg_ttl=9\r\n",
        );
        assert_eq!(
            (p.aof_enabled, p.rdb_keys_loaded, p.keys),
            (Some(false), Some(0), Some(7))
        );
        assert!(p.started_empty(), "no AOF, no key loaded: written since");
        assert!(!info(0, 5, "").started_empty(), "an RDB loaded keys");
        assert!(info(1, 0, "").started_empty(), "an AOF, no key");
        assert!(!info(1, 0, "db0:keys=1,expires=0,avg_ttl=0\r\n").started_empty());
        let p = parse("# Server\r\nrun_id:x\r\ndbx:keys=1\r\ndb:keys=1\r\n", true);
        assert_eq!((p.aof_enabled, p.keys), (None, None));
        assert!(!p.started_empty(), "unknown: never judged empty");
    }

    #[test]
    fn run_id_needs_full_length() {
        let id = "a".repeat(40);
        assert_eq!(parse(&format!("run_id:{id}\r\n"), true).run_id, Some(id));
        assert_eq!(parse("run_id:abc\r\n", true).run_id, None);
        // Non-ASCII must not panic on a char boundary.
        let weird = format!("run_id:{}é", "b".repeat(39));
        let _ = parse(&weird, true);
    }
}
