//! The right-hand side of a matmul, prepared once and shared read-only by all threads.

use super::Kernel;
use crate::quant::quantize_q8_block;
use crate::quant::{GgmlType, QK};

/// `batch` rows of `cols` f32 values, plus (for quantized weights) each 32-block quantized to
/// 8 bits: `q` (i8), scale `d` and `s = d · Σq` per block (Q8_1-like, with f32 scales).
#[derive(Debug, Default, Clone)]
pub struct Activations {
    batch: usize,
    cols: usize,
    x: Vec<f32>,
    quantized: bool,
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    /// `d` and `s` interleaved per block (`[d0, s0, d1, s1, …]`): one 8-byte load in the kernel.
    ds: Vec<f32>,
}

impl Activations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads `x` (row-major `[batch, cols]`) for a matmul with weights of `for_dtype`, quantizing
    /// it when that format's kernel wants 8-bit activations. Reuses the buffers.
    pub fn prepare(&mut self, x: &[f32], batch: usize, cols: usize, for_dtype: GgmlType) {
        self.prepare_with(Kernel::detect(), x, batch, cols, for_dtype)
    }

    /// [`Activations::prepare`] quantizing on a chosen kernel (all kernels give identical bytes).
    pub fn prepare_with(
        &mut self,
        kernel: Kernel,
        x: &[f32],
        batch: usize,
        cols: usize,
        for_dtype: GgmlType,
    ) {
        assert_eq!(x.len(), batch * cols, "prepare: x must be batch * cols");
        self.batch = batch;
        self.cols = cols;
        self.x.clear();
        self.x.extend_from_slice(x);
        self.quantized = super::needs_quantized_activations(for_dtype);
        if !self.quantized {
            return;
        }
        assert_eq!(
            cols % QK,
            0,
            "quantized activations need cols to be a multiple of {QK}"
        );
        // Q4_1 pairs with ggml's Q8_1, whose block sum `s` is rounded to f16 on its own; for the
        // other formats `s` is exactly `d · Σq` (their kernels use it only for the zero point).
        let sum_in_f16 = for_dtype == GgmlType::Q4_1;
        let blocks = batch * cols / QK;
        self.q.resize(batch * cols, 0);
        self.d.resize(blocks, 0.0);
        self.s.resize(blocks, 0.0);
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx2 {
            assert!(
                kernel.is_available(),
                "AVX2+FMA+F16C kernel requested on a CPU without it"
            );
            // SAFETY: the kernel's CPU features were detected just above.
            unsafe {
                super::avx2::quantize_activations(
                    x,
                    &mut self.q,
                    &mut self.d,
                    &mut self.s,
                    sum_in_f16,
                )
            };
            self.interleave_scales();
            return;
        }
        for (i, src) in x.chunks_exact(QK).enumerate() {
            let (d, q) = quantize_q8_block(src);
            let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
            self.q[i * QK..(i + 1) * QK].copy_from_slice(&q);
            // `d` is kept at f16 precision, as ggml's Q8_0/Q8_1 blocks store it, so our rounding
            // follows llama.cpp's (the golden test's reference).
            self.d[i] = round_to_f16(d);
            self.s[i] = block_sum(d, self.d[i], sum, sum_in_f16);
        }
        self.interleave_scales();
    }

    fn interleave_scales(&mut self) {
        self.ds.clear();
        self.ds
            .extend(self.d.iter().zip(&self.s).flat_map(|(&d, &s)| [d, s]));
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Whether the 8-bit copy is present.
    pub fn is_quantized(&self) -> bool {
        self.quantized
    }

    /// Row `b` in f32.
    pub fn row(&self, b: usize) -> &[f32] {
        &self.x[b * self.cols..(b + 1) * self.cols]
    }

    /// Row `b`'s 8-bit codes.
    pub fn q_row(&self, b: usize) -> &[i8] {
        &self.q[b * self.cols..(b + 1) * self.cols]
    }

    /// Row `b`'s per-block scales.
    pub fn d_row(&self, b: usize) -> &[f32] {
        let nb = self.cols / QK;
        &self.d[b * nb..(b + 1) * nb]
    }

    /// Row `b`'s per-block `d · Σq`.
    pub fn s_row(&self, b: usize) -> &[f32] {
        let nb = self.cols / QK;
        &self.s[b * nb..(b + 1) * nb]
    }

    /// Row `b`'s `[d, s]` pairs, interleaved.
    pub(crate) fn ds_row(&self, b: usize) -> &[f32] {
        let nb = self.cols / QK;
        &self.ds[2 * b * nb..2 * (b + 1) * nb]
    }

    /// Row `b` as the quantized values decode (`q · d`): what the integer kernels actually see.
    pub fn dequantized_row(&self, b: usize) -> Vec<f32> {
        assert!(self.quantized, "activations are not quantized");
        let d = self.d_row(b);
        self.q_row(b)
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * d[i / QK])
            .collect()
    }
}

/// A block's `s`: ggml's Q8_1 rounds `d · Σq` (with the unrounded `d`) to f16; otherwise it is
/// exactly the rounded `d` times `Σq`.
#[inline]
pub(crate) fn block_sum(d: f32, d_rounded: f32, sum: i32, sum_in_f16: bool) -> f32 {
    if sum_in_f16 {
        round_to_f16(d * sum as f32)
    } else {
        d_rounded * sum as f32
    }
}

/// `v` rounded to the nearest f16 value, back in f32.
#[inline]
pub(crate) fn round_to_f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}
