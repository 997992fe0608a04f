//! A rate as the settings write it (`RATE_LIMIT`, `ANONYMOUS_RATE`, a key's
//! `rate`): a leaf, read by the settings and the keys file alike.

use std::time::Duration;

/// One request per `period`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub period: Duration,
    pub burst: u32,
}

/// Parses `20/s`, `600/m`, `5/h`, optionally `burst N` (`20/s burst 40`); the
/// burst defaults to the per-second rate (at least 1).
pub fn parse_rate_limit(s: &str) -> Result<RateLimit, String> {
    let bad = || format!("'{s}' is not a rate like 20/s, 600/m or '20/s burst 40'");
    let mut words = s.split_whitespace();
    let rate = words.next().ok_or_else(bad)?;
    let (n, unit) = rate.split_once('/').ok_or_else(bad)?;
    let n: u32 = n.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
    let per = match unit {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    let period = per / n;
    let burst = match (words.next(), words.next(), words.next()) {
        (None, _, _) => ((n as f64) / per.as_secs_f64()).ceil().max(1.0) as u32,
        (Some("burst"), Some(b), None) => b.parse().ok().filter(|b| *b > 0).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if period.is_zero() {
        return Err(bad());
    }
    Ok(RateLimit { period, burst })
}
