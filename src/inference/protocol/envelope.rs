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

/// Inflates a gzip member; zlib parses the framing (header, CRC-32, size) and
/// checks it. Output stops growing at `MAX_DECOMPRESSED_BYTES`.
pub(super) fn gunzip(data: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    use flate2::{Decompress, FlushDecompress, Status};
    let bad = |why: &str| ProtocolError::Malformed(format!("body is not valid gzip: {why}"));
    if data.len() < 18 || data[..2] != [0x1f, 0x8b] {
        return Err(bad("no gzip header"));
    }
    let size_hint = u32::from_le_bytes(data[data.len() - 4..].try_into().expect("4 bytes")) as usize;
    let mut out = Vec::with_capacity(size_hint.min(MAX_DECOMPRESSED_BYTES as usize) + 1);
    let mut d = Decompress::new_gzip(15);
    loop {
        let consumed = d.total_in() as usize;
        let before = (d.total_in(), d.total_out());
        if out.len() == out.capacity() {
            out.reserve(out.len().max(4096));
        }
        match d.decompress_vec(&data[consumed..], &mut out, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_) if (d.total_in(), d.total_out()) == before => return Err(bad("truncated")),
            Ok(_) => {}
            Err(e) => return Err(bad(&e.to_string())),
        }
        if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
            return Err(ProtocolError::Malformed("gzipped body expands past 256 MiB".into()));
        }
    }
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
