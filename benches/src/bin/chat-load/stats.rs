//! The report: named values with units, printed as a table and optionally as JSON.

use hdrhistogram::Histogram;

/// Results, in the order they were added.
#[derive(Default)]
pub(crate) struct Report {
    rows: Vec<(String, f64, &'static str)>,
}

impl Report {
    pub(crate) fn add(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.rows.push((name.into(), value, unit));
    }

    /// p50, p99 and max of a histogram of microseconds, in milliseconds.
    pub(crate) fn latency(&mut self, prefix: &str, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        self.add(
            format!("{prefix}latency p50"),
            h.value_at_quantile(0.5) as f64 / 1000.0,
            "ms",
        );
        self.add(
            format!("{prefix}latency p99"),
            h.value_at_quantile(0.99) as f64 / 1000.0,
            "ms",
        );
        self.add(
            format!("{prefix}latency max"),
            h.max() as f64 / 1000.0,
            "ms",
        );
    }

    pub(crate) fn print(&self, scenario: &str, json: bool) {
        println!("{scenario}");
        for (name, value, unit) in &self.rows {
            println!("  {name:<38} {value:>14.3} {unit}");
        }
        if json {
            let rows: Vec<String> = self
                .rows
                .iter()
                .map(|(name, value, unit)| {
                    let value = if value.is_finite() {
                        value.to_string()
                    } else {
                        "null".into()
                    };
                    format!("{{\"metric\":\"{name}\",\"value\":{value},\"unit\":\"{unit}\"}}")
                })
                .collect();
            println!(
                "{{\"scenario\":{:?},\"results\":[{}]}}",
                scenario,
                rows.join(",")
            );
        }
    }
}

/// An empty histogram of microseconds (3 significant digits).
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is a valid precision")
}

/// Delivery latencies in windows of send time (one window if no width is given), so a long
/// run shows whether its latency drifted.
#[derive(Clone)]
pub(crate) struct Windows {
    /// Microseconds of send time per window; 0: everything in one window.
    width_us: u64,
    windows: Vec<Histogram<u64>>,
}

impl Windows {
    /// Empty windows of `width` (all in one if `None`).
    pub(crate) fn new(width: Option<std::time::Duration>) -> Self {
        Self {
            width_us: width.map_or(0, |w| w.as_micros().max(1) as u64),
            windows: vec![histogram()],
        }
    }

    /// Records a latency of a message sent at `sent_us` after the run's epoch.
    pub(crate) fn record(&mut self, sent_us: u64, latency_us: u64) {
        let i = sent_us.checked_div(self.width_us).unwrap_or(0) as usize;
        if self.windows.len() <= i {
            self.windows.resize_with(i + 1, histogram);
        }
        let _ = self.windows[i].record(latency_us.max(1));
    }

    /// Adds `other`'s latencies (of the same width) to these.
    pub(crate) fn add(&mut self, other: &Self) -> Result<(), String> {
        if self.windows.len() < other.windows.len() {
            self.windows.resize_with(other.windows.len(), histogram);
        }
        for (mine, theirs) in self.windows.iter_mut().zip(&other.windows) {
            mine.add(theirs).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Every latency, whatever its window.
    pub(crate) fn total(&self) -> Result<Histogram<u64>, String> {
        let mut all = histogram();
        for window in &self.windows {
            all.add(window).map_err(|e| e.to_string())?;
        }
        Ok(all)
    }

    /// The windows in order of send time.
    pub(crate) fn windows(&self) -> &[Histogram<u64>] {
        &self.windows
    }
}
