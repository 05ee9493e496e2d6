//! What a benchmark phase reports: operations, time, rate and latency percentiles.

use std::time::Duration;

use serde_json::{json, Value};

/// One phase of a benchmark (a write or a read pass) once it is over.
#[derive(Clone, Debug)]
pub struct Phase {
    pub ops: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Per-operation latencies, sorted.
    latencies: Vec<Duration>,
}

impl Phase {
    pub fn new(bytes: u64, elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort();
        Self {
            ops: latencies.len() as u64,
            bytes,
            elapsed,
            latencies,
        }
    }

    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency below which `percent` of the operations finished (nearest rank).
    pub fn percentile(&self, percent: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (percent / 100.0 * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    pub fn to_json(&self) -> Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        json!({
            "ops": self.ops,
            "bytes": self.bytes,
            "seconds": self.elapsed.as_secs_f64(),
            "ops_per_sec": self.ops_per_sec(),
            "mib_per_sec": self.mib_per_sec(),
            "p50_ms": ms(self.percentile(50.0)),
            "p90_ms": ms(self.percentile(90.0)),
            "p99_ms": ms(self.percentile(99.0)),
            "max_ms": ms(self.percentile(100.0)),
        })
    }

    /// One line: `1000 ops in 0.52s: 1923 ops/s, 1.9 MiB/s, p50 7.1 ms, p99 19.0 ms, max 25.3 ms`.
    pub fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{} ops in {:.2}s: {:.0} ops/s, {:.1} MiB/s, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.mib_per_sec(),
            ms(self.percentile(50.0)),
            ms(self.percentile(90.0)),
            ms(self.percentile(99.0)),
            ms(self.percentile(100.0)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = Duration::from_millis;
        let phase = Phase::new(0, Duration::from_secs(1), (1..=100).rev().map(ms).collect());
        assert_eq!(phase.percentile(50.0), ms(50));
        assert_eq!(phase.percentile(99.0), ms(99));
        assert_eq!(phase.percentile(100.0), ms(100));
        assert_eq!(phase.percentile(0.0), ms(1));
        assert_eq!(phase.ops_per_sec(), 100.0);
        let empty = Phase::new(0, Duration::ZERO, Vec::new());
        assert_eq!(empty.percentile(99.0), Duration::ZERO);
    }
}
