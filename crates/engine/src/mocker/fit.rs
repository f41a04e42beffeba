//! Least-squares fit of `FittedCoefficients` to profile samples.
//!
//! The fit minimises the sum of squared *relative* errors, Σ ((x_i·c − y_i) / y_i)², so a 7 ms
//! decode step counts as much as a 2 s prefill. It solves the normal equations of the
//! column-scaled, row-weighted system by Gaussian elimination with partial pivoting. Coefficients
//! must not be negative (a negative per-token cost would make bigger steps faster): while the
//! solution has a negative coefficient, the most negative one is fixed at 0 and the rest refitted
//! (a small active-set method; enough for four features).

use super::error::MockerError;
use super::profile_file::ProfileSample;
use super::timing::FittedCoefficients;

const K: usize = 4;

/// Fits the coefficients to `samples` (at least 4, with positive `measured_ms`).
pub fn fit_coefficients(samples: &[ProfileSample]) -> Result<FittedCoefficients, MockerError> {
    let fail = |reason| MockerError::Fit {
        samples: samples.len(),
        reason,
    };
    if samples.len() < K {
        return Err(fail("need at least 4 samples"));
    }
    if samples
        .iter()
        .any(|s| !(s.measured_ms.is_finite() && s.measured_ms > 0.0))
    {
        return Err(fail("every measured time must be positive and finite"));
    }
    let rows: Vec<[f64; K]> = samples
        .iter()
        .map(|s| FittedCoefficients::features(s.total_tokens, s.logit_rows, s.attention_pairs))
        .collect();
    let y: Vec<f64> = samples.iter().map(|s| s.measured_ms).collect();
    let c = nonneg_relative_least_squares(&rows, &y)
        .ok_or_else(|| fail("the samples do not determine the coefficients"))?;
    Ok(FittedCoefficients::from_array(c))
}

/// Largest |predicted − measured| / measured over `samples`.
pub fn max_relative_error(c: &FittedCoefficients, samples: &[ProfileSample]) -> f64 {
    samples
        .iter()
        .map(|s| {
            let p = c.predict_ms(s.total_tokens, s.logit_rows, s.attention_pairs);
            (p - s.measured_ms).abs() / s.measured_ms
        })
        .fold(0.0, f64::max)
}

/// Non-negative least squares of relative errors; `None` if the system is singular.
pub fn nonneg_relative_least_squares(rows: &[[f64; K]], y: &[f64]) -> Option<[f64; K]> {
    let mut free = [true; K];
    loop {
        let c = relative_least_squares(rows, y, &free)?;
        let worst = (0..K)
            .filter(|&j| free[j] && c[j] < 0.0)
            .min_by(|&a, &b| c[a].total_cmp(&c[b]));
        match worst {
            Some(j) => free[j] = false,
            None => return Some(c),
        }
    }
}

/// Least squares of relative errors over the `free` columns (the others are 0).
fn relative_least_squares(rows: &[[f64; K]], y: &[f64], free: &[bool; K]) -> Option<[f64; K]> {
    let cols: Vec<usize> = (0..K).filter(|&j| free[j]).collect();
    let n = cols.len();
    if n == 0 {
        return Some([0.0; K]);
    }
    // Scale each column to unit max so the normal equations stay well conditioned.
    let mut scale = vec![0.0f64; n];
    for (i, row) in rows.iter().enumerate() {
        for (k, &j) in cols.iter().enumerate() {
            scale[k] = f64::max(scale[k], (row[j] / y[i]).abs());
        }
    }
    if scale.contains(&0.0) {
        return None;
    }
    let mut a = vec![vec![0.0f64; n + 1]; n];
    for (i, row) in rows.iter().enumerate() {
        let w = 1.0 / y[i];
        let x: Vec<f64> = cols
            .iter()
            .zip(&scale)
            .map(|(&j, s)| row[j] * w / s)
            .collect();
        for p in 0..n {
            for q in 0..n {
                a[p][q] += x[p] * x[q];
            }
            a[p][n] += x[p] * y[i] * w;
        }
    }
    let solution = solve(a)?;
    let mut c = [0.0; K];
    for (k, &j) in cols.iter().enumerate() {
        c[j] = solution[k] / scale[k];
    }
    Some(c)
}

/// Solves the augmented n × (n+1) system by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let n = a.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let (top, below) = a.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for row in below {
            let f = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let tail: f64 = (r + 1..n).map(|c| a[r][c] * x[c]).sum();
        x[r] = (a[r][n] - tail) / a[r][r];
    }
    Some(x)
}
