//! Pass or fail, as k6's thresholds: `--threshold p99<800ms`,
//! `--threshold errors<1%`, `--threshold rate>=95%`. A run whose thresholds
//! fail exits 1, so a Kubernetes Job shows Failed and a pipeline stops.
//!
//! What each name measures:
//! - `p50` `p90` `p95` `p99` `p999` `max`: latency of every request from its
//!   intended send time, a failed one counted at the time it failed (a
//!   timeout at `--timeout`); `p99_ok` and the like: of successes only.
//! - `errors`: requests that did not succeed (non-2xx, timeouts, connection
//!   errors, and those not sent on time) over the requests scheduled; as a
//!   percentage (`errors<1%`) or a count (`errors<10`).
//! - `rate`: successful requests per second; as a percentage of the
//!   schedule's mean rate (`rate>=95%`) or in requests per second (`rate>=100`).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    /// A quantile (0..=1) of every request's latency, or of successes only.
    Latency {
        quantile: f64,
        ok_only: bool,
    },
    Errors,
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Millis,
    Percent,
    Plain,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    measure: Measure,
    op: Op,
    value: f64,
    unit: Unit,
}

/// What the thresholds are checked against.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Latency in ms at a quantile, of every request and of successes.
    pub latency_all: Vec<(f64, f64)>,
    pub latency_ok: Vec<(f64, f64)>,
    pub scheduled: u64,
    pub failed: u64,
    pub achieved_rate: f64,
    pub target_rate: f64,
}

impl Figures {
    fn latency(&self, quantile: f64, ok_only: bool) -> Option<f64> {
        let table = if ok_only { &self.latency_ok } else { &self.latency_all };
        table.iter().find(|(q, _)| (*q - quantile).abs() < 1e-9).map(|(_, ms)| *ms)
    }
}

/// The quantiles a threshold can name, and the names.
pub const QUANTILES: [(&str, f64); 6] =
    [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999), ("max", 1.0)];

