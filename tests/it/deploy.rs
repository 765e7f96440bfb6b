//! `deploy/`: the kustomize manifests, checked without a cluster.
//!
//! - Every overlay, and the base with all four components together, renders
//!   with `kubectl kustomize` and validates with `kubernetes-validate --strict`
//!   against Kubernetes 1.29 (the oldest version the native-sidecar component
//!   supports) and the newest version it knows; only the Prometheus Operator's
//!   kinds may be unknown to it (warnings).
//! - The rendered objects fit together: Service selectors and target ports,
//!   the PodDisruptionBudget, the peers in raftinel.toml against `replicas`,
//!   the grace period against the preStop deadlines, volumes and data dirs,
//!   the NetworkPolicy against the traffic the pods need.
//! - Probes, hooks, commands, environment and metrics are the ones
//!   `deploy/contract.toml` lists, and that file agrees with the daemon built
//!   here: what it marks implemented the daemon does, what it marks pending the
//!   daemon does not do yet (so implementing one makes this test ask for the
//!   contract to be updated).
//! - The alert rules pass `promtool check rules` and `promtool test rules`.
//! - The rendered raftinel.toml, with the pods' names mapped to loopback,
//!   runs a group of three daemons over real Redis nodes; its /metrics and
//!   redis_exporter's export every metric the rules and the dashboard use,
//!   except the ones the contract lists as pending.
//!
//! Tools: `RAFTINEL_KUBECTL`, `RAFTINEL_K8S_VALIDATE`, `RAFTINEL_PROMTOOL`
//! and `RAFTINEL_REDIS_EXPORTER` (paths), else `kubectl`,
//! `kubernetes-validate`, `promtool` and `prometheus-redis-exporter` on PATH.
//! `.ci/run` installs them; a missing one fails the test under CI and prints
//! a skip line otherwise.

use crate::harness::*;
use serde::Deserialize;
use serde_json::Value as J;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_dir() -> PathBuf {
    repo().join("deploy")
}

// ---------------------------------------------------------------- contract

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Implemented,
    Pending,
    /// Only with components/kubernetes-api (a metric of the `k8s` feature).
    #[serde(rename = "kubernetes-api")]
    KubernetesApi,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Contract {
    admin_port: u16,
    redis_port: u16,
    sentinel_port: u16,
    role_label: String,
    role_values: Vec<String>,
    grace_margin_seconds: i64,
    odown_alert_periods: u64,
    http: Vec<HttpPath>,
    command: Vec<CliCommand>,
    env: Vec<EnvVar>,
    config: Vec<Feature>,
    metric: Vec<Metric>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpPath {
    path: String,
    #[serde(default)]
    query: Vec<String>,
    status: Status,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CliCommand {
    words: Vec<String>,
    #[serde(default)]
    flags: Vec<String>,
    status: Status,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvVar {
    name: String,
    field: Option<String>,
    status: Status,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Feature {
    feature: String,
    status: Status,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metric {
    name: String,
    status: Status,
}

fn contract() -> &'static Contract {
    static C: OnceLock<Contract> = OnceLock::new();
    C.get_or_init(|| {
        let path = deploy_dir().join("contract.toml");
        let text = fs::read_to_string(&path).expect("read deploy/contract.toml");
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

impl Contract {
    fn feature(&self, name: &str) -> Status {
        self.config
            .iter()
            .find(|f| f.feature == name)
            .unwrap_or_else(|| panic!("contract.toml has no config feature {name}"))
            .status
    }

    fn pending_metrics(&self) -> BTreeSet<String> {
        self.metrics_of(Status::Pending)
    }

    fn metrics_of(&self, status: Status) -> BTreeSet<String> {
        self.metric
            .iter()
            .filter(|m| m.status == status)
            .map(|m| m.name.clone())
            .collect()
    }

    /// The contract command a raftinel argv (without the program) invokes:
    /// the longest `words` prefix, else the daemon form when the first word
    /// is a path.
    fn command_for(&self, args: &[String]) -> Option<&CliCommand> {
        self.command
            .iter()
            .filter(|c| !c.words.is_empty() && args.starts_with(&c.words))
            .max_by_key(|c| c.words.len())
            .or_else(|| {
                let first = args.first()?;
                if first.contains('/') && !first.starts_with('-') {
                    self.command.iter().find(|c| c.words.is_empty())
                } else {
                    None
                }
            })
    }
}

// ---------------------------------------------------------------- tools

/// A tool named by `env` (a path), else `name` on PATH; `None` after a skip
/// line (or a panic under CI) when it is missing.
pub(crate) fn tool(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env}={} is not a file", p.display());
        return Some(p);
    }
    match which(name) {
        Some(p) => Some(p),
        None => {
            skip_or_fail(name);
            None
        }
    }
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------- rendering

/// One rendered kustomization: an overlay, or the base with every component.
pub(crate) struct Variant {
    pub(crate) name: String,
    pub(crate) yaml: String,
    pub(crate) docs: Vec<J>,
}

/// The components in the order the composite variant applies them.
const COMPONENTS: [&str; 6] = [
    "monitoring",
    "network-policy",
    "zone-spread",
    "native-sidecar",
    "kubernetes-api",
    "drain-switchover",
];
const ALL_COMPONENTS: &str = "base+all-components";
/// The dev overlay with components/kubernetes-api.
pub(crate) const DEV_API: &str = "dev+kubernetes-api";

fn render(kubectl: &Path, dir: &Path, unrestricted: bool) -> String {
    let mut cmd = Command::new(kubectl);
    cmd.arg("kustomize");
    if unrestricted {
        cmd.args(["--load-restrictor", "LoadRestrictionsNone"]);
    }
    let (ok, out, err) = run(cmd.arg(dir));
    assert!(ok, "kubectl kustomize {} failed:\n{err}", dir.display());
    out
}

fn parse_docs(text: &str) -> Vec<J> {
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_str(text) {
        let v = J::deserialize(de).unwrap_or_else(|e| panic!("rendered YAML: {e}"));
        if !v.is_null() {
            docs.push(v);
        }
    }
    docs
}

/// Every overlay under deploy/overlays, then the composite. `None` when
/// kubectl is missing (outside CI).
pub(crate) fn variants() -> Option<&'static [Variant]> {
    static V: OnceLock<Option<Vec<Variant>>> = OnceLock::new();
    V.get_or_init(|| {
        let kubectl = tool("RAFTINEL_KUBECTL", "kubectl")?;
        let mut out = Vec::new();
        let mut overlays: Vec<PathBuf> = fs::read_dir(deploy_dir().join("overlays"))
            .expect("read deploy/overlays")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.join("kustomization.yaml").is_file())
            .collect();
        overlays.sort();
        assert!(!overlays.is_empty(), "no overlay under deploy/overlays");
        overlays.insert(0, deploy_dir().join("base"));
        for dir in overlays {
            let yaml = render(&kubectl, &dir, false);
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            out.push(Variant {
                name,
                docs: parse_docs(&yaml),
                yaml,
            });
        }
        // The composite lives under target/ and names the base and the
        // components by relative paths (kustomize refuses absolute ones).
        let target = repo().join("target");
        fs::create_dir_all(&target).expect("create target/");
        let tmp = tempfile::Builder::new()
            .prefix("deploy-composite-")
            .tempdir_in(&target)
            .expect("temp dir");
        let up = "../../deploy";
        let components: Vec<String> = COMPONENTS
            .iter()
            .map(|c| format!("  - {up}/components/{c}\n"))
            .collect();
        fs::write(
            tmp.path().join("kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                 resources:\n  - {up}/base\ncomponents:\n{}",
                components.concat()
            ),
        )
        .expect("write the composite kustomization");
        let yaml = render(&kubectl, tmp.path(), true);
        out.push(Variant {
            name: ALL_COMPONENTS.into(),
            docs: parse_docs(&yaml),
            yaml,
        });
        // The dev overlay with the Kubernetes API on (the pod rehearsal's).
        let dev_api = tmp.path().join("dev-api");
        fs::create_dir_all(&dev_api).expect("create dev-api");
        fs::write(
            dev_api.join("kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                 resources:\n  - ../{up}/overlays/dev\ncomponents:\n  - ../{up}/components/kubernetes-api\n"
            ),
        )
        .expect("write the dev-api kustomization");
        let yaml = render(&kubectl, &dev_api, true);
        out.push(Variant {
            name: DEV_API.into(),
            docs: parse_docs(&yaml),
            yaml,
        });
        Some(out)
    })
    .as_deref()
}

pub(crate) fn variant<'a>(vs: &'a [Variant], name: &str) -> &'a Variant {
    vs.iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no rendered variant {name}"))
}

// ---------------------------------------------------------------- object access

pub(crate) fn kind_of(v: &J) -> &str {
    v["kind"].as_str().unwrap_or("")
}

pub(crate) fn name_of(v: &J) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

pub(crate) fn objects<'a>(docs: &'a [J], kind: &str) -> Vec<&'a J> {
    docs.iter().filter(|d| kind_of(d) == kind).collect()
}

