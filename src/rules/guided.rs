//! Guided backprop and deconvolution: only activations change.
//!
//! Guided backprop passes back positive gradient where the activation was increasing:
//! `g_in = relu(g) ⊙ relu(f′(u))`, which for ReLU is the classic `relu(g) ⊙ 1[u > 0]`. On
//! ReLU-free transformers (GELU, SiLU) this is our generalisation; Captum's version hooks only
//! ReLU modules and silently equals the plain gradient there. Deconvolution ignores the
//! forward sign: `g_in = relu(g)`.

use super::{exact, like, Grads};
use crate::autodiff::{NodeView, RuleSet};
use crate::backend::Activation;
use crate::ops::Op;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug)]
pub struct Guided {
    deconvolution: bool,
}

impl Guided {
    pub fn backprop() -> Self {
        Guided {
            deconvolution: false,
        }
    }

    pub fn deconvolution() -> Self {
        Guided {
            deconvolution: true,
        }
    }
}

impl RuleSet for Guided {
    fn name(&self) -> &str {
        if self.deconvolution {
            "deconvolution"
        } else {
            "guided-backprop"
        }
    }

    fn backward(&self, node: &NodeView, g: &Tensor) -> Option<Grads> {
        Some(match node.op {
            Op::Activation { f } => {
                let b = g.backend();
                let s = if self.deconvolution {
                    b.activation(g.storage(), Activation::Relu)
                } else {
                    b.guided_backward(node.inputs[0].storage(), g.storage(), *f)
                };
                s.map(|s| vec![Some(like(s, g))])
            }
            Op::Linear { .. }
            | Op::Matmul { .. }
            | Op::Add
            | Op::AddConst
            | Op::Mul
            | Op::Gate
            | Op::Scale { .. }
            | Op::Softmax { .. }
            | Op::AttentionProbs { .. }
            | Op::Attention { .. }
            | Op::LayerNorm { .. }
            | Op::RmsNorm { .. }
            | Op::Rope { .. }
            | Op::SplitHeads { .. }
            | Op::MergeHeads
            | Op::RepeatHeads { .. }
            | Op::SelectPosition { .. }
            | Op::WeightedSeqSum { .. }
            | Op::CosineToConst { .. }
            | Op::PickSoftmax { .. }
            | Op::Reshape => exact(node, g),
        })
    }
}
