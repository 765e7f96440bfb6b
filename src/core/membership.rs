//! Who is in the Raft group: formation (bootstrap or join), and every change
//! of membership the leader makes (a new daemon, an address update, a new
//! incarnation replacing its old voter, removals). Pure decisions: the
//! consensus layer gathers the inputs (peers' `status` answers, the leader's
//! probes of its members) and carries the answer out with openraft.
//!
//! The safety rule every change obeys: the group is never left without a
//! majority of live voters. openraft changes voters through joint consensus
//! (old and new configuration must both agree while the change commits), so
//! a change is made only when the current voters have a live majority *and*
//! the new voters will have one, counting a joining daemon as live. A member
//! is live when it answered the leader's probe as itself within the live
//! window; one not probed long enough counts as not live for a majority and
//! as possibly live for "the old one still answers".
//!
//! One change at a time: openraft refuses a change while another is being
//! committed, and every decision here is taken on the state it will change.

use std::fmt;

use super::group::Member;
use super::Millis;

/// How the leader last heard from a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Answered the leader's probe as itself within the live window.
    Live,
    /// Probed and silent (or answered by another node id) for this long.
    Silent(Millis),
    /// Not probed long enough to tell (a leader that just took over).
    Unknown,
}

impl Liveness {
    pub fn is_live(self) -> bool {
        self == Liveness::Live
    }

    /// Silent for at least `ms`.
    pub fn silent_for(self, ms: Millis) -> bool {
        matches!(self, Liveness::Silent(s) if s >= ms)
    }
}

/// One member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub id: u64,
    pub member: Member,
    /// A voter (else a learner).
    pub voter: bool,
    pub live: Liveness,
}

/// The leader's view of its group when a decision is asked of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    /// The leader's own node id (always live).
    pub leader: u64,
    /// Voters and learners, the leader included.
    pub members: Vec<MemberState>,
    /// A membership change is still being committed.
    pub changing: bool,
    /// The static peer list (`host:port` of each daemon), when configured.
    pub peers: Option<Vec<String>>,
    /// Requests are signed with the group secret: what a joiner says of
    /// itself (its own peer list) comes from a holder of the secret.
    pub authenticated: bool,
}

/// A daemon asking to be in the group (or to have its entry updated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub id: u64,
    /// `host:port` of its sentinel port, as its peers reach it.
    pub addr: String,
    /// Its Sentinel runid (empty from daemons that do not send it).
    pub myid: String,
    /// First join of a process whose Raft storage is empty.
    pub fresh: bool,
    /// The joiner's static peer list, when it has one.
    pub peers: Option<Vec<String>>,
}

/// A membership change for the consensus layer to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Replace a member's node data (address, myid): openraft's `SetNodes`.
    SetNode { id: u64, member: Member },
    /// Add a learner, let it catch up, then make it a voter.
    AddVoter { id: u64, member: Member },
    /// A learner already caught up becomes a voter.
    Promote { id: u64 },
    /// A new incarnation of the daemon behind voter `old`: added as a learner,
    /// then `old` is replaced by `id` in one joint change.
    Replace { old: u64, id: u64, member: Member },
    /// Remove a member (a voter through joint consensus).
    Remove { id: u64, voter: bool },
}

/// What the leader answers a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinDecision {
    /// Already a voter with this node data: nothing to do.
    Member,
    Change(Change),
    Refuse(Refusal),
}

