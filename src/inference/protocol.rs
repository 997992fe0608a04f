//! The Lambda wire contract (v1): the event we send and the result we decode.
//!
//! Pure: serde, base64 and gzip only, no I/O, no AWS SDK, no HTTP. Every decoding
//! failure is a [`ProtocolError`], never a panic: the payload comes from outside.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// A gzipped body may not expand past this: a Lambda response is at most 6 MB, and
/// a model result that large compresses well, but a zip bomb must not take the pod.
const MAX_DECOMPRESSED_BYTES: u64 = 256 << 20;

/// The event the function expects. `data` is a JSON *string* holding the list of
/// tokenized inputs (double encoded, as the existing function reads it).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub data: String,
    pub beam: u32,
    pub n_best: u32,
    pub return_attention: bool,
    pub warmup: bool,
}

/// Encodes the invoke event for a list of tokenized inputs.
pub fn encode_event(inputs: &[String], beam: u32, n_best: u32, return_attention: bool) -> Vec<u8> {
    let event = Event { data: encode_data(inputs), beam, n_best, return_attention, warmup: false };
    serde_json::to_vec(&event).expect("the event always serializes")
}

/// The list as Python's `json.dumps` writes it (`", "` between items), which is
/// what the existing function was written against.
fn encode_data(inputs: &[String]) -> String {
    let mut data = String::with_capacity(2 + inputs.iter().map(|i| i.len() + 4).sum::<usize>());
    data.push('[');
    for (i, input) in inputs.iter().enumerate() {
        if i > 0 {
            data.push_str(", ");
        }
        data.push_str(&serde_json::to_string(input).expect("a string always serializes"));
    }
    data.push(']');
    data
}

/// Encodes the keep-warm ping.
pub fn encode_warmup() -> Vec<u8> {
    let event = Event { data: "[]".into(), beam: 1, n_best: 1, return_attention: false, warmup: true };
    serde_json::to_vec(&event).expect("the event always serializes")
}

/// Decodes an event (the emulator's side of the wire); `data` is parsed too.
pub fn decode_event(payload: &[u8]) -> Result<(Event, Vec<String>), ProtocolError> {
    let event: Event = serde_json::from_slice(payload).map_err(|e| ProtocolError::Malformed(format!("event: {e}")))?;
    let inputs: Vec<String> =
        serde_json::from_str(&event.data).map_err(|e| ProtocolError::Malformed(format!("event data: {e}")))?;
    Ok((event, inputs))
}

/// One hypothesis of the n-best list, as the model returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// The predicted tokens, space separated, as the model wrote them.
    pub tokens: String,
    /// Log-probability; the probability shown is `exp(score)`.
    pub score: f64,
    /// `target tokens x source tokens` weights; rows may be padded.
    pub attention: Option<Matrix>,
}

/// Probability of a hypothesis from its log-probability score.
pub fn probability(score: f64) -> f64 {
    score.exp().clamp(0.0, 1.0)
}

/// `target tokens x source tokens` attention weights of one hypothesis, row by
/// row in one allocation (a `Vec` per row was most of a result's allocations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// From rows; shorter rows are padded with zeros to the longest.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Matrix {
        let cols = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in rows {
            data.extend_from_slice(row.as_ref());
            data.resize(data.len() + cols - row.as_ref().len(), 0.0);
        }
        Matrix { rows: rows.len(), cols, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        (0..self.rows).map(|r| self.row(r))
    }

    /// Keeps the top-left `rows x cols` corner: the function pads to the longest
    /// input and hypothesis of a batch, the view cuts back to the token counts.
    pub fn truncate(&mut self, rows: usize, cols: usize) {
        let (rows, cols) = (rows.min(self.rows), cols.min(self.cols));
        if cols < self.cols {
            for r in 1..rows {
                self.data.copy_within(r * self.cols..r * self.cols + cols, r * cols);
            }
        }
        self.data.truncate(rows * cols);
        (self.rows, self.cols) = (rows, cols);
    }

    /// The same rows padded with zeros (or cut) to `cols` columns.
    pub fn with_cols(&self, cols: usize) -> Matrix {
        let mut data = Vec::with_capacity(self.rows * cols);
        for row in self.iter_rows() {
            data.extend_from_slice(&row[..cols.min(row.len())]);
            data.resize(data.len() + cols.saturating_sub(row.len()), 0.0);
        }
        Matrix { rows: self.rows, cols, data }
    }
}

/// A list of rows, as on the wire.
impl Serialize for Matrix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter_rows())
    }
}

