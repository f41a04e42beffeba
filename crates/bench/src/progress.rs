//! The progress bar on stderr (hidden when stderr is not a terminal or when turned off).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::{Outcome, RequestRecord};

/// A cloneable handle on the run's progress bar.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    errors: Arc<AtomicU64>,
}

impl Progress {
    pub fn new(total: usize, visible: bool) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stderr_with_hz(2)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total as u64), target);
        if let Ok(style) =
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            errors: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn record(&self, record: &RequestRecord) {
        if record.outcome == Outcome::Error {
            let errors = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("errors {errors}"));
        }
        self.bar.inc(1);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