/// Why a change is not made. Each is a clear answer to the asking daemon or
/// operator; none changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The joiner's node id is a voter but its storage is empty: its state
    /// was lost, and letting it vote with an empty log could elect a leader
    /// without committed entries.
    LostState {
        id: u64,
    },
    Malformed(String),
    /// Static peer list: the address is not in the leader's list.
    NotInPeerList {
        addr: String,
    },
    /// The node (an old incarnation, or the process at the old address)
    /// still answers as itself.
    StillAnswers {
        id: u64,
        addr: String,
    },
    /// Another live member is registered at this address.
    AddressTaken {
        id: u64,
        addr: String,
    },
    /// The change would leave the group (or the joint configuration) without
    /// a majority of live voters.
    NoLiveMajority {
        live: usize,
        voters: usize,
    },
    /// The leader has not probed this node long enough to tell whether it is
    /// live.
    NotProbedYet {
        id: u64,
    },
    /// Another membership change is being committed.
    Busy,
    NoSuchNode {
        id: u64,
    },
    /// The leader does not remove itself: stop it, and ask the next leader.
    IsLeader {
        id: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::LostState { id } => write!(
                f,
                "node {id} is already a voter but its raft data is empty: its state was lost"
            ),
            Refusal::Malformed(why) => write!(f, "malformed request: {why}"),
            Refusal::NotInPeerList { addr } => {
                write!(f, "{addr} is not in the leader's peer list")
            }
            Refusal::StillAnswers { id, addr } => {
                write!(f, "node {id} still answers at {addr}")
            }
            Refusal::AddressTaken { id, addr } => {
                write!(f, "live node {id} is registered at {addr}")
            }
            Refusal::NoLiveMajority { live, voters } => write!(
                f,
                "the group would be left without a majority of live voters ({live} live of {voters})"
            ),
            Refusal::NotProbedYet { id } => {
                write!(f, "node {id} has not been probed long enough; retry")
            }
            Refusal::Busy => f.write_str("another membership change is in progress; retry"),
            Refusal::NoSuchNode { id } => write!(f, "node {id} is not a member of the group"),
            Refusal::IsLeader { id } => write!(
                f,
                "node {id} is the raft leader: stop it, then ask the next leader"
            ),
        }
    }
}

/// Why a member is removed without a join asking for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReason {
    /// `SENTINEL RAFT FORGET` (or the `raftinel forget` subcommand).
    Forget,
    /// `SENTINEL RESET`: the daemon was not rediscovered by hello.
    Reset,
    /// Static peer list: the address is no longer in it.
    NotInPeerList,
    /// Unreachable for longer than the configured time.
    Unreachable,
    /// A learner that never became a voter and went silent.
    StaleLearner,
}

impl fmt::Display for RemoveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoveReason::Forget => "forgotten by an operator",
            RemoveReason::Reset => "not rediscovered after SENTINEL RESET",
            RemoveReason::NotInPeerList => "not in the peer list",
            RemoveReason::Unreachable => "unreachable",
            RemoveReason::StaleLearner => "a silent learner",
        })
    }
}

/// Timing of the leader's housekeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Housekeeping {
    /// Remove a voter unreachable this long (off when None).
    pub remove_unreachable_after: Option<Millis>,
    /// Remove a learner silent this long.
    pub learner_grace: Millis,
    /// Static peer list: remove a voter no longer listed once silent this long.
    pub unlisted_grace: Millis,
}

impl GroupView {
    fn get(&self, id: u64) -> Option<&MemberState> {
        self.members.iter().find(|m| m.id == id)
    }

    fn voters(&self) -> impl Iterator<Item = &MemberState> {
        self.members.iter().filter(|m| m.voter)
    }

    fn listed(&self, addr: &str) -> bool {
        self.peers
            .as_ref()
            .is_none_or(|p| p.iter().any(|a| a == addr))
    }

    /// Whether a joiner's address may be added: the leader's static list
    /// names it, or the joiner's own static list names it and every
    /// current voter. The second is a set scaled out: its new daemons
    /// start with the longer list before the running ones are given it
    /// (a StatefulSet creates the new pods first and rolls the others
    /// once those are ready).
    /// A joiner listed by the leader's peer list, or, in a group whose
    /// requests are signed, by its own list naming it and every voter (a
    /// set scaled out, whose running daemons still have the shorter list).
    /// Without a secret anyone reaching the port could send such a list.
    fn admits(&self, req: &JoinRequest) -> bool {
        self.listed(&req.addr)
            || (self.authenticated
                && req.peers.as_ref().is_some_and(|p| {
                    p.contains(&req.addr) && self.voters().all(|v| p.contains(&v.member.addr))
                }))
    }

    /// Whether going from the current voters to `new` (ids; `joining` is
    /// counted live) keeps a live majority in both configurations.
    fn joint_ok(&self, new: &[u64], joining: Option<u64>) -> Result<(), Refusal> {
        let live = |id: u64| {
            id == self.leader
                || Some(id) == joining
                || self.get(id).is_some_and(|m| m.live.is_live())
        };
        let old: Vec<u64> = self.voters().map(|m| m.id).collect();
        for config in [&old[..], new] {
            let n = config.iter().filter(|&&id| live(id)).count();
            if n * 2 <= config.len() {
                return Err(Refusal::NoLiveMajority {
                    live: n,
                    voters: config.len(),
                });
            }
        }
        Ok(())
    }
}

