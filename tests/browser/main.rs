//! The UI in real headless Chromium, against the real binary (demo backend or
//! the Lambda emulator through the real SDK).

#[path = "../support/emulator.rs"]
mod emulator;
#[path = "../support/server.rs"]
mod helpers;

mod batch_page;
mod chemistry;
mod driver;
mod structures;
mod translate_page;
mod ui;
