//! The pods' role labels from the group's committed state, without I/O:
//! what this daemon sees (the committed master's epoch, whether this pod
//! holds it, the pods' current labels) in, the merge patches to send out.
//! The Kubernetes code (`crate::kube`, cargo feature `k8s`) lists the pods,
//! calls [`plan`] and sends its patches in order, each conditional on the
//! `resourceVersion` it was planned from.
//!
//! The rules, so that a Service selecting the master value never has two
//! endpoints once a promotion is committed:
//! - a daemon out of touch with its group patches nothing (its view may be
//!   a switch behind);
//! - a pod carries the master value with the config epoch it was given for
//!   (annotation [`EPOCH_ANNOTATION`]); one labelled master for an older
//!   epoch than the committed one is stale, and is patched to the unhealthy
//!   value by the Raft leader and by the daemon of the new master's pod;
//! - the master value is given only once no other pod carries it: the
//!   demotions come first in the plan, and the patches stop at the first
//!   one that fails;
//! - a pod labelled master for a newer epoch than this daemon's committed
//!   one means this daemon is behind: it patches nothing;
//! - each daemon labels its own pod; the Raft leader also labels the pods it
//!   can name (the committed master's and its replicas', by the first label
//!   of their host names), so a pod whose daemon is down is labelled too.

use std::collections::BTreeMap;

pub use crate::config::LabelSpec;

/// Every Kubernetes API call the `k8s` feature makes, as (API group,
/// resource, verb, the component under deploy/components whose Role or
/// ClusterRole grants it): each grants exactly its calls
/// (tests/it/deploy.rs checks both ways).
pub const API_CALLS: &[(&str, &str, &str, &str)] = &[
    // This daemon's pod: its uid for Events, its labels for the selector.
    ("", "pods", "get", "kubernetes-api"),
    // The set's pods and their labels.
    ("", "pods", "list", "kubernetes-api"),
    // The role labels, the epoch annotation and the pod's own Redis.
    ("", "pods", "patch", "kubernetes-api"),
    ("", "events", "create", "kubernetes-api"),
    // `statefulset`: its `spec.replicas`, which the peer list follows.
    ("apps", "statefulsets", "get", "kubernetes-api"),
    // `drain-switchover`: whether this pod's node is cordoned or tainted.
    ("", "nodes", "get", "drain-switchover"),
];

/// The annotation that fences a pod's Redis (`"true"`): the Raft leader
/// puts the fenced pods' nodes in the master's `fenced-nodes`.
pub const FENCED_ANNOTATION: &str = "raftinel.io/fenced";

/// The annotation in which each daemon names its pod's Redis (`host:port`,
/// as the group knows the node): how the Raft leader finds a node's pod.
pub const REDIS_ANNOTATION: &str = "raftinel.io/redis";

/// The annotation holding the config epoch of a pod's master label.
pub const EPOCH_ANNOTATION: &str = "raftinel.io/config-epoch";

/// The value `spec` gives `role`.
fn value(spec: &LabelSpec, role: Role) -> &str {
    match role {
        Role::Master => &spec.master,
        Role::Replica => &spec.replica,
        Role::Unhealthy => &spec.unhealthy,
    }
}

/// A pod's role as the labels say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Master,
    Replica,
    Unhealthy,
}

/// A pod as listed: its resourceVersion, labels and the epoch annotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    pub epoch: Option<u64>,
    /// Annotated [`FENCED_ANNOTATION`]`: "true"`.
    pub fenced: bool,
    /// Its Redis as its daemon announced it ([`REDIS_ANNOTATION`]).
    pub redis: Option<String>,
}

impl Seen {
    /// Whether any of the label schemes marks this pod master.
    fn is_master(&self, specs: &[LabelSpec]) -> bool {
        specs
            .iter()
            .any(|s| self.labels.get(&s.key) == Some(&s.master))
    }

    /// Whether every scheme already says `role` (and, for a master, the
    /// epoch annotation says `epoch`).
    fn says(&self, specs: &[LabelSpec], role: Role, epoch: u64) -> bool {
        specs
            .iter()
            .all(|s| self.labels.get(&s.key).map(String::as_str) == Some(value(s, role)))
            && (role != Role::Master || self.epoch == Some(epoch))
    }
}

