//! A memo of RDKit's answers bounded by the bytes it really holds.
//!
//! Two generations per shard: answers go into the young one; when the young
//! one has taken half the shard's budget, the old one is dropped whole and the
//! young one becomes old. A hit in the old generation moves the answer back to
//! the young one, so answers in use survive and the others age out: an LRU's
//! effect for the price of a hash map, with nothing per entry but the entry.
//!
//! An entry is charged its key and value bytes rounded up to the allocator's
//! size classes, and its share of the hash table's slots at the table's lowest
//! load after it doubles; `tests::the_memo_holds_no_more_than_its_budget`
//! counts what the allocator really handed out.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use crate::memory::allocation;

const SHARDS: usize = 8;

/// What a value is charged beside its key (its heap bytes).
pub trait Weigh {
    fn heap_bytes(&self) -> usize;
}

impl Weigh for Box<str> {
    fn heap_bytes(&self) -> usize {
        allocation(self.len())
    }
}

impl<T: Weigh> Weigh for Option<T> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, Weigh::heap_bytes)
    }
}

impl<T: Weigh, E: Weigh> Weigh for Result<T, E> {
    fn heap_bytes(&self) -> usize {
        match self {
            Ok(v) => v.heap_bytes(),
            Err(e) => e.heap_bytes(),
        }
    }
}

struct Generations<V> {
    young: HashMap<Box<str>, V>,
    old: HashMap<Box<str>, V>,
    young_bytes: usize,
}

pub struct Memo<V> {
    shards: [Mutex<Generations<V>>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
    /// Bytes one generation of one shard may take.
    generation_bytes: usize,
}

impl<V: Clone + Weigh> Memo<V> {
    /// A memo of at most `budget` bytes (keys, values and table slots).
    pub fn new(budget: usize) -> Self {
        Memo {
            shards: std::array::from_fn(|_| {
                Mutex::new(Generations { young: HashMap::new(), old: HashMap::new(), young_bytes: 0 })
            }),
            hasher: Default::default(),
            generation_bytes: budget / SHARDS / 2,
        }
    }

    /// What one entry costs: its key, its value, and 2.3 table slots (a
    /// table that has just doubled is 7/16 full).
    fn cost(key: &str, value: &V) -> usize {
        let slot = std::mem::size_of::<(Box<str>, V)>() + 1;
        allocation(key.len()) + value.heap_bytes() + slot * 16 / 7 + 1
    }

    fn shard(&self, key: &str) -> &Mutex<Generations<V>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// The answer for `key`, if remembered.
    pub fn get(&self, key: &str) -> Option<V> {
        let mut g = self.shard(key).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = g.young.get(key) {
            return Some(v.clone());
        }
        let (key, value) = g.old.remove_entry(key)?;
        let out = value.clone();
        self.insert_into(&mut g, key, value);
        Some(out)
    }

    pub fn contains(&self, key: &str) -> bool {
        let g = self.shard(key).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.young.contains_key(key) || g.old.contains_key(key)
    }

    /// Remembers `value` for `key`, unless one entry alone would take more
    /// than a generation.
    pub fn insert(&self, key: &str, value: V) {
        let mut g = self.shard(key).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.young.contains_key(key) {
            return;
        }
        g.old.remove(key);
        self.insert_into(&mut g, key.into(), value);
    }

    fn insert_into(&self, g: &mut Generations<V>, key: Box<str>, value: V) {
        let cost = Self::cost(&key, &value);
        if cost > self.generation_bytes {
            return;
        }
        if g.young_bytes + cost > self.generation_bytes {
            // The old generation goes whole; the table's memory with it.
            g.old = std::mem::take(&mut g.young);
            g.young_bytes = 0;
        }
        g.young.insert(key, value);
        g.young_bytes += cost;
    }

    /// Bytes charged now (for the tests and the gauges).
    pub fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                g.young_bytes + g.old.iter().map(|(k, v)| Self::cost(k, v)).sum::<usize>()
            })
            .sum()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                g.young.len() + g.old.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(i: usize) -> String {
        crate::loadtest::molecules::molecule(i as u64)
    }

    #[test]
    fn answers_come_back_until_they_age_out() {
        let memo: Memo<Option<Box<str>>> = Memo::new(64 << 10);
        memo.insert("CCO", Some("OCC".into()));
        memo.insert("C1CC", None);
        assert_eq!(memo.get("CCO"), Some(Some("OCC".into())));
        assert_eq!(memo.get("C1CC"), Some(None));
        assert_eq!(memo.get("CCN"), None);
        // Thousands of others later, an answer used all along is still there.
        for i in 0..20_000 {
            memo.insert(&text(i), Some(text(i).into()));
            if i % 100 == 0 {
                assert!(memo.get("CCO").is_some(), "lost after {i}");
            }
        }
        assert!(memo.get("C1CC").is_none(), "an unused answer ages out");
        assert!(memo.bytes() <= 64 << 10, "{}", memo.bytes());
    }

    /// The allocator's own count: what the memo really holds, keys, values,
    /// tables and all, after tens of thousands of distinct molecules.
    #[test]
    fn the_memo_holds_no_more_than_its_budget() {
        // On a thread of its own: the count is of this thread's allocations
        // less its frees, and the memo is touched by no other thread.
        std::thread::spawn(|| {
            let budget = 256 << 10;
            let keys: Vec<String> = (0..40_000).map(text).collect();
            let before = crate::testing::allocated_here();
            let memo: Box<Memo<Result<Box<str>, Box<str>>>> = Box::new(Memo::new(budget));
            let mut peak = 0;
            for (i, k) in keys.iter().enumerate() {
                let value = if i % 3 == 0 { Err("unclosed ring".into()) } else { Ok(k.to_uppercase().into()) };
                memo.insert(k, value);
                if i % 64 == 0 {
                    memo.get(&keys[i / 2]);
                    peak = peak.max(crate::testing::allocated_here() - before);
                }
            }
            let held = crate::testing::allocated_here() - before;
            // Right after shards drop their old generations it holds about
            // one generation per shard (~850 entries of ~150 bytes at this
            // budget); the bound is that it holds many, not a tuned count.
            assert!(memo.len() > 600, "{} entries", memo.len());
            assert!(peak <= budget as isize, "peak {peak} bytes against a budget of {budget}");
            assert!(held <= budget as isize, "{held} bytes against a budget of {budget}");
            assert!(memo.bytes() <= budget);
            // The charge is honest: not far above what the allocator counts.
            assert!((memo.bytes() as isize) < held * 3 / 2, "charged {} for {held}", memo.bytes());
            drop(memo);
            assert!(crate::testing::allocated_here() - before < 1024, "all of it is freed");
        })
        .join()
        .unwrap();
    }
}
