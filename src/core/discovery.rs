//! What INFO replies and hellos teach about a master's world: its replicas
//! and their replication state, reboots and role changes, the peer
//! sentinels and their addresses, epochs and master switches announced
//! outside a group; and the reset or switch of a master's address that
//! follows.

use super::event::{format_addr, EventKind};
use super::hello::{self, Hello};
use super::info::{self, ParsedInfo};
use super::instance::{Instance, Role};
use super::sentinel::{
    alloc_id, emit, prefix, reconfig_script, seeded_ip, MAddr, Sentinel, Slot, Touched,
};
use super::types::{Action, InstanceId, InstanceKind, Millis};

/// The most peers a master may list. Real deployments run 3 to 7 daemons.
pub const MAX_SENTINELS_PER_MASTER: usize = 64;

impl Sentinel {
    /// INFO from a master or replica: its state, the replicas it lists,
    /// the role it reports.
    pub(super) fn info_reply(
        &mut self,
        now: Millis,
        id: InstanceId,
        text: String,
        out: &mut Vec<Action>,
    ) {
        let Some((mi, slot)) = self.locate(id) else {
            return;
        };
        let resolve = self.globals.resolve_hostnames;
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        let ma = m.addr(self.globals.announce_hostnames);
        let reboot_period = m.reboot_down_after;
        let Some(inst) = self.slot_mut(mi, slot) else {
            return;
        };
        inst.link.reply_received();
        inst.link.info_inflight = false;
        if matches!(slot, Slot::Sentinel(_)) {
            return;
        }
        let is_master = slot == Slot::Master;
        let runid = inst.runid.clone();
        let mut p = record_info(inst, text, is_master, reboot_period, &ma, now, out);
        if is_master {
            let rebooted = runid.is_some() && p.run_id.is_some() && runid != p.run_id;
            self.judge_back_empty(mi, &p, rebooted, now, out);
        } else if let Some(id) = p.master_replid.as_deref() {
            self.master_info_behind(mi, id, out);
        }
        let slaves = std::mem::take(&mut p.slaves);
        self.discover_replicas(mi, slaves, resolve, now, out);
        let role = p.role.unwrap_or(Role::Unknown);
        if let Some(inst) = self.slot_mut(mi, slot) {
            role_change(inst, role, &ma, now, out);
        }
    }

    /// A replica reports a replication id that the master's last INFO here
    /// does not have: that INFO may predate a change of the master's id
    /// (Redis gives a master a new id when its first replica syncs), and
    /// selection and SENTINEL FAILOVER judge the replicas against it, so
    /// the master's INFO is asked again at once (one per such replica INFO
    /// at most, none while one is on its way).
    fn master_info_behind(&mut self, mi: usize, id: &str, out: &mut Vec<Action>) {
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        let i = &mut m.inst;
        let known = i.repl_id.as_deref() == Some(id) || i.repl_id2.as_deref() == Some(id);
        if !known && i.link.cmd_up && !i.link.info_inflight {
            super::failover::ask_info(i, out);
        }
    }

    /// The replicas a master's INFO lists that are not known yet: each is
    /// announced (`+slave`) and monitored, and the config is flushed.
    fn discover_replicas(
        &mut self,
        mi: usize,
        slaves: Vec<(String, i64)>,
        resolve: bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        let ma = m.addr(self.globals.announce_hostnames);
        let down_after = m.inst.down_after;
        let mut discovered = false;
        for (ip, port) in slaves {
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if !hello::valid_host(&ip, resolve) {
                continue;
            }
            let key = format_addr(&ip, port);
            if m.replicas.contains_key(&key) {
                continue;
            }
            // What the reported address resolved to, when known here.
            let resolved = seeded_ip(&ip, &m.resolved_names());
            // Without announce-hostnames Sentinel names a replica by its IP,
            // so one known by another name of the same IP is the same (the
            // old master of a failover, configured by name).
            let by_ip = |r: &Instance| r.port == port && r.ip.is_some() && r.ip == resolved;
            if !ma.announce && m.replicas.values().any(by_ip) {
                continue;
            }
            let mut r = Instance::new(
                alloc_id(&mut self.next_id),
                InstanceKind::Replica,
                key.clone(),
                ip,
                port,
                down_after,
                now,
            );
            r.ip = resolved;
            emit(out, EventKind::Slave, prefix(&r, &ma), Some(&ma.name));
            self.owners.insert(r.id, ma.name.clone());
            m.replicas.insert(key, r);
            discovered = true;
        }
        if discovered {
            out.push(Action::Flush);
        }
    }

