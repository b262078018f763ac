//! Gemma 2 and 3 (text): the Llama block with
//! - RMSNorms that scale by `1 + w`, before and after both attention and the MLP;
//! - a GeGLU MLP (tanh GELU gate);
//! - a query scale of `query_pre_attn_scalar^-½`, and (Gemma 3) RMSNorm of each head's queries
//!   and keys;
//! - local layers (a sliding window; in Gemma 3 their own RoPE base) between global ones, as
//!   `layer_types` (or 4.x's `sliding_window_pattern`: every other layer in Gemma 2, five in
//!   six in Gemma 3) says;
//! - (Gemma 2) soft-capping `c·tanh(x/c)` of the attention scores and of the final logits
//!   (`Model::logit_softcap`);
//! - embeddings scaled by `√hidden`, which `Model::embed` applies, as the scaled embedding
//!   module of transformers does, so attributions are to the embeddings the network reads.

use super::config::Config;
use super::layers::{Attention, LayerCache, Linear, QkNorm};
use super::rope::RopeTables;
use super::weights::Weights;
use super::AttentionHook;
use crate::autodiff::{Tape, Var};
use crate::backend::Activation;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::{json, Value};

struct Layer {
    input_norm: Tensor,
    attn: Attention,
    post_attn_norm: Tensor,
    pre_mlp_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_mlp_norm: Tensor,
    /// Whether the layer is local (windowed, with the local RoPE tables).
    local: bool,
}

pub struct Gemma {
    pub embed_tokens: Tensor,
    pub embed_scale: f32,
    layers: Vec<Layer>,
    norm: Tensor,
    eps: f32,
    global_rope: RopeTables,
    local_rope: RopeTables,
    pub max_positions: usize,
    /// Soft-capping of the final logits (Gemma 2's `final_logit_softcapping`).
    pub logit_softcap: Option<f32>,
}

/// The text model's settings: `config.json` itself, or its `text_config` (the multimodal
/// checkpoints' `model_type: gemma3`).
pub fn text_config(cfg: &Config) -> Config {
    match cfg.json.get("text_config") {
        Some(t) if t.is_object() => Config::from_json(&cfg.path, t.clone()),
        _ => Config::from_json(&cfg.path, cfg.json.clone()),
    }
}

/// The RoPE settings of one layer type, as a config `RopeTables::from_config` reads:
/// transformers 5 keeps one `rope_parameters` entry per layer type; 4.x a global `rope_theta`
/// and `rope_scaling`, and `rope_local_base_freq` for the local layers.
fn rope_config(cfg: &Config, layer_type: &str) -> Config {
    let per_type = cfg
        .json
        .get("rope_parameters")
        .and_then(|p| p.get(layer_type))
        .cloned();
    // Gemma 2 has one set for every layer.
    let shared = cfg
        .json
        .get("rope_parameters")
        .filter(|p| p.get("rope_theta").is_some())
        .cloned();
    let json = match (per_type.or(shared), layer_type) {
        (Some(p), _) => json!({ "rope_parameters": p }),
        (None, "sliding_attention") if cfg.json.get("rope_local_base_freq").is_some() => json!({
            "rope_theta": cfg.json["rope_local_base_freq"].clone()
        }),
        (None, _) => json!({
            "rope_theta": cfg.json.get("rope_theta").cloned().unwrap_or(json!(10000.0)),
            "rope_scaling": cfg.json.get("rope_scaling").cloned().unwrap_or(Value::Null),
            "max_position_embeddings": cfg.json.get("max_position_embeddings").cloned(),
        }),
    };
    Config::from_json(&cfg.path, json)
}

