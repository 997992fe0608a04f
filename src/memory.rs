//! What an allocation really takes: the bytes a cache or memo is charged for
//! what it holds, so that its byte budget bounds the process's memory. A leaf.

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