    /// A message from a `__sentinel__:hello` channel (`via` = the instance
    /// whose pubsub link carried it) or a PUBLISH to us (`via` = None).
    pub(super) fn hello_in(
        &mut self,
        now: Millis,
        via: Option<InstanceId>,
        payload: &str,
        out: &mut Vec<Action>,
    ) -> Touched {
        if let Some(id) = via {
            if let Some(inst) = self.instance_mut(id) {
                inst.link.pc_last_activity = now;
            }
            // Our own hellos come back on every channel we publish to: they
            // keep the pubsub link alive and are not worth counting.
            if payload.contains(self.myid.as_str()) {
                return Touched::None;
            }
        }
        let masters = &self.masters;
        match hello::parse(payload, &self.myid, self.globals.resolve_hostnames, |n| {
            masters.contains_key(n)
        }) {
            Ok(h) if self.hello_may_teach(&h, via.is_some()) => self.process_hello(now, h, out),
            _ => {
                self.hello_rejected += 1;
                Touched::None
            }
        }
    }

    /// Who may tell this daemon about peers. Anyone who can reach the
    /// daemon's port may PUBLISH a hello to it, so such a hello only
    /// refreshes a peer already known under that master at that address;
    /// new peers and new addresses are learned from the hello channels of
    /// the monitored instances. And a master holds at most
    /// [`MAX_SENTINELS_PER_MASTER`] peers: each counts toward the majority a
    /// failover needs, so flooding a master's channel with invented peers
    /// must not be able to make that majority unreachable.
    fn hello_may_teach(&self, h: &Hello, from_link: bool) -> bool {
        let Some(m) = self.masters.get(&h.master_name) else {
            return true;
        };
        let known = m.sentinels.get(&h.runid);
        let same_address = known.is_some_and(|s| s.host == h.ip && s.port == h.port);
        if !from_link {
            return same_address;
        }
        known.is_some() || m.sentinels.len() < MAX_SENTINELS_PER_MASTER
    }

    /// Returns the masters the hello may have changed: its own, or all of
    /// them when a sentinel was added, moved or removed (a run id is looked
    /// for under every master).
    fn process_hello(&mut self, now: Millis, h: Hello, out: &mut Vec<Action>) -> Touched {
        let Some(mi) = self.masters.get_index_of(&h.master_name) else {
            return Touched::None;
        };
        let known = self.masters[mi].sentinels.values().any(|s| {
            s.host == h.ip && s.port == h.port && s.runid.as_deref() == Some(h.runid.as_str())
        });
        if !known {
            self.learn_sentinel(mi, &h, now, out);
        }
        self.hello_epochs(mi, &h, now, out);
        if let Some(si) = self.masters[mi].sentinels.get_mut(&h.runid) {
            si.last_hello_time = now;
        }
        if known {
            self.unless_quiet(Touched::One(mi))
        } else {
            Touched::All
        }
    }

