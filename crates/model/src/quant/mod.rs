//! ggml tensor types: block geometry for every known type id, and exact dequantize/quantize for the
//! formats this crate computes with (F32, F16, BF16, Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1, and the
//! K-quants
//! Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
//!
//! Block layouts follow ggml bit for bit, so weights from a GGUF file are used in place. Each
//! format is one [`QuantFormat`] implementation in its own file: `float.rs`, `q4.rs`, `q5.rs`, `q8.rs`,
//! `k_quants/` (one file per K-quant, the shared super-block machinery in its `mod.rs`).

mod float;
pub(crate) mod k_quants;
pub(crate) mod q4;
pub(crate) mod q5;
mod q8;

pub use float::{BF16, F16, F32};
pub use k_quants::{Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, QK_K};
pub use q4::{Q4_0, Q4_1};
pub use q5::{Q5_0, Q5_1};
pub(crate) use q8::round_half_even;
pub use q8::{quantize_q8_block, Q8_0, Q8_1};

/// Elements per block shared by all the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
pub const QK: usize = 32;

/// A ggml tensor element type, by its on-disk id.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
}

impl GgmlType {
    /// Every known type, in id order.
    pub const ALL: [GgmlType; 32] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ3_XXS,
        GgmlType::IQ1_S,
        GgmlType::IQ4_NL,
        GgmlType::IQ3_S,
        GgmlType::IQ2_S,
        GgmlType::IQ4_XS,
        GgmlType::I8,
        GgmlType::I16,
        GgmlType::I32,
        GgmlType::I64,
        GgmlType::F64,
        GgmlType::IQ1_M,
        GgmlType::BF16,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::MXFP4,
    ];

    /// The type with on-disk id `id`, if ggml defines it (removed ids such as 4, 5, 31-33 are `None`).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GgmlType::ALL.iter().copied().find(|t| t.id() == id)
    }

    /// The on-disk id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 | F64 | I8 | I16 | I32 | I64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4_NL | MXFP4 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S
            | IQ3_S | IQ2_S | IQ4_XS | IQ1_M | TQ1_0 | TQ2_0 => 256,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        use GgmlType::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            F64 | I64 => 8,
            I8 => 1,
            I16 => 2,
            I32 => 4,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            IQ4_NL => 18,
            MXFP4 => 17,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
            IQ2_XXS => 66,
            IQ2_XS => 74,
            IQ3_XXS => 98,
            IQ1_S => 50,
            IQ3_S => 110,
            IQ2_S => 82,
            IQ4_XS => 136,
            IQ1_M => 56,
            TQ1_0 => 54,
            TQ2_0 => 66,
        }
    }

    /// Bytes taken by `n_elements` elements, or `None` if `n_elements` is not a whole number of
    /// blocks or the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let block = self.block_size() as u64;
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        (n_elements / block).checked_mul(self.type_size() as u64)
    }

    /// Whether this crate can dequantize and multiply with this type.
    pub fn is_supported_for_compute(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K
        )
    }
}

/// One block-quantized format: geometry plus exact conversion to and from f32.
///
/// Dot-product kernels against 8-bit activations live in `matmul`; this trait is the format's
/// definition and the test oracle.
pub trait QuantFormat {
    /// The ggml type this format implements.
    const DTYPE: GgmlType;
    /// Elements per block.
    const BLOCK: usize;
    /// Bytes per block.
    const BLOCK_BYTES: usize;
    /// Decodes one block (`block.len() == BLOCK_BYTES`) into `out` (`out.len() == BLOCK`).
    fn dequantize_block(block: &[u8], out: &mut [f32]);
    /// Encodes `x` (`x.len() == BLOCK`) into one block (`out.len() == BLOCK_BYTES`).
    fn quantize_block(x: &[f32], out: &mut [u8]);
}

/// Decodes a whole row of `F` blocks. `bytes.len()` must be `out.len() / F::BLOCK * F::BLOCK_BYTES`.
pub fn dequantize_row_of<F: QuantFormat>(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(out.len() % F::BLOCK, 0, "row length must be whole blocks");
    assert_eq!(
        bytes.len(),
        out.len() / F::BLOCK * F::BLOCK_BYTES,
        "row byte size"
    );
    for (block, dst) in bytes
        .chunks_exact(F::BLOCK_BYTES)
        .zip(out.chunks_exact_mut(F::BLOCK))
    {
        F::dequantize_block(block, dst);
    }
}

