//! Failure detection: the periodic commands each instance gets (PING, INFO,
//! hello, `is-master-down-by-addr`), the replies that feed them, and the
//! SDOWN and ODOWN rules with their timing, as redis-sentinel 7.0.15 applies
//! them on each tick.

use super::event::{instance_prefix, Event, EventKind, MasterRef};
use super::instance::{Instance, Role};
use super::sentinel::{emit, link_spec, Master, Sentinel, Slot};
use super::types::{
    Action, HelloOut, InstanceId, InstanceKind, LinkAuth, LinkKind, Millis, PingReply, Timing,
};

/// Periodic commands are skipped on a link with this many unanswered commands.
const MAX_PENDING_COMMANDS: u32 = 100;
/// INFO cadence to replicas of a master that is down or failing over.
const FAST_INFO_PERIOD: u64 = 1000;

/// How often a master that answers is PINGed: a fifth of down-after when
/// that is shorter than Sentinel's period (down-after 1000: every 200 ms, so
/// a master that stops is seen down within down-after + 200 ms of the stop,
/// whatever the phase of the PINGs), never more often than every 100 ms.
/// With down-after of 5 s or more this is Sentinel's period: nothing changes.
pub(crate) fn master_probe_period(down_after: u64, ping_period: u64) -> u64 {
    (down_after / 5).clamp(MIN_PROBE_PERIOD, ping_period.max(MIN_PROBE_PERIOD))
}

const MIN_PROBE_PERIOD: u64 = 100;

/// `refused-down-after-milliseconds`: the command link is down and every
/// attempt to reconnect it has been refused for that long. A crashed Redis
/// on a live host refuses at once; a hung or unreachable one does not (its
/// connects time out or its link stays up), so those still wait for
/// down-after.
fn refused_down(inst: &Instance, now: Millis) -> bool {
    inst.refused_down_after > 0
        && !inst.link.cmd_up
        && inst
            .link
            .refused_since
            .is_some_and(|s| now.saturating_sub(s) >= inst.refused_down_after)
}

pub(crate) fn send_ping(inst: &mut Instance, now: Millis, out: &mut Vec<Action>) {
    inst.link.pending += 1;
    inst.link.last_ping_time = Some(now);
    if inst.link.act_ping_time.is_none() {
        inst.link.act_ping_time = Some(now);
    }
    out.push(Action::SendPing { id: inst.id });
}

/// An INFO on `inst`'s command link, in flight until its reply.
pub(crate) fn send_info(inst: &mut Instance, out: &mut Vec<Action>) {
    inst.link.pending += 1;
    inst.link.info_inflight = true;
    out.push(Action::SendInfo { id: inst.id });
}

/// What every instance gets on each tick before the down checks: reconnect
/// when a link is down, then the periodic INFO / PING / hello.
struct Periodic<'a> {
    now: Millis,
    t: &'a Timing,
    /// None when no instance of the master is due for a hello this tick.
    hello: Option<&'a HelloOut>,
    client_name: &'a str,
    renames: &'a [(String, String)],
}

