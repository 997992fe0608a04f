//! The envelope of a result: `{"isBase64Encoded", "statusCode", "body"}` with a
//! base64 body that may be gzipped, or a plain result; and the error bodies.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use super::{MAX_DECOMPRESSED_BYTES, ProtocolError};

#[derive(Deserialize)]
pub(super) struct Envelope<'a> {
    #[serde(rename = "statusCode")]
    status_code: Option<u16>,
    #[serde(rename = "isBase64Encoded", default)]
    is_base64_encoded: bool,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
}

/// Returns the result JSON: unwraps the API-Gateway-style envelope when there is
/// one (base64 or not, gzipped or not), or the payload itself when there is none.
pub(super) fn unwrap_body(payload: &[u8]) -> Result<Cow<'_, [u8]>, ProtocolError> {
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
pub(super) fn gunzip(data: &[u8]) -> Result<Vec<u8>, ProtocolError> {
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
pub(super) fn error_message(body: &[u8]) -> String {
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

pub(super) fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
