//! The pub/sub commands: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE
//! on this daemon's local hub (`pubsub`), and PUBLISH, which in sentinel
//! mode only feeds hello messages to the core.

use super::cmd::{arity_err, err, Session};
use super::Server;
use crate::core::Input;
use crate::resp::Frame;

/// The channel on which PUBLISH is accepted.
const HELLO_CHANNEL: &[u8] = b"__sentinel__:hello";

/// `PUBLISH __sentinel__:hello <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub message: &'a [u8],
}

impl<'a> Publish<'a> {
    pub fn parse(argv: &'a [Vec<u8>]) -> Result<Self, Frame> {
        let (Some(channel), Some(message)) = (argv.get(1), argv.get(2)) else {
            return Err(arity_err("publish"));
        };
        if channel.as_slice() != HELLO_CHANNEL {
            return Err(err(
                "ERR Only HELLO messages are accepted by Sentinel instances.",
            ));
        }
        Ok(Publish { message })
    }

    pub fn execute(self, server: &Server) -> Frame {
        let input = Input::Hello {
            via: None,
            payload: String::from_utf8_lossy(self.message).into_owned(),
        };
        // The hello is accepted whatever the flush outcome: its flush (a peer
        // discovered) runs in the background, a failure is logged there.
        server.core.feed(input);
        Frame::Integer(1)
    }
}

/// `SUBSCRIBE channel...` / `PSUBSCRIBE pattern...` (`pattern` tells which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub pattern: bool,
    pub channels: &'a [Vec<u8>],
}

impl Subscribe<'_> {
    /// One confirmation per channel, in order, each with the count after it.
    pub fn execute(self, server: &Server, sess: &mut Session) -> Vec<Frame> {
        let kind = if self.pattern {
            "psubscribe"
        } else {
            "subscribe"
        };
        let mut out = Vec::with_capacity(self.channels.len());
        for ch in self.channels {
            let added = if self.pattern {
                sess.patterns.insert(ch.clone())
            } else {
                sess.channels.insert(ch.clone())
            };
            if added {
                if self.pattern {
                    server.hub.psubscribe(&sess.subscriber, ch);
                } else {
                    server.hub.subscribe(&sess.subscriber, ch);
                }
            }
            out.push(confirmation(kind, Frame::bulk(ch), sess));
        }
        sess.sync_counts();
        out
    }
}

/// `UNSUBSCRIBE [channel...]` / `PUNSUBSCRIBE [pattern...]`; no argument
/// means every subscription of that kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    pub pattern: bool,
    pub channels: &'a [Vec<u8>],
}

impl Unsubscribe<'_> {
    pub fn execute(self, server: &Server, sess: &mut Session) -> Vec<Frame> {
        let kind = if self.pattern {
            "punsubscribe"
        } else {
            "unsubscribe"
        };
        let targets: Vec<Vec<u8>> = if !self.channels.is_empty() {
            self.channels.to_vec()
        } else if self.pattern {
            sess.patterns.iter().cloned().collect()
        } else {
            sess.channels.iter().cloned().collect()
        };
        let mut out = Vec::with_capacity(targets.len().max(1));
        for ch in &targets {
            let removed = if self.pattern {
                sess.patterns.shift_remove(ch)
            } else {
                sess.channels.shift_remove(ch)
            };
            if removed {
                if self.pattern {
                    server.hub.punsubscribe(sess.handle.id, ch);
                } else {
                    server.hub.unsubscribe(sess.handle.id, ch);
                }
            }
            out.push(confirmation(kind, Frame::bulk(ch), sess));
        }
        if targets.is_empty() {
            out.push(confirmation(kind, Frame::NullBulk, sess));
        }
        sess.sync_counts();
        out
    }
}

fn confirmation(kind: &'static str, channel: Frame, sess: &Session) -> Frame {
    Frame::Push(vec![
        Frame::bulk(kind),
        channel,
        Frame::Integer(sess.subscriptions()),
    ])
}

/// Drops every subscription of a closing connection.
pub fn unsubscribe_all(server: &Server, sess: &mut Session) {
    for ch in sess.channels.drain(..) {
        server.hub.unsubscribe(sess.handle.id, &ch);
    }
    for p in sess.patterns.drain(..) {
        server.hub.punsubscribe(sess.handle.id, &p);
    }
}
