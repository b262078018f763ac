//! The closed set of transformer-level ops. Each family's file holds its forward (a method on
//! `Tape` that computes through the backend and records the node) and its exact backward.

mod activation;
pub(crate) mod attention;
mod elementwise;
mod layout;
pub(crate) mod linear;
mod norm;
mod reduce;
mod rope;
mod softmax;

pub(crate) use elementwise::mul_vjp;

use crate::autodiff::NodeView;
use crate::backend::{Activation, AttentionDims, MatmulSpec, PickKind, SoftmaxMask};
use crate::error::Result;
use crate::tensor::{Shape, Storage, Tensor};

/// Which product of two activations a `Matmul` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulRole {
    /// `A V`: attention probabilities times values.
    AttentionContext,
    Other,
}

/// A recorded op and what its backward needs beyond its inputs and output.
#[derive(Debug)]
#[non_exhaustive]
pub enum Op {
    /// `y = x Wᵀ + b` over the last dimension; `weight: [out, in]`.
    Linear {
        weight: Tensor,
        bias: Option<Tensor>,
    },
    /// Product of two activations; `role` tells rules that treat attention specially which
    /// product this is.
    Matmul {
        spec: MatmulSpec,
        role: MatmulRole,
    },
    Add,
    /// `x + c` with a constant `c` repeated along `x` (position embeddings).
    AddConst,
    Mul,
    /// `gate ⊙ value` of a gated MLP (inputs: gate, value).
    Gate,
    Scale {
        factor: f32,
    },
    Activation {
        f: Activation,
    },
    Softmax {
        cols: usize,
        mask: SoftmaxMask,
    },
    /// `softmax(scale · Q Kᵀ)` (inputs: q, k), fused.
    AttentionProbs {
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    },
    /// `softmax(scale · Q Kᵀ) V` (inputs: q, k, v), fused: the probabilities are not kept.
    Attention {
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    },
    LayerNorm {
        xhat: Tensor,
        rstd: Tensor,
        weight: Tensor,
    },
    RmsNorm {
        rstd: Tensor,
        weight: Tensor,
    },
    Rope {
        cos: Tensor,
        sin: Tensor,
        len: usize,
        head_dim: usize,
    },
    /// `[b, l, h·d] -> [b, h, l, d]`.
    SplitHeads {
        heads: usize,
    },
    /// `[b, h, l, d] -> [b, l, h·d]`.
    MergeHeads,
    RepeatHeads {
        rep: usize,
    },
    SelectPosition {
        pos: usize,
    },
    WeightedSeqSum {
        weights: Vec<f32>,
    },
    CosineToConst {
        reference: Tensor,
    },
    PickSoftmax {
        col: usize,
        kind: PickKind,
    },
    Reshape,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Linear { .. } => "linear",
            Op::Matmul { .. } => "matmul",
            Op::Add => "add",
            Op::AddConst => "add_const",
            Op::Mul => "mul",
            Op::Gate => "gate",
            Op::Scale { .. } => "scale",
            Op::Activation { f } => match f {
                Activation::GeluErf => "gelu",
                Activation::GeluTanh => "gelu_tanh",
                Activation::Silu => "silu",
                Activation::Tanh => "tanh",
                Activation::Relu => "relu",
            },
            Op::Softmax { .. } => "softmax",
            Op::AttentionProbs { .. } => "attention_probs",
            Op::Attention { .. } => "attention",
            Op::LayerNorm { .. } => "layer_norm",
            Op::RmsNorm { .. } => "rms_norm",
            Op::Rope { .. } => "rope",
            Op::SplitHeads { .. } => "split_heads",
            Op::MergeHeads => "merge_heads",
            Op::RepeatHeads { .. } => "repeat_heads",
            Op::SelectPosition { .. } => "select_position",
            Op::WeightedSeqSum { .. } => "weighted_seq_sum",
            Op::CosineToConst { .. } => "cosine",
            Op::PickSoftmax { .. } => "pick_softmax",
            Op::Reshape => "reshape",
        }
    }

    /// The exact vector-Jacobian product: one gradient per input (`None` where not needed).
    pub fn vjp(&self, node: &NodeView, g: &Tensor) -> Grads {
        let x = node.inputs;
        match self {
            Op::Linear { weight, .. } => linear::linear_vjp(g, weight).map(|t| vec![Some(t)]),
            Op::Matmul { spec, .. } => linear::matmul_vjp(x[0], x[1], g, spec, node.needs_grad),
            Op::Add => Ok(vec![Some(g.clone()), Some(g.clone())]),
            Op::AddConst | Op::Reshape => Ok(vec![Some(g.reshape(x[0].shape().clone())?)]),
            Op::Mul | Op::Gate => elementwise::mul_vjp(x[0], x[1], g, node.needs_grad),
            Op::Scale { factor } => elementwise::scale(g, *factor).map(|t| vec![Some(t)]),
            Op::Activation { f } => activation::vjp(x[0], g, *f).map(|t| vec![Some(t)]),
            Op::Softmax { cols, .. } => softmax::vjp(node.output, g, *cols).map(|t| vec![Some(t)]),
            Op::AttentionProbs { dims, scale, .. } => {
                attention::probs_vjp(node, g, dims, *scale, 1.0)
            }
            Op::Attention { dims, scale, mask } => {
                attention::fused_vjp(node, g, dims, *scale, *mask, [1.0; 3])
            }
            Op::LayerNorm { xhat, rstd, weight } => {
                norm::layer_norm_vjp(g, xhat, rstd, weight).map(|t| vec![Some(t)])
            }
            Op::RmsNorm { rstd, weight } => {
                norm::rms_norm_vjp(g, x[0], rstd, weight).map(|t| vec![Some(t)])
            }
            Op::Rope {
                cos,
                sin,
                len,
                head_dim,
            } => rope::rope_raw(g, cos, sin, *len, *head_dim, true).map(|t| vec![Some(t)]),
            Op::SplitHeads { .. } => layout::split_heads_vjp(g).map(|t| vec![Some(t)]),
            Op::MergeHeads => layout::merge_heads_vjp(g, x[0]).map(|t| vec![Some(t)]),
            Op::RepeatHeads { rep } => {
                layout::repeat_heads_vjp(g, x[0], *rep).map(|t| vec![Some(t)])
            }
            Op::SelectPosition { pos } => {
                layout::select_position_vjp(g, x[0], *pos).map(|t| vec![Some(t)])
            }
            Op::WeightedSeqSum { weights } => {
                reduce::weighted_seq_sum_vjp(g, x[0], weights).map(|t| vec![Some(t)])
            }
            Op::CosineToConst { reference } => {
                reduce::cosine_vjp(x[0], reference, g).map(|t| vec![Some(t)])
            }
            Op::PickSoftmax { col, kind } => {
                softmax::pick_vjp(x[0], g, *col, *kind).map(|t| vec![Some(t)])
            }
        }
    }
}

/// The gradients a backward gives a node's inputs, one each (`None` where not needed).
pub type Grads = Result<Vec<Option<Tensor>>>;

/// Wraps a backend result with its shape.
pub(crate) fn tensor(storage: Storage, shape: impl Into<Shape>) -> Tensor {
    Tensor::from_storage(storage, shape.into())
}

pub use elementwise::{add_tensors, scale as scale_tensor};
pub use reduce::{interpolate, weighted_batch_sum};
