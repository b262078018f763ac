//! BERT encoders (`BertModel`, and `BertForSequenceClassification` heads when present), and
//! RoBERTa and XLM-R, which are BERT with positions counted from `pad_token_id + 1` and a
//! classification head of their own (`dense`, tanh, `out_proj`, on `<s>`: the same shape as
//! BERT's pooler and classifier). Post-norm: `h = LN(h + attn(h)); h = LN(h + mlp(h))`.

use super::config::Config;
use super::layers::{activation_from_name, Attention, LayerNorm, Linear};
use super::weights::Weights;
use super::AttentionHook;
use crate::autodiff::{Tape, Var};
use crate::backend::Activation;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

struct Layer {
    attn: Attention,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// Pooler (`tanh(W h_[CLS] + b)`) and classifier of a sequence-classification model.
pub struct ClassifierHead {
    pub pooler: Linear,
    pub classifier: Linear,
}

impl ClassifierHead {
    /// The pooled `[b, hidden]` input of the classifier: `tanh(W h_[CLS] + b)` of `h: [b, l, d]`.
    pub fn pooled(&self, tape: &mut Tape, h: Var) -> Result<Var> {
        let cls = tape.select_position(h, 0)?;
        let pooled = self.pooler.forward(tape, cls)?;
        tape.activation(pooled, Activation::Tanh)
    }
}

pub struct Bert {
    pub word_embeddings: Tensor,
    /// Position embedding plus the token-type-0 embedding, `[max_positions, d]` on the host.
    position_rows: Vec<f32>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    act: Activation,
    pub head: Option<ClassifierHead>,
    pub max_positions: usize,
}

impl Bert {
    pub fn load(arch: super::Architecture, cfg: &Config, w: &Weights) -> Result<Self> {
        let roberta = matches!(
            arch,
            super::Architecture::Roberta | super::Architecture::XlmRoberta
        );
        let d = cfg.usize(&["hidden_size"])?;
        let heads = cfg.usize(&["num_attention_heads"])?;
        let inter = cfg.usize(&["intermediate_size"])?;
        let n_layers = cfg.usize(&["num_hidden_layers"])?;
        let vocab = cfg.usize(&["vocab_size"])?;
        let position_rows_total = cfg.usize(&["max_position_embeddings"])?;
        // RoBERTa's position ids start after the pad token's (transformers'
        // `create_position_ids_from_inputs_embeds`).
        let first_position = if roberta {
            cfg.token_id("pad_token_id").unwrap_or(1) as usize + 1
        } else {
            0
        };
        let max_positions = position_rows_total
            .checked_sub(first_position)
            .filter(|&n| n >= 1)
            .ok_or_else(|| Error::Config {
                path: cfg.path.clone(),
                reason: format!(
                    "{position_rows_total} position embeddings leave none after the first position {first_position}"
                ),
            })?;
        let eps = cfg.eps_or(&["layer_norm_eps"], 1e-12)?;
        let act_name = cfg.str_or(&["hidden_act"], "gelu");
        let act = activation_from_name(act_name).ok_or_else(|| Error::Config {
            path: cfg.path.clone(),
            reason: format!("unsupported hidden_act '{act_name}'"),
        })?;
        if heads == 0 || d % heads != 0 {
            return Err(Error::Config {
                path: cfg.path.clone(),
                reason: format!("hidden_size {d} is not a multiple of num_attention_heads {heads}"),
            });
        }
        let p = ["bert.", "roberta."]
            .into_iter()
            .find(|p| w.contains(&format!("{p}embeddings.word_embeddings.weight")))
            .unwrap_or("");
        let type_table = w.host(&format!("{p}embeddings.token_type_embeddings.weight"), None)?;
        if type_table.dims.len() != 2 || type_table.dims[1] != d || type_table.dims[0] == 0 {
            return Err(Error::BadTensor {
                name: format!("{p}embeddings.token_type_embeddings.weight"),
                reason: format!(
                    "shape {:?}, expected [token types >= 1, {d}]",
                    type_table.dims
                ),
            });
        }
        let mut layers = Vec::new(); // not sized by the claim: a missing layer is an error below
        for i in 0..n_layers {
            let l = format!("{p}encoder.layer.{i}");
            let lin = |name: &str, o, n| Linear::load(w, &format!("{l}.{name}"), o, n, true);
            layers.push(Layer {
                attn: Attention {
                    q: lin("attention.self.query", d, d)?,
                    k: lin("attention.self.key", d, d)?,
                    v: lin("attention.self.value", d, d)?,
                    o: lin("attention.output.dense", d, d)?,
                    heads,
                    kv_heads: heads,
                    causal: false,
                    window: None,
                    qk_norm: None,
                    scale: 1.0 / ((d / heads) as f32).sqrt(),
                    softcap: None,
                },
                attn_norm: LayerNorm::load(w, &format!("{l}.attention.output.LayerNorm"), d, eps)?,
                up: lin("intermediate.dense", inter, d)?,
                down: lin("output.dense", d, inter)?,
                out_norm: LayerNorm::load(w, &format!("{l}.output.LayerNorm"), d, eps)?,
            });
        }
        let mut position_rows = w
            .host(
                &format!("{p}embeddings.position_embeddings.weight"),
                Some(&[position_rows_total, d]),
            )?
            .data
            .split_off(first_position * d);
        for (i, v) in position_rows.iter_mut().enumerate() {
            *v += type_table.data[i % d];
        }
        let head = if w.contains("classifier.out_proj.weight") {
            let labels = w.host("classifier.out_proj.weight", None)?.dims[0];
            Some(ClassifierHead {
                pooler: Linear::load(w, "classifier.dense", d, d, true)?,
                classifier: Linear::load(w, "classifier.out_proj", labels, d, true)?,
            })
        } else if w.contains("classifier.weight") {
            let labels = w.host("classifier.weight", None)?.dims[0];
            Some(ClassifierHead {
                pooler: Linear::load(w, &format!("{p}pooler.dense"), d, d, true)?,
                classifier: Linear::load(w, "classifier", labels, d, true)?,
            })
        } else {
            None
        };
        Ok(Bert {
            word_embeddings: w.matrix(
                &format!("{p}embeddings.word_embeddings.weight"),
                &[vocab, d],
            )?,
            position_rows,
            emb_norm: LayerNorm::load(w, &format!("{p}embeddings.LayerNorm"), d, eps)?,
            layers,
            act,
            head,
            max_positions,
        })
    }