impl Gemma {
    pub fn load(arch: super::Architecture, cfg: &Config, w: &Weights) -> Result<Self> {
        let gemma2 = arch == super::Architecture::Gemma2;
        let cfg = &text_config(cfg);
        let err = |reason: String| Error::Config {
            path: cfg.path.clone(),
            reason,
        };
        let d = cfg.usize(&["hidden_size"])?;
        let heads = cfg.usize(&["num_attention_heads"])?;
        let kv_heads = cfg.usize_or(&["num_key_value_heads"], heads)?;
        let n_layers = cfg.usize(&["num_hidden_layers"])?;
        let inter = cfg.usize(&["intermediate_size"])?;
        let vocab = cfg.usize(&["vocab_size"])?;
        let max_positions = cfg.usize(&["max_position_embeddings"])?;
        let head_dim = cfg.usize_or(&["head_dim"], 256)?;
        let eps = cfg.eps_or(&["rms_norm_eps"], 1e-6)?;
        if heads % kv_heads != 0 || head_dim % 2 != 0 {
            return Err(err(format!(
                "{heads} attention heads of {head_dim} cannot share {kv_heads} key/value heads with rotary embeddings"
            )));
        }
        // Gemma 2's config defaults the caps to 50 and 30, Gemma 3's to none.
        let cap = |key: &str, default: f32| -> Result<Option<f32>> {
            let c = match cfg.json.get(key) {
                Some(Value::Null) => return Ok(None),
                None if !gemma2 => return Ok(None),
                None => default,
                Some(_) => cfg.f32_or(&[key], default)?,
            };
            if !(c.is_finite() && c > 0.0) {
                return Err(err(format!(
                    "'{key}' is {c}: it must be a finite number > 0"
                )));
            }
            Ok(Some(c))
        };
        let attn_softcap = cap("attn_logit_softcapping", 50.0)?;
        let logit_softcap = cap("final_logit_softcapping", 30.0)?;
        let act = cfg.str_or(&["hidden_activation", "hidden_act"], "gelu_pytorch_tanh");
        if !matches!(act, "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast") {
            return Err(err(format!("unsupported hidden_activation '{act}'")));
        }
        let query_scalar = cfg.f32_or(&["query_pre_attn_scalar"], head_dim as f32)?;
        if !(query_scalar.is_finite() && query_scalar > 0.0) {
            return Err(err(format!(
                "'query_pre_attn_scalar' is {query_scalar}: it must be > 0"
            )));
        }
        let window = cfg.usize(&["sliding_window"])?;
        let local = local_layers(cfg, n_layers, if gemma2 { 2 } else { 6 })?;
        let last = n_layers - 1;
        if !w.contains(&format!("model.layers.{last}.input_layernorm.weight")) {
            return Err(err(format!(
                "'num_hidden_layers' is {n_layers}, but the weights have no layer {last}"
            )));
        }
        // Hugging Face stores the norms' `w` of `x·(1 + w)`; llama.cpp's converter adds the 1.
        let shift = if w.is_gguf() { 0.0 } else { 1.0 };
        let norm = |name: &str, dim: usize| -> Result<Tensor> {
            let t = w.host(name, Some(&[dim]))?;
            let shifted: Vec<f32> = t.data.iter().map(|v| v + shift).collect();
            Tensor::from_vec(shifted, [dim], w.device())
        };
        let mut layers = Vec::new();
        for (i, &local) in local.iter().enumerate() {
            let l = format!("model.layers.{i}");
            let lin = |name: &str, o, n| Linear::load(w, &format!("{l}.{name}"), o, n, false);
            layers.push(Layer {
                input_norm: norm(&format!("{l}.input_layernorm.weight"), d)?,
                attn: Attention {
                    q: lin("self_attn.q_proj", heads * head_dim, d)?,
                    k: lin("self_attn.k_proj", kv_heads * head_dim, d)?,
                    v: lin("self_attn.v_proj", kv_heads * head_dim, d)?,
                    o: lin("self_attn.o_proj", d, heads * head_dim)?,
                    heads,
                    kv_heads,
                    causal: true,
                    window: local.then_some(window),
                    qk_norm: match gemma2 {
                        true => None,
                        false => Some(QkNorm {
                            q: norm(&format!("{l}.self_attn.q_norm.weight"), head_dim)?,
                            k: norm(&format!("{l}.self_attn.k_norm.weight"), head_dim)?,
                            eps,
                        }),
                    },
                    scale: 1.0 / query_scalar.sqrt(),
                    softcap: attn_softcap,
                },
                post_attn_norm: norm(&format!("{l}.post_attention_layernorm.weight"), d)?,
                pre_mlp_norm: norm(&format!("{l}.pre_feedforward_layernorm.weight"), d)?,
                gate: lin("mlp.gate_proj", inter, d)?,
                up: lin("mlp.up_proj", inter, d)?,
                down: lin("mlp.down_proj", d, inter)?,
                post_mlp_norm: norm(&format!("{l}.post_feedforward_layernorm.weight"), d)?,
                local,
            });
        }
        if w.contains("lm_head.weight") && !cfg.bool_or(&["tie_word_embeddings"], true) {
            return Err(err(
                "an untied lm_head is not supported for Gemma (every released size ties it)".into(),
            ));
        }
        Ok(Gemma {
            embed_tokens: w.matrix("model.embed_tokens.weight", &[vocab, d])?,
            // transformers multiplies by √hidden rounded to the weights' dtype; in f32 that
            // is √hidden in f32.
            embed_scale: (d as f32).sqrt(),
            layers,
            norm: norm("model.norm.weight", d)?,
            eps,
            global_rope: RopeTables::from_config(
                &rope_config(cfg, "full_attention"),
                head_dim,
                w.device(),
            )?,
            local_rope: RopeTables::from_config(
                &rope_config(cfg, "sliding_attention"),
                head_dim,
                w.device(),
            )?,
            max_positions,
            logit_softcap,
        })
    }

