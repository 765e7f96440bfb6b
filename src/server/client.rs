//! Connected clients: the shared per-connection record that CLIENT
//! LIST/INFO/KILL read ([`ClientHandle`]), and the registry of all of them.
//!
//! A connection task owns its socket and parser; everything another task may
//! need to see (name, counters, last command) lives behind the handle's small
//! mutex, and closing a client from elsewhere (CLIENT KILL, a full pub/sub
//! queue, shutdown) goes through its `kill` token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// CLIENT TRACKING state (sentinel has no keys, so this is bookkeeping only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracking {
    pub on: bool,
    pub redirect: i64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    pub prefixes: Vec<Vec<u8>>,
    /// CLIENT CACHING yes/no given for the next command.
    pub caching: Option<bool>,
}

/// Mutable, shared part of a client record.
#[derive(Debug, Clone)]
pub struct ClientState {
    pub name: Vec<u8>,
    pub last_interaction: Instant,
    pub sub: usize,
    /// The subscriptions themselves, for ACL re-checks after SETUSER.
    pub channels: Vec<Vec<u8>>,
    pub patterns: Vec<Vec<u8>>,
    pub psub: usize,
    /// Full name of the last command run (`client|list`), `NULL` before any.
    pub last_cmd: Option<String>,
    pub user: String,
    pub resp: u8,
    pub no_evict: bool,
    pub tracking: Tracking,
    /// Size of the request being executed and of the read buffer.
    pub qbuf: usize,
    pub qbuf_cap: usize,
    pub argv_mem: usize,
    /// Reply bytes not yet written to the socket.
    pub obl: usize,
}

/// One connected client as the registry sees it.
#[derive(Debug)]
pub struct ClientHandle {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    /// A `unixsocket` client (CLIENT LIST flag `U`).
    pub unix: bool,
    pub created: Instant,
    /// Cancelled to close the connection (CLIENT KILL, overflow, shutdown).
    pub kill: CancellationToken,
    state: Mutex<ClientState>,
}

/// Client type filter of CLIENT LIST / CLIENT KILL TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Normal,
    Replica,
    Master,
    Pubsub,
}

impl ClientType {
    pub fn parse(s: &[u8]) -> Option<ClientType> {
        let s = String::from_utf8_lossy(s).to_ascii_lowercase();
        match s.as_str() {
            "normal" => Some(ClientType::Normal),
            "slave" | "replica" => Some(ClientType::Replica),
            "master" => Some(ClientType::Master),
            "pubsub" => Some(ClientType::Pubsub),
            _ => None,
        }
    }
}

impl ClientHandle {
    pub fn new(id: u64, addr: String, laddr: String, fd: i32, now: Instant) -> ClientHandle {
        ClientHandle {
            id,
            addr,
            laddr,
            fd,
            unix: false,
            created: now,
            kill: CancellationToken::new(),
            state: Mutex::new(ClientState {
                name: Vec::new(),
                last_interaction: now,
                sub: 0,
                psub: 0,
                channels: Vec::new(),
                patterns: Vec::new(),
                last_cmd: None,
                user: "default".into(),
                resp: 2,
                no_evict: false,
                tracking: Tracking::default(),
                qbuf: 0,
                qbuf_cap: 0,
                argv_mem: 0,
                obl: 0,
            }),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pub/sub clients are those with any subscription (flag `P`).
    pub fn client_type(&self) -> ClientType {
        let s = self.state();
        if s.sub + s.psub > 0 {
            ClientType::Pubsub
        } else {
            ClientType::Normal
        }
    }

    /// One CLIENT LIST line in Redis 7.0's format, with its trailing `\n`.
    pub fn info_line(&self, now: Instant) -> String {
        let s = self.state();
        let mut flags = String::new();
        if s.sub + s.psub > 0 {
            flags.push('P');
        }
        if s.tracking.on {
            flags.push('t');
            if s.tracking.bcast {
                flags.push('B');
            }
        }
        if self.unix {
            flags.push('U');
        }
        if s.no_evict {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let age = now.saturating_duration_since(self.created).as_secs();
        let idle = now.saturating_duration_since(s.last_interaction).as_secs();
        let qbuf_free = s.qbuf_cap.saturating_sub(s.qbuf);
        // Reply buffer size/peak as Redis reports for an idle 16 KiB buffer;
        // tot-mem approximates Redis's accounting (buffers + argv + client struct).
        let rbs = if s.qbuf_cap == 0 { 1024usize } else { 16384 };
        let overhead = if s.qbuf_cap == 0 { 856 } else { 790 };
        let tot_mem = s.qbuf_cap + rbs + s.argv_mem + s.obl + overhead;
        let redir = if s.tracking.on {
            s.tracking.redirect
        } else {
            -1
        };
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub={} psub={} ssub=0 multi=-1 qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs={} rbp={} obl={} oll=0 omem=0 tot-mem={} events=r cmd={} user={} redir={} resp={}\n",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            String::from_utf8_lossy(&s.name),
            age,
            idle,
            flags,
            s.sub,
            s.psub,
            s.qbuf,
            qbuf_free,
            s.argv_mem,
            rbs,
            rbs,
            s.obl,
            tot_mem,
            s.last_cmd.as_deref().unwrap_or("NULL"),
            s.user,
            redir,
            s.resp
        )
    }
}

/// All connected clients, by id (ascending, as Redis lists them).
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            next_id: AtomicU64::new(1),
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientHandle>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn add(&self, c: Arc<ClientHandle>) {
        self.lock().insert(c.id, c);
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Closes a client now: it leaves the registry at once (as Redis frees
    /// it), and its task exits on the cancelled token.
    pub fn kill(&self, c: &ClientHandle) {
        self.remove(c.id);
        c.kill.cancel();
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.lock().get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// CLIENT SETNAME validation: no spaces, newlines or other characters
/// outside `!`..`~`.
pub fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_list_line_format() {
        let now = Instant::now();
        let c = ClientHandle::new(
            45,
            "127.0.0.1:52346".into(),
            "127.0.0.1:46379".into(),
            7,
            now,
        );
        {
            let mut s = c.state();
            s.last_cmd = Some("client|info".into());
            s.qbuf = 26;
            s.qbuf_cap = 20474;
            s.argv_mem = 10;
        }
        assert_eq!(
            c.info_line(now),
            "id=45 addr=127.0.0.1:52346 laddr=127.0.0.1:46379 fd=7 name= age=0 idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=26 qbuf-free=20448 argv-mem=10 multi-mem=0 rbs=16384 rbp=16384 obl=0 oll=0 omem=0 tot-mem=37658 events=r cmd=client|info user=default redir=-1 resp=2\n"
        );
        c.state().sub = 2;
        c.state().name = b"sub1".to_vec();
        let l = c.info_line(now);
        assert!(l.contains(" name=sub1 "));
        assert!(l.contains(" flags=P db=0 sub=2 psub=0 "));
        assert_eq!(c.client_type(), ClientType::Pubsub);
    }

    #[test]
    fn names() {
        assert!(valid_client_name(b"ok"));
        assert!(valid_client_name(b""));
        assert!(!valid_client_name(b"a b"));
        assert!(!valid_client_name(b"a\nb"));
    }
}