    /// `x: [b, l, d]` word embeddings -> last hidden states `[b, l, d]`.
    pub fn forward(&self, tape: &mut Tape, x: Var, hook: &mut AttentionHook) -> Result<Var> {
        let mut h = self.embeddings(tape, x)?;
        for i in 0..self.layers.len() {
            h = self.block(i, tape, h, hook)?;
        }
        Ok(h)
    }

    /// Position and token-type embeddings, then the embedding norm. They are constants added
    /// inside the model, so they are part of neither the input nor the baseline.
    fn embeddings(&self, tape: &mut Tape, x: Var) -> Result<Var> {
        let len = tape.value(x).dims()[1];
        let d = tape.value(x).dims()[2];
        let rows = Tensor::from_vec(
            self.position_rows[..len * d].to_vec(),
            [len, d],
            tape.value(x).device(),
        )?;
        let h = tape.add_const(x, &rows)?;
        self.emb_norm.forward(tape, h)
    }

    fn block(&self, i: usize, tape: &mut Tape, h: Var, hook: &mut AttentionHook) -> Result<Var> {
        let layer = &self.layers[i];
        let a = layer.attn.forward(tape, h, None, None, hook)?;
        let a = tape.add(h, a)?;
        let h = layer.attn_norm.forward(tape, a)?;
        let m = layer.up.forward(tape, h)?;
        let m = tape.activation(m, self.act)?;
        let m = layer.down.forward(tape, m)?;
        let m = tape.add(h, m)?;
        layer.out_norm.forward(tape, m)
    }

    /// Step `i` of a pass, as `Model::step` numbers them (the last one is the identity: the
    /// encoder's output is its last layer's).
    pub fn step(&self, i: usize, tape: &mut Tape, h: Var) -> Result<Var> {
        match i {
            0 => self.embeddings(tape, h),
            i if i <= self.layers.len() => {
                self.block(i - 1, tape, h, &mut AttentionHook::default())
            }
            _ => Ok(h),
        }
    }
}
