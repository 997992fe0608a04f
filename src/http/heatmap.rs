//! The attention heatmap as data for an inline SVG: computed here, drawn by
//! `templates/results.html`, so it works without JavaScript and all labels
//! are escaped by the template engine.

use crate::inference::Matrix;

/// Side of one cell, in pixels. Fixed, so long inputs scroll instead of
/// shrinking to nothing.
const CELL: usize = 18;
/// Pixels per character of a label.
const CHAR_W: usize = 8;
/// Above this many cells, near-zero cells are left to the background so the
/// page stays small; their value is below `SPARSE_FLOOR` by construction.
const DENSE_LIMIT: usize = 2500;
const SPARSE_FLOOR: f32 = 0.005;

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
    pub cols: Vec<Label>,
    pub rows: Vec<Label>,
    pub cells: Vec<Cell>,
    /// The text alternative: for each predicted token, the input token it
    /// attended to most.
    pub summary: String,
    pub background: &'static str,
}

pub struct Label {
    pub pos: usize,
    pub text: String,
}

pub struct Cell {
    pub x: usize,
    pub y: usize,
    pub fill: String,
    pub title: String,
}

impl Heatmap {
    /// `matrix` is `targets x sources`, already cut to the token counts.
    pub fn new(sources: &[&str], targets: &[&str], matrix: &Matrix) -> Option<Self> {
        if sources.is_empty() || targets.is_empty() || matrix.is_empty() {
            return None;
        }
        let longest = |v: &[&str]| v.iter().map(|t| t.chars().count()).max().unwrap_or(1);
        let left = 12 + CHAR_W * longest(targets).min(24);
        let rotate = longest(sources) > 2;
        let top = if rotate { 12 + CHAR_W * longest(sources).min(24) } else { 22 };
        let (n_rows, n_cols) = (matrix.rows().min(targets.len()), sources.len());
        let dense = n_rows * n_cols <= DENSE_LIMIT;
        let mut cells = Vec::new();
        let mut strongest = Vec::with_capacity(n_rows);
        for (r, row) in matrix.iter_rows().take(n_rows).enumerate() {
            let mut best = (0usize, f32::MIN);
            for (c, &v) in row.iter().take(n_cols).enumerate() {
                if v > best.1 {
                    best = (c, v);
                }
                if dense || v >= SPARSE_FLOOR {
                    cells.push(Cell {
                        x: left + c * CELL,
                        y: top + r * CELL,
                        fill: color(v),
                        title: format!("{} ← {}: {:.1}%", targets[r], sources[c], v * 100.0),
                    });
                }
            }
            if best.1 > f32::MIN {
                strongest.push(format!("{} ← {}", targets[r], sources[best.0]));
            }
        }
        let cols = sources
            .iter()
            .enumerate()
            .map(|(i, t)| Label { pos: left + i * CELL + CELL / 2, text: shorten(t) })
            .collect();
        let rows = targets
            .iter()
            .take(n_rows)
            .enumerate()
            .map(|(i, t)| Label { pos: top + i * CELL + CELL / 2, text: shorten(t) })
            .collect();
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
            cols,
            rows,
            cells,
            summary: format!("Strongest attention per predicted token: {}.", strongest.join(", ")),
            background: BACKGROUND,
        })
    }
}

fn shorten(token: &str) -> String {
    match token.char_indices().nth(24) {
        Some((i, _)) => format!("{}…", &token[..i]),
        None => token.to_string(),
    }
}

/// The colour of weight 0; cells left out in sparse mode show it.
const BACKGROUND: &str = "#f4f7fb";

/// A sequential scale from near-white (0) to deep blue (1); the same stops as
/// the legend gradient in `app.css`.
pub fn color(v: f32) -> String {
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
    format!("#{:02x}{:02x}{:02x}", mix(c0[0], c1[0]), mix(c0[1], c1[1]), mix(c0[2], c1[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        s.split(' ').collect()
    }

    #[test]
    fn colour_scale_runs_from_background_to_deep_blue() {
        assert_eq!(color(0.0), BACKGROUND);
        assert_eq!(color(1.0), "#08306b");
        assert_eq!(color(f32::NAN), BACKGROUND);
        assert_eq!(color(7.0), "#08306b");
    }

    #[test]
    fn small_maps_draw_every_cell_with_its_value() {
        let m = vec![vec![0.9, 0.1], vec![0.2, 0.8], vec![0.5, 0.5]];
        let h = Heatmap::new(&toks("a b"), &toks("x y z"), &Matrix::from_rows(&m)).unwrap();
        assert_eq!(h.cells.len(), 6);
        assert_eq!(h.cols.len(), 2);
        assert_eq!(h.rows.len(), 3);
        assert_eq!(h.cells[0].title, "x ← a: 90.0%");
        assert!(h.summary.contains("x ← a, y ← b"));
        assert_eq!(h.grid_w, 2 * CELL);
    }

    #[test]
    fn large_maps_keep_a_fixed_cell_size_and_skip_near_zero_cells() {
        let n = 120;
        let m: Vec<Vec<f32>> = (0..n).map(|r| (0..n).map(|c| if r == c { 1.0 } else { 0.0 }).collect()).collect();
        let t: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let t: Vec<&str> = t.iter().map(String::as_str).collect();
        let h = Heatmap::new(&t, &t, &Matrix::from_rows(&m)).unwrap();
        assert_eq!(h.cells.len(), n);
        assert!(h.width > n * CELL);
    }

    #[test]
    fn empty_inputs_give_no_map() {
        assert!(Heatmap::new(&[], &toks("a"), &Matrix::from_rows(&[vec![]])).is_none());
    }
}