pub(crate) fn one<'a>(docs: &'a [J], kind: &str) -> &'a J {
    let all = objects(docs, kind);
    assert_eq!(all.len(), 1, "expected one {kind}, found {}", all.len());
    all[0]
}

pub(crate) fn arr(v: &J) -> &[J] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub(crate) fn strs(v: &J) -> Vec<String> {
    arr(v)
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

/// `sel` (a label map) is non-empty and every pair of it is in `labels`.
fn selects(sel: &J, labels: &J) -> bool {
    match sel.as_object() {
        Some(m) if !m.is_empty() => m.iter().all(|(k, v)| labels.get(k) == Some(v)),
        _ => false,
    }
}

/// The set's one StatefulSet and facts derived from it.
pub(crate) struct Set<'a> {
    pub(crate) sts: &'a J,
    pub(crate) pod: &'a J,
    pub(crate) labels: &'a J,
    pub(crate) replicas: u64,
}

impl<'a> Set<'a> {
    pub(crate) fn of(docs: &'a [J]) -> Set<'a> {
        let sts = one(docs, "StatefulSet");
        let pod = &sts["spec"]["template"]["spec"];
        Set {
            sts,
            pod,
            labels: &sts["spec"]["template"]["metadata"]["labels"],
            replicas: sts["spec"]["replicas"].as_u64().unwrap_or(1),
        }
    }

    /// Init containers (sidecars among them) and containers.
    pub(crate) fn containers(&self) -> Vec<&'a J> {
        arr(&self.pod["initContainers"])
            .iter()
            .chain(arr(&self.pod["containers"]))
            .collect()
    }

    pub(crate) fn container(&self, name: &str) -> &'a J {
        self.containers()
            .into_iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    }

    fn has_container(&self, name: &str) -> bool {
        self.containers().iter().any(|c| c["name"] == name)
    }

    /// The number a container port (name or number) stands for, looking in
    /// `within` (a probe's named port is its own container's).
    fn port_number(within: &[&J], port: &J) -> Option<u64> {
        if let Some(n) = port.as_u64() {
            return within
                .iter()
                .flat_map(|c| arr(&c["ports"]))
                .any(|p| p["containerPort"].as_u64() == Some(n))
                .then_some(n);
        }
        let name = port.as_str()?;
        within
            .iter()
            .flat_map(|c| arr(&c["ports"]))
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
    }

    pub(crate) fn headless(&self) -> &'a str {
        self.sts["spec"]["serviceName"].as_str().unwrap_or("")
    }

    pub(crate) fn configmap_file(&self, docs: &'a [J], volume: &str, key: &str) -> &'a str {
        let cm_name = arr(&self.pod["volumes"])
            .iter()
            .find(|v| v["name"] == volume)
            .and_then(|v| v["configMap"]["name"].as_str())
            .unwrap_or_else(|| panic!("no configMap volume {volume}"));
        let cm = objects(docs, "ConfigMap")
            .into_iter()
            .find(|c| name_of(c) == cm_name)
            .unwrap_or_else(|| panic!("volume {volume} names ConfigMap {cm_name}, not rendered"));
        cm["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap {cm_name} has no key {key}"))
    }

    fn toml(&self, docs: &'a [J]) -> toml::Value {
        let text = self.configmap_file(docs, "raftinel-config", "raftinel.toml");
        toml::from_str(text).unwrap_or_else(|e| panic!("rendered raftinel.toml: {e}"))
    }

    fn redis_conf(&self, docs: &'a [J]) -> BTreeMap<String, Vec<String>> {
        let text = self.configmap_file(docs, "redis-config", "redis.conf");
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            out.entry(k.to_lowercase())
                .or_default()
                .push(v.trim().to_string());
        }
        out
    }

    /// Where `container` mounts the volume (or claim) `volume`, and its subPath.
    fn mount(&self, container: &str, volume: &str) -> Option<(String, String)> {
        arr(&self.container(container)["volumeMounts"])
            .iter()
            .find(|m| m["name"] == volume)
            .map(|m| {
                (
                    m["mountPath"].as_str().unwrap_or("").to_string(),
                    m["subPath"].as_str().unwrap_or("").to_string(),
                )
            })
    }
}

/// Every exec command of a container: its command (+args), its probes' and
/// its lifecycle hooks', with where each comes from.
fn execs(c: &J) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let name = c["name"].as_str().unwrap_or("");
    let mut main = strs(&c["command"]);
    main.extend(strs(&c["args"]));
    if !main.is_empty() {
        out.push((format!("{name} command"), main));
    }
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let cmd = strs(&c[probe]["exec"]["command"]);
        if !cmd.is_empty() {
            out.push((format!("{name} {probe}"), cmd));
        }
    }
    for hook in ["preStop", "postStart"] {
        let cmd = strs(&c["lifecycle"][hook]["exec"]["command"]);
        if !cmd.is_empty() {
            out.push((format!("{name} {hook}"), cmd));
        }
    }
    out
}

fn is_raftinel(argv0: &str) -> bool {
    Path::new(argv0).file_name().and_then(|n| n.to_str()) == Some("raftinel")
}

/// The value after `flag` in an argv.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn toml_str<'a>(t: &'a toml::Value, path: &[&str]) -> &'a str {
    let mut v = t;
    for k in path {
        v = v
            .get(k)
            .unwrap_or_else(|| panic!("raftinel.toml has no {}", path.join(".")));
    }
    v.as_str()
        .unwrap_or_else(|| panic!("raftinel.toml {} is not a string", path.join(".")))
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

// ---------------------------------------------------------------- tests