    /// A peer whose hello names an address or runid not known under this
    /// master: an address switch of a known runid (`+sentinel-address-switch`,
    /// the old entries dropped everywhere), a new runid at a known address
    /// (`+sentinel-invalid-addr`, the old runid dropped), or a new peer
    /// (`+sentinel`). The peer is monitored and the config flushed.
    fn learn_sentinel(&mut self, mi: usize, h: &Hello, now: Millis, out: &mut Vec<Action>) {
        let removed = self.remove_sentinels_with_runid(mi, &h.runid, out);
        let m = &self.masters[mi];
        if removed > 0 {
            emit(
                out,
                EventKind::SentinelAddressSwitch,
                format!(
                    "{} ip {} port {} for {}",
                    m.prefix(self.globals.announce_hostnames),
                    h.ip,
                    h.port,
                    h.runid
                ),
                Some(&m.inst.name),
            );
        } else if let Some((pfx, rid)) = m
            .sentinels
            .values()
            .find(|s| s.host == h.ip && s.port == h.port)
            .map(|other| {
                (
                    prefix(other, &m.addr(self.globals.announce_hostnames)),
                    other.runid.clone(),
                )
            })
        {
            emit(
                out,
                EventKind::SentinelInvalidAddr,
                pfx,
                Some(&h.master_name),
            );
            if let Some(rid) = rid {
                for i in 0..self.masters.len() {
                    self.remove_sentinels_with_runid(i, &rid, out);
                }
            }
        }
        let id = alloc_id(&mut self.next_id);
        let m = &mut self.masters[mi];
        let mut si = Instance::new(
            id,
            InstanceKind::Sentinel,
            h.runid.clone(),
            h.ip.clone(),
            h.port,
            m.inst.down_after,
            now,
        );
        si.runid = Some(h.runid.clone());
        if removed == 0 {
            emit(
                out,
                EventKind::Sentinel,
                prefix(&si, &m.addr(self.globals.announce_hostnames)),
                Some(&m.inst.name),
            );
        }
        self.owners.insert(id, m.inst.name.clone());
        m.sentinels.insert(h.runid.clone(), si);
        if removed > 0 {
            self.update_sentinel_address_everywhere(mi, &h.runid, out);
        }
        out.push(Action::Flush);
    }

    /// What a hello says about epochs and the master's address, for a
    /// master outside a group: a newer current epoch is adopted, a newer
    /// config epoch with another address is a switch (`+switch-master`).
    fn hello_epochs(&mut self, mi: usize, h: &Hello, now: Millis, out: &mut Vec<Action>) {
        // In a group, epochs and master addresses come from committed state
        // only; hellos still teach peers and their addresses.
        let governed = self.cmaster(&h.master_name).is_some();
        if !governed && h.current_epoch > self.current_epoch {
            self.current_epoch = h.current_epoch;
            out.push(Action::Flush);
            emit(
                out,
                EventKind::NewEpoch,
                h.current_epoch.to_string(),
                Some(&h.master_name),
            );
        }

        let m = &mut self.masters[mi];
        if !governed && m.config_epoch < h.master_config_epoch {
            m.config_epoch = h.master_config_epoch;
            if h.master_port != m.inst.port || !m.inst.at_host(&h.master_ip) {
                let ma = m.addr(self.globals.announce_hostnames);
                let to_shown = m.shown_host(&h.master_ip, ma.announce).to_string();
                if let Some(si) = m.sentinels.get(&h.runid) {
                    emit(
                        out,
                        EventKind::ConfigUpdateFrom,
                        prefix(si, &ma),
                        Some(&ma.name),
                    );
                }
                emit(
                    out,
                    EventKind::SwitchMaster,
                    format!(
                        "{} {} {} {} {}",
                        ma.name, ma.shown, ma.port, to_shown, h.master_port
                    ),
                    Some(&ma.name),
                );
                self.switch_master_addr(mi, &h.master_ip, h.master_port, now, out);
                if let Some(script) = self.masters[mi].client_reconfig_script.clone() {
                    out.push(reconfig_script(
                        script,
                        &ma,
                        "observer",
                        &to_shown,
                        h.master_port,
                    ));
                }
            }
        }
    }

