//! The attention heatmap, computed here and drawn by `templates/results.html`
//! as an inline SVG, so it works without JavaScript and all labels are escaped
//! by the template engine.
//!
//! The grid is one image, not a shape per cell: a PNG with one pixel per cell,
//! scaled up without smoothing. A 100,000-cell map is then a few tens of
//! kilobytes and a handful of DOM nodes instead of megabytes and a node per
//! cell. The exact values travel beside it (`values`: 4-decimal weights as
//! big-endian u16, row by row, zlib-compressed, in base 64), for the page's script to read out
//! under the pointer, a tap or the arrow keys; small maps also carry a table of
//! them, for browsers without JavaScript.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::ZlibEncoder;

use crate::inference::Matrix;

/// Side of one cell at full size, in pixels. The page fits wide maps to its
/// width and offers full size, which scrolls inside the map's own box.
const CELL: usize = 18;
/// Pixels per character of a label.
const CHAR_W: usize = 8;
/// Up to this many cells a map also carries its values as a table.
const TABLE_LIMIT: usize = 400;
/// The text alternative names the strongest input token of at most this many
/// result tokens.
const SUMMARY_TOKENS: usize = 40;

pub struct Heatmap {
    pub width: usize,
    pub height: usize,
    pub left: usize,
    pub top: usize,
    /// Where the rotated column labels and the row labels are anchored.
    pub col_label_y: usize,
    pub row_label_x: usize,
    /// Column labels are turned upright only when some are long.
    pub rotate: bool,
    pub grid_w: usize,
    pub grid_h: usize,
    pub cell: usize,
    pub n_rows: usize,
    pub n_cols: usize,
    pub cols: Vec<Label>,
    pub rows: Vec<Label>,
    /// The grid: `data:image/png;base64,…`, one pixel per cell.
    pub image: String,
    /// The exact weights: big-endian `u16` (weight x 10,000), row by row,
    /// zlib-compressed, in base 64.
    pub values: String,
    /// The text alternative: for each result token (up to a limit), where it is
    /// and the input token it attended to most, with its share.
    pub summary: String,
    /// Small maps: every value, for a table view (rows of percentages).
    pub table: Option<Vec<Vec<String>>>,
}

pub struct Label {
    pub pos: usize,
    pub text: String,
}

impl Heatmap {
    /// `matrix` is `targets x sources`, already cut to the token counts.
    pub fn new(sources: &[&str], targets: &[&str], matrix: &Matrix) -> Option<Self> {
        let (n_rows, n_cols) = (matrix.rows().min(targets.len()), sources.len().min(matrix.cols()));
        if n_rows == 0 || n_cols == 0 {
            return None;
        }
        let longest = |v: &[&str]| v.iter().map(|t| t.chars().count()).max().unwrap_or(1);
        let left = 12 + CHAR_W * longest(targets).min(24);
        let rotate = longest(sources) > 2;
        let top = if rotate { 12 + CHAR_W * longest(sources).min(24) } else { 22 };

        let mut levels = Vec::with_capacity(n_rows * n_cols);
        let mut values = Vec::with_capacity(n_rows * n_cols * 2);
        let mut strongest = Vec::with_capacity(n_rows.min(SUMMARY_TOKENS));
        let mut table: Option<Vec<Vec<String>>> = (n_rows * n_cols <= TABLE_LIMIT).then(Vec::new);
        for (r, row) in matrix.iter_rows().take(n_rows).enumerate() {
            let mut best = (0usize, f32::MIN);
            let mut cells = Vec::new();
            for (c, &v) in row.iter().take(n_cols).enumerate() {
                let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
                if v > best.1 {
                    best = (c, v);
                }
                levels.push((v * 255.0).round() as u8);
                let weight = (v * 10_000.0).round() as u16;
                values.extend_from_slice(&weight.to_be_bytes());
                if table.is_some() {
                    cells.push(format!("{:.1}%", f32::from(weight) / 100.0));
                }
            }
            if let Some(t) = table.as_mut() {
                t.push(cells);
            }
            if r < SUMMARY_TOKENS {
                strongest.push(format!(
                    "result token {} “{}” looked most at input token {} “{}” ({:.0}%)",
                    r + 1,
                    targets[r],
                    best.0 + 1,
                    sources[best.0],
                    best.1 * 100.0
                ));
            }
        }
        let more = match n_rows.saturating_sub(SUMMARY_TOKENS) {
            0 => String::new(),
            n => format!("; and {n} more result tokens"),
        };
        let summary =
            format!("{n_rows} result tokens by {n_cols} input tokens. {}{more}.", sentence_case(&strongest.join("; ")));
        let cols = sources
            .iter()
            .take(n_cols)
            .enumerate()
            .map(|(i, t)| Label { pos: left + i * CELL + CELL / 2, text: shorten(t) })
            .collect();
        let rows = targets
            .iter()
            .take(n_rows)
            .enumerate()
            .map(|(i, t)| Label { pos: top + i * CELL + CELL / 2, text: shorten(t) })
            .collect();
        let png = png_indexed(n_cols as u32, n_rows as u32, &palette(), &levels);
        Some(Heatmap {
            width: left + n_cols * CELL + 4,
            height: top + n_rows * CELL + 4,
            left,
            top,
            col_label_y: top - 6,
            row_label_x: left - 6,
            rotate,
            grid_w: n_cols * CELL,
            grid_h: n_rows * CELL,
            cell: CELL,
            n_rows,
            n_cols,
            cols,
            rows,
            image: format!("data:image/png;base64,{}", STANDARD.encode(png)),
            values: STANDARD.encode(zlib(&values)),
            summary,
            table,
        })
    }

