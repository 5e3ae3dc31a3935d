//! Progress on stderr: spinners and bars, hidden when quiet or when stderr
//! is not a terminal (so scripts and tests see clean output).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner or bar; finishing (or dropping) it clears it.
pub struct Progress {
    bar: ProgressBar,
}

fn target(quiet: bool) -> ProgressDrawTarget {
    if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() }
}

impl Progress {
    /// A spinner with `message`.
    pub fn spinner(message: &str, quiet: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(None, target(quiet));
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"));
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar }
    }

    /// A bar of `len` rounds with `message`.
    pub fn bar(message: &str, len: u64, quiet: bool) -> Progress {
        Progress::with_template(message, len, quiet, "{msg} [{bar:30}] {pos}/{len} rounds, {per_sec}, eta {eta}")
    }

    /// A bar of `len` bytes with `message`.
    pub fn bytes(message: &str, len: u64, quiet: bool) -> Progress {
        Progress::with_template(message, len, quiet, "{msg} [{bar:30}] {bytes}/{total_bytes}, {bytes_per_sec}")
    }

    fn with_template(message: &str, len: u64, quiet: bool, template: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(len), target(quiet));
        bar.set_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
        bar.set_message(message.to_string());
        Progress { bar }
    }

    /// Move a bar to `pos` of `len`.
    pub fn set(&self, pos: u64, len: u64) {
        self.bar.set_length(len);
        self.bar.set_position(pos);
    }

    /// Change the message.
    pub fn message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Clear it.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
