//! The LRP family in its efficient gradient × input form: each rule is a modified local
//! gradient, and the relevance of the input is `x ⊙ g` when the target is seeded with 1.
//!
//! - linear layers: the ε-rule `g_in = Wᵀ(g ⊙ z / (z + ε sign z))` or the γ-rule with
//!   `W + γW⁺` (and `b + γb⁺`) in the denominator and the backward;
//! - activations: the identity rule `g_in = g ⊙ f(x)/x` (relevance passes unchanged);
//! - products of two activations (attention scores and context, gated MLP): the uniform rule,
//!   half the gradient to each operand;
//! - layer and RMS norms, and the cosine target's norm: the normaliser held constant;
//! - softmax: its exact gradient (AttnLRP's Taylor rule in the efficient form); the fused
//!   attention probabilities: that softmax rule, then the uniform rule at `Q Kᵀ`; the fused
//!   attention `softmax(scale · Q Kᵀ) V`: both, as ¼, ¼ and ½ of its gradient to Q, K and V;
//! - additions and linear data movement: the exact gradient (which is the ε-rule for a sum).
//!
//! CP-LRP is AttnLRP with no relevance through the attention weights (none to Q and K, all
//! of the context's to V) and none through a gated MLP's gate.

use super::{exact, like, scaled, Grads};
use crate::autodiff::{NodeView, RuleSet};
use crate::backend::Activation;
use crate::ops::{self, linear, MatmulRole, Op};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinearRule {
    Epsilon(f32),
    Gamma { gamma: f32, epsilon: f32 },
}

#[derive(Clone, Debug)]
pub struct Lrp {
    name: &'static str,
    linear: LinearRule,
    /// CP-LRP: attention weights and gates pass no relevance.
    conservative: bool,
}

/// `g ⊙ f(x)/x`, stabilised like LXT (a tiny ε, sign-aware here so x ≈ −ε cannot blow up).
const IDENTITY_EPS: f32 = 1e-10;

impl Lrp {
    pub fn epsilon(epsilon: f32) -> Self {
        Lrp {
            name: "lrp-epsilon",
            linear: LinearRule::Epsilon(epsilon),
            conservative: false,
        }
    }

    pub fn gamma(gamma: f32, epsilon: f32) -> Self {
        Lrp {
            name: "lrp-gamma",
            linear: LinearRule::Gamma { gamma, epsilon },
            conservative: false,
        }
    }

    pub fn attn_lrp(epsilon: f32) -> Self {
        Lrp {
            name: "attnlrp",
            linear: LinearRule::Epsilon(epsilon),
            conservative: false,
        }
    }

    pub fn cp_lrp(epsilon: f32) -> Self {
        Lrp {
            name: "cp-lrp",
            linear: LinearRule::Epsilon(epsilon),
            conservative: true,
        }
    }

    fn rule(&self, node: &NodeView, g: &Tensor) -> Grads {
        let (x, y) = (node.inputs, node.output);
        let b = y.backend();
        match node.op {
            Op::Linear { weight, bias } => {
                let gx = match self.linear {
                    LinearRule::Epsilon(eps) => {
                        let r = like(
                            b.stabilized_ratio(y.storage(), y.storage(), g.storage(), eps)?,
                            g,
                        );
                        linear::linear_vjp(&r, weight)?
                    }
                    LinearRule::Gamma { gamma, epsilon } => {
                        gamma_rule(x[0], y, g, weight, bias.as_ref(), gamma, epsilon)?
                    }
                };
                Ok(vec![Some(gx)])
            }
            Op::Matmul { role, .. } if self.conservative => match role {
                MatmulRole::AttentionContext => Ok(vec![None, exact(node, g)?.swap_remove(1)]),
                MatmulRole::Other => scaled(exact(node, g)?, 0.5),
            },
            // Softmax and scale take the exact gradient, `Q Kᵀ` the uniform rule: ½ of the
            // fused backward to each of Q and K (none under CP-LRP).
            Op::AttentionProbs { .. } if self.conservative => Ok(vec![None, None]),
            Op::AttentionProbs { dims, scale, .. } => {
                ops::attention::probs_vjp(node, g, dims, *scale, 0.5)
            }
            // The fused attention: the same rules as its pieces, as shares of its gradient (½
            // at `A V`, then ½ again at `Q Kᵀ`; CP-LRP: all of it to V).
            Op::Attention { dims, scale, mask } => {
                let shares = if self.conservative {
                    [0.0, 0.0, 1.0]
                } else {
                    [0.25, 0.25, 0.5]
                };
                ops::attention::fused_vjp(node, g, dims, *scale, *mask, shares)
            }
            Op::Gate if self.conservative => Ok(vec![None, exact(node, g)?.swap_remove(1)]),
            Op::Matmul { .. } | Op::Mul | Op::Gate => scaled(exact(node, g)?, 0.5),
            Op::Activation { .. } => Ok(vec![Some(like(
                b.stabilized_ratio(y.storage(), x[0].storage(), g.storage(), IDENTITY_EPS)?,
                g,
            ))]),
            Op::LayerNorm { rstd, weight, .. } => {
                let s = b.layer_norm_const_backward(
                    g.storage(),
                    rstd.storage(),
                    weight.storage(),
                    weight.numel(),
                )?;
                Ok(vec![Some(like(s, g))])
            }
            Op::RmsNorm { rstd, weight } => {
                let s = b.rms_norm_const_backward(
                    g.storage(),
                    rstd.storage(),
                    weight.storage(),
                    weight.numel(),
                )?;
                Ok(vec![Some(like(s, g))])
            }
            Op::CosineToConst { reference } => {
                let s = b.cosine_const_norm_backward(
                    x[0].storage(),
                    reference.storage(),
                    g.storage(),
                    reference.numel(),
                )?;
                Ok(vec![Some(like(s, x[0]))])
            }
            Op::Add
            | Op::AddConst
            | Op::Scale { .. }
            | Op::Softmax { .. }
            | Op::Rope { .. }
            | Op::SplitHeads { .. }
            | Op::MergeHeads
            | Op::RepeatHeads { .. }
            | Op::SelectPosition { .. }
            | Op::WeightedSeqSum { .. }
            | Op::PickSoftmax { .. }
            | Op::Reshape => exact(node, g),
        }
    }
}

/// `g_in = W_γᵀ (g ⊙ z / z_γ)` with `W_γ = W + γW⁺`, `z_γ = x W_γᵀ + b + γb⁺`.
fn gamma_rule(
    x: &Tensor,
    z: &Tensor,
    g: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    gamma: f32,
    eps: f32,
) -> crate::Result<Tensor> {
    let plus = |t: &Tensor| -> crate::Result<Tensor> {
        let b = t.backend();
        let pos = like(b.activation(t.storage(), Activation::Relu)?, t);
        ops::add_tensors(t, &ops::scale_tensor(&pos, gamma)?)
    };
    // W⁺ needs the values themselves: a stored-format weight is decoded for this layer only.
    let w_gamma = plus(&weight.dense()?)?;
    let b_gamma = bias.map(plus).transpose()?;
    let z_gamma = linear::linear_forward(x, &w_gamma, b_gamma.as_ref())?;
    let r = like(
        z.backend()
            .stabilized_ratio(z.storage(), z_gamma.storage(), g.storage(), eps)?,
        g,
    );
    linear::linear_vjp(&r, &w_gamma)
}

impl RuleSet for Lrp {
    fn name(&self) -> &str {
        self.name
    }

    fn backward(&self, node: &NodeView, grad_out: &Tensor) -> Option<Grads> {
        Some(self.rule(node, grad_out))
    }
}
