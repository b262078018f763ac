//! Attention in two fused forms:
//!
//! - the probabilities `softmax(scale · Q Kᵀ)`: one op instead of a matmul, a scale and a
//!   softmax, so the raw scores are never stored and the backward runs the softmax Jacobian
//!   and the scale in one pass before the two matmuls for `∂Q` and `∂K`; the methods that read
//!   or replace the probabilities, and soft-capped attention, take this form with `A V` after;
//! - the whole `softmax(scale · Q Kᵀ) V`, whose probabilities are never stored at all (the
//!   backward recomputes them), so a pass's memory grows linearly with the length. Rule sets
//!   give its backward as shares of the three input gradients, or see it as its two pieces
//!   (`unfused`).

use super::{linear, tensor, Grads, Op};
use crate::autodiff::{NodeView, Tape, Var};
use crate::backend::{AttentionDims, SoftmaxMask};
use crate::error::{Error, Result};
use crate::ops::MatmulRole;
use crate::tensor::Tensor;

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
    linear::matmul_vjp(q, k, &gs, &dims.scores_spec(), node.needs_grad)
}

/// The scaled scores `scale · Q Kᵀ` the fused op never stores (for rules that need them).
pub fn scaled_scores(q: &Tensor, k: &Tensor, dims: &AttentionDims, scale: f32) -> Result<Tensor> {
    let s = linear::matmul(q, k, &dims.scores_spec())?;
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
        let dims = attention_dims(self.value(q), self.value(k), "attention_probs")?;
        let (qt, kt) = (self.value(q), self.value(k));
        let out = qt
            .backend()
            .attention_probs(qt.storage(), kt.storage(), dims, scale, mask)?;
        let out = tensor(out, probs_dims(qt, &dims));
        Ok(self.push(Op::AttentionProbs { dims, scale, mask }, &[q, k], out))
    }
}

/// The input gradients of the fused attention `node` given `g` at its output, each times its
/// share (`[q, k, v]`; 0 gives none): the gradient with shares of 1.
pub fn fused_vjp(
    node: &NodeView,
    g: &Tensor,
    dims: &AttentionDims,
    scale: f32,
    mask: SoftmaxMask,
    shares: [f32; 3],
) -> Grads {
    let [q, k, v] = [node.inputs[0], node.inputs[1], node.inputs[2]];
    // An input nobody differentiates gets no share, so its product is skipped.
    let shares = [0, 1, 2].map(|i| if node.needs_grad[i] { shares[i] } else { 0.0 });
    let grads = q.backend().attention_backward(
        q.storage(),
        k.storage(),
        v.storage(),
        g.storage(),
        *dims,
        scale,
        mask,
        shares,
    )?;
    Ok(grads
        .into_iter()
        .zip([q, k, v])
        .map(|(s, like)| s.map(|s| tensor(s, like.shape().clone())))
        .collect())
}

/// The fused attention `node` as its two pieces, the probabilities `A` (recomputed) and the
/// context `A V`, each given to `rule`: what a rule set that has no rule for the fused op
/// means by its rules for the pieces (DeepLIFT, a rule set written outside the crate).
pub fn unfused(node: &NodeView, g: &Tensor, rule: &dyn Fn(&NodeView, &Tensor) -> Grads) -> Grads {
    let Op::Attention { dims, scale, mask } = node.op else {
        return Err(Error::Other(format!(
            "unfused: {} is not attention",
            node.op.name()
        )));
    };
    let [q, k, v] = [node.inputs[0], node.inputs[1], node.inputs[2]];
    let p = q
        .backend()
        .attention_probs(q.storage(), k.storage(), *dims, *scale, *mask)?;
    let p = tensor(p, probs_dims(q, dims));
    let needs_p = node.needs_grad[0] || node.needs_grad[1];
    let context = Op::Matmul {
        spec: dims.context_spec(false),
        role: MatmulRole::AttentionContext,
    };
    let context_view = NodeView {
        op: &context,
        inputs: &[&p, v],
        output: node.output,
        needs_grad: &[needs_p, node.needs_grad[2]],
    };
    let mut context_grads = rule(&context_view, g)?;
    let gv = context_grads.pop().flatten();
    let (gq, gk) = match context_grads.pop().flatten() {
        Some(gp) if needs_p => {
            let probs = Op::AttentionProbs {
                dims: *dims,
                scale: *scale,
                mask: *mask,
            };
            let probs_view = NodeView {
                op: &probs,
                inputs: &[q, k],
                output: &p,
                needs_grad: &node.needs_grad[..2],
            };
            let mut qk = rule(&probs_view, &gp)?;
            let gk = qk.pop().flatten();
            (qk.pop().flatten(), gk)
        }
        _ => (None, None),
    };
    Ok(vec![gq, gk, gv])
}

impl Tape {
    /// Attention `softmax(scale · Q Kᵀ) V` of `q: [.., q_len, d]` and `k, v: [.., k_len, d]`
    /// (same leading dimensions), `[.., q_len, d]`, without keeping the probabilities.
    pub fn attention(
        &mut self,
        q: Var,
        k: Var,
        v: Var,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Var> {
        let dims = attention_dims(self.value(q), self.value(k), "attention")?;
        // Handles (the storage is shared), so that the tape may replay the output.
        let (qt, kt, vt) = (
            self.value(q).clone(),
            self.value(k).clone(),
            self.value(v).clone(),
        );
        if vt.dims() != kt.dims() {
            return Err(Error::Shape(format!(
                "attention: v {:?} against k {:?}",
                vt.dims(),
                kt.dims()
            )));
        }
        let shape = qt.shape().clone();
        let compute = || {
            let out = qt.backend().attention(
                qt.storage(),
                kt.storage(),
                vt.storage(),
                dims,
                scale,
                mask,
            )?;
            Ok(tensor(out, shape.clone()))
        };
        let out = self.attention_output(shape.dims(), compute)?;
        Ok(self.push(Op::Attention { dims, scale, mask }, &[q, k, v], out))
    }
}

/// The sizes of `q: [.., q_len, d]` against `k: [.., k_len, d]`.
fn attention_dims(q: &Tensor, k: &Tensor, what: &str) -> Result<AttentionDims> {
    let (qd, kd) = (q.dims(), k.dims());
    let n = qd.len();
    if n < 2 || kd.len() != n || qd[..n - 2] != kd[..n - 2] || qd[n - 1] != kd[n - 1] {
        return Err(Error::Shape(format!("{what}: q {qd:?} against k {kd:?}")));
    }
    Ok(AttentionDims {
        batch: qd[..n - 2].iter().product(),
        q_len: qd[n - 2],
        k_len: kd[n - 2],
        head_dim: qd[n - 1],
    })
}

/// The probabilities' shape for `q: [.., q_len, d]`: `[.., q_len, k_len]`.
fn probs_dims(q: &Tensor, dims: &AttentionDims) -> Vec<usize> {
    let mut d = q.dims().to_vec();
    *d.last_mut().expect("q has dimensions") = dims.k_len;
    d
}