/// Whether `addr` is `host:port` with a port number.
fn valid_addr(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(h, p)| {
        !h.trim_start_matches('[').trim_end_matches(']').is_empty() && p.parse::<u16>().is_ok()
    }) && addr.len() <= 300
        && !addr.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn valid_myid(myid: &str) -> bool {
    myid.is_empty() || (myid.len() == 40 && myid.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The leader's answer to a join (see the module's safety rule).
///
/// - already a voter with the same address and myid: nothing to do;
/// - same node id, other address or myid (a daemon back on a new IP or
///   port): its entry is updated, unless a process still answers as that node
///   at the old address;
/// - new node id whose myid, or address, is that of a voter (the daemon's
///   Raft data was wiped: a new incarnation): it replaces the old voter,
///   only if the old one is silent and the rest stays a live majority;
/// - new node id otherwise: added as a learner, then as a voter (with a
///   static peer list, only an address in the list).
pub fn decide_join(view: &GroupView, req: &JoinRequest) -> JoinDecision {
    let decided = if req.id == 0 {
        Err(Refusal::Malformed("node id 0".into()))
    } else if !valid_addr(&req.addr) {
        Err(Refusal::Malformed(format!("bad address {:?}", req.addr)))
    } else if !valid_myid(&req.myid) {
        Err(Refusal::Malformed("bad myid".into()))
    } else {
        match view.get(req.id) {
            Some(me) => join_known(view, me, req),
            None => join_new(view, req),
        }
    };
    match decided {
        Ok(Some(change)) => JoinDecision::Change(change),
        Ok(None) => JoinDecision::Member,
        Err(r) => JoinDecision::Refuse(r),
    }
}

/// Whether `m` still answers as itself, for a change that assumes it is
/// gone (not probed long enough counts as "maybe").
fn gone(m: &MemberState) -> Result<(), Refusal> {
    match m.live {
        Liveness::Live => Err(Refusal::StillAnswers {
            id: m.id,
            addr: m.member.addr.clone(),
        }),
        Liveness::Unknown => Err(Refusal::NotProbedYet { id: m.id }),
        Liveness::Silent(_) => Ok(()),
    }
}

/// A join from a node id the group knows: nothing, an entry update, or a
/// learner's promotion.
fn join_known(
    view: &GroupView,
    me: &MemberState,
    req: &JoinRequest,
) -> Result<Option<Change>, Refusal> {
    if me.voter && req.fresh {
        return Err(Refusal::LostState { id: req.id });
    }
    let same = me.member.addr == req.addr && (req.myid.is_empty() || me.member.myid == req.myid);
    if !same {
        if let Some(other) = view
            .members
            .iter()
            .find(|m| m.id != req.id && m.member.addr == req.addr && m.live.is_live())
        {
            return Err(Refusal::AddressTaken {
                id: other.id,
                addr: req.addr.clone(),
            });
        }
        // The leader moving its own entry is the one process that runs as
        // that node: nothing else can answer for it.
        if me.member.addr != req.addr && req.id != view.leader {
            gone(me)?;
        }
        if view.changing {
            return Err(Refusal::Busy);
        }
        let member = Member::new(req.addr.clone(), req.myid.clone());
        return Ok(Some(Change::SetNode { id: req.id, member }));
    }
    if me.voter {
        return Ok(None);
    }
    if !view.admits(req) {
        return Err(Refusal::NotInPeerList {
            addr: req.addr.clone(),
        });
    }
    let mut new: Vec<u64> = view.voters().map(|m| m.id).collect();
    new.push(req.id);
    view.joint_ok(&new, Some(req.id))?;
    if view.changing {
        return Err(Refusal::Busy);
    }
    Ok(Some(Change::Promote { id: req.id }))
}

/// A join from a node id the group does not know: a new incarnation
/// replacing its old voter, or a new daemon.
fn join_new(view: &GroupView, req: &JoinRequest) -> Result<Option<Change>, Refusal> {
    if !view.admits(req) {
        return Err(Refusal::NotInPeerList {
            addr: req.addr.clone(),
        });
    }
    // The voter this daemon was before its data was wiped: same myid, else
    // same address (a daemon whose config was wiped too keeps its address
    // in a StatefulSet or a static list).
    let same_myid = |m: &&MemberState| !req.myid.is_empty() && m.member.myid == req.myid;
    let old = view
        .voters()
        .find(same_myid)
        .or_else(|| view.voters().find(|m| m.member.addr == req.addr));
    let mut new: Vec<u64> = view
        .voters()
        .map(|m| m.id)
        .filter(|&id| Some(id) != old.map(|o| o.id))
        .collect();
    new.push(req.id);
    if let Some(old) = old {
        // The leader is live by definition: its own runid or address is
        // never a replacement.
        if old.id == view.leader {
            return Err(Refusal::StillAnswers {
                id: old.id,
                addr: old.member.addr.clone(),
            });
        }
        gone(old)?;
    }
    view.joint_ok(&new, Some(req.id))?;
    if view.changing {
        return Err(Refusal::Busy);
    }
    let member = Member::new(req.addr.clone(), req.myid.clone());
    Ok(Some(match old {
        Some(o) => Change::Replace {
            old: o.id,
            id: req.id,
            member,
        },
        None => Change::AddVoter { id: req.id, member },
    }))
}

/// The leader's answer to a removal (an operator's FORGET, a RESET that did
/// not rediscover the daemon, the peer list, the unreachable timer): only a
/// member that is not answering, never the leader itself, and only if the
/// rest keeps a live majority.
pub fn decide_remove(view: &GroupView, id: u64) -> Result<Change, Refusal> {
    let Some(m) = view.get(id) else {
        return Err(Refusal::NoSuchNode { id });
    };
    if id == view.leader {
        return Err(Refusal::IsLeader { id });
    }
    gone(m)?;
    if m.voter {
        let new: Vec<u64> = view.voters().map(|v| v.id).filter(|&v| v != id).collect();
        view.joint_ok(&new, None)?;
    }
    if view.changing {
        return Err(Refusal::Busy);
    }
    Ok(Change::Remove { id, voter: m.voter })
}

/// The leader's periodic housekeeping: at most one removal per call, the
/// first that is due and safe. Learners that went silent; with a static peer
/// list, voters no longer listed; with `remove_unreachable_after`, voters
/// unreachable that long.
pub fn housekeeping(view: &GroupView, hk: &Housekeeping) -> Option<(Change, RemoveReason)> {
    let mut due: Vec<(u64, RemoveReason)> = Vec::new();
    for m in &view.members {
        if m.id == view.leader {
            continue;
        }
        if !m.voter && m.live.silent_for(hk.learner_grace) {
            due.push((m.id, RemoveReason::StaleLearner));
        } else if m.voter && !view.listed(&m.member.addr) && m.live.silent_for(hk.unlisted_grace) {
            due.push((m.id, RemoveReason::NotInPeerList));
        } else if m.voter
            && hk
                .remove_unreachable_after
                .is_some_and(|after| m.live.silent_for(after))
        {
            due.push((m.id, RemoveReason::Unreachable));
        }
    }
    due.into_iter()
        .find_map(|(id, why)| decide_remove(view, id).ok().map(|c| (c, why)))
}

// ------------------------------------------------------------ formation

/// A peer's answer to `status`, as formation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAnswer {
    /// Where it was asked.
    pub addr: String,
    pub id: u64,
    /// Its group's cluster id (None: not in a group yet, or a release that
    /// does not say).
    pub cluster_id: Option<String>,
    /// It belongs to a group.
    pub initialized: bool,
}

