//! DeepLIFT with the rescale rule. The batch holds the inputs then their references (the
//! reference of row i is row i + batch/2), the target is seeded with 1 on the input rows and 0
//! on the reference rows, and each rule returns multipliers `m` with `Σ m ⊙ Δx = Σ g ⊙ Δy`
//! exactly, so the attributions `m ⊙ (x − x′)` sum to `F(x) − F(x′)` (summation-to-delta):
//!
//! - activations: the rescale rule `Δy/Δx` (the derivative at the midpoint where |Δx| < 1e-6);
//! - products of two activations: `Δ(ab) = ā Δb + b̄ Δa` with the means `ā = (a + a′)/2`,
//!   i.e. the gradient taken at the mean operands (exact for bilinear maps);
//! - row maps that mix their inputs (softmax over visible entries, layer/RMS norm, cosine,
//!   softmax pick): the rank-one rescale `Δx (Δy · g)/|Δx|²`, which is `Δy/Δx` for one input;
//! - linear maps: the gradient, which is exact for them.
//!
//! Captum's DeepLift falls back to the gradient on GELU, LayerNorm and functional softmax
//! without a word, breaking summation-to-delta; here every op has a rule.

use super::{exact, like, Grads};
use crate::autodiff::{NodeView, RuleSet};
use crate::backend::SoftmaxMask;
use crate::ops::{self, Op};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, Default)]
pub struct DeepLift;

/// Both halves of a DeepLIFT batch replaced by their mean `(a + a′)/2`: the product of
/// `[[½, ½], [½, ½]]` with the batch as `[2, half]` (one rounding per entry, as `½(a + a′)`).
fn mean(t: &Tensor) -> crate::Result<Tensor> {
    let half = t.numel() / 2;
    if half * 2 != t.numel() {
        return Err(crate::Error::Shape(format!(
            "DeepLIFT pairs each input with a reference, got a batch of {}",
            t.shape()
        )));
    }
    let halves = Tensor::from_vec(vec![0.5; 4], [2, 2], t.device())?;
    let spec = crate::backend::MatmulSpec {
        batch: 1,
        m: 2,
        n: half,
        k: 2,
        trans_a: false,
        trans_b: false,
        a_batched: false,
        b_batched: false,
    };
    ops::linear::matmul(&halves, t, &spec)?.reshape(t.dims().to_vec())
}

impl DeepLift {
    fn rule(&self, node: &NodeView, g: &Tensor) -> Grads {
        let (x, y) = (node.inputs, node.output);
        let b = g.backend();
        let rank1 = |x_cols: usize, y_cols: usize, mask: SoftmaxMask| -> Grads {
            let exact_g = exact(node, g)?.swap_remove(0).expect("single-input op");
            let s = b.rank1_rescale_halves(
                x[0].storage(),
                y.storage(),
                g.storage(),
                exact_g.storage(),
                x_cols,
                y_cols,
                mask,
            )?;
            Ok(vec![Some(like(s, x[0]))])
        };
        match node.op {
            Op::Activation { f } => Ok(vec![Some(like(
                b.rescale_halves(x[0].storage(), y.storage(), g.storage(), *f)?,
                g,
            ))]),
            Op::Matmul { spec, .. } => {
                ops::linear::matmul_vjp(&mean(x[0])?, &mean(x[1])?, g, spec, node.needs_grad)
            }
            Op::Mul | Op::Gate => ops::mul_vjp(&mean(x[0])?, &mean(x[1])?, g, node.needs_grad),
            Op::Softmax { cols, mask } => rank1(*cols, *cols, *mask),
            // The rescale rule at the softmax (on the scaled scores, recomputed), the scale's
            // gradient, and the bilinear split at `Q Kᵀ`.
            Op::AttentionProbs { dims, scale, mask } => {
                let scores = ops::attention::scaled_scores(x[0], x[1], dims, *scale)?;
                let cols = dims.k_len;
                let exact_g = b.softmax_backward(y.storage(), g.storage(), cols, 1.0)?;
                let s = b.rank1_rescale_halves(
                    scores.storage(),
                    y.storage(),
                    g.storage(),
                    &exact_g,
                    cols,
                    cols,
                    *mask,
                )?;
                let gs = ops::scale_tensor(&like(s, y), *scale)?;
                let spec = dims.scores_spec();
                ops::linear::matmul_vjp(&mean(x[0])?, &mean(x[1])?, &gs, &spec, node.needs_grad)
            }
            // The fused attention as its pieces: the probabilities (recomputed for both halves)
            // and the bilinear context, each under the rules above.
            Op::Attention { .. } => ops::attention::unfused(node, g, &|n, g| self.rule(n, g)),
            Op::LayerNorm { weight, .. } | Op::RmsNorm { weight, .. } => {
                rank1(weight.numel(), weight.numel(), SoftmaxMask::None)
            }
            Op::CosineToConst { reference } => rank1(reference.numel(), 1, SoftmaxMask::None),
            Op::PickSoftmax { .. } => rank1(x[0].shape().last(), 1, SoftmaxMask::None),
            Op::Linear { .. }
            | Op::Add
            | Op::AddConst
            | Op::Scale { .. }
            | Op::Rope { .. }
            | Op::SplitHeads { .. }
            | Op::MergeHeads
            | Op::RepeatHeads { .. }
            | Op::SelectPosition { .. }
            | Op::WeightedSeqSum { .. }
            | Op::Reshape => exact(node, g),
        }
    }
}

impl RuleSet for DeepLift {
    fn name(&self) -> &str {
        "deeplift"
    }

    fn backward(&self, node: &NodeView, grad_out: &Tensor) -> Option<Grads> {
        Some(self.rule(node, grad_out))
    }
}
