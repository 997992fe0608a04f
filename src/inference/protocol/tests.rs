//! The codec against the contract's byte-exact fixtures, damaged inputs, and
//! generated answers (property tests against serde_json).

use super::envelope::*;
use super::reader::*;
use super::wire::{decode_event, encode_envelope, gzip, with_cols};
use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

const EVENT: &[u8] = include_bytes!("../../../tests/fixtures/invoke-event.json");
const RESPONSE: &[u8] = include_bytes!("../../../tests/fixtures/invoke-response.json");
const DECODED: &[u8] = include_bytes!("../../../tests/fixtures/invoke-result.decoded.json");
const NO_ATTENTION: &[u8] = include_bytes!("../../../tests/fixtures/invoke-response.no-attention.json");
const PLAIN: &[u8] = include_bytes!("../../../tests/fixtures/invoke-response.plain.json");
const WARMUP_EVENT: &[u8] = include_bytes!("../../../tests/fixtures/warmup-event.json");
const WARMUP_RESPONSE: &[u8] = include_bytes!("../../../tests/fixtures/warmup-response.json");
const FUNCTION_ERROR: &[u8] = include_bytes!("../../../tests/fixtures/function-error-response.json");
const THROTTLE: &[u8] = include_bytes!("../../../tests/fixtures/throttle-429-body.json");

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
    assert_eq!(with_cols(&m, 3).row(1), &[4.0, 5.0, 0.0]);
    assert_eq!(serde_json::to_string(&m).unwrap(), "[[1.0,2.0],[4.0,5.0]]");
}

#[test]
fn probability_is_exp_of_score() {
    assert!((probability(-0.0513) - 0.95).abs() < 0.001);
    assert_eq!(probability(0.0), 1.0);
}

mod properties {
    //! The hand-written reader against serde_json reading the same text
    //! into the same types: equal on valid answers; on damaged ones, a
    //! clean error (or, where both accept it, the same result), never a panic.

    use proptest::collection::vec;
    use proptest::prelude::*;
    use serde_json::json;

    use super::super::ResultBody;
    use super::super::reader::Reader;

    fn weight() -> impl Strategy<Value = f32> {
        prop_oneof![0.0f32..1.0, Just(0.0), Just(1.0), (0u32..10_000).prop_map(|n| n as f32 / 10_000.0)]
    }

    /// A valid result JSON: inputs x n_best predictions, scores, and
    /// attention (or `[null]`), as the function writes it.
    fn answer() -> impl Strategy<Value = String> {
        (1usize..4, 1usize..4, 0usize..6, 0usize..6, any::<bool>())
            .prop_flat_map(|(inputs, n_best, rows, cols, attention)| {
                (
                    vec(vec("[A-Za-z()=#1-9. \\\\\"]{0,12}", n_best), inputs),
                    vec(vec(-50.0f64..0.0, n_best), inputs),
                    vec(vec(vec(vec(weight(), cols), rows), n_best), inputs),
                    Just(attention),
                )
            })
            .prop_map(|(predictions, scores, weights, attention)| {
                let attention = if attention { json!(weights) } else { json!([null]) };
                json!({"predictions": predictions, "scores": scores, "attention": attention}).to_string()
            })
    }

    fn serde(text: &[u8]) -> Option<ResultBody> {
        serde_json::from_slice(text).ok()
    }

    /// Found by `damaged_answers_…`: 17 digits whose quick f64 product sat
    /// a hair from the midpoint of two f32s and rounded the other way.
    #[test]
    fn weights_round_to_the_f32_serde_json_gives() {
        for text in ["9.5483756065368652", "0.5483756065368652", "1.0000000596046448", "1e-40", "0.0", "0"] {
            let json = format!("{{\"predictions\":[[\"a\"]],\"scores\":[[-1.0]],\"attention\":[[[[{text}]]]]}}");
            let ours = Reader::new(json.as_bytes()).result(true).unwrap();
            assert_eq!(Some(ours), serde(json.as_bytes()), "{text}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn valid_answers_read_as_serde_json_reads_them(text in answer()) {
            let ours = Reader::new(text.as_bytes()).result(true);
            prop_assert_eq!(ours.ok(), serde(text.as_bytes()), "{}", text);
        }

        #[test]
        fn damaged_answers_are_a_clean_error_or_the_same_result(
            text in answer(),
            cut in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            how in 0u8..3,
        ) {
            let mut b = text.into_bytes();
            match how {
                0 => b.truncate(cut.index(b.len() + 1)),
                1 => { let i = at.index(b.len()); b[i] = byte; }
                _ => { let i = at.index(b.len() + 1); b.insert(i, byte); }
            }
            let ours = Reader::new(&b).result(true);
            if let (Ok(ours), Some(theirs)) = (&ours, serde(&b)) {
                prop_assert_eq!(ours, &theirs);
            }
        }
    }
}