impl<'de> Deserialize<'de> for Matrix {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Vec<f32>>::deserialize(deserializer).map(|rows| Matrix::from_rows(&rows))
    }
}

/// The result object inside the envelope.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResultBody {
    pub predictions: Vec<Vec<String>>,
    pub scores: Vec<Vec<f64>>,
    #[serde(default)]
    pub attention: Option<Vec<Option<Vec<Matrix>>>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, not base64, not gzip, or not the expected shape.
    #[error("malformed result: {0}")]
    Malformed(String),
    /// Well formed, but does not answer the request (counts or lengths differ).
    #[error("result does not match the request: {0}")]
    Mismatch(String),
    /// The envelope carried an error status.
    #[error("function answered status {status}: {message}")]
    Status { status: u16, message: String },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "statusCode")]
    status_code: Option<u16>,
    #[serde(rename = "isBase64Encoded", default)]
    is_base64_encoded: bool,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
}

/// Returns the result JSON: unwraps the API-Gateway-style envelope when there is
/// one (base64 or not, gzipped or not), or the payload itself when there is none.
fn unwrap_body(payload: &[u8]) -> Result<Cow<'_, [u8]>, ProtocolError> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(payload).map_err(|e| ProtocolError::Malformed(format!("not a JSON object: {e}")))?;
    if envelope.status_code.is_none() && envelope.body.is_none() {
        return Ok(Cow::Borrowed(payload));
    }
    let body: Cow<'_, [u8]> = match envelope.body {
        None => Cow::Borrowed(b"".as_slice()),
        Some(body) if envelope.is_base64_encoded => Cow::Owned(
            BASE64.decode(body.as_bytes()).map_err(|e| ProtocolError::Malformed(format!("body is not base64: {e}")))?,
        ),
        Some(Cow::Borrowed(body)) => Cow::Borrowed(body.as_bytes()),
        Some(Cow::Owned(body)) => Cow::Owned(body.into_bytes()),
    };
    let body = if body.starts_with(&[0x1f, 0x8b]) { Cow::Owned(gunzip(&body)?) } else { body };
    if let Some(status) = envelope.status_code.filter(|s| *s >= 400) {
        return Err(ProtocolError::Status { status, message: error_message(&body) });
    }
    if body.is_empty() {
        return Err(ProtocolError::Malformed("envelope has no body".into()));
    }
    Ok(body)
}

/// Inflates a gzip member, with one inflater per thread, reset between uses
/// (building one per answer shows up in the profile). Checks the CRC and size.
fn gunzip(data: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    use flate2::{Crc, Decompress, FlushDecompress, Status};
    thread_local! {
        static INFLATE: std::cell::RefCell<Decompress> = std::cell::RefCell::new(Decompress::new(false));
    }
    let bad = |why: &str| ProtocolError::Malformed(format!("body is not valid gzip: {why}"));
    if data.len() < 18 || data[..3] != [0x1f, 0x8b, 8] {
        return Err(bad("no gzip header"));
    }
    let flags = data[3];
    let mut pos = 10;
    let skip_string = |from: usize| data[from..].iter().position(|b| *b == 0).map(|n| from + n + 1);
    if flags & 4 != 0 {
        let xlen = u16::from_le_bytes([data[pos], data[pos + 1]]) as usize;
        pos += 2 + xlen;
    }
    if flags & 8 != 0 {
        pos = skip_string(pos.min(data.len())).ok_or_else(|| bad("unterminated file name"))?;
    }
    if flags & 16 != 0 {
        pos = skip_string(pos.min(data.len())).ok_or_else(|| bad("unterminated comment"))?;
    }
    if flags & 2 != 0 {
        pos += 2;
    }
    if pos + 8 > data.len() {
        return Err(bad("truncated"));
    }
    let (body, trailer) = data[pos..].split_at(data.len() - pos - 8);
    let crc_expected = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
    let size_expected = u32::from_le_bytes(trailer[4..].try_into().expect("4 bytes"));
    let mut out = Vec::with_capacity((size_expected as usize).min(MAX_DECOMPRESSED_BYTES as usize) + 1);
    INFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(false);
        let start_in = d.total_in();
        loop {
            let consumed = (d.total_in() - start_in) as usize;
            let before = (d.total_in(), d.total_out());
            if out.len() == out.capacity() {
                out.reserve(out.len().max(4096));
            }
            match d.decompress_vec(&body[consumed..], &mut out, FlushDecompress::Finish) {
                Ok(Status::StreamEnd) => return Ok(()),
                Ok(_) if (d.total_in(), d.total_out()) == before => return Err(bad("truncated")),
                Ok(_) => {}
                Err(e) => return Err(bad(&e.to_string())),
            }
            if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
                return Err(ProtocolError::Malformed("gzipped body expands past 256 MiB".into()));
            }
        }
    })?;
    let mut crc = Crc::new();
    crc.update(&out);
    if crc.sum() != crc_expected || out.len() as u32 != size_expected {
        return Err(bad("checksum mismatch"));
    }
    Ok(out)
}

