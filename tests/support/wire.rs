//! The other side of the wire contract, for the emulator, the tests and the
//! codec benchmark: encoding a result as the function does and reading an event
//! as it does. Not part of the service.

#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use translation_front::inference::protocol::{Event, Matrix, ProtocolError};

pub fn decode_event(payload: &[u8]) -> Result<(Event, Vec<String>), ProtocolError> {
    let event: Event = serde_json::from_slice(payload).map_err(|e| ProtocolError::Malformed(format!("event: {e}")))?;
    let inputs: Vec<String> =
        serde_json::from_str(&event.data).map_err(|e| ProtocolError::Malformed(format!("event data: {e}")))?;
    Ok((event, inputs))
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

/// The same rows padded with zeros (or cut) to `cols` columns: the function pads
/// every matrix of a batch to its longest input.
pub fn with_cols(m: &Matrix, cols: usize) -> Matrix {
    let rows: Vec<Vec<f32>> = m
        .iter_rows()
        .map(|row| {
            let mut r = row[..cols.min(row.len())].to_vec();
            r.resize(cols, 0.0);
            r
        })
        .collect();
    if rows.is_empty() { Matrix::default() } else { Matrix::from_rows(&rows) }
}