    /// The table view's column heads: the input tokens.
    pub fn col_tokens(&self) -> impl Iterator<Item = &str> {
        self.cols.iter().map(|l| l.text.as_str())
    }
}

fn sentence_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn shorten(token: &str) -> String {
    match token.char_indices().nth(24) {
        Some((i, _)) => format!("{}…", &token[..i]),
        None => token.to_string(),
    }
}

/// A sequential scale from near-white (0) to deep blue (1); the same stops as
/// the legend gradient in `app.css`.
pub fn color(v: f32) -> [u8; 3] {
    const STOPS: [(f32, [u8; 3]); 5] = [
        (0.0, [0xf4, 0xf7, 0xfb]),
        (0.1, [0xc6, 0xdb, 0xef]),
        (0.3, [0x6b, 0xae, 0xd6]),
        (0.6, [0x21, 0x71, 0xb5]),
        (1.0, [0x08, 0x30, 0x6b]),
    ];
    let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
    let i = STOPS.iter().position(|(s, _)| *s >= v).unwrap_or(STOPS.len() - 1).max(1);
    let ((s0, c0), (s1, c1)) = (STOPS[i - 1], STOPS[i]);
    let t = if s1 > s0 { (v - s0) / (s1 - s0) } else { 0.0 };
    let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * t).round() as u8;
    [mix(c0[0], c1[0]), mix(c0[1], c1[1]), mix(c0[2], c1[2])]
}

/// The colour of each of the 256 levels a cell is drawn with.
fn palette() -> Vec<[u8; 3]> {
    (0..=255u8).map(|i| color(f32::from(i) / 255.0)).collect()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = ZlibEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    z.write_all(bytes).expect("writing to a Vec cannot fail");
    z.finish().expect("writing to a Vec cannot fail")
}

