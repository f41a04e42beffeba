//! Finds where a bracketed value (JSON, or a Python literal) ends, incrementally.
//!
//! The scanner is fed a growing text and resumes where it stopped, so a value streamed one
//! character at a time costs linear time. It tracks brackets (`[]`, `{}`, `()`), strings
//! (JSON `"`; Python also `'`) and escapes; it does not validate the value, the parser that
//! reads the completed text does.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bracketed {
    /// The value is not closed yet.
    Open,
    /// The value ends just before this byte offset.
    Closed(usize),
    /// The text cannot be a bracketed value (a stray or mismatched closer, or it does not
    /// start with an opener).
    Broken,
}

#[derive(Debug, Clone)]
pub(crate) struct BracketScanner {
    python: bool,
    pos: usize,
    stack: Vec<u8>,
    quote: Option<u8>,
    escaped: bool,
}

impl BracketScanner {
    /// `python`: single-quoted strings count as strings too.
    pub fn new(python: bool) -> BracketScanner {
        BracketScanner {
            python,
            pos: 0,
            stack: Vec::new(),
            quote: None,
            escaped: false,
        }
    }

    /// Scans `text` (the same text as before, possibly longer) from where the last call
    /// stopped. `text` must start with the value's opening bracket.
    pub fn advance(&mut self, text: &str) -> Bracketed {
        let bytes = text.as_bytes();
        while self.pos < bytes.len() {
            let byte = bytes[self.pos];
            self.pos += 1;
            if let Some(quote) = self.quote {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == quote {
                    self.quote = None;
                }
                continue;
            }
            match byte {
                b'"' => self.quote = Some(byte),
                b'\'' if self.python => self.quote = Some(byte),
                b'[' | b'{' | b'(' => self.stack.push(byte),
                b']' | b'}' | b')' => {
                    let opener = match byte {
                        b']' => b'[',
                        b'}' => b'{',
                        _ => b'(',
                    };
                    if self.stack.pop() != Some(opener) {
                        return Bracketed::Broken;
                    }
                    if self.stack.is_empty() {
                        return Bracketed::Closed(self.pos);
                    }
                }
                _ if self.stack.is_empty() => return Bracketed::Broken,
                _ => {}
            }
        }
        Bracketed::Open
    }
}

#[cfg(test)]
mod tests {
    use super::{BracketScanner, Bracketed};

    #[test]
    fn closes_after_nested_value_with_brackets_in_strings() {
        let text = r#"{"a": ["}", {"b": "\"]"}]} tail"#;
        let mut scanner = BracketScanner::new(false);
        assert_eq!(scanner.advance(&text[..10]), Bracketed::Open);
        assert_eq!(scanner.advance(text), Bracketed::Closed(text.len() - 5));
    }

    #[test]
    fn python_quotes_and_mismatch() {
        let mut scanner = BracketScanner::new(true);
        assert_eq!(scanner.advance("[f(a=')')]"), Bracketed::Closed(10));
        let mut scanner = BracketScanner::new(false);
        assert_eq!(scanner.advance("[1}"), Bracketed::Broken);
        let mut scanner = BracketScanner::new(false);
        assert_eq!(scanner.advance("x"), Bracketed::Broken);
    }
}