/// A short human message from an error body: its `errorMessage`/`message`/`error`
/// field when it is JSON, else its first 200 characters.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(alias = "errorMessage", alias = "error", alias = "Message")]
        message: Option<String>,
    }
    if let Ok(ErrorBody { message: Some(m) }) = serde_json::from_slice::<ErrorBody>(body) {
        return truncate(&m, 500);
    }
    truncate(&String::from_utf8_lossy(body), 200)
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Decodes and validates the result of a translation invoke for `inputs` inputs.
/// Attention is returned only when `want_attention` and the function sent it.
pub fn decode_result(
    payload: &[u8],
    inputs: usize,
    n_best: u32,
    want_attention: bool,
) -> Result<Vec<Vec<Hypothesis>>, ProtocolError> {
    let body = unwrap_body(payload)?;
    let result = Reader::new(&body).result(want_attention)?;
    validate(result, inputs, n_best as usize, want_attention)
}

/// Reads a result object in one pass over its bytes.
///
/// A result is mostly attention: thousands of numbers like `0.0123456`. Read
/// with serde, skipping them (to read them apart) or parsing them through the
/// general float path into a `Vec` per row was the largest part of the CPU of a
/// translation; this reads the digits straight into one `Vec<f32>` per matrix.
/// Fields it does not know are skipped by serde, which checks them.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    /// Row lengths of the matrix being read, kept between matrices.
    row_lens: Vec<usize>,
    /// The size of the last matrix: the next is likely the same.
    size_hint: usize,
}

/// Exact powers of ten up to 10^22: dividing an exact integer by one of them is
/// correctly rounded.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// 10^-k, each the nearest `f64`.
const NEG_POW10: [f64; 23] = [
    1e-0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17,
    1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
];

/// Rows (target tokens) of one attention matrix: far beyond any model's output
/// length, and a bound on what a hostile answer can make us allocate per row.
const MAX_MATRIX_ROWS: usize = 65_536;

/// A mantissa at or above this has 19 digits: one more would overflow.
const MANTISSA_FULL: u64 = 1_000_000_000_000_000_000;

