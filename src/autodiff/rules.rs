//! Rule sets choose each op's backward. `Gradient` is the exact vector-Jacobian product; other
//! rule sets (LRP, guided backprop, ...) replace the local rule of some ops. A rule set that has
//! no rule for an op says so, and the backward pass fails naming the op: there is no silent
//! fallback to the gradient.

use crate::error::Result;
use crate::ops::Op;
use crate::tensor::Tensor;

/// One recorded node as a rule sees it.
pub struct NodeView<'a> {
    pub op: &'a Op,
    /// The forward inputs, in the op's order.
    pub inputs: &'a [&'a Tensor],
    /// The forward output.
    pub output: &'a Tensor,
    /// Which inputs need a gradient (others may be returned as `None`).
    pub needs_grad: &'a [bool],
}

pub trait RuleSet: Sync {
    fn name(&self) -> &str;
    /// The gradient (or relevance) for each input of `node`, given the one arriving at its
    /// output; `None` when this rule set has no rule for the node's op.
    fn backward(&self, node: &NodeView, grad_out: &Tensor) -> Option<Result<Vec<Option<Tensor>>>>;
}

/// The exact gradient for every op.
pub struct Gradient;

impl RuleSet for Gradient {
    fn name(&self) -> &str {
        "gradient"
    }

    fn backward(&self, node: &NodeView, grad_out: &Tensor) -> Option<Result<Vec<Option<Tensor>>>> {
        Some(node.op.vjp(node, grad_out))
    }
}
