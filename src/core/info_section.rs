//! The `# Sentinel` section of INFO, in redis-sentinel 7.0.15's layout.

use super::sentinel::Sentinel;
use super::types::Millis;

impl Sentinel {
    /// The whole `# Sentinel` INFO section.
    pub fn info_sentinel_section(
        &self,
        _now: Millis,
        running_scripts: usize,
        scripts_queue_len: usize,
    ) -> String {
        let mut s = String::from("# Sentinel\r\n");
        s.push_str(&format!("sentinel_masters:{}\r\n", self.masters.len()));
        // No TILT with a monotonic clock: see `core::sentinel`.
        s.push_str("sentinel_tilt:0\r\n");
        s.push_str("sentinel_tilt_since_seconds:-1\r\n");
        s.push_str(&format!("sentinel_running_scripts:{running_scripts}\r\n"));
        s.push_str(&format!(
            "sentinel_scripts_queue_length:{scripts_queue_len}\r\n"
        ));
        s.push_str(&format!(
            "sentinel_simulate_failure_flags:{}\r\n",
            self.simfailure_flags
        ));
        for (n, m) in self.masters.values().enumerate() {
            let (host, port) = self.shown_addr(m);
            let status = if m.inst.o_down {
                "odown"
            } else if m.inst.s_down {
                "sdown"
            } else {
                "ok"
            };
            // No brackets around IPv6 here, unlike replica names.
            s.push_str(&format!(
                "master{n}:name={},status={status},address={}:{},slaves={},sentinels={}",
                m.inst.name,
                host,
                port,
                m.replicas.len(),
                m.sentinels.len() + 1
            ));
            // raftinel: cut off from the group's majority (parsers split
            // the line on ',' and '=' and look keys up: an extra key at the
            // end is ignored by them).
            if self.cut_off(&m.inst.name) {
                s.push_str(",quorum=no");
            }
            s.push_str("\r\n");
        }
        s
    }
}
