//! Who this daemon is when it runs in a pod: the downward API gives it the
//! pod's name, namespace and IP (`RAFTINEL_POD_NAME`, `_NAMESPACE`, `_IP`).
//!
//! The pod's name is stable across restarts and IP changes (a StatefulSet's
//! ordinal), so it is the identity: with no myid in its learned state, the
//! daemon's myid is the SHA-1 of the pod name (the same rule as the bitnami
//! chart's sentinels, whose myid is `sha1(hostname)`), and the Raft node id
//! a new incarnation gets is random as everywhere else. The pod IP is only
//! reported (logs, `ctl status`), never given to anyone as an address: peers
//! and clients reach a pod by its DNS name.

use sha1::{Digest, Sha1};

pub const POD_NAME_ENV: &str = "RAFTINEL_POD_NAME";
pub const POD_NAMESPACE_ENV: &str = "RAFTINEL_POD_NAMESPACE";
pub const POD_IP_ENV: &str = "RAFTINEL_POD_IP";
/// The node the pod runs on (drain awareness of the `k8s` feature).
pub const NODE_NAME_ENV: &str = "RAFTINEL_NODE_NAME";

/// The pod this process runs in, as the downward API describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pod {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub ip: Option<String>,
    #[serde(default)]
    pub node: Option<String>,
}

impl Pod {
    /// From the environment (an empty variable counts as unset).
    pub fn from_env() -> Pod {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Pod {
            name: var(POD_NAME_ENV),
            namespace: var(POD_NAMESPACE_ENV),
            ip: var(POD_IP_ENV),
            node: var(NODE_NAME_ENV),
        }
    }
}

/// The myid of the daemon running in pod `name`: 40 hex digits.
pub fn myid_for_pod(name: &str) -> String {
    hex::encode(Sha1::digest(name.as_bytes()))
}

/// Fills in the myid from the pod's name when the learned state has none;
/// returns the log line saying so.
pub fn apply(state: &mut crate::config::PersistedState, pod: &Pod) -> Option<String> {
    if state.myid.is_some() {
        return None;
    }
    let name = pod.name.as_ref()?;
    let myid = myid_for_pod(name);
    let line = format!("Sentinel ID taken from the pod name {name} ({POD_NAME_ENV})");
    state.myid = Some(myid);
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn myid_is_sha1_of_the_pod_name() {
        // printf raftinel-0 | sha1sum
        assert_eq!(
            myid_for_pod("raftinel-0"),
            "c390bf187f38f0665731e21d319c86e5403442c6"
        );
        let mut st = crate::config::PersistedState::default();
        let pod = Pod {
            name: Some("raftinel-2".into()),
            ..Pod::default()
        };
        assert!(apply(&mut st, &pod).is_some());
        assert_eq!(
            st.myid.as_deref(),
            Some(myid_for_pod("raftinel-2").as_str())
        );
        // A myid already learned is kept.
        st.myid = Some("a".repeat(40));
        assert!(apply(&mut st, &pod).is_none());
        assert_eq!(st.myid.as_deref(), Some("a".repeat(40).as_str()));
    }
}
