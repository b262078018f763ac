//! One forward and one backward pass under a rule set: the engine of saliency, input ×
//! gradient, guided backprop, deconvolution and the LRP family, which differ only in the rule
//! set and in whether the modified gradient is multiplied by the input.

use super::evaluate;
use crate::autodiff::RuleSet;
use crate::error::Result;
use crate::tensor::Tensor;

/// `F` and the rule set's map for every row of `xs: [b, len, hidden]` (maps flattened,
/// row-major), times the input where `times_input`.
pub fn maps_with(
    p: &super::Prepared,
    rules: &dyn RuleSet,
    times_input: bool,
    xs: &Tensor,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (f, g) = p.gradients_with(xs, rules)?;
    Ok((f, map_of(g, xs, times_input)?))
}

/// The map of a modified gradient `g` at `xs`: `g`, or `g ⊙ xs`.
fn map_of(g: Tensor, xs: &Tensor, times_input: bool) -> Result<Vec<f32>> {
    let mut map = g.to_vec()?;
    if times_input {
        for (m, x) in map.iter_mut().zip(xs.to_vec()?) {
            *m *= x;
        }
    }
    Ok(map)
}

/// A method of one forward and one backward pass: its rule set, whether the map is multiplied
/// by the input, and how a row becomes a token's score. Its map at any input is what
/// SmoothGrad and VarGrad average (`MapAt`).
pub trait SinglePass: Send + Sync {
    fn info(&self) -> &'static crate::attribution::MethodInfo;
    fn rules(&self) -> Box<dyn RuleSet>;
    fn times_input(&self) -> bool;
    fn token_score(&self) -> crate::attribution::TokenScore;

    /// See `Method::non_finite_hint`.
    fn non_finite_hint(&self) -> Option<&'static str> {
        None
    }

    /// The method's run: its map at the prompt, from the target's own forward pass where
    /// one was kept.
    fn run_single(&self, p: &super::Prepared) -> Result<crate::attribution::Attribution> {
        let rules = self.rules();
        let (f, map) = match p.take_first_pass() {
            Some(pass) => from_pass(p, pass, rules.as_ref(), self.times_input())?,
            None => maps_with(p, rules.as_ref(), self.times_input(), &p.x_batch()?)?,
        };
        Ok(p.result(
            SinglePass::info(self).name,
            SinglePass::token_score(self),
            map,
            f[0],
        ))
    }
}

impl<T: SinglePass> crate::attribution::Method for T {
    fn info(&self) -> &'static crate::attribution::MethodInfo {
        SinglePass::info(self)
    }

    fn run(&self, p: &super::Prepared) -> Result<crate::attribution::Attribution> {
        self.run_single(p)
    }

    fn as_map(&self) -> Option<&dyn crate::attribution::MapAt> {
        Some(self)
    }

    fn uses_first_pass(&self) -> bool {
        true
    }

    fn non_finite_hint(&self) -> Option<&'static str> {
        SinglePass::non_finite_hint(self)
    }
}

/// `F` and the rule set's map from a recorded forward pass of the prompt.
fn from_pass(
    p: &super::Prepared,
    pass: super::evaluate::RecordedPass,
    rules: &dyn RuleSet,
    times_input: bool,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (f, g) = evaluate::gradients_of_pass(p.model, &p.target, pass, rules, &[1.0])?;
    Ok((f, map_of(g, &p.x, times_input)?))
}

impl<T: SinglePass> crate::attribution::MapAt for T {
    fn maps(&self, p: &super::Prepared, xs: &Tensor) -> Result<Vec<f32>> {
        let rules = self.rules();
        Ok(maps_with(p, rules.as_ref(), self.times_input(), xs)?.1)
    }

    fn rows_per_input(&self) -> usize {
        1
    }

    fn token_score(&self) -> crate::attribution::TokenScore {
        SinglePass::token_score(self)
    }
}
