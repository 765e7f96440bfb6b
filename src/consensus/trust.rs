//! Who may speak for the Raft group: the group secret, the per-connection
//! challenge, request and reply signatures, and the replay window.
//!
//! With a secret (`[raft] secret-file` or `RAFTINEL_SECRET`), an RPC link
//! starts with `RAFTINEL <cluster-id> challenge <client-nonce>`; the server
//! answers with its own nonce and both sides derive a session key,
//! `HMAC(secret, tag | client nonce | server nonce)`. Every request then
//! carries a sequence number and `HMAC(key, "request" | seq | cluster id | op
//! | body)`, every reply `HMAC(key, "reply" | seq | body)`. No clock is
//! involved:
//! - a request copied onto another connection fails its signature (that
//!   connection's key comes from other nonces);
//! - a request sent again on its own connection reuses a sequence number, and
//!   the server accepts each number once ([`ReplayWindow`]);
//! - a reply cannot be forged or moved to another request without the key.
//!
//! Without a secret the transport proves nothing beyond the Redis ACL user of
//! the connection (see `server::raft_rpc`). The secret itself is never logged
//! or shown: [`GroupSecret`]'s `Debug` prints a placeholder.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted, in bytes (128 bits if it is random).
pub const MIN_SECRET_LEN: usize = 16;

/// Bytes of randomness in each nonce (sent as hex).
const NONCE_LEN: usize = 16;

/// Domain separation: a key or signature of this protocol is never valid in
/// another context, nor in a later version of it.
const SESSION_TAG: &[u8] = b"raftinel-rpc-session-v1";

/// The group secret shared by every daemon of a deployment.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupSecret(Arc<[u8]>);

impl std::fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupSecret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the group secret is empty")]
    Empty,
    #[error("the group secret is {0} bytes long; at least {MIN_SECRET_LEN} are needed")]
    TooShort(usize),
}

