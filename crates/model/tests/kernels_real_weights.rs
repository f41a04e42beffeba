//! Kernels on the real SmolLM2 weights (mmap-backed), against the naive reference.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::matmul::{naive, Activations, Kernel, WeightMatrix};
use rotor_model::quant::GgmlType;
use rotor_model::{Error, GgufFile};

fn model() -> GgufFile {
    GgufFile::open(&rotor_testing::model_path()).unwrap()
}

fn assert_send_sync_static<T: Send + Sync + 'static>(_: &T) {}

#[test]
fn real_weights_match_naive() {
    let f = model();
    let mut rng = StdRng::seed_from_u64(42);
    for (name, dtype, rows, cols) in [
        ("blk.0.ffn_down.weight", GgmlType::Q4_1, 576, 1536),
        ("blk.0.ffn_up.weight", GgmlType::Q4_1, 1536, 576),
        ("blk.29.attn_k.weight", GgmlType::Q4_1, 192, 576),
        ("token_embd.weight", GgmlType::Q8_0, 49152, 576),
    ] {
        let w = WeightMatrix::from_tensor(f.tensor(name).unwrap()).unwrap();
        assert_send_sync_static(&w);
        assert_eq!(
            (w.dtype(), w.rows(), w.cols()),
            (dtype, rows, cols),
            "{name}"
        );
        let batch = 3;
        let x: Vec<f32> = (0..batch * cols)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let mut acts = Activations::new();
        acts.prepare(&x, batch, cols, dtype);
        let range = 100..164;
        let n = range.len();
        let mut want = vec![0.0; batch * n];
        naive::matmul_quantized(&w, &acts, range.clone(), &mut want);
        let scale = naive::abs_dot(&w, &x, batch, range.clone());
        for kernel in [Kernel::Scalar, Kernel::detect()] {
            let mut got = vec![f32::NAN; batch * n];
            w.matmul_rows_with(kernel, &acts, range.clone(), &mut got);
            for i in 0..got.len() {
                let tol = 1e-5 * scale[i] + 1e-6;
                assert!(
                    (got[i] - want[i]).abs() <= tol,
                    "{name} {kernel:?} [{i}]: {} vs {}",
                    got[i],
                    want[i]
                );
            }
        }
    }
    // The weight keeps the mapping alive after the file handle is dropped.
    let w = WeightMatrix::from_tensor(f.tensor("output_norm.weight").unwrap());
    assert!(
        matches!(w, Err(Error::NotAMatrix { ref tensor, .. }) if tensor == "output_norm.weight")
    );
    let emb = WeightMatrix::from_tensor(f.tensor("token_embd.weight").unwrap()).unwrap();
    drop(f);
    let mut row = vec![0.0f32; 576];
    emb.dequantize_row(1, &mut row);
    assert!(row.iter().all(|v| v.is_finite()) && row.iter().any(|&v| v != 0.0));
}

#[test]
fn requantize_q4_1_to_q8_0_stays_close() {
    let f = model();
    let w = WeightMatrix::from_tensor(f.tensor("blk.3.attn_q.weight").unwrap()).unwrap();
    let r = w.requantize(GgmlType::Q8_0).unwrap();
    assert_eq!(
        (r.dtype(), r.rows(), r.cols()),
        (GgmlType::Q8_0, w.rows(), w.cols())
    );
    let (mut a, mut b) = (vec![0.0f32; w.cols()], vec![0.0f32; w.cols()]);
    for row in [0, 17, w.rows() - 1] {
        w.dequantize_row(row, &mut a);
        r.dequantize_row(row, &mut b);
        for (blk, (x, y)) in a.chunks(32).zip(b.chunks(32)).enumerate() {
            let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (u, v) in x.iter().zip(y) {
                assert!(
                    (u - v).abs() <= amax / 254.0 * 1.01 + amax * 2f32.powi(-9),
                    "row {row} block {blk}"
                );
            }
        }
    }
}

/// Every Q4_K and Q6_K matrix of the real Gemma 3 270M Q4_K_M (llama.cpp's quantizer, so scales
/// and codes over their whole range), interleaved layout and file layout, against naive.
#[test]
fn real_gemma_k_quant_weights_match_naive() {
    let f = GgufFile::open(&rotor_testing::gemma3_path()).unwrap();
    let mut rng = StdRng::seed_from_u64(43);
    let mut checked = 0;
    for info in f.tensor_infos() {
        if !matches!(info.dtype, GgmlType::Q4_K | GgmlType::Q6_K) || info.dims.len() != 2 {
            continue;
        }
        let w = WeightMatrix::from_tensor(f.tensor(&info.name).unwrap()).unwrap();
        let (cols, batch) = (w.cols(), 5);
        // Activations of a realistic spread: mostly small, a few large outliers.
        let x: Vec<f32> = (0..batch * cols)
            .map(|i| rng.random_range(-1.0f32..1.0) * if i % 97 == 0 { 40.0 } else { 1.0 })
            .collect();
        let mut acts = Activations::new();
        acts.prepare(&x, batch, cols, w.dtype());
        let range = 5..w.rows().min(70);
        let n = range.len();
        let mut want = vec![0.0; batch * n];
        naive::matmul_quantized(&w, &acts, range.clone(), &mut want);
        let scale = naive::abs_dot(&w, &x, batch, range.clone());
        for kernel in [Kernel::Scalar, Kernel::detect()] {
            let mut got = vec![f32::NAN; batch * n];
            w.matmul_rows_with(kernel, &acts, range.clone(), &mut got);
            for i in 0..got.len() {
                let tol = 1e-5 * scale[i] + 1e-6;
                assert!(
                    (got[i] - want[i]).abs() <= tol,
                    "{} {kernel:?} [{i}]: {} vs {}",
                    info.name,
                    got[i],
                    want[i]
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 0, "expected Q4_K/Q6_K matrices in the Gemma file");
}