/// What this daemon knows from the committed state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// In touch with its group (it heard a leader within its lease).
    pub in_touch: bool,
    /// This daemon is the Raft leader.
    pub leader: bool,
    /// The committed config epoch of the labelled master.
    pub epoch: u64,
    /// A failover of that master is committed and runs: no pod is labelled
    /// master until its switch, and the leader demotes the current one.
    pub failover: bool,
    /// The roles this daemon answers for: its own pod's (if known), and
    /// for the leader every pod it can name.
    pub roles: BTreeMap<String, Role>,
}

/// One merge patch: the pod, the resourceVersion it was planned from, the
/// labels to set and the epoch annotation (`Some(None)` removes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub pod: String,
    pub resource_version: String,
    pub role: Role,
    pub labels: Vec<(String, String)>,
    pub epoch: Option<Option<u64>>,
}

impl Patch {
    fn new(pod: &Seen, role: Role, epoch: u64, specs: &[LabelSpec]) -> Patch {
        Patch {
            pod: pod.name.clone(),
            resource_version: pod.resource_version.clone(),
            role,
            labels: specs
                .iter()
                .map(|s| (s.key.clone(), value(s, role).to_string()))
                .collect(),
            epoch: match role {
                Role::Master => Some(Some(epoch)),
                _ if pod.epoch.is_some() => Some(None),
                _ => None,
            },
        }
    }

    /// The JSON merge patch body (RFC 7386), resourceVersion included so
    /// that the API server refuses it if the pod changed since it was read.
    pub fn body(&self) -> serde_json::Value {
        let labels: serde_json::Map<String, serde_json::Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut meta = serde_json::json!({
            "resourceVersion": self.resource_version,
            "labels": labels,
        });
        if let Some(e) = self.epoch {
            meta["annotations"] = serde_json::json!({
                EPOCH_ANNOTATION: e.map(|e| e.to_string()),
            });
        }
        serde_json::json!({ "metadata": meta })
    }
}

/// The patches that bring the pods' labels to the committed roles, in the
/// order they must be sent (demotions first); empty when nothing is to do
/// or this daemon must not act.
pub fn plan(view: &View, pods: &[Seen], specs: &[LabelSpec]) -> Vec<Patch> {
    if !view.in_touch || specs.is_empty() {
        return Vec::new();
    }
    // A master label for a newer epoch: this daemon is behind.
    if pods
        .iter()
        .any(|p| p.is_master(specs) && p.epoch.is_some_and(|e| e > view.epoch))
    {
        return Vec::new();
    }
    // The pod to label master: none while a failover runs.
    let target = view
        .roles
        .iter()
        .find(|(_, r)| **r == Role::Master)
        .map(|(n, _)| n.as_str())
        .filter(|_| !view.failover);
    let mut out = Vec::new();
    // Stale masters: the leader demotes those of older epochs, and every
    // master label once a failover runs; the daemon about to label the new
    // master (its own pod's, or the leader) demotes every other one (none
    // is newer: that returned above).
    for p in pods {
        if !p.is_master(specs) || target == Some(p.name.as_str()) {
            continue;
        }
        let older = p.epoch.is_none_or(|e| e < view.epoch);
        if (view.leader && (older || view.failover)) || target.is_some() {
            out.push(Patch::new(p, Role::Unhealthy, view.epoch, specs));
        }
    }
    for p in pods {
        let Some(&role) = view.roles.get(&p.name) else {
            continue;
        };
        if role == Role::Master || p.says(specs, role, view.epoch) {
            continue;
        }
        // A stale master being demoted above is not also relabelled here.
        if out.iter().any(|d| d.pod == p.name) {
            continue;
        }
        out.push(Patch::new(p, role, view.epoch, specs));
    }
    if let Some(name) = target {
        if let Some(p) = pods.iter().find(|p| p.name == name) {
            if !p.says(specs, Role::Master, view.epoch) {
                out.push(Patch::new(p, Role::Master, view.epoch, specs));
            }
        }
    }
    out
}

