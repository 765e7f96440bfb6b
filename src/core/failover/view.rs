//! What the committed state makes of a master as clients and peers see it:
//! its address, config epoch, flags and `failover-state`.

use super::{phase_str, same_addr, DescExtras, Sub};
use crate::core::group::{CommittedMaster, Failover, Phase};
use crate::core::sentinel::{MAddr, Master, Sentinel};

impl Sentinel {
    /// The committed record of a master, when this daemon is in a group and
    /// the group monitors it.
    pub(crate) fn cmaster(&self, name: &str) -> Option<&CommittedMaster> {
        self.committed.as_ref()?.masters.get(name)
    }

    pub(super) fn cfailover(&self, name: &str) -> Option<&Failover> {
        self.cmaster(name)?.failover.as_ref()
    }

    /// The master a committed failover replaces, as the leader's events name
    /// it: the committed address. This daemon's own view may have moved to
    /// the promoted replica already (it published the switch as an
    /// observer before it took the failover over, or restarted from a
    /// config written during the reconfiguration).
    pub(super) fn failover_maddr(&self, mi: usize) -> MAddr {
        let m = &self.masters[mi];
        match self.cmaster(&m.inst.name) {
            Some(cm) => {
                let announce = self.globals.announce_hostnames;
                MAddr {
                    name: m.inst.name.clone(),
                    host: cm.host.clone(),
                    port: cm.port,
                    shown: m.shown_host(&cm.host, announce).to_string(),
                    announce,
                }
            }
            None => m.addr(self.globals.announce_hostnames),
        }
    }

    /// The address clients are given for master `m` (GET-MASTER-ADDR-BY-NAME,
    /// hello, config rewrite): committed, and the promoted replica's once the
    /// committed failover reached reconf_slaves (Sentinel does the same).
    pub(crate) fn client_addr(&self, m: &Master) -> (String, u16) {
        match self.cmaster(&m.inst.name) {
            Some(cm) => match &cm.failover {
                Some(Failover {
                    phase: Phase::ReconfSlaves | Phase::UpdateConfig,
                    promoted: Some((h, p)),
                    ..
                }) => (h.clone(), *p),
                _ => (cm.host.clone(), cm.port),
            },
            None => (m.inst.host.clone(), m.inst.port),
        }
    }

    /// The master's configured address as SENTINEL MASTER(S) and INFO show it:
    /// the committed one, or the promoted replica's once this daemon
    /// published the switch (observers, from the committed promotion on;
    /// the failover's leader keeps the old address until the switch, as in
    /// Sentinel).
    /// Announced (`instance::announced`).
    pub(crate) fn shown_addr(&self, m: &Master) -> (String, u16) {
        let addr = match self.cmaster(&m.inst.name) {
            Some(cm) => self
                .published_early(m)
                .unwrap_or_else(|| (cm.host.clone(), cm.port)),
            None => (m.inst.host.clone(), m.inst.port),
        };
        self.show(m, addr)
    }

    /// An address of master `m` or of one of its instances, as shown
    /// (`instance::announced`).
    pub(crate) fn show(&self, m: &Master, (host, port): (String, u16)) -> (String, u16) {
        match m.shown_host(&host, self.globals.announce_hostnames) {
            shown if shown == host => (host, port),
            shown => (shown.to_string(), port),
        }
    }

    /// The promoted address of master `m`'s committed failover, when its
    /// promotion is committed and this daemon already published its switch
    /// (its config epoch reached the failover's).
    pub(super) fn published_early(&self, m: &Master) -> Option<(String, u16)> {
        let f = self.cfailover(&m.inst.name)?;
        let addr = f.promotion_committed()?;
        (m.config_epoch >= f.epoch).then(|| addr.clone())
    }

    /// Config epoch announced in hellos: the failover epoch once clients are
    /// told the promoted address.
    pub(crate) fn hello_config_epoch(&self, m: &Master) -> u64 {
        match self.cmaster(&m.inst.name) {
            Some(cm) => match &cm.failover {
                Some(f) if f.phase >= Phase::ReconfSlaves && f.promoted.is_some() => {
                    f.epoch.max(cm.config_epoch)
                }
                _ => cm.config_epoch.max(m.config_epoch),
            },
            None => m.config_epoch,
        }
    }

    /// Flags of an instance of master `m` with the failover's per-instance
    /// flags, and the master's `failover-state` field.
    pub(crate) fn failover_desc(
        &self,
        m: &Master,
        inst: &crate::core::instance::Instance,
    ) -> (crate::core::instance::FlagExtras, DescExtras) {
        use crate::core::types::InstanceKind;
        let mut x = crate::core::instance::FlagExtras::default();
        let mut d = DescExtras::default();
        // A daemon that published the switch of a failover it does not
        // lead describes the new master, as Sentinel's observers do: no
        // failover flags or state.
        let me = self.raft.node_id;
        let cf = self
            .cfailover(&m.inst.name)
            .filter(|f| f.leader == me || self.published_early(m).is_none());
        match inst.kind {
            InstanceKind::Master => {
                x.failover_in_progress = match self.cmaster(&m.inst.name) {
                    Some(_) => cf.is_some(),
                    None => m.failover_in_progress,
                };
                x.no_quorum = self.cut_off(&m.inst.name);
                if let Some(f) = cf {
                    x.force_failover = f.manual;
                    let local = m.fo.run.as_ref().filter(|r| r.epoch == f.epoch);
                    d.failover_state = Some(match local.map(|r| &r.sub) {
                        Some(Sub::WaitPromotion { .. }) => "wait_promotion",
                        _ => phase_str(f.phase),
                    });
                }
            }
            InstanceKind::Replica => {
                if let Some(f) = cf {
                    x.promoted = f
                        .promoted
                        .as_ref()
                        .is_some_and(|(h, p)| same_addr(h, *p, &inst.host, inst.port));
                    if let Some(run) = m.fo.run.as_ref().filter(|r| r.epoch == f.epoch) {
                        x.reconf = run.reconf.get(&inst.name).map(|r| r.flag());
                    }
                }
            }
            InstanceKind::Sentinel => {}
        }
        (x, d)
    }

    /// The group monitors master `name` but this daemon knows no Raft
    /// leader: what it answers is the last committed state, and no decision
    /// can be committed now (flags `no_quorum`, INFO `quorum=no`, CKQUORUM).
    pub(crate) fn cut_off(&self, name: &str) -> bool {
        self.cmaster(name).is_some() && self.raft.leader.is_none()
    }

    /// ODOWN votes for master `name` from committed state, when
    /// the group monitors it.
    pub(crate) fn committed_down_votes(&self, name: &str) -> Option<usize> {
        self.cmaster(name).map(|cm| cm.down_votes.len())
    }
}
