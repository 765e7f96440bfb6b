//! The pure core: Sentinel's monitoring state and rules, with no I/O.
//!
//! Nothing in `core/` touches a socket, a file, tokio or a clock, and it
//! imports nothing from the layers that drive it (the `layers` test checks it).
//! Time comes in as [`Millis`] (monotonic milliseconds chosen by the driver),
//! facts come in as [`Input`]s, and everything the daemon must do comes out as
//! [`Action`]s, each stating what it waits for, that the driver carries out.
//! That keeps every timing rule of Sentinel (down-after, the "master reports
//! replica" rule, hello and INFO cadence) testable in microseconds and lets a
//! simulator drive the same code. The group's replicated state and its
//! `apply` (`group.rs`), formation and membership decisions
//! (`membership.rs`) and the persisted state (`persisted.rs`) are pure too:
//! consensus feeds a committed state in as one more input and takes
//! proposals out as one more action.

pub mod commands;
mod detection;
mod discovery;
pub mod event;
pub mod failover;
pub mod group;
pub mod hello;
pub mod info;
mod info_section;
pub mod instance;
mod members;
pub mod membership;
pub mod persisted;
pub mod sentinel;
pub mod types;

pub use commands::{CmdError, Description, SimulateReply};
pub use event::{Event, EventKind, Level};
pub use persisted::{GlobalSentinelConfig, MasterState, PersistedState};
pub use sentinel::Sentinel;
pub use types::*;

#[cfg(test)]
mod failover_tests;
#[cfg(test)]
mod fence_tests;
#[cfg(test)]
mod hostnames_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
