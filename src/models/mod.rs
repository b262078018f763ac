//! Models from Hugging Face folders: `config.json`, safetensors weights, `tokenizer.json`.
//! Every model takes input embeddings `[batch, seq, hidden]` as a tape variable; the batch
//! dimension carries path steps or samples, which the model never needs to know.

mod attention_hook;
mod bert;
mod config;
mod gemma;
mod gpt2;
mod layers;
mod llama;
mod rope;
mod tokenizer;
mod weights;

pub use attention_hook::AttentionHook;
pub use bert::ClassifierHead;
pub use layers::LayerCache;
pub use tokenizer::TextTokenizer;
pub use weights::{WeightGroup, WeightMode, Weights};

use crate::autodiff::{Tape, Var};
use crate::backend::backend_for;
use crate::error::{Error, Result};
use crate::tensor::{Device, Tensor};
use config::Config;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Bert,
    Roberta,
    XlmRoberta,
    Gpt2,
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Phi3,
    Gemma2,
    Gemma3,
}

impl Architecture {
    /// Every architecture, by its `model_type`.
    pub const ALL: [Architecture; 11] = [
        Architecture::Bert,
        Architecture::Roberta,
        Architecture::XlmRoberta,
        Architecture::Gpt2,
        Architecture::Llama,
        Architecture::Mistral,
        Architecture::Qwen2,
        Architecture::Qwen3,
        Architecture::Phi3,
        Architecture::Gemma2,
        Architecture::Gemma3,
    ];

    /// The `model_type` of `config.json` (and the GGUF architecture, where llama.cpp has one).
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::Roberta => "roberta",
            Architecture::XlmRoberta => "xlm-roberta",
            Architecture::Gpt2 => "gpt2",
            Architecture::Llama => "llama",
            Architecture::Mistral => "mistral",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Phi3 => "phi3",
            Architecture::Gemma2 => "gemma2",
            Architecture::Gemma3 => "gemma3",
        }
    }

    /// The architecture of a `model_type`, or an error that lists the supported ones.
    pub fn from_model_type(model_type: &str) -> Result<Self> {
        // The text-only Gemma 3 checkpoints (270M, 1B) name their config `gemma3_text`.
        if model_type == "gemma3_text" {
            return Ok(Architecture::Gemma3);
        }
        Architecture::ALL
            .into_iter()
            .find(|a| a.name() == model_type)
            .ok_or_else(|| Error::UnsupportedArchitecture(model_type.to_string()))
    }

    /// The supported `model_type`s, comma-separated (for error messages).
    pub fn supported() -> String {
        let names: Vec<&str> = Architecture::ALL.iter().map(|a| a.name()).collect();
        names.join(", ")
    }

    /// Decoders predict the next token; encoders do not.
    pub fn is_causal(self) -> bool {
        !matches!(
            self,
            Architecture::Bert | Architecture::Roberta | Architecture::XlmRoberta
        )
    }
}

enum Network {
    Bert(bert::Bert),
    Gpt2(gpt2::Gpt2),
    Llama(llama::Llama),
    Gemma(gemma::Gemma),
}

/// Facts about a loaded model (for `gradlens info` and for choosing defaults).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelInfo {
    pub architecture: &'static str,
    pub hidden_size: usize,
    pub layers: usize,
    pub attention_heads: usize,
    pub key_value_heads: usize,
    /// Each attention head's width.
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub max_positions: usize,
    pub parameters: usize,
    pub dtype: String,
    pub pad_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub classifier_labels: Option<usize>,
    /// How the weights are held, by group, and the bytes each group takes.
    pub weights: Vec<WeightGroup>,
}

impl ModelInfo {
    /// Bytes the weights take in memory (stored or decoded).
    pub fn weight_bytes(&self) -> usize {
        self.weights.iter().map(|g| g.bytes).sum()
    }