    /// Removes every sentinel with `runid` from master `mi`; returns how many.
    fn remove_sentinels_with_runid(
        &mut self,
        mi: usize,
        runid: &str,
        out: &mut Vec<Action>,
    ) -> usize {
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return 0;
        };
        let before = m.sentinels.len();
        let mut gone = Vec::new();
        m.sentinels.retain(|_, s| {
            let keep = s.runid.as_deref() != Some(runid);
            if !keep {
                gone.push(s.id);
                out.push(Action::Disconnect {
                    id: s.id,
                    link: None,
                });
            }
            keep
        });
        let removed = before - m.sentinels.len();
        self.unregister(gone);
        removed
    }

    /// A sentinel changed address under master `src`: give the same run id
    /// the new address under every other master.
    fn update_sentinel_address_everywhere(
        &mut self,
        src: usize,
        runid: &str,
        out: &mut Vec<Action>,
    ) {
        let Some(si) = self
            .masters
            .get_index(src)
            .and_then(|(_, m)| m.sentinels.get(runid))
        else {
            return;
        };
        let (host, ip, port) = (si.host.clone(), si.ip.clone(), si.port);
        let mut reconfigured = 0;
        for (mi, m) in self.masters.values_mut().enumerate() {
            let Some(s) = m.sentinels.get_mut(runid) else {
                continue;
            };
            if s.link.cmd_up {
                s.link.cmd_lost();
                out.push(Action::Disconnect {
                    id: s.id,
                    link: None,
                });
            }
            if mi == src {
                continue;
            }
            s.host = host.clone();
            s.ip = ip.clone();
            s.port = port;
            reconfigured += 1;
        }
        if reconfigured > 0 {
            let m = &self.masters[src];
            if let Some(si) = m.sentinels.get(runid) {
                emit(
                    out,
                    EventKind::SentinelAddressUpdate,
                    format!(
                        "{} {reconfigured} additional matching instances",
                        prefix(si, &m.addr(self.globals.announce_hostnames))
                    ),
                    Some(&m.inst.name),
                );
            }
        }
    }

    /// Sentinel's `sentinelResetMaster`: forget replicas (and
    /// sentinels if asked), close the master's links, clear its flags and
    /// failover state so a failover may start at once.
    pub(crate) fn reset_master(
        &mut self,
        mi: usize,
        now: Millis,
        reset_sentinels: bool,
        event: bool,
        out: &mut Vec<Action>,
    ) {
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        let mut gone = Vec::new();
        for r in m.replicas.values() {
            gone.push(r.id);
            out.push(Action::Disconnect {
                id: r.id,
                link: None,
            });
        }
        m.replicas.clear();
        if reset_sentinels {
            for s in m.sentinels.values() {
                gone.push(s.id);
                out.push(Action::Disconnect {
                    id: s.id,
                    link: None,
                });
            }
            m.sentinels.clear();
        }
        for id in gone {
            self.owners.remove(&id);
        }
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        out.push(Action::Disconnect {
            id: m.inst.id,
            link: None,
        });
        let i = &mut m.inst;
        i.link.cmd_lost();
        i.link.pc_up = false;
        i.s_down = false;
        i.o_down = false;
        m.fo.classic_odown = None;
        i.script_kill_sent = false;
        i.master_reboot = false;
        i.back_empty = None;
        i.master_down = false;
        m.leader = None;
        m.failover_in_progress = false;
        m.failover_start_time = 0;
        i.runid = None;
        i.slave_master_host = None;
        i.link.act_ping_time = Some(now);
        i.link.last_ping_time = None;
        // Sentinel releases the link and makes a new one: the next tick
        // connects at once (to the new address after a switch), not a
        // reconnect period after the last attempt on the old link.
        i.link.last_reconn_time = None;
        i.link.last_avail_time = now;
        i.link.last_pong_time = now;
        i.role_reported_time = now;
        i.role_reported = Role::Master;
        if event {
            let p = m.prefix(self.globals.announce_hostnames);
            emit(out, EventKind::ResetMaster, p, Some(&m.inst.name));
        }
    }

    /// Points master `mi` at a new address: the replicas other than
    /// the new master, plus the old master address, become its replicas.
    pub(crate) fn switch_master_addr(
        &mut self,
        mi: usize,
        host: &str,
        port: u16,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((_, m)) = self.masters.get_index(mi) else {
            return;
        };
        let mut addrs: Vec<(String, u16)> = m
            .replicas
            .values()
            .filter(|r| !(r.port == port && r.host.eq_ignore_ascii_case(host)))
            .map(|r| (r.host.clone(), r.port))
            .collect();
        if !(m.inst.host == host && m.inst.port == port) {
            addrs.push((m.inst.host.clone(), m.inst.port));
        }
        // The new master's replication history is what it reported as a
        // replica (the failover's safety rules compare against it); the old
        // master's must not linger under the new address.
        let history = m
            .replicas
            .values()
            .find(|r| r.port == port && r.host.eq_ignore_ascii_case(host))
            .map(|r| (r.repl_id.clone(), r.repl_id2.clone(), r.repl_offset));
        let moved = !(m.inst.host == host && m.inst.port == port);
        // What the names resolved to survives the new instances.
        let ips = m.resolved_names();
        self.reset_master(mi, now, false, false, out);
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        m.inst.host = host.to_string();
        m.inst.port = port;
        m.inst.ip = seeded_ip(host, &ips);
        if moved {
            let (id1, id2, offset) = history.unwrap_or((None, None, None));
            m.inst.repl_id = id1;
            m.inst.repl_id2 = id2;
            m.inst.repl_offset = offset;
        }
        m.inst.s_down_since = None;
        m.inst.o_down_since = None;
        let ma = m.addr(self.globals.announce_hostnames);
        let down_after = m.inst.down_after;
        for (h, p) in addrs {
            let key = format_addr(&h, p);
            if m.replicas.contains_key(&key) {
                continue;
            }
            let mut r = Instance::new(
                alloc_id(&mut self.next_id),
                InstanceKind::Replica,
                key.clone(),
                h,
                p,
                down_after,
                now,
            );
            r.ip = seeded_ip(&r.host, &ips);
            emit(out, EventKind::Slave, prefix(&r, &ma), Some(&ma.name));
            self.owners.insert(r.id, ma.name.clone());
            m.replicas.insert(key, r);
        }
        out.push(Action::Flush);
    }
}

