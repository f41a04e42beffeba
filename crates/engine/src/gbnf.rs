//! llama.cpp GBNF grammars, translated to llguidance's Lark dialect.
//!
//! GBNF: `name ::= body` rules (`root` is the start), `"literals"` with `\n \t \r \\ \" \xHH
//! \uHHHH \UHHHHHHHH` escapes, `[character classes]`, `.` (any character), `( )`, `|`, `* + ?`,
//! `{m}` `{m,}` `{m,n}` and `#` comments. Rule names become `g_…` Lark rules (Lark rule names are
//! lowercase; `-` and capitals are spelled out so distinct names stay distinct), literals become
//! JSON-quoted Lark strings, classes and `.` become regexes. Anything else is an error naming
//! the offending text.

use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Define,
    Literal(String),
    Class(String),
    Any,
    Open,
    Close,
    Bar,
    Repeat(String),
}

/// The Lark grammar for a GBNF grammar, or why it cannot be read.
pub fn to_lark(gbnf: &str) -> Result<String, String> {
    let toks = lex(gbnf)?;
    let mut out = String::from("start: g_root\n");
    let mut defined = HashSet::new();
    let mut used = Vec::new();
    let mut i = 0;
    if toks.is_empty() {
        return Err("gbnf: the grammar is empty".into());
    }
    while i < toks.len() {
        let name = match (&toks[i], toks.get(i + 1)) {
            (Tok::Name(n), Some(Tok::Define)) => n.clone(),
            (t, _) => return Err(format!("gbnf: expected `name ::=` at {t:?}")),
        };
        i += 2;
        if !defined.insert(name.clone()) {
            return Err(format!("gbnf: rule `{name}` is defined twice"));
        }
        out.push_str(&rule_name(&name));
        out.push(':');
        let mut empty_alt = true;
        let mut depth = 0usize;
        while i < toks.len() {
            if depth == 0
                && matches!(
                    (&toks[i], toks.get(i + 1)),
                    (Tok::Name(_), Some(Tok::Define))
                )
            {
                break;
            }
            let piece = match &toks[i] {
                Tok::Name(n) => {
                    used.push(n.clone());
                    rule_name(n)
                }
                Tok::Define => return Err("gbnf: unexpected `::=`".into()),
                Tok::Literal(s) => serde_json::to_string(s).expect("a string serialises"),
                Tok::Class(c) => format!("/[{}]/", c.replace('/', "\\/")),
                Tok::Any => "/(?s:.)/".into(),
                Tok::Open => {
                    depth += 1;
                    empty_alt = true;
                    out.push_str(" (");
                    i += 1;
                    continue;
                }
                Tok::Close => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| format!("gbnf: unbalanced `)` in rule `{name}`"))?;
                    if empty_alt {
                        out.push_str(" \"\"");
                    }
                    empty_alt = false;
                    out.push(')');
                    i += 1;
                    continue;
                }
                Tok::Bar => {
                    if empty_alt {
                        out.push_str(" \"\"");
                    }
                    empty_alt = true;
                    out.push_str(" |");
                    i += 1;
                    continue;
                }
                Tok::Repeat(r) => {
                    if empty_alt {
                        return Err(format!("gbnf: `{r}` follows nothing in rule `{name}`"));
                    }
                    out.push_str(r);
                    i += 1;
                    continue;
                }
            };
            out.push(' ');
            out.push_str(&piece);
            empty_alt = false;
            i += 1;
        }
        if depth != 0 {
            return Err(format!("gbnf: unbalanced `(` in rule `{name}`"));
        }
        if empty_alt {
            out.push_str(" \"\"");
        }
        out.push('\n');
    }
    if !defined.contains("root") {
        return Err("gbnf: the grammar has no `root` rule".into());
    }
    if let Some(missing) = used.iter().find(|n| !defined.contains(*n)) {
        return Err(format!("gbnf: rule `{missing}` is used but not defined"));
    }
    Ok(out)
}