/// What a daemon that is not a voter knows when it decides how to get in.
#[derive(Debug, Clone, Copy)]
pub struct FormationView<'a> {
    pub me: u64,
    /// This daemon's own address as peers reach it.
    pub addr: &'a str,
    /// Its cluster id: persisted with its Raft data, or configured. None: it
    /// adopts the id of the group it joins, or generates one at bootstrap.
    pub cluster_id: Option<&'a str>,
    /// No log and no term: only such a node may bootstrap.
    pub blank: bool,
    /// Static peer list (this daemon's address included), when configured.
    pub static_peers: Option<&'a [String]>,
    /// Other daemons it knows of (peer list or hello discovery).
    pub known_peers: usize,
    pub answers: &'a [PeerAnswer],
    /// Node ids of peers that answered earlier but not now (a peer may have
    /// bootstrapped and crashed before anyone joined it).
    pub absent: &'a [u64],
    /// Discovery mode: the grace windows for hellos are over.
    pub grace_over: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formation {
    /// Ask `via` (a member) to be added; adopt `cluster_id`.
    Join {
        via: String,
        cluster_id: String,
    },
    /// Start a new group with this daemon as its only voter.
    Bootstrap,
    Wait(WaitReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Fewer than a majority of the known daemons answered.
    TooFewAnswers { answered: usize, known: usize },
    /// Another daemon (smallest node id, or the first peer) bootstraps.
    NotMine,
    /// Still listening for hellos.
    Grace,
    /// The daemons it reaches belong to different groups and it has no
    /// cluster id of its own to choose: it never merges them.
    SeveralGroups(Vec<String>),
    /// It holds Raft data but no group is reachable: it never starts a
    /// second one.
    HasData,
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::TooFewAnswers { answered, known } => write!(
                f,
                "only {answered} of {known} known peers answered; a majority must, before a group is formed"
            ),
            WaitReason::NotMine => f.write_str("another daemon bootstraps the group"),
            WaitReason::Grace => f.write_str("listening for peers"),
            WaitReason::SeveralGroups(ids) => write!(
                f,
                "the reachable daemons belong to different groups ({}); set [raft] cluster-id to choose",
                ids.join(", ")
            ),
            WaitReason::HasData => f.write_str("no member of its group answers yet"),
        }
    }
}

