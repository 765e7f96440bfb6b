//! The RESP codec, both directions and both protocol versions, used by the
//! server, the links, the benchmark and the integration tests.
//!
//! - [`Frame`]: one value as it travels, with its encoder (RESP2 or RESP3 at
//!   write time).
//! - `request`: requests as a Redis server accepts them (multibulk and
//!   inline, Redis 7.0's limits and protocol error strings).
//! - `reply`: replies as a client reads them, incrementally and within
//!   [`Limits`], from a buffer or an async stream ([`FrameReader`]).
//!
//! It depends on nothing else in the crate.

mod frame;
pub mod reply;
pub mod request;

pub use frame::{format_double, Frame};
pub use reply::{
    encode_command, write_command, DecodeError, Decoder, FrameReader, Limits, ReadError,
};
pub use request::{string2ll, ProtocolError, RequestParser};