impl Periodic<'_> {
    fn run(&self, inst: &mut Instance, auth: &LinkAuth, info_period: u64, out: &mut Vec<Action>) {
        let now = self.now;
        if inst.link.disconnected() && inst.port != 0 {
            // A master is retried on every tick (Sentinel: once a second):
            // with refused-down-after the refusal must be seen to last, and
            // a master restarted in place is seen as soon as it listens,
            // before clients write to it if it came back empty
            // (`failover::empty`). The registry starts no attempt while
            // the last one is still connecting.
            let period = if inst.kind == InstanceKind::Master {
                MIN_PROBE_PERIOD
            } else {
                self.t.ping_period
            };
            let due = inst
                .link
                .last_reconn_time
                .is_none_or(|t| now.saturating_sub(t) >= period);
            if due {
                inst.link.last_reconn_time = Some(now);
                // Sentinel queues a PING on the new command link at once, so
                // an unreachable instance counts as "PING pending" from the
                // first reconnect attempt, not from its last good reply.
                if !inst.link.cmd_up && inst.link.act_ping_time.is_none() {
                    inst.link.act_ping_time = Some(now);
                }
                out.push(Action::Connect(link_spec(
                    inst,
                    auth,
                    self.renames,
                    self.client_name,
                )));
            }
        }
        if inst.link.disconnected() || inst.link.pending >= MAX_PENDING_COMMANDS {
            return;
        }
        // A master's INFO is also asked as soon as its command link comes
        // back (Sentinel waits for the period), with the PING (`link_up`),
        // and again here until one is read since: a master restarted in
        // place is seen at once, before its replicas resync from it if it
        // came back empty (`failover::empty`).
        let reconnected = inst.kind == InstanceKind::Master
            && inst
                .info_refresh
                .is_some_and(|t| t < inst.link.cc_conn_time);
        if inst.kind != InstanceKind::Sentinel
            && !inst.link.info_inflight
            && (reconnected
                || inst
                    .info_refresh
                    .is_none_or(|t| now.saturating_sub(t) > info_period))
        {
            send_info(inst, out);
        }
        let ping_period = inst.down_after.min(self.t.ping_period);
        let since_ping = |p: u64| {
            inst.link
                .last_ping_time
                .is_none_or(|t| now.saturating_sub(t) >= p)
        };
        let sentinel_due = now.saturating_sub(inst.link.last_pong_time) > ping_period
            && inst
                .link
                .last_ping_time
                .is_none_or(|t| now.saturating_sub(t) > ping_period / 2);
        // A master that answers is also probed every `master_probe_period`:
        // SDOWN counts from the first PING a stopped master leaves
        // unanswered, so how often it is probed bounds how late after
        // down-after a hung master is seen down (Sentinel's once a second
        // puts it anywhere in the second after down-after).
        let probe = master_probe_period(inst.down_after, ping_period);
        let probe_due = inst.kind == InstanceKind::Master
            && probe < ping_period
            && inst.link.act_ping_time.is_none()
            && since_ping(probe);
        if sentinel_due || probe_due {
            send_ping(inst, now, out);
        }
        let Some(hello) = self.hello else {
            return;
        };
        if !inst.link.hello_inflight
            && !inst.hello_held()
            && now.saturating_sub(inst.last_pub_time) > self.t.publish_period
        {
            inst.link.pending += 1;
            inst.link.hello_inflight = true;
            out.push(Action::SendHello {
                id: inst.id,
                hello: hello.clone(),
            });
        }
    }
}

/// What is per tick, not per master.
struct TickCtx {
    client_name: String,
    sentinel_auth: LinkAuth,
    t: Timing,
}

/// `+sdown` (`down`) or `-sdown` for `inst` of master `master`.
fn sdown_event(
    out: &mut Vec<Action>,
    down: bool,
    inst: &Instance,
    master: &Instance,
    announce: bool,
) {
    let m = MasterRef {
        name: &master.name,
        host: master.shown_host(announce),
        port: master.port,
    };
    let p = instance_prefix(
        inst.kind,
        &inst.shown_name(announce),
        inst.shown_host(announce),
        inst.port,
        Some(m),
    );
    let kind = if down {
        EventKind::Sdown
    } else {
        EventKind::SdownCleared
    };
    let mut ev = Event::new(kind, p, Some(&master.name));
    ev.subject = Some(inst.kind);
    out.push(Action::Emit(ev));
}

/// Whether master `inst` does not answer: its command link is down, or a
/// PING has waited longer than its probe period (a Redis that answers does
/// so within milliseconds).
fn unanswered(inst: &Instance, now: Millis, t: &Timing) -> bool {
    let probe = master_probe_period(inst.down_after, inst.down_after.min(t.ping_period));
    !inst.link.cmd_up
        || inst
            .link
            .act_ping_time
            .is_some_and(|a| now.saturating_sub(a) > probe)
}

