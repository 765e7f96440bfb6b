//! Local pub/sub: channels and patterns subscribed by clients of this daemon.
//!
//! The event emitter (observe/) calls [`Hub::publish`] for every Sentinel
//! event; SUBSCRIBE/PSUBSCRIBE connections register a [`Subscriber`] here.
//! Publishing never waits on a subscriber: each client has a bounded queue,
//! and a client whose queue is full is closed (its kill token is cancelled),
//! like Redis's pubsub client-output-buffer-limit. The PUBLISH *command* does
//! not come here: in sentinel mode it only feeds hello messages to the core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::glob;
use crate::resp::Frame;

/// Messages a subscriber may have queued before it is considered too slow
/// and disconnected.
pub const SUBSCRIBER_QUEUE: usize = 4096;

/// A message delivered to a subscribed client.
#[derive(Debug, Clone, PartialEq)]
pub enum PubMessage {
    Message {
        channel: Arc<[u8]>,
        payload: Arc<[u8]>,
    },
    PMessage {
        pattern: Arc<[u8]>,
        channel: Arc<[u8]>,
        payload: Arc<[u8]>,
    },
}

impl PubMessage {
    /// `message`/`pmessage` as a push (a plain array in RESP2).
    pub fn to_value(&self) -> Frame {
        match self {
            PubMessage::Message { channel, payload } => Frame::Push(vec![
                Frame::bulk("message"),
                Frame::bulk(&channel[..]),
                Frame::bulk(&payload[..]),
            ]),
            PubMessage::PMessage {
                pattern,
                channel,
                payload,
            } => Frame::Push(vec![
                Frame::bulk("pmessage"),
                Frame::bulk(&pattern[..]),
                Frame::bulk(&channel[..]),
                Frame::bulk(&payload[..]),
            ]),
        }
    }
}

/// The hub's handle on one client: where to queue its messages and how to
/// close it when it does not keep up.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub id: u64,
    pub tx: mpsc::Sender<PubMessage>,
    pub kill: CancellationToken,
}

impl Subscriber {
    fn deliver(&self, msg: PubMessage) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    client = self.id,
                    "closing pubsub client: too many pending messages"
                );
                self.kill.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Encodes the messages already queued for a client into `out`, until the
/// queue is empty or `out` holds `limit` bytes.
pub fn drain_queued(
    queue: &mut mpsc::Receiver<PubMessage>,
    proto: u8,
    out: &mut Vec<u8>,
    limit: usize,
) {
    while out.len() < limit {
        match queue.try_recv() {
            Ok(m) => m.to_value().encode(proto, out),
            Err(_) => break,
        }
    }
}

/// A daemon's own listener of every published message: `(channel, payload)`.
pub type Tap = mpsc::Sender<(Arc<str>, Arc<[u8]>)>;

#[derive(Debug, Default)]
struct Inner {
    channels: HashMap<Vec<u8>, IndexMap<u64, Subscriber>>,
    patterns: IndexMap<Vec<u8>, IndexMap<u64, Subscriber>>,
    /// The daemon's own listeners (`Hub::tap`), not clients: not counted,
    /// never disconnected; a full one misses the message.
    taps: Vec<Tap>,
}

/// Channel and pattern subscriptions of all local clients.
#[derive(Debug, Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

impl crate::observe::Publish for Hub {
    fn publish(&self, channel: &str, message: &[u8]) -> usize {
        Hub::publish(self, channel, message)
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take pub/sub down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self, sub: &Subscriber, channel: &[u8]) {
        self.lock()
            .channels
            .entry(channel.to_vec())
            .or_default()
            .insert(sub.id, sub.clone());
    }

    pub fn unsubscribe(&self, client: u64, channel: &[u8]) {
        let mut g = self.lock();
        if let Some(m) = g.channels.get_mut(channel) {
            m.shift_remove(&client);
            if m.is_empty() {
                g.channels.remove(channel);
            }
        }
    }

    pub fn psubscribe(&self, sub: &Subscriber, pattern: &[u8]) {
        self.lock()
            .patterns
            .entry(pattern.to_vec())
            .or_default()
            .insert(sub.id, sub.clone());
    }

    pub fn punsubscribe(&self, client: u64, pattern: &[u8]) {
        let mut g = self.lock();
        if let Some(m) = g.patterns.get_mut(pattern) {
            m.shift_remove(&client);
            if m.is_empty() {
                g.patterns.shift_remove(pattern);
            }
        }
    }

    /// Every message published from now on, as `(channel, payload)`, also
    /// goes to `tx` (if it has room: publishing never waits).
    pub fn tap(&self, tx: Tap) {
        self.lock().taps.push(tx);
    }

