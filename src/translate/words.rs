//! Numbers in words for people: shared by the pages and the API's messages
//! (a leaf: it imports nothing of the crate).

/// `10000` as `10,000`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_numbers_get_separators() {
        assert_eq!([0, 999, 1000, 10_000, 1_234_567].map(thousands), ["0", "999", "1,000", "10,000", "1,234,567"]);
    }
}
