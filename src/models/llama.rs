//! Llama and the families built on it: pre-norm RMSNorm, rotary embeddings, SwiGLU MLP,
//! grouped-query attention, output projection tied to the embeddings when `lm_head.weight`
//! is absent. What each descendant changes is read from its config (`Variant`):
//! - Llama 3.x: `rope_scaling` of type `llama3` (see `rope.rs`), an explicit `head_dim`;
//! - Mistral: a sliding window on every layer;
//! - Qwen2/2.5: biases on q, k and v only, and a window on the layers from
//!   `max_window_layers` up when `use_sliding_window` is set (or as `layer_types` says);
//! - Qwen3: an RMSNorm of each head's queries and keys before RoPE;
//! - Phi-3: q/k/v fused in `qkv_proj` and gate/up in `gate_up_proj` (cut by rows at load,
//!   still as stored), a sliding window on every layer, longrope (see `rope.rs`), and (Phi-4-mini)
//!   RoPE on the first `partial_rotary_factor` of each head.

use super::config::Config;
use super::layers::{Attention, LayerCache, Linear, QkNorm};
use super::rope::RopeTables;
use super::weights::Weights;
use super::{Architecture, AttentionHook};
use crate::autodiff::{Tape, Var};
use crate::backend::Activation;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;

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

/// What a Llama descendant changes in the block, from its config.
struct Variant {
    qkv_bias: bool,
    o_bias: bool,
    mlp_bias: bool,
    qk_norm: bool,
    /// Phi-3's fused `qkv_proj` and `gate_up_proj`.
    fused: bool,
    /// Each layer's sliding window, if it has one.
    windows: Vec<Option<usize>>,
}

impl Variant {
    fn read(arch: Architecture, cfg: &Config, n_layers: usize) -> Result<Self> {
        let attention_bias = cfg.bool_or(&["attention_bias"], false);
        let window = || -> Result<Option<usize>> {
            match cfg.json.get("sliding_window") {
                None | Some(Value::Null) => Ok(None),
                Some(_) => cfg.usize(&["sliding_window"]).map(Some),
            }
        };
        let windows = match arch {
            Architecture::Mistral | Architecture::Phi3 => vec![window()?; n_layers],
            Architecture::Qwen2 | Architecture::Qwen3 => {
                // transformers drops the window unless `use_sliding_window` is set.
                let w = if cfg.bool_or(&["use_sliding_window"], false) {
                    window()?
                } else {
                    None
                };
                match cfg.sliding_layers(n_layers)? {
                    Some(local) => local.into_iter().map(|l| w.filter(|_| l)).collect(),
                    None => {
                        let from = cfg.usize_or(&["max_window_layers"], 28)?;
                        (0..n_layers).map(|i| w.filter(|_| i >= from)).collect()
                    }
                }
            }
            _ => vec![None; n_layers],
        };
        Ok(match arch {
            Architecture::Qwen2 => Variant {
                qkv_bias: true,
                o_bias: false,
                mlp_bias: false,
                qk_norm: false,
                fused: false,
                windows,
            },
            Architecture::Qwen3 => Variant {
                qkv_bias: attention_bias,
                o_bias: attention_bias,
                mlp_bias: false,
                qk_norm: true,
                fused: false,
                windows,
            },
            Architecture::Mistral | Architecture::Phi3 => Variant {
                qkv_bias: false,
                o_bias: false,
                mlp_bias: false,
                qk_norm: false,
                fused: arch == Architecture::Phi3,
                windows,
            },
            _ => Variant {
                qkv_bias: attention_bias,
                o_bias: attention_bias,
                mlp_bias: cfg.bool_or(&["mlp_bias"], false),
                qk_norm: false,
                fused: false,
                windows,
            },
        })
    }
}

