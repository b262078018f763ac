//! Sequence pooling, cosine similarity to a constant, and the path-method helpers (path
//! points and the quadrature sum, both compositions of matmul and elementwise primitives).

use super::{tensor, Op};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

fn dims3(t: &Tensor) -> Result<[usize; 3]> {
    t.dims()
        .try_into()
        .map_err(|_| Error::Shape(format!("expected 3-D, got {}", t.shape())))
}

pub fn weighted_seq_sum_vjp(g: &Tensor, x: &Tensor, w: &[f32]) -> Result<Tensor> {
    let dims = dims3(x)?;
    Ok(tensor(
        g.backend().broadcast_seq(g.storage(), w, dims)?,
        x.shape().clone(),
    ))
}

pub fn cosine_vjp(x: &Tensor, c: &Tensor, g: &Tensor) -> Result<Tensor> {
    let d = c.numel();
    let s = x
        .backend()
        .cosine_rows_backward(x.storage(), c.storage(), g.storage(), d)?;
    Ok(tensor(s, x.shape().clone()))
}

/// Path points `x′ + α_k (x − x′)`: `[alphas.len(), ..x.shape()]`. The steps are the outer
/// product of `α: [K, 1]` with `x − x′: [1, n]` (a matmul with `k = 1`, one rounded product
/// per entry), plus `x′` on every row, so every backend's primitives serve and a point has the
/// same bits in any batch.
pub fn interpolate(x: &Tensor, baseline: &Tensor, alphas: &[f32]) -> Result<Tensor> {
    if x.dims() != baseline.dims() {
        return Err(Error::Shape(format!(
            "baseline {} for input {}",
            baseline.shape(),
            x.shape()
        )));
    }
    let (be, n) = (x.backend(), x.numel());
    let diff = be.add(x.storage(), &be.scale(baseline.storage(), -1.0)?)?;
    let spec = crate::backend::MatmulSpec {
        batch: 1,
        m: alphas.len(),
        n,
        k: 1,
        trans_a: false,
        trans_b: false,
        a_batched: false,
        b_batched: false,
    };
    let steps = be.matmul(&be.upload(alphas.to_vec())?, &diff, &spec)?;
    let points = be.add_broadcast(&steps, baseline.storage())?;
    let mut dims = vec![alphas.len()];
    dims.extend_from_slice(x.dims());
    Ok(tensor(points, dims))
}

/// `Σ_k w_k x[k]` over the leading dimension: the product `w · x` of `w: [1, k]` and
/// `x: [k, n]`, so every backend's matmul serves (no kernel of its own).
pub fn weighted_batch_sum(x: &Tensor, w: &[f32]) -> Result<Tensor> {
    let k = w.len();
    if k == 0 || x.dims().first() != Some(&k) {
        return Err(crate::Error::Shape(format!(
            "weighted_batch_sum: {k} weights for {}",
            x.shape()
        )));
    }
    let n = x.shape().numel() / k;
    let weights = Tensor::from_vec(w.to_vec(), [1, k], x.device())?;
    let spec = crate::backend::MatmulSpec {
        batch: 1,
        m: 1,
        n,
        k,
        trans_a: false,
        trans_b: false,
        a_batched: false,
        b_batched: false,
    };
    super::linear::matmul(&weights, &x.reshape([k, n])?, &spec)?.reshape(x.dims()[1..].to_vec())
}

impl Tape {
    /// `x: [b, l, d] -> [b, d]`, `Σ_l w_l x[:, l]` (mean pooling with `w = mask / Σ mask`).
    pub fn weighted_seq_sum(&mut self, x: Var, weights: &[f32]) -> Result<Var> {
        let t = self.value(x);
        let [b, l, d] = dims3(t)?;
        let out = tensor(
            t.backend()
                .weighted_seq_sum(t.storage(), weights, [b, l, d])?,
            [b, d],
        );
        Ok(self.push(
            Op::WeightedSeqSum {
                weights: weights.to_vec(),
            },
            &[x],
            out,
        ))
    }

    /// `x: [b, d] -> [b]`: cosine similarity of each row with the constant `reference: [d]`.
    pub fn cosine_to_const(&mut self, x: Var, reference: &Tensor) -> Result<Var> {
        let t = self.value(x);
        let d = reference.numel();
        let out = tensor(
            t.backend()
                .cosine_rows(t.storage(), reference.storage(), d)?,
            [t.shape().rows()],
        );
        Ok(self.push(
            Op::CosineToConst {
                reference: reference.clone(),
            },
            &[x],
            out,
        ))
    }
}
