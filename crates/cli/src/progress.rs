//! Progress bars for the long commands (`rebuild`, `simulate`): drawn on a terminal, silent
//! otherwise (a log file or CI gets the closing summary only).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `total` steps named `what`, on standard error when it is a terminal.
pub fn bar(what: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:24} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>."),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A bar without a known end: a count and a rate.
pub fn counter(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:24} {human_pos} {per_sec} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// One bar per stream for `rebuild`'s progress callback (stream, done, total).
#[derive(Default)]
pub struct PerStream {
    current: Option<(String, ProgressBar)>,
}

impl PerStream {
    pub fn update(&mut self, stream: &str, done: u64, total: u64) {
        let fresh = self.current.as_ref().is_none_or(|(s, _)| s != stream);
        if fresh {
            self.finish();
            self.current = Some((stream.to_owned(), bar(stream, total)));
        }
        if let Some((_, bar)) = &self.current {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    pub fn finish(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            bar.finish();
        }
    }
}