/// SDOWN evaluation and forced reconnects of one instance.
/// Returns `Some(true)` when the instance just became SDOWN, `Some(false)`
/// when its SDOWN just ended (the caller publishes the event).
fn check_sdown(
    inst: &mut Instance,
    now: Millis,
    t: &Timing,
    reboot_down_after: u64,
    back_empty: bool,
    out: &mut Vec<Action>,
) -> Option<bool> {
    let link = &mut inst.link;
    let elapsed = if let Some(a) = link.act_ping_time {
        now.saturating_sub(a)
    } else if link.disconnected() {
        now.saturating_sub(link.last_avail_time)
    } else {
        0
    };
    let half = inst.down_after / 2;
    if link.cmd_up
        && now.saturating_sub(link.cc_conn_time) > t.min_link_reconnect_period
        && link
            .act_ping_time
            .is_some_and(|a| now.saturating_sub(a) > half)
        && now.saturating_sub(link.last_pong_time) > half
    {
        link.cmd_lost();
        out.push(Action::Disconnect {
            id: inst.id,
            link: Some(LinkKind::Command),
        });
    }
    if link.has_pubsub
        && link.pc_up
        && now.saturating_sub(link.pc_conn_time) > t.min_link_reconnect_period
        && now.saturating_sub(link.pc_last_activity) > t.publish_period.saturating_mul(3)
    {
        link.pc_up = false;
        out.push(Action::Disconnect {
            id: inst.id,
            link: Some(LinkKind::PubSub),
        });
    }
    let is_master = inst.kind == InstanceKind::Master;
    let refused = is_master && refused_down(inst, now);
    let timed = elapsed > inst.down_after
        || (is_master
            && inst.role_reported == Role::Slave
            && now.saturating_sub(inst.role_reported_time)
                > inst
                    .down_after
                    .saturating_add(t.info_period.saturating_mul(2)))
        || (is_master
            && inst.master_reboot
            && now.saturating_sub(inst.master_reboot_since) > reboot_down_after);
    // A master back without its data while a replica still holds it
    // (`failover::empty`): down at once.
    let down = timed || refused || back_empty;
    inst.s_down_refused_only = down && !timed && !back_empty;
    if down {
        if !inst.s_down {
            inst.s_down = true;
            inst.s_down_since = Some(now);
            return Some(true);
        }
    } else if inst.s_down {
        inst.s_down = false;
        inst.script_kill_sent = false;
        return Some(false);
    }
    None
}

impl Sentinel {
    /// One tick: every master in turn. What does not depend on the master
    /// is computed once per tick, not once per master.
    pub(super) fn tick(&mut self, now: Millis, out: &mut Vec<Action>) {
        let ctx = TickCtx {
            client_name: self.client_name(),
            sentinel_auth: self.sentinel_auth(),
            t: self.timing.clone(),
        };
        for mi in 0..self.masters.len() {
            self.tick_master(now, mi, &ctx, out);
        }
        self.forget_unseen(now, out);
    }

    /// One tick for one master, its replicas and its sentinels, in
    /// redis-sentinel's order.
    fn tick_master(&mut self, now: Millis, mi: usize, ctx: &TickCtx, out: &mut Vec<Action>) {
        let t = &ctx.t;
        let current_epoch = self.current_epoch;
        let Some((_, m)) = self.masters.get_index(mi) else {
            return;
        };
        // The hello is built only when one of the master's instances may
        // publish one on this tick (every 2 s each): building it costs
        // several allocations and a lookup of the committed state.
        let hello_due = |i: &Instance| {
            !i.link.hello_inflight
                && !i.hello_held()
                && now.saturating_sub(i.last_pub_time) > t.publish_period
        };
        let hello = (hello_due(&m.inst)
            || m.replicas.values().any(hello_due)
            || m.sentinels.values().any(hello_due))
        .then(|| self.hello_out(m));
        let back_empty = self.back_empty_tick(mi, out);
        let in_group = self.raft.initialized;
        let voters = self.raft.voters;
        let announce = self.globals.announce_hostnames;
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        let data_auth = m.data_auth();
        // Usually empty: cloning it allocates nothing.
        let renames = m.renames.clone();
        let per = Periodic {
            now,
            t,
            hello: hello.as_ref(),
            client_name: &ctx.client_name,
            renames: &renames,
        };

        // The master itself.
        per.run(&mut m.inst, &data_auth, t.info_period, out);
        if let Some(up) = check_sdown(&mut m.inst, now, t, m.reboot_down_after, back_empty, out) {
            sdown_event(out, up, &m.inst, &m.inst, announce);
        }
        // ODOWN starts with SDOWN and ends while ODOWN: only then can the
        // rule change anything, and only then are the committed votes looked
        // up (once per master and tick otherwise).
        if m.inst.s_down || m.inst.o_down || m.fo.classic_odown.is_some() {
            let group_votes = self.committed_down_votes(&self.masters[mi].inst.name);
            let m = &mut self.masters[mi];
            odown_rule(m, now, (group_votes, in_group, voters), announce, out);
        }
        let m = &mut self.masters[mi];
        ask_peers(m, now, t, current_epoch, announce, out);

        // Replicas: INFO every second while the master is down or failing
        // over, or does not answer (Sentinel: from ODOWN only), or while the
        // replica's own link to its master is down. A replica that finished
        // its sync a moment before the master died is then judged on what it
        // holds now, not on an INFO up to 10 s old (`failover::empty`).
        let fast = m.inst.o_down || m.failover_in_progress || unanswered(&m.inst, now, t);
        for r in m.replicas.values_mut() {
            let period = if fast || r.master_link_down_since != 0 {
                FAST_INFO_PERIOD
            } else {
                t.info_period
            };
            per.run(r, &data_auth, period, out);
            if let Some(up) = check_sdown(r, now, t, 0, false, out) {
                sdown_event(out, up, r, &m.inst, announce);
            }
        }
        for s in m.sentinels.values_mut() {
            per.run(s, &ctx.sentinel_auth, t.info_period, out);
            if let Some(up) = check_sdown(s, now, t, 0, false, out) {
                sdown_event(out, up, s, &m.inst, announce);
            }
        }
    }