/// An 8-bit indexed-colour PNG: one byte per pixel, rows top to bottom.
fn png_indexed(width: u32, height: u32, palette: &[[u8; 3]], pixels: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // 8 bits per index, colour type 3 (indexed), default compression, filter
    // and no interlace.
    header.extend_from_slice(&[8, 3, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"PLTE", palette.as_flattened());
    // Filter type 0 (none) before every scanline.
    let scanlines: Vec<u8> =
        pixels.chunks(width as usize).flat_map(|row| std::iter::once(0).chain(row.iter().copied())).collect();
    chunk(&mut out, b"IDAT", &zlib(&scanlines));
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        s.split(' ').collect()
    }

    fn unzip(b64: &str) -> Vec<u8> {
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&STANDARD.decode(b64).unwrap()[..]).read_to_end(&mut raw).unwrap();
        raw
    }

    /// The pixels of one of our PNGs, read back through zlib.
    fn png_pixels(data_url: &str) -> (u32, u32, Vec<u8>) {
        let png = STANDARD.decode(data_url.strip_prefix("data:image/png;base64,").unwrap()).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (mut at, mut idat, mut size) = (8, Vec::new(), (0, 0));
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind = &png[at + 4..at + 8];
            let data = &png[at + 8..at + 8 + len];
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            assert_eq!(crc.sum().to_be_bytes(), png[at + 8 + len..at + 12 + len], "CRC of {kind:?}");
            match kind {
                b"IHDR" => {
                    size = (
                        u32::from_be_bytes(data[..4].try_into().unwrap()),
                        u32::from_be_bytes(data[4..8].try_into().unwrap()),
                    )
                }
                b"PLTE" => assert_eq!(data.len(), 256 * 3),
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            at += 12 + len;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
        let width = size.0 as usize;
        let pixels = raw.chunks(width + 1).flat_map(|row| {
            assert_eq!(row[0], 0, "filter byte");
            row[1..].to_vec()
        });
        (size.0, size.1, pixels.collect())
    }

    #[test]
    fn colour_scale_runs_from_background_to_deep_blue() {
        assert_eq!(color(0.0), [0xf4, 0xf7, 0xfb]);
        assert_eq!(color(1.0), [0x08, 0x30, 0x6b]);
        assert_eq!(color(f32::NAN), color(0.0));
        assert_eq!(color(7.0), color(1.0));
    }

    #[test]
    fn the_grid_is_one_image_with_a_pixel_per_cell_and_the_exact_values_beside_it() {
        let m = vec![vec![0.9, 0.1], vec![0.2, 0.8], vec![0.5, 0.5]];
        let h = Heatmap::new(&toks("a b"), &toks("x y z"), &Matrix::from_rows(&m)).unwrap();
        let (w, height, pixels) = png_pixels(&h.image);
        assert_eq!((w, height), (2, 3));
        assert_eq!(pixels, [230, 26, 51, 204, 128, 128]);
        let values: Vec<u16> = unzip(&h.values).chunks(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect();
        assert_eq!(values, [9000, 1000, 2000, 8000, 5000, 5000]);
        assert_eq!((h.cols.len(), h.rows.len(), h.grid_w), (2, 3, 2 * CELL));
        assert_eq!(h.table.as_ref().unwrap()[1], ["20.0%", "80.0%"]);
    }

    #[test]
    fn the_text_alternative_says_where_each_token_is() {
        let m = vec![vec![0.9, 0.1], vec![0.2, 0.8]];
        let h = Heatmap::new(&toks("C C"), &toks("C O"), &Matrix::from_rows(&m)).unwrap();
        assert_eq!(
            h.summary,
            "2 result tokens by 2 input tokens. Result token 1 “C” looked most at input token 1 “C” (90%); \
             result token 2 “O” looked most at input token 2 “C” (80%)."
        );
    }

    #[test]
    fn a_large_map_stays_small_on_the_page() {
        // The most a default server sends: 100,000 cells, spread over 316 x 316.
        let n = 316;
        let m: Vec<Vec<f32>> =
            (0..n).map(|r| (0..n).map(|c| if r == c { 0.7 } else { 0.3 / (n - 1) as f32 }).collect()).collect();
        let t: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let t: Vec<&str> = t.iter().map(String::as_str).collect();
        let h = Heatmap::new(&t, &t, &Matrix::from_rows(&m)).unwrap();
        assert!(h.table.is_none());
        assert!(h.image.len() < 40_000, "{} bytes of image", h.image.len());
        assert_eq!(unzip(&h.values).len(), n * n * 2);
        assert!(h.values.len() < 20_000, "{} bytes of values", h.values.len());
        assert!(h.summary.ends_with("; and 276 more result tokens."), "{}", h.summary);
    }

    #[test]
    fn empty_inputs_give_no_map() {
        assert!(Heatmap::new(&[], &toks("a"), &Matrix::from_rows(&[vec![]])).is_none());
    }
}
