//! Weight-matrix × activation products, the engine's hot kernel.
//!
//! `out[b][r] = Σ_c W[r][c] · x[b][c]` for a row range of `W`, so callers can split rows across
//! threads. Quantized weights are multiplied in integers against activations quantized once per
//! matmul to 8 bits ([`Activations`]), as llama.cpp does: per 32-block for Q8_0, Q4_0, Q4_1, Q5_0,
//! Q5_1, per
//! 256-block with per-16 code sums for the K-quants (Q2_K..Q6_K); F32/F16/BF16 weights use f32
//! FMA. Each weight block is decoded once and applied to a tile of batch rows.
//!
//! Kernels: [`Kernel::Avx2`] (x86-64 AVX2+FMA+F16C, chosen at run time; `avx2.rs` for the 32-blocks
//! and floats, `avx2_k.rs` for the K-quants; eight-row interleaved layouts in `interleaved.rs` and
//! `interleaved_k.rs`, the latter's kernel in `avx2_k_interleaved.rs`) and [`Kernel::Scalar`]
//! (portable). [`naive`] holds
//! the reference implementations the fast kernels are tested against.

mod activations;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_k;
#[cfg(target_arch = "x86_64")]
mod avx2_k_interleaved;
mod interleaved;
mod interleaved_k;
pub mod naive;
mod scalar;

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

pub use activations::{ActivationFormat, Activations};

use crate::gguf::{Backing, TensorView};
use crate::pool::SharedMut;
use crate::quant::{self, GgmlType};
use crate::Error;

/// Which implementation runs a matmul.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable Rust, the fallback everywhere.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU supports (detected once).
    pub fn detect() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            if Kernel::Avx2.is_available() {
                Kernel::Avx2
            } else {
                Kernel::Scalar
            }
        })
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 => false,
        }
    }
}

/// A 2-D weight matrix of `rows` (outputs) × `cols` (inputs) in its storage format, row-major with
/// each row a whole number of blocks. Shares the bytes of the GGUF mapping (or an owned buffer),
/// so it is cheap to clone and `'static + Send + Sync`.
#[derive(Clone)]
pub struct WeightMatrix {
    name: String,
    dtype: GgmlType,
    rows: usize,
    cols: usize,
    bytes: Arc<Backing>,
    start: usize,
    row_bytes: usize,
    /// The prefill layout (`interleaved.rs`), built on first use and shared by clones.
    interleaved: Arc<OnceLock<interleaved::Interleaved>>,
}