    /// A link went down. A refused connect of a master with
    /// refused-down-after starts (or continues) its refusal streak and is
    /// retried at once; any other failure ends the streak.
    pub(super) fn link_down(
        &mut self,
        now: Millis,
        id: InstanceId,
        link: LinkKind,
        refused: bool,
        out: &mut Vec<Action>,
    ) {
        let client_name = self.client_name();
        let Some((mi, slot)) = self.locate(id) else {
            return;
        };
        let Some((_, m)) = self.masters.get_index_mut(mi) else {
            return;
        };
        let auth = m.data_auth();
        let renames = m.renames.clone();
        let Some(inst) = Sentinel::instance_in(m, slot) else {
            return;
        };
        match link {
            LinkKind::Command => {
                // A command link that drops (the process died, the
                // connection was reset) counts as a PING left unanswered
                // from now: SDOWN comes down-after after the loss, not after
                // the next reconnect attempt (Sentinel's clock starts with
                // the PING it queues on reconnecting).
                let was_up = inst.link.cmd_up;
                if was_up && inst.link.act_ping_time.is_none() {
                    inst.link.act_ping_time = Some(now);
                }
                inst.link.cmd_lost();
                if !refused {
                    inst.link.refused_since = None;
                } else if inst.link.refused_since.is_none() {
                    inst.link.refused_since = Some(now);
                }
                // With refused-down-after, a master whose connection
                // dropped is reconnected at once: a crashed process refuses
                // that first attempt, which starts the streak. Failed
                // attempts are retried by the tick.
                if was_up
                    && inst.kind == InstanceKind::Master
                    && inst.refused_down_after > 0
                    && inst.port != 0
                {
                    inst.link.last_reconn_time = Some(now);
                    out.push(Action::Connect(link_spec(
                        inst,
                        &auth,
                        &renames,
                        &client_name,
                    )));
                }
            }
            LinkKind::PubSub => inst.link.pc_up = false,
        }
    }

    pub(super) fn link_up(
        &mut self,
        now: Millis,
        id: InstanceId,
        link: LinkKind,
        out: &mut Vec<Action>,
    ) {
        let Some(inst) = self.instance_mut(id) else {
            return;
        };
        match link {
            LinkKind::Command => {
                inst.link.cmd_up = true;
                inst.link.refused_since = None;
                inst.link.cc_conn_time = now;
                inst.link.pending = 0;
                // Sentinel pings right after connecting (observed wire order:
                // SETNAME, PING, INFO).
                send_ping(inst, now, out);
                // A master's INFO follows at once rather than at the next
                // tick: a master restarted in place is judged on it, and
                // paused if it came back empty (`failover::empty`); every
                // write it acknowledges before then is lost.
                if inst.kind == InstanceKind::Master && !inst.link.info_inflight {
                    send_info(inst, out);
                }
            }
            LinkKind::PubSub => {
                if inst.link.has_pubsub {
                    inst.link.pc_up = true;
                    inst.link.pc_conn_time = now;
                    inst.link.pc_last_activity = now;
                }
            }
        }
    }

