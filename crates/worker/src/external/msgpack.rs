//! A small MessagePack decoder (the whole format, every integer width), enough to read KV-event
//! batches without a dependency.

/// A decoded MessagePack value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    /// Every integer (unsigned up to u64, negative down to i64::MIN).
    Int(i128),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Ext(i8, Vec<u8>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value under string key `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Why bytes are not MessagePack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("reserved byte 0xc1 at {0}")]
    Reserved(usize),
    #[error("invalid UTF-8 in a string at {0}")]
    Utf8(usize),
    #[error("nested deeper than {0}")]
    TooDeep(usize),
    #[error("{0} bytes left after the value")]
    Trailing(usize),
}

const MAX_DEPTH: usize = 64;

/// Decodes exactly one value from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - r.pos));
    }
    Ok(v)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(DecodeError::Truncated(self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn sint(&mut self, n: usize) -> Result<i64, DecodeError> {
        let u = self.uint(n)?;
        let shift = 64 - 8 * n as u32;
        Ok(((u << shift) as i64) >> shift)
    }

    fn str(&mut self, n: usize) -> Result<Value, DecodeError> {
        let at = self.pos;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(|s| Value::Str(s.to_string()))
            .map_err(|_| DecodeError::Utf8(at))
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        // Each element takes at least one byte: a corrupt length cannot allocate much.
        let mut items = Vec::with_capacity(n.min(self.bytes.len() - self.pos));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut items = Vec::with_capacity(n.min((self.bytes.len() - self.pos) / 2));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            items.push((k, v));
        }
        Ok(Value::Map(items))
    }

    fn ext(&mut self, n: usize) -> Result<Value, DecodeError> {
        let t = self.take(1)?[0] as i8;
        Ok(Value::Ext(t, self.take(n)?.to_vec()))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep(MAX_DEPTH));
        }
        let at = self.pos;
        let b = self.take(1)?[0];
        Ok(match b {
            0x00..=0x7f => Value::Int(i128::from(b)),
            0x80..=0x8f => return self.map(usize::from(b & 0x0f), depth),
            0x90..=0x9f => return self.array(usize::from(b & 0x0f), depth),
            0xa0..=0xbf => return self.str(usize::from(b & 0x1f)),
            0xc0 => Value::Nil,
            0xc1 => return Err(DecodeError::Reserved(at)),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.uint(1 << (b - 0xc4))? as usize;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (b - 0xc7))? as usize;
                return self.ext(n);
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.uint(8)?)),
            0xcc..=0xcf => Value::Int(i128::from(self.uint(1 << (b - 0xcc))?)),
            0xd0..=0xd3 => Value::Int(i128::from(self.sint(1 << (b - 0xd0))?)),
            0xd4..=0xd8 => return self.ext(1 << (b - 0xd4)),
            0xd9..=0xdb => {
                let n = self.uint(1 << (b - 0xd9))? as usize;
                return self.str(n);
            }
            0xdc | 0xdd => {
                let n = self.uint(2 << (b - 0xdc))? as usize;
                return self.array(n, depth);
            }
            0xde | 0xdf => {
                let n = self.uint(2 << (b - 0xde))? as usize;
                return self.map(n, depth);
            }
            0xe0..=0xff => Value::Int(i128::from(b as i8)),
        })
    }
}

/// A MessagePack encoder for tests and scripted publishers (smallest encodings, as msgspec
/// writes them).
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => {
            let i = *i;
            if (0..=0x7f).contains(&i) {
                out.push(i as u8);
            } else if (-32..0).contains(&i) {
                out.push(i as i8 as u8);
            } else if i >= 0 {
                let u = i as u64;
                if u <= 0xff {
                    out.extend([0xcc, u as u8]);
                } else if u <= 0xffff {
                    out.push(0xcd);
                    out.extend((u as u16).to_be_bytes());
                } else if u <= 0xffff_ffff {
                    out.push(0xce);
                    out.extend((u as u32).to_be_bytes());
                } else {
                    out.push(0xcf);
                    out.extend(u.to_be_bytes());
                }
            } else if i >= -128 {
                out.extend([0xd0, i as i8 as u8]);
            } else if i >= -32768 {
                out.push(0xd1);
                out.extend((i as i16).to_be_bytes());
            } else if i >= i128::from(i32::MIN) {
                out.push(0xd2);
                out.extend((i as i32).to_be_bytes());
            } else {
                out.push(0xd3);
                out.extend((i as i64).to_be_bytes());
            }
        }
        Value::Float(f) => {
            out.push(0xcb);
            out.extend(f.to_bits().to_be_bytes());
        }
        Value::Str(s) => {
            let n = s.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else if n <= 0xff {
                out.extend([0xd9, n as u8]);
            } else {
                out.push(0xda);
                out.extend((n as u16).to_be_bytes());
            }
            out.extend(s.as_bytes());
        }
        Value::Bin(b) => {
            out.extend([0xc4, b.len() as u8]);
            out.extend(b);
        }
        Value::Array(a) => {
            if a.len() < 16 {
                out.push(0x90 | a.len() as u8);
            } else {
                out.push(0xdc);
                out.extend((a.len() as u16).to_be_bytes());
            }
            for x in a {
                encode(x, out);
            }
        }
        Value::Map(m) => {
            if m.len() < 16 {
                out.push(0x80 | m.len() as u8);
            } else {
                out.push(0xde);
                out.extend((m.len() as u16).to_be_bytes());
            }
            for (k, x) in m {
                encode(k, out);
                encode(x, out);
            }
        }
        Value::Ext(t, d) => {
            out.extend([0xc7, d.len() as u8, *t as u8]);
            out.extend(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_integer_width() {
        let cases: &[(&[u8], i128)] = &[
            (&[0x05], 5),
            (&[0xff], -1),
            (&[0xcc, 0xfe], 254),
            (&[0xcd, 0x59, 0x77], 0x5977),
            (&[0xce, 0, 1, 0, 0], 65536),
            (
                &[0xcf, 0x19, 0xeb, 0x42, 0x64, 0x2e, 0x25, 0x02, 0x8e],
                1867659468513542798,
            ),
            (
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                u64::MAX as i128,
            ),
            (&[0xd0, 0x80], -128),
            (&[0xd1, 0xff, 0x00], -256),
            (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], i64::MIN as i128),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode(bytes).unwrap(), Value::Int(*want), "{bytes:02x?}");
            let mut out = Vec::new();
            encode(&Value::Int(*want), &mut out);
            assert_eq!(decode(&out).unwrap(), Value::Int(*want));
        }
    }

    #[test]
    fn decodes_containers_and_refuses_garbage() {
        let v = decode(&[0x92, 0xa2, b'h', b'i', 0x81, 0xa1, b'k', 0xc0]).unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Str("hi".into()),
                Value::Map(vec![(Value::Str("k".into()), Value::Nil)])
            ])
        );
        assert_eq!(decode(&[0x92, 0x01]), Err(DecodeError::Truncated(2)));
        assert_eq!(decode(&[0xc1]), Err(DecodeError::Reserved(0)));
        assert_eq!(decode(&[0x01, 0x02]), Err(DecodeError::Trailing(1)));
        assert!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[0xa2, 0xff, 0xfe]).is_err());
        let deep = vec![0x91; 200];
        assert!(decode(&deep).is_err());
    }
}
