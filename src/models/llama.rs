//! Llama family: pre-norm RMSNorm, rotary embeddings, SwiGLU MLP, grouped-query attention,
//! output projection tied to the embeddings when `lm_head.weight` is absent.

use super::config::Config;
use super::layers::{Attention, LayerCache, Linear, RopeTables};
use super::weights::Weights;
use super::AttentionHook;
use crate::autodiff::{Tape, Var};
use crate::backend::Activation;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

struct Layer {
    attn_norm: Tensor,
    attn: Attention,
    mlp_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

pub struct Llama {
    pub embed_tokens: Tensor,
    pub lm_head: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    eps: f32,
    rope: RopeTables,
    pub max_positions: usize,
}

impl Llama {
    pub fn load(cfg: &Config, w: &Weights) -> Result<Self> {
        let d = cfg.usize(&["hidden_size"])?;
        let heads = cfg.usize(&["num_attention_heads"])?;
        let kv_heads = cfg.usize_or(&["num_key_value_heads"], heads)?;
        let n_layers = cfg.usize(&["num_hidden_layers"])?;
        let inter = cfg.usize(&["intermediate_size"])?;
        let vocab = cfg.usize(&["vocab_size"])?;
        let max_positions = cfg.usize(&["max_position_embeddings"])?;
        let eps = cfg.eps_or(&["rms_norm_eps"], 1e-6)?;
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!("{heads} attention heads cannot share {kv_heads} key/value heads"),
            });
        }
        if cfg.json.get("head_dim").is_none_or(|v| v.is_null()) && d % heads != 0 {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!(
                    "hidden_size {d} is not a multiple of num_attention_heads {heads}, and no head_dim is given"
                ),
            });
        }
        let head_dim = cfg.usize_or(&["head_dim"], d / heads)?;
        if heads
            .checked_mul(head_dim)
            .is_none_or(|rows| rows > 1 << 24)
        {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!(
                    "head_dim {head_dim} x {heads} heads is not a size a layer can have"
                ),
            });
        }
        // transformers 5 keeps rope settings in `rope_parameters`, 4.x in top-level keys.
        let rope_params = cfg
            .json
            .get("rope_parameters")
            .or_else(|| cfg.json.get("rope_scaling"));
        let rope_type = rope_params
            .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
            .and_then(|t| t.as_str())
            .unwrap_or("default");
        if rope_type != "default" {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!("unsupported rope scaling '{rope_type}'"),
            });
        }
        let theta = rope_params
            .and_then(|r| r.get("rope_theta"))
            .and_then(|t| t.as_f64())
            .map(|t| t as f32)
            .unwrap_or(cfg.f32_or(&["rope_theta"], 10000.0)?);
        let bias = cfg.bool_or(&["attention_bias"], false);
        let mlp_bias = cfg.bool_or(&["mlp_bias"], false);
        let act = cfg.str_or(&["hidden_act"], "silu");
        if act != "silu" {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!("unsupported hidden_act '{act}'"),
            });
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!("'rope_theta' is {theta}: it must be a finite number > 0"),
            });
        }
        // A claimed size is checked against the tensors present before anything is allocated.
        let last = n_layers.saturating_sub(1);
        if n_layers == 0 || !w.contains(&format!("model.layers.{last}.input_layernorm.weight")) {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!(
                    "'num_hidden_layers' is {n_layers}, but the weights have no layer {last}"
                ),
            });
        }
        let mut layers = Vec::new();
        for i in 0..n_layers {
            let l = format!("model.layers.{i}");
            let lin = |name: &str, o, n, b| Linear::load(w, &format!("{l}.{name}"), o, n, b);
            layers.push(Layer {
                attn_norm: w.get(&format!("{l}.input_layernorm.weight"), &[d])?,
                attn: Attention {
                    q: lin("self_attn.q_proj", heads * head_dim, d, bias)?,
                    k: lin("self_attn.k_proj", kv_heads * head_dim, d, bias)?,
                    v: lin("self_attn.v_proj", kv_heads * head_dim, d, bias)?,
                    o: lin("self_attn.o_proj", d, heads * head_dim, bias)?,
                    heads,
                    kv_heads,
                    head_dim,
                    causal: true,
                },
                mlp_norm: w.get(&format!("{l}.post_attention_layernorm.weight"), &[d])?,
                gate: lin("mlp.gate_proj", inter, d, mlp_bias)?,
                up: lin("mlp.up_proj", inter, d, mlp_bias)?,
                down: lin("mlp.down_proj", d, inter, mlp_bias)?,
            });
        }
        let embed_tokens = w.matrix("model.embed_tokens.weight", &[vocab, d])?;
        let lm_head = if w.contains("lm_head.weight") {
            w.matrix("lm_head.weight", &[vocab, d])?
        } else {
            embed_tokens.clone()
        };
        Ok(Llama {
            embed_tokens,
            lm_head,
            layers,
            norm: w.get("model.norm.weight", &[d])?,
            eps,
            rope: RopeTables::new(head_dim, theta, w.device()),
            max_positions,
        })
    }

    /// `x: [b, l, d]` token embeddings -> final hidden states (after the last norm). With
    /// `cache`, `x` continues the cached positions.
    pub fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        mut cache: Option<&mut [LayerCache]>,
        hook: &mut AttentionHook,
    ) -> Result<Var> {
        let len = tape.value(x).dims()[1];
        let start = cache
            .as_ref()
            .and_then(|c| c.first())
            .map_or(0, |c| c.len());
        let rope = self.rope.slice(start, len)?;
        let mut h = x;
        for (i, l) in self.layers.iter().enumerate() {
            let a = tape.rms_norm(h, &l.attn_norm, self.eps)?;
            let a = l.attn.forward(
                tape,
                a,
                Some(&rope),
                cache.as_deref_mut().map(|c| &mut c[i]),
                hook,
            )?;
            h = tape.add(h, a)?;
            let m = tape.rms_norm(h, &l.mlp_norm, self.eps)?;
            let g = l.gate.forward(tape, m)?;
            let g = tape.activation(g, Activation::Silu)?;
            let u = l.up.forward(tape, m)?;
            let m = tape.gate(g, u)?;
            let m = l.down.forward(tape, m)?;
            h = tape.add(h, m)?;
        }
        tape.rms_norm(h, &self.norm, self.eps)
    }
}
