//! What a method is: the `Method` trait its file implements, and the registry entry
//! (`MethodInfo`) that the CLI, the library and later Python and the server read its name,
//! summary, cost and options from.

use super::engine::Prepared;
use super::options::{OptionSpec, Values};
use super::Attribution;
use crate::error::Result;
use crate::tensor::Tensor;

/// The kind of method, for `--help` and the README's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// One forward and one backward pass of the plain gradient.
    Gradient,
    /// Path integrals of the gradient.
    Path,
    /// Modified backward rules (LRP, guided backprop, DeepLIFT).
    Rule,
    /// Averages of gradients over random draws.
    Sampling,
    /// Forward passes of perturbed inputs only.
    Perturbation,
    /// Read from the attention weights.
    Attention,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Gradient => "gradient",
            Family::Path => "path",
            Family::Rule => "rule",
            Family::Sampling => "sampling",
            Family::Perturbation => "perturbation",
            Family::Attention => "attention",
        }
    }
}

/// How a method's `[tokens, hidden]` map becomes one score per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScore {
    /// Gradient-like maps (saliency, guided backprop, deconvolution): the L2 norm.
    Norm,
    /// Contribution maps: the sum, which keeps completeness and conservation.
    Sum,
}

/// A method's registry entry.
pub struct MethodInfo {
    pub name: &'static str,
    /// Other names the CLI accepts (`ig`).
    pub aliases: &'static [&'static str],
    /// What the method computes, in a line.
    pub summary: &'static str,
    /// Its cost in forward and backward passes.
    pub cost: &'static str,
    pub family: Family,
    pub options: &'static [OptionSpec],
    /// The method configured from option values (its defaults where none are given); an
    /// out-of-range value is refused here, before any model loads.
    pub build: fn(&Values) -> Result<Box<dyn Method>>,
}

/// An attribution method, configured: its options are its fields.
pub trait Method: Send + Sync {
    fn info(&self) -> &'static MethodInfo;

    fn name(&self) -> &'static str {
        self.info().name
    }

    /// The attribution of the prepared input's target.
    fn run(&self, p: &Prepared) -> Result<Attribution>;

    /// A method whose map can be computed at any input, in batches (the single-pass methods,
    /// integrated gradients): what SmoothGrad and VarGrad average.
    fn as_map(&self) -> Option<&dyn MapAt> {
        None
    }

    /// Whether the method backpropagates from the prompt itself first: then the forward
    /// pass that resolves an automatic target is recorded for it (`Prepared::take_first_pass`).
    fn uses_first_pass(&self) -> bool {
        false
    }

    /// What to try when the result is not finite although the weights are: the method's own
    /// numerical weak point, where it has one.
    fn non_finite_hint(&self) -> Option<&'static str> {
        None
    }

    /// What to try when the convergence delta misses `F(x) − F(x′)` by more than 5%.
    fn delta_hint(&self) -> &'static str {
        ""
    }
}

/// A map at any batch of inputs.
pub trait MapAt: Sync {
    /// The method's maps at every row of `xs: [rows, tokens, hidden]`, flattened.
    fn maps(&self, p: &Prepared, xs: &Tensor) -> Result<Vec<f32>>;
    /// Gradient evaluations per input row (chunk planning).
    fn rows_per_input(&self) -> usize;
    fn token_score(&self) -> TokenScore;
}
