//! GPT-2. Its `Conv1D` weights are stored `[in, out]` (transposed relative to `nn.Linear`) and
//! the query/key/value projections are fused in `c_attn`; both are undone at load time.

use super::config::Config;
use super::layers::{activation_from_name, Attention, LayerCache, LayerNorm, Linear};
use super::weights::{HostTensor, Weights};
use super::AttentionHook;
use crate::autodiff::{Tape, Var};
use crate::backend::Activation;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    fc: Linear,
    proj: Linear,
}

pub struct Gpt2 {
    pub wte: Tensor,
    wpe: Vec<f32>,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    act: Activation,
    pub max_positions: usize,
    d: usize,
}

/// `[in, out]` -> `[out, in]`.
fn transpose(h: HostTensor) -> HostTensor {
    let (rows, cols) = (h.dims[0], h.dims[1]);
    let mut data = vec![0.0; h.data.len()];
    for r in 0..rows {
        for c in 0..cols {
            data[c * rows + r] = h.data[r * cols + c];
        }
    }
    HostTensor {
        data,
        dims: vec![cols, rows],
    }
}

fn conv1d(w: &Weights, prefix: &str, in_f: usize, out_f: usize) -> Result<Linear> {
    let weight = transpose(w.host(&format!("{prefix}.weight"), Some(&[in_f, out_f]))?);
    let bias = w.host(&format!("{prefix}.bias"), Some(&[out_f]))?.data;
    Linear::from_host(weight, Some(bias), w.device())
}

impl Gpt2 {
    pub fn load(cfg: &Config, w: &Weights) -> Result<Self> {
        let d = cfg.usize(&["n_embd", "hidden_size"])?;
        let heads = cfg.usize(&["n_head", "num_attention_heads"])?;
        let n_layers = cfg.usize(&["n_layer", "num_hidden_layers"])?;
        let vocab = cfg.usize(&["vocab_size"])?;
        let max_positions = cfg.usize(&["n_positions", "max_position_embeddings"])?;
        let inter = cfg.usize_or(&["n_inner"], 4 * d)?;
        let eps = cfg.eps_or(&["layer_norm_epsilon"], 1e-5)?;
        let act_name = cfg.str_or(&["activation_function"], "gelu_new");
        let act = activation_from_name(act_name).ok_or_else(|| Error::Config {
            path: cfg.path.clone(),
            reason: format!("unsupported activation_function '{act_name}'"),
        })?;
        if heads == 0 || d % heads != 0 {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!("n_embd {d} is not a multiple of n_head {heads}"),
            });
        }
        let p = if w.contains("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let mut blocks = Vec::new(); // not sized by the claim: a missing block is an error below
        for i in 0..n_layers {
            let b = format!("{p}h.{i}");
            // c_attn: [d, 3d] = [q | k | v] along the output dimension.
            let qkv = transpose(w.host(&format!("{b}.attn.c_attn.weight"), Some(&[d, 3 * d]))?);
            let qkv_b = w
                .host(&format!("{b}.attn.c_attn.bias"), Some(&[3 * d]))?
                .data;
            let part = |j: usize| -> Result<Linear> {
                let rows = HostTensor {
                    data: qkv.data[j * d * d..(j + 1) * d * d].to_vec(),
                    dims: vec![d, d],
                };
                Linear::from_host(rows, Some(qkv_b[j * d..(j + 1) * d].to_vec()), w.device())
            };
            blocks.push(Block {
                ln_1: LayerNorm::load(w, &format!("{b}.ln_1"), d, eps)?,
                attn: Attention {
                    q: part(0)?,
                    k: part(1)?,
                    v: part(2)?,
                    o: conv1d(w, &format!("{b}.attn.c_proj"), d, d)?,
                    heads,
                    kv_heads: heads,
                    causal: true,
                    window: None,
                    qk_norm: None,
                    scale: 1.0 / ((d / heads) as f32).sqrt(),
                    softcap: None,
                },
                ln_2: LayerNorm::load(w, &format!("{b}.ln_2"), d, eps)?,
                fc: conv1d(w, &format!("{b}.mlp.c_fc"), d, inter)?,
                proj: conv1d(w, &format!("{b}.mlp.c_proj"), inter, d)?,
            });
        }
        Ok(Gpt2 {
            wte: w.matrix(&format!("{p}wte.weight"), &[vocab, d])?,
            wpe: w
                .host(&format!("{p}wpe.weight"), Some(&[max_positions, d]))?
                .data,
            blocks,
            ln_f: LayerNorm::load(w, &format!("{p}ln_f"), d, eps)?,
            act,
            max_positions,
            d,
        })
    }

    /// `x: [b, l, d]` token embeddings -> final hidden states (after `ln_f`). With `cache`,
    /// `x` continues the cached positions.
    pub fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        mut cache: Option<&mut [LayerCache]>,
        hook: &mut AttentionHook,
    ) -> Result<Var> {
        let start = LayerCache::positions(cache.as_deref());
        let mut h = self.positions(tape, x, start)?;
        for i in 0..self.blocks.len() {
            let c = cache.as_deref_mut().map(|c| &mut c[i]);
            h = self.block(i, tape, h, c, hook)?;
        }
        self.ln_f.forward(tape, h)
    }

    /// `x` plus the position embeddings of `start..`.
    fn positions(&self, tape: &mut Tape, x: Var, start: usize) -> Result<Var> {
        let len = tape.value(x).dims()[1];
        let pos = Tensor::from_vec(
            self.wpe[start * self.d..(start + len) * self.d].to_vec(),
            [len, self.d],
            tape.value(x).device(),
        )?;
        tape.add_const(x, &pos)
    }

    fn block(
        &self,
        i: usize,
        tape: &mut Tape,
        h: Var,
        cache: Option<&mut LayerCache>,
        hook: &mut AttentionHook,
    ) -> Result<Var> {
        let b = &self.blocks[i];
        let a = b.ln_1.forward(tape, h)?;
        let a = b.attn.forward(tape, a, None, cache, hook)?;
        let h = tape.add(h, a)?;
        let m = b.ln_2.forward(tape, h)?;
        let m = b.fc.forward(tape, m)?;
        let m = tape.activation(m, self.act)?;
        let m = b.proj.forward(tape, m)?;
        tape.add(h, m)
    }

    /// Step `i` of an uncached pass, as `Model::step` numbers them.
    pub fn step(&self, i: usize, tape: &mut Tape, h: Var) -> Result<Var> {
        match i {
            0 => self.positions(tape, h, 0),
            i if i <= self.blocks.len() => {
                self.block(i - 1, tape, h, None, &mut AttentionHook::default())
            }
            _ => self.ln_f.forward(tape, h),
        }
    }
}
