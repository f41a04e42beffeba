//! Parsing GGUF v2/v3 bytes into metadata and tensor infos, validating every length and offset
//! against the bytes actually present before allocating or slicing.
//!
//! Layout (all little-endian): "GGUF", u32 version, u64 tensor count, u64 kv count; then kv pairs
//! (string key, u32 value type, value); then tensor infos (string name, u32 n_dims, u64 × n_dims
//! dims with dims[0] innermost, u32 ggml type, u64 offset relative to the data section); then
//! padding to `general.alignment` (default 32); then the data section. A string is a u64 byte
//! length followed by UTF-8 bytes; an array is a u32 element type, a u64 count and the elements.

use std::collections::{BTreeMap, HashSet};

use super::{MetaValue, TensorInfo};
use crate::quant::GgmlType;
use crate::Error;

/// GGUF default alignment of the data section and of every tensor offset.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that overrides [`DEFAULT_ALIGNMENT`].
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// How deep arrays of arrays may nest before the file is rejected (guards the stack).
pub const MAX_ARRAY_DEPTH: usize = 8;
/// The most dimensions a ggml tensor has.
pub const MAX_DIMS: u32 = 4;

/// Everything read from the header region; tensor data stays in the caller's buffer.
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_start: u64,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                what,
                offset: self.pos as u64,
                needed: n,
                available: self.remaining(),
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A count of items each at least `min_item_bytes` long, rejected if they cannot fit.
    fn count(&mut self, what: &'static str, min_item_bytes: u64) -> Result<u64, Error> {
        let offset = self.pos as u64;
        let count = self.u64(what)?;
        if count.saturating_mul(min_item_bytes) > self.remaining() {
            return Err(Error::ImplausibleCount {
                what,
                count,
                offset,
                remaining: self.remaining(),
            });
        }
        Ok(count)
    }

    fn string(&mut self, what: &'static str) -> Result<String, Error> {
        let len = self.u64(what)?;
        let offset = self.pos as u64;
        // `take` checks the length against the remaining bytes before anything is allocated.
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::InvalidUtf8 { what, offset })
    }
}

/// Smallest encoded size of one value of GGUF value type `type_id` (used to bound array counts).
fn min_value_bytes(type_id: u32) -> u64 {
    match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => 1,
    }
}

fn read_value(
    cur: &mut Cursor<'_>,
    key: &str,
    type_id: u32,
    depth: usize,
) -> Result<MetaValue, Error> {
    const W: &str = "metadata value";
    Ok(match type_id {
        0 => MetaValue::U8(cur.array::<1>(W)?[0]),
        1 => MetaValue::I8(cur.array::<1>(W)?[0] as i8),
        2 => MetaValue::U16(u16::from_le_bytes(cur.array(W)?)),
        3 => MetaValue::I16(i16::from_le_bytes(cur.array(W)?)),
        4 => MetaValue::U32(u32::from_le_bytes(cur.array(W)?)),
        5 => MetaValue::I32(i32::from_le_bytes(cur.array(W)?)),
        6 => MetaValue::F32(f32::from_le_bytes(cur.array(W)?)),
        7 => MetaValue::Bool(cur.array::<1>(W)?[0] != 0),
        8 => MetaValue::Str(cur.string("metadata string")?),
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(Error::NestingTooDeep {
                    key: key.to_string(),
                    limit: MAX_ARRAY_DEPTH,
                });
            }
            let elem_type = cur.u32("array element type")?;
            if !(0..=12).contains(&elem_type) {
                return Err(Error::UnknownValueType {
                    key: key.to_string(),
                    type_id: elem_type,
                });
            }
            let count = cur.count("array length", min_value_bytes(elem_type))?;
            let mut items = Vec::with_capacity(count as usize);
            for _ in 0..count {
                items.push(read_value(cur, key, elem_type, depth + 1)?);
            }
            MetaValue::Array(items)
        }
        10 => MetaValue::U64(u64::from_le_bytes(cur.array(W)?)),
        11 => MetaValue::I64(i64::from_le_bytes(cur.array(W)?)),
        12 => MetaValue::F64(f64::from_le_bytes(cur.array(W)?)),
        other => {
            return Err(Error::UnknownValueType {
                key: key.to_string(),
                type_id: other,
            })
        }
    })
}

