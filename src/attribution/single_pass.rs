//! Methods of one forward and one backward pass: saliency, input × gradient, guided backprop,
//! deconvolution and the LRP family. They differ only in the rule set and in whether the
//! modified gradient is multiplied by the input.

use super::{evaluate, Method, Options};
use crate::autodiff::{Gradient, RuleSet};
use crate::error::{Error, Result};
use crate::models::Model;
use crate::rules::{Guided, Lrp};
use crate::tensor::Tensor;

/// The rule set a single-pass method runs, and whether it multiplies by the input.
fn rules_for(method: Method, opts: &Options) -> Result<(Box<dyn RuleSet>, bool)> {
    Ok(match method {
        Method::Saliency => (Box::new(Gradient), false),
        Method::InputXGradient => (Box::new(Gradient), true),
        Method::GuidedBackprop => (Box::new(Guided::backprop()), false),
        Method::Deconvolution => (Box::new(Guided::deconvolution()), false),
        Method::LrpEpsilon => (Box::new(Lrp::epsilon(opts.epsilon)), true),
        Method::LrpGamma => (Box::new(Lrp::gamma(opts.gamma, opts.epsilon)), true),
        Method::AttnLrp => (Box::new(Lrp::attn_lrp(opts.epsilon)), true),
        Method::CpLrp => (Box::new(Lrp::cp_lrp(opts.epsilon)), true),
        other => {
            return Err(Error::InvalidArgument(format!(
                "{} is not a single-pass method",
                other.name()
            )))
        }
    })
}

/// `F` and the method's map for every row of `xs: [b, len, hidden]` (maps flattened, row-major).
pub fn maps(
    model: &Model,
    target: &super::Target,
    method: Method,
    opts: &Options,
    xs: &Tensor,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (rules, times_input) = rules_for(method, opts)?;
    maps_with(model, target, rules.as_ref(), times_input, xs)
}

/// As `maps`, for any rule set (a user's own included).
pub fn maps_with(
    model: &Model,
    target: &super::Target,
    rules: &dyn RuleSet,
    times_input: bool,
    xs: &Tensor,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (f, g) = evaluate::gradients_with(model, target, xs, rules)?;
    let mut map = g.to_vec()?;
    if times_input {
        for (m, x) in map.iter_mut().zip(xs.to_vec()?) {
            *m *= x;
        }
    }
    Ok((f, map))
}
