//! Median, p90 and max over runs, and their formatting. Missing values (a run where the thing measured did
//! not happen) are counted, never replaced by a number.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    /// Runs considered.
    pub runs: usize,
    /// Runs that produced a value.
    pub n: usize,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

/// Nearest-rank p90; median averages the two middle values.
pub fn summarize(vals: &[Option<f64>]) -> Summary {
    let mut v: Vec<f64> = vals
        .iter()
        .flatten()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n == 0 {
        None
    } else if n % 2 == 1 {
        v.get(n / 2).copied()
    } else {
        match (v.get(n / 2 - 1), v.get(n / 2)) {
            (Some(a), Some(b)) => Some((a + b) / 2.0),
            _ => None,
        }
    };
    let rank = ((0.9 * n as f64).ceil() as usize).max(1);
    Summary {
        runs: vals.len(),
        n,
        median,
        p90: v.get(rank - 1).copied(),
        max: v.last().copied(),
    }
}

pub fn num(x: f64) -> String {
    if x.fract() == 0.0 || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

impl Summary {
    /// "median / p90 / max", with "(n/runs)" when some runs had no value; `missing` when none had.
    pub fn cell(&self, missing: &str) -> String {
        match (self.median, self.p90, self.max) {
            (Some(m), Some(p), Some(x)) => {
                let s = format!("{} / {} / {}", num(m), num(p), num(x));
                if self.n < self.runs {
                    format!("{s} ({}/{} runs)", self.n, self.runs)
                } else {
                    s
                }
            }
            _ => missing.to_string(),
        }
    }
}

/// `b / a` of the medians (raftinel / redis-sentinel), when both exist and `a` is not zero.
pub fn ratio(a: &Summary, b: &Summary) -> Option<f64> {
    match (a.median, b.median) {
        (Some(a), Some(b)) if a != 0.0 => Some(b / a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_p90_max() {
        let s = summarize(&[Some(3.0), Some(1.0), None, Some(2.0)]);
        assert_eq!(s.n, 3);
        assert_eq!(s.runs, 4);
        assert_eq!(s.median, Some(2.0));
        assert_eq!(s.p90, Some(3.0));
        assert_eq!(s.max, Some(3.0));
        let e = summarize(&[None, None]);
        assert_eq!(e.median, None);
        assert_eq!(e.cell("none"), "none");
        let ten: Vec<Option<f64>> = (1..=10).map(|x| Some(x as f64)).collect();
        let s = summarize(&ten);
        assert_eq!(s.median, Some(5.5));
        assert_eq!(s.p90, Some(9.0));
    }
}
