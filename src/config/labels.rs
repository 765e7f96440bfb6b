//! `[kubernetes] role-labels`: the role label schemes the daemons set on
//! their pods (cargo feature `k8s`; the plan is `pod::labels`).

/// One role label: its key and its three values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSpec {
    pub key: String,
    pub master: String,
    pub replica: String,
    pub unhealthy: String,
}

/// The label schemes of the manifests and tools users migrate from
/// (`[kubernetes] role-labels`).
pub const PRESETS: &[(&str, [&str; 4])] = &[
    // deploy/base's Services.
    (
        "raftinel",
        ["raftinel.io/role", "master", "replica", "unhealthy"],
    ),
    // The bitnami chart's kubectl sidecar (`isMaster`).
    ("bitnami", ["isMaster", "true", "false", "false"]),
    // spotahome/redis-operator.
    (
        "spotahome",
        ["redisfailovers-role", "master", "slave", "unhealthy"],
    ),
    // OT-CONTAINER-KIT/redis-operator.
    ("opstree", ["redis-role", "master", "slave", "unhealthy"]),
];

impl LabelSpec {
    /// A preset name, or `key=master/replica/unhealthy`.
    pub fn parse(s: &str) -> Result<LabelSpec, String> {
        if let Some((_, [k, m, r, u])) = PRESETS.iter().find(|(n, _)| *n == s) {
            return Ok(LabelSpec {
                key: k.to_string(),
                master: m.to_string(),
                replica: r.to_string(),
                unhealthy: u.to_string(),
            });
        }
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        let bad = || {
            format!(
                "role label '{s}' is neither a preset ({}) nor key=master/replica/unhealthy",
                names.join(", ")
            )
        };
        let (key, values) = s.split_once('=').ok_or_else(bad)?;
        let v: Vec<&str> = values.split('/').collect();
        let [m, r, u] = v.as_slice() else {
            return Err(bad());
        };
        if !valid_key(key) || ![m, r, u].iter().all(|x| valid_value(x)) || m == r || m == u {
            return Err(bad());
        }
        Ok(LabelSpec {
            key: key.to_string(),
            master: m.to_string(),
            replica: r.to_string(),
            unhealthy: u.to_string(),
        })
    }
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && v.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// A label key: an optional DNS prefix and `/`, then a name that is a
/// non-empty label value.
fn valid_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    !name.is_empty()
        && valid_value(name)
        && prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
        })
}
