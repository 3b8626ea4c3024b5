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
