//! Python literals and call lists, read into JSON text.
//!
//! Literals: strings (`'…'`, `"…"`, with Python's escapes), integers and floats (`_` allowed),
//! `True`, `False`, `None`, lists, tuples (→ arrays), dicts (keys that are not strings become
//! their JSON text as a string). Calls: `name(key=literal, …)` with a dotted name and keyword
//! arguments only; positional arguments are not a call. Output keeps the input's order.

use super::format::RawCall;

/// A complete literal (and nothing else but whitespace) as JSON text.
pub(crate) fn to_json(text: &str) -> Option<String> {
    let mut reader = Reader { text, pos: 0 };
    let json = reader.literal()?;
    reader.skip_ws();
    reader.at_end().then_some(json)
}

/// `[call, call, …]` (and nothing else but whitespace) as calls; `None` when it is anything
/// else or empty.
pub(crate) fn calls_from_list(text: &str) -> Option<Vec<RawCall>> {
    let mut reader = Reader { text, pos: 0 };
    reader.skip_ws();
    reader.expect('[')?;
    let mut calls = Vec::new();
    loop {
        reader.skip_ws();
        if reader.eat(']') {
            break;
        }
        calls.push(reader.call()?);
        reader.skip_ws();
        if !reader.eat(',') {
            reader.skip_ws();
            reader.expect(']')?;
            break;
        }
    }
    reader.skip_ws();
    (reader.at_end() && !calls.is_empty()).then_some(calls)
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Option<()> {
        self.eat(c).then_some(())
    }

    fn identifier(&mut self) -> Option<&str> {
        let start = self.pos;
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        let ident = &rest[..len];
        if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return None;
        }
        self.pos = start + len;
        Some(&self.text[start..start + len])
    }

    fn call(&mut self) -> Option<RawCall> {
        let name = self.identifier()?.to_string();
        self.skip_ws();
        self.expect('(')?;
        let mut arguments = String::from("{");
        let mut keys: Vec<String> = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(')') {
                break;
            }
            let key = self.identifier()?.to_string();
            if keys.contains(&key) {
                return None;
            }
            self.skip_ws();
            self.expect('=')?;
            self.skip_ws();
            let value = self.literal()?;
            if !keys.is_empty() {
                arguments.push(',');
            }
            arguments.push_str(&json_string(&key));
            arguments.push(':');
            arguments.push_str(&value);
            keys.push(key);
            self.skip_ws();
            if !self.eat(',') {
                self.skip_ws();
                self.expect(')')?;
                break;
            }
        }
        arguments.push('}');
        Some(RawCall {
            name,
            arguments,
            id: None,
        })
    }

    fn literal(&mut self) -> Option<String> {
        self.skip_ws();
        match self.peek()? {
            '\'' | '"' => self.string().map(|s| json_string(&s)),
            '[' => self.sequence('[', ']'),
            '(' => self.sequence('(', ')'),
            '{' => self.dict(),
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            _ => {
                let word = self.identifier()?;
                match word {
                    "True" | "true" => Some("true".to_string()),
                    "False" | "false" => Some("false".to_string()),
                    "None" | "null" => Some("null".to_string()),
                    _ => None,
                }
            }
        }
    }

    fn sequence(&mut self, open: char, close: char) -> Option<String> {
        self.expect(open)?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(close) {
                break;
            }
            items.push(self.literal()?);
            self.skip_ws();
            if !self.eat(',') {
                self.skip_ws();
                self.expect(close)?;
                break;
            }
        }
        Some(format!("[{}]", items.join(",")))
    }

    fn dict(&mut self) -> Option<String> {
        self.expect('{')?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.eat('}') {
                break;
            }
            let key = if matches!(self.peek(), Some('\'' | '"')) {
                self.string()?
            } else {
                self.literal()?
            };
            self.skip_ws();
            self.expect(':')?;
            let value = self.literal()?;
            items.push(format!("{}:{value}", json_string(&key)));
            self.skip_ws();
            if !self.eat(',') {
                self.skip_ws();
                self.expect('}')?;
                break;
            }
        }
        Some(format!("{{{}}}", items.join(",")))
    }

    fn number(&mut self) -> Option<String> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(i, c)| {
                let sign_ok = (c == '-' || c == '+') && (i == 0 || rest[..i].ends_with(['e', 'E']));
                !(c.is_ascii_digit() || matches!(c, '.' | '_' | 'e' | 'E') || sign_ok)
            })
            .map_or(rest.len(), |(i, _)| i);
        let token: String = rest[..len].chars().filter(|&c| c != '_').collect();
        self.pos += len;
        let token = token.strip_prefix('+').unwrap_or(&token);
        if let Ok(int) = token.parse::<i64>() {
            return Some(int.to_string());
        }
        if serde_json::from_str::<serde_json::Number>(token).is_ok() {
            return Some(token.to_string());
        }
        let float: f64 = token.parse().ok()?;
        serde_json::Number::from_f64(float).map(|n| n.to_string())
    }

    /// A quoted string with Python's escapes, decoded.
    fn string(&mut self) -> Option<String> {
        let quote = self.peek()?;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + 1;
                return Some(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let (_, escaped) = chars.next()?;
            match escaped {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                '\\' | '\'' | '"' => out.push(escaped),
                '\n' => {}
                'x' | 'u' | 'U' => {
                    let digits = match escaped {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = (0..digits)
                        .filter_map(|_| chars.next())
                        .map(|(_, c)| c)
                        .collect();
                    let code = u32::from_str_radix(&hex, 16).ok()?;
                    out.push(char::from_u32(code)?);
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
        None
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("invariant: serializing a str cannot fail")
}

#[cfg(test)]
mod tests {
    use super::{calls_from_list, to_json};

    #[test]
    fn literals_become_json() {
        assert_eq!(
            to_json(r#"{'a': [1, -2.5e3, True, None], "b": ('x\'y', "é\n"), 3: 1_000}"#).as_deref(),
            Some(r#"{"a":[1,-2.5e3,true,null],"b":["x'y","é\n"],"3":1000}"#)
        );
        assert_eq!(to_json("[1, 2"), None);
        assert_eq!(to_json("x"), None);
    }

    #[test]
    fn call_lists() {
        let calls = calls_from_list(r#"[get_weather(city="Paris", days=3), ns.ping()]"#)
            .expect("two calls");
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, r#"{"city":"Paris","days":3}"#);
        assert_eq!(calls[1].name, "ns.ping");
        assert_eq!(calls[1].arguments, "{}");
        assert_eq!(calls_from_list("[f(1)]"), None, "positional arguments");
        assert_eq!(calls_from_list("[]"), None);
        assert_eq!(calls_from_list("[1, 2]"), None);
    }
}