impl Llama {
    pub fn load(arch: Architecture, cfg: &Config, w: &Weights) -> Result<Self> {
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
            || head_dim % 2 != 0
        {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!(
                    "head_dim {head_dim} x {heads} heads is not a size a rotary layer can have"
                ),
            });
        }
        let partial = cfg
            .json
            .get("rope_parameters")
            .and_then(|p| p.get("partial_rotary_factor"))
            .and_then(Value::as_f64)
            .unwrap_or(cfg.f32_or(&["partial_rotary_factor"], 1.0)? as f64);
        // Phi-4-mini rotates the first `partial · head_dim` dimensions of each head (as
        // transformers rounds them, down).
        let rotary_dim = (head_dim as f64 * partial) as usize;
        if !(partial > 0.0 && partial <= 1.0) || rotary_dim < 2 || !rotary_dim.is_multiple_of(2) {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!(
                    "'partial_rotary_factor' is {partial}: it must rotate an even number of a head's {head_dim} dimensions"
                ),
            });
        }
        let rope = RopeTables::from_config(cfg, rotary_dim, w.device())?;
        let act = cfg.str_or(&["hidden_act"], "silu");
        if act != "silu" {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!("unsupported hidden_act '{act}'"),
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
        let variant = Variant::read(arch, cfg, n_layers)?;
        let mut layers = Vec::new();
        for i in 0..n_layers {
            let l = format!("model.layers.{i}");
            let lin = |name: &str, o, n, b| Linear::load(w, &format!("{l}.{name}"), o, n, b);
            let qk_norm = match variant.qk_norm {
                false => None,
                true => Some(QkNorm {
                    q: w.get(&format!("{l}.self_attn.q_norm.weight"), &[head_dim])?,
                    k: w.get(&format!("{l}.self_attn.k_norm.weight"), &[head_dim])?,
                    eps,
                }),
            };
            let (qkv_bias, mlp_bias) = (variant.qkv_bias, variant.mlp_bias);
            let (q_rows, kv_rows) = (heads * head_dim, kv_heads * head_dim);
            let [q, k, v] = if variant.fused {
                fused(
                    w,
                    &format!("{l}.self_attn.qkv_proj.weight"),
                    d,
                    [q_rows, kv_rows, kv_rows],
                )?
            } else {
                [
                    lin("self_attn.q_proj", q_rows, d, qkv_bias)?,
                    lin("self_attn.k_proj", kv_rows, d, qkv_bias)?,
                    lin("self_attn.v_proj", kv_rows, d, qkv_bias)?,
                ]
            };
            let [gate, up] = if variant.fused {
                fused(
                    w,
                    &format!("{l}.mlp.gate_up_proj.weight"),
                    d,
                    [inter, inter],
                )?
            } else {
                [
                    lin("mlp.gate_proj", inter, d, mlp_bias)?,
                    lin("mlp.up_proj", inter, d, mlp_bias)?,
                ]
            };
            layers.push(Layer {
                attn_norm: w.get(&format!("{l}.input_layernorm.weight"), &[d])?,
                attn: Attention {
                    q,
                    k,
                    v,
                    o: lin("self_attn.o_proj", d, heads * head_dim, variant.o_bias)?,
                    heads,
                    kv_heads,
                    causal: true,
                    window: variant.windows[i],
                    qk_norm,
                    scale: 1.0 / (head_dim as f32).sqrt(),
                    softcap: None,
                },
                mlp_norm: w.get(&format!("{l}.post_attention_layernorm.weight"), &[d])?,
                gate,
                up,
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
            rope,
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
        let start = LayerCache::positions(cache.as_deref());
        let rope = self.rope.slice(start, len)?;
        let mut h = x;
        for i in 0..self.layers.len() {
            let c = cache.as_deref_mut().map(|c| &mut c[i]);
            h = self.block(i, tape, h, &rope, c, hook)?;
        }
        self.finish(tape, h)
    }

    /// Layer `i` of a pass whose positions have the rotary tables `rope`.
    fn block(
        &self,
        i: usize,
        tape: &mut Tape,
        h: Var,
        rope: &(Tensor, Tensor),
        cache: Option<&mut LayerCache>,
        hook: &mut AttentionHook,
    ) -> Result<Var> {
        let l = &self.layers[i];
        let a = tape.rms_norm(h, &l.attn_norm, self.eps)?;
        let a = l.attn.forward(tape, a, Some(rope), cache, hook)?;
        let h = tape.add(h, a)?;
        let m = tape.rms_norm(h, &l.mlp_norm, self.eps)?;
        let g = l.gate.forward(tape, m)?;
        let g = tape.activation(g, Activation::Silu)?;
        let u = l.up.forward(tape, m)?;
        let m = tape.gate(g, u)?;
        let m = l.down.forward(tape, m)?;
        tape.add(h, m)
    }

    fn finish(&self, tape: &mut Tape, h: Var) -> Result<Var> {
        tape.rms_norm(h, &self.norm, self.eps)
    }

    /// Step `i` of an uncached pass, as `Model::step` numbers them.
    pub fn step(&self, i: usize, tape: &mut Tape, h: Var) -> Result<Var> {
        match i {
            0 => Ok(h),
            i if i <= self.layers.len() => {
                let rope = self.rope.slice(0, tape.value(h).dims()[1])?;
                self.block(i - 1, tape, h, &rope, None, &mut AttentionHook::default())
            }
            _ => self.finish(tape, h),
        }
    }
}

/// The bias-free linear layers stacked by rows in the fused weight `name` (`[Σ rows, d]`).
fn fused<const N: usize>(
    w: &Weights,
    name: &str,
    d: usize,
    rows: [usize; N],
) -> Result<[Linear; N]> {
    let mut ranges = Vec::with_capacity(N);
    let mut at = 0;
    for r in rows {
        ranges.push(at..at + r);
        at += r;
    }
    let parts = w.matrix_parts(name, &[at, d], &ranges)?;
    let layers: Vec<Linear> = parts
        .into_iter()
        .map(|weight| Linear { weight, bias: None })
        .collect();
    Ok(layers
        .try_into()
        .unwrap_or_else(|_| unreachable!("one part per range")))
}
