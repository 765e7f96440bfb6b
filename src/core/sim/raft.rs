//! The Raft group, abstracted: one committed log, at most one leader per term,
//! always on the majority side of the daemon partition. openraft itself is
//! tested by its authors; what matters here is what the core sees: proposals
//! that commit only through a leader on the majority side (and may be lost),
//! committed states delivered late or not at all to cut-off daemons, and
//! leadership that moves.

use crate::core::group::{Command, CommandResponse, GroupState};
use crate::core::Millis;

/// One committed log entry and what the simulator knows about its origin.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub cmd: Command,
    /// Proposing daemon (None = bootstrap).
    pub proposer: Option<usize>,
    /// The proposer could reach a majority of the voters when it proposed.
    pub proposer_on_majority: bool,
    pub response: CommandResponse,
}

#[derive(Debug, Default)]
pub(super) struct RaftModel {
    /// The state before the first entry: the group's voters (a real group's
    /// first entry is its membership), so `apply` checks authority.
    pub initial: GroupState,
    pub log: Vec<Entry>,
    /// State after each entry (`states[i]` = after `log[i]`).
    pub states: Vec<GroupState>,
    pub leader: Option<usize>,
    pub term: u64,
    /// When the next leader may be elected (leader lost).
    pub election_at: Option<Millis>,
}

impl RaftModel {
    pub fn committed(&self) -> GroupState {
        self.states
            .last()
            .cloned()
            .unwrap_or_else(|| self.initial.clone())
    }

    /// Appends a committed entry and returns its 1-based index.
    pub fn commit(
        &mut self,
        cmd: Command,
        proposer: Option<usize>,
        proposer_on_majority: bool,
    ) -> usize {
        let mut state = self.committed();
        let response = state.apply(&cmd);
        self.log.push(Entry {
            cmd,
            proposer,
            proposer_on_majority,
            response,
        });
        self.states.push(state);
        self.log.len()
    }

    pub fn len(&self) -> usize {
        self.log.len()
    }
}
