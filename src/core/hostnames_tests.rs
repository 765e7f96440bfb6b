//! The display rule of `resolve-hostnames` / `announce-hostnames`
//! (`instance::announced`, Sentinel's `announceSentinelAddr`): what each
//! place that shows or sends an address shows, before and after the links
//! resolved the names, with announce-hostnames off and on. Names here are
//! never looked up: the resolutions come in as `Input::Resolved`, as the
//! links report them.

use super::event::EventKind;
use super::instance::announced;
use super::sentinel::Sentinel;
use super::types::*;
use crate::core::persisted::{MasterState, PersistedState};

const MYID: &str = "55612eaa002986434ec916ab8760956e7119a840";

/// mymaster at `db-0:6379` with a known replica `db-1:6380`, names resolved
/// by the links, announced if `announce`.
fn core(announce: bool) -> Sentinel {
    let mut m = MasterState::new("mymaster", "db-0", 6379, 1);
    m.down_after_ms = 5000;
    m.known_replicas.push(("db-1".into(), 6380));
    let mut st = PersistedState {
        myid: Some(MYID.into()),
        masters: vec![m],
        ..Default::default()
    };
    st.globals.resolve_hostnames = true;
    st.globals.announce_hostnames = announce;
    Sentinel::new(st, CoreOptions::default(), 0).0
}

fn resolve(s: &mut Sentinel, replica: bool, ip: &str) {
    let m = &s.masters["mymaster"];
    let id = match replica {
        true => m.replicas["db-1:6380"].id,
        false => m.inst.id,
    };
    s.handle(0, Input::Resolved { id, ip: ip.into() });
}

/// The payloads of the `kind` events among `actions`.
fn payloads(actions: &[Action], kind: EventKind) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) if e.kind == kind => Some(e.message.clone()),
            _ => None,
        })
        .collect()
}

fn field(d: &[(&'static str, String)], name: &str) -> String {
    d.iter().find(|(k, _)| *k == name).unwrap().1.clone()
}

/// Every place an address is shown: GET-MASTER-ADDR-BY-NAME, MASTER's and
/// REPLICAS' name and ip, INFO's address, the hello's master, and what the
/// rewrite writes.
fn shown(s: &Sentinel) -> Vec<String> {
    let master = s.master_desc("mymaster", 0).unwrap();
    let replica = &s.replicas_desc("mymaster", 0).unwrap()[0];
    let info = s.info_sentinel_section(0, 0, 0);
    let address = info.split("address=").nth(1).unwrap().split(',').next();
    let st = s.persisted();
    let hello = s.hello_out(&s.masters["mymaster"]);
    vec![
        format!("{:?}", s.master_addr("mymaster").unwrap()),
        field(&master, "ip"),
        format!("{} {}", field(replica, "name"), field(replica, "ip")),
        address.unwrap().to_string(),
        hello.master_ip,
        format!("{} {:?}", st.masters[0].host, st.masters[0].known_replicas),
    ]
}

/// What `shown` lists when the names are shown...
const NAMES: [&str; 6] = [
    "(\"db-0\", 6379)",
    "db-0",
    "db-1:6380 db-1",
    "db-0:6379",
    "db-0",
    "db-0 [(\"db-1\", 6380)]",
];

/// ...and when the IPs they resolved to are (the rewrite keeps the names:
/// see `Sentinel::persisted`).
const IPS: [&str; 6] = [
    "(\"10.0.0.5\", 6379)",
    "10.0.0.5",
    "10.0.0.6:6380 10.0.0.6",
    "10.0.0.5:6379",
    "10.0.0.5",
    "db-0 [(\"db-1\", 6380)]",
];

#[test]
fn announced_is_the_ip_once_resolved_unless_names_are_announced() {
    assert_eq!(announced("db-0", None, false), "db-0");
    assert_eq!(announced("db-0", Some("10.0.0.5"), false), "10.0.0.5");
    assert_eq!(announced("db-0", Some("10.0.0.5"), true), "db-0");
    assert_eq!(announced("10.0.0.5", Some("10.0.0.5"), true), "10.0.0.5");
}

#[test]
fn without_announce_hostnames_every_address_is_the_resolved_ip() {
    let mut s = core(false);
    // Before any link resolved the names: shown as configured.
    assert_eq!(shown(&s), NAMES);
    resolve(&mut s, false, "10.0.0.5");
    resolve(&mut s, true, "10.0.0.6");
    assert_eq!(shown(&s), IPS);
    // Events too (the replica's `+sdown` names it and its master).
    let a = s.handle(5001, Input::Tick);
    assert_eq!(
        payloads(&a, EventKind::Sdown),
        [
            "master mymaster 10.0.0.5 6379",
            "slave 10.0.0.6:6380 10.0.0.6 6380 @ mymaster 10.0.0.5 6379"
        ]
    );
    // The name keeps identifying the instances: a new resolution (a pod
    // back with a new IP) is shown at once, and comparisons still match
    // the name.
    resolve(&mut s, false, "10.0.0.7");
    assert_eq!(shown(&s)[0], "(\"10.0.0.7\", 6379)");
    assert_eq!(s.masters["mymaster"].inst.host, "db-0");
    assert!(s.masters["mymaster"].inst.at_host("DB-0"));
    assert!(s.masters["mymaster"].inst.at_host("10.0.0.7"));
    assert!(!s.masters["mymaster"].inst.at_host("10.0.0.5"));

    // SENTINEL CONFIG SET announce-hostnames yes: the names again.
    let mut out = Vec::new();
    s.config_set("announce-hostnames", "yes", &mut out).unwrap();
    assert_eq!(shown(&s), NAMES);
}

#[test]
fn with_announce_hostnames_the_names_are_shown_whatever_they_resolve_to() {
    let mut s = core(true);
    resolve(&mut s, false, "10.0.0.5");
    resolve(&mut s, true, "10.0.0.6");
    assert_eq!(shown(&s), NAMES);
}

/// A failover to the replica known by name: `+switch-master` and the new
/// master's address show the IP its name resolved to, and the old master,
/// added back as a replica, keeps its resolution. The new master's INFO
/// listing the old one by IP finds that replica rather than adding a second
/// one (Sentinel names replicas by their IP without announce-hostnames).
#[test]
fn a_switch_keeps_what_the_names_resolved_to() {
    let mut s = core(false);
    resolve(&mut s, false, "10.0.0.5");
    resolve(&mut s, true, "10.0.0.6");
    let mut out = Vec::new();
    s.switch_master_addr(0, "db-1", 6380, 10, &mut out);
    assert_eq!(
        s.master_addr("mymaster").unwrap(),
        ("10.0.0.6".into(), 6380)
    );
    let replicas = s.replicas_desc("mymaster", 10).unwrap();
    assert_eq!(replicas.len(), 1);
    assert_eq!(field(&replicas[0], "name"), "10.0.0.5:6379");
    assert_eq!(
        payloads(&out, EventKind::Slave),
        ["slave 10.0.0.5:6379 10.0.0.5 6379 @ mymaster 10.0.0.6 6380"]
    );
    let id = s.masters["mymaster"].inst.id;
    s.handle(
        20,
        Input::InfoReply {
            id,
            text: "role:master\r\nslave0:ip=10.0.0.5,port=6379,state=online,offset=1,lag=0\r\n"
                .into(),
        },
    );
    assert_eq!(s.replicas_desc("mymaster", 20).unwrap().len(), 1);
}
