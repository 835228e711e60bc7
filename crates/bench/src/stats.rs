//! Latency percentiles and rates.

use std::time::Duration;

/// Latencies of one run, in microseconds, and how long the run took.
pub struct Run {
    pub latencies_us: Vec<u32>,
    pub elapsed: Duration,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`-th percentile (0-100) in milliseconds.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let idx = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        f64::from(self.latencies_us[idx]) / 1000.0
    }
}
