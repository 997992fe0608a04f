//! The result reader: one pass over a result's bytes, numbers read straight
//! into one `Vec<f32>` per attention matrix. Kept, rather than serde, because
//! it is several times faster on attention-heavy answers (docs/performance.md).

use std::borrow::Cow;

use super::{ProtocolError, ResultBody};
use crate::inference::answer::Matrix;

/// Reads a result object in one pass over its bytes.
///
/// A result is mostly attention: thousands of numbers like `0.0123456`. Read
/// with serde, skipping them (to read them apart) or parsing them through the
/// general float path into a `Vec` per row was the largest part of the CPU of a
/// translation; this reads the digits straight into one `Vec<f32>` per matrix.
/// Fields it does not know are skipped by serde, which checks them.
pub(super) struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    /// Row lengths of the matrix being read, kept between matrices.
    row_lens: Vec<usize>,
    /// The size of the last matrix: the next is likely the same.
    size_hint: usize,
}

/// Exact powers of ten up to 10^22: dividing an exact integer by one of them is
/// correctly rounded.
pub(super) const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// 10^-k, each the nearest `f64`.
pub(super) const NEG_POW10: [f64; 23] = [
    1e-0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17,
    1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
];

/// Rows (target tokens) of one attention matrix: far beyond any model's output
/// length, and a bound on what a hostile answer can make us allocate per row.
pub(super) const MAX_MATRIX_ROWS: usize = 65_536;

/// A mantissa at or above this has 19 digits: one more would overflow.
pub(super) const MANTISSA_FULL: u64 = 1_000_000_000_000_000_000;

