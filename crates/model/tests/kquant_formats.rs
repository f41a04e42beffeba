//! K-quant (Q2_K..Q6_K), Q5_0/Q5_1 and BF16 formats: dequantization against an independent
//! implementation, and the round-trip error of our encoders.
//!
//! Reference: `tests/fixtures/kquant_reference.json`, written by `scripts/golden/kquant_fixtures.py`
//! with gguf-py's `gguf.quants.dequantize` (numpy). Random blocks with finite f16 scales plus
//! all-0x00 and all-0xFF blocks; our values must equal gguf-py's bit for bit (both evaluate
//! `(d·scale)·q − dmin·min` in f32, in that order, without fused multiply-add; Q5_0 `d·(q − 16)`,
//! Q5_1 `d·q + m`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::matmul::WeightMatrix;
use rotor_model::quant::{self, GgmlType};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/kquant_reference.json");

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn dtype_named(name: &str) -> GgmlType {
    match name {
        "Q2_K" => GgmlType::Q2_K,
        "Q3_K" => GgmlType::Q3_K,
        "Q4_K" => GgmlType::Q4_K,
        "Q5_K" => GgmlType::Q5_K,
        "Q6_K" => GgmlType::Q6_K,
        "Q5_0" => GgmlType::Q5_0,
        "Q5_1" => GgmlType::Q5_1,
        "BF16" => GgmlType::BF16,
        other => panic!("unexpected type {other} in the fixture"),
    }
}

#[test]
fn dequantization_matches_gguf_py_bit_for_bit() {
    let doc: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    let types = doc["types"].as_object().expect("types");
    let names: Vec<&str> = types.keys().map(String::as_str).collect();
    for want in [
        "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q5_1", "BF16",
    ] {
        assert!(names.contains(&want), "fixture lacks {want}");
    }
    for (name, cases) in types {
        let dtype = dtype_named(name);
        let cases = cases.as_array().expect("cases");
        assert!(cases.len() >= 2, "{name}: too few cases");
        for (c, case) in cases.iter().enumerate() {
            let block = unhex(case["block"].as_str().expect("block"));
            let want: Vec<f32> = unhex(case["values"].as_str().expect("values"))
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(
                Some(block.len() as u64),
                dtype.bytes_for(want.len() as u64),
                "{name} case {c}: sizes"
            );
            let mut got = vec![f32::NAN; want.len()];
            quant::dequantize_row(dtype, &block, &mut got).expect("decoder");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{name} case {c} element {i}: ours {g:e}, gguf-py {w:e}"
                );
            }
        }
    }
}

/// `(qmax, pmax, group, affine)`: largest code, largest scale/min code, elements per scale,
/// whether the type has mins.
fn geometry(dtype: GgmlType) -> (f32, f32, usize, bool) {
    match dtype {
        GgmlType::Q2_K => (3.0, 15.0, 16, true),
        GgmlType::Q3_K => (3.0, 31.0, 16, false),
        GgmlType::Q4_K => (15.0, 63.0, 32, true),
        GgmlType::Q5_K => (31.0, 63.0, 32, true),
        GgmlType::Q6_K => (31.0, 127.0, 16, false),
        other => unreachable!("{other:?}"),
    }
}

/// The encoder's worst case per group: half of the group's step, where the step is the ideal
/// one (range / qmax, the range widened by at most one `dmin` when the min is rounded up) plus
/// at most one super-scale `d` from rounding the step up onto d's grid; `d` and `dmin` are at
/// most their ideal values (largest parameter / pmax) times 1 + 2^-10 (f16 rounding up).
fn group_bounds(dtype: GgmlType, x: &[f32]) -> Vec<f32> {
    let (qmax, pmax, group, affine) = geometry(dtype);
    let f16_up = 1.0 + 2f32.powi(-10);
    let groups: Vec<&[f32]> = x.chunks(group).collect();
    let ranges: Vec<(f32, f32)> = groups
        .iter()
        .map(|g| {
            if affine {
                let lo = g.iter().copied().fold(0.0f32, f32::min);
                (lo, g.iter().copied().fold(lo, f32::max))
            } else {
                let a = g.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                (-a, a)
            }
        })
        .collect();
    let dmin = if affine {
        ranges.iter().fold(0.0f32, |m, r| m.max(-r.0)) / pmax * f16_up
    } else {
        0.0
    };
    let steps: Vec<f32> = ranges
        .iter()
        .map(|&(lo, hi)| {
            if affine {
                (hi - lo + dmin) / qmax
            } else {
                hi / qmax
            }
        })
        .collect();
    let d = steps.iter().copied().fold(0.0, f32::max) / pmax * f16_up;
    steps.iter().map(|s| 0.5 * (s + d) * 1.001).collect()
}

