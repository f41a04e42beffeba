//! Paged key/value storage for attention.
//!
//! For every layer there is one K pool and one V pool, each laid out as
//! `[num_blocks][n_kv_heads][block_size_tokens][head_dim]`. Position `p` of a sequence lives in
//! block `block_table[p / block_size_tokens]`, slot `p % block_size_tokens`. Heads are outside
//! slots because attention reads one K/V head's rows position after position: a block's rows of
//! one head are contiguous (one stream for the hardware prefetcher, not a strided one). Which
//! blocks belong to which sequence is decided elsewhere (the scheduler's block manager): this
//! type only stores rows.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::llama::LlamaConfig;

/// Element type of the stored keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvDtype {
    F32,
    F16,
}

impl KvDtype {
    pub fn size_bytes(self) -> usize {
        match self {
            KvDtype::F32 => 4,
            KvDtype::F16 => 2,
        }
    }
}

#[derive(Debug)]
enum Pool {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl Pool {
    fn zeroed(dtype: KvDtype, len: usize) -> Pool {
        match dtype {
            KvDtype::F32 => Pool::F32(vec![0.0; len]),
            KvDtype::F16 => Pool::F16(vec![f16::ZERO; len]),
        }
    }

    fn write(&mut self, start: usize, row: &[f32]) {
        match self {
            Pool::F32(p) => p[start..start + row.len()].copy_from_slice(row),
            Pool::F16(p) => p[start..start + row.len()].convert_from_f32_slice(row),
        }
    }

    /// The `len` values at `start` as f32: borrowed for F32, converted into `buf` for F16.
    #[inline]
    fn read<'a>(&'a self, start: usize, buf: &'a mut [f32]) -> &'a [f32] {
        let len = buf.len();
        match self {
            Pool::F32(p) => &p[start..start + len],
            Pool::F16(p) => {
                p[start..start + len].convert_to_f32_slice(buf);
                buf
            }
        }
    }

    fn copy_within(&mut self, src: usize, dst: usize, len: usize) {
        match self {
            Pool::F32(p) => p.copy_within(src..src + len, dst),
            Pool::F16(p) => p.copy_within(src..src + len, dst),
        }
    }
}

/// The byte image of one block as [`KvStorage::read_block_bytes`] writes it: for each layer in
/// order, the block's K rows then its V rows, each `[n_kv_heads][block_size_tokens][head_dim]`
/// little-endian elements of `dtype` (the pool layout, so each part is one contiguous copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvBlockShape {
    pub n_layers: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub block_size_tokens: usize,
    pub dtype: KvDtype,
}

impl KvBlockShape {
    /// Bytes of one block's image.
    pub fn block_bytes(&self) -> usize {
        2 * self.n_layers
            * self.n_kv_heads
            * self.block_size_tokens
            * self.head_dim
            * self.dtype.size_bytes()
    }
}

/// Why a block's bytes could not be copied in or out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvBlockAccessError {
    #[error("KV block {block} does not exist (the storage has {num_blocks} blocks)")]
    UnknownBlock { block: u32, num_blocks: usize },
    #[error("KV block image of {got} bytes, expected {expected}")]
    WrongLength { expected: usize, got: usize },
}

