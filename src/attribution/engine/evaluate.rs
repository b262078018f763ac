//! Forward and backward passes of `F` over a batch of inputs, shared by every method.

use super::checkpoint::Checkpoint;
use super::targets::Target;
use crate::autodiff::{Gradient, RuleSet, Tape, Var};
use crate::error::Result;
use crate::models::{AttentionHook, Model, StepRecord};
use crate::tensor::Tensor;

/// `F(x_b)` for each row of `x: [b, len, hidden]`, without recording a tape.
pub fn scores(model: &Model, target: &Target, x: &Tensor) -> Result<Vec<f32>> {
    let mut tape = Tape::new();
    let h = tape.constant(model.hidden_states(x)?);
    let f = target.score(model, &mut tape, h)?;
    tape.value(f).to_vec()
}

/// `F(x_b)` and `∂F/∂x_b` (under `rules`) for each row of `x: [b, len, hidden]`. Rows are
/// independent, so seeding every output with 1 gives each row its own gradient.
pub fn gradients_with(
    model: &Model,
    target: &Target,
    x: &Tensor,
    rules: &dyn RuleSet,
) -> Result<(Vec<f32>, Tensor)> {
    gradients_seeded(model, target, x, rules, &vec![1.0; x.dims()[0]])
}

/// As `gradients_with`, with the backward seeded by `seed` (one value per row; DeepLIFT seeds
/// its reference rows with 0).
pub fn gradients_seeded(
    model: &Model,
    target: &Target,
    x: &Tensor,
    rules: &dyn RuleSet,
    seed: &[f32],
) -> Result<(Vec<f32>, Tensor)> {
    gradients_planned(model, target, x, rules, seed, Checkpoint::Auto)
}

/// As `gradients_seeded`, the layers recomputed in the backward as `checkpoint` says.
pub fn gradients_planned(
    model: &Model,
    target: &Target,
    x: &Tensor,
    rules: &dyn RuleSet,
    seed: &[f32],
    checkpoint: Checkpoint,
) -> Result<(Vec<f32>, Tensor)> {
    if checkpoint.applies(model, x.dims()[0], x.dims()[1]) {
        return super::checkpoint::gradients(model, target, x, rules, seed);
    }
    let mut tape = Tape::new();
    let xv = tape.input(x.clone());
    let h = model.forward(&mut tape, xv)?;
    let pass = RecordedPass {
        tape,
        x: xv,
        h,
        steps: None,
    };
    gradients_of_pass(model, target, pass, rules, seed)
}

/// `F` and `∂F/∂x` (under `rules`, the backward seeded by `seed`, one value per row) from a
/// recorded forward pass.
pub fn gradients_of_pass(
    model: &Model,
    target: &Target,
    mut pass: RecordedPass,
    rules: &dyn RuleSet,
    seed: &[f32],
) -> Result<(Vec<f32>, Tensor)> {
    if let Some(record) = pass.steps {
        return super::checkpoint::gradients_from(model, target, record, rules, seed);
    }
    let f = target.score(model, &mut pass.tape, pass.h)?;
    let device = pass.tape.value(pass.x).device();
    let seed = Tensor::from_vec(seed.to_vec(), pass.tape.value(f).shape().clone(), device)?;
    let values = pass.tape.value(f).to_vec()?;
    let mut grads = pass.tape.backward(f, seed, rules, &[pass.x])?;
    Ok((values, grads.remove(0)))
}

/// `F` and `∂F/∂A` for each row of `x: [b, len, hidden]`, where `A` (`[b, heads, len, len]`)
/// replaces layer `layer`'s attention probabilities.
pub fn attention_gradients(
    model: &Model,
    target: &Target,
    x: &Tensor,
    layer: usize,
    probs: Tensor,
) -> Result<(Vec<f32>, Tensor)> {
    let mut tape = Tape::new();
    let mut hook = AttentionHook::replacing(layer, probs);
    let xv = tape.constant(x.clone());
    let h = model.forward_hooked(&mut tape, xv, &mut hook)?;
    let a = *hook.probabilities.get(layer).ok_or_else(|| {
        crate::Error::InvalidArgument(format!("the model has no attention layer {layer}"))
    })?;
    let f = target.score(model, &mut tape, h)?;
    let seed = Tensor::full(1.0, tape.value(f).shape().clone(), x.device())?;
    let values = tape.value(f).to_vec()?;
    let mut grads = tape.backward(f, seed, &Gradient, &[a])?;
    Ok((values, grads.remove(0)))
}

pub fn gradients(model: &Model, target: &Target, x: &Tensor) -> Result<(Vec<f32>, Tensor)> {
    gradients_with(model, target, x, &Gradient)
}