/// Records what an INFO reply says about the instance that sent it:
/// replication ids and offsets, run id (a new one is a `+reboot`), where a
/// replica says its master is and whether its link to it is up, priority.
fn record_info(
    inst: &mut Instance,
    text: String,
    is_master: bool,
    reboot_period: u64,
    ma: &MAddr,
    now: Millis,
    out: &mut Vec<Action>,
) -> ParsedInfo {
    let p = info::parse(&text, is_master);
    inst.info = Some(text);
    inst.info_count += 1;
    inst.master_link_down_since = p.master_link_down_since;
    if p.master_replid.is_some() {
        inst.repl_id = p.master_replid.clone();
    }
    if p.master_replid2.is_some() {
        inst.repl_id2 = p.master_replid2.clone();
    }
    if p.master_repl_offset.is_some() {
        inst.repl_offset = p.master_repl_offset;
    }

    if let Some(run_id) = p.run_id.clone() {
        match &inst.runid {
            Some(old) if *old != run_id => {
                emit(out, EventKind::Reboot, prefix(inst, ma), Some(&ma.name));
                if is_master && reboot_period != 0 {
                    inst.master_reboot = true;
                    inst.master_reboot_since = now;
                }
                inst.runid = Some(run_id);
            }
            Some(_) => {}
            None => inst.runid = Some(run_id),
        }
    }
    if let Some(h) = p.master_host.clone() {
        if inst
            .slave_master_host
            .as_ref()
            .is_none_or(|old| !old.eq_ignore_ascii_case(&h))
        {
            inst.slave_master_host = Some(h);
            inst.slave_conf_change_time = now;
        }
    }
    if let Some(port) = p.master_port {
        if inst.slave_master_port != port {
            inst.slave_master_port = port;
            inst.slave_conf_change_time = now;
        }
    }
    if let Some(up) = p.master_link_up {
        inst.slave_master_link_up = up;
    }
    if let Some(v) = p.slave_priority {
        inst.slave_priority = v;
    }
    if let Some(v) = p.slave_repl_offset {
        inst.slave_repl_offset = v;
    }
    if let Some(v) = p.replica_announced {
        inst.replica_announced = v;
    }
    inst.info_refresh = Some(now);
    p
}

/// A change of the role an instance reports (`+role-change`, or
/// `-role-change` when it contradicts what it is monitored as).
fn role_change(inst: &mut Instance, role: Role, ma: &MAddr, now: Millis, out: &mut Vec<Action>) {
    if role != inst.role_reported {
        inst.role_reported = role;
        inst.role_reported_time = now;
        if role == Role::Slave {
            inst.slave_conf_change_time = now;
        }
        let coherent = matches!(
            (inst.kind, role),
            (InstanceKind::Master, Role::Master) | (InstanceKind::Replica, Role::Slave)
        );
        let kind = if coherent {
            EventKind::RoleChangeMatch
        } else {
            EventKind::RoleChangeMismatch
        };
        let shown = if role == Role::Master {
            "master"
        } else {
            "slave"
        };
        emit(
            out,
            kind,
            format!("{} new reported role is {shown}", prefix(inst, ma)),
            Some(&ma.name),
        );
    }
}