impl Pool {
    /// Appends `len` elements at `start` as little-endian bytes.
    fn read_bytes(&self, start: usize, len: usize, out: &mut Vec<u8>) {
        match self {
            Pool::F32(p) => {
                for x in &p[start..start + len] {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            Pool::F16(p) => {
                for x in f16_bits(&p[start..start + len]) {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }

    /// Overwrites the elements from `start` with little-endian `bytes` (whole elements).
    fn write_bytes(&mut self, start: usize, bytes: &[u8]) {
        match self {
            Pool::F32(p) => {
                let n = bytes.len() / 4;
                for (x, b) in p[start..start + n].iter_mut().zip(bytes.chunks_exact(4)) {
                    *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Pool::F16(p) => {
                let n = bytes.len() / 2;
                for (x, b) in p[start..start + n].iter_mut().zip(bytes.chunks_exact(2)) {
                    *x = f16::from_bits(u16::from_le_bytes([b[0], b[1]]));
                }
            }
        }
    }
}

/// `f16` values as their bit patterns (`half::f16` is a transparent `u16`).
fn f16_bits(v: &[f16]) -> &[u16] {
    // SAFETY: f16 is #[repr(transparent)] over u16: same size, alignment and validity.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u16, v.len()) }
}

/// The KV cache memory of one model instance. See the module docs for the layout.
#[derive(Debug)]
pub struct KvStorage {
    k: Vec<Pool>,
    v: Vec<Pool>,
    num_blocks: usize,
    block_size_tokens: usize,
    n_kv_heads: usize,
    head_dim: usize,
    dtype: KvDtype,
}

impl KvStorage {
    /// Zero-filled storage for `num_blocks` blocks of `block_size_tokens` positions each.
    pub fn new(
        cfg: &LlamaConfig,
        num_blocks: usize,
        block_size_tokens: usize,
        dtype: KvDtype,
    ) -> KvStorage {
        let row = cfg.n_kv_heads * cfg.head_dim;
        let len = num_blocks * block_size_tokens * row;
        KvStorage {
            k: (0..cfg.n_layers)
                .map(|_| Pool::zeroed(dtype, len))
                .collect(),
            v: (0..cfg.n_layers)
                .map(|_| Pool::zeroed(dtype, len))
                .collect(),
            num_blocks,
            block_size_tokens,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: cfg.head_dim,
            dtype,
        }
    }

    /// Bytes one block occupies across all layers, K and V together.
    pub fn bytes_per_block(cfg: &LlamaConfig, block_size_tokens: usize, dtype: KvDtype) -> usize {
        2 * cfg.n_layers * block_size_tokens * cfg.n_kv_heads * cfg.head_dim * dtype.size_bytes()
    }

    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    pub fn block_size_tokens(&self) -> usize {
        self.block_size_tokens
    }

    pub fn dtype(&self) -> KvDtype {
        self.dtype
    }

    pub fn n_layers(&self) -> usize {
        self.k.len()
    }

    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The layout of one block's byte image (see [`KvBlockShape`]).
    pub fn block_shape(&self) -> KvBlockShape {
        KvBlockShape {
            n_layers: self.n_layers(),
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            block_size_tokens: self.block_size_tokens,
            dtype: self.dtype,
        }
    }

    /// Appends the byte image of `block` (every layer's K and V, see [`KvBlockShape`]) to `out`.
    pub fn read_block_bytes(
        &self,
        block: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), KvBlockAccessError> {
        let b = self.check_block(block)?;
        let len = self.block_len();
        out.reserve(self.block_shape().block_bytes());
        for (k, v) in self.k.iter().zip(&self.v) {
            k.read_bytes(b * len, len, out);
            v.read_bytes(b * len, len, out);
        }
        Ok(())
    }

    /// Overwrites `block` with a byte image from [`read_block_bytes`](Self::read_block_bytes) of
    /// storage with the same [`KvBlockShape`]. Refused (nothing written) if the length differs.
    pub fn write_block_bytes(
        &mut self,
        block: u32,
        bytes: &[u8],
    ) -> Result<(), KvBlockAccessError> {
        let b = self.check_block(block)?;
        let expected = self.block_shape().block_bytes();
        if bytes.len() != expected {
            return Err(KvBlockAccessError::WrongLength {
                expected,
                got: bytes.len(),
            });
        }
        let len = self.block_len();
        let part = len * self.dtype.size_bytes();
        let layers = self.k.iter_mut().zip(self.v.iter_mut());
        for ((k, v), image) in layers.zip(bytes.chunks_exact(2 * part)) {
            k.write_bytes(b * len, &image[..part]);
            v.write_bytes(b * len, &image[part..]);
        }
        Ok(())
    }

    fn check_block(&self, block: u32) -> Result<usize, KvBlockAccessError> {
        let b = block as usize;
        if b < self.num_blocks {
            Ok(b)
        } else {
            Err(KvBlockAccessError::UnknownBlock {
                block,
                num_blocks: self.num_blocks,
            })
        }
    }

    /// Copies every layer's K and V of block `src` over block `dst` (copy-on-write for shared
    /// prefixes). Panics if either id is `>= num_blocks()`; `src == dst` is a no-op.
    pub fn copy_block(&mut self, src: u32, dst: u32) {
        let (src, dst) = (src as usize, dst as usize);
        assert!(
            src < self.num_blocks && dst < self.num_blocks,
            "copy_block({src}, {dst}) with {} blocks",
            self.num_blocks
        );
        if src == dst {
            return;
        }
        let len = self.block_len();
        for pool in self.k.iter_mut().chain(self.v.iter_mut()) {
            pool.copy_within(src * len, dst * len, len);
        }
    }

    /// Elements in one block of one layer's K (or V) pool.
    fn block_len(&self) -> usize {
        self.block_size_tokens * self.n_kv_heads * self.head_dim
    }

    /// Layer `layer`'s whole K and V pools when the storage is f32 (rows addressed with
    /// [`KvStorage::row_offset`]), for kernels that read rows in place; `None` for f16.
    pub(crate) fn layer_f32(&self, layer: usize) -> Option<(&[f32], &[f32])> {
        match (&self.k[layer], &self.v[layer]) {
            (Pool::F32(k), Pool::F32(v)) => Some((k, v)),
            _ => None,
        }
    }

    /// Layer `layer`'s whole K and V pools as raw f16 bits when the storage is f16.
    pub(crate) fn layer_f16_bits(&self, layer: usize) -> Option<(&[u16], &[u16])> {
        match (&self.k[layer], &self.v[layer]) {
            (Pool::F16(k), Pool::F16(v)) => Some((f16_bits(k), f16_bits(v))),
            _ => None,
        }
    }

    /// Start of the row of `kv_head` at (`block`, `slot`) in a layer pool.
    #[inline]
    pub(crate) fn row_offset(&self, block: usize, slot: usize, kv_head: usize) -> usize {
        self.offset(block, slot, kv_head)
    }

    /// Start of the row of `kv_head` at (`block`, `slot`) in a layer pool.
    #[inline]
    fn offset(&self, block: usize, slot: usize, kv_head: usize) -> usize {
        ((block * self.n_kv_heads + kv_head) * self.block_size_tokens + slot) * self.head_dim
    }

    /// Stores the keys and values of one position, all KV heads: `k` and `v` are
    /// `[n_kv_heads * head_dim]`. Panics if `layer`, `block` or `slot` is out of range or the
    /// rows have another length.
    pub fn write(&mut self, layer: usize, block: usize, slot: usize, k: &[f32], v: &[f32]) {
        assert!(
            block < self.num_blocks && slot < self.block_size_tokens,
            "write to block {block} slot {slot} of {} blocks × {} slots",
            self.num_blocks,
            self.block_size_tokens
        );
        let row = self.n_kv_heads * self.head_dim;
        assert!(
            k.len() == row && v.len() == row,
            "write of K/V rows of {} and {} values, expected {row}",
            k.len(),
            v.len()
        );
        let hd = self.head_dim;
        for h in 0..self.n_kv_heads {
            let start = self.offset(block, slot, h);
            self.k[layer].write(start, &k[h * hd..(h + 1) * hd]);
            self.v[layer].write(start, &v[h * hd..(h + 1) * hd]);
        }
    }

    /// Key of `kv_head` at (`block`, `slot`) as f32; `buf` has `head_dim` elements and is used
    /// (and returned) when the storage is not f32.
    #[inline]
    pub fn key<'a>(
        &'a self,
        layer: usize,
        block: usize,
        slot: usize,
        kv_head: usize,
        buf: &'a mut [f32],
    ) -> &'a [f32] {
        self.k[layer].read(self.offset(block, slot, kv_head), buf)
    }

    /// Value of `kv_head` at (`block`, `slot`) as f32; `buf` has `head_dim` elements.
    #[inline]
    pub fn value<'a>(
        &'a self,
        layer: usize,
        block: usize,
        slot: usize,
        kv_head: usize,
        buf: &'a mut [f32],
    ) -> &'a [f32] {
        self.v[layer].read(self.offset(block, slot, kv_head), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llama::ArchFeatures;

    fn config() -> LlamaConfig {
        LlamaConfig {
            arch: "llama".into(),
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 3,
            embedding_dim: 12,
            ffn_dim: 8,
            vocab_size: 10,
            context_length: 64,
            rope_base: 10000.0,
            rope_dim: 2,
            rms_eps: 1e-5,
            tied_output: true,
            features: ArchFeatures::default(),
        }
    }

    /// Fills block 1 with distinct rows, copies its image into block 2 of another storage.
    fn copy_block_image(dtype: KvDtype) {
        let cfg = config();
        let mut a = KvStorage::new(&cfg, 3, 4, dtype);
        let row = cfg.n_kv_heads * cfg.head_dim;
        for layer in 0..cfg.n_layers {
            for slot in 0..4 {
                let k: Vec<f32> = (0..row)
                    .map(|i| (layer * 100 + slot * 10 + i) as f32)
                    .collect();
                let v: Vec<f32> = k.iter().map(|x| -x - 0.5).collect();
                a.write(layer, 1, slot, &k, &v);
            }
        }
        let mut image = vec![9u8];
        a.read_block_bytes(1, &mut image).unwrap();
        assert_eq!(image.len() - 1, a.block_shape().block_bytes());
        let mut b = KvStorage::new(&cfg, 3, 4, dtype);
        b.write_block_bytes(2, &image[1..]).unwrap();
        let (mut x, mut y) = (vec![0.0; 3], vec![0.0; 3]);
        for layer in 0..cfg.n_layers {
            for slot in 0..4 {
                for h in 0..cfg.n_kv_heads {
                    assert_eq!(
                        a.key(layer, 1, slot, h, &mut x),
                        b.key(layer, 2, slot, h, &mut y)
                    );
                    assert_eq!(
                        a.value(layer, 1, slot, h, &mut x),
                        b.value(layer, 2, slot, h, &mut y)
                    );
                }
            }
        }
        let mut again = Vec::new();
        b.read_block_bytes(2, &mut again).unwrap();
        assert_eq!(again, image[1..]);
        assert_eq!(
            b.write_block_bytes(3, &again),
            Err(KvBlockAccessError::UnknownBlock {
                block: 3,
                num_blocks: 3
            })
        );
        assert_eq!(
            b.write_block_bytes(0, &again[1..]),
            Err(KvBlockAccessError::WrongLength {
                expected: again.len(),
                got: again.len() - 1
            })
        );
    }

    #[test]
    fn a_block_image_moves_every_layer_bit_exactly() {
        copy_block_image(KvDtype::F32);
        copy_block_image(KvDtype::F16);
    }
}