/// The eight ASCII digits at `b[i..i + 8]` as a number, or `None` when there are
/// fewer than eight or one is not a digit. SWAR: all eight in a few integer
/// operations, as in Lemire's fast_float.
fn eight_digits(b: &[u8], i: usize) -> Option<u64> {
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
fn four_digits(b: &[u8], i: usize) -> Option<u64> {
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
    fn new(b: &'a [u8]) -> Self {
        Reader { b, i: 0, row_lens: Vec::new(), size_hint: 0 }
    }

    fn error(&self, what: &str) -> ProtocolError {
        ProtocolError::Malformed(format!("result: {what} at byte {}", self.i))
    }

    fn result(&mut self, want_attention: bool) -> Result<ResultBody, ProtocolError> {
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

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ProtocolError> {
        self.ws();
        if self.b.get(self.i) != Some(&c) {
            return Err(self.error(&format!("expected '{}'", c as char)));
        }
        self.i += 1;
        Ok(())
    }

    /// Reads `{`; true when the object is empty (`}` read too).
    fn object_start(&mut self) -> Result<bool, ProtocolError> {
        self.expect(b'{')?;
        self.ws();
        let empty = self.b.get(self.i) == Some(&b'}');
        self.i += usize::from(empty);
        Ok(empty)
    }

    /// After a member: true after `,`, false after the closing `}`.
    fn next_member(&mut self) -> Result<bool, ProtocolError> {
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

    fn null(&mut self) -> bool {
        self.ws();
        let found = self.b[self.i..].starts_with(b"null");
        if found {
            self.i += 4;
        }
        found
    }

    /// Calls `item` for each element of a `[...]` list.
    fn each(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), ProtocolError>) -> Result<(), ProtocolError> {
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

    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, ProtocolError>,
    ) -> Result<Vec<T>, ProtocolError> {
        let mut out = Vec::new();
        self.each(|r| item(r).map(|v| out.push(v)))?;
        Ok(out)
    }

    /// A string; borrowed unless it has escapes, which serde reads.
    fn string(&mut self) -> Result<Cow<'a, str>, ProtocolError> {
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
    fn skip_value(&mut self) -> Result<(), ProtocolError> {
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

    fn score(&mut self) -> Result<f64, ProtocolError> {
        let v = self.number()?;
        if !v.is_finite() {
            return Err(self.error("score out of range"));
        }
        Ok(v)
    }

    /// `[[number, ...], ...]`; shorter rows are padded with zeros to the longest.
    fn matrix(&mut self) -> Result<Matrix, ProtocolError> {
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
            Matrix { rows, cols, data }
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
        self.size_hint = matrix.data.len();
        Ok(matrix)
    }

    /// A JSON number as an `f64`, correctly rounded.
    fn number(&mut self) -> Result<f64, ProtocolError> {
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
    fn weight(&mut self) -> Result<f32, ProtocolError> {
        let n = self.decimal()?;
        let m = n.mantissa as f64;
        let value = match n.exp10 {
            0..=22 => m * POW10[n.exp10 as usize],
            -22..=-1 => m * NEG_POW10[(-n.exp10) as usize],
            -44..=-23 => m * NEG_POW10[22] * NEG_POW10[(-n.exp10 - 22) as usize],
            _ => n.careful(self)?,
        } as f32;
        if !value.is_finite() {
            return Err(self.error("attention weight out of range"));
        }
        Ok(if n.negative { -value } else { value })
    }

    /// Reads a JSON number (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`)
    /// as `mantissa x 10^exp10`, keeping up to 19 significant digits exactly.
    #[inline(always)]
    fn decimal(&mut self) -> Result<Decimal, ProtocolError> {
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
struct Decimal {
    negative: bool,
    mantissa: u64,
    exp10: i32,
    start: usize,
    end: usize,
}

impl Decimal {
    /// Rare: very long, very large or very small numbers are parsed by the
    /// standard library, which rounds correctly. Returns the magnitude.
    fn careful(&self, r: &Reader<'_>) -> Result<f64, ProtocolError> {
        let text = std::str::from_utf8(&r.b[self.start..self.end]).map_err(|_| r.error("not UTF-8"))?;
        Ok(text.parse::<f64>().map_err(|_| r.error("bad number"))?.abs())
    }
}

fn validate(
    result: ResultBody,
    inputs: usize,
    n_best: usize,
    want_attention: bool,
) -> Result<Vec<Vec<Hypothesis>>, ProtocolError> {
    let ResultBody { predictions, scores, attention } = result;
    if predictions.len() != inputs || scores.len() != inputs {
        return Err(ProtocolError::Mismatch(format!(
            "{inputs} inputs sent, {} prediction lists and {} score lists returned",
            predictions.len(),
            scores.len()
        )));
    }
    let width = predictions.first().map_or(0, Vec::len);
    // Every score is finite: the reader checks each one.
    for (i, (p, s)) in predictions.iter().zip(&scores).enumerate() {
        if p.len() != width || s.len() != width {
            return Err(ProtocolError::Mismatch(format!(
                "input {i}: {} predictions and {} scores, expected {width} of each",
                p.len(),
                s.len()
            )));
        }
    }
    if inputs > 0 && !(1..=n_best).contains(&width) {
        return Err(ProtocolError::Mismatch(format!("{width} hypotheses per input, asked for {n_best}")));
    }
    // `[null]` (or no field at all) means the function sent no attention.
    let attention = attention.filter(|a| a.iter().any(Option::is_some));
    let mut attention = match attention {
        Some(a) if a.len() != inputs => {
            return Err(ProtocolError::Mismatch(format!("{} attention lists for {inputs} inputs", a.len())));
        }
        Some(a) if want_attention => Some(a.into_iter()),
        _ => None,
    };
    let mut out = Vec::with_capacity(inputs);
    for (i, (preds, scores)) in predictions.into_iter().zip(scores).enumerate() {
        let mut mats = match attention.as_mut().and_then(Iterator::next).flatten() {
            Some(m) if m.len() != width => {
                return Err(ProtocolError::Mismatch(format!(
                    "input {i}: {} attention matrices for {width} hypotheses",
                    m.len()
                )));
            }
            // Every weight is finite: the reader checks each one.
            Some(m) => Some(m.into_iter()),
            None => None,
        };
        let hyps = preds
            .into_iter()
            .zip(scores)
            .map(|(tokens, score)| Hypothesis { tokens, score, attention: mats.as_mut().and_then(Iterator::next) })
            .collect();
        out.push(hyps);
    }
    Ok(out)
}

/// Checks a keep-warm answer: `{"warmup": "confirmed"}` inside the envelope.
pub fn decode_warmup(payload: &[u8]) -> Result<(), ProtocolError> {
    #[derive(Deserialize)]
    struct Warmup {
        warmup: Option<String>,
    }
    let body = unwrap_body(payload)?;
    match serde_json::from_slice::<Warmup>(&body) {
        Ok(Warmup { warmup: Some(w) }) if w == "confirmed" => Ok(()),
        _ => Err(ProtocolError::Malformed(format!(
            "warmup not confirmed: {}",
            truncate(&String::from_utf8_lossy(&body), 200)
        ))),
    }
}

/// The `errorType` and `errorMessage` of a function that raised.
pub fn decode_function_error(payload: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct FunctionError {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
        #[serde(rename = "errorMessage")]
        error_message: Option<String>,
    }
    match serde_json::from_slice::<FunctionError>(payload) {
        Ok(e) => {
            (e.error_type.unwrap_or_else(|| "Unhandled".into()), truncate(&e.error_message.unwrap_or_default(), 500))
        }
        Err(_) => ("Unhandled".into(), truncate(&String::from_utf8_lossy(payload), 200)),
    }
}

/// Wraps a result JSON in the envelope the existing function returns: base64 of
/// gzip. The emulator and tests use it to answer like the real function.
pub fn encode_envelope(body_json: &[u8]) -> Vec<u8> {
    let gzipped = gzip(body_json);
    let mut out = Vec::with_capacity(gzipped.len() * 4 / 3 + 160);
    out.extend_from_slice(
        br#"{"isBase64Encoded": true, "statusCode": 200, "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"}, "body": ""#,
    );
    let start = out.len();
    out.resize(start + base64::encoded_len(gzipped.len(), true).expect("small enough"), 0);
    let written = BASE64.encode_slice(&gzipped, &mut out[start..]).expect("sized above");
    out.truncate(start + written);
    out.extend_from_slice(b"\"}");
    out
}

/// gzip (RFC 1952) with one deflate compressor per thread, reset between uses:
/// a compressor's tables are hundreds of KB, and building one per answer costs
/// more than compressing a small answer.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, Crc, FlushCompress, Status};
    thread_local! {
        static DEFLATE: std::cell::RefCell<Compress> = std::cell::RefCell::new(Compress::new(Compression::fast(), false));
    }
    // mtime 0, no flags, OS unknown: what the contract vectors carry.
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    DEFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset();
        let before_in = d.total_in();
        loop {
            let consumed = (d.total_in() - before_in) as usize;
            out.reserve(data.len() - consumed + 64);
            match d.compress_vec(&data[consumed..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => continue,
                Err(e) => unreachable!("deflate into a growing Vec cannot fail: {e}"),
            }
        }
    });
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &[u8] = include_bytes!("../../tests/fixtures/invoke-event.json");
    const RESPONSE: &[u8] = include_bytes!("../../tests/fixtures/invoke-response.json");
    const DECODED: &[u8] = include_bytes!("../../tests/fixtures/invoke-result.decoded.json");
    const NO_ATTENTION: &[u8] = include_bytes!("../../tests/fixtures/invoke-response.no-attention.json");
    const PLAIN: &[u8] = include_bytes!("../../tests/fixtures/invoke-response.plain.json");
    const WARMUP_EVENT: &[u8] = include_bytes!("../../tests/fixtures/warmup-event.json");
    const WARMUP_RESPONSE: &[u8] = include_bytes!("../../tests/fixtures/warmup-response.json");
    const FUNCTION_ERROR: &[u8] = include_bytes!("../../tests/fixtures/function-error-response.json");
    const THROTTLE: &[u8] = include_bytes!("../../tests/fixtures/throttle-429-body.json");

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn fixture_inputs() -> Vec<String> {
        vec!["C C ( C ) = O . O C C".into(), "N # C c 1 c c c c c 1".into()]
    }

    #[test]
    fn event_matches_the_contract_vector() {
        let ours = encode_event(&fixture_inputs(), 3, 2, true);
        assert_eq!(json(&ours), json(EVENT));
        // data is a JSON string holding the list, not the list itself
        assert!(json(&ours)["data"].is_string());
        let (event, inputs) = decode_event(EVENT).unwrap();
        assert_eq!(inputs, fixture_inputs());
        assert_eq!((event.beam, event.n_best, event.return_attention, event.warmup), (3, 2, true, false));
    }

    #[test]
    fn warmup_event_matches_the_contract_vector() {
        assert_eq!(json(&encode_warmup()), json(WARMUP_EVENT));
    }

    #[test]
    fn gzipped_base64_envelope_decodes_to_the_documented_values() {
        let got = decode_result(RESPONSE, 2, 2, true).unwrap();
        let want: ResultBody = serde_json::from_slice(DECODED).unwrap();
        assert_eq!(got.len(), 2);
        for (i, hyps) in got.iter().enumerate() {
            assert_eq!(hyps.len(), 2);
            for (j, h) in hyps.iter().enumerate() {
                assert_eq!(h.tokens, want.predictions[i][j]);
                assert_eq!(h.score, want.scores[i][j]);
                let att = h.attention.as_ref().expect("attention present");
                assert_eq!(att, want.attention.as_ref().unwrap()[i].as_ref().unwrap().get(j).unwrap());
            }
        }
        assert_eq!(got[0][0].tokens, "C C ( C ) ( O ) O C C");
        assert_eq!(got[1][1].score, -2.0402);
        assert_eq!(got[0][0].attention.as_ref().unwrap().row(0)[0], 0.8);
        // rows are target tokens, columns source tokens (padded to the longest input)
        assert_eq!(got[0][1].attention.as_ref().unwrap().rows(), 9);
        assert_eq!(got[0][1].attention.as_ref().unwrap().cols(), 11);
    }

    #[test]
    fn attention_is_dropped_when_not_asked_for() {
        let got = decode_result(RESPONSE, 2, 2, false).unwrap();
        assert!(got.iter().flatten().all(|h| h.attention.is_none()));
    }

    #[test]
    fn null_attention_decodes_as_none() {
        let got = decode_result(NO_ATTENTION, 2, 2, true).unwrap();
        assert_eq!(got[1][0].tokens, "N C c 1 c c c c c 1");
        assert_eq!(got[1][0].score, -0.1625);
        assert!(got.iter().flatten().all(|h| h.attention.is_none()));
    }

    #[test]
    fn plain_result_without_envelope_decodes() {
        let got = decode_result(PLAIN, 2, 2, true).unwrap();
        assert_eq!(got[0][1].tokens, "C C ( = O ) O C C");
        assert_eq!(got[0][1].score, -3.2188);
    }

    #[test]
    fn plain_string_body_and_ungzipped_base64_body_decode() {
        let body = std::str::from_utf8(PLAIN).unwrap();
        let plain_string = serde_json::json!({"statusCode": 200, "isBase64Encoded": false, "body": body});
        let got = decode_result(&serde_json::to_vec(&plain_string).unwrap(), 2, 2, true).unwrap();
        assert_eq!(got[1][1].tokens, "N # C c 1 c c c c c 1");

        let b64 = serde_json::json!({"statusCode": 200, "isBase64Encoded": true, "body": BASE64.encode(PLAIN)});
        let got = decode_result(&serde_json::to_vec(&b64).unwrap(), 2, 2, true).unwrap();
        assert_eq!(got[0][0].score, -0.0513);
    }

    #[test]
    fn our_envelope_round_trips() {
        let got = decode_result(&encode_envelope(DECODED), 2, 2, true).unwrap();
        assert_eq!(got, decode_result(RESPONSE, 2, 2, true).unwrap());
    }

    #[test]
    fn error_status_in_the_envelope_is_an_error() {
        let env = serde_json::json!({"statusCode": 500, "body": "{\"message\": \"model not loaded\"}"});
        let err = decode_result(&serde_json::to_vec(&env).unwrap(), 2, 2, true).unwrap_err();
        assert_eq!(err, ProtocolError::Status { status: 500, message: "model not loaded".into() });
    }

    #[test]
    fn warmup_response_is_confirmed() {
        decode_warmup(WARMUP_RESPONSE).unwrap();
        assert!(decode_warmup(PLAIN).is_err());
    }

    #[test]
    fn function_error_gives_type_and_message() {
        let (t, m) = decode_function_error(FUNCTION_ERROR);
        assert_eq!((t.as_str(), m.as_str()), ("RuntimeError", "CUDA out of memory"));
        let (t, m) = decode_function_error(b"not json");
        assert_eq!((t.as_str(), m.as_str()), ("Unhandled", "not json"));
    }

    #[test]
    fn throttle_body_is_not_a_result() {
        assert!(matches!(decode_result(THROTTLE, 2, 2, true), Err(ProtocolError::Malformed(_))));
    }

    #[test]
    fn shapes_that_do_not_match_the_request_are_rejected() {
        // wrong number of inputs
        assert!(matches!(decode_result(PLAIN, 3, 2, true), Err(ProtocolError::Mismatch(_))));
        // more hypotheses than asked for
        assert!(matches!(decode_result(PLAIN, 2, 1, true), Err(ProtocolError::Mismatch(_))));
        // unequal n-best lists
        let uneven = br#"{"predictions": [["a","b"],["c"]], "scores": [[-1,-2],[-1]], "attention": [null]}"#;
        assert!(matches!(decode_result(uneven, 2, 2, true), Err(ProtocolError::Mismatch(_))));
        // scores and predictions of different lengths
        let short = br#"{"predictions": [["a","b"]], "scores": [[-1]]}"#;
        assert!(matches!(decode_result(short, 1, 2, true), Err(ProtocolError::Mismatch(_))));
        // attention for the wrong number of hypotheses
        let att = br#"{"predictions": [["a","b"]], "scores": [[-1,-2]], "attention": [[[[1.0]]]]}"#;
        assert!(matches!(decode_result(att, 1, 2, true), Err(ProtocolError::Mismatch(_))));
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"predictions\": [[\"a\"]], \"scores\": [[NaN]]}",
            b"{\"statusCode\": 200, \"isBase64Encoded\": true, \"body\": \"%%%\"}",
            b"{\"statusCode\": 200, \"isBase64Encoded\": true, \"body\": \"H4sIAAAA\"}",
            b"{\"statusCode\": 200}",
            b"{\"predictions\": \"a\", \"scores\": []}",
        ] {
            assert!(
                matches!(decode_result(bad, 1, 1, true), Err(ProtocolError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn gzip_round_trips_and_damage_is_detected() {
        let data = br#"{"predictions": [["a"]], "scores": [[-0.1]]}"#.repeat(50);
        let gz = gzip(&data);
        assert_eq!(gunzip(&gz).unwrap(), data);
        // a header with a file name (as the gzip tool writes it)
        let mut named = gz[..10].to_vec();
        named[3] = 8;
        named.extend_from_slice(b"result.json\0");
        named.extend_from_slice(&gz[10..]);
        assert_eq!(gunzip(&named).unwrap(), data);
        let mut corrupt = gz.clone();
        let n = corrupt.len();
        corrupt[n - 9] ^= 0xff;
        assert!(gunzip(&corrupt).is_err());
        assert!(gunzip(&gz[..gz.len() - 12]).is_err());
        assert!(gunzip(b"\x1f\x8b\x08").is_err());
    }

    fn read(text: &str) -> Result<ResultBody, ProtocolError> {
        Reader::new(text.as_bytes()).result(true)
    }

    #[test]
    fn the_result_reader_reads_what_serde_reads() {
        let text = r#" { "extra": {"a": [1, "]", null]}, "predictions": [["C \"x\" \u00e9", "é"]],
            "scores": [[-0.0513, -1.5e+1]], "attention":
            [null, [[[0.8, 0.02, 1e-5, 1.5E+2, -0.25, 0, 3, 0.000123456789123456789, -0.0]], [], [[1], [2, 3]]]] } "#;
        let ours = read(text).unwrap();
        let theirs: ResultBody = serde_json::from_str(text).unwrap();
        assert_eq!(ours.predictions, theirs.predictions);
        assert_eq!(ours.predictions[0][0], "C \"x\" é");
        assert_eq!(ours.scores, theirs.scores);
        assert_eq!(ours.attention, theirs.attention);
        // ragged rows are padded with zeros to the longest
        let ragged = &ours.attention.as_ref().unwrap()[1].as_ref().unwrap()[2];
        assert_eq!((ragged.rows(), ragged.cols()), (2, 2));
        assert_eq!(ragged.row(0), &[1.0, 0.0]);
        assert!(read(r#"{"predictions": [], "scores": [], "attention": null}"#).unwrap().attention.is_none());
    }

    #[test]
    fn the_result_reader_rejects_what_is_not_json_or_not_a_result() {
        let ok = |att: &str| format!(r#"{{"predictions": [["a"]], "scores": [[-1]], "attention": {att}}}"#);
        for bad in [
            "[[[[1,]]]]",
            "[[[[1 2]]]]",
            "[[[[.]]]]",
            "[[[[.5]]]]",
            "[[[[5.]]]]",
            "[[[[01]]]]",
            "[[[[1e]]]]",
            "[[[[1e99]]]]",
            "[[[[NaN]]]]",
            "[[[[1]]]] x",
            "{}",
            "[[[[\"1\"]]]]",
        ] {
            assert!(read(&ok(bad)).is_err(), "{bad}");
        }
        read(&ok("[[[[1]]]]")).unwrap();
        // padding is bounded: one long row among many empty ones is refused
        let lopsided = format!("[[[{}, [{}]]]]", vec!["[]"; 100].join(","), vec!["0"; 100].join(","));
        assert!(matches!(read(&ok(&lopsided)), Err(ProtocolError::Malformed(_))));
        let rows = format!("[[[{}]]]", vec!["[0]"; MAX_MATRIX_ROWS + 1].join(","));
        assert!(matches!(read(&ok(&rows)), Err(ProtocolError::Malformed(_))));
        let rows = format!("[[[{}]]]", vec!["[0]"; MAX_MATRIX_ROWS].join(","));
        read(&ok(&rows)).unwrap();
        for bad in [
            r#"{"predictions": [["a"]]}"#,
            r#"{"predictions": [["a"]], "scores": [[-1]], "scores": [[-1]]}"#,
            r#"{"predictions": [["a"]], "scores": [[1e999]]}"#,
            r#"{"predictions": [["a\q"]], "scores": [[-1]]}"#,
            r#"{"predictions": [["a"]], "scores": [[-1]], "x": [}"#,
            r#"{"predictions": [["a"]], "scores": [[-1]],}"#,
            "{\"predictions\": [[\"a\nb\"]], \"scores\": [[-1]]}",
        ] {
            assert!(matches!(read(bad), Err(ProtocolError::Malformed(_))), "{bad}");
        }
    }

    /// A deterministic stream of pseudo-random numbers (xorshift64).
    fn xorshift(mut seed: u64) -> impl Iterator<Item = u64> {
        std::iter::repeat_with(move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        })
    }

    #[test]
    fn eight_digits_at_once_match_one_at_a_time() {
        for seed in xorshift(0x9e37_79b9_7f4a_7c15).take(10_000) {
            let text = format!("{:08}", seed % 100_000_000);
            assert_eq!(eight_digits(text.as_bytes(), 0), Some(text.parse().unwrap()), "{text}");
        }
        assert_eq!(eight_digits(b"x99999999", 1), Some(99_999_999));
        for n in [0, 7, 42, 999, 1000, 4096, 9999] {
            assert_eq!(four_digits(format!("{n:04}").as_bytes(), 0), Some(n));
        }
        assert_eq!(four_digits(b"12a4", 0), None);
        assert_eq!(four_digits(b"123", 0), None);
        for bad in [&b"1234567"[..], b"1234567a", b"123.4567", b"/2345678", b":2345678", b"1234567\xff"] {
            assert_eq!(eight_digits(bad, 0), None, "{}", String::from_utf8_lossy(bad));
        }
        let numbers = "0.86466473, 0.0012345678, 0.123456789012345678901, 12345678901234567890.5, 0.000000001234";
        for n in numbers.split(", ") {
            assert_eq!(Reader::new(n.as_bytes()).number().unwrap(), n.parse::<f64>().unwrap(), "{n}");
        }
    }

    #[test]
    fn weights_are_the_nearest_f32_or_one_ulp_off() {
        for (i, seed) in xorshift(0x2545_f491_4f6c_dd1d).take(20_000).enumerate() {
            // shortest f32 texts as serde writes them, and longer f64 texts
            let x = f64::from_bits(0x3C00_0000_0000_0000 + seed % 0x0400_0000_0000_0000);
            let text = if i % 2 == 0 { serde_json::to_string(&(x as f32)).unwrap() } else { format!("{x:e}") };
            let want: f32 = text.parse().unwrap();
            let got = Reader::new(text.as_bytes()).weight().unwrap();
            assert!(got.to_bits().abs_diff(want.to_bits()) <= 1, "{text}: {got} vs {want}");
        }
        for (text, want) in [("0", 0.0), ("-0.0", -0.0), ("1e-50", 0.0), ("123e-47", 1.23e-45), ("3.5e10", 3.5e10)] {
            assert_eq!(Reader::new(text.as_bytes()).weight().unwrap(), want, "{text}");
        }
        assert!(Reader::new(b"1e39").weight().is_err());
    }

    #[test]
    fn matrices_cut_to_the_token_counts_in_place() {
        let mut m = Matrix::from_rows(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0], vec![7.0, 8.0, 9.0]]);
        m.truncate(2, 2);
        assert_eq!(m, Matrix::from_rows(&[vec![1.0, 2.0], vec![4.0, 5.0]]));
        m.truncate(5, 5);
        assert_eq!((m.rows(), m.cols()), (2, 2));
        assert_eq!(m.with_cols(3).row(1), &[4.0, 5.0, 0.0]);
        assert_eq!(serde_json::to_string(&m).unwrap(), "[[1.0,2.0],[4.0,5.0]]");
    }

    #[test]
    fn probability_is_exp_of_score() {
        assert!((probability(-0.0513) - 0.95).abs() < 0.001);
        assert_eq!(probability(0.0), 1.0);
    }
}
