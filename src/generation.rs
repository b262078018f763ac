//! Generation for causal LMs: greedy decoding with a key/value cache, and attribution of every
//! generated token to the prompt and the tokens generated before it.

use crate::attribution::{
    argmax, attribute_tokens, last_logits, Attribution, GenerationStep, Method, Settings,
    TargetSpec,
};
use crate::autodiff::Tape;
use crate::error::{Error, Result};
use crate::models::{LayerCache, Model};

/// Next-token logits after `ids`, which continue the positions already in `cache`.
fn logits_cached(model: &Model, ids: &[u32], cache: &mut [LayerCache]) -> Result<Vec<f32>> {
    let mut tape = Tape::new();
    let x = model
        .embed(ids)?
        .reshape([1, ids.len(), model.hidden_size()])?;
    let xv = tape.constant(x);
    let h = model.forward_cached(&mut tape, xv, cache)?;
    last_logits(model, &mut tape, h)
}

/// Up to `n` greedily chosen tokens after `ids` (stopping after EOS when `stop_at_eos`, and at
/// the model's context size). Each step computes only its new token, from a key/value cache.
pub fn greedy(model: &Model, ids: &[u32], n: usize, stop_at_eos: bool) -> Result<Vec<u32>> {
    if !model.arch.is_causal() {
        return Err(Error::InvalidArgument(format!(
            "{} is an encoder: it does not generate text",
            model.arch.name()
        )));
    }
    let mut cache = model.new_cache();
    let mut out = Vec::with_capacity(n);
    let mut input = ids.to_vec();
    while out.len() < n && ids.len() + out.len() < model.info.max_positions {
        let next = argmax(&logits_cached(model, &input, &mut cache)?) as u32;
        out.push(next);
        if stop_at_eos && Some(next) == model.info.eos_token_id {
            break;
        }
        input = vec![next];
    }
    Ok(out)
}

/// Greedily generates up to `n` tokens after `prompt` and attributes each to its prefix with
/// `method`. The result's top-level fields are the first step's (the prompt's own next token);
/// `generation` holds every step.
pub fn attribute_generation(
    model: &Model,
    prompt: &str,
    method: &dyn Method,
    settings: &Settings,
    n: usize,
    stop_at_eos: bool,
) -> Result<Attribution> {
    if settings.target != TargetSpec::Auto {
        return Err(Error::InvalidArgument(
            "with --generate the targets are the generated tokens: drop --target/--target-id"
                .into(),
        ));
    }
    let start = std::time::Instant::now();
    let ids = model.tokenize(prompt)?;
    let generated = greedy(model, &ids, n, stop_at_eos)?;
    if generated.is_empty() {
        return Err(Error::InvalidInput(
            "nothing was generated (the prompt fills the model's context)".into(),
        ));
    }
    let mut steps = Vec::with_capacity(generated.len());
    let mut first = None;
    for (t, &token) in generated.iter().enumerate() {
        let mut source = ids.clone();
        source.extend_from_slice(&generated[..t]);
        let step = Settings {
            target: TargetSpec::TokenId(token),
            progress: None,
            ..settings.clone()
        };
        let a = attribute_tokens(model, &source, method, &step)?;
        steps.push(GenerationStep {
            target: a.target.clone(),
            target_score: a.target_score,
            baseline_score: a.baseline_score,
            convergence_delta: a.convergence_delta,
            scores: a.scores.clone(),
            warnings: a.warnings.clone(),
        });
        first.get_or_insert(a);
        if let Some(p) = &settings.progress {
            p(t + 1, generated.len());
        }
        if let Some(c) = &settings.cancel {
            c.check()?;
        }
    }
    let mut out = first.expect("at least one step");
    out.generated_ids = Some(generated.clone());
    out.generated_tokens = Some(
        generated
            .iter()
            .map(|&i| model.tokenizer.token_text(i))
            .collect(),
    );
    out.generation = Some(steps);
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}
