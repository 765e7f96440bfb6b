//! The driver: owns the core behind a mutex, ticks it, feeds it link results,
//! and executes its actions (links, events, config flushes).