pub(crate) fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

fn batch1(x: &Tensor) -> Result<Tensor> {
    let mut dims = vec![1];
    dims.extend_from_slice(x.dims());
    x.reshape(dims)
}

/// Full next-token logits `[vocab]` after the prompt `x: [len, hidden]`.
pub fn next_token_logits(model: &Model, x: &Tensor) -> Result<Vec<f32>> {
    let mut tape = Tape::new();
    let h = tape.constant(model.hidden_states(&batch1(x)?)?);
    last_logits(model, &mut tape, h)
}

/// Full logits `[vocab]` at the last position of the hidden states `h: [1, len, hidden]`.
pub(crate) fn last_logits(model: &Model, tape: &mut Tape, h: Var) -> Result<Vec<f32>> {
    let len = tape.value(h).dims()[1];
    let last = tape.select_position(h, len - 1)?;
    let out = model
        .output_embeddings()
        .ok_or_else(|| crate::Error::Other("model has no output head".into()))?;
    let logits = tape.linear(last, out, None)?;
    let logits = super::targets::softcap(tape, logits, model.logit_softcap())?;
    tape.value(logits).to_vec()
}

/// A forward pass of the prompt, recorded for a backward: the pass that finds an automatic
/// target, kept so that a single-pass method needs no second one.
pub struct RecordedPass {
    pub tape: Tape,
    /// The input `[1, len, hidden]`, a leaf with a gradient.
    pub x: Var,
    /// The last hidden states.
    pub h: Var,
    /// For a pass whose backward recomputes its layers, its record (`Model::step_record`);
    /// `tape` then holds only `h`, as a constant.
    pub steps: Option<StepRecord>,
}

/// The prompt's forward pass: recorded for a backward under `record` (on one tape, or as
/// its steps' inputs where that backward recomputes the layers), else step by step.
fn prompt_pass(model: &Model, x: &Tensor, record: Option<Checkpoint>) -> Result<RecordedPass> {
    let x = batch1(x)?;
    match record {
        None => Ok(RecordedPass::of_output(model.hidden_states(&x)?, None)),
        Some(mode) if mode.applies(model, 1, x.dims()[1]) => {
            let record = model.step_record(&x)?;
            let h = record.output().clone();
            Ok(RecordedPass::of_output(h, Some(record)))
        }
        Some(_) => {
            let mut tape = Tape::new();
            let xv = tape.input(x);
            let h = model.forward(&mut tape, xv)?;
            Ok(RecordedPass {
                tape,
                x: xv,
                h,
                steps: None,
            })
        }
    }
}

impl RecordedPass {
    /// A pass whose tape holds only its output `h`, as a constant, with the steps' inputs
    /// where a checkpointed backward will start from them.
    fn of_output(h: Tensor, steps: Option<StepRecord>) -> Self {
        let mut tape = Tape::new();
        let h = tape.constant(h);
        RecordedPass {
            tape,
            x: h,
            h,
            steps,
        }
    }
}

/// The top next token after the prompt `x: [len, hidden]`, and its forward pass.
pub fn top_next_token(
    model: &Model,
    x: &Tensor,
    record: Option<Checkpoint>,
) -> Result<(u32, RecordedPass)> {
    let mut pass = prompt_pass(model, x, record)?;
    let logits = last_logits(model, &mut pass.tape, pass.h)?;
    Ok((argmax(&logits) as u32, pass))
}

/// The top class of a classifier for the prompt `x: [len, hidden]`, and its forward pass.
pub fn top_class(
    model: &Model,
    x: &Tensor,
    record: Option<Checkpoint>,
) -> Result<(usize, RecordedPass)> {
    let head = model
        .classifier()
        .ok_or_else(|| crate::Error::Other("model has no classifier".into()))?;
    let mut pass = prompt_pass(model, x, record)?;
    let pooled = head.pooled(&mut pass.tape, pass.h)?;
    let logits = head.classifier.forward(&mut pass.tape, pooled)?;
    Ok((argmax(&pass.tape.value(logits).to_vec()?), pass))
}

/// Mean-pooled last hidden state `[hidden]` of `x: [len, hidden]`.
pub fn pooled_embedding(model: &Model, x: &Tensor) -> Result<Tensor> {
    let mut tape = Tape::new();
    let h = tape.constant(model.hidden_states(&batch1(x)?)?);
    let len = tape.value(h).dims()[1];
    let pooled = tape.weighted_seq_sum(h, &vec![1.0 / len as f32; len])?;
    tape.value(pooled).reshape([model.hidden_size()])
}