/// Every variant renders and passes strict schema validation for 1.29 and
/// the newest version kubernetes-validate knows; the only warnings allowed
/// are the Prometheus Operator's kinds, which it has no schema for.
#[test]
fn overlays_render_and_validate() {
    let Some(vs) = variants() else { return };
    let Some(validate) = tool("RAFTINEL_K8S_VALIDATE", "kubernetes-validate") else {
        return;
    };
    let (_, help, _) = run(Command::new(&validate).arg("--help"));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let newest = help
        .split("Defaults to ")
        .nth(1)
        .and_then(|r| r.split(|c: char| c.is_whitespace()).next())
        .map(|v| v.trim_end_matches('.').to_string())
        .unwrap_or_else(|| panic!("no default version in kubernetes-validate --help: {help}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for v in vs {
        let f = dir.path().join(format!("{}.yaml", v.name));
        fs::write(&f, &v.yaml).expect("write rendered yaml");
        files.push(f);
    }
    let crd_kinds = ["PodMonitor", "ServiceMonitor", "PrometheusRule"];
    for version in ["1.29.0", newest.as_str()] {
        let (ok, out, err) = run(Command::new(&validate)
            .args(["--strict", "-k", version])
            .args(&files));
        let mut passed = 0;
        let mut warned = Vec::new();
        let mut problems = Vec::new();
        for line in out.lines() {
            if line.starts_with("INFO ") && line.contains(" passed ") {
                passed += 1;
            } else if let Some(w) = line.strip_prefix("WARN ") {
                match crd_kinds.iter().find(|k| {
                    w.contains(&format!("kind {k} with api version monitoring.coreos.com/"))
                }) {
                    Some(k) => warned.push(*k),
                    None => problems.push(line.to_string()),
                }
            } else if !line.trim().is_empty() {
                problems.push(line.to_string());
            }
        }
        assert!(
            ok && problems.is_empty(),
            "kubernetes-validate --strict -k {version}:\n{}\n{err}",
            problems.join("\n")
        );
        let objects: usize = vs
            .iter()
            .map(|v| {
                v.docs
                    .iter()
                    .filter(|d| !crd_kinds.contains(&kind_of(d)))
                    .count()
            })
            .sum();
        assert_eq!(passed, objects, "every non-CRD object validated once");
        eprintln!(
            "kubernetes-validate --strict -k {version}: {passed} objects passed in {} variants ({}), {} warnings (schema-less kinds: {})",
            vs.len(),
            vs.iter()
                .map(|v| format!("{} {}", v.name, v.docs.len()))
                .collect::<Vec<_>>()
                .join(", "),
            warned.len(),
            warned.iter().copied().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ")
        );
    }
}

/// Services, the PodDisruptionBudget, scheduling and security settings
/// against the StatefulSet's pods.
#[test]
fn services_pdb_and_pods_fit_together() {
    let Some(vs) = variants() else { return };
    let c = contract();
    for v in vs {
        let ctx = &v.name;
        let set = Set::of(&v.docs);
        let spec = &set.sts["spec"];
        assert!(
            selects(&spec["selector"]["matchLabels"], set.labels),
            "{ctx}: StatefulSet selector"
        );
        assert_eq!(spec["podManagementPolicy"], "Parallel", "{ctx}");
        assert_eq!(spec["updateStrategy"]["type"], "RollingUpdate", "{ctx}");
        assert!(
            spec["minReadySeconds"].as_u64().unwrap_or(0) > 0,
            "{ctx}: minReadySeconds"
        );
        assert!(
            set.replicas >= 3,
            "{ctx}: a Raft group needs 3 pods to lose one"
        );

        // Services.
        let containers = set.containers();
        let services = objects(&v.docs, "Service");
        let mut client = false;
        let mut roles = BTreeSet::new();
        for s in &services {
            let sel = &s["spec"]["selector"];
            let mut base = sel.as_object().cloned().unwrap_or_default();
            if let Some(role) = base.remove(&c.role_label) {
                let role = role.as_str().unwrap_or("").to_string();
                assert!(
                    c.role_values.contains(&role),
                    "{ctx}: Service {} role {role}",
                    name_of(s)
                );
                roles.insert(role);
            }
            assert!(
                selects(&J::Object(base), set.labels),
                "{ctx}: Service {} selects no pod of the set",
                name_of(s)
            );
            for p in arr(&s["spec"]["ports"]) {
                let target = if p["targetPort"].is_null() {
                    &p["port"]
                } else {
                    &p["targetPort"]
                };
                assert!(
                    Set::port_number(&containers, target).is_some(),
                    "{ctx}: Service {} targets port {target}, which no container declares",
                    name_of(s)
                );
            }
            let ports: Vec<u64> = arr(&s["spec"]["ports"])
                .iter()
                .filter_map(|p| p["port"].as_u64())
                .collect();
            if name_of(s) == set.headless() {
                assert_eq!(s["spec"]["clusterIP"], "None", "{ctx}: headless Service");
                assert_eq!(
                    s["spec"]["publishNotReadyAddresses"], true,
                    "{ctx}: headless Service"
                );
                assert!(
                    ports.contains(&c.redis_port.into()) && ports.contains(&c.sentinel_port.into()),
                    "{ctx}: headless ports"
                );
            } else if sel.get(&c.role_label).is_none() && ports == [u64::from(c.sentinel_port)] {
                assert_ne!(
                    s["spec"]["publishNotReadyAddresses"], true,
                    "{ctx}: the client Service only has Ready pods"
                );
                client = true;
            }
        }
        assert!(
            services.iter().any(|s| name_of(s) == set.headless()),
            "{ctx}: serviceName {} not rendered",
            set.headless()
        );
        assert!(client, "{ctx}: no client Service on {}", c.sentinel_port);
        assert_eq!(
            roles.len(),
            c.role_values.len(),
            "{ctx}: a Service per role"
        );

        // PodDisruptionBudget: one pod at a time, a majority always left;
        // with drain awareness, the master's pod not at all (until the
        // switch moved its role label).
        let pdbs = objects(&v.docs, "PodDisruptionBudget");
        if let Some(m) = pdbs.iter().find(|p| name_of(p) == "raftinel-master") {
            let sel = &m["spec"]["selector"]["matchLabels"];
            assert_eq!(sel["raftinel.io/role"], "master", "{ctx}");
            assert_eq!(m["spec"]["maxUnavailable"], 0, "{ctx}");
            assert!(
                selects(sel, &{
                    let mut l = set.labels.clone();
                    l["raftinel.io/role"] = "master".into();
                    l
                }),
                "{ctx}: master PDB selector"
            );
        }
        let set_pdbs: Vec<&&J> = pdbs
            .iter()
            .filter(|p| name_of(p) != "raftinel-master")
            .collect();
        assert_eq!(set_pdbs.len(), 1, "{ctx}: one PDB for the set");
        let pdb = set_pdbs[0];
        assert!(
            selects(&pdb["spec"]["selector"]["matchLabels"], set.labels),
            "{ctx}: PDB selector"
        );
        let max_unavailable = pdb["spec"]["maxUnavailable"]
            .as_u64()
            .expect("PDB maxUnavailable");
        assert_eq!(max_unavailable, 1, "{ctx}");
        assert!(
            set.replicas - max_unavailable > set.replicas / 2,
            "{ctx}: PDB keeps a majority"
        );
        assert_eq!(
            pdb["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow",
            "{ctx}"
        );

        // Scheduling selectors select the set.
        for term in arr(&set.pod["affinity"]["podAntiAffinity"]
            ["preferredDuringSchedulingIgnoredDuringExecution"])
        {
            assert!(
                selects(
                    &term["podAffinityTerm"]["labelSelector"]["matchLabels"],
                    set.labels
                ),
                "{ctx}: anti-affinity"
            );
        }
        for term in arr(&set.pod["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"])
        {
            assert!(
                selects(&term["labelSelector"]["matchLabels"], set.labels),
                "{ctx}: anti-affinity"
            );
        }
        for t in arr(&set.pod["topologySpreadConstraints"]) {
            assert!(
                selects(&t["labelSelector"]["matchLabels"], set.labels),
                "{ctx}: spread"
            );
        }

        // Non-root, read-only root filesystem, no capabilities, pinned images.
        assert_eq!(set.pod["securityContext"]["runAsNonRoot"], true, "{ctx}");
        // No API token, but with the Kubernetes API component, whose Role
        // is the least the daemon needs.
        let api = v
            .docs
            .iter()
            .any(|d| kind_of(d) == "Role" && name_of(d) == "raftinel");
        assert_eq!(set.pod["automountServiceAccountToken"], api, "{ctx}");
        let sa = one(&v.docs, "ServiceAccount");
        assert_eq!(
            set.pod["serviceAccountName"],
            name_of(sa),
            "{ctx}: ServiceAccount"
        );
        for ct in &containers {
            let name = ct["name"].as_str().unwrap_or("");
            let sc = &ct["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{ctx}: {name}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{ctx}: {name}");
            assert!(
                strs(&sc["capabilities"]["drop"]).contains(&"ALL".to_string()),
                "{ctx}: {name} drops ALL"
            );
            let image = ct["image"].as_str().unwrap_or("");
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                "{ctx}: {name} image {image} is not pinned"
            );
        }
        if v.name == "seed-000" {
            assert!(
                set.pod["nodeSelector"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty()),
                "{ctx}: node selector"
            );
            assert!(
                set.sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"].is_string(),
                "{ctx}: storage class"
            );
        }
    }
}

/// Probes, hooks and commands use only what the contract lists; the grace
/// period covers the preStop deadlines; the downward-API variables are set.
#[test]
fn probes_hooks_and_commands_follow_the_contract() {
    let Some(vs) = variants() else { return };
    let c = contract();
    let paths: BTreeMap<&str, &HttpPath> = c.http.iter().map(|h| (h.path.as_str(), h)).collect();
    for v in vs {
        let ctx = &v.name;
        let set = Set::of(&v.docs);
        let toml = set.toml(&v.docs);
        let admin = port_of(toml_str(&toml, &["server", "admin-addr"]));
        assert_eq!(admin, c.admin_port, "{ctx}: admin-addr port");
        assert_ne!(admin, 9121, "{ctx}: redis_exporter's port");
        assert_eq!(
            Set::port_number(&[set.container("raftinel")], &J::from("admin")),
            Some(u64::from(admin)),
            "{ctx}: the raftinel container's admin port"
        );
        let (config_dir, _) = set
            .mount("raftinel", "raftinel-config")
            .expect("raftinel mounts its config");
        let config_path = format!("{config_dir}/raftinel.toml");

        let mut probed = BTreeSet::new();
        let mut deadlines = BTreeMap::new();
        for ct in set.containers() {
            let name = ct["name"].as_str().unwrap_or("").to_string();
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                let p = &ct[probe];
                if p.is_null() {
                    continue;
                }
                if let Some(get) = p.get("httpGet") {
                    let target = get["path"].as_str().unwrap_or("");
                    let (path, query) = target.split_once('?').unwrap_or((target, ""));
                    let spec = paths.get(path).unwrap_or_else(|| {
                        panic!("{ctx}: {name} {probe} GET {path}: not a path of the contract")
                    });
                    for kv in query.split('&').filter(|s| !s.is_empty()) {
                        let key = kv.split('=').next().unwrap_or("");
                        assert!(
                            spec.query.iter().any(|q| q == key),
                            "{ctx}: {name} {probe}: query {key}"
                        );
                    }
                    let port = Set::port_number(&[ct], &get["port"])
                        .or_else(|| get["port"].as_u64())
                        .unwrap_or_else(|| {
                            panic!("{ctx}: {name} {probe}: port {} not declared", get["port"])
                        });
                    assert_eq!(
                        port,
                        u64::from(admin),
                        "{ctx}: {name} {probe} is served on the admin port"
                    );
                    probed.insert(path.to_string());
                } else if let Some(tcp) = p.get("tcpSocket") {
                    assert!(
                        Set::port_number(&[ct], &tcp["port"]).is_some(),
                        "{ctx}: {name} {probe} port"
                    );
                }
            }
            for (what, argv) in execs(ct) {
                if !is_raftinel(&argv[0]) {
                    continue;
                }
                let args = &argv[1..];
                let cmd = c.command_for(args).unwrap_or_else(|| {
                    panic!("{ctx}: {what}: {argv:?} is no command of the contract")
                });
                let own: Vec<&String> = args.iter().take_while(|a| *a != "--").collect();
                for flag in own.iter().filter(|a| a.starts_with("--")) {
                    assert!(
                        cmd.flags.contains(flag),
                        "{ctx}: {what}: {flag} is not a flag of {:?}",
                        cmd.words
                    );
                }
                match flag_value(args, "--config") {
                    Some(p) => assert_eq!(p, config_path, "{ctx}: {what} --config"),
                    None if cmd.words.is_empty() => {
                        assert_eq!(args[0], config_path, "{ctx}: {what}")
                    }
                    None => panic!("{ctx}: {what} has no --config"),
                }
                if let Some(d) = flag_value(args, "--deadline") {
                    let d: i64 = d
                        .parse()
                        .unwrap_or_else(|_| panic!("{ctx}: {what}: --deadline {d}"));
                    deadlines.insert(what.clone(), (d, args.iter().any(|a| a == "--wait-only")));
                }
                if cmd.words == ["boot-redis"] {
                    // boot-redis execs redis-server on the mounted redis.conf.
                    let rest: Vec<&String> =
                        args.iter().skip_while(|a| *a != "--").skip(1).collect();
                    let (redis_dir, _) = set
                        .mount(&name, "redis-config")
                        .expect("redis mounts redis.conf");
                    assert_eq!(
                        rest.first().map(|s| s.as_str()),
                        Some("redis-server"),
                        "{ctx}: {what}"
                    );
                    assert_eq!(
                        rest.get(1).map(|s| s.as_str()),
                        Some(format!("{redis_dir}/redis.conf").as_str()),
                        "{ctx}: {what}"
                    );
                    set.configmap_file(&v.docs, "redis-config", "redis.conf");
                    let run_dir = flag_value(args, "--run-dir").expect("boot-redis --run-dir");
                    assert!(
                        arr(&ct["volumeMounts"])
                            .iter()
                            .any(|m| m["mountPath"] == run_dir && m["readOnly"] != true),
                        "{ctx}: {what}: --run-dir {run_dir} is not a writable mount"
                    );
                }
                // The binary the redis container runs comes from a volume.
                if argv[0].starts_with('/') {
                    let dir = Path::new(&argv[0])
                        .parent()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    assert!(
                        arr(&ct["volumeMounts"])
                            .iter()
                            .any(|m| m["mountPath"] == dir.as_str()),
                        "{ctx}: {what}: {} is not in a mounted volume",
                        argv[0]
                    );
                }
            }
        }
        for need in ["/readyz", "/readyz/redis", "/healthz"] {
            assert!(probed.contains(need), "{ctx}: no probe uses {need}");
        }

        // Grace period: longer than every preStop deadline plus the margin;
        // the raftinel container waits longer than redis's switchover.
        let grace = set.pod["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("terminationGracePeriodSeconds");
        let longest = deadlines
            .values()
            .map(|(d, _)| *d)
            .max()
            .expect("no preStop --deadline");
        assert!(
            grace >= longest + c.grace_margin_seconds,
            "{ctx}: terminationGracePeriodSeconds {grace} < longest preStop deadline {longest} + {}",
            c.grace_margin_seconds
        );
        let switchover = deadlines
            .iter()
            .find(|(_, (_, wait))| !wait)
            .map(|(_, (d, _))| *d)
            .expect("a switching preStop");
        let waiting = deadlines
            .iter()
            .find(|(_, (_, wait))| *wait)
            .map(|(_, (d, _))| *d)
            .expect("a waiting preStop");
        assert!(
            waiting > switchover,
            "{ctx}: the raftinel container must outwait the switchover ({waiting} <= {switchover})"
        );

        // Downward API: every variable the contract fills from a field, in
        // every container that runs raftinel; `${NAME}` in raftinel.toml only
        // names variables those containers have.
        let text = set.configmap_file(&v.docs, "raftinel-config", "raftinel.toml");
        let referenced: BTreeSet<&str> = text
            .split("${")
            .skip(1)
            .filter_map(|r| r.split_once('}').map(|(n, _)| n))
            .collect();
        for ct in set.containers() {
            if !execs(ct).iter().any(|(_, argv)| is_raftinel(&argv[0])) {
                continue;
            }
            let name = ct["name"].as_str().unwrap_or("");
            let env: BTreeMap<&str, &J> = arr(&ct["env"])
                .iter()
                .map(|e| (e["name"].as_str().unwrap_or(""), e))
                .collect();
            for e in c.env.iter().filter(|e| e.field.is_some()) {
                let got = env
                    .get(e.name.as_str())
                    .map(|j| &j["valueFrom"]["fieldRef"]["fieldPath"]);
                assert_eq!(
                    got.and_then(|f| f.as_str()),
                    e.field.as_deref(),
                    "{ctx}: {name} env {}",
                    e.name
                );
            }
            for r in &referenced {
                assert!(
                    env.contains_key(r),
                    "{ctx}: raftinel.toml uses ${{{r}}}, container {name} does not set it"
                );
                assert!(
                    c.env.iter().any(|e| e.name == *r),
                    "{ctx}: ${{{r}}} is not in the contract"
                );
            }
        }

        // Native sidecar: raftinel as a restartable init container, the same
        // container as in the base otherwise.
        let in_init = arr(&set.pod["initContainers"])
            .iter()
            .find(|x| x["name"] == "raftinel");
        if let Some(sidecar) = in_init {
            assert_eq!(sidecar["restartPolicy"], "Always", "{ctx}: native sidecar");
            let base = variant(vs, "base");
            let plain = Set::of(&base.docs);
            let mut expected = plain.container("raftinel").clone();
            expected["restartPolicy"] = J::from("Always");
            assert_eq!(
                sidecar, &expected,
                "{ctx}: the sidecar differs from the base's raftinel container"
            );
        }
    }
}

/// raftinel.toml and redis.conf against the StatefulSet: ports, peers,
/// announced names, data directories, persistence.
#[test]
fn config_maps_match_the_statefulset() {
    let Some(vs) = variants() else { return };
    let c = contract();
    for v in vs {
        let ctx = &v.name;
        let set = Set::of(&v.docs);
        let t = set.toml(&v.docs);
        let sts = name_of(set.sts);
        let headless = set.headless();
        let port = |name: &str| Set::port_number(&set.containers(), &J::from(name)).unwrap_or(0);
        assert_eq!(
            t["server"]["port"].as_integer(),
            Some(i64::from(c.sentinel_port)),
            "{ctx}: server.port"
        );
        assert_eq!(
            port("sentinel"),
            u64::from(c.sentinel_port),
            "{ctx}: sentinel container port"
        );
        assert_eq!(
            port("redis"),
            u64::from(c.redis_port),
            "{ctx}: redis container port"
        );
        assert_eq!(
            t["sentinel"]["resolve-hostnames"].as_bool(),
            Some(true),
            "{ctx}"
        );
        assert_eq!(
            t["sentinel"]["announce-hostnames"].as_bool(),
            Some(true),
            "{ctx}"
        );

        // Peers: exactly the pods 0..replicas-1 by headless DNS name.
        let pod_dns = |ordinal: &str, domain: &str| {
            format!("{sts}-{ordinal}.{headless}.${{RAFTINEL_POD_NAMESPACE}}.svc.{domain}")
        };
        let peers: Vec<String> = t["raft"]["peers"]
            .as_array()
            .expect("[raft] peers")
            .iter()
            .map(|p| p.as_str().unwrap_or_default().to_string())
            .collect();
        let first = peers.first().expect("no peers");
        let domain = first
            .strip_prefix(&format!(
                "{sts}-0.{headless}.${{RAFTINEL_POD_NAMESPACE}}.svc."
            ))
            .and_then(|r| r.strip_suffix(&format!(":{}", c.sentinel_port)))
            .unwrap_or_else(|| panic!("{ctx}: first peer {first} is not pod 0's DNS name"));
        let expected: Vec<String> = (0..set.replicas)
            .map(|i| format!("{}:{}", pod_dns(&i.to_string(), domain), c.sentinel_port))
            .collect();
        assert_eq!(
            peers, expected,
            "{ctx}: [raft] peers must name the {} pods",
            set.replicas
        );
        assert_eq!(
            toml_str(&t, &["sentinel", "announce-ip"]),
            format!("${{RAFTINEL_POD_NAME}}.{headless}.${{RAFTINEL_POD_NAMESPACE}}.svc.{domain}"),
            "{ctx}: announce-ip is the pod's own DNS name"
        );
        let masters = t["masters"].as_array().expect("[[masters]]");
        assert_eq!(masters.len(), 1, "{ctx}: one master per set");
        let m = &masters[0];
        let host = m["host"].as_str().unwrap_or("");
        assert!(
            (0..set.replicas).any(|i| host == pod_dns(&i.to_string(), domain)),
            "{ctx}: master host {host} is not a pod of the set"
        );
        assert_eq!(
            m["port"].as_integer(),
            Some(i64::from(c.redis_port)),
            "{ctx}: master port"
        );
        let quorum = m["quorum"].as_integer().unwrap_or(0) as u64;
        assert!(
            quorum >= 1 && quorum <= set.replicas,
            "{ctx}: quorum {quorum}"
        );
        assert!(
            t["raft"].get("cluster-id").is_some() || {
                let env = arr(&set.container("raftinel")["env"]);
                env.iter().any(|e| e["name"] == "RAFTINEL_CLUSTER_ID")
            },
            "{ctx}: no cluster id: two sets could merge"
        );

        // One volume per pod holding both data dirs, in different subPaths.
        let claims: Vec<&str> = arr(&set.sts["spec"]["volumeClaimTemplates"])
            .iter()
            .map(name_of)
            .collect();
        assert_eq!(claims.len(), 1, "{ctx}: one PVC per pod");
        let (redis_dir, redis_sub) = set.mount("redis", claims[0]).expect("redis mounts the PVC");
        let (raft_dir, raft_sub) = set
            .mount("raftinel", claims[0])
            .expect("raftinel mounts the PVC");
        assert!(
            !redis_sub.is_empty() && !raft_sub.is_empty() && redis_sub != raft_sub,
            "{ctx}: subPaths"
        );
        assert_eq!(
            toml_str(&t, &["server", "data-dir"]),
            raft_dir,
            "{ctx}: data-dir"
        );
        assert_eq!(toml_str(&t, &["server", "dir"]), raft_dir, "{ctx}: dir");
        for ct in set.containers() {
            for mnt in arr(&ct["volumeMounts"]) {
                let vol = mnt["name"].as_str().unwrap_or("");
                assert!(
                    claims.contains(&vol)
                        || arr(&set.pod["volumes"]).iter().any(|x| x["name"] == vol),
                    "{ctx}: {} mounts unknown volume {vol}",
                    ct["name"]
                );
            }
        }

        // redis.conf: the port, the data dir, the persistence; role and
        // announced name are boot-redis's, never the file's.
        let rc = set.redis_conf(&v.docs);
        let get = |k: &str| rc.get(k).cloned().unwrap_or_default();
        assert_eq!(
            get("port"),
            [c.redis_port.to_string()],
            "{ctx}: redis.conf port"
        );
        assert_eq!(get("dir"), [redis_dir.as_str()], "{ctx}: redis.conf dir");
        assert_eq!(get("appendonly"), ["yes"], "{ctx}: AOF");
        assert_eq!(get("appendfsync"), ["everysec"], "{ctx}: AOF fsync");
        assert!(
            !get("save").is_empty() && get("save").iter().all(|s| !s.is_empty()),
            "{ctx}: save points"
        );
        for k in [
            "replicaof",
            "slaveof",
            "replica-announce-ip",
            "slave-announce-ip",
        ] {
            assert!(!rc.contains_key(k), "{ctx}: redis.conf sets {k}");
        }
    }
}

// ---------------------------------------------------------------- network policy

/// A pod or endpoint for the NetworkPolicy check.
struct Peer {
    namespace: &'static str,
    ns_labels: J,
    labels: J,
}

fn peer_matches(rule_peer: &J, policy_ns: &str, peer: &Peer) -> bool {
    let pod_ok = |sel: &J| {
        sel.is_null()
            || sel["matchLabels"].as_object().is_none_or(|m| m.is_empty())
            || selects(&sel["matchLabels"], &peer.labels)
    };
    let ns_ok = |sel: &J| {
        sel["matchLabels"].as_object().is_none_or(|m| m.is_empty())
            || selects(&sel["matchLabels"], &peer.ns_labels)
    };
    match (
        rule_peer.get("podSelector"),
        rule_peer.get("namespaceSelector"),
    ) {
        (Some(p), None) => peer.namespace == policy_ns && pod_ok(p),
        (None, Some(n)) => ns_ok(n),
        (Some(p), Some(n)) => ns_ok(n) && pod_ok(p),
        (None, None) => false, // ipBlock: never a pod here
    }
}

fn port_matches(rule_ports: &J, port: u64, proto: &str, containers: &[&J]) -> bool {
    let ports = arr(rule_ports);
    ports.is_empty()
        || ports.iter().any(|p| {
            p["protocol"].as_str().unwrap_or("TCP") == proto
                && Set::port_number(containers, &p["port"]).or_else(|| p["port"].as_u64())
                    == Some(port)
        })
}

/// Whether the policies let `peer` reach the set's pods on `port` (ingress)
/// or the set's pods reach `peer` on `port` (egress).
fn allowed(policies: &[&J], set: &Set, ingress: bool, peer: &Peer, port: u64, proto: &str) -> bool {
    let (field, dir, side) = if ingress {
        ("ingress", "Ingress", "from")
    } else {
        ("egress", "Egress", "to")
    };
    let applying: Vec<&&J> = policies
        .iter()
        .filter(|p| selects(&p["spec"]["podSelector"]["matchLabels"], set.labels))
        .filter(|p| strs(&p["spec"]["policyTypes"]).iter().any(|t| t == dir))
        .collect();
    if applying.is_empty() {
        return true;
    }
    let containers = set.containers();
    // Egress ports are the destination's; only the set's own are named.
    let own = if ingress || peer.labels == *set.labels {
        containers.clone()
    } else {
        Vec::new()
    };
    applying.iter().any(|p| {
        let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
        arr(&p["spec"][field]).iter().any(|rule| {
            let peers = arr(&rule[side]);
            (peers.is_empty() || peers.iter().any(|rp| peer_matches(rp, ns, peer)))
                && port_matches(&rule["ports"], port, proto, &own)
        })
    })
}

/// With a NetworkPolicy, the pods still reach each other (replication,
/// Sentinel links, Raft), labelled clients reach 6379/26379, Prometheus in
/// `monitoring` reaches the metrics ports, DNS works on UDP and TCP; and
/// what is not needed is refused.
#[test]
fn network_policy_admits_the_traffic_the_set_needs() {
    let Some(vs) = variants() else { return };
    let c = contract();
    let mut checked = 0;
    for v in vs {
        let policies = objects(&v.docs, "NetworkPolicy");
        if policies.is_empty() {
            continue;
        }
        checked += 1;
        let ctx = &v.name;
        let set = Set::of(&v.docs);
        let ns = "default";
        let own = Peer {
            namespace: ns,
            ns_labels: serde_json::json!({"kubernetes.io/metadata.name": ns}),
            labels: set.labels.clone(),
        };
        let client = Peer {
            namespace: "apps",
            ns_labels: serde_json::json!({"kubernetes.io/metadata.name": "apps"}),
            labels: serde_json::json!({"app": "web", "raftinel.io/client": "true"}),
        };
        let stranger = Peer {
            namespace: "apps",
            ns_labels: client.ns_labels.clone(),
            labels: serde_json::json!({"app": "web"}),
        };
        let prometheus = Peer {
            namespace: "monitoring",
            ns_labels: serde_json::json!({"kubernetes.io/metadata.name": "monitoring"}),
            labels: serde_json::json!({"app.kubernetes.io/name": "prometheus"}),
        };
        let dns = Peer {
            namespace: "kube-system",
            ns_labels: serde_json::json!({"kubernetes.io/metadata.name": "kube-system"}),
            labels: serde_json::json!({"k8s-app": "kube-dns"}),
        };
        let (redis, sentinel, admin) = (
            u64::from(c.redis_port),
            u64::from(c.sentinel_port),
            u64::from(c.admin_port),
        );
        let (i, e) = (true, false); // ingress to the set's pods, egress from them
        let exporter = set.has_container("redis-exporter");
        for (what, dir, peer, port, proto, expected) in [
            ("pod -> pod redis", i, &own, redis, "TCP", true),
            ("pod -> pod sentinel/raft", i, &own, sentinel, "TCP", true),
            ("pod -> pod redis", e, &own, redis, "TCP", true),
            ("pod -> pod sentinel/raft", e, &own, sentinel, "TCP", true),
            ("DNS over UDP", e, &dns, 53, "UDP", true),
            ("DNS over TCP", e, &dns, 53, "TCP", true),
            (
                "labelled client -> sentinel",
                i,
                &client,
                sentinel,
                "TCP",
                true,
            ),
            ("labelled client -> redis", i, &client, redis, "TCP", true),
            ("prometheus -> admin", i, &prometheus, admin, "TCP", true),
            (
                "prometheus -> redis_exporter",
                i,
                &prometheus,
                9121,
                "TCP",
                true,
            ),
            ("unlabelled pod -> redis", i, &stranger, redis, "TCP", false),
            (
                "unlabelled pod -> sentinel",
                i,
                &stranger,
                sentinel,
                "TCP",
                false,
            ),
            ("client -> admin", i, &client, admin, "TCP", false),
        ] {
            if port == 9121 && !exporter {
                continue;
            }
            assert_eq!(
                allowed(&policies, &set, dir, peer, port, proto),
                expected,
                "{ctx}: NetworkPolicy: {what} ({})",
                if dir { "ingress" } else { "egress" }
            );
        }
    }
    assert!(
        checked >= 2,
        "the network-policy component is used by production and seed-000"
    );
}

// ---------------------------------------------------------------- alerts

/// Alert names with the metric-name tokens of their expressions.
fn alert_rules(docs: &[J]) -> Vec<(String, String, String)> {
    let rule = one(docs, "PrometheusRule");
    arr(&rule["spec"]["groups"])
        .iter()
        .flat_map(|g| arr(&g["rules"]))
        .filter(|r| r["alert"].is_string())
        .map(|r| {
            (
                r["alert"].as_str().unwrap_or("").to_string(),
                r["expr"].as_str().unwrap_or("").to_string(),
                r["for"].as_str().unwrap_or("0s").to_string(),
            )
        })
        .collect()
}

fn seconds(d: &str) -> u64 {
    let mut total = 0;
    let mut n = String::new();
    for ch in d.chars() {
        if ch.is_ascii_digit() {
            n.push(ch);
        } else {
            let v: u64 = n.parse().unwrap_or(0);
            n.clear();
            total += v * match ch {
                'h' => 3600,
                'm' => 60,
                _ => 1,
            };
        }
    }
    total
}

/// `raftinel_*` and `redis_*` names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("raftinel_") || w.starts_with("redis_"))
        .map(str::to_string)
        .collect()
}

