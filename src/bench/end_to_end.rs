//! Saliency, AttnLRP and integrated gradients (50 steps) on the model, end to end, with the
//! FLOPs and bytes they must at least spend counted from the model's shapes, so that they too
//! are fractions of the device's limits.

use super::limits::Limits;
use super::timing::{measure, Timing};
use crate::attribution::methods::{AttnLrp, IntegratedGradients, Saliency};
use crate::attribution::{attribute, Method, Settings, TargetSpec};
use crate::error::{Error, Result};
use crate::models::{Model, ModelInfo};
use std::time::Duration;

#[derive(Clone, Debug, serde::Serialize)]
pub struct EndToEndRow {
    pub method: String,
    pub tokens: usize,
    #[serde(flatten)]
    pub timing: Timing,
    /// Counted work (see `cost`).
    pub gflop: f64,
    pub gb: f64,
    pub gflop_s: f64,
    pub gflop_fraction: f64,
    pub gb_s: f64,
    pub gb_fraction: f64,
    pub bound: &'static str,
}

/// Words for prompts of any length.
const TEXT: &str = "The history of the printing press shows how a single invention can change \
    the way people read write and share ideas across many countries and centuries";

/// A prompt of at least `tokens` tokens, built from whole words.
pub fn prompt(model: &Model, tokens: usize) -> Result<String> {
    let words: Vec<&str> = TEXT.split_whitespace().collect();
    let mut text = String::new();
    for i in 0.. {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(words[i % words.len()]);
        if model.tokenize(&text)?.len() >= tokens || i > 64 * tokens {
            break;
        }
    }
    Ok(text)
}

/// FLOPs and bytes of one forward or backward sweep: each linear weight once per token (two
/// FLOPs a weight), the causal attention's products, and each weight's bytes read once.
struct Sweep {
    forward_flops: f64,
    backward_flops: f64,
    bytes: f64,
}

fn sweep(info: &ModelInfo, tokens: usize, causal: bool) -> Sweep {
    let (h, f) = (info.hidden_size as f64, info.intermediate_size as f64);
    let (heads, kv, d) = (
        info.attention_heads as f64,
        info.key_value_heads as f64,
        info.head_dim as f64,
    );
    let gated = !matches!(
        info.architecture,
        "bert" | "roberta" | "xlm-roberta" | "gpt2"
    );
    let per_layer = h * heads * d * 2.0 + 2.0 * h * kv * d + if gated { 3.0 } else { 2.0 } * h * f;
    let linear = info.layers as f64 * per_layer;
    let l = tokens as f64;
    let pairs = if causal { l * (l + 1.0) / 2.0 } else { l * l };
    let attention = 4.0 * info.layers as f64 * heads * pairs * d;
    Sweep {
        forward_flops: 2.0 * l * linear + attention,
        // The input gradient of each linear layer (no weight gradients), and attention's four
        // backward products.
        backward_flops: 2.0 * l * linear + 2.0 * attention,
        bytes: info.weight_bytes() as f64,
    }
}

/// Times each method on `prompt` and counts its work.
pub fn rows(
    model: &Model,
    prompt: &str,
    limits: &Limits,
    budget: Duration,
) -> Result<Vec<EndToEndRow>> {
    let info = &model.info;
    let causal = model.arch.is_causal();
    let tokens = model.tokenize(prompt)?.len();
    let s = sweep(info, tokens, causal);
    // The causal models' target search: the full logits at the last position, once.
    let lm_head = if causal {
        2.0 * (info.hidden_size * info.vocab_size) as f64
    } else {
        0.0
    };
    let settings = Settings {
        target: if causal || info.classifier_labels.is_some() {
            TargetSpec::Auto
        } else {
            TargetSpec::Compare(TEXT.into())
        },
        ..Settings::default()
    };
    let steps = 50;
    // Points per batch: the backend's cap, else all of them at once.
    let per_batch = crate::backend::backend_for(model.device())?
        .max_batch_items()
        .unwrap_or(steps)
        .clamp(1, steps);
    let batches = steps.div_ceil(per_batch) as f64;
    let methods: [(&str, Box<dyn Method>, f64, f64); 3] = [
        (
            "saliency",
            Box::new(Saliency),
            s.forward_flops + s.backward_flops + lm_head,
            2.0 * s.bytes,
        ),
        (
            "attnlrp",
            Box::new(AttnLrp::default()),
            s.forward_flops + s.backward_flops + lm_head,
            2.0 * s.bytes,
        ),
        (
            "integrated-gradients (50 steps)",
            Box::new(IntegratedGradients {
                steps,
                ..Default::default()
            }),
            steps as f64 * (s.forward_flops + s.backward_flops) + 2.0 * s.forward_flops + lm_head,
            (2.0 * batches + 2.0) * s.bytes,
        ),
    ];
    let share = budget / methods.len() as u32;
    methods
        .into_iter()
        .map(|(name, method, flops, bytes)| {
            let timing = measure(share, || {
                let a = attribute(model, prompt, method.as_ref(), &settings)?;
                if a.scores.iter().any(|v| !v.is_finite()) {
                    return Err(Error::Other(format!("{name}: scores are not finite")));
                }
                Ok(a.elapsed_ms / 1e3)
            })?;
            let gflop_s = flops / timing.median_s / 1e9;
            let gb_s = bytes / timing.median_s / 1e9;
            let (gflop_fraction, gb_fraction) =
                (gflop_s / limits.fma_gflop_s, gb_s / limits.read_gb_s);
            Ok(EndToEndRow {
                method: name.into(),
                tokens,
                timing,
                gflop: flops / 1e9,
                gb: bytes / 1e9,
                gflop_s,
                gflop_fraction,
                gb_s,
                gb_fraction,
                bound: if gflop_fraction >= gb_fraction {
                    "compute"
                } else {
                    "memory"
                },
            })
        })
        .collect()
}
