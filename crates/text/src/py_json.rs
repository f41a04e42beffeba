//! The `tojson` filter as Hugging Face's template environment defines it: Python's
//! `json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=sort_keys)`.
//!
//! minijinja's own `tojson` escapes `<`, `>`, `&` and `'` for HTML and uses compact separators;
//! tool-calling templates would then render different text from transformers. Python's layout:
//! without indent, items are joined by ", " and keys by ": "; with indent n, each item goes on
//! its own line indented n spaces per level, items joined by ",", keys by ": ", and empty
//! containers stay "[]" / "{}".

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

/// `value | tojson`, `value | tojson(indent=2)`, `value | tojson(2)`, `tojson(sort_keys=true)`.
pub(crate) fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match kwargs.get::<Option<Value>>("indent")?.or(indent) {
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson indent must be a non-negative integer",
                    )
                })?,
        ),
        None => None,
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    // Python accepts these too; their defaults are what we implement.
    let _: Option<Value> = kwargs.get("ensure_ascii")?;
    let _: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    let layout = Layout { indent, sort_keys };
    layout.write(value, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

struct Layout {
    indent: Option<usize>,
    sort_keys: bool,
}

impl Layout {
    fn write(&self, value: &Value, depth: usize, out: &mut String) -> Result<(), Error> {
        match value.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => write_number(value, out),
            ValueKind::String => write_string(value.as_str().unwrap_or_default(), out),
            ValueKind::Map => {
                let mut keys: Vec<Value> = value.try_iter()?.collect();
                if self.sort_keys {
                    keys.sort();
                }
                let mut items = Vec::with_capacity(keys.len());
                for key in keys {
                    let mut item = String::new();
                    match key.as_str() {
                        Some(k) => write_string(k, &mut item),
                        None => write_string(&key.to_string(), &mut item),
                    }
                    item.push_str(": ");
                    self.write(&value.get_item(&key)?, depth + 1, &mut item)?;
                    items.push(item);
                }
                self.write_container(('{', '}'), items, depth, out);
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let mut items = Vec::new();
                for element in value.try_iter()? {
                    let mut item = String::new();
                    self.write(&element, depth + 1, &mut item)?;
                    items.push(item);
                }
                self.write_container(('[', ']'), items, depth, out);
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson cannot serialize a value of kind {}", value.kind()),
                ))
            }
        }
        Ok(())
    }

    fn write_container(
        &self,
        (open, close): (char, char),
        items: Vec<String>,
        depth: usize,
        out: &mut String,
    ) {
        out.push(open);
        if !items.is_empty() {
            match self.indent {
                None => out.push_str(&items.join(", ")),
                Some(n) => {
                    let inner = format!("\n{}", " ".repeat(n * (depth + 1)));
                    out.push_str(&inner);
                    out.push_str(&items.join(&format!(",{inner}")));
                    out.push('\n');
                    out.push_str(&" ".repeat(n * depth));
                }
            }
        }
        out.push(close);
    }
}

fn write_number(value: &Value, out: &mut String) {
    if value.is_integer() {
        if let Some(int) = value.as_i64() {
            out.push_str(&int.to_string());
            return;
        }
    }
    let float = f64::try_from(value.clone()).unwrap_or(f64::NAN);
    if float.is_nan() {
        out.push_str("NaN");
    } else if float.is_infinite() {
        out.push_str(if float > 0.0 { "Infinity" } else { "-Infinity" });
    } else if float.fract() == 0.0 && float.abs() < 1e16 {
        out.push_str(&format!("{float:.1}"));
    } else {
        out.push_str(&float.to_string());
    }
}

fn write_string(text: &str, out: &mut String) {
    // serde_json escapes exactly what Python does with ensure_ascii=False: quote, backslash and
    // control characters (\n, \t, ... or \u00XX).
    out.push_str(&serde_json::to_string(text).expect("invariant: serializing a str cannot fail"));
}

#[cfg(test)]
mod tests {
    use minijinja::Environment;

    fn render(source: &str) -> String {
        let mut env = Environment::new();
        env.add_filter("tojson", super::tojson);
        env.render_str(source, minijinja::context! {})
            .expect("renders")
    }

    #[test]
    fn compact_layout_matches_python_json_dumps() {
        let got = render(
            r#"{{ {"name": "get_weather", "args": {"city": "Paris <FR> & 'x'", "n": 3, "f": 1.5, "g": 2.0, "ok": true}, "l": [], "z": none} | tojson }}"#,
        );
        assert_eq!(
            got,
            r#"{"name": "get_weather", "args": {"city": "Paris <FR> & 'x'", "n": 3, "f": 1.5, "g": 2.0, "ok": true}, "l": [], "z": null}"#
        );
    }

    #[test]
    fn indent_and_sort_keys() {
        let got = render(r#"{{ {"b": [1, "é\n"], "a": {}} | tojson(indent=2, sort_keys=true) }}"#);
        assert_eq!(
            got,
            "{\n  \"a\": {},\n  \"b\": [\n    1,\n    \"é\\n\"\n  ]\n}"
        );
    }
}
