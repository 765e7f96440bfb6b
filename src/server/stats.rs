//! Counters for INFO `# Stats` / `# Clients`, and the instantaneous rates
//! Redis derives from them (16 samples taken every 100 ms).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const SAMPLES: usize = 16;

#[derive(Debug, Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub commands_processed: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub error_replies: AtomicU64,
    pub reads_processed: AtomicU64,
    pub writes_processed: AtomicU64,
    rates: Mutex<Rates>,
}

#[derive(Debug, Default)]
struct Rates {
    last: Option<(u64, [u64; 3])>,
    idx: usize,
    ops: [f64; SAMPLES],
    input: [f64; SAMPLES],
    output: [f64; SAMPLES],
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Stats {
    /// Takes one sample (called every 100 ms with monotonic ms).
    pub fn sample(&self, now_ms: u64) {
        let cur = [
            get(&self.commands_processed),
            get(&self.net_input_bytes),
            get(&self.net_output_bytes),
        ];
        let mut r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, prev)) = r.last {
            let dt = now_ms.saturating_sub(t).max(1) as f64;
            let i = r.idx;
            r.ops[i] = (cur[0].saturating_sub(prev[0])) as f64 * 1000.0 / dt;
            r.input[i] = (cur[1].saturating_sub(prev[1])) as f64 * 1000.0 / dt;
            r.output[i] = (cur[2].saturating_sub(prev[2])) as f64 * 1000.0 / dt;
            r.idx = (i + 1) % SAMPLES;
        }
        r.last = Some((now_ms, cur));
    }

    /// (ops/sec, input kbps, output kbps), averaged over the samples.
    pub fn rates(&self) -> (u64, f64, f64) {
        let r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let avg = |a: &[f64; SAMPLES]| a.iter().sum::<f64>() / SAMPLES as f64;
        (
            avg(&r.ops).round() as u64,
            avg(&r.input) / 1024.0,
            avg(&r.output) / 1024.0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_average_samples() {
        let s = Stats::default();
        s.sample(0);
        add(&s.commands_processed, 160);
        s.sample(100);
        let (ops, _, _) = s.rates();
        assert_eq!(ops, 100);
    }
}
