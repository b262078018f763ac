//! Fused attention probabilities `softmax(scale · Q Kᵀ)`: one op instead of a matmul, a scale
//! and a softmax, so the raw scores are never stored and the backward runs the softmax Jacobian
//! and the scale in one pass before the two matmuls for `∂Q` and `∂K`.

use super::{linear, tensor, Op};
use crate::autodiff::{NodeView, Tape, Var};
use crate::backend::{AttentionDims, MatmulSpec, SoftmaxMask};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `Q Kᵀ` as a batched matmul over `dims`.
pub fn scores_spec(d: &AttentionDims) -> MatmulSpec {
    MatmulSpec {
        batch: d.batch,
        m: d.q_len,
        n: d.k_len,
        k: d.head_dim,
        trans_a: false,
        trans_b: true,
        a_batched: true,
        b_batched: true,
    }
}

/// `share · ∂/∂(Q, K)` of the probabilities `node.output`, given `g` at them: the gradient
/// (`share = 1`) or a rule's part of it (AttnLRP's uniform rule gives each operand ½).
pub fn probs_vjp(
    node: &NodeView,
    g: &Tensor,
    dims: &AttentionDims,
    scale: f32,
    share: f32,
) -> Result<Vec<Option<Tensor>>> {
    let p = node.output;
    let gs = p
        .backend()
        .softmax_backward(p.storage(), g.storage(), dims.k_len, share * scale)?;
    let gs = tensor(gs, p.shape().clone());
    let (q, k) = (node.inputs[0], node.inputs[1]);
    linear::matmul_vjp(q, k, &gs, &scores_spec(dims), node.needs_grad)
}

/// The scaled scores `scale · Q Kᵀ` the fused op never stores (for rules that need them).
pub fn scaled_scores(q: &Tensor, k: &Tensor, dims: &AttentionDims, scale: f32) -> Result<Tensor> {
    let s = linear::matmul(q, k, &scores_spec(dims))?;
    super::scale_tensor(&s, scale)
}

impl Tape {
    /// Attention probabilities `softmax(scale · Q Kᵀ)` of `q: [.., q_len, d]` and
    /// `k: [.., k_len, d]` (same leading dimensions): `[.., q_len, k_len]`.
    pub fn attention_probs(
        &mut self,
        q: Var,
        k: Var,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Var> {
        let (qt, kt) = (self.value(q), self.value(k));
        let (qd, kd) = (qt.dims(), kt.dims());
        let n = qd.len();
        if n < 2 || kd.len() != n || qd[..n - 2] != kd[..n - 2] || qd[n - 1] != kd[n - 1] {
            return Err(Error::Shape(format!(
                "attention_probs: q {qd:?} against k {kd:?}"
            )));
        }
        let dims = AttentionDims {
            batch: qd[..n - 2].iter().product(),
            q_len: qd[n - 2],
            k_len: kd[n - 2],
            head_dim: qd[n - 1],
        };
        let mut out_dims = qd[..n - 1].to_vec();
        out_dims.push(dims.k_len);
        let out = qt
            .backend()
            .attention_probs(qt.storage(), kt.storage(), dims, scale, mask)?;
        let out = tensor(out, out_dims);
        Ok(self.push(Op::AttentionProbs { dims, scale, mask }, &[q, k], out))
    }
}
