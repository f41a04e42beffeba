//! GGUF files: metadata and tensors over a shared, read-only memory map.
//!
//! [`GgufFile`] is cheap to clone (an `Arc` inside), so weights built from its tensors can keep the
//! mapping alive without copying it and be stored in long-lived, `'static + Send + Sync` structs.

mod parse;
mod value;
#[doc(hidden)]
pub mod write;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

pub use parse::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};
pub use value::MetaValue;

use crate::quant::GgmlType;
use crate::Error;

/// The bytes of a GGUF file: a read-only memory map, or an owned buffer (tests, fuzzing).
pub(crate) enum Backing {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// Where and what one tensor is. `dims[0]` is the innermost (contiguous) dimension, as in ggml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub dtype: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (validated not to overflow when the file was opened).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// Size of the tensor's data in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.dtype.bytes_for(self.n_elements()).unwrap_or(u64::MAX)
    }
}

/// A tensor's description and its bytes, borrowed from a [`GgufFile`].
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    pub info: &'a TensorInfo,
    /// Exactly [`TensorInfo::size_bytes`] bytes.
    pub data: &'a [u8],
    file: &'a GgufFile,
}

impl<'a> TensorView<'a> {
    /// The file the tensor lives in (clone it to keep the bytes alive).
    pub fn file(&self) -> &'a GgufFile {
        self.file
    }

    /// Byte range of [`TensorView::data`] within the whole file.
    pub(crate) fn file_range(&self) -> std::ops::Range<usize> {
        let start = self.file.inner.data_start as usize + self.info.offset as usize;
        start..start + self.data.len()
    }

    /// Describes rows `rows` of this 2-D tensor as a tensor of its own named `name` (a part of a
    /// fused weight, such as the Q rows of `attn_qkv`); [`TensorView::narrow`] views it.
    /// `None` if the tensor is not 2-D or the rows are out of range.
    pub(crate) fn rows_info(&self, name: String, rows: std::ops::Range<u64>) -> Option<TensorInfo> {
        let &[cols, n_rows] = self.info.dims.as_slice() else {
            return None;
        };
        if rows.start > rows.end || rows.end > n_rows {
            return None;
        }
        let row_bytes = self.info.dtype.bytes_for(cols)?;
        Some(TensorInfo {
            name,
            dims: vec![cols, rows.end - rows.start],
            dtype: self.info.dtype,
            offset: self.info.offset + rows.start * row_bytes,
        })
    }

    /// The bytes of `info`, which must come from [`TensorView::rows_info`] on this view.
    pub(crate) fn narrow<'b>(&'b self, info: &'b TensorInfo) -> TensorView<'b> {
        let start = (info.offset - self.info.offset) as usize;
        TensorView {
            info,
            data: &self.data[start..start + info.size_bytes() as usize],
            file: self.file,
        }
    }
}

impl std::fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorView")
            .field("info", self.info)
            .field("data_len", &self.data.len())
            .finish()
    }
}

struct Inner {
    bytes: Arc<Backing>,
    version: u32,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    alignment: u64,
    data_start: u64,
}

/// A parsed, validated GGUF v2/v3 file. Cloning shares the bytes and the parsed header.
#[derive(Clone)]
pub struct GgufFile {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.inner.version)
            .field("metadata_keys", &self.inner.metadata.len())
            .field("tensors", &self.inner.tensors.len())
            .field("alignment", &self.inner.alignment)
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses the file at `path`.
    pub fn open(path: &Path) -> Result<GgufFile, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; like every mmap-based reader we rely on the model file not
        // being truncated or rewritten while it is served.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::from_backing(Backing::Mapped(map))
    }

    /// Parses an in-memory image (tests and fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, Error> {
        Self::from_backing(Backing::Owned(bytes))
    }

    fn from_backing(bytes: Backing) -> Result<GgufFile, Error> {
        let parsed = parse::parse(&bytes)?;
        let by_name = parsed
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            inner: Arc::new(Inner {
                bytes: Arc::new(bytes),
                version: parsed.version,
                metadata: parsed.metadata,
                tensors: parsed.tensors,
                by_name,
                alignment: parsed.alignment,
                data_start: parsed.data_start,
            }),
        })
    }

    pub fn version(&self) -> u32 {
        self.inner.version
    }

    /// Alignment of the data section and tensor offsets (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.inner.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_start(&self) -> u64 {
        self.inner.data_start
    }

    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.inner.metadata
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.inner.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&MetaValue, Error> {
        self.get(key).ok_or_else(|| Error::MissingKey {
            key: key.to_string(),
        })
    }

    fn wrong_type(key: &str, expected: &'static str, found: &MetaValue) -> Error {
        Error::WrongType {
            key: key.to_string(),
            expected,
            found: found.type_name().to_string(),
        }
    }

    /// An integer value of any width or signedness that fits in u32.
    pub fn get_u32(&self, key: &str) -> Result<u32, Error> {
        let v = self.require(key)?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| Self::wrong_type(key, "integer in u32 range", v))
    }

    /// An f32 or f64 value.
    pub fn get_f32(&self, key: &str) -> Result<f32, Error> {
        let v = self.require(key)?;
        match v {
            MetaValue::F32(x) => Ok(*x),
            MetaValue::F64(x) => Ok(*x as f32),
            _ => Err(Self::wrong_type(key, "float", v)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, Error> {
        let v = self.require(key)?;
        match v {
            MetaValue::Bool(b) => Ok(*b),
            _ => Err(Self::wrong_type(key, "bool", v)),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str, Error> {
        let v = self.require(key)?;
        match v {
            MetaValue::Str(s) => Ok(s),
            _ => Err(Self::wrong_type(key, "string", v)),
        }
    }

    /// An array value's elements.
    pub fn get_array(&self, key: &str) -> Result<&[MetaValue], Error> {
        let v = self.require(key)?;
        match v {
            MetaValue::Array(items) => Ok(items),
            _ => Err(Self::wrong_type(key, "array", v)),
        }
    }

    /// An array of strings.
    pub fn get_string_array(&self, key: &str) -> Result<Vec<String>, Error> {
        self.get_array(key)?
            .iter()
            .map(|item| match item {
                MetaValue::Str(s) => Ok(s.clone()),
                other => Err(Self::wrong_type(key, "array of strings", other)),
            })
            .collect()
    }

    /// An array of integers that each fit in i32.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>, Error> {
        self.get_array(key)?
            .iter()
            .map(|item| {
                item.as_i64()
                    .and_then(|x| i32::try_from(x).ok())
                    .ok_or_else(|| Self::wrong_type(key, "array of integers in i32 range", item))
            })
            .collect()
    }

    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.inner.tensors
    }

    /// The named tensor and its bytes.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>, Error> {
        let &index = self
            .inner
            .by_name
            .get(name)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
            })?;
        let info = &self.inner.tensors[index];
        let start = (self.inner.data_start + info.offset) as usize;
        // Bounds were validated at parse time.
        let data = &self.inner.bytes[start..start + info.size_bytes() as usize];
        Ok(TensorView {
            info,
            data,
            file: self,
        })
    }

    /// The shared bytes of the whole file (kept alive by weights built from it).
    pub(crate) fn backing(&self) -> &Arc<Backing> {
        &self.inner.bytes
    }
}
