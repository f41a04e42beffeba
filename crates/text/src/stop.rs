//! Stop strings over streamed text.
//!
//! Text is pushed in arbitrary pieces. Whatever might still turn into a stop string (a suffix
//! of the text so far that is a proper prefix of some stop) is held back; the rest is emitted.
//! When a stop string is complete, the text before it is emitted and the stream is over. If
//! several stops are complete in the text seen so far, the one starting earliest wins. Empty
//! stop strings are ignored.

/// What one [`StopMatcher::push`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopOutcome {
    /// Text that is now safe to send; on a stop, the text before the stop string.
    pub emit: String,
    /// A stop string was found; nothing more will be emitted.
    pub stopped: bool,
}

/// Finds the first stop string in a text stream.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> StopMatcher {
        let stops = stops.into_iter().filter(|s| !s.is_empty()).collect();
        StopMatcher {
            stops,
            held: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop string has been seen.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stopped {
            return StopOutcome {
                emit: String::new(),
                stopped: true,
            };
        }
        self.held.push_str(text);
        if let Some(at) = self.earliest_stop() {
            self.stopped = true;
            let mut emit = std::mem::take(&mut self.held);
            emit.truncate(at);
            return StopOutcome {
                emit,
                stopped: true,
            };
        }
        let keep_from = self.partial_stop_start();
        let emit = self.held[..keep_from].to_string();
        self.held.drain(..keep_from);
        StopOutcome {
            emit,
            stopped: false,
        }
    }

    /// End of stream without a stop: returns the held-back text (empty after a stop).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Byte offset of the earliest complete stop string in the held text.
    fn earliest_stop(&self) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min()
    }

    /// Start of the longest suffix of the held text that is a proper prefix of some stop, or
    /// the held text's length when there is none.
    fn partial_stop_start(&self) -> usize {
        let longest_stop = self.stops.iter().map(String::len).max().unwrap_or(0);
        let earliest_start = self
            .held
            .len()
            .saturating_sub(longest_stop.saturating_sub(1));
        self.held
            .char_indices()
            .map(|(i, _)| i)
            .filter(|&i| i >= earliest_start)
            .find(|&i| {
                let suffix = &self.held[i..];
                self.stops
                    .iter()
                    .any(|stop| stop.len() > suffix.len() && stop.starts_with(suffix))
            })
            .unwrap_or(self.held.len())
    }
}
