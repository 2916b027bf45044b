//! Figures: what one run measured, the median and max of each over the runs of a scenario, and
//! the two ways they are printed (a table for people, one JSON object per scenario for scripts).

use std::fmt::Write as _;
use std::time::Duration;

/// What one run measured, in the order it is printed.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    values: Vec<(&'static str, f64)>,
}

impl Figures {
    pub fn set(&mut self, name: &'static str, value: f64) {
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    pub fn secs(&mut self, name: &'static str, d: Duration) {
        self.set(name, d.as_secs_f64());
    }

    /// Sets every figure of `other` here, in its order.
    pub fn extend(&mut self, other: &Figures) {
        for &(name, value) in &other.values {
            self.set(name, value);
        }
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// p50, p99 and max of `samples` (nearest rank), in milliseconds, as `<prefix>_p50_ms` etc.
    pub fn percentiles_ms(&mut self, [p50, p99, max]: [&'static str; 3], samples: &[Duration]) {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        self.set(p50, nearest_rank(&ms, 50.0));
        self.set(p99, nearest_rank(&ms, 99.0));
        self.set(max, ms.last().copied().unwrap_or(0.0));
    }
}

/// The `p`th percentile of sorted values by the nearest-rank method (0 for no values).
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of values (the mean of the middle two for an even count; 0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Everything printed for one scenario.
#[derive(Debug)]
pub struct ScenarioReport {
    pub scenario: &'static str,
    pub specs: usize,
    pub runs_asked: u32,
    pub cores: usize,
    /// Where the master's task counts came from (`metrics/snapshot` or `master/state`).
    pub master_source: &'static str,
    /// The runs that finished.
    pub runs: Vec<Figures>,
    /// What a run was still waiting for when it hit `--timeout`; no run follows it.
    pub timed_out: Option<String>,
    /// Why a run failed; no run follows it.
    pub error: Option<String>,
}

impl ScenarioReport {
    /// Each figure's name with its median and max over the finished runs, in first-run order.
    pub fn aggregate(&self) -> Vec<(&'static str, f64, f64)> {
        let mut names: Vec<&'static str> = Vec::new();
        for run in &self.runs {
            for (name, _) in &run.values {
                if !names.contains(name) {
                    names.push(name);
                }
            }
        }
        names
            .into_iter()
            .map(|name| {
                let values: Vec<f64> = self.runs.iter().filter_map(|r| r.get(name)).collect();
                let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (name, median(&values), max)
            })
            .collect()
    }

    /// One line of JSON: `scenario`, `specs`, `runs`, `cores`, then every figure as its median
    /// and `<figure>_max`, then `timed_out` (and what it waited for) and any error.
    pub fn json(&self) -> String {
        let mut fields: Vec<(String, serde_json::Value)> = vec![
            ("scenario".into(), self.scenario.into()),
            ("specs".into(), self.specs.into()),
            ("runs".into(), self.runs.len().into()),
            ("runs_asked".into(), self.runs_asked.into()),
            ("cores".into(), self.cores.into()),
            ("master_source".into(), self.master_source.into()),
        ];
        for (name, med, max) in self.aggregate() {
            fields.push((name.to_owned(), number(med)));
            fields.push((format!("{name}_max"), number(max)));
        }
        fields.push(("timed_out".into(), self.timed_out.is_some().into()));
        if let Some(what) = &self.timed_out {
            fields.push(("timed_out_waiting_for".into(), what.as_str().into()));
        }
        if let Some(error) = &self.error {
            fields.push(("error".into(), error.as_str().into()));
        }
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    /// A table for people: a heading, then one line per figure with its median and max.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} specs, {} of {} runs, {} cores, master counts from {}",
            self.scenario,
            self.specs,
            self.runs.len(),
            self.runs_asked,
            self.cores,
            self.master_source
        );
        let rows = self.aggregate();
        if !rows.is_empty() {
            let width = rows.iter().map(|(n, ..)| n.len()).max().unwrap_or(0).max(6);
            let _ = writeln!(
                out,
                "  {:<width$}  {:>12}  {:>12}",
                "figure", "median", "max"
            );
            for (name, med, max) in rows {
                let _ = writeln!(
                    out,
                    "  {name:<width$}  {:>12}  {:>12}",
                    show(med),
                    show(max)
                );
            }
        }
        if let Some(what) = &self.timed_out {
            let _ = writeln!(out, "  TIMED OUT waiting for {what}");
        }
        if let Some(error) = &self.error {
            let _ = writeln!(out, "  FAILED: {error}");
        }
        out
    }
}

/// Whole numbers as integers, the rest with 4 decimals (enough for milliseconds in seconds).
fn number(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        serde_json::Value::from(v as i64)
    } else {
        serde_json::Value::from((v * 1e4).round() / 1e4)
    }
}

fn show(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_nearest_rank() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let sorted: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(nearest_rank(&sorted, 50.0), 100.0);
        assert_eq!(nearest_rank(&sorted, 99.0), 198.0);
        assert_eq!(nearest_rank(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn json_has_median_and_max_of_each_figure() {
        let run = |wall: f64| {
            let mut f = Figures::default();
            f.set("wall_s", wall);
            f.set("launches", 0.0);
            f
        };
        let report = ScenarioReport {
            scenario: "cold",
            specs: 20,
            runs_asked: 3,
            cores: 2,
            master_source: "master/state",
            runs: vec![run(1.5), run(0.5), run(1.0)],
            timed_out: None,
            error: None,
        };
        let v: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(v["scenario"], "cold");
        assert_eq!(v["specs"], 20);
        assert_eq!(v["runs"], 3);
        assert_eq!(v["wall_s"], 1.0);
        assert_eq!(v["wall_s_max"], 1.5);
        assert_eq!(v["launches"], 0);
        assert_eq!(v["timed_out"], false);
        assert!(report.table().contains("wall_s"));
    }
}