    pub(super) fn ping_reply(
        &mut self,
        now: Millis,
        id: InstanceId,
        reply: PingReply,
        out: &mut Vec<Action>,
    ) {
        let Some(inst) = self.instance_mut(id) else {
            return;
        };
        inst.link.reply_received();
        match reply {
            PingReply::Valid { pong } => {
                inst.link.last_avail_time = now;
                inst.link.act_ping_time = None;
                // -LOADING is a valid reply but proves the reboot is not over.
                if pong {
                    inst.master_reboot = false;
                }
            }
            PingReply::Other { busy } => {
                if busy && inst.s_down && !inst.script_kill_sent {
                    inst.script_kill_sent = true;
                    out.push(Action::ScriptKill { id });
                }
            }
        }
        inst.link.last_pong_time = now;
    }

    pub(super) fn master_down_reply(
        &mut self,
        now: Millis,
        peer: InstanceId,
        reply: Option<(i64, String, i64)>,
    ) {
        let Some((mi, slot @ Slot::Sentinel(_))) = self.locate(peer) else {
            return;
        };
        let Some(s) = self.slot_mut(mi, slot) else {
            return;
        };
        s.link.reply_received();
        s.link.ask_inflight = false;
        let Some((down, leader, epoch)) = reply else {
            return;
        };
        // A peer's vote is shown in replies and events; refuse nonsense.
        let Ok(epoch) = u64::try_from(epoch) else {
            return;
        };
        if leader.is_empty() || leader.len() > 64 {
            return;
        }
        s.last_master_down_reply_time = now;
        s.master_down = down == 1;
        if leader != "*" {
            s.leader = Some(leader);
            s.leader_epoch = epoch;
        }
    }