    /// `x: [b, l, d]` (scaled) token embeddings -> final hidden states (after the last norm).
    pub fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        mut cache: Option<&mut [LayerCache]>,
        hook: &mut AttentionHook,
    ) -> Result<Var> {
        let len = tape.value(x).dims()[1];
        let start = LayerCache::positions(cache.as_deref());
        let ropes = self.ropes(start, len)?;
        let mut h = x;
        for i in 0..self.layers.len() {
            let c = cache.as_deref_mut().map(|c| &mut c[i]);
            h = self.block(i, tape, h, &ropes, c, hook)?;
        }
        tape.rms_norm(h, &self.norm, self.eps)
    }

    /// The rotary tables (global, local) of positions `start..start + len`.
    fn ropes(&self, start: usize, len: usize) -> Result<[(Tensor, Tensor); 2]> {
        Ok([
            self.global_rope.slice(start, len)?,
            self.local_rope.slice(start, len)?,
        ])
    }

    /// Layer `i`, with the pass's rotary tables `[global, local]`.
    fn block(
        &self,
        i: usize,
        tape: &mut Tape,
        h: Var,
        ropes: &[(Tensor, Tensor); 2],
        cache: Option<&mut LayerCache>,
        hook: &mut AttentionHook,
    ) -> Result<Var> {
        let l = &self.layers[i];
        let rope = &ropes[l.local as usize];
        let a = tape.rms_norm(h, &l.input_norm, self.eps)?;
        let a = l.attn.forward(tape, a, Some(rope), cache, hook)?;
        let a = tape.rms_norm(a, &l.post_attn_norm, self.eps)?;
        let h = tape.add(h, a)?;
        let m = tape.rms_norm(h, &l.pre_mlp_norm, self.eps)?;
        let g = l.gate.forward(tape, m)?;
        let g = tape.activation(g, Activation::GeluTanh)?;
        let u = l.up.forward(tape, m)?;
        let m = tape.gate(g, u)?;
        let m = l.down.forward(tape, m)?;
        let m = tape.rms_norm(m, &l.post_mlp_norm, self.eps)?;
        tape.add(h, m)
    }

    /// Step `i` of an uncached pass, as `Model::step` numbers them.
    pub fn step(&self, i: usize, tape: &mut Tape, h: Var) -> Result<Var> {
        match i {
            0 => Ok(h),
            i if i <= self.layers.len() => {
                let ropes = self.ropes(0, tape.value(h).dims()[1])?;
                self.block(i - 1, tape, h, &ropes, None, &mut AttentionHook::default())
            }
            _ => tape.rms_norm(h, &self.norm, self.eps),
        }
    }
}

/// Which layers are local: `layer_types` where given, else every `sliding_window_pattern`-th
/// layer is global (transformers 4.x; 2 for Gemma 2, 6 for every released Gemma 3).
fn local_layers(cfg: &Config, n_layers: usize, pattern: usize) -> Result<Vec<bool>> {
    match cfg.sliding_layers(n_layers)? {
        Some(local) => Ok(local),
        None => {
            let pattern = cfg.usize_or(&["sliding_window_pattern"], pattern)?;
            Ok((0..n_layers).map(|i| (i + 1) % pattern != 0).collect())
        }
    }
}