/// The eight ASCII digits at `b[i..i + 8]` as a number, or `None` when there are
/// fewer than eight or one is not a digit. SWAR: all eight in a few integer
/// operations, as in Lemire's fast_float.
pub(super) fn eight_digits(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    let v = u64::from_le_bytes(chunk);
    let all_digits = ((v & 0xF0F0_F0F0_F0F0_F0F0)
        | ((v.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4))
        == 0x3333_3333_3333_3333;
    if !all_digits {
        return None;
    }
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    let v = v - 0x3030_3030_3030_3030;
    let v = v * 10 + (v >> 8);
    let v = ((v & MASK)
        .wrapping_mul(100 + (1_000_000 << 32))
        .wrapping_add(((v >> 16) & MASK).wrapping_mul(1 + (10_000 << 32))))
        >> 32;
    Some(v)
}

/// The four ASCII digits at `b[i..i + 4]` as a number, like [`eight_digits`].
pub(super) fn four_digits(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
    let v = u32::from_le_bytes(chunk);
    let all_digits = ((v & 0xF0F0_F0F0) | ((v.wrapping_add(0x0606_0606) & 0xF0F0_F0F0) >> 4)) == 0x3333_3333;
    if !all_digits {
        return None;
    }
    let v = v - 0x3030_3030;
    let v = (v * 10 + (v >> 8)) & 0x00FF_00FF;
    Some(u64::from((v * 100 + (v >> 16)) & 0xFFFF))
}

impl<'a> Reader<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Reader { b, i: 0, row_lens: Vec::new(), size_hint: 0 }
    }

    pub(super) fn error(&self, what: &str) -> ProtocolError {
        ProtocolError::Malformed(format!("result: {what} at byte {}", self.i))
    }

    pub(super) fn result(&mut self, want_attention: bool) -> Result<ResultBody, ProtocolError> {
        fn once<T>(slot: &mut Option<T>, value: T, r: &Reader<'_>, key: &str) -> Result<(), ProtocolError> {
            match slot.replace(value) {
                None => Ok(()),
                Some(_) => Err(r.error(&format!("duplicate field `{key}`"))),
            }
        }
        let (mut predictions, mut scores, mut attention) = (None, None, None);
        if !self.object_start()? {
            loop {
                let key = self.string()?;
                self.expect(b':')?;
                match &*key {
                    "predictions" => {
                        let v = self.list(|r| r.list(|r| r.string().map(Cow::into_owned)))?;
                        once(&mut predictions, v, self, "predictions")?;
                    }
                    "scores" => {
                        let v = self.list(|r| r.list(Reader::score))?;
                        once(&mut scores, v, self, "scores")?;
                    }
                    "attention" if want_attention => {
                        let v = if self.null() {
                            None
                        } else {
                            Some(self.list(|r| if r.null() { Ok(None) } else { r.list(Reader::matrix).map(Some) })?)
                        };
                        once(&mut attention, v, self, "attention")?;
                    }
                    _ => self.skip_value()?,
                }
                if !self.next_member()? {
                    break;
                }
            }
        }
        self.ws();
        if self.i != self.b.len() {
            return Err(self.error("trailing characters"));
        }
        Ok(ResultBody {
            predictions: predictions.ok_or_else(|| self.error("missing field `predictions`"))?,
            scores: scores.ok_or_else(|| self.error("missing field `scores`"))?,
            attention: attention.flatten(),
        })
    }

    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    pub(super) fn expect(&mut self, c: u8) -> Result<(), ProtocolError> {
        self.ws();
        if self.b.get(self.i) != Some(&c) {
            return Err(self.error(&format!("expected '{}'", c as char)));
        }
        self.i += 1;
        Ok(())
    }

    /// Reads `{`; true when the object is empty (`}` read too).
    pub(super) fn object_start(&mut self) -> Result<bool, ProtocolError> {
        self.expect(b'{')?;
        self.ws();
        let empty = self.b.get(self.i) == Some(&b'}');
        self.i += usize::from(empty);
        Ok(empty)
    }

    /// After a member: true after `,`, false after the closing `}`.
    pub(super) fn next_member(&mut self) -> Result<bool, ProtocolError> {
        self.ws();
        match self.b.get(self.i) {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(b'}') => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(self.error("expected ',' or '}'")),
        }
    }

    pub(super) fn null(&mut self) -> bool {
        self.ws();
        let found = self.b[self.i..].starts_with(b"null");
        if found {
            self.i += 4;
        }
        found
    }

    /// Calls `item` for each element of a `[...]` list.
    pub(super) fn each(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        self.expect(b'[')?;
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    pub(super) fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, ProtocolError>,
    ) -> Result<Vec<T>, ProtocolError> {
        let mut out = Vec::new();
        self.each(|r| item(r).map(|v| out.push(v)))?;
        Ok(out)
    }

    /// A string; borrowed unless it has escapes, which serde reads.
    pub(super) fn string(&mut self) -> Result<Cow<'a, str>, ProtocolError> {
        self.ws();
        if self.b.get(self.i) != Some(&b'"') {
            return Err(self.error("expected a string"));
        }
        let (start, mut end, mut escaped) = (self.i, self.i + 1, false);
        loop {
            match self.b.get(end) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    end += 2;
                }
                Some(c) if *c < 0x20 => return Err(self.error("control character in a string")),
                Some(_) => end += 1,
            }
        }
        let b: &'a [u8] = self.b;
        let text = if escaped {
            serde_json::from_slice::<String>(&b[start..=end])
                .map(Cow::Owned)
                .map_err(|e| self.error(&format!("bad string ({e})")))?
        } else {
            Cow::Borrowed(std::str::from_utf8(&b[start + 1..end]).map_err(|_| self.error("string is not UTF-8"))?)
        };
        self.i = end + 1;
        Ok(text)
    }

    /// Skips one value of any kind, checked by serde.
    pub(super) fn skip_value(&mut self) -> Result<(), ProtocolError> {
        let mut values = serde_json::Deserializer::from_slice(&self.b[self.i..]).into_iter::<serde::de::IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => {
                self.i += values.byte_offset();
                Ok(())
            }
            Some(Err(e)) => Err(self.error(&format!("bad value ({e})"))),
            None => Err(self.error("expected a value")),
        }
    }

    pub(super) fn score(&mut self) -> Result<f64, ProtocolError> {
        let v = self.number()?;
        if !v.is_finite() {
            return Err(self.error("score out of range"));
        }
        Ok(v)
    }

    /// `[[number, ...], ...]`; shorter rows are padded with zeros to the longest.
    pub(super) fn matrix(&mut self) -> Result<Matrix, ProtocolError> {
        let mut data: Vec<f32> = Vec::with_capacity(self.size_hint);
        let mut lens = std::mem::take(&mut self.row_lens);
        lens.clear();
        self.each(|r| {
            if lens.len() == MAX_MATRIX_ROWS {
                return Err(r.error("attention matrix has too many rows"));
            }
            let before = data.len();
            r.each(|r| {
                data.push(r.weight()?);
                Ok(())
            })?;
            lens.push(data.len() - before);
            Ok(())
        })?;
        let (rows, cols) = (lens.len(), lens.iter().copied().max().unwrap_or(0));
        let matrix = if lens.iter().all(|n| *n == cols) {
            Matrix::from_parts(rows, cols, data)
        } else if rows * cols > 2 * data.len() + 64 {
            // Padding must not turn a small answer into a huge matrix.
            return Err(self.error("attention rows differ too much in length to pad"));
        } else {
            let mut at = 0;
            let ragged: Vec<&[f32]> = lens
                .iter()
                .map(|n| {
                    at += n;
                    &data[at - n..at]
                })
                .collect();
            Matrix::from_rows(&ragged)
        };
        self.row_lens = lens;
        self.size_hint = matrix.rows() * matrix.cols();
        Ok(matrix)
    }

    /// A JSON number as an `f64`, correctly rounded.
    pub(super) fn number(&mut self) -> Result<f64, ProtocolError> {
        let n = self.decimal()?;
        let value = if n.mantissa < (1 << 53) && (-22..=22).contains(&n.exp10) {
            let m = n.mantissa as f64;
            if n.exp10 < 0 { m / POW10[(-n.exp10) as usize] } else { m * POW10[n.exp10 as usize] }
        } else {
            n.careful(self)?
        };
        Ok(if n.negative { -value } else { value })
    }

    /// An attention weight: a JSON number as a finite `f32`. A multiplication
    /// instead of the division that correct rounding of an `f64` needs (the
    /// division was a quarter of the time spent on a weight): the product is
    /// within 2 ulp of the `f64`, far below what an `f32` keeps.
    #[inline(always)]
    pub(super) fn weight(&mut self) -> Result<f32, ProtocolError> {
        let n = self.decimal()?;
        let m = n.mantissa as f64;
        let quick = match n.exp10 {
            0..=22 => m * POW10[n.exp10 as usize],
            -22..=-1 => m * NEG_POW10[(-n.exp10) as usize],
            -44..=-23 => m * NEG_POW10[22] * NEG_POW10[(-n.exp10 - 22) as usize],
            _ => f64::NAN,
        };
        // The quick product is off by a few f64 ulp: where that could move it
        // across the midpoint between two f32s (or it is in the f32
        // subnormals, whose precision is less), round the digits to an f32
        // once, as `serde_json` does.
        let below_f32 = quick.to_bits() & ((1 << 29) - 1);
        let value = if quick.is_nan()
            || below_f32.abs_diff(1 << 28) <= 8
            || (quick != 0.0 && quick < f64::from(f32::MIN_POSITIVE))
        {
            n.careful_f32(self)?
        } else {
            quick as f32
        };
        if !value.is_finite() {
            return Err(self.error("attention weight out of range"));
        }
        Ok(if n.negative { -value } else { value })
    }

    /// Reads a JSON number (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`)
    /// as `mantissa x 10^exp10`, keeping up to 19 significant digits exactly.
    #[inline(always)]
    pub(super) fn decimal(&mut self) -> Result<Decimal, ProtocolError> {
        self.ws();
        let start = self.i;
        let b = self.b;
        let negative = b.get(self.i) == Some(&b'-');
        self.i += usize::from(negative);
        let (mut mantissa, mut exp10) = (0u64, 0i32);
        let int_start = self.i;
        // Up to 19 significant digits are kept exactly; more only move the point.
        while let Some(d @ b'0'..=b'9') = b.get(self.i) {
            if mantissa < MANTISSA_FULL {
                mantissa = mantissa * 10 + u64::from(d - b'0');
            } else {
                exp10 += 1;
            }
            self.i += 1;
        }
        let int_len = self.i - int_start;
        if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
            return Err(self.error("expected a number"));
        }
        if b.get(self.i) == Some(&b'.') {
            self.i += 1;
            let frac_start = self.i;
            // Weights are mostly `0.` and eight or so digits: take eight, then
            // four, at a time.
            while mantissa < 10_000_000_000 {
                let Some(x) = eight_digits(b, self.i) else { break };
                mantissa = mantissa * 100_000_000 + x;
                exp10 -= 8;
                self.i += 8;
            }
            if mantissa < 100_000_000_000_000
                && let Some(x) = four_digits(b, self.i)
            {
                mantissa = mantissa * 10_000 + x;
                exp10 -= 4;
                self.i += 4;
            }
            while let Some(d @ b'0'..=b'9') = b.get(self.i) {
                if mantissa < MANTISSA_FULL {
                    mantissa = mantissa * 10 + u64::from(d - b'0');
                    exp10 -= 1;
                }
                self.i += 1;
            }
            if self.i == frac_start {
                return Err(self.error("expected a digit after '.'"));
            }
        }
        if let Some(b'e' | b'E') = b.get(self.i) {
            self.i += 1;
            let sign = match b.get(self.i) {
                Some(b'-') => -1,
                Some(b'+') => 1,
                _ => 0,
            };
            self.i += usize::from(sign != 0);
            let (mut e, exp_start) = (0i32, self.i);
            while let Some(d @ b'0'..=b'9') = b.get(self.i) {
                e = e.saturating_mul(10).saturating_add(i32::from(d - b'0'));
                self.i += 1;
            }
            if self.i == exp_start {
                return Err(self.error("expected an exponent"));
            }
            exp10 = exp10.saturating_add(if sign < 0 { -e } else { e });
        }
        Ok(Decimal { negative, mantissa, exp10, start, end: self.i })
    }
}

/// A number as read: `mantissa x 10^exp10`, and where its text is.
pub(super) struct Decimal {
    negative: bool,
    mantissa: u64,
    exp10: i32,
    start: usize,
    end: usize,
}

impl Decimal {
    /// Rare: very long, very large or very small numbers are parsed by the
    /// standard library, which rounds correctly. Returns the magnitude.
    pub(super) fn careful(&self, r: &Reader<'_>) -> Result<f64, ProtocolError> {
        let text = std::str::from_utf8(&r.b[self.start..self.end]).map_err(|_| r.error("not UTF-8"))?;
        Ok(text.parse::<f64>().map_err(|_| r.error("bad number"))?.abs())
    }

    /// The number as an `f32` rounded once, from its digits (an `f64` first
    /// and then an `f32` can round twice, the other way).
    pub(super) fn careful_f32(&self, r: &Reader<'_>) -> Result<f32, ProtocolError> {
        let text = std::str::from_utf8(&r.b[self.start..self.end]).map_err(|_| r.error("not UTF-8"))?;
        Ok(text.parse::<f32>().map_err(|_| r.error("bad number"))?.abs())
    }
}
