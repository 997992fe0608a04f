//! Numbers in words for people: shared by the pages, the API's messages and
//! a batch's lines
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

/// A probability for people: three significant digits as a percentage, so
/// small ones stay distinct (`0.0312%`, not `0.0%`); below 0.01% in scientific
/// notation (`1.2e-5`). The pages show it; a batch's lines carry it
/// (`probability_text`) for the batch page's table.
pub fn probability(p: f64) -> String {
    let pct = p * 100.0;
    if pct.is_nan() || pct <= 0.0 {
        return "0%".into();
    }
    if pct >= 10.0 {
        format!("{pct:.1}%")
    } else if pct >= 1.0 {
        format!("{pct:.2}%")
    } else if pct >= 0.01 {
        let decimals = (2 - pct.log10().floor() as i32) as usize;
        format!("{pct:.decimals$}%")
    } else {
        let mut exponent = p.log10().floor() as i32;
        let mut mantissa = p / 10f64.powi(exponent);
        if mantissa >= 9.95 {
            mantissa /= 10.0;
            exponent += 1;
        }
        format!("{mantissa:.1}e{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_probabilities_keep_their_digits() {
        let shown: Vec<String> =
            [0.942, 0.0314, 0.00312, 0.00024, 0.000156, 0.000012, 0.0000999, 1.0, 0.0].map(probability).into();
        assert_eq!(shown, ["94.2%", "3.14%", "0.312%", "0.0240%", "0.0156%", "1.2e-5", "1.0e-4", "100.0%", "0%"]);
    }

    #[test]
    fn big_numbers_get_separators() {
        assert_eq!([0, 999, 1000, 10_000, 1_234_567].map(thousands), ["0", "999", "1,000", "10,000", "1,234,567"]);
    }
}
