//! API keys and their quotas (`API_KEYS_FILE`, off by default).
//!
//! The file is TOML, one `[[key]]` per caller, and holds no key: only its
//! SHA-256, so the file (a Kubernetes Secret) can be read without giving
//! anyone the keys:
//!
//! ```toml
//! [[key]]
//! name = "ci-script"        # shown in metrics and logs
//! sha256 = "<hex SHA-256 of the key>"
//! rate = "20/s"             # optional, with a burst, as RATE_LIMIT
//! daily_inputs = 10000      # optional; a batch of 500 costs 500
//! ```
//!
//! A key's daily count starts again at 00:00 UTC. Counts are per pod: with N
//! replicas behind a balancer a key can use up to N times its `daily_inputs`
//! a day (docs/security.md). Reloading the file keeps the counts of the keys
//! it still holds; a key taken out of it stops working at the next reload.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::rate::{RateLimit, parse_rate_limit};

const DAY: u64 = 86_400;

/// What time it is, for the daily counts (a fake one in tests).
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// One caller's key, as the file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Shown in metrics (a label: keys are configuration, not client input)
    /// and in the access log.
    pub name: String,
    pub sha256: [u8; 32],
    pub rate: Option<RateLimit>,
    pub daily_inputs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    key: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    sha256: String,
    rate: Option<String>,
    daily_inputs: Option<u64>,
}

/// Reads a keys file; the error names the entry and what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let mut entries: Vec<Entry> = Vec::with_capacity(file.key.len());
    for (i, raw) in file.key.into_iter().enumerate() {
        let which = format!("key {} ({:?})", i + 1, raw.name);
        let name_ok = !raw.name.is_empty()
            && raw.name.len() <= 64
            && raw.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok || matches!(raw.name.as_str(), "anonymous" | "unknown") {
            return Err(format!(
                "{which}: a name is 1 to 64 letters, digits, '-', '_' or '.', and not 'anonymous' or 'unknown'"
            ));
        }
        let sha256 = unhex(&raw.sha256)
            .ok_or_else(|| format!("{which}: sha256 must be 64 hex digits (the SHA-256 of the key, not the key)"))?;
        let rate = raw.rate.as_deref().map(parse_rate_limit).transpose().map_err(|e| format!("{which}: rate: {e}"))?;
        if raw.daily_inputs == Some(0) {
            return Err(format!("{which}: daily_inputs 0 would refuse everything; remove the key instead"));
        }
        if entries.iter().any(|e| e.name == raw.name) {
            return Err(format!("{which}: the name is used twice"));
        }
        if entries.iter().any(|e| e.sha256 == sha256) {
            return Err(format!("{which}: the same key is listed twice"));
        }
        entries.push(Entry { name: raw.name, sha256, rate, daily_inputs: raw.daily_inputs });
    }
    Ok(entries)
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a key as presented.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random key (256 bits from the operating system) and its entry for
/// the keys file.
pub fn new_key(name: &str) -> Result<(String, String), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    let key = format!("tfk_{}", hex(&bytes));
    let entry = format!(
        "[[key]]\nname = {name:?}\nsha256 = \"{}\"\n# rate = \"20/s\"\n# daily_inputs = 10000\n",
        hex(&hash(&key))
    );
    // The entry must read back as written.
    parse(&entry).map_err(|e| format!("--name: {e}"))?;
    Ok((key, entry))
}

/// A known key: its name and its limits.
pub struct Key {
    pub name: String,
    sha256: [u8; 32],
    /// Its rate and its limiter, shared with the same key after a reload.
    rate: Option<(RateLimit, Arc<DefaultDirectRateLimiter>)>,
    daily_inputs: Option<u64>,
}

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Over its `rate`: try again after this.
    RateLimited(Duration),
    /// Its `daily_inputs` would be exceeded: used, limit, and when the count
    /// starts again.
    QuotaExceeded { used: u64, limit: u64, resets: SystemTime },
}

#[derive(Default)]
struct Usage {
    day: u64,
    inputs: u64,
}

/// The keys in force and what each has used today.
pub struct Keys {
    table: RwLock<HashMap<[u8; 32], Arc<Key>>>,
    usage: Mutex<HashMap<[u8; 32], Usage>>,
    clock: Box<dyn Clock>,
}

