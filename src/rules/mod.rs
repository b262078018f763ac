//! Rule sets beyond the exact gradient: the LRP family (LRP-ε, LRP-γ, AttnLRP, CP-LRP), guided
//! backprop and deconvolution, and DeepLIFT's rescale rule.
//!
//! Each rule set names a backward for every op kind in an exhaustive `match`, so an op added
//! to the engine does not compile until every rule set says what to do with it; there is no
//! silent fallback to the gradient. The local rules run on backend primitives, so they work on
//! every backend.

mod deeplift;
mod guided;
mod lrp;

pub use deeplift::DeepLift;
pub use guided::Guided;
pub use lrp::{LinearRule, Lrp};

use crate::autodiff::NodeView;
use crate::ops::{tensor, Grads};
use crate::tensor::{Storage, Tensor};

/// The exact vector-Jacobian product (for the ops a rule set leaves alone).
fn exact(node: &NodeView, g: &Tensor) -> Grads {
    node.op.vjp(node, g)
}

/// A backend result shaped like `like`.
fn like(storage: Storage, like: &Tensor) -> Tensor {
    tensor(storage, like.shape().clone())
}

/// Every input gradient multiplied by `factor`.
fn scaled(grads: Vec<Option<Tensor>>, factor: f32) -> Grads {
    grads
        .into_iter()
        .map(|g| g.map(|g| crate::ops::scale_tensor(&g, factor)).transpose())
        .collect()
}
