//! Weight-matrix × activation products, the engine's hot kernel.
//!
//! `out[b][r] = Σ_c W[r][c] · x[b][c]` for a row range of `W`, so callers can split rows across
//! threads. Quantized weights (Q8_0, Q4_0, Q4_1) are multiplied in integers against activations
//! quantized once per matmul to 8 bits per 32-block ([`Activations`]), as llama.cpp does; F32/F16
//! weights use f32 FMA. Each weight block is decoded once and applied to a tile of batch rows.
//!
//! Kernels: [`Kernel::Avx2`] (x86-64 AVX2+FMA+F16C, chosen at run time) and [`Kernel::Scalar`]
//! (portable). [`naive`] holds the reference implementations the fast kernels are tested against.

mod activations;
#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod naive;
mod scalar;

use std::ops::Range;
use std::sync::{Arc, OnceLock};

pub use activations::Activations;

use crate::gguf::{Backing, TensorView};
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
            rows,
            out,
        };
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
        assert_eq!(
            out.len(),
            x.batch() * rows.len(),
            "out must be batch * rows.len()"
        );
        if needs_quantized_activations(self.dtype) {
            assert!(
                x.is_quantized(),
                "{} is {:?}: prepare the activations for it (they are f32-only)",
                self.name,
                self.dtype
            );
        }
    }
}

/// Whether weights of `dtype` are multiplied against 8-bit-quantized activations.
pub fn needs_quantized_activations(dtype: GgmlType) -> bool {
    matches!(dtype, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1)
}

/// One call's operands, handed to a kernel.
pub(crate) struct MatmulJob<'a> {
    pub w: &'a WeightMatrix,
    pub x: &'a Activations,
    pub rows: Range<usize>,
    pub out: &'a mut [f32],
}

impl MatmulJob<'_> {
    /// Stores `value` as the product of weight row `r` and batch row `b`.
    #[inline(always)]
    pub fn store(&mut self, b: usize, r: usize, value: f32) {
        let n = self.rows.len();
        self.out[b * n + (r - self.rows.start)] = value;
    }
}