    /// The earliest time a master not yet SDOWN would become SDOWN by the
    /// PING clock (no valid reply for down-after) if nothing answers before: the runtime ticks
    /// then instead of at the next regular tick, so a dead master is seen
    /// down at down-after, not up to a tick period later. O(masters), asked
    /// once per tick.
    pub fn next_sdown_deadline(&self) -> Option<Millis> {
        self.masters
            .values()
            .filter(|m| !m.inst.s_down && m.inst.port != 0)
            .filter_map(|m| {
                let l = &m.inst.link;
                let refused = l
                    .refused_since
                    .filter(|_| m.inst.refused_down_after > 0)
                    .map(|s| s.saturating_add(m.inst.refused_down_after));
                let since = l
                    .act_ping_time
                    .or_else(|| l.disconnected().then_some(l.last_avail_time));
                let timed = since.map(|s| s.saturating_add(m.inst.down_after).saturating_add(1));
                match (timed, refused) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }
}

/// The ODOWN rule for one master. In a group ODOWN comes from the committed
/// down votes only: Sentinel's peer-reply rule would disagree with them for
/// a moment and flap `+odown`/`-odown` (clients refresh their topology on
/// both). `group_votes` None in a group: its state does not show this master
/// yet; the votes will decide, and only the end of local SDOWN ends ODOWN.
/// `voters`: the group's voters, for an SDOWN from refused connections only.
fn odown_rule(
    m: &mut Master,
    now: Millis,
    (group_votes, in_group, voters): (Option<usize>, bool, usize),
    announce: bool,
    out: &mut Vec<Action>,
) {
    match group_votes {
        Some(votes) => {
            let votes = refusal_votes(m, votes, voters);
            group_check_odown(m, now, votes, announce, out)
        }
        None if in_group => {
            if m.inst.o_down && !m.inst.s_down {
                m.fo.classic_odown = None;
                check_odown_votes(m, now, 0, announce, out);
            }
        }
        None => {
            check_odown(m, now, announce, out);
            m.fo.classic_odown = m.inst.o_down.then_some(None);
        }
    }
}

/// Asks the peers for their opinion of a master while it is SDOWN, once per
/// ask period each; an opinion older than five periods is forgotten. Only
/// the opinion: failovers are decided through the Raft group, so no vote is
/// ever requested (`*` instead of a runid).
fn ask_peers(
    m: &mut Master,
    now: Millis,
    t: &Timing,
    current_epoch: u64,
    announce: bool,
    out: &mut Vec<Action>,
) {
    for s in m.sentinels.values_mut() {
        if now.saturating_sub(s.last_master_down_reply_time) > t.ask_period.saturating_mul(5) {
            s.master_down = false;
            s.leader = None;
        }
        if !m.inst.s_down || s.link.disconnected() || s.link.ask_inflight {
            continue;
        }
        if now.saturating_sub(s.last_master_down_reply_time) < t.ask_period {
            continue;
        }
        s.link.pending += 1;
        s.link.ask_inflight = true;
        out.push(Action::AskMasterDown {
            peer: s.id,
            // As shown (Sentinel's `announceSentinelAddr`).
            master_ip: m.inst.shown_host(announce).to_string(),
            master_port: m.inst.port,
            epoch: current_epoch,
            runid: "*".to_string(),
        });
    }
}

/// ODOWN from our SDOWN plus the peers' opinions (outside a group).
fn check_odown(m: &mut Master, now: Millis, announce: bool, out: &mut Vec<Action>) {
    let votes = 1 + m.sentinels.values().filter(|s| s.master_down).count();
    let votes = refusal_votes(m, votes, 1 + m.sentinels.len());
    check_odown_votes(m, now, votes, announce, out);
}

/// The down votes that count for a master whose SDOWN comes from refused
/// connections only: all of them when every daemon (`voters`) agrees, else
/// too few for the quorum. A refusal seen by some daemons only (a firewall
/// rejecting some of them, a network problem on their side) waits for
/// down-after like any other failure.
pub(crate) fn refusal_votes(m: &Master, votes: usize, voters: usize) -> usize {
    if m.inst.s_down_refused_only && votes < voters {
        votes.min((m.quorum as usize).saturating_sub(1))
    } else {
        votes
    }
}

/// How long an ODOWN decided by the peer-reply rule before this daemon
/// could read the group's votes is kept while the votes catch up (opinions are
/// proposed at once and re-proposed every 250 ms, so well within this).
pub(crate) const ODOWN_HANDOVER_MS: u64 = 2000;

/// ODOWN in a group: the committed down votes decide. An ODOWN the peer-reply
/// rule decided before (the master died while the group formed) is handed
/// over without a `-odown`/`+odown` pair: it is kept while local SDOWN lasts
/// and the votes have not reached the quorum yet, for at most
/// `ODOWN_HANDOVER_MS`, so each down period publishes one `+odown`.
pub(crate) fn group_check_odown(
    m: &mut Master,
    now: Millis,
    votes: usize,
    announce: bool,
    out: &mut Vec<Action>,
) {
    if let Some(hold) = m.fo.classic_odown {
        let deadline = hold.unwrap_or(now.saturating_add(ODOWN_HANDOVER_MS));
        let catching_up =
            m.inst.o_down && m.inst.s_down && votes < m.quorum as usize && now < deadline;
        if catching_up {
            m.fo.classic_odown = Some(Some(deadline));
            return;
        }
        m.fo.classic_odown = None;
    }
    check_odown_votes(m, now, votes, announce, out);
}

/// ODOWN = local SDOWN and `votes >= quorum` (votes: the peers' answers plus
/// ours, or in a group the committed down opinions).
pub(crate) fn check_odown_votes(
    m: &mut Master,
    now: Millis,
    votes: usize,
    announce: bool,
    out: &mut Vec<Action>,
) {
    let odown = m.inst.s_down && votes >= m.quorum as usize;
    if odown {
        if !m.inst.o_down {
            m.inst.o_down = true;
            m.inst.o_down_since = Some(now);
            let msg = format!("{} #quorum {}/{}", m.prefix(announce), votes, m.quorum);
            emit(out, EventKind::Odown, msg, Some(&m.inst.name));
        }
    } else if m.inst.o_down {
        m.inst.o_down = false;
        let msg = m.prefix(announce);
        emit(out, EventKind::OdownCleared, msg, Some(&m.inst.name));
    }
}