/// The PrometheusRule's spec passes `promtool check rules`; the test file
/// covers every alert (one firing case each) and passes `promtool test
/// rules`; the ODOWN alert waits several down-after periods.
#[test]
fn alert_rules_pass_promtool() {
    let Some(vs) = variants() else { return };
    let Some(promtool) = tool("RAFTINEL_PROMTOOL", "promtool") else {
        return;
    };
    let prod = variant(vs, "production");
    let rule = one(&prod.docs, "PrometheusRule");
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("alerts.rules.yaml");
    fs::write(
        &rules,
        serde_norway::to_string(&rule["spec"]).expect("rules to YAML"),
    )
    .expect("write rules");
    let test_src = deploy_dir().join("components/monitoring/alerts.test.yaml");
    let test_text = fs::read_to_string(&test_src).expect("read alerts.test.yaml");
    let tests = dir.path().join("alerts.test.yaml");
    fs::write(&tests, &test_text).expect("copy alerts.test.yaml");

    let (ok, out, err) = run(Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules));
    assert!(ok, "promtool check rules:\n{out}{err}");
    eprintln!(
        "promtool check rules: {}",
        out.lines()
            .filter(|l| l.contains("SUCCESS"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (ok, out, err) = run(Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(&tests)
        .current_dir(dir.path()));
    assert!(ok, "promtool test rules:\n{out}{err}");

    // One test with an expected firing per alert, and no test of an alert
    // that does not exist.
    let alerts = alert_rules(&prod.docs);
    let doc: J = serde_norway::from_str(&test_text).expect("parse alerts.test.yaml");
    let mut fired = BTreeSet::new();
    let mut named = BTreeSet::new();
    for t in arr(&doc["tests"]) {
        for a in arr(&t["alert_rule_test"]) {
            let name = a["alertname"].as_str().unwrap_or("").to_string();
            if !arr(&a["exp_alerts"]).is_empty() {
                fired.insert(name.clone());
            }
            named.insert(name);
        }
    }
    let defined: BTreeSet<String> = alerts.iter().map(|(a, _, _)| a.clone()).collect();
    assert_eq!(fired, defined, "every alert needs a test where it fires");
    assert!(
        named.is_subset(&defined),
        "tests of unknown alerts: {:?}",
        named.difference(&defined)
    );
    eprintln!(
        "promtool test rules: {} alerts, each with a firing and a quiet case",
        defined.len()
    );

    // ODOWN: at least odown-alert-periods × down-after of the shipped config.
    let toml = Set::of(&prod.docs).toml(&prod.docs);
    let down_after = toml["masters"][0]["down-after-milliseconds"]
        .as_integer()
        .expect("down-after") as u64;
    let (name, _, wait) = alerts
        .iter()
        .find(|(_, e, _)| metric_names(e).contains("raftinel_master_odown"))
        .expect("an alert on raftinel_master_odown");
    assert!(
        seconds(wait) * 1000 >= contract().odown_alert_periods * down_after,
        "{name} fires after {wait}, less than {} down-after periods of {down_after} ms",
        contract().odown_alert_periods
    );
}

// ---------------------------------------------------------------- the daemon

fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not HTTP: {text:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status: {head}"))?;
    Ok((code, body.to_string()))
}

/// Metric names in a Prometheus text body.
fn exported(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The rendered raftinel.toml for pod `ordinal`, mapped onto loopback:
/// `${VAR}` filled in as the pod would have them, each pod's DNS name and
/// port replaced by 127.0.0.1 and the test's ports, directories by `dir`.
fn loopback_toml(
    text: &str,
    ordinal: usize,
    sentinel_ports: &[u16],
    redis_ports: &[u16],
    admin_port: u16,
    master_host: &str,
    dir: &Path,
) -> String {
    let c = contract();
    let ns = "it";
    let filled = text
        .replace("${RAFTINEL_POD_NAMESPACE}", ns)
        .replace("${RAFTINEL_POD_NAME}", &format!("raftinel-{ordinal}"));
    let mut v: toml::Value = toml::from_str(&filled).expect("rendered toml");
    let pod = |host: &str| {
        (0..sentinel_ports.len())
            .find(|i| host == format!("raftinel-{i}.raftinel-headless.{ns}.svc.cluster.local"))
            .unwrap_or_else(|| panic!("{host} is not a pod of the set"))
    };
    let str_of = |v: &toml::Value| v.as_str().unwrap_or_default().to_string();
    for m in v["masters"].as_array_mut().expect("[[masters]]") {
        let i = pod(&str_of(&m["host"]));
        assert_eq!(m["port"].as_integer(), Some(i64::from(c.redis_port)));
        m["host"] = toml::Value::String(master_host.into());
        m["port"] = toml::Value::Integer(i64::from(redis_ports[i]));
    }
    let peers = v["raft"]["peers"].as_array_mut().expect("[raft] peers");
    for p in peers.iter_mut() {
        let s = str_of(p);
        let (host, port) = s.rsplit_once(':').expect("host:port");
        assert_eq!(port, c.sentinel_port.to_string());
        *p = toml::Value::String(format!("127.0.0.1:{}", sentinel_ports[pod(host)]));
    }
    let own = pod(&str_of(&v["sentinel"]["announce-ip"]));
    assert_eq!(own, ordinal);
    v["sentinel"]["announce-ip"] = toml::Value::String("127.0.0.1".into());
    // What RAFTINEL_CLUSTER_ID gives the pods.
    v["raft"].as_table_mut().expect("[raft]").insert(
        "cluster-id".into(),
        toml::Value::String(format!("{ns}/raftinel")),
    );
    let server = v["server"].as_table_mut().expect("[server]");
    server.insert(
        "port".into(),
        toml::Value::Integer(i64::from(sentinel_ports[ordinal])),
    );
    server.insert("bind".into(), toml::Value::String("127.0.0.1".into()));
    server.insert(
        "admin-addr".into(),
        toml::Value::String(format!("127.0.0.1:{admin_port}")),
    );
    for k in ["dir", "data-dir"] {
        server.insert(
            k.into(),
            toml::Value::String(dir.to_string_lossy().into_owned()),
        );
    }
    let out = toml::to_string(&v).expect("serialize toml");
    assert!(
        !out.contains("${") && !out.contains(".svc."),
        "not all pod names mapped:\n{out}"
    );
    out
}

/// The contract against the daemon built here, and the rendered config
/// running for real: three daemons from the rendered raftinel.toml (pod names
/// mapped to loopback) over a master and two replicas form their group; the
/// metrics the rules and the dashboard use are exported by them or by
/// redis_exporter, except the contract's pending ones, which are not.
#[test]
fn rendered_config_runs_and_the_contract_matches_the_daemon() {
    let Some(vs) = variants() else { return };
    let Some(exporter_bin) = tool("RAFTINEL_REDIS_EXPORTER", "prometheus-redis-exporter") else {
        return;
    };
    let c = contract();
    let prod = variant(vs, "production");
    let set = Set::of(&prod.docs);
    let text = set.configmap_file(&prod.docs, "raftinel-config", "raftinel.toml");
    let bin = raftinel_bin();

    // Subcommands: implemented ones are in --help, pending ones are not.
    let (_, help, _) = run(Command::new(&bin).arg("--help"));
    let listed: BTreeSet<String> = help
        .split("Commands:")
        .nth(1)
        .unwrap_or("")
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for cmd in c.command.iter().filter(|c| !c.words.is_empty()) {
        let present = listed.contains(&cmd.words[0]) && {
            if cmd.words.len() > 1 {
                let (_, sub, _) = run(Command::new(&bin).arg(&cmd.words[0]).arg("--help"));
                sub.lines()
                    .any(|l| l.split_whitespace().next() == Some(cmd.words[1].as_str()))
            } else {
                true
            }
        };
        assert_eq!(
            present,
            cmd.status == Status::Implemented,
            "`raftinel {}` is {:?} in contract.toml but {} in `raftinel --help`",
            cmd.words.join(" "),
            cmd.status,
            if present { "listed" } else { "missing" }
        );
    }

    // Environment variables: implemented ones are read by the binary (their
    // name is in it), pending ones are not.
    let image = fs::read(&bin).expect("read the raftinel binary");
    for e in &c.env {
        let present = image.windows(e.name.len()).any(|w| w == e.name.as_bytes());
        assert_eq!(
            present,
            e.status == Status::Implemented,
            "env {} is {:?} in contract.toml",
            e.name,
            e.status
        );
    }

    // ${VAR} expansion: check-config on the rendered file with the pod's
    // environment shows whether the daemon filled the names in.
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("raftinel.toml");
    let local = text.replace("\"/data\"", &format!("{:?}", dir.path().to_string_lossy()));
    fs::write(&conf, &local).expect("write toml");
    let (ok, out, err) = run(Command::new(&bin)
        .arg("check-config")
        .arg(&conf)
        .env("RAFTINEL_POD_NAME", "raftinel-1")
        .env("RAFTINEL_POD_NAMESPACE", "it"));
    assert!(
        ok,
        "raftinel check-config on the rendered raftinel.toml:\n{out}{err}"
    );
    let expanded = out.contains("raftinel-1.raftinel-headless.it.svc") && !out.contains("${");
    assert_eq!(
        expanded,
        c.feature("env-expansion") == Status::Implemented,
        "env-expansion is {:?} in contract.toml; check-config printed:\n{out}",
        c.feature("env-expansion")
    );

    // The group: three daemons from the rendered file over real Redis nodes.
    let topo = Topology::new(2);
    let redis_ports: Vec<u16> = std::iter::once(topo.master.port)
        .chain(topo.replicas.iter().map(|r| r.port))
        .collect();
    let peers = set.replicas as usize;
    assert_eq!(peers, 3, "production runs 3 pods");
    let sentinel_ports: Vec<u16> = (0..peers).map(|_| free_port()).collect();
    let admin_ports: Vec<u16> = (0..peers).map(|_| free_port()).collect();
    // The master by name (when `localhost` is 127.0.0.1 here, where the
    // Redis nodes listen), to see which name the daemons answer.
    let localhost_v4 = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 0))
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST);
    let master_host = if localhost_v4 {
        "localhost"
    } else {
        "127.0.0.1"
    };
    // All three start before any is waited for: a group forms only once a
    // majority of the peers answer.
    let mut daemons: Vec<SentinelProc> = admin_ports
        .iter()
        .enumerate()
        .map(|(i, admin)| {
            let dir = tempfile::Builder::new()
                .prefix("it-deploy-")
                .tempdir()
                .expect("temp dir");
            let conf = dir.path().join("raftinel.toml");
            let toml = loopback_toml(
                text,
                i,
                &sentinel_ports,
                &redis_ports,
                *admin,
                master_host,
                dir.path(),
            );
            fs::write(&conf, toml).expect("write toml");
            SentinelProc::spawn_unchecked(Kind::Raftinel, sentinel_ports[i], dir, conf)
        })
        .collect();
    for d in &mut daemons {
        d.wait_ready();
    }
    let scrapes = wait_for(
        group_bound(),
        "the group of three to form (one leader, 3 voters)",
        || {
            let mut bodies = Vec::new();
            for a in &admin_ports {
                let (code, body) = http_get(*a, "/metrics")?;
                if code != 200 {
                    return Err(format!("/metrics answered {code}"));
                }
                bodies.push(body);
            }
            let leaders = bodies
                .iter()
                .filter(|b| b.contains("\nraftinel_raft_is_leader 1\n"))
                .count();
            let voters = bodies
                .iter()
                .all(|b| b.contains("\nraftinel_raft_voters 3\n"));
            if leaders == 1 && voters {
                Ok(bodies)
            } else {
                Err(format!("{leaders} leaders, voters 3 everywhere: {voters}"))
            }
        },
    );
    let mut names: BTreeSet<String> = scrapes.iter().flat_map(|b| exported(b)).collect();
    // A request naming another cluster is refused and counted: the counter
    // the dashboard shows appears with its first increment.
    let refused =
        Conn::open(sentinel_ports[0]).cmd(&["RAFTINEL", "another/cluster", "status", "{}"]);
    assert!(
        matches!(refused, Resp::Error(_)),
        "RPC of another cluster: {}",
        refused.pretty()
    );
    names.extend(wait_for(EVENTUALLY, "the refused RPC counted", || {
        let (_, body) = http_get(admin_ports[0], "/metrics")?;
        let names = exported(&body);
        names
            .contains("raftinel_raft_rpc_refused_total")
            .then_some(names)
            .ok_or(body)
    }));

    // announce-hostnames: the master's address as configured (a name).
    if localhost_v4 {
        let reply =
            Conn::open(sentinel_ports[0]).cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"]);
        let host = reply
            .items()
            .unwrap_or_default()
            .first()
            .and_then(|h| h.as_str())
            .unwrap_or_default();
        assert_eq!(
            host == "localhost",
            c.feature("announce-hostnames") == Status::Implemented,
            "GET-MASTER-ADDR-BY-NAME answered {host:?}; announce-hostnames is {:?} in contract.toml",
            c.feature("announce-hostnames")
        );
    } else {
        eprintln!(
            "localhost is not 127.0.0.1 here: announce-hostnames not checked against the daemon"
        );
    }

    // HTTP paths of the contract on a daemon's admin listener.
    for h in &c.http {
        let (code, _) = http_get(admin_ports[0], &h.path).expect("admin listener");
        assert_eq!(
            code != 404,
            h.status == Status::Implemented,
            "GET {} answered {code}; contract.toml says {:?}",
            h.path,
            h.status
        );
    }

    // redis_exporter on the master and on a replica.
    for port in [topo.master.port, topo.replicas[0].port] {
        let exporter = crate::exporter::Exporter::start(&exporter_bin, port);
        let series = wait_for(EVENTUALLY, "redis_exporter scrapes Redis", || {
            let s = exporter.scrape()?;
            s.keys()
                .any(|(n, _)| n == "redis_instance_info")
                .then_some(s)
                .ok_or_else(|| "no redis_instance_info yet".to_string())
        });
        names.extend(series.into_keys().map(|(name, _)| name));
    }

    // Every name the rules and the dashboard use is exported, or pending.
    let pending = c.pending_metrics();
    let mut used = BTreeSet::new();
    for (_, expr, _) in alert_rules(&prod.docs) {
        used.extend(metric_names(&expr));
    }
    let dashboard: J = serde_json::from_str(
        &fs::read_to_string(deploy_dir().join("components/monitoring/raftinel-dashboard.json"))
            .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut panels = 0;
    for p in arr(&dashboard["panels"]) {
        panels += 1;
        for t in arr(&p["targets"]) {
            used.extend(metric_names(t["expr"].as_str().unwrap_or("")));
        }
    }
    for v in arr(&dashboard["templating"]["list"]) {
        used.extend(metric_names(v["definition"].as_str().unwrap_or("")));
    }
    // The k8s feature's metrics: not exported by a daemon without
    // [kubernetes] (this one); tests/it/k8s.rs checks them.
    let k8s_only = c.metrics_of(Status::KubernetesApi);
    assert!(
        k8s_only
            .iter()
            .all(|n| !names.contains(n) && used.contains(n)),
        "kubernetes-api metrics {k8s_only:?}: exported without [kubernetes], or used nowhere"
    );
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !names.contains(*n) && !pending.contains(*n) && !k8s_only.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "used by the rules or the dashboard, exported by nothing and not pending: {missing:?}"
    );
    let now_exported: Vec<&String> = pending.iter().filter(|n| names.contains(*n)).collect();
    assert!(
        now_exported.is_empty(),
        "exported now, still pending in contract.toml: {now_exported:?}"
    );
    let unused: Vec<&String> = pending.iter().filter(|n| !used.contains(*n)).collect();
    assert!(
        unused.is_empty(),
        "pending in contract.toml but used nowhere: {unused:?}"
    );
    eprintln!(
        "metrics: {} names used by {} alerts and {panels} dashboard panels; {} exported today, pending: {pending:?}",
        used.len(),
        alert_rules(&prod.docs).len(),
        used.len() - pending.len()
    );
}