    /// The formats the weight matrices are computed in, largest share first (`q4_1, f32`).
    pub fn weight_formats(&self) -> String {
        let mut by: Vec<(String, usize)> = Vec::new();
        for g in &self.weights {
            match by.iter_mut().find(|(f, _)| *f == g.format) {
                Some((_, b)) => *b += g.bytes,
                None => by.push((g.format.clone(), g.bytes)),
            }
        }
        by.sort_by_key(|g| std::cmp::Reverse(g.1));
        by.into_iter()
            .map(|(f, _)| f)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub struct Model {
    pub name: String,
    pub path: PathBuf,
    pub arch: Architecture,
    pub info: ModelInfo,
    pub tokenizer: TextTokenizer,
    device: Device,
    net: Network,
}

impl Model {
    /// Loads a Hugging Face model folder or a GGUF file onto `device`, weights as stored.
    pub fn load(path: &Path, device: Device) -> Result<Model> {
        Model::load_with(path, device, WeightMode::Stored)
    }

    /// `load`, with weight matrices held as `mode` says.
    pub fn load_with(path: &Path, device: Device, mode: WeightMode) -> Result<Model> {
        backend_for(device)?;
        if !path.exists() {
            return Err(Error::ModelNotFound(path.to_path_buf()));
        }
        let (cfg, weights, tokenizer) = if path.is_file() {
            if !path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            {
                return Err(Error::InvalidInput(format!(
                    "{}: expected a model folder (config.json, model.safetensors, tokenizer.json) or a .gguf file",
                    path.display()
                )));
            }
            let file = crate::gguf::GgufFile::open(path)?;
            let cfg = Config::from_json(path, crate::gguf::config(&file)?);
            let (tok, _) = crate::gguf::tokenizer::tokenizer_json(&file)?;
            let tokenizer = TextTokenizer::from_json(&tok.to_string(), path)?;
            (cfg, Weights::from_gguf(file, device, mode), tokenizer)
        } else {
            let cfg = Config::read(path)?;
            let weights = Weights::open(path, device, mode)?;
            let tokenizer = TextTokenizer::from_file(&path.join("tokenizer.json"))?;
            (cfg, weights, tokenizer)
        };
        let model_type = cfg.model_type()?;
        let arch = Architecture::from_model_type(&model_type)?;
        let net = match arch {
            Architecture::Bert | Architecture::Roberta | Architecture::XlmRoberta => {
                Network::Bert(bert::Bert::load(arch, &cfg, &weights)?)
            }
            Architecture::Gpt2 => Network::Gpt2(gpt2::Gpt2::load(&cfg, &weights)?),
            Architecture::Llama
            | Architecture::Mistral
            | Architecture::Qwen2
            | Architecture::Qwen3
            | Architecture::Phi3 => Network::Llama(llama::Llama::load(arch, &cfg, &weights)?),
            Architecture::Gemma2 | Architecture::Gemma3 => {
                Network::Gemma(gemma::Gemma::load(arch, &cfg, &weights)?)
            }
        };
        // The sizes below are the text model's (Gemma 3's may sit under `text_config`).
        let cfg = match arch {
            Architecture::Gemma2 | Architecture::Gemma3 => gemma::text_config(&cfg),
            _ => cfg,
        };
        let (parameters, dtype) = weights.summary();
        let heads = cfg.usize(&["num_attention_heads", "n_head"])?;
        let hidden = cfg.usize(&["hidden_size", "n_embd"])?;
        let info = ModelInfo {
            architecture: arch.name(),
            hidden_size: hidden,
            layers: cfg.usize(&["num_hidden_layers", "n_layer"])?,
            attention_heads: heads,
            key_value_heads: cfg.usize_or(&["num_key_value_heads"], heads)?,
            // As the families read it: Gemma's default is 256, the others' hidden / heads.
            head_dim: cfg.usize_or(
                &["head_dim"],
                match &net {
                    Network::Gemma(_) => 256,
                    _ => hidden / heads.max(1),
                },
            )?,
            intermediate_size: cfg.usize_or(&["intermediate_size", "n_inner"], 4 * hidden)?,
            vocab_size: cfg.usize(&["vocab_size"])?,
            max_positions: match &net {
                Network::Bert(m) => m.max_positions,
                Network::Gpt2(m) => m.max_positions,
                Network::Llama(m) => m.max_positions,
                Network::Gemma(m) => m.max_positions,
            },
            parameters,
            dtype,
            pad_token_id: cfg.token_id("pad_token_id"),
            eos_token_id: cfg.token_id("eos_token_id"),
            classifier_labels: match &net {
                Network::Bert(b) => b.head.as_ref().map(|h| h.classifier.weight.dims()[0]),
                _ => None,
            },
            weights: weights.loaded(),
        };
        let name = path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| path.display().to_string());
        let name = name
            .strip_suffix(".gguf")
            .map(str::to_string)
            .unwrap_or(name);
        Ok(Model {
            name,
            path: path.to_path_buf(),
            arch,
            info,
            tokenizer,
            device,
            net,
        })
    }

    /// Names the weight that holds a NaN or infinite value, if one does (read again from the
    /// model's files): why a run's result was not finite.
    pub fn non_finite_weight(&self) -> Option<String> {
        let weights = if self.path.is_file() {
            let file = crate::gguf::GgufFile::open(&self.path).ok()?;
            Weights::from_gguf(file, Device::Cpu, WeightMode::F32)
        } else {
            Weights::open(&self.path, Device::Cpu, WeightMode::F32).ok()?
        };
        let (name, i, v) = weights.first_non_finite()?;
        Some(format!("the weight '{name}' holds {v} at index {i}"))
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn hidden_size(&self) -> usize {
        self.info.hidden_size
    }

    /// The input embedding table `[vocab, hidden]`.
    pub fn input_embeddings(&self) -> &Tensor {
        match &self.net {
            Network::Bert(m) => &m.word_embeddings,
            Network::Gpt2(m) => &m.wte,
            Network::Llama(m) => &m.embed_tokens,
            Network::Gemma(m) => &m.embed_tokens,
        }
    }

    /// Soft-capping `c·tanh(l/c)` of the next-token logits (Gemma 2), which every target and
    /// logit read applies after the output projection.
    pub fn logit_softcap(&self) -> Option<f32> {
        match &self.net {
            Network::Gemma(m) => m.logit_softcap,
            _ => None,
        }
    }

    /// What `embed` multiplies the table's rows by: Gemma's `√hidden`, else 1.
    pub fn embed_scale(&self) -> f32 {
        match &self.net {
            Network::Gemma(m) => m.embed_scale,
            _ => 1.0,
        }
    }

    /// The pad token: config.json's `pad_token_id`, else a pad token the tokenizer knows.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.info.pad_token_id.or_else(|| {
            ["[PAD]", "<pad>", "<|pad|>"]
                .iter()
                .find_map(|t| self.tokenizer.token_to_id(t))
        })
    }

    /// The output projection `[vocab, hidden]` of a causal LM.
    pub fn output_embeddings(&self) -> Option<&Tensor> {
        match &self.net {
            Network::Bert(_) => None,
            Network::Gpt2(m) => Some(&m.wte),
            Network::Llama(m) => Some(&m.lm_head),
            Network::Gemma(m) => Some(&m.embed_tokens),
        }
    }

    pub fn classifier(&self) -> Option<&ClassifierHead> {
        match &self.net {
            Network::Bert(m) => m.head.as_ref(),
            _ => None,
        }
    }

    /// Token ids of `text` with the model's special tokens, checked against the context size.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenize_as(text, "the prompt")
    }

    /// `tokenize`, naming the text `what` (`the compare text`) in its errors.
    pub fn tokenize_as(&self, text: &str, what: &str) -> Result<Vec<u32>> {
        if text.trim().is_empty() {
            return Err(Error::InvalidInput(format!("{what} is empty")));
        }
        let ids = self.tokenizer.encode(text, true)?;
        if ids.is_empty() {
            return Err(Error::InvalidInput(format!("{what} produced no tokens")));
        }
        if ids.len() > self.info.max_positions {
            return Err(Error::TooLong(format!(
                "{what} is {} tokens long, more than the model's {} positions",
                ids.len(),
                self.info.max_positions
            )));
        }
        Ok(ids)
    }

    /// Input embeddings `[len, hidden]` of `ids`: the table's rows, times `embed_scale`.
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        let table = self.input_embeddings();
        let d = self.hidden_size();
        let be = table.backend();
        let mut s = be.gather_rows(table.storage(), ids, d)?;
        if self.embed_scale() != 1.0 {
            s = be.scale(&s, self.embed_scale())?;
        }
        Ok(Tensor::from_storage(s, [ids.len(), d].into()))
    }

    /// Runs the network on `x: [batch, len, hidden]`; returns the last hidden states.
    pub fn forward(&self, tape: &mut Tape, x: Var) -> Result<Var> {
        self.forward_hooked(tape, x, &mut AttentionHook::default())
    }

    /// `forward`, with each attention layer's probabilities passed through `hook`.
    pub fn forward_hooked(&self, tape: &mut Tape, x: Var, hook: &mut AttentionHook) -> Result<Var> {
        self.check_input(tape.value(x).dims())?;
        match &self.net {
            Network::Bert(m) => m.forward(tape, x, hook),
            Network::Gpt2(m) => m.forward(tape, x, None, hook),
            Network::Llama(m) => m.forward(tape, x, None, hook),
            Network::Gemma(m) => m.forward(tape, x, None, hook),
        }
    }

    /// `x` is `[batch, len, hidden]` with `len` within the model's positions.
    fn check_input(&self, dims: &[usize]) -> Result<()> {
        if dims.len() != 3 || dims[2] != self.hidden_size() {
            return Err(Error::Shape(format!(
                "model input must be [batch, len, {}], got {:?}",
                self.hidden_size(),
                dims
            )));
        }
        if dims[1] > self.info.max_positions {
            return Err(Error::InvalidInput(format!(
                "{} positions exceed the model's {}",
                dims[1], self.info.max_positions
            )));
        }
        Ok(())
    }

    /// How many steps `step` splits an uncached pass into: the embeddings' additions, each
    /// layer, and the final norm.
    pub fn steps(&self) -> usize {
        self.info.layers + 2
    }

    /// Step `i` of `forward` (with the default hook) on `h`: 0 the additions to the input
    /// embeddings, 1 to `layers` the layers, then the final norm. Running them in order is
    /// `forward`, op for op; checkpointing runs them on tapes of their own.
    pub fn step(&self, i: usize, tape: &mut Tape, h: Var) -> Result<Var> {
        match &self.net {
            Network::Bert(m) => m.step(i, tape, h),
            Network::Gpt2(m) => m.step(i, tape, h),
            Network::Llama(m) => m.step(i, tape, h),
            Network::Gemma(m) => m.step(i, tape, h),
        }
    }

    /// The last hidden states of `x: [batch, len, hidden]` where nothing will be
    /// differentiated: each step on a tape of its own, dropped when the next begins, so a
    /// forward pass holds one layer's activations, not every layer's.
    pub fn hidden_states(&self, x: &Tensor) -> Result<Tensor> {
        let mut record = self.run_steps(x, false)?;
        Ok(record.inputs.pop().expect("the output"))
    }

    /// What a checkpointed backward starts from: the steps of a pass of `x` run on tapes of
    /// their own, each step's input kept, and its attention outputs.
    pub fn step_record(&self, x: &Tensor) -> Result<StepRecord> {
        self.run_steps(x, true)
    }

    /// The steps run on tapes of their own; every step's input and attention outputs kept
    /// where `keep`, else only the output.
    fn run_steps(&self, x: &Tensor, keep: bool) -> Result<StepRecord> {
        self.check_input(x.dims())?;
        let mut record = StepRecord {
            inputs: vec![x.clone()],
            attention: Vec::new(),
        };
        for i in 0..self.steps() {
            let mut tape = match keep {
                true => Tape::recording_attention(),
                false => Tape::new(),
            };
            let v = tape.constant(record.output().clone());
            let v = self.step(i, &mut tape, v)?;
            if !keep {
                record.inputs.clear();
            }
            record.inputs.push(tape.value(v).clone());
            if keep {
                record.attention.push(tape.take_attention_outputs());
            }
        }
        Ok(record)
    }

    /// An empty key/value cache for `forward_cached`.
    pub fn new_cache(&self) -> Vec<LayerCache> {
        (0..self.info.layers)
            .map(|_| LayerCache::default())
            .collect()
    }

    /// `forward` for the positions after those in `cache` (which it extends): generation
    /// computes only the new token. Causal models only.
    pub fn forward_cached(&self, tape: &mut Tape, x: Var, cache: &mut [LayerCache]) -> Result<Var> {
        let total = cache.first().map_or(0, |c| c.len()) + tape.value(x).dims()[1];
        if total > self.info.max_positions {
            return Err(Error::InvalidInput(format!(
                "{total} positions exceed the model's {}",
                self.info.max_positions
            )));
        }
        match &self.net {
            Network::Bert(_) => Err(Error::InvalidArgument(
                "an encoder has no key/value cache".into(),
            )),
            Network::Gpt2(m) => m.forward(tape, x, Some(cache), &mut AttentionHook::default()),
            Network::Llama(m) => m.forward(tape, x, Some(cache), &mut AttentionHook::default()),
            Network::Gemma(m) => m.forward(tape, x, Some(cache), &mut AttentionHook::default()),
        }
    }
}

/// A pass recorded step by step for a checkpointed backward (`Model::step_record`).
pub struct StepRecord {
    /// What entered each step, then the pass's output (`steps() + 1` tensors).
    pub inputs: Vec<Tensor>,
    /// Each step's fused attention outputs, in order, for its recomputation to replay.
    pub attention: Vec<Vec<Tensor>>,
}

impl StepRecord {
    /// The pass's output: the last hidden states.
    pub fn output(&self) -> &Tensor {
        self.inputs
            .last()
            .expect("a record holds at least its input")
    }
}