impl std::fmt::Debug for WeightMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightMatrix")
            .field("name", &self.name)
            .field("dtype", &self.dtype)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl WeightMatrix {
    /// Wraps a 2-D tensor (GGUF dims `[cols, rows]`) without copying its bytes.
    pub fn from_tensor(view: TensorView<'_>) -> Result<WeightMatrix, Error> {
        let info = view.info;
        if info.dims.len() != 2 {
            return Err(Error::NotAMatrix {
                tensor: info.name.clone(),
                dims: info.dims.clone(),
            });
        }
        if !info.dtype.is_supported_for_compute() {
            return Err(Error::UnsupportedType {
                tensor: info.name.clone(),
                dtype: info.dtype,
            });
        }
        let (cols, rows) = (info.dims[0] as usize, info.dims[1] as usize);
        let range = view.file_range();
        Ok(WeightMatrix {
            name: info.name.clone(),
            dtype: info.dtype,
            rows,
            cols,
            bytes: Arc::clone(view.file().backing()),
            start: range.start,
            row_bytes: cols / info.dtype.block_size() * info.dtype.type_size(),
            interleaved: Arc::default(),
        })
    }

    /// Quantizes a row-major `rows × cols` f32 matrix into `dtype` (tests, tiny models,
    /// requantization at load).
    pub fn from_f32(
        name: &str,
        dtype: GgmlType,
        rows: usize,
        cols: usize,
        values: &[f32],
    ) -> Result<WeightMatrix, Error> {
        let unsupported = || Error::UnsupportedType {
            tensor: name.to_string(),
            dtype,
        };
        if !dtype.is_supported_for_compute() {
            return Err(unsupported());
        }
        if !cols.is_multiple_of(dtype.block_size()) {
            return Err(Error::RowNotBlockMultiple {
                tensor: name.to_string(),
                dtype,
                row_len: cols as u64,
                block_size: dtype.block_size() as u64,
            });
        }
        assert_eq!(
            values.len(),
            rows * cols,
            "from_f32: values must be rows * cols"
        );
        let bytes = quant::quantize_row(dtype, values).ok_or_else(unsupported)?;
        Ok(WeightMatrix {
            name: name.to_string(),
            dtype,
            rows,
            cols,
            bytes: Arc::new(Backing::Owned(bytes)),
            start: 0,
            row_bytes: cols / dtype.block_size() * dtype.type_size(),
            interleaved: Arc::default(),
        })
    }

    /// Re-encodes the matrix in another format (e.g. Q4_1 → Q8_0), row by row.
    pub fn requantize(&self, dtype: GgmlType) -> Result<WeightMatrix, Error> {
        let mut values = vec![0.0f32; self.rows * self.cols];
        for (r, row) in values.chunks_exact_mut(self.cols).enumerate() {
            self.dequantize_row(r, row);
        }
        Self::from_f32(&self.name, dtype, self.rows, self.cols, &values)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Output dimension (n_out).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input dimension (n_in).
    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// Bytes of one row in storage format.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// All rows' bytes.
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.rows * self.row_bytes]
    }

    /// The storage bytes of row `row`.
    pub fn row_data(&self, row: usize) -> &[u8] {
        assert!(
            row < self.rows,
            "row {row} out of {} in {}",
            self.rows,
            self.name
        );
        let at = self.start + row * self.row_bytes;
        &self.bytes[at..at + self.row_bytes]
    }

    /// The interleaved compute layout of the matrix's whole groups of eight rows, built on the
    /// first call; `None` for types without one (see `interleaved.rs`, `interleaved_k.rs`).
    pub(crate) fn interleaved(&self) -> Option<&interleaved::Interleaved> {
        let k_quant = interleaved_k::supports(self.dtype);
        if !(interleaved::supports(self.dtype) || k_quant) || self.rows < 8 {
            return None;
        }
        Some(self.interleaved.get_or_init(|| {
            let row = |r| self.row_data(r);
            if k_quant {
                interleaved_k::build(self.dtype, self.rows, self.cols, row)
            } else {
                interleaved::build(self.dtype, self.rows, self.cols, row)
            }
        }))
    }

    /// Decodes row `row` into `out` (`out.len() == cols`), e.g. an embedding lookup.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        assert_eq!(
            out.len(),
            self.cols,
            "dequantize_row: out must hold cols values"
        );
        quant::dequantize_row(self.dtype, self.row_data(row), out)
            .expect("invariant: WeightMatrix dtypes are supported for compute");
    }

    /// `out[b * rows.len() + (r - rows.start)] = dot(W[r], x[b])` for every batch row `b`, on the
    /// fastest available kernel.
    pub fn matmul_rows(&self, x: &Activations, rows: Range<usize>, out: &mut [f32]) {
        self.matmul_rows_with(Kernel::detect(), x, rows, out)
    }

    /// [`WeightMatrix::matmul_rows`] on a chosen kernel. Panics if the CPU lacks it.
    pub fn matmul_rows_with(
        &self,
        kernel: Kernel,
        x: &Activations,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        self.check_call(x, &rows, out);
        if rows.is_empty() || x.batch() == 0 {
            return;
        }
        let job = MatmulJob {
            w: self,
            x,
            col0: rows.start,
            ld: rows.len(),
            rows,
            out: out.as_mut_ptr(),
            accumulate: false,
            _out: PhantomData,
        };
        self.run_job(kernel, job);
    }

    /// `out[b * ld + r] (+)= dot(W[r], x[b])` for every `r` in `rows` and batch row `b`, written
    /// straight into a shared strided output (a step's `[batch][ld]` activations) on the fastest
    /// kernel; with `accumulate` the products are added (a residual connection).
    ///
    /// # Safety
    /// No other thread may access the elements `b * ld + r` (all `b`, `r` in `rows`) of `out`
    /// during the call.
    pub(crate) unsafe fn matmul_rows_strided(
        &self,
        x: &Activations,
        rows: Range<usize>,
        out: SharedMut<f32>,
        ld: usize,
        accumulate: bool,
    ) {
        self.check_operands(x, &rows);
        if rows.is_empty() || x.batch() == 0 {
            return;
        }
        assert!(
            rows.end <= ld,
            "rows {rows:?} beyond the output stride {ld}"
        );
        let job = MatmulJob {
            w: self,
            x,
            col0: 0,
            ld,
            // Bounds-checked: the last element written is (batch - 1) * ld + rows.end - 1.
            out: out.ptr_covering((x.batch() - 1) * ld + rows.end),
            rows,
            accumulate,
            _out: PhantomData,
        };
        self.run_job(Kernel::detect(), job);
    }

    fn run_job(&self, kernel: Kernel, job: MatmulJob<'_>) {
        match kernel {
            Kernel::Scalar => scalar::matmul(job),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                assert!(
                    kernel.is_available(),
                    "AVX2+FMA+F16C kernel requested on a CPU without it"
                );
                // SAFETY: the features the kernel is compiled for were detected just above.
                unsafe { avx2::matmul(job) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 => panic!("AVX2 kernel requested on a non-x86-64 CPU"),
        }
    }

    fn check_call(&self, x: &Activations, rows: &Range<usize>, out: &[f32]) {
        self.check_operands(x, rows);
        assert_eq!(
            out.len(),
            x.batch() * rows.len(),
            "out must be batch * rows.len()"
        );
    }

    fn check_operands(&self, x: &Activations, rows: &Range<usize>) {
        assert_eq!(
            x.cols(),
            self.cols,
            "activations have {} columns, {} expects {}",
            x.cols(),
            self.name,
            self.cols
        );
        assert!(
            rows.start <= rows.end && rows.end <= self.rows,
            "rows {rows:?} out of 0..{} in {}",
            self.rows,
            self.name
        );
        assert!(
            x.format().serves(self.dtype),
            "{} is {:?}: prepare the activations for it (they are {:?})",
            self.name,
            self.dtype,
            x.format()
        );
    }
}