    /// Number of channels and of patterns with at least one subscriber
    /// (INFO `pubsub_channels` / `pubsub_patterns`).
    pub fn counts(&self) -> (usize, usize) {
        let g = self.lock();
        (g.channels.len(), g.patterns.len())
    }

    /// Delivers `message` on `channel` to its subscribers and to every
    /// matching pattern subscription; returns how many receivers it reached.
    /// Never blocks: a subscriber whose queue is full is disconnected.
    pub fn publish(&self, channel: &str, message: &[u8]) -> usize {
        let g = self.lock();
        let ch: Arc<[u8]> = Arc::from(channel.as_bytes());
        let payload: Arc<[u8]> = Arc::from(message);
        let mut reached = 0;
        if let Some(subs) = g.channels.get(channel.as_bytes()) {
            for s in subs.values() {
                let msg = PubMessage::Message {
                    channel: ch.clone(),
                    payload: payload.clone(),
                };
                if s.deliver(msg) {
                    reached += 1;
                }
            }
        }
        for (pattern, subs) in g.patterns.iter() {
            if !glob::matches(pattern, channel.as_bytes(), false) {
                continue;
            }
            let pat: Arc<[u8]> = Arc::from(pattern.as_slice());
            for s in subs.values() {
                let msg = PubMessage::PMessage {
                    pattern: pat.clone(),
                    channel: ch.clone(),
                    payload: payload.clone(),
                };
                if s.deliver(msg) {
                    reached += 1;
                }
            }
        }
        if !g.taps.is_empty() {
            let ch: Arc<str> = Arc::from(channel);
            for t in &g.taps {
                let _ = t.try_send((ch.clone(), payload.clone()));
            }
        }
        reached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: u64, cap: usize) -> (Subscriber, mpsc::Receiver<PubMessage>) {
        let (tx, rx) = mpsc::channel(cap);
        (
            Subscriber {
                id,
                tx,
                kill: CancellationToken::new(),
            },
            rx,
        )
    }

    /// A tap gets every message, is not a receiver, and a full one only
    /// misses messages.
    #[test]
    fn taps_see_everything_and_never_block() {
        let hub = Hub::new();
        let (tx, mut rx) = mpsc::channel(1);
        hub.tap(tx);
        assert_eq!(hub.publish("+odown", b"master m 10.0.0.1 6379"), 0);
        assert_eq!(hub.publish("+sdown", b"dropped"), 0);
        let (ch, payload) = rx.try_recv().unwrap();
        assert_eq!(
            (&*ch, &payload[..]),
            ("+odown", &b"master m 10.0.0.1 6379"[..])
        );
        assert!(rx.try_recv().is_err());
        assert_eq!(hub.counts(), (0, 0));
    }

    #[test]
    fn channel_and_pattern_delivery() {
        let hub = Hub::new();
        let (a, mut ra) = sub(1, 8);
        let (b, mut rb) = sub(2, 8);
        hub.subscribe(&a, b"+switch-master");
        hub.psubscribe(&b, b"*");
        hub.psubscribe(&a, b"+s*");
        assert_eq!(hub.publish("+switch-master", b"mymaster 1 2 3 4"), 3);
        assert_eq!(hub.publish("-sdown", b"x"), 1);
        let m = ra.try_recv().unwrap();
        assert_eq!(
            m.to_value().to_wire(2),
            b"*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$16\r\nmymaster 1 2 3 4\r\n".to_vec()
        );
        let pm = ra.try_recv().unwrap();
        assert_eq!(
            pm.to_value().to_wire(3),
            b">4\r\n$8\r\npmessage\r\n$3\r\n+s*\r\n$14\r\n+switch-master\r\n$16\r\nmymaster 1 2 3 4\r\n".to_vec()
        );
        assert!(rb.try_recv().is_ok());
        assert!(rb.try_recv().is_ok());
        assert_eq!(hub.counts(), (1, 2));
        hub.unsubscribe(1, b"+switch-master");
        hub.punsubscribe(1, b"+s*");
        hub.punsubscribe(2, b"*");
        assert_eq!(hub.counts(), (0, 0));
        assert_eq!(hub.publish("+switch-master", b"x"), 0);
    }

    #[test]
    fn slow_subscriber_is_closed_not_waited_for() {
        let hub = Hub::new();
        let (a, _ra) = sub(1, 2);
        hub.subscribe(&a, b"c");
        assert_eq!(hub.publish("c", b"1"), 1);
        assert_eq!(hub.publish("c", b"2"), 1);
        assert!(!a.kill.is_cancelled());
        assert_eq!(hub.publish("c", b"3"), 0);
        assert!(a.kill.is_cancelled());
    }
}