impl Keys {
    pub fn new(entries: Vec<Entry>, clock: Box<dyn Clock>) -> Self {
        let keys = Keys { table: RwLock::default(), usage: Mutex::default(), clock };
        keys.replace(entries);
        keys
    }

    /// Puts a reloaded file in force. A key still listed keeps its count and,
    /// when its rate is unchanged, its rate limiter.
    pub fn replace(&self, entries: Vec<Entry>) {
        let old = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let table: HashMap<[u8; 32], Arc<Key>> = entries
            .into_iter()
            .map(|e| {
                let kept = old.get(&e.sha256).and_then(|k| k.rate.clone()).filter(|(r, _)| Some(*r) == e.rate);
                let rate = kept.or_else(|| e.rate.map(|r| (r, Arc::new(limiter(r)))));
                let key = Key { name: e.name, sha256: e.sha256, rate, daily_inputs: e.daily_inputs };
                (e.sha256, Arc::new(key))
            })
            .collect();
        self.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|h, _| table.contains_key(h));
        *self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner) = table;
    }

    /// The key presented, if it is one of ours.
    pub fn find(&self, presented: &str) -> Option<Arc<Key>> {
        self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&hash(presented)).cloned()
    }

    /// The names in force (for the metrics' labels and the log).
    pub fn names(&self) -> Vec<String> {
        self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().map(|k| k.name.clone()).collect()
    }

    /// One request against the key's rate.
    pub fn admit(&self, key: &Key) -> Result<(), Refusal> {
        match &key.rate {
            None => Ok(()),
            Some((_, limiter)) => limiter
                .check()
                .map_err(|not_until| Refusal::RateLimited(not_until.wait_time_from(DefaultClock::default().now()))),
        }
    }

    /// Charges `inputs` to the key's day, or refuses them all when they would
    /// pass its `daily_inputs` (nothing is charged then).
    pub fn charge(&self, key: &Key, inputs: u64) -> Result<(), Refusal> {
        let now = self.clock.now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let today = now / DAY;
        let mut usage = self.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let used = usage.entry(key.sha256).or_default();
        if used.day != today {
            *used = Usage { day: today, inputs: 0 };
        }
        if let Some(limit) = key.daily_inputs
            && used.inputs + inputs > limit
        {
            let resets = UNIX_EPOCH + Duration::from_secs((today + 1) * DAY);
            return Err(Refusal::QuotaExceeded { used: used.inputs, limit, resets });
        }
        used.inputs += inputs;
        Ok(())
    }

    /// Seconds from now until `then` (at least 1), for `Retry-After`.
    pub fn seconds_until(&self, then: SystemTime) -> u64 {
        then.duration_since(self.clock.now()).map_or(1, |d| d.as_secs().max(1))
    }
}

