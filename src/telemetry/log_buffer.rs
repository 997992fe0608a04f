//! Where log lines go: standard output, with the per-request access lines
//! gathered in memory and written together.
//!
//! A `write(2)` per request was about a tenth of the CPU of a request at
//! saturation. Access lines (target [`ACCESS_TARGET`], level INFO) are
//! appended to a buffer that a background thread writes out every
//! [`FLUSH_EVERY`], or at once past [`FLUSH_BYTES`]. Every other line (start-up,
//! warnings, errors) first writes out what is buffered, then itself, so order
//! is kept and nothing important waits. [`flush`] runs at exit; a process killed
//! with SIGKILL may lose the last [`FLUSH_EVERY`] of access lines, never more.

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
pub const FLUSH_BYTES: usize = 32 * 1024;

/// The target of the per-request lines (`RUST_LOG=info,access=off` drops them).
pub const ACCESS_TARGET: &str = "access";

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn buffer() -> MutexGuard<'static, Vec<u8>> {
    BUFFER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes out what is buffered, then `line`. The buffer is taken while holding
/// stdout's lock (so lines keep their order) but written after releasing the
/// buffer's: appending an access line never waits for the output.
fn write_out(line: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let pending = std::mem::take(&mut *buffer());
    if !pending.is_empty() {
        out.write_all(&pending)?;
        reuse(pending);
    }
    out.write_all(line)?;
    out.flush()
}

/// Gives an emptied buffer's memory back, so steady logging does not allocate.
fn reuse(mut pending: Vec<u8>) {
    let mut buf = buffer();
    if buf.is_empty() && pending.capacity() > buf.capacity() {
        pending.clear();
        *buf = pending;
    }
}

/// Writes out the buffered access lines.
pub fn flush() {
    let _ = write_out(b"");
}

/// The `MakeWriter` for the tracing subscriber; starts the flushing thread.
pub struct Stdout;

impl Stdout {
    pub fn new() -> Self {
        static FLUSHER: Once = Once::new();
        FLUSHER.call_once(|| {
            let spawned = std::thread::Builder::new().name("log-flush".into()).spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    if !buffer().is_empty() {
                        flush();
                    }
                }
            });
            if spawned.is_err() {
                eprintln!("warning: no log flushing thread; access lines are written past {FLUSH_BYTES} bytes");
            }
        });
        Stdout
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Line {
    buffered: bool,
}

impl<'a> MakeWriter<'a> for Stdout {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { buffered: false }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line { buffered: *meta.level() == Level::INFO && meta.target() == ACCESS_TARGET }
    }
}

impl Write for Line {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if !self.buffered {
            write_out(line)?;
        } else {
            let full = {
                let mut buf = buffer();
                buf.extend_from_slice(line);
                buf.len() >= FLUSH_BYTES
            };
            if full {
                write_out(b"")?;
            }
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