fn rule_name(name: &str) -> String {
    let mut s = String::from("g_");
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' => s.push(c),
            '_' => s.push_str("__"),
            '-' => s.push_str("_h"),
            'A'..='Z' => {
                s.push_str("_u");
                s.push(c.to_ascii_lowercase());
            }
            _ => unreachable!("invariant: names are lexed from [A-Za-z0-9_-]"),
        }
    }
    s
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ':' if chars[i..].starts_with(&[':', ':', '=']) => {
                toks.push(Tok::Define);
                i += 3;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("gbnf: unterminated string literal".into()),
                        Some('"') => break,
                        Some('\\') => {
                            let (ch, used) = escape(&chars[i + 1..])?;
                            s.push(ch);
                            i += 1 + used;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                toks.push(Tok::Literal(s));
            }
            '[' => {
                let mut class = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("gbnf: unterminated character class".into()),
                        Some(']') => break,
                        Some('\\') => {
                            // Regex syntax shares GBNF's escapes; keep them as written.
                            let next = chars
                                .get(i + 1)
                                .ok_or("gbnf: unterminated character class")?;
                            class.push('\\');
                            class.push(*next);
                            i += 2;
                        }
                        Some(&ch) => {
                            if ch == '[' {
                                class.push('\\');
                            }
                            class.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                if class.is_empty() {
                    return Err("gbnf: empty character class".into());
                }
                toks.push(Tok::Class(class));
            }
            '.' => {
                toks.push(Tok::Any);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                toks.push(Tok::Close);
                i += 1;
            }
            '|' => {
                toks.push(Tok::Bar);
                i += 1;
            }
            '*' | '+' | '?' => {
                toks.push(Tok::Repeat(c.to_string()));
                i += 1;
            }
            '{' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or("gbnf: unterminated `{` repetition")?;
                let body: String = chars[i + 1..i + end].iter().collect();
                let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                let ok = !body.is_empty()
                    && body.chars().all(|c| c.is_ascii_digit() || c == ',')
                    && body.matches(',').count() <= 1
                    && !body.starts_with(',');
                if !ok {
                    return Err(format!("gbnf: bad repetition `{{{body}}}`"));
                }
                toks.push(Tok::Repeat(format!("{{{body}}}")));
                i += end + 1;
            }
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '-' || chars[i] == '_')
                {
                    i += 1;
                }
                toks.push(Tok::Name(chars[start..i].iter().collect()));
            }
            other => return Err(format!("gbnf: unexpected character {other:?}")),
        }
    }
    Ok(toks)
}

/// One escape after a backslash in a literal: the character and how many chars it used.
fn escape(rest: &[char]) -> Result<(char, usize), String> {
    let hex = |n: usize| -> Result<(char, usize), String> {
        let digits: String = rest
            .get(1..1 + n)
            .ok_or("gbnf: short escape")?
            .iter()
            .collect();
        let code = u32::from_str_radix(&digits, 16)
            .map_err(|_| format!("gbnf: bad escape digits {digits:?}"))?;
        let ch =
            char::from_u32(code).ok_or(format!("gbnf: escape {code:#x} is not a character"))?;
        Ok((ch, 1 + n))
    };
    match rest.first() {
        Some('n') => Ok(('\n', 1)),
        Some('t') => Ok(('\t', 1)),
        Some('r') => Ok(('\r', 1)),
        Some('\\') => Ok(('\\', 1)),
        Some('"') => Ok(('"', 1)),
        Some('[') => Ok(('[', 1)),
        Some(']') => Ok((']', 1)),
        Some('x') => hex(2),
        Some('u') => hex(4),
        Some('U') => hex(8),
        Some(c) => Err(format!("gbnf: unknown escape \\{c}")),
        None => Err("gbnf: unterminated escape".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_rules_literals_classes_and_repetition() {
        let lark = to_lark(
            "# yes or no, then digits\nroot ::= answer \" \" num-list\nanswer ::= (\"yes\" | \"no\")\nnum-list ::= [0-9]{1,3} (\",\" [0-9]+)*\n",
        )
        .unwrap();
        assert_eq!(
            lark,
            "start: g_root\ng_root: g_answer \" \" g_num_hlist\ng_answer: ( \"yes\" | \"no\")\ng_num_hlist: /[0-9]/{1,3} ( \",\" /[0-9]/+)*\n"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(to_lark("root ::= missing").unwrap_err().contains("missing"));
        assert!(to_lark("other ::= \"x\"").unwrap_err().contains("root"));
        assert!(to_lark("root ::= (\"x\"")
            .unwrap_err()
            .contains("unbalanced"));
        assert!(to_lark("root ::= \"x")
            .unwrap_err()
            .contains("unterminated"));
        assert!(to_lark("root ::= \"\\q\"").unwrap_err().contains("escape"));
        assert!(to_lark("").unwrap_err().contains("empty"));
    }

    #[test]
    fn escapes_and_empty_alternatives() {
        let lark = to_lark("root ::= \"a\\n\\x41\\u00e9\" | ").unwrap();
        assert_eq!(lark, "start: g_root\ng_root: \"a\\nAé\" | \"\"\n");
    }
}