/// The outcome of one threshold.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Verdict {
    pub threshold: String,
    /// The measured value in the threshold's unit (ms, %, req/s or a count).
    pub value: Option<f64>,
    pub passed: bool,
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let bad = |why: &str| format!("--threshold '{text}': {why} (e.g. p99<800ms, errors<1%, rate>=95%)");
        let compact: String = text.split_whitespace().collect();
        let at = compact.find(['<', '>']).ok_or_else(|| bad("no comparison"))?;
        let (name, rest) = compact.split_at(at);
        let (op, number) = if let Some(n) = rest.strip_prefix("<=") {
            (Op::Le, n)
        } else if let Some(n) = rest.strip_prefix(">=") {
            (Op::Ge, n)
        } else if let Some(n) = rest.strip_prefix('<') {
            (Op::Lt, n)
        } else {
            (Op::Gt, &rest[1..])
        };
        let (digits, unit) = if let Some(d) = number.strip_suffix("ms") {
            (d, Unit::Millis)
        } else if let Some(d) = number.strip_suffix('s') {
            (d, Unit::Plain)
        } else if let Some(d) = number.strip_suffix('%') {
            (d, Unit::Percent)
        } else {
            (number, Unit::Plain)
        };
        let mut value: f64 = digits.parse().map_err(|_| bad(&format!("'{number}' is not a number")))?;
        if !value.is_finite() || value < 0.0 {
            return Err(bad("the value must be 0 or more"));
        }
        let (base, ok_only) = match name.strip_suffix("_ok") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let measure = match (base, QUANTILES.iter().find(|(n, _)| *n == base)) {
            (_, Some((_, quantile))) => {
                match unit {
                    Unit::Millis => {}
                    // `p99<1.5s`: seconds
                    Unit::Plain if number.ends_with('s') => value *= 1000.0,
                    _ => return Err(bad("a latency needs a unit, ms or s")),
                }
                Measure::Latency { quantile: *quantile, ok_only }
            }
            ("errors", None) if !ok_only && unit != Unit::Millis && !number.ends_with('s') => Measure::Errors,
            ("rate", None) if !ok_only && unit != Unit::Millis && !number.ends_with('s') => Measure::Rate,
            ("errors" | "rate", None) => return Err(bad("errors and rate take a percentage or a number")),
            _ => return Err(bad(&format!("unknown measure '{name}'"))),
        };
        let unit = if matches!(measure, Measure::Latency { .. }) { Unit::Millis } else { unit };
        if unit == Unit::Percent && value > 100.0 {
            return Err(bad("a percentage is at most 100"));
        }
        Ok(Threshold { text: text.trim().to_string(), measure, op, value, unit })
    }

    /// Whether this threshold can be judged before the run ends: latency and
    /// errors can (`--abort-on-fail`), the rate only over the whole run.
    pub fn judged_early(&self) -> bool {
        self.measure != Measure::Rate
    }

    pub fn check(&self, f: &Figures) -> Verdict {
        let value = match self.measure {
            Measure::Latency { quantile, ok_only } => f.latency(quantile, ok_only),
            Measure::Errors => match self.unit {
                Unit::Percent if f.scheduled > 0 => Some(f.failed as f64 * 100.0 / f.scheduled as f64),
                Unit::Percent => None,
                _ => Some(f.failed as f64),
            },
            Measure::Rate => match self.unit {
                Unit::Percent if f.target_rate > 0.0 => Some(f.achieved_rate * 100.0 / f.target_rate),
                Unit::Percent => None,
                _ => Some(f.achieved_rate),
            },
        };
        // Nothing measured (no success yet for a `_ok` latency) fails.
        let passed = value.is_some_and(|v| match self.op {
            Op::Lt => v < self.value,
            Op::Le => v <= self.value,
            Op::Gt => v > self.value,
            Op::Ge => v >= self.value,
        });
        let value = value.map(|v| (v * 1000.0).round() / 1000.0);
        Verdict { threshold: self.text.clone(), value, passed }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.value.map_or("nothing measured".to_string(), |v| format!("{v}"));
        write!(f, "{} {}: {value}", if self.passed { "passed" } else { "FAILED" }, self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            latency_all: QUANTILES.iter().map(|(_, q)| (*q, 1000.0 * q)).collect(),
            latency_ok: QUANTILES.iter().map(|(_, q)| (*q, 100.0 * q)).collect(),
            scheduled: 1000,
            failed: 12,
            achieved_rate: 96.0,
            target_rate: 100.0,
        }
    }

    fn check(text: &str) -> (Option<f64>, bool) {
        let v = Threshold::parse(text).unwrap().check(&figures());
        (v.value, v.passed)
    }

    #[test]
    fn latency_errors_and_rate_are_judged_in_their_units() {
        assert_eq!(check("p99<800ms"), (Some(990.0), false));
        assert_eq!(check("p99_ok<800ms"), (Some(99.0), true));
        assert_eq!(check("p50 <= 0.5s"), (Some(500.0), true));
        assert_eq!(check("max<1s"), (Some(1000.0), false));
        assert_eq!(check("errors<1%"), (Some(1.2), false));
        assert_eq!(check("errors<2%"), (Some(1.2), true));
        assert_eq!(check("errors<=12"), (Some(12.0), true));
        assert_eq!(check("rate>=95%"), (Some(96.0), true));
        assert_eq!(check("rate>100"), (Some(96.0), false));
    }

    #[test]
    fn a_threshold_with_nothing_measured_fails() {
        let t = Threshold::parse("p99_ok<1s").unwrap();
        let v = t.check(&Figures { latency_all: vec![(0.99, 5.0)], ..Default::default() });
        assert_eq!((v.value, v.passed), (None, false));
        assert_eq!(v.to_string(), "FAILED p99_ok<1s: nothing measured");
    }

    #[test]
    fn only_the_rate_waits_for_the_end() {
        assert!(Threshold::parse("p99<1s").unwrap().judged_early());
        assert!(Threshold::parse("errors<1%").unwrap().judged_early());
        assert!(!Threshold::parse("rate>=95%").unwrap().judged_early());
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        for (text, why) in [
            ("p99", "no comparison"),
            ("p99<fast", "not a number"),
            ("p99<800", "needs a unit"),
            ("p98<1s", "unknown measure"),
            ("errors<5ms", "percentage or a number"),
            ("errors<150%", "at most 100"),
            ("rate>=-1", "0 or more"),
        ] {
            let e = Threshold::parse(text).unwrap_err();
            assert!(e.contains(why) && e.contains(text), "{text}: {e}");
        }
    }
}
