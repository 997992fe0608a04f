//! How answers are written as JSON (the API's bodies, a batch's lines):
//! serde, except that attention weights (the only `f32`s in any answer) are
//! written with 4 decimals by hand. 0.01% is plenty
//! for any heatmap, makes answers smaller, and costs a fraction of general
//! float formatting for the thousands of weights in an answer.

use std::io;

use serde::Serialize;

/// Appends `value` as JSON to `out`.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mut serializer = serde_json::Serializer::with_formatter(out, Weights);
    value.serialize(&mut serializer).expect("our views always serialize to a Vec");
}

struct Weights;

impl serde_json::ser::Formatter for Weights {
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        let x = f64::from(value) * 1e4;
        if (0.0..9999.5).contains(&x) {
            // 0.xxxx without trailing zeros, or 0; the cast truncates, so this
            // rounds half up (`f64::round` is a libm call on baseline x86-64)
            let n = (x + 0.5) as u32;
            let d = [b'0', b'.', digit(n / 1000), digit(n / 100), digit(n / 10), digit(n)];
            // one fixed-size copy per case: a copy of variable length is a
            // call to memcpy, which showed in the profile
            match if n == 0 { 1 } else { 6 - trailing_zeros(n) } {
                1 => writer.write_all(b"0"),
                3 => writer.write_all(&d[..3]),
                4 => writer.write_all(&d[..4]),
                5 => writer.write_all(&d[..5]),
                _ => writer.write_all(&d),
            }
        } else {
            // serde_json writes `null` for NaN and infinities before asking us
            write!(writer, "{}", x.round() / 1e4)
        }
    }
}

fn digit(n: u32) -> u8 {
    b'0' + (n % 10) as u8
}

/// Trailing decimal zeros of a non-zero number below 10,000.
fn trailing_zeros(n: u32) -> usize {
    [1000, 100, 10].iter().position(|d| n.is_multiple_of(*d)).map_or(0, |i| 3 - i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::Matrix;

    fn text(rows: &[Vec<f32>]) -> String {
        let mut out = Vec::new();
        write(&mut out, &Matrix::from_rows(rows));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn weights_are_written_with_four_decimals() {
        assert_eq!(
            text(&[vec![0.8, 0.02, 0.000_04, 0.123_456, 1.0], vec![0.0, 0.99996, 2.5, -0.25, 0.1001]]),
            "[[0.8,0.02,0,0.1235,1],[0,1,2.5,-0.25,0.1001]]"
        );
        assert_eq!(text(&[]), "[]");
        assert_eq!(text(&[vec![f32::NAN, 0.5]]), "[[null,0.5]]");
        let parsed: Vec<Vec<f64>> = serde_json::from_str(&text(&[vec![0.000_06, 0.4999]])).unwrap();
        assert_eq!(parsed, vec![vec![0.0001, 0.4999]]);
    }

    #[test]
    fn other_numbers_are_written_as_serde_writes_them() {
        let mut out = Vec::new();
        write(&mut out, &serde_json::json!({"score": -0.0513, "n": 3, "p": 0.9499999}));
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"score":-0.0513,"n":3,"p":0.9499999}"#);
    }
}