/// Whether weights of `dtype` are multiplied against 8-bit-quantized activations (the encoding:
/// [`ActivationFormat::for_weights`]).
pub fn needs_quantized_activations(dtype: GgmlType) -> bool {
    ActivationFormat::for_weights(dtype) != ActivationFormat::F32
}

/// One call's operands, handed to a kernel. Results go to `out[b * ld + (r - col0)]` for batch
/// row `b` and weight row `r`, set or (with `accumulate`) added.
pub(crate) struct MatmulJob<'a> {
    pub w: &'a WeightMatrix,
    pub x: &'a Activations,
    pub rows: Range<usize>,
    out: *mut f32,
    ld: usize,
    col0: usize,
    accumulate: bool,
    _out: PhantomData<&'a mut [f32]>,
}

impl MatmulJob<'_> {
    /// Stores `value` as the product of weight row `r` and batch row `b`.
    #[inline(always)]
    pub fn store(&mut self, b: usize, r: usize, value: f32) {
        debug_assert!(b < self.x.batch() && self.rows.contains(&r));
        // SAFETY: the constructors checked that every (b < batch, r in rows) maps inside the
        // destination, which the job borrows exclusively (or, strided, by the caller's promise).
        unsafe {
            let p = self.out.add(b * self.ld + (r - self.col0));
            if self.accumulate {
                *p += value;
            } else {
                *p = value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strided, accumulating entry (what the forward pass uses) writes exactly what the dense
    /// one computes, at `b * ld + r`, adds it when asked, and touches nothing else.
    #[test]
    fn strided_output_matches_dense_and_accumulates_in_place() {
        let (rows, cols, batch, ld) = (32, 256, 5, 40);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let x: Vec<f32> = (0..batch * cols)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
            .collect();
        for dtype in [
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::F32,
            GgmlType::BF16,
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ] {
            let w = WeightMatrix::from_f32("w", dtype, rows, cols, &values).unwrap();
            let mut acts = Activations::new();
            acts.prepare(&x, batch, cols, dtype);
            let range = 8..24;
            let mut dense = vec![0.0f32; batch * range.len()];
            w.matmul_rows(&acts, range.clone(), &mut dense);
            for accumulate in [false, true] {
                let mut out: Vec<f32> = (0..batch * ld).map(|i| i as f32).collect();
                // SAFETY: single-threaded; `out` is exclusively borrowed.
                unsafe {
                    w.matmul_rows_strided(
                        &acts,
                        range.clone(),
                        SharedMut::new(&mut out),
                        ld,
                        accumulate,
                    )
                };
                for b in 0..batch {
                    for c in 0..ld {
                        let i = b * ld + c;
                        let want = if range.contains(&c) {
                            let d = dense[b * range.len() + c - range.start];
                            if accumulate {
                                i as f32 + d
                            } else {
                                d
                            }
                        } else {
                            i as f32
                        };
                        assert_eq!(
                            out[i], want,
                            "{dtype:?} accumulate {accumulate} b {b} c {c}"
                        );
                    }
                }
            }
        }
    }
}
