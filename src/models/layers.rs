//! Building blocks shared by the architectures: linear layers, norms, attention.

use super::weights::{HostTensor, Weights};
use super::AttentionHook;
use crate::autodiff::{Tape, Var};
use crate::backend::{Activation, SoftmaxMask};
use crate::error::Result;
use crate::tensor::{Device, Tensor};

pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A Hugging Face `nn.Linear`: `{prefix}.weight [out, in]`, optional `{prefix}.bias`.
    pub fn load(w: &Weights, prefix: &str, out_f: usize, in_f: usize, bias: bool) -> Result<Self> {
        Ok(Linear {
            weight: w.matrix(&format!("{prefix}.weight"), &[out_f, in_f])?,
            bias: if bias {
                Some(w.get(&format!("{prefix}.bias"), &[out_f])?)
            } else {
                None
            },
        })
    }

    pub fn from_host(weight: HostTensor, bias: Option<Vec<f32>>, device: Device) -> Result<Self> {
        let out_f = weight.dims[0];
        Ok(Linear {
            weight: Tensor::from_vec(weight.data, weight.dims, device)?,
            bias: match bias {
                Some(b) => Some(Tensor::from_vec(b, [out_f], device)?),
                None => None,
            },
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: Var) -> Result<Var> {
        tape.linear(x, &self.weight, self.bias.as_ref())
    }
}

pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    pub fn load(w: &Weights, prefix: &str, dim: usize, eps: f32) -> Result<Self> {
        Ok(LayerNorm {
            weight: w.get(&format!("{prefix}.weight"), &[dim])?,
            bias: w.get(&format!("{prefix}.bias"), &[dim])?,
            eps,
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: Var) -> Result<Var> {
        tape.layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// One layer's keys and values of earlier positions (after RoPE, before head repeats), so a
/// generation step only computes its new token.
#[derive(Default)]
pub struct LayerCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
}

impl LayerCache {
    /// Appends `new: [b, h, t, d]` along the sequence; returns the whole.
    fn append(slot: &mut Option<Tensor>, new: &Tensor) -> Result<Tensor> {
        let all = match slot.take() {
            None => new.clone(),
            Some(prev) => {
                let [b, h, t1, d]: [usize; 4] = prev
                    .dims()
                    .try_into()
                    .map_err(|_| crate::Error::Shape("cache".into()))?;
                let t2 = new.dims()[2];
                let s =
                    prev.backend()
                        .concat_seq(prev.storage(), new.storage(), [b, h, t1, d], t2)?;
                crate::ops::tensor(s, [b, h, t1 + t2, d])
            }
        };
        *slot = Some(all.clone());
        Ok(all)
    }

    /// Positions a model's caches (if any) hold: where a pass continues.
    pub fn positions(cache: Option<&[LayerCache]>) -> usize {
        cache.and_then(|c| c.first()).map_or(0, |c| c.len())
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Qwen3's and Gemma 3's RMSNorm of each head's queries and keys (over `head_dim`), before
/// RoPE.
pub struct QkNorm {
    pub q: Tensor,
    pub k: Tensor,
    pub eps: f32,
}

pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub heads: usize,
    pub kv_heads: usize,
    pub causal: bool,
    /// A sliding window: each query sees only its last `w` keys (itself included).
    pub window: Option<usize>,
    pub qk_norm: Option<QkNorm>,
    /// The query scale: `1/√head_dim`, or Gemma's `query_pre_attn_scalar^-½`.
    pub scale: f32,
    /// Gemma 2's soft-capping of the scaled scores, `c·tanh(s/c)`, before the softmax.
    pub softcap: Option<f32>,
}

impl Attention {
    /// Multi-head (or grouped-query) self-attention of `h: [b, l, d]`.
    /// With `cache`, earlier positions' keys and values come from it (and the new ones are
    /// added to it); `rope` then covers the new positions only.
    pub fn forward(
        &self,
        tape: &mut Tape,
        h: Var,
        rope: Option<&(Tensor, Tensor)>,
        cache: Option<&mut LayerCache>,
        hook: &mut AttentionHook,
    ) -> Result<Var> {
        let q = self.q.forward(tape, h)?;
        let k = self.k.forward(tape, h)?;
        let v = self.v.forward(tape, h)?;
        let mut q = tape.split_heads(q, self.heads)?;
        let mut k = tape.split_heads(k, self.kv_heads)?;
        let v = tape.split_heads(v, self.kv_heads)?;
        if let Some(n) = &self.qk_norm {
            q = tape.rms_norm(q, &n.q, n.eps)?;
            k = tape.rms_norm(k, &n.k, n.eps)?;
        }
        if let Some((cos, sin)) = rope {
            q = tape.rope(q, cos, sin)?;
            k = tape.rope(k, cos, sin)?;
        }
        let (k, v, offset) = match cache {
            None => (k, v, 0),
            Some(c) => {
                let offset = c.len();
                let k_all = LayerCache::append(&mut c.k, tape.value(k))?;
                let v_all = LayerCache::append(&mut c.v, tape.value(v))?;
                (tape.constant(k_all), tape.constant(v_all), offset)
            }
        };
        let rep = self.heads / self.kv_heads;
        let k = tape.repeat_heads(k, rep)?;
        let v = tape.repeat_heads(v, rep)?;
        let len = tape.value(h).dims()[1];
        let mask = if self.causal {
            SoftmaxMask::Causal {
                len,
                offset,
                window: self.window,
            }
        } else {
            SoftmaxMask::None
        };
        let ctx = match self.softcap {
            // Nothing reads the probabilities: the fused attention never holds them.
            None if !hook.wants_probabilities() => tape.attention(q, k, v, self.scale, mask)?,
            None => {
                let probs = tape.attention_probs(q, k, self.scale, mask)?;
                let probs = hook.see(tape, probs)?;
                tape.attention_context(probs, v)?
            }
            // The fused kernels have no cap: the scores are a matmul, capped by the tape's
            // elementwise ops (whose rules every rule set has), then a masked softmax.
            Some(cap) => {
                let s = tape.matmul(q, k, false, true)?;
                let s = tape.scale(s, self.scale / cap)?;
                let s = tape.activation(s, Activation::Tanh)?;
                let s = tape.scale(s, cap)?;
                let probs = tape.softmax(s, mask)?;
                let probs = hook.see(tape, probs)?;
                tape.attention_context(probs, v)?
            }
        };
        let ctx = tape.merge_heads(ctx)?;
        self.o.forward(tape, ctx)
    }
}

/// Hugging Face `hidden_act` names.
pub fn activation_from_name(name: &str) -> Option<Activation> {
    Some(match name {
        "gelu" | "gelu_python" => Activation::GeluErf,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "silu" | "swish" => Activation::Silu,
        "relu" => Activation::Relu,
        "tanh" => Activation::Tanh,
        _ => return None,
    })
}