/// The pods this daemon answers for whose labels differ from the committed
/// role (the drift metric).
pub fn drift(view: &View, pods: &[Seen], specs: &[LabelSpec]) -> usize {
    view.roles
        .iter()
        .filter(|(name, role)| {
            pods.iter()
                .find(|p| &p.name == *name)
                .is_none_or(|p| !p.says(specs, **role, view.epoch))
        })
        .count()
}

/// The pod whose Redis is `addr` (`host:port`): the one whose daemon
/// announced it ([`REDIS_ANNOTATION`]), else by the first label of a pod DNS
/// name (`<pod>.<headless service>.<namespace>...`).
pub fn pod_of<'a>(addr: &str, pods: &'a [Seen]) -> Option<&'a str> {
    if let Some(p) = pods.iter().find(|p| {
        p.redis
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(addr))
    }) {
        return Some(&p.name);
    }
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let first = host.split('.').next()?;
    pods.iter()
        .find(|p| p.name.eq_ignore_ascii_case(first) && host.contains('.'))
        .map(|p| p.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<LabelSpec> {
        vec![LabelSpec::parse("raftinel").unwrap()]
    }

    fn pod(name: &str, role: Option<&str>, epoch: Option<u64>) -> Seen {
        Seen {
            name: name.into(),
            resource_version: format!("rv-{name}"),
            labels: role
                .map(|r| BTreeMap::from([("raftinel.io/role".to_string(), r.to_string())]))
                .unwrap_or_default(),
            epoch,
            fenced: false,
            redis: None,
        }
    }

    fn view(leader: bool, epoch: u64, roles: &[(&str, Role)]) -> View {
        View {
            in_touch: true,
            leader,
            epoch,
            failover: false,
            roles: roles.iter().map(|(n, r)| (n.to_string(), *r)).collect(),
        }
    }

    fn summary(p: &[Patch]) -> Vec<(String, Role)> {
        p.iter().map(|p| (p.pod.clone(), p.role)).collect()
    }

    #[test]
    fn presets_and_custom_specs() {
        let b = LabelSpec::parse("bitnami").unwrap();
        assert_eq!((b.key.as_str(), b.master.as_str()), ("isMaster", "true"));
        let c = LabelSpec::parse("example.com/role=primary/standby/fenced").unwrap();
        assert_eq!(c.replica, "standby");
        for bad in [
            "nope",
            "k=a/b",
            "k=a/a/c",
            "Bad_Prefix/k=a/b/c",
            "k=-a/b/c",
            "=a/b/c",
        ] {
            assert!(LabelSpec::parse(bad).is_err(), "{bad}");
        }
    }

    /// After a switch to pod 1 (epoch 2), its daemon demotes the old master
    /// first, then labels itself; nothing else.
    #[test]
    fn the_new_master_demotes_the_old_one_first() {
        let pods = [
            pod("p0", Some("master"), Some(1)),
            pod("p1", Some("replica"), None),
        ];
        let p = plan(&view(false, 2, &[("p1", Role::Master)]), &pods, &specs());
        assert_eq!(
            summary(&p),
            vec![("p0".into(), Role::Unhealthy), ("p1".into(), Role::Master)]
        );
        assert_eq!(p[0].resource_version, "rv-p0");
        assert_eq!(
            p[1].body(),
            serde_json::json!({"metadata": {"resourceVersion": "rv-p1",
                "labels": {"raftinel.io/role": "master"},
                "annotations": {EPOCH_ANNOTATION: "2"}}})
        );
        // The old master's annotation is removed with its label.
        assert_eq!(
            p[0].body()["metadata"]["annotations"][EPOCH_ANNOTATION],
            serde_json::Value::Null
        );
    }

    /// A replica's daemon labels only its own pod; it demotes nobody.
    #[test]
    fn a_replica_labels_only_itself() {
        let pods = [
            pod("p0", Some("master"), Some(1)),
            pod("p1", None, None),
            pod("p2", None, None),
        ];
        let p = plan(&view(false, 2, &[("p2", Role::Replica)]), &pods, &specs());
        assert_eq!(summary(&p), vec![("p2".into(), Role::Replica)]);
        // The leader also demotes the stale master and labels what it can name.
        let v = view(
            true,
            2,
            &[
                ("p0", Role::Replica),
                ("p1", Role::Master),
                ("p2", Role::Replica),
            ],
        );
        assert_eq!(
            summary(&plan(&v, &pods, &specs())),
            vec![
                ("p0".into(), Role::Unhealthy),
                ("p2".into(), Role::Replica),
                ("p1".into(), Role::Master)
            ]
        );
    }

    /// A failover committed: the leader demotes the master's pod before any
    /// promotion, and nobody labels a master until the switch.
    #[test]
    fn a_running_failover_leaves_no_master_label() {
        let pods = [
            pod("p0", Some("master"), Some(1)),
            pod("p1", Some("replica"), None),
        ];
        let mut v = view(true, 1, &[("p0", Role::Master), ("p1", Role::Replica)]);
        v.failover = true;
        assert_eq!(
            summary(&plan(&v, &pods, &specs())),
            vec![("p0".into(), Role::Unhealthy)]
        );
        // The master's own daemon, not the leader: no patch at all.
        let mut own = view(false, 1, &[("p0", Role::Master)]);
        own.failover = true;
        assert!(plan(&own, &pods, &specs()).is_empty());
        // Aborted: it labels itself again.
        own.failover = false;
        let pods = [pod("p0", Some("unhealthy"), None)];
        assert_eq!(
            summary(&plan(&own, &pods, &specs())),
            vec![("p0".into(), Role::Master)]
        );
    }

    /// Out of touch, or behind a newer master label: nothing.
    #[test]
    fn a_daemon_behind_patches_nothing() {
        let pods = [
            pod("p0", Some("master"), Some(1)),
            pod("p1", Some("master"), Some(3)),
        ];
        let mut v = view(true, 1, &[("p0", Role::Master)]);
        assert!(plan(&v, &pods, &specs()).is_empty());
        v.epoch = 3;
        v.in_touch = false;
        assert!(plan(&v, &pods, &specs()).is_empty());
    }

    /// Everything already right: no patch, no drift.
    #[test]
    fn settled_labels_need_nothing() {
        let pods = [
            pod("p0", Some("master"), Some(2)),
            pod("p1", Some("replica"), None),
        ];
        let v = view(true, 2, &[("p0", Role::Master), ("p1", Role::Replica)]);
        assert!(plan(&v, &pods, &specs()).is_empty());
        assert_eq!(drift(&v, &pods, &specs()), 0);
        let v = view(true, 3, &[("p0", Role::Replica), ("p1", Role::Master)]);
        assert_eq!(drift(&v, &pods, &specs()), 2);
    }

    /// Two schemes at once (a selector migration): both in every patch; a
    /// pod is master when either says so.
    #[test]
    fn two_schemes_are_patched_together() {
        let specs = vec![
            LabelSpec::parse("raftinel").unwrap(),
            LabelSpec::parse("bitnami").unwrap(),
        ];
        let mut old = pod("p0", None, Some(1));
        old.labels.insert("isMaster".into(), "true".into());
        let pods = [old, pod("p1", None, None)];
        let p = plan(&view(false, 2, &[("p1", Role::Master)]), &pods, &specs);
        assert_eq!(
            p[0].labels,
            vec![
                ("raftinel.io/role".to_string(), "unhealthy".to_string()),
                ("isMaster".to_string(), "false".to_string())
            ]
        );
        assert_eq!(p[1].role, Role::Master);
    }

    #[test]
    fn pods_are_named_by_their_annotation_or_dns_names() {
        let mut pods = [pod("raftinel-0", None, None), pod("raftinel-1", None, None)];
        assert_eq!(
            pod_of(
                "raftinel-1.raftinel-headless.ns.svc.cluster.local:6379",
                &pods
            ),
            Some("raftinel-1")
        );
        assert_eq!(pod_of("10.0.0.1:6379", &pods), None);
        assert_eq!(pod_of("raftinel-1:6379", &pods), None);
        pods[0].redis = Some("10.0.0.1:6379".into());
        assert_eq!(pod_of("10.0.0.1:6379", &pods), Some("raftinel-0"));
    }
}