fn group_bound() -> Duration {
    Duration::from_secs(45)
}

/// Every item of contract.toml is described in docs/kubernetes.md.
#[test]
fn the_contract_is_documented() {
    let c = contract();
    let doc =
        fs::read_to_string(repo().join("docs/kubernetes.md")).expect("read docs/kubernetes.md");
    let mut names: Vec<String> = vec![c.admin_port.to_string(), c.role_label.clone()];
    names.extend(c.http.iter().map(|h| format!("`{}", h.path)));
    names.extend(
        c.command
            .iter()
            .filter(|x| !x.words.is_empty())
            .map(|x| format!("raftinel {}", x.words.join(" "))),
    );
    names.extend(c.command.iter().flat_map(|x| x.flags.iter().cloned()));
    names.extend(c.env.iter().map(|e| e.name.clone()));
    names.extend(c.metric.iter().map(|m| m.name.clone()));
    let missing: Vec<&String> = names.iter().filter(|n| !doc.contains(n.as_str())).collect();
    assert!(
        missing.is_empty(),
        "docs/kubernetes.md does not mention {missing:?}"
    );
}

/// The Role of components/kubernetes-api and the ClusterRole of
/// components/drain-switchover grant exactly the calls the daemon's `k8s`
/// feature makes for each (`raftinel::pod::labels::API_CALLS`): none
/// missing, none extra, and their bindings give them to the pods' account.
#[test]
fn the_roles_grant_exactly_the_calls_the_daemon_makes() {
    for (component, kind) in [
        ("kubernetes-api", "Role"),
        ("drain-switchover", "ClusterRole"),
    ] {
        let dir = deploy_dir().join("components").join(component);
        let text = fs::read_to_string(dir.join("role.yaml")).expect("read role.yaml");
        let docs = parse_docs(&text);
        let role = one(&docs, kind);
        let mut granted = BTreeSet::new();
        for rule in arr(&role["rules"]) {
            for group in strs(&rule["apiGroups"]) {
                for res in strs(&rule["resources"]) {
                    for verb in strs(&rule["verbs"]) {
                        granted.insert((group.clone(), res.clone(), verb));
                    }
                }
            }
        }
        let used: BTreeSet<(String, String, String)> = raftinel::pod::labels::API_CALLS
            .iter()
            .filter(|c| c.3 == component)
            .map(|(g, r, v, _)| (g.to_string(), r.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            granted, used,
            "{component}: the {kind} against the daemon's calls"
        );
        let binding = one(&docs, &format!("{kind}Binding"));
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(binding["roleRef"]["kind"], kind);
        assert_eq!(binding["subjects"][0]["name"], "raftinel");
    }
}

/// Each component's raftinel.toml is the base's, unchanged, plus the
/// `[kubernetes]` table: they cannot drift apart.
#[test]
fn the_kubernetes_config_is_the_base_plus_its_table() {
    let base = fs::read_to_string(deploy_dir().join("base/raftinel.toml")).expect("base toml");
    for component in ["kubernetes-api", "drain-switchover"] {
        let path = deploy_dir().join(format!("components/{component}/raftinel.toml"));
        let k = fs::read_to_string(&path).expect("component toml");
        let start = k.find(&base).unwrap_or_else(|| {
            panic!(
                "{} does not hold deploy/base/raftinel.toml unchanged",
                path.display()
            )
        });
        let (head, tail) = (&k[..start], &k[start + base.len()..]);
        assert!(
            head.lines().all(|l| l.is_empty() || l.starts_with('#')),
            "only comments before the base: {head}"
        );
        let table: toml::Value = toml::from_str(tail).expect("the added part parses");
        assert_eq!(
            table
                .as_table()
                .map(|t| t.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["kubernetes".to_string()]),
            "{component}: only [kubernetes] is added"
        );
    }
}
