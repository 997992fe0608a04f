//! What an allocation really takes: the bytes a cache or memo is charged for
//! what it holds, so that its byte budget bounds the process's memory; and how
//! soon the allocator gives freed memory back. A leaf.

/// The block the allocator hands out for `len` bytes: nothing for none, else
/// rounded up to 16 bytes, plus an eighth above 64 bytes (mimalloc's size
/// classes are at most 12.5% apart).
pub fn allocation(len: usize) -> usize {
    match len {
        0 => 0,
        1..=64 => len.div_ceil(16) * 16,
        _ => (len + len / 8).div_ceil(16) * 16,
    }
}

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in mimalloc.h:
/// the same place in the option list in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: i32 = 15;

#[allow(unsafe_code)]
unsafe extern "C" {
    /// Compiled into the program with mimalloc (libmimalloc-sys).
    fn mi_option_set(option: i32, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: i32) -> std::ffi::c_long;
}

/// How long, in milliseconds, freed pages wait before they go back to the
/// system. mimalloc's default, 1 s, held ~25 MB more under a load test of
/// distinct molecules at 64 in flight with the result cache full (4-minute
/// soaks: 112-127 MiB against 93-106 MiB at 100 ms), enough to cross the
/// 128 MiB line in 10 minutes; 10 ms or 0 held a little less (90-99 MiB)
/// for twice the page faults (~23 per request in text mode against ~12 at
/// 100 ms and ~4 at 1 s) and more CPU (docs/performance.md).
pub const PURGE_DELAY_MS: i64 = 100;

/// Sets [`PURGE_DELAY_MS`] unless the environment chose (mimalloc reads
/// `MIMALLOC_PURGE_DELAY` itself, before `main`). Call first thing in `main`.
pub fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() && std::env::var_os("MIMALLOC_RESET_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options (a plain integer it reads
        // when it next purges); valid at any time, from any thread.
        #[allow(unsafe_code)]
        unsafe {
            mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as std::ffi::c_long)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The purge delay mimalloc uses now, in milliseconds.
    fn purge_delay_ms() -> i64 {
        // SAFETY: reads one of mimalloc's options.
        #[allow(unsafe_code)]
        let ms = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        ms as i64
    }

    /// The option's number is mimalloc's, not ours: before tuning it reads
    /// mimalloc 3's documented default for `purge_delay` (1000 ms, which no
    /// other option has), and after it reads ours. (No other test tunes the
    /// allocator; `main` does, and unit tests do not run it.)
    #[test]
    fn tune_allocator_sets_mimallocs_purge_delay() {
        assert!(
            std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() && std::env::var_os("MIMALLOC_RESET_DELAY").is_none(),
            "run this test without MIMALLOC_PURGE_DELAY / MIMALLOC_RESET_DELAY in the environment"
        );
        assert_eq!(purge_delay_ms(), 1000, "option {MI_OPTION_PURGE_DELAY} is not mimalloc's purge_delay");
        tune_allocator();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
