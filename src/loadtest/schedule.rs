//! When each request of an open-loop test is due: a constant rate, or stages
//! that ramp the rate linearly from the previous stage's target (from 0).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
struct Ramp {
    from: f64,
    to: f64,
    seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    ramps: Vec<Ramp>,
}

impl Schedule {
    pub fn constant(rate: f64, duration: Duration) -> Result<Schedule, String> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("--rate must be more than 0, got {rate}"));
        }
        if duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        Ok(Schedule { ramps: vec![Ramp { from: rate, to: rate, seconds: duration.as_secs_f64() }] })
    }

    /// Parses `30s:50,2m:400,1m:400,30s:0`: each stage ramps linearly from the
    /// previous target (0 at first) to its own over its duration.
    pub fn stages(spec: &str) -> Result<Schedule, String> {
        let mut ramps = Vec::new();
        let mut from = 0.0;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (d, r) =
                part.split_once(':').ok_or_else(|| format!("stage '{part}' is not DURATION:RATE (e.g. 2m:400)"))?;
            let seconds = crate::config::parse_duration(d)?.as_secs_f64();
            let to: f64 = r.trim().parse().map_err(|_| format!("stage '{part}': '{r}' is not a rate"))?;
            if seconds <= 0.0 || !(to.is_finite() && to >= 0.0) {
                return Err(format!("stage '{part}' needs a duration above 0 and a rate of 0 or more"));
            }
            ramps.push(Ramp { from, to, seconds });
            from = to;
        }
        if ramps.is_empty() {
            return Err("--stages is empty".into());
        }
        Ok(Schedule { ramps })
    }

    pub fn total(&self) -> Duration {
        Duration::from_secs_f64(self.ramps.iter().map(|r| r.seconds).sum())
    }

    /// The intended rate `t` seconds after the start.
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for r in &self.ramps {
            if t < start + r.seconds {
                return r.from + (r.to - r.from) * (t - start) / r.seconds;
            }
            start += r.seconds;
        }
        0.0
    }

    /// How many requests the whole schedule sends.
    pub fn expected(&self) -> u64 {
        self.ramps.iter().map(|r| (r.from + r.to) / 2.0 * r.seconds).sum::<f64>().floor() as u64
    }

    /// When the `k`-th request (from 1) is due, in seconds from the start: the
    /// moment the integral of the rate reaches `k`. `None` past the end.
    pub fn arrival(&self, k: u64) -> Option<f64> {
        let mut left = k as f64;
        let mut start = 0.0;
        for r in &self.ramps {
            let count = (r.from + r.to) / 2.0 * r.seconds;
            if left <= count {
                // from*x + (to-from)/(2*seconds)*x^2 = left
                let a = (r.to - r.from) / (2.0 * r.seconds);
                let x = if a.abs() < 1e-12 {
                    left / r.from
                } else {
                    (-r.from + (r.from * r.from + 4.0 * a * left).max(0.0).sqrt()) / (2.0 * a)
                };
                return Some(start + x.clamp(0.0, r.seconds));
            }
            left -= count;
            start += r.seconds;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_arrives_evenly() {
        let s = Schedule::constant(100.0, Duration::from_secs(2)).unwrap();
        assert_eq!(s.expected(), 200);
        assert!((s.arrival(1).unwrap() - 0.01).abs() < 1e-9);
        assert!((s.arrival(150).unwrap() - 1.5).abs() < 1e-9);
        assert!((s.arrival(200).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(s.arrival(201), None);
        assert!(Schedule::constant(0.0, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn stages_ramp_linearly_from_the_previous_target() {
        let s = Schedule::stages("10s:100, 10s:100, 10s:0").unwrap();
        assert_eq!(s.total(), Duration::from_secs(30));
        assert_eq!(s.rate_at(5.0), 50.0);
        assert_eq!(s.rate_at(15.0), 100.0);
        assert_eq!(s.rate_at(25.0), 50.0);
        assert_eq!(s.rate_at(31.0), 0.0);
        // 500 up the ramp, 1000 flat, 500 down
        assert_eq!(s.expected(), 2000);
        // during a ramp from 0, the k-th arrival is at sqrt(2k*T/R)
        assert!((s.arrival(125).unwrap() - 5.0).abs() < 1e-9);
        assert!((s.arrival(500).unwrap() - 10.0).abs() < 1e-9);
        assert!((s.arrival(1000).unwrap() - 15.0).abs() < 1e-9);
        assert!((s.arrival(2000).unwrap() - 30.0).abs() < 1e-6);
        // arrival times never go backwards
        let times: Vec<f64> = (1..=2000).map(|k| s.arrival(k).unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn bad_stages_are_rejected_clearly() {
        assert!(Schedule::stages("").is_err());
        assert!(Schedule::stages("30s").unwrap_err().contains("DURATION:RATE"));
        assert!(Schedule::stages("30s:fast").is_err());
        assert!(Schedule::stages("0s:10").is_err());
        assert!(Schedule::stages("10s:-5").is_err());
    }
}
