//! A minimal GGUF writer for tests, fuzz seeds and tiny synthetic models. Not a stable API.
//!
//! It writes exactly what it is given (including invalid type ids, offsets or dims) so tests can
//! build malformed files on purpose.

use super::MetaValue;
use crate::quant::GgmlType;

/// One tensor to write.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub name: String,
    pub dims: Vec<u64>,
    pub type_id: u32,
    /// Offset in the data section; `None` places it after the previous tensor, aligned.
    pub offset: Option<u64>,
    pub data: Vec<u8>,
}

/// Builds a GGUF image in memory.
#[derive(Debug, Clone)]
pub struct GgufBuilder {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<TensorEntry>,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        GgufBuilder {
            version: 3,
            alignment: 32,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

impl GgufBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn kv(mut self, key: &str, value: MetaValue) -> Self {
        if key == super::ALIGNMENT_KEY {
            if let Some(a) = value.as_u64() {
                self.alignment = a;
            }
        }
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor of a known type, laid out after the previous one.
    pub fn tensor(self, name: &str, dims: &[u64], dtype: GgmlType, data: Vec<u8>) -> Self {
        self.tensor_raw(TensorEntry {
            name: name.to_string(),
            dims: dims.to_vec(),
            type_id: dtype.id(),
            offset: None,
            data,
        })
    }

    pub fn tensor_raw(mut self, entry: TensorEntry) -> Self {
        self.tensors.push(entry);
        self
    }

    /// The encoded file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let align = self.alignment.max(1);
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut out, key);
            out.extend_from_slice(&value.type_id().to_le_bytes());
            put_value(&mut out, value);
        }
        let mut next = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let offset = t.offset.unwrap_or(next);
            offsets.push(offset);
            next = (offset + t.data.len() as u64).div_ceil(align) * align;
            put_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let data_start = (out.len() as u64).div_ceil(align) * align;
        out.resize(data_start as usize, 0);
        for (t, offset) in self.tensors.iter().zip(offsets) {
            let at = (data_start + offset) as usize;
            if out.len() < at + t.data.len() {
                out.resize(at + t.data.len(), 0);
            }
            out[at..at + t.data.len()].copy_from_slice(&t.data);
        }
        out
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes a value without its type tag. An array takes its element type from its first element
/// (u8 when empty); mixed-type arrays are written as given and will not round-trip.
pub fn put_value(out: &mut Vec<u8>, value: &MetaValue) {
    match value {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::Str(s) => put_string(out, s),
        MetaValue::Array(items) => {
            let elem = items.first().map_or(0, MetaValue::type_id);
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}
