//! Transfer progress bars: bytes, rate and ETA on a terminal, nothing otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar over all bytes of a push or pull; hidden when stderr is not a
/// terminal or JSON output was asked for.
pub struct TransferBar {
    bar: ProgressBar,
}

impl TransferBar {
    /// A bar over `total` bytes, drawn only on an interactive terminal.
    pub fn new(total: u64, json: bool) -> TransferBar {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if !json && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        // The template is a constant; a typo would show at the first run.
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        TransferBar { bar }
    }

    /// Names the file being moved.
    pub fn set_file(&self, name: &str) {
        self.bar.set_message(name.to_owned());
    }

    /// Sets the bytes done so far over all files.
    pub fn set_position(&self, bytes: u64) {
        self.bar.set_position(bytes);
    }

    /// Bytes done so far over all files.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Prints a line above the bar (or plainly when the bar is hidden).
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            outln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
