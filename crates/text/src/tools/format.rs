//! What a tool-call format tells the state machine in [`super::stream`].
//!
//! The machine finds a marker in the text (`<tool_call>`, `[TOOL_CALLS]`, …), then hands the
//! format the markup from that marker on, growing by each delta, until the format decides.

use super::tool_set::ToolSet;

/// A call as the format found it, before the machine checks its name and gives it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawCall {
    pub name: String,
    /// A JSON object, as text.
    pub arguments: String,
    /// An id the model wrote itself (Mistral's `[CALL_ID]`), if any.
    pub id: Option<String>,
}

/// A format's verdict on the markup seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Undecided: the markup may still become calls.
    NeedMore,
    /// The first `consumed` bytes of the markup are these calls.
    Calls {
        consumed: usize,
        calls: Vec<RawCall>,
    },
    /// The first `consumed` bytes (at least the marker) are not a call: they are content.
    NotACall { consumed: usize },
}

/// One model family's markup.
///
/// Contract: between [`Format::begin`] calls, `scan` sees the same markup growing (each call's
/// text extends the previous one), so a format may keep how far it has scanned. With
/// `at_end`, no more text will come and the answer must not be [`Scan::NeedMore`].
pub(crate) trait Format: Send {
    /// Markers that open markup anywhere in the output.
    fn markers(&self) -> &'static [&'static str];

    /// Markers that open markup only at the very start of the output (after whitespace).
    fn output_start_markers(&self) -> &'static [&'static str] {
        &[]
    }

    /// New markup starts; forget any progress.
    fn begin(&mut self);

    fn scan(&mut self, markup: &str, at_end: bool, tools: &ToolSet) -> Scan;
}

/// Byte length of the whitespace at the start of `text`.
pub(crate) fn leading_ws(text: &str) -> usize {
    text.len() - text.trim_start().len()
}
