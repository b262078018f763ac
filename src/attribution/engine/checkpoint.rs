//! Per-layer recomputation (checkpointing): the forward keeps only what enters each step of
//! the pass (`Model::step`: the embeddings' additions, each layer, the final norm), and the
//! backward runs each step again on a tape of its own, from the last to the first, handing
//! the gradient at its input to the step before. A tape then holds one layer's activations
//! instead of every layer's, for one more forward pass, less its attention: the forward keeps
//! each layer's attention output (`Tape::recording_attention`), which the recomputation takes
//! back instead of computing it again. The steps are the pass's ops in the same order, so on
//! the CPU the result has the same bits as without checkpointing.

use super::chunks;
use super::targets::Target;
use crate::autodiff::{RuleSet, Tape};
use crate::error::{Error, Result};
use crate::models::{Model, StepRecord};
use crate::tensor::Tensor;

/// When gradient passes recompute their layers (`--checkpoint`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checkpoint {
    /// Where a pass's tape would not fit in the memory a batch may use.
    #[default]
    Auto,
    Never,
    Always,
}

impl std::str::FromStr for Checkpoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Checkpoint::Auto),
            "never" => Ok(Checkpoint::Never),
            "always" => Ok(Checkpoint::Always),
            _ => Err(Error::InvalidArgument(format!(
                "unknown checkpoint mode '{s}' (expected auto, never or always)"
            ))),
        }
    }
}

impl Checkpoint {
    /// Whether a pass over `rows` rows of `len` tokens recomputes its layers: under `Auto`,
    /// where its whole tape would not fit in its share of half the free memory (the passes
    /// that may run at once share it). Recomputing costs about one more forward pass, so a
    /// pass that fits keeps its tape.
    pub fn applies(self, model: &Model, rows: usize, len: usize) -> bool {
        match self {
            Checkpoint::Always => true,
            Checkpoint::Never => false,
            Checkpoint::Auto => {
                let backend = model.input_embeddings().backend();
                let Some(free) = backend.free_memory() else {
                    return false;
                };
                let budget = free / 2 / backend.concurrent_batches().max(1);
                rows.saturating_mul(chunks::tape_bytes_per_row(model, len)) > budget
            }
        }
    }
}

/// `F(x_b)` and `∂F/∂x_b` under `rules` (the backward seeded by `seed`, one value per row) of
/// `x: [b, len, hidden]`, the layers recomputed in the backward.
pub fn gradients(
    model: &Model,
    target: &Target,
    x: &Tensor,
    rules: &dyn RuleSet,
    seed: &[f32],
) -> Result<(Vec<f32>, Tensor)> {
    gradients_from(model, target, model.step_record(x)?, rules, seed)
}

/// As `gradients`, from a forward pass's `Model::step_record` (the target's, where kept).
pub fn gradients_from(
    model: &Model,
    target: &Target,
    record: StepRecord,
    rules: &dyn RuleSet,
    seed: &[f32],
) -> Result<(Vec<f32>, Tensor)> {
    let steps = model.steps();
    let StepRecord {
        mut inputs,
        mut attention,
    } = record;
    inputs.pop(); // the output: the last step runs again, recorded
    let mut replay = || attention.pop().expect("one record of attention per step");
    let last = inputs.pop().expect("a pass has steps");
    let device = last.device();
    let mut tape = Tape::replaying_attention(replay());
    let h = tape.input(last);
    let out = model.step(steps - 1, &mut tape, h)?;
    let f = target.score(model, &mut tape, out)?;
    let values = tape.value(f).to_vec()?;
    let seed = Tensor::from_vec(seed.to_vec(), tape.value(f).shape().clone(), device)?;
    let mut g = tape.backward(f, seed, rules, &[h])?.remove(0);
    drop(tape);
    for i in (0..steps - 1).rev() {
        let input = inputs.pop().expect("one input per step");
        let mut tape = Tape::replaying_attention(replay());
        let h = tape.input(input);
        let out = model.step(i, &mut tape, h)?;
        g = tape.backward(out, g, rules, &[h])?.remove(0);
    }
    Ok((values, g))
}