impl GroupSecret {
    /// The secret from the bytes of a file or variable. Trailing whitespace
    /// is not part of it (`echo` and editors add a newline; a Kubernetes
    /// Secret written from such a file keeps it).
    pub fn new(raw: &[u8]) -> Result<GroupSecret, SecretError> {
        let end = raw
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let bytes = &raw[..end];
        if bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(GroupSecret(bytes.into()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

/// A fresh random nonce, hex encoded.
pub fn nonce() -> String {
    use rand::RngCore;
    let mut b = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Whether `s` is a nonce as [`nonce`] makes them.
pub fn valid_nonce(s: &[u8]) -> bool {
    s.len() == NONCE_LEN * 2 && s.iter().all(|b| b.is_ascii_hexdigit())
}

/// The key of one connection, derived from the secret and both nonces.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    pub fn derive(secret: &GroupSecret, client_nonce: &[u8], server_nonce: &[u8]) -> SessionKey {
        let mut m = secret.mac();
        for part in [SESSION_TAG, client_nonce, server_nonce] {
            framed(&mut m, part);
        }
        SessionKey(m.finalize().into_bytes().into())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    fn request_mac(&self, seq: u64, cluster: &[u8], op: &[u8], body: &[u8]) -> HmacSha256 {
        let mut m = self.mac();
        framed(&mut m, b"request");
        m.update(&seq.to_be_bytes());
        for part in [cluster, op, body] {
            framed(&mut m, part);
        }
        m
    }

    fn reply_mac(&self, seq: u64, body: &[u8]) -> HmacSha256 {
        let mut m = self.mac();
        framed(&mut m, b"reply");
        m.update(&seq.to_be_bytes());
        framed(&mut m, body);
        m
    }

    /// The signature of request `seq`, hex encoded.
    pub fn sign_request(&self, seq: u64, cluster: &[u8], op: &[u8], body: &[u8]) -> String {
        hex::encode(
            self.request_mac(seq, cluster, op, body)
                .finalize()
                .into_bytes(),
        )
    }

    /// Checks a request signature in constant time.
    pub fn verify_request(
        &self,
        seq: u64,
        cluster: &[u8],
        op: &[u8],
        body: &[u8],
        sig_hex: &[u8],
    ) -> bool {
        let Ok(sig) = hex::decode(sig_hex) else {
            return false;
        };
        self.request_mac(seq, cluster, op, body)
            .verify_slice(&sig)
            .is_ok()
    }

    /// The signature of the reply to request `seq`, hex encoded.
    pub fn sign_reply(&self, seq: u64, body: &[u8]) -> String {
        hex::encode(self.reply_mac(seq, body).finalize().into_bytes())
    }

    /// Checks a reply signature in constant time.
    pub fn verify_reply(&self, seq: u64, body: &[u8], sig_hex: &[u8]) -> bool {
        let Ok(sig) = hex::decode(sig_hex) else {
            return false;
        };
        self.reply_mac(seq, body).verify_slice(&sig).is_ok()
    }
}

/// Each part is preceded by its length, so no two different sequences of
/// parts hash the same bytes.
fn framed(m: &mut HmacSha256, part: &[u8]) {
    m.update(&(part.len() as u64).to_be_bytes());
    m.update(part);
}

/// The client side of a signed connection: its key and next sequence number.
/// Clones of a connection share it, so numbers are never reused.
pub struct ClientSession {
    key: SessionKey,
    next: AtomicU64,
}

impl ClientSession {
    pub fn new(key: SessionKey) -> ClientSession {
        ClientSession {
            key,
            next: AtomicU64::new(1),
        }
    }

    /// The sequence number and signature of the next request.
    pub fn sign(&self, cluster: &[u8], op: &[u8], body: &[u8]) -> (u64, String) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        (seq, self.key.sign_request(seq, cluster, op, body))
    }

    pub fn verify_reply(&self, seq: u64, body: &[u8], sig_hex: &[u8]) -> bool {
        self.key.verify_reply(seq, body, sig_hex)
    }
}

/// The sequence numbers a connection has used, as IPsec's anti-replay window:
/// the highest number seen and a bitmap of the [`WINDOW`] numbers below it.
/// A number is accepted once; one older than the window is refused. Requests
/// pipelined on one connection by concurrent callers may reach the server a
/// few places out of order, which the window absorbs.
#[derive(Debug, Default, Clone)]
pub struct ReplayWindow {
    top: u64,
    /// Bit `i` set: `top - i` was seen.
    seen: u128,
}

/// How far below the highest number a late request is still accepted.
pub const WINDOW: u64 = 128;

impl ReplayWindow {
    /// Records `seq`; false if it was seen before, is too old, or is 0.
    pub fn accept(&mut self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.top {
            let shift = seq - self.top;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = seq;
            return true;
        }
        let back = self.top - seq;
        if back >= WINDOW {
            return false;
        }
        let bit = 1u128 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

/// The server side of one client connection: set by a `challenge`.
#[derive(Default)]
pub struct ServerSession {
    key: Option<SessionKey>,
    window: ReplayWindow,
}

impl ServerSession {
    /// Answers a challenge: a new key for this connection (a second
    /// challenge starts a new session) and the server nonce to send back.
    pub fn challenge(&mut self, secret: &GroupSecret, client_nonce: &[u8]) -> String {
        let server_nonce = nonce();
        self.key = Some(SessionKey::derive(
            secret,
            client_nonce,
            server_nonce.as_bytes(),
        ));
        self.window = ReplayWindow::default();
        server_nonce
    }

    pub fn key(&self) -> Option<&SessionKey> {
        self.key.as_ref()
    }

    pub fn window(&mut self) -> &mut ReplayWindow {
        &mut self.window
    }
}

/// The start-up line about who may speak for the group: the secret's origin
/// (never the secret), or, without one, a warning naming who can.
/// `peer` is what peers authenticate with, `port` the sentinel port.
pub fn log_mode(secret_from: Option<&str>, peer: &crate::core::LinkAuth, port: u16) {
    if let Some(from) = secret_from {
        tracing::info!("raft: RPCs between daemons are signed with the group secret from {from}");
        return;
    }
    let who = match &peer.pass {
        None => format!("any client that can reach port {port}"),
        Some(_) => format!(
            "any client that can reach port {port} and authenticate as '{}'",
            peer.user.as_deref().unwrap_or("default")
        ),
    };
    tracing::warn!(
        "raft: no group secret ([raft] secret-file or RAFTINEL_SECRET): {who} can act for the \
         Raft group (propose failover decisions, join as a voter)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> GroupSecret {
        GroupSecret::new(b"0123456789abcdef0123456789abcdef\n").unwrap()
    }

    #[test]
    fn secrets_are_trimmed_and_checked() {
        assert_eq!(GroupSecret::new(b""), Err(SecretError::Empty));
        assert_eq!(GroupSecret::new(b" \n\r\n"), Err(SecretError::Empty));
        assert_eq!(GroupSecret::new(b"short\n"), Err(SecretError::TooShort(5)));
        let s = GroupSecret::new(b"exactly-16-bytes\r\n").unwrap();
        assert_eq!(&*s.0, b"exactly-16-bytes");
        assert_eq!(s, GroupSecret::new(b"exactly-16-bytes").unwrap());
        assert!(!format!("{s:?}").contains("exactly"));
    }

    #[test]
    fn a_request_verifies_only_with_its_key_and_contents() {
        let (a, b) = (nonce(), nonce());
        assert!(valid_nonce(a.as_bytes()) && a != b);
        let key = SessionKey::derive(&secret(), a.as_bytes(), b.as_bytes());
        let sig = key.sign_request(7, b"c", b"vote", b"{}");
        assert!(key.verify_request(7, b"c", b"vote", b"{}", sig.as_bytes()));
        // Any change of sequence number, cluster, op or body breaks it.
        assert!(!key.verify_request(8, b"c", b"vote", b"{}", sig.as_bytes()));
        assert!(!key.verify_request(7, b"d", b"vote", b"{}", sig.as_bytes()));
        assert!(!key.verify_request(7, b"c", b"append", b"{}", sig.as_bytes()));
        assert!(!key.verify_request(7, b"c", b"vote", b"{ }", sig.as_bytes()));
        // Parts are length-framed: moving bytes between them changes the MAC.
        assert!(!key.verify_request(7, b"cv", b"ote", b"{}", sig.as_bytes()));
        assert!(!key.verify_request(7, b"c", b"vote", b"{}", b"zz"));
        // Another connection (other nonces) or another secret: another key.
        let other = SessionKey::derive(&secret(), a.as_bytes(), nonce().as_bytes());
        assert!(!other.verify_request(7, b"c", b"vote", b"{}", sig.as_bytes()));
        let wrong = GroupSecret::new(b"another secret of 32 bytes......").unwrap();
        let other = SessionKey::derive(&wrong, a.as_bytes(), b.as_bytes());
        assert!(!other.verify_request(7, b"c", b"vote", b"{}", sig.as_bytes()));
        // A reply signature is not a request signature.
        let reply = key.sign_reply(7, b"{}");
        assert!(key.verify_reply(7, b"{}", reply.as_bytes()));
        assert!(!key.verify_reply(8, b"{}", reply.as_bytes()));
        assert_ne!(reply, sig);
    }

    #[test]
    fn the_window_accepts_each_number_once() {
        let mut w = ReplayWindow::default();
        assert!(!w.accept(0));
        assert!(w.accept(1));
        assert!(!w.accept(1));
        assert!(w.accept(3));
        assert!(w.accept(2), "a little out of order is fine");
        assert!(!w.accept(2) && !w.accept(3));
        assert!(w.accept(3 + WINDOW));
        assert!(!w.accept(3), "older than the window");
        assert!(w.accept(4), "inside the window and never seen");
        assert!(w.accept(1000 * WINDOW));
        assert!(!w.accept(1000 * WINDOW));
        assert!(!w.accept(4 + WINDOW));
    }

    #[test]
    fn client_and_server_sessions_agree() {
        let s = secret();
        let client_nonce = nonce();
        let mut server = ServerSession::default();
        let server_nonce = server.challenge(&s, client_nonce.as_bytes());
        let client = ClientSession::new(SessionKey::derive(
            &s,
            client_nonce.as_bytes(),
            server_nonce.as_bytes(),
        ));
        let (seq, sig) = client.sign(b"c", b"status", b"null");
        assert_eq!(seq, 1);
        let key = server.key().unwrap().clone();
        assert!(key.verify_request(seq, b"c", b"status", b"null", sig.as_bytes()));
        assert!(server.window().accept(seq));
        assert!(!server.window().accept(seq));
        let reply = key.sign_reply(seq, b"ok");
        assert!(client.verify_reply(seq, b"ok", reply.as_bytes()));
        assert_eq!(client.sign(b"c", b"status", b"null").0, 2);
    }
}