fn limiter(r: RateLimit) -> DefaultDirectRateLimiter {
    let burst = NonZeroU32::new(r.burst.max(1)).expect("at least 1");
    RateLimiter::direct(Quota::with_period(r.period).expect("a period above zero").allow_burst(burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that moves only when told.
    struct Fake(Arc<Mutex<SystemTime>>);

    impl Clock for Fake {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    fn entry(name: &str, key: &str, daily: Option<u64>) -> Entry {
        Entry { name: name.into(), sha256: hash(key), rate: None, daily_inputs: daily }
    }

    #[test]
    fn the_daily_quota_takes_up_to_its_limit_refuses_one_more_and_starts_again_at_midnight() {
        // 2026-12-03 23:59:59 UTC
        let time = Arc::new(Mutex::new(UNIX_EPOCH + Duration::from_secs(1_796_342_399)));
        let keys = Keys::new(vec![entry("ci", "k1", Some(10))], Box::new(Fake(time.clone())));
        let key = keys.find("k1").unwrap();
        assert_eq!(keys.charge(&key, 9), Ok(()));
        assert_eq!(keys.charge(&key, 1), Ok(()), "one under the limit, then the limit itself");
        let refused = keys.charge(&key, 1).unwrap_err();
        let midnight = UNIX_EPOCH + Duration::from_secs(1_796_342_400);
        assert_eq!(refused, Refusal::QuotaExceeded { used: 10, limit: 10, resets: midnight });
        assert_eq!(keys.seconds_until(midnight), 1);
        *time.lock().unwrap() = midnight;
        assert_eq!(keys.charge(&key, 10), Ok(()), "a new day");
        assert!(keys.charge(&key, 1).is_err());
    }

    #[test]
    fn a_batch_that_would_pass_the_quota_is_refused_whole_and_charges_nothing() {
        let time = Arc::new(Mutex::new(UNIX_EPOCH + Duration::from_secs(1_796_300_000)));
        let keys = Keys::new(vec![entry("ci", "k1", Some(500))], Box::new(Fake(time)));
        let key = keys.find("k1").unwrap();
        assert_eq!(keys.charge(&key, 400), Ok(()));
        assert!(keys.charge(&key, 101).is_err());
        assert_eq!(keys.charge(&key, 100), Ok(()), "the refused batch took nothing");
    }

    #[test]
    fn a_reload_keeps_the_counts_of_keys_it_still_holds_and_revokes_the_others() {
        let time = Arc::new(Mutex::new(UNIX_EPOCH + Duration::from_secs(1_796_300_000)));
        let keys = Keys::new(vec![entry("a", "ka", Some(5)), entry("b", "kb", None)], Box::new(Fake(time)));
        keys.charge(&keys.find("ka").unwrap(), 5).unwrap();
        keys.replace(vec![entry("a-renamed", "ka", Some(5)), entry("c", "kc", None)]);
        assert!(keys.find("kb").is_none(), "revoked");
        let a = keys.find("ka").unwrap();
        assert_eq!(a.name, "a-renamed");
        assert!(keys.charge(&a, 1).is_err(), "the count survived the reload");
        assert!(keys.find("kc").is_some());
    }

    #[test]
    fn a_key_over_its_rate_waits() {
        let time = Arc::new(Mutex::new(SystemTime::now()));
        let rate = parse_rate_limit("1/m burst 2").unwrap();
        let keys = Keys::new(
            vec![Entry { name: "slow".into(), sha256: hash("k"), rate: Some(rate), daily_inputs: None }],
            Box::new(Fake(time)),
        );
        let key = keys.find("k").unwrap();
        assert!(keys.admit(&key).is_ok() && keys.admit(&key).is_ok(), "the burst");
        assert!(matches!(keys.admit(&key), Err(Refusal::RateLimited(wait)) if wait > Duration::from_secs(1)));
    }

    #[test]
    fn the_file_is_read_strictly_and_its_errors_name_the_entry() {
        let good =
            format!("[[key]]\nname = \"ci\"\nsha256 = \"{}\"\nrate = \"5/s\"\ndaily_inputs = 7\n", hex(&hash("x")));
        let parsed = parse(&good).unwrap();
        assert_eq!((parsed[0].name.as_str(), parsed[0].daily_inputs), ("ci", Some(7)));
        assert_eq!(parse("").unwrap(), vec![]);
        for (bad, says) in [
            ("[[key]]\nname = \"ci\"\nsha256 = \"abc\"\n", "key 1 (\"ci\"): sha256 must be 64 hex digits"),
            (&good.replace("ci", "has space"), "a name is 1 to 64 letters"),
            (&good.replace("ci", "anonymous"), "not 'anonymous'"),
            (&good.replace("5/s", "fast"), "key 1 (\"ci\"): rate:"),
            (&format!("{good}{}", good.replace("\"ci\"", "\"cd\"")), "key 2 (\"cd\"): the same key is listed twice"),
            (&good.replace("daily_inputs", "daily"), "unknown field"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_new_key_is_random_and_its_entry_names_its_hash() {
        let (k1, entry) = new_key("ci-script").unwrap();
        let (k2, _) = new_key("ci-script").unwrap();
        assert_ne!(k1, k2);
        assert!(k1.starts_with("tfk_") && k1.len() == 68);
        let parsed = parse(&entry).unwrap();
        assert_eq!((parsed[0].name.as_str(), parsed[0].sha256), ("ci-script", hash(&k1)));
        assert!(!entry.contains(&k1), "the entry holds the hash, not the key");
        assert!(new_key("bad name").is_err());
    }
}
