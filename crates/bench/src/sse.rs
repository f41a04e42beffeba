//! An incremental server-sent-events decoder: feed it the body's byte chunks as they arrive and
//! it yields the `data` of each complete event. Comments (`: keep-alive`) and other fields are
//! skipped; `\n` and `\r\n` line endings are accepted; multi-line data is joined with `\n`.

/// Decoder state between chunks.
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
    data: Option<String>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `bytes`; pushes the data of every event they complete onto `events`.
    pub fn push(&mut self, bytes: &[u8], events: &mut Vec<String>) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.pending[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, events);
            start = end + 1;
        }
        self.pending.drain(..start);
    }

    /// Ends the stream: an event not closed by a blank line is still delivered.
    pub fn finish(&mut self, events: &mut Vec<String>) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            let line = String::from_utf8_lossy(&rest)
                .trim_end_matches('\r')
                .to_string();
            self.line(&line, events);
        }
        if let Some(data) = self.data.take() {
            events.push(data);
        }
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                events.push(data);
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        d.push(b"data: {\"a\":", &mut out);
        assert!(out.is_empty());
        d.push(b"1}\r\n\r\n: keep-alive\n\ndata:x\ndata: y\n", &mut out);
        assert_eq!(out, vec!["{\"a\":1}".to_string()]);
        d.push(b"\nevent: ping\ndata: [DONE]\n\n", &mut out);
        assert_eq!(out, vec!["{\"a\":1}", "x\ny", "[DONE]"]);
    }

    #[test]
    fn unterminated_last_event_is_delivered_at_finish() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        d.push("data: é".as_bytes(), &mut out);
        assert!(out.is_empty());
        d.finish(&mut out);
        assert_eq!(out, vec!["é".to_string()]);
    }
}