/// How a daemon that is not (yet) a voter gets into a group.
///
/// - It joins a group that a peer it reaches belongs to: the one with its own
///   cluster id when it has one (another cluster's group is never joined:
///   two deployments never merge), else the only one it reaches (several:
///   it waits and says so).
/// - Otherwise it bootstraps only if its storage is blank, a majority of the
///   daemons it knows (itself included) answered that they are in no group,
///   and it is the one chosen: the first peer of a static list, else the
///   smallest node id among those that answered now or before (one that
///   answered and then went silent may have bootstrapped and crashed before
///   anyone joined it: waiting for it keeps the deployment to one group),
///   once the hello grace is over.
pub fn decide_formation(v: &FormationView<'_>) -> Formation {
    let groups: Vec<&PeerAnswer> = v
        .answers
        .iter()
        .filter(|a| a.initialized && a.id != v.me)
        .filter(|a| match (v.cluster_id, &a.cluster_id) {
            (Some(mine), Some(theirs)) => mine == theirs,
            // A release that does not say its id: the join itself names ours
            // and is refused if it differs.
            (Some(_), None) => true,
            (None, theirs) => theirs.is_some(),
        })
        .collect();
    let mut ids: Vec<String> = groups.iter().filter_map(|a| a.cluster_id.clone()).collect();
    ids.sort();
    ids.dedup();
    if v.cluster_id.is_none() && ids.len() > 1 {
        return Formation::Wait(WaitReason::SeveralGroups(ids));
    }
    if let Some(a) = groups.first() {
        let cluster_id = v
            .cluster_id
            .map(str::to_string)
            .or_else(|| a.cluster_id.clone())
            .unwrap_or_default();
        return Formation::Join {
            via: a.addr.clone(),
            cluster_id,
        };
    }
    if !v.blank {
        return Formation::Wait(WaitReason::HasData);
    }
    let answered = v.answers.len();
    if (answered + 1) * 2 <= v.known_peers + 1 {
        return Formation::Wait(WaitReason::TooFewAnswers {
            answered,
            known: v.known_peers,
        });
    }
    match v.static_peers {
        Some(peers) => {
            if peers.first().map(String::as_str) != Some(v.addr) {
                return Formation::Wait(WaitReason::NotMine);
            }
        }
        None => {
            if !v.grace_over {
                return Formation::Wait(WaitReason::Grace);
            }
            if v.answers.iter().any(|a| a.id < v.me) || v.absent.iter().any(|&id| id < v.me) {
                return Formation::Wait(WaitReason::NotMine);
            }
        }
    }
    Formation::Bootstrap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn myid(i: u64) -> String {
        format!("{i:040x}")
    }

    fn ms(id: u64, voter: bool, live: Liveness) -> MemberState {
        MemberState {
            id,
            member: Member::new(format!("10.0.0.{id}:26379"), myid(id)),
            voter,
            live,
        }
    }

    /// Leader 1, voters 1..=n, the others as given.
    fn group(n: u64, live: &[(u64, Liveness)]) -> GroupView {
        GroupView {
            leader: 1,
            members: (1..=n)
                .map(|i| {
                    let l = live
                        .iter()
                        .find(|(id, _)| *id == i)
                        .map_or(Liveness::Live, |(_, l)| *l);
                    ms(i, true, l)
                })
                .collect(),
            changing: false,
            peers: None,
            authenticated: false,
        }
    }

    fn join(id: u64, addr: &str, myid: &str) -> JoinRequest {
        JoinRequest {
            peers: None,
            id,
            addr: addr.into(),
            myid: myid.into(),
            fresh: false,
        }
    }

    const DEAD: Liveness = Liveness::Silent(60_000);

    #[test]
    fn a_member_with_the_same_data_is_already_in() {
        let g = group(3, &[]);
        assert_eq!(
            decide_join(&g, &join(2, "10.0.0.2:26379", &myid(2))),
            JoinDecision::Member
        );
        // A retried join of a blank node that the group counts as a voter.
        let mut fresh = join(2, "10.0.0.2:26379", &myid(2));
        fresh.fresh = true;
        assert_eq!(
            decide_join(&g, &fresh),
            JoinDecision::Refuse(Refusal::LostState { id: 2 })
        );
    }

    #[test]
    fn a_daemon_back_on_a_new_address_keeps_its_voter() {
        // Its old address is silent: its entry moves.
        let g = group(3, &[(3, DEAD)]);
        let req = join(3, "10.0.0.33:26380", &myid(3));
        assert_eq!(
            decide_join(&g, &req),
            JoinDecision::Change(Change::SetNode {
                id: 3,
                member: Member::new("10.0.0.33:26380", myid(3)),
            })
        );
        // Something still answers as node 3 at the old address: two
        // processes claim one id, nothing changes.
        let g = group(3, &[]);
        assert!(matches!(
            decide_join(&g, &req),
            JoinDecision::Refuse(Refusal::StillAnswers { id: 3, .. })
        ));
        // The leader itself, restarted on another port and still leading.
        let mut g = group(3, &[]);
        g.leader = 3;
        assert!(matches!(
            decide_join(&g, &req),
            JoinDecision::Change(Change::SetNode { id: 3, .. })
        ));
        // Another live member sits at the claimed address.
        let req = join(3, "10.0.0.2:26379", &myid(3));
        assert!(matches!(
            decide_join(&group(3, &[(3, DEAD)]), &req),
            JoinDecision::Refuse(Refusal::AddressTaken { id: 2, .. })
        ));
    }

    #[test]
    fn a_new_incarnation_replaces_its_silent_old_voter() {
        let req = join(77, "10.0.0.3:26379", &myid(3));
        assert_eq!(
            decide_join(&group(3, &[(3, DEAD)]), &req),
            JoinDecision::Change(Change::Replace {
                old: 3,
                id: 77,
                member: Member::new("10.0.0.3:26379", myid(3)),
            })
        );
        // Same address, config wiped too (a new myid): still that voter.
        let req2 = join(78, "10.0.0.3:26379", &myid(99));
        assert!(matches!(
            decide_join(&group(3, &[(3, DEAD)]), &req2),
            JoinDecision::Change(Change::Replace { old: 3, .. })
        ));
        // The old incarnation still answers.
        assert!(matches!(
            decide_join(&group(3, &[]), &req),
            JoinDecision::Refuse(Refusal::StillAnswers { id: 3, .. })
        ));
        // The rest is no live majority: 1 live of 3 before the change.
        assert_eq!(
            decide_join(&group(3, &[(2, DEAD), (3, DEAD)]), &req),
            JoinDecision::Refuse(Refusal::NoLiveMajority { live: 1, voters: 3 })
        );
        // Not probed yet: no decision on a guess.
        assert_eq!(
            decide_join(&group(3, &[(3, Liveness::Unknown)]), &req),
            JoinDecision::Refuse(Refusal::NotProbedYet { id: 3 })
        );
    }

    #[test]
    fn new_daemons_join_while_the_group_keeps_a_live_majority() {
        let req = join(9, "10.0.0.9:26379", &myid(9));
        assert!(matches!(
            decide_join(&group(3, &[(3, DEAD)]), &req),
            JoinDecision::Change(Change::AddVoter { id: 9, .. })
        ));
        // 2 of 4 live once added (and 1 of 3 before): refused.
        assert!(matches!(
            decide_join(&group(3, &[(2, DEAD), (3, DEAD)]), &req),
            JoinDecision::Refuse(Refusal::NoLiveMajority { .. })
        ));
        let mut g = group(3, &[]);
        g.changing = true;
        assert_eq!(decide_join(&g, &req), JoinDecision::Refuse(Refusal::Busy));
        g.changing = false;
        g.peers = Some(vec!["10.0.0.1:26379".into()]);
        assert!(matches!(
            decide_join(&g, &req),
            JoinDecision::Refuse(Refusal::NotInPeerList { .. })
        ));
        // A set scaled out: the joiner's own list names it and every voter
        // (the running daemons still have the shorter list). Taken only from
        // a signed request: without a secret anyone could send that list.
        let longer: Vec<String> = (1..=3)
            .chain([9])
            .map(|i| format!("10.0.0.{i}:26379"))
            .collect();
        let mut scaled = req.clone();
        scaled.peers = Some(longer.clone());
        assert!(matches!(
            decide_join(&g, &scaled),
            JoinDecision::Refuse(Refusal::NotInPeerList { .. })
        ));
        g.authenticated = true;
        assert!(matches!(
            decide_join(&g, &scaled),
            JoinDecision::Change(Change::AddVoter { id: 9, .. })
        ));
        // A list that leaves out a voter, or the joiner, is no reason.
        scaled.peers = Some(longer[1..].to_vec());
        assert!(matches!(
            decide_join(&g, &scaled),
            JoinDecision::Refuse(Refusal::NotInPeerList { .. })
        ));
        scaled.peers = Some(longer[..3].to_vec());
        assert!(matches!(
            decide_join(&g, &scaled),
            JoinDecision::Refuse(Refusal::NotInPeerList { .. })
        ));
        // A learner left over from an interrupted join is promoted.
        let mut g = group(3, &[]);
        g.members.push(ms(9, false, Liveness::Live));
        assert_eq!(
            decide_join(&g, &req),
            JoinDecision::Change(Change::Promote { id: 9 })
        );
    }

    #[test]
    fn malformed_joins_are_refused() {
        let g = group(1, &[]);
        for req in [
            join(0, "h:1", ""),
            join(5, "nohost", ""),
            join(5, "h:99999", ""),
            join(5, "h :1", ""),
            join(5, "h:1", "xyz"),
        ] {
            assert!(
                matches!(
                    decide_join(&g, &req),
                    JoinDecision::Refuse(Refusal::Malformed(_))
                ),
                "{req:?}"
            );
        }
    }

    #[test]
    fn removal_needs_a_silent_member_and_a_live_majority_left() {
        let g = group(3, &[(3, DEAD)]);
        assert_eq!(
            decide_remove(&g, 3),
            Ok(Change::Remove { id: 3, voter: true })
        );
        assert!(matches!(
            decide_remove(&group(3, &[]), 3),
            Err(Refusal::StillAnswers { .. })
        ));
        assert_eq!(decide_remove(&g, 1), Err(Refusal::IsLeader { id: 1 }));
        assert_eq!(decide_remove(&g, 8), Err(Refusal::NoSuchNode { id: 8 }));
        // 5 voters, 3 dead: the current voters have no live majority.
        let g = group(5, &[(3, DEAD), (4, DEAD), (5, DEAD)]);
        assert!(matches!(
            decide_remove(&g, 5),
            Err(Refusal::NoLiveMajority { live: 2, voters: 5 })
        ));
        // 4 voters, 2 dead: removing one leaves 2 live of 3.
        let g = group(4, &[(3, DEAD), (4, DEAD)]);
        assert!(matches!(
            decide_remove(&g, 4),
            Err(Refusal::NoLiveMajority { live: 2, voters: 4 })
        ));
        let g = group(5, &[(4, DEAD), (5, DEAD)]);
        assert_eq!(
            decide_remove(&g, 5),
            Ok(Change::Remove { id: 5, voter: true })
        );
    }

    #[test]
    fn housekeeping_removes_what_is_due_one_at_a_time() {
        let hk = Housekeeping {
            remove_unreachable_after: None,
            learner_grace: 30_000,
            unlisted_grace: 5_000,
        };
        // Off by default: a dead voter stays.
        let g = group(5, &[(5, DEAD)]);
        assert_eq!(housekeeping(&g, &hk), None);
        let on = Housekeeping {
            remove_unreachable_after: Some(60_000),
            ..hk
        };
        assert_eq!(
            housekeeping(&g, &on),
            Some((
                Change::Remove { id: 5, voter: true },
                RemoveReason::Unreachable
            ))
        );
        let short = Housekeeping {
            remove_unreachable_after: Some(120_000),
            ..hk
        };
        assert_eq!(housekeeping(&g, &short), None, "not silent long enough");
        // Static list shrunk to 3 while 4 and 5 are gone.
        let mut g = group(5, &[(4, DEAD), (5, DEAD)]);
        g.peers = Some((1..=3).map(|i| format!("10.0.0.{i}:26379")).collect());
        assert_eq!(
            housekeeping(&g, &hk),
            Some((
                Change::Remove { id: 4, voter: true },
                RemoveReason::NotInPeerList
            ))
        );
        // A listed peer that is down stays.
        let mut g = group(3, &[(3, DEAD)]);
        g.peers = Some((1..=3).map(|i| format!("10.0.0.{i}:26379")).collect());
        assert_eq!(housekeeping(&g, &hk), None);
        // A silent learner goes.
        let mut g = group(3, &[]);
        g.members.push(ms(9, false, Liveness::Silent(40_000)));
        assert_eq!(
            housekeeping(&g, &hk),
            Some((
                Change::Remove {
                    id: 9,
                    voter: false
                },
                RemoveReason::StaleLearner
            ))
        );
    }

    fn answer(addr: &str, id: u64, cluster: Option<&str>, init: bool) -> PeerAnswer {
        PeerAnswer {
            addr: addr.into(),
            id,
            cluster_id: cluster.map(str::to_string),
            initialized: init,
        }
    }

    fn view<'a>(answers: &'a [PeerAnswer], cluster: Option<&'a str>) -> FormationView<'a> {
        FormationView {
            me: 5,
            addr: "a:1",
            cluster_id: cluster,
            blank: true,
            static_peers: None,
            known_peers: 2,
            answers,
            absent: &[],
            grace_over: true,
        }
    }

    #[test]
    fn formation_joins_its_own_group_and_never_another() {
        let a = [
            answer("b:1", 7, Some("x"), true),
            answer("c:1", 9, None, false),
        ];
        assert_eq!(
            decide_formation(&view(&a, None)),
            Formation::Join {
                via: "b:1".into(),
                cluster_id: "x".into()
            }
        );
        // Its own cluster id is another: it never joins that group.
        let f = decide_formation(&view(&a, Some("y")));
        assert!(!matches!(f, Formation::Join { .. }), "{f:?}");
        let two = [
            answer("b:1", 7, Some("x"), true),
            answer("c:1", 9, Some("z"), true),
        ];
        assert_eq!(
            decide_formation(&view(&two, None)),
            Formation::Wait(WaitReason::SeveralGroups(vec!["x".into(), "z".into()]))
        );
        assert!(matches!(
            decide_formation(&view(&two, Some("z"))),
            Formation::Join { via, .. } if via == "c:1"
        ));
    }

    #[test]
    fn formation_bootstraps_only_blank_with_a_majority_and_the_smallest_id() {
        let blank = [answer("b:1", 7, None, false), answer("c:1", 9, None, false)];
        assert_eq!(decide_formation(&view(&blank, None)), Formation::Bootstrap);
        let mut v = view(&blank, None);
        v.me = 8;
        assert_eq!(decide_formation(&v), Formation::Wait(WaitReason::NotMine));
        let mut v = view(&blank, None);
        v.blank = false;
        assert_eq!(decide_formation(&v), Formation::Wait(WaitReason::HasData));
        let one = [answer("b:1", 7, None, false)];
        let mut v = view(&one, None);
        v.known_peers = 3;
        assert_eq!(
            decide_formation(&v),
            Formation::Wait(WaitReason::TooFewAnswers {
                answered: 1,
                known: 3
            })
        );
        // A smaller peer that answered before and is silent now may have
        // bootstrapped: wait for it.
        let mut v = view(&blank, None);
        v.absent = &[3];
        assert_eq!(decide_formation(&v), Formation::Wait(WaitReason::NotMine));
        let mut v = view(&blank, None);
        v.grace_over = false;
        assert_eq!(decide_formation(&v), Formation::Wait(WaitReason::Grace));
        // Static list: the first peer, whatever the ids.
        let peers = ["a:1".to_string(), "b:1".into(), "c:1".into()];
        let mut v = view(&blank, None);
        v.me = 100;
        v.static_peers = Some(&peers);
        assert_eq!(decide_formation(&v), Formation::Bootstrap);
        v.addr = "b:1";
        assert_eq!(decide_formation(&v), Formation::Wait(WaitReason::NotMine));
    }
}
