//! The simulated Redis nodes: role, run id, replication history (replid,
//! replid2, offset) and the INFO text a real redis-server 7.0 would send.
//!
//! Only what Sentinel and the failover engine read is modelled. Replication
//! follows Redis's PSYNC rule: a replica keeps its data when its replid is the
//! source's replid (or the source's replid2 up to the switch offset) and it is
//! not ahead; otherwise it full-syncs and takes the source's history.

use rand::rngs::StdRng;
use rand::Rng;

use crate::core::Millis;

pub(super) const REDIS_PORT: u16 = 6379;
pub(super) const NO_REPLID: &str = "0000000000000000000000000000000000000000";

pub(super) fn hex40(rng: &mut StdRng) -> String {
    let bytes: [u8; 20] = rng.gen();
    hex::encode(bytes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RedisRole {
    Master,
    /// Replica of this address (which may name no node at all).
    Replica(String, u16),
}

#[derive(Debug, Clone)]
pub(super) struct RedisNode {
    pub host: String,
    pub port: u16,
    /// Process is gone (connections refused).
    pub crashed: bool,
    /// Process is stopped (SIGSTOP-like): accepts nothing, answers nothing.
    pub hung_until: Option<Millis>,
    /// `CLIENT PAUSE WRITE` in force until then: no write is accepted.
    pub paused_until: Option<Millis>,
    pub role: RedisRole,
    pub run_id: String,
    pub replid: String,
    pub replid2: String,
    /// `second_repl_offset`: the replid2 history is valid up to here.
    pub second_offset: i64,
    pub offset: u64,
    /// A master's offset as its replicas can see it: writes reach them one
    /// step late (replication lag).
    pub shipped: u64,
    pub priority: u32,
    /// Replica only: the link to its master is up.
    pub link_up: bool,
    pub link_down_since: Option<Millis>,
    /// When a pending (re)sync completes.
    pub sync_at: Option<Millis>,
    /// Last time the node lost or replaced its data history (restart empty,
    /// full sync to another history): promotions decided on older INFO are
    /// not the engine's fault.
    pub history_changed_at: Millis,
    /// When the node last came back from a crash or a hang: until the
    /// daemons had time to see it again (a reconnect period, a PING), it may
    /// rightly still be believed down.
    pub back_at: Millis,
}

impl RedisNode {
    pub fn new_master(host: String, offset: u64, rng: &mut StdRng) -> RedisNode {
        RedisNode {
            host,
            port: REDIS_PORT,
            crashed: false,
            hung_until: None,
            paused_until: None,
            role: RedisRole::Master,
            run_id: hex40(rng),
            replid: hex40(rng),
            replid2: NO_REPLID.to_string(),
            second_offset: -1,
            offset,
            shipped: offset,
            priority: 100,
            link_up: false,
            link_down_since: None,
            sync_at: None,
            history_changed_at: 0,
            back_at: 0,
        }
    }

    pub fn addr(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    pub fn is_hung(&self, now: Millis) -> bool {
        self.hung_until.is_some_and(|t| now < t)
    }

    /// Answers commands right now.
    pub fn serving(&self, now: Millis) -> bool {
        !self.crashed && !self.is_hung(now)
    }

    /// `REPLICAOF NO ONE`: a new history that continues the old one (replid2).
    pub fn promote(&mut self, rng: &mut StdRng) {
        if self.role == RedisRole::Master {
            return;
        }
        self.role = RedisRole::Master;
        self.shipped = self.offset;
        self.replid2 = std::mem::replace(&mut self.replid, hex40(rng));
        self.second_offset = i64::try_from(self.offset)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        self.link_up = false;
        self.link_down_since = None;
        self.sync_at = None;
    }

    /// `REPLICAOF host port`: the link starts down and syncs later.
    pub fn follow(&mut self, host: String, port: u16, now: Millis) {
        let target = RedisRole::Replica(host, port);
        if self.role == target {
            return;
        }
        self.role = target;
        self.link_up = false;
        self.link_down_since = Some(now);
        self.sync_at = None;
    }

    /// Restart of the process: new run id; `empty` loses the dataset and the
    /// replication history (no RDB), otherwise both survive.
    pub fn restart(&mut self, empty: bool, now: Millis, rng: &mut StdRng) {
        self.crashed = false;
        self.hung_until = None;
        self.back_at = now;
        self.paused_until = None;
        self.run_id = hex40(rng);
        if empty {
            self.replid = hex40(rng);
            self.replid2 = NO_REPLID.to_string();
            self.second_offset = -1;
            self.offset = 0;
            self.shipped = 0;
            self.history_changed_at = now;
        }
        self.link_up = false;
        self.link_down_since = Some(now);
        self.sync_at = None;
    }

    /// What a replica of this node can have received so far.
    pub fn visible_offset(&self) -> u64 {
        if self.role == RedisRole::Master {
            self.shipped.min(self.offset)
        } else {
            self.offset
        }
    }

    /// Whether this replica may continue `src`'s history without a full sync.
    pub fn can_psync(&self, src: &RedisNode) -> bool {
        if self.replid == src.replid {
            return self.offset <= src.offset;
        }
        self.replid == src.replid2
            && src.second_offset >= 0
            && i64::try_from(self.offset).unwrap_or(i64::MAX) < src.second_offset
    }

    /// Completes a sync with `src` (partial or full). A partial sync that
    /// crosses a promotion keeps the old id as replid2; a full sync starts
    /// afresh from the source's id, with no replid2 (Redis clears it).
    pub fn sync_from(&mut self, src: &RedisNode, now: Millis) {
        if self.can_psync(src) {
            self.replid2 = src.replid2.clone();
            self.second_offset = src.second_offset;
        } else {
            self.history_changed_at = now;
            self.replid2 = NO_REPLID.to_string();
            self.second_offset = -1;
        }
        self.replid = src.replid.clone();
        self.offset = src.offset;
        self.link_up = true;
        self.link_down_since = None;
        self.sync_at = None;
    }

    pub fn lose_link(&mut self, now: Millis) {
        if self.link_up {
            self.link_up = false;
            self.link_down_since = Some(now);
        }
    }

    /// The INFO reply (server and replication sections), as redis-server 7.0
    /// formats them. `replicas` are the connected replicas of this node.
    pub fn info(&self, now: Millis, replicas: &[&RedisNode]) -> String {
        let mut s = String::new();
        s.push_str("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n");
        s.push_str(&format!(
            "run_id:{}\r\ntcp_port:{}\r\n",
            self.run_id, self.port
        ));
        s.push_str("\r\n# Replication\r\n");
        match &self.role {
            RedisRole::Master => {
                s.push_str("role:master\r\n");
            }
            RedisRole::Replica(h, p) => {
                s.push_str(&format!(
                    "role:slave\r\nmaster_host:{h}\r\nmaster_port:{p}\r\n"
                ));
                let up = if self.link_up { "up" } else { "down" };
                s.push_str(&format!("master_link_status:{up}\r\n"));
                s.push_str("master_last_io_seconds_ago:0\r\n");
                let syncing = u8::from(self.sync_at.is_some());
                s.push_str(&format!("master_sync_in_progress:{syncing}\r\n"));
                s.push_str(&format!("slave_read_repl_offset:{}\r\n", self.offset));
                s.push_str(&format!("slave_repl_offset:{}\r\n", self.offset));
                if let Some(since) = self.link_down_since.filter(|_| !self.link_up) {
                    let secs = now.saturating_sub(since) / 1000;
                    s.push_str(&format!("master_link_down_since_seconds:{secs}\r\n"));
                }
                s.push_str(&format!("slave_priority:{}\r\n", self.priority));
                s.push_str("slave_read_only:1\r\nreplica_announced:1\r\n");
            }
        }
        s.push_str(&format!("connected_slaves:{}\r\n", replicas.len()));
        for (i, r) in replicas.iter().enumerate() {
            s.push_str(&format!(
                "slave{i}:ip={},port={},state=online,offset={},lag=0\r\n",
                r.host, r.port, r.offset
            ));
        }
        s.push_str("master_failover_state:no-failover\r\n");
        s.push_str(&format!("master_replid:{}\r\n", self.replid));
        s.push_str(&format!("master_replid2:{}\r\n", self.replid2));
        s.push_str(&format!("master_repl_offset:{}\r\n", self.offset));
        s.push_str(&format!("second_repl_offset:{}\r\n", self.second_offset));
        s.push_str("repl_backlog_active:1\r\nrepl_backlog_size:1048576\r\n");
        s.push_str("repl_backlog_first_byte_offset:1\r\n");
        s.push_str(&format!("repl_backlog_histlen:{}\r\n", self.offset));
        s
    }
}