/// Encodes a row of f32 into `F` blocks, returning the bytes.
pub fn quantize_row_of<F: QuantFormat>(x: &[f32]) -> Vec<u8> {
    assert_eq!(x.len() % F::BLOCK, 0, "row length must be whole blocks");
    let mut out = vec![0u8; x.len() / F::BLOCK * F::BLOCK_BYTES];
    for (src, block) in x
        .chunks_exact(F::BLOCK)
        .zip(out.chunks_exact_mut(F::BLOCK_BYTES))
    {
        F::quantize_block(src, block);
    }
    out
}

/// Decodes `out.len()` elements of type `dtype` from `bytes`, or `None` if the type has no
/// decoder here. Panics if the sizes disagree.
pub fn dequantize_row(dtype: GgmlType, bytes: &[u8], out: &mut [f32]) -> Option<()> {
    match dtype {
        GgmlType::F32 => dequantize_row_of::<F32>(bytes, out),
        GgmlType::F16 => dequantize_row_of::<F16>(bytes, out),
        GgmlType::BF16 => dequantize_row_of::<BF16>(bytes, out),
        GgmlType::Q4_0 => dequantize_row_of::<Q4_0>(bytes, out),
        GgmlType::Q4_1 => dequantize_row_of::<Q4_1>(bytes, out),
        GgmlType::Q5_0 => dequantize_row_of::<Q5_0>(bytes, out),
        GgmlType::Q5_1 => dequantize_row_of::<Q5_1>(bytes, out),
        GgmlType::Q8_0 => dequantize_row_of::<Q8_0>(bytes, out),
        GgmlType::Q8_1 => dequantize_row_of::<Q8_1>(bytes, out),
        GgmlType::Q2_K => dequantize_row_of::<Q2_K>(bytes, out),
        GgmlType::Q3_K => dequantize_row_of::<Q3_K>(bytes, out),
        GgmlType::Q4_K => dequantize_row_of::<Q4_K>(bytes, out),
        GgmlType::Q5_K => dequantize_row_of::<Q5_K>(bytes, out),
        GgmlType::Q6_K => dequantize_row_of::<Q6_K>(bytes, out),
        _ => return None,
    }
    Some(())
}

/// Encodes `x` as `dtype`, or `None` if the type has no encoder here (or `x` is not whole blocks).
pub fn quantize_row(dtype: GgmlType, x: &[f32]) -> Option<Vec<u8>> {
    if !x.len().is_multiple_of(dtype.block_size()) {
        return None;
    }
    Some(match dtype {
        GgmlType::F32 => quantize_row_of::<F32>(x),
        GgmlType::F16 => quantize_row_of::<F16>(x),
        GgmlType::BF16 => quantize_row_of::<BF16>(x),
        GgmlType::Q4_0 => quantize_row_of::<Q4_0>(x),
        GgmlType::Q4_1 => quantize_row_of::<Q4_1>(x),
        GgmlType::Q5_0 => quantize_row_of::<Q5_0>(x),
        GgmlType::Q5_1 => quantize_row_of::<Q5_1>(x),
        GgmlType::Q8_0 => quantize_row_of::<Q8_0>(x),
        GgmlType::Q8_1 => quantize_row_of::<Q8_1>(x),
        GgmlType::Q2_K => quantize_row_of::<Q2_K>(x),
        GgmlType::Q3_K => quantize_row_of::<Q3_K>(x),
        GgmlType::Q4_K => quantize_row_of::<Q4_K>(x),
        GgmlType::Q5_K => quantize_row_of::<Q5_K>(x),
        GgmlType::Q6_K => quantize_row_of::<Q6_K>(x),
        _ => return None,
    })
}

/// Reads a little-endian IEEE half at `bytes[at..at + 2]` as f32.
#[inline]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// Writes `v` as a little-endian IEEE half at `bytes[at..at + 2]`.
#[inline]
pub(crate) fn put_f16(bytes: &mut [u8], at: usize, v: f32) {
    bytes[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
}
