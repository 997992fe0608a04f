//! The run second by second: what was sent, what finished and how, latency
//! of that second alone, what was in flight and (with `--metrics-url`) the
//! fleet's replicas and CPU. Written as it happens (`--out run.jsonl`, or CSV
//! for a `.csv` name) and drawn at the end (`--plot run.png`), so a run can be
//! laid beside the HPA's events.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One second of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds from the start to the end of this interval.
    pub t: f64,
    /// The schedule's rate in the middle of this interval, requests/s.
    pub target_rate: f64,
    pub sent: u64,
    /// Requests that succeeded in this interval.
    pub completed: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Latency of the requests that ended in this interval (all of them,
    /// from their intended send time), ms; none when none ended.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub in_flight: usize,
    /// Pods behind `--metrics-url` that answered, and the cores they used
    /// over the last scrape interval.
    pub replicas: Option<usize>,
    pub fleet_cpu_cores: Option<f64>,
}

const CSV_HEADER: &str =
    "t,target_rate,sent,completed,errors,p50_ms,p99_ms,in_flight,replicas,fleet_cpu_cores,errors_by_kind\n";

/// Where the samples go as they are made.
pub struct Writer {
    file: Box<dyn Write + Send>,
    csv: bool,
    path: PathBuf,
}

impl Writer {
    /// A file, or standard output for `-` (or `/dev/stdout`: written through
    /// the process's own stdout, so a redirect to a file is not overwritten
    /// by a second opening of it).
    pub fn create(path: &Path) -> Result<Writer, String> {
        let file: Box<dyn Write + Send> = if path == Path::new("-") || path == Path::new("/dev/stdout") {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::File::create(path).map_err(|e| format!("--out {}: {e}", path.display()))?;
            Box::new(std::io::BufWriter::new(file))
        };
        let csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let mut w = Writer { file, csv, path: path.to_owned() };
        if csv {
            w.write_raw(CSV_HEADER.as_bytes())?;
        }
        Ok(w)
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("--out {}: {e}", self.path.display()))
    }

    pub fn write(&mut self, s: &Sample) -> Result<(), String> {
        let line = if self.csv {
            let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
            let kinds: Vec<String> = s.errors_by_kind.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!(
                "{},{},{},{},{},{},{},{},{},{},\"{}\"\n",
                s.t,
                s.target_rate,
                s.sent,
                s.completed,
                s.errors,
                opt(s.p50_ms),
                opt(s.p99_ms),
                s.in_flight,
                s.replicas.map_or(String::new(), |r| r.to_string()),
                opt(s.fleet_cpu_cores),
                kinds.join(";").replace('"', "'")
            )
        } else {
            serde_json::to_string(s).expect("a sample is JSON") + "\n"
        };
        self.write_raw(line.as_bytes())
    }
}

/// The labels' font: DejaVu Sans Mono cut to ASCII (static/fonts/LICENSE).
const FONT: &[u8] = include_bytes!("../../static/fonts/DejaVuSansMono-subset.ttf");

/// Draws rate, latency, errors, and replicas with requests in flight, each
/// against time, one above the other, as a PNG.
pub fn plot(path: &Path, samples: &[Sample], title: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| format!("--plot {}: {e}", path.display());
    static FONT_REGISTERED: std::sync::Once = std::sync::Once::new();
    FONT_REGISTERED.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let root = BitMapBackend::new(path, (1200, 1200)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (head, body) = root.split_vertically(40);
    head.draw_text(title, &("sans-serif", 20).into_text_style(&head), (10, 10)).map_err(|e| fail(&e))?;
    let panels = body.split_evenly((4, 1));
    let t_max = samples.last().map_or(1.0, |s| s.t).max(1.0);
    let palette = [RGBColor(31, 119, 180), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189)];

    type Line<'a> = (&'a str, Vec<(f64, f64)>);
    let series = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples.iter().filter_map(|s| f(s).map(|v| (s.t, v))).collect()
    };
    let panel = |area: &DrawingArea<BitMapBackend, plotters::coord::Shift>, y_desc: &str, lines: Vec<Line>| {
        let y_max = lines.iter().flat_map(|(_, l)| l.iter().map(|p| p.1)).fold(0.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max.max(1.0))
            .map_err(|e| fail(&e))?;
        chart.configure_mesh().x_desc("seconds").y_desc(y_desc).draw().map_err(|e| fail(&e))?;
        for (i, (name, points)) in lines.into_iter().enumerate() {
            let color = palette[i % palette.len()];
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))
    };
    panel(
        &panels[0],
        "requests/s",
        vec![
            ("target", series(&|s| Some(s.target_rate))),
            ("sent", series(&|s| Some(s.sent as f64))),
            ("succeeded", series(&|s| Some(s.completed as f64))),
        ],
    )?;
    panel(&panels[1], "latency, ms", vec![("p50", series(&|s| s.p50_ms)), ("p99", series(&|s| s.p99_ms))])?;
    panel(&panels[2], "errors/s", vec![("errors", series(&|s| Some(s.errors as f64)))])?;
    let mut last = vec![("in flight", series(&|s| Some(s.in_flight as f64)))];
    if samples.iter().any(|s| s.replicas.is_some()) {
        last.push(("replicas", series(&|s| s.replicas.map(|r| r as f64))));
        last.push(("fleet CPU, cores", series(&|s| s.fleet_cpu_cores)));
    }
    panel(&panels[3], "in flight / replicas", last)?;
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64) -> Sample {
        Sample {
            t,
            target_rate: 10.0,
            sent: 10,
            completed: 9,
            errors: 1,
            errors_by_kind: [("timeout".to_string(), 1)].into(),
            p50_ms: Some(3.5),
            p99_ms: None,
            in_flight: 2,
            replicas: Some(3),
            fleet_cpu_cores: Some(0.25),
        }
    }

    #[test]
    fn samples_are_written_as_json_lines_or_csv_rows() {
        let dir = std::env::temp_dir().join(format!("series-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, csv) in [("run.jsonl", false), ("run.csv", true)] {
            let path = dir.join(name);
            let mut w = Writer::create(&path).unwrap();
            w.write(&sample(1.0)).unwrap();
            w.write(&sample(2.0)).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            if csv {
                assert_eq!(lines.len(), 3);
                assert_eq!(lines[0], CSV_HEADER.trim_end());
                assert_eq!(lines[2], "2,10,10,9,1,3.5,,2,3,0.25,\"timeout:1\"");
            } else {
                assert_eq!(lines.len(), 2);
                let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
                assert_eq!((v["t"].as_f64(), v["errors_by_kind"]["timeout"].as_u64()), (Some(2.0), Some(1)));
                assert!(v["p99_ms"].is_null());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_plot_is_a_png_of_the_whole_run() {
        let path = std::env::temp_dir().join(format!("plot-{}.png", std::process::id()));
        let samples: Vec<Sample> = (1..=30).map(|t| sample(t as f64)).collect();
        plot(&path, &samples, "test run").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // 1200 x 1200 in the IHDR chunk
        assert_eq!((&bytes[16..20], &bytes[20..24]), (&1200u32.to_be_bytes()[..], &1200u32.to_be_bytes()[..]));
        std::fs::remove_file(&path).unwrap();
    }
}