fn alignment_of(metadata: &BTreeMap<String, MetaValue>) -> Result<u64, Error> {
    let Some(value) = metadata.get(ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let alignment = match value.as_u64() {
        Some(a) => a,
        None => {
            return Err(Error::WrongType {
                key: ALIGNMENT_KEY.to_string(),
                expected: "unsigned integer",
                found: value.type_name().to_string(),
            })
        }
    };
    if alignment == 0 || !alignment.is_power_of_two() || alignment > (1 << 30) {
        return Err(Error::BadAlignment { alignment });
    }
    Ok(alignment)
}

fn read_tensor_info(cur: &mut Cursor<'_>) -> Result<TensorInfo, Error> {
    let name = cur.string("tensor name")?;
    let n_dims = cur.u32("tensor dimension count")?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(Error::BadDimCount {
            tensor: name,
            n_dims,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(cur.u64("tensor dimension")?);
    }
    let type_id = cur.u32("tensor type")?;
    let offset = cur.u64("tensor offset")?;
    let Some(dtype) = GgmlType::from_id(type_id) else {
        return Err(Error::UnknownTensorType {
            tensor: name,
            type_id,
        });
    };
    Ok(TensorInfo {
        name,
        dims,
        dtype,
        offset,
    })
}

/// Checks one tensor's geometry and bounds against the data section.
fn validate_tensor(info: &TensorInfo, alignment: u64, data_len: u64) -> Result<(), Error> {
    let n_elements = info
        .dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::DimsOverflow {
            tensor: info.name.clone(),
            dims: info.dims.clone(),
        })?;
    let block = info.dtype.block_size() as u64;
    if !info.dims[0].is_multiple_of(block) {
        return Err(Error::RowNotBlockMultiple {
            tensor: info.name.clone(),
            dtype: info.dtype,
            row_len: info.dims[0],
            block_size: block,
        });
    }
    let size_bytes = info
        .dtype
        .bytes_for(n_elements)
        .ok_or_else(|| Error::DimsOverflow {
            tensor: info.name.clone(),
            dims: info.dims.clone(),
        })?;
    if !info.offset.is_multiple_of(alignment) {
        return Err(Error::MisalignedTensor {
            tensor: info.name.clone(),
            offset: info.offset,
            alignment,
        });
    }
    match info.offset.checked_add(size_bytes) {
        Some(end) if end <= data_len => Ok(()),
        _ => Err(Error::TensorOutOfBounds {
            tensor: info.name.clone(),
            offset: info.offset,
            size_bytes,
            data_len,
        }),
    }
}

/// Parses and validates a whole GGUF image. Never panics on any input.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, Error> {
    let mut cur = Cursor { bytes, pos: 0 };
    let magic: [u8; 4] = cur.array("magic")?;
    if &magic != b"GGUF" {
        return Err(Error::BadMagic { found: magic });
    }
    let version = cur.u32("version")?;
    if version != 2 && version != 3 {
        return Err(Error::UnsupportedVersion { version });
    }
    // Smallest tensor info: empty name (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
    let n_tensors = cur.count("tensor count", 32)?;
    let n_kv = cur.u64("metadata count")?;
    // Smallest kv pair: empty key (8) + type (4) + one-byte value (1).
    if n_kv.saturating_mul(13) > cur.remaining() {
        return Err(Error::ImplausibleCount {
            what: "metadata count",
            count: n_kv,
            offset: 16,
            remaining: cur.remaining(),
        });
    }

    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = cur.string("metadata key")?;
        let type_id = cur.u32("metadata value type")?;
        let value = read_value(&mut cur, &key, type_id, 0)?;
        if metadata.contains_key(&key) {
            return Err(Error::DuplicateKey { key });
        }
        metadata.insert(key, value);
    }
    let alignment = alignment_of(&metadata)?;

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let info = read_tensor_info(&mut cur)?;
        if !names.insert(info.name.clone()) {
            return Err(Error::DuplicateTensor { tensor: info.name });
        }
        tensors.push(info);
    }

    let header_end = cur.pos as u64;
    let data_start = header_end.div_ceil(alignment) * alignment;
    let data_len = (bytes.len() as u64).saturating_sub(data_start);
    for info in &tensors {
        validate_tensor(info, alignment, data_len)?;
    }
    Ok(Parsed {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}
