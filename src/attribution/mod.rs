//! Attribution. `engine/` holds what methods are built from; `methods/` holds one file per
//! method, each a `Method` impl with its own options, listed in `methods::REGISTRY`.

pub mod agreement;
pub mod engine;
pub mod faithfulness;
mod method;
pub mod methods;
mod options;
pub mod request;
mod result;

pub use engine::attention;
pub use engine::checkpoint::Checkpoint;
pub(crate) use engine::evaluate::{argmax, last_logits};
pub use engine::evaluate::{
    gradients, gradients_planned, gradients_seeded, gradients_with, next_token_logits, scores,
};
pub use engine::quadrature::{self, Quadrature};
pub use engine::targets::{self, ScoreKind, Target, TargetInfo, TargetSpec};
pub use engine::{Baseline, Cancel, Prepared, Progress, Settings};
pub use method::{Family, MapAt, Method, MethodInfo, TokenScore};
pub use methods::discretized_ig::discretized_path;
pub use options::{Kind, OptionSpec, Values};
pub use request::Request;
pub use result::{Attribution, GenerationStep};

use crate::autodiff::RuleSet;
use crate::error::Result;
use crate::models::Model;
use engine::checks;
use std::time::Instant;

/// Explains `F` for `prompt` with `method`. The time reported excludes model loading.
pub fn attribute(
    model: &Model,
    prompt: &str,
    method: &dyn Method,
    settings: &Settings,
) -> Result<Attribution> {
    let start = Instant::now();
    let mut out = attribute_tokens(model, &model.tokenize(prompt)?, method, settings)?;
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

/// As `attribute`, for token ids (a prefix of generated text, say) instead of text.
pub fn attribute_tokens(
    model: &Model,
    ids: &[u32],
    method: &dyn Method,
    settings: &Settings,
) -> Result<Attribution> {
    let start = Instant::now();
    let keep = method.uses_first_pass();
    let p = Prepared::keeping_first_pass(model, ids.to_vec(), settings, keep)?;
    let mut out = run_prepared(&p, method)?;
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

/// Runs `method` on an input whose target is resolved, and checks its result: several
/// methods on one input (`evaluate`) share the one resolution.
pub fn run_prepared(p: &Prepared, method: &dyn Method) -> Result<Attribution> {
    let start = Instant::now();
    let mut out = method.run(p)?;
    checks::check_delta(&mut out, method.delta_hint());
    checks::check_finite(p.model, &out, method.non_finite_hint())?;
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

/// Input × modified gradient under a rule set of the caller's own (see `examples/`).
pub fn attribute_with_rules(
    model: &Model,
    prompt: &str,
    rules: &dyn RuleSet,
    settings: &Settings,
) -> Result<Attribution> {
    attribute_with_rules_as(model, prompt, rules, true, TokenScore::Sum, settings)
}

/// As `attribute_with_rules`, the map the modified gradient itself where `times_input` is
/// false, and each token's score `score` of its row (the norm, as saliency and guided
/// backprop report it, or the sum).
pub fn attribute_with_rules_as(
    model: &Model,
    prompt: &str,
    rules: &dyn RuleSet,
    times_input: bool,
    score: TokenScore,
    settings: &Settings,
) -> Result<Attribution> {
    let start = Instant::now();
    let p = Prepared::new(model, prompt, settings)?;
    let (f, map) = engine::single_pass::maps_with(&p, rules, times_input, &p.x_batch()?)?;
    let mut out = p.result(rules.name(), score, map, f[0]);
    checks::check_finite(model, &out, None)?;
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}