#[test]
fn quantize_round_trip_error_is_within_half_a_step() {
    let mut rng = StdRng::seed_from_u64(17);
    for dtype in [
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        let (_, _, group, _) = geometry(dtype);
        // Uniform data, data with a per-group offset (exercises the mins), and a block whose
        // groups differ in scale by orders of magnitude.
        let mut cases: Vec<Vec<f32>> = Vec::new();
        cases.push((0..1024).map(|_| rng.random_range(-3.0f32..3.0)).collect());
        cases.push(
            (0..1024)
                .map(|i| (i / group) as f32 * 0.1 + rng.random_range(-0.5f32..0.5))
                .collect(),
        );
        cases.push(
            (0..256)
                .map(|i| rng.random_range(-1.0f32..1.0) * 10f32.powi((i / group % 4) as i32 - 2))
                .collect(),
        );
        cases.push(vec![0.0; 256]);
        for (c, x) in cases.iter().enumerate() {
            let bytes = quant::quantize_row(dtype, x).expect("encoder");
            assert_eq!(Some(bytes.len() as u64), dtype.bytes_for(x.len() as u64));
            let mut back = vec![f32::NAN; x.len()];
            quant::dequantize_row(dtype, &bytes, &mut back).expect("decoder");
            for (blk, (xs, ys)) in x.chunks(256).zip(back.chunks(256)).enumerate() {
                let bounds = group_bounds(dtype, xs);
                for (i, (u, v)) in xs.iter().zip(ys).enumerate() {
                    let tol = bounds[i / group] + 1e-7;
                    assert!(
                        (u - v).abs() <= tol,
                        "{dtype:?} case {c} block {blk} element {i}: {u} → {v}, tol {tol}"
                    );
                }
            }
        }
    }
}

#[test]
fn bf16_round_trip_is_round_to_nearest() {
    let mut rng = StdRng::seed_from_u64(19);
    let mut x: Vec<f32> = (0..512)
        .map(|_| rng.random_range(-1.0f32..1.0) * 10f32.powi(rng.random_range(-30..30)))
        .collect();
    // Exactly representable values (signed zeros, a bf16 subnormal) survive unchanged; a value
    // below half the smallest bf16 subnormal flushes to zero.
    x.extend([0.0, -0.0, 1.0, -2.5, f32::from_bits(0x0001_0000), 1.5e-40]);
    let bytes = quant::quantize_row(GgmlType::BF16, &x).expect("encoder");
    let mut back = vec![0.0; x.len()];
    quant::dequantize_row(GgmlType::BF16, &bytes, &mut back).expect("decoder");
    // Half a unit in the last place: 2^-8 relative, or half the subnormal spacing 2^-133.
    let half_subnormal = 2f32.powi(-134);
    for (u, v) in x.iter().zip(&back) {
        let tol = (u.abs() * 2f32.powi(-8)).max(half_subnormal);
        assert!((u - v).abs() <= tol, "{u:e} → {v:e}");
        assert_eq!(v.to_bits() & 0xffff, 0, "a bf16 value");
    }
    for (u, v) in x[512..].iter().zip(&back[512..]).take(5) {
        assert_eq!(u.to_bits(), v.to_bits());
    }
}

#[test]
fn k_quant_rows_must_be_whole_super_blocks() {
    let err = WeightMatrix::from_f32("blk.0.attn_q.weight", GgmlType::Q4_K, 2, 576, &[0.0; 1152])
        .unwrap_err()
        .to_string();
    assert!(err.contains("blk.0.attn_q.weight"), "{err}");
}

#[test]
fn types_without_a_kernel_are_refused_by_name() {
    for dtype in [GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::Q8_K] {
        assert!(!dtype.is_supported_for_compute());
        let err = WeightMatrix::from_f32("output.weight", dtype, 1, 256, &[0.0; 256])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("output.weight") && err.contains(&format!("{dtype:?}")),
            "{err}"
        );
    }
    for dtype in [
        GgmlType::BF16,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        assert!(dtype.is_supported_for_compute(), "{dtype:?}");
    }
}
