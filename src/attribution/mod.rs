//! Attribution methods. Each is a function of a prepared input (model, token embeddings,
//! resolved target) and options, returning an `Attribution`.

mod evaluate;
mod input_x_gradient;
mod integrated_gradients;
pub mod quadrature;
mod result;
mod saliency;
pub mod targets;

pub use evaluate::{gradients, gradients_with, next_token_logits, scores};
pub use quadrature::Quadrature;
pub use result::Attribution;
pub use targets::{ScoreKind, Target, TargetInfo, TargetSpec};

use crate::error::{Error, Result};
use crate::models::Model;
use crate::tensor::Tensor;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Saliency,
    InputXGradient,
    IntegratedGradients,
}

impl Method {
    pub const ALL: [Method; 3] = [
        Method::Saliency,
        Method::InputXGradient,
        Method::IntegratedGradients,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Saliency => "saliency",
            Method::InputXGradient => "input-x-gradient",
            Method::IntegratedGradients => "integrated-gradients",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let alias = match s {
            "ig" => "integrated-gradients",
            "ixg" => "input-x-gradient",
            s => s,
        };
        Method::ALL
            .into_iter()
            .find(|m| m.name() == alias)
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown method '{s}' (available: {})",
                    names.join(", ")
                ))
            })
    }
}

/// The baseline `x′` of path methods.
#[derive(Clone, Debug, Default)]
pub enum Baseline {
    #[default]
    Zero,
    /// The pad token's embedding at every position.
    Pad,
    /// A `[tokens, hidden]` matrix.
    Custom(Tensor),
}

impl std::str::FromStr for Baseline {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "zero" => Ok(Baseline::Zero),
            "pad" => Ok(Baseline::Pad),
            _ => Err(Error::InvalidArgument(format!(
                "unknown baseline '{s}' (expected zero or pad)"
            ))),
        }
    }
}

/// Called after each chunk of work with (done, total).
pub type Progress = Box<dyn Fn(usize, usize) + Send + Sync>;

pub struct Options {
    pub target: TargetSpec,
    pub score: ScoreKind,
    pub steps: usize,
    pub quadrature: Quadrature,
    pub baseline: Baseline,
    /// Path points per forward/backward; `None` picks one from a memory budget.
    pub batch_size: Option<usize>,
    /// Keep the full `[tokens, hidden]` map in the result's JSON.
    pub include_map: bool,
    pub progress: Option<Progress>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: TargetSpec::Auto,
            score: ScoreKind::Logit,
            steps: 50,
            quadrature: Quadrature::GaussLegendre,
            baseline: Baseline::Zero,
            batch_size: None,
            include_map: false,
            progress: None,
        }
    }
}

/// A tokenised prompt with its embeddings and resolved target.
pub struct Prepared<'a> {
    pub model: &'a Model,
    pub ids: Vec<u32>,
    /// `[tokens, hidden]`.
    pub x: Tensor,
    pub target: Target,
    include_map: bool,
}

impl<'a> Prepared<'a> {
    pub fn new(model: &'a Model, prompt: &str, opts: &Options) -> Result<Self> {
        let ids = model.tokenize(prompt)?;
        let x = model.embed(&ids)?;
        let target = Target::resolve(model, &x, &opts.target, opts.score)?;
        Ok(Prepared {
            model,
            ids,
            x,
            target,
            include_map: opts.include_map,
        })
    }

    /// `x` as a batch of one: `[1, tokens, hidden]`.
    pub fn x_batch(&self) -> Result<Tensor> {
        let mut dims = vec![1];
        dims.extend_from_slice(self.x.dims());
        self.x.reshape(dims)
    }

    pub fn baseline(&self, b: &Baseline) -> Result<Tensor> {
        match b {
            Baseline::Zero => Tensor::zeros(self.x.shape().clone(), self.x.device()),
            Baseline::Pad => {
                let pad = self.pad_token_id()?;
                self.model.embed(&vec![pad; self.ids.len()])
            }
            Baseline::Custom(t) => {
                if t.dims() != self.x.dims() {
                    return Err(Error::InvalidArgument(format!(
                        "custom baseline {} does not match the input {}",
                        t.shape(),
                        self.x.shape()
                    )));
                }
                t.to_device(self.x.device())
            }
        }
    }

    fn pad_token_id(&self) -> Result<u32> {
        if let Some(id) = self.model.info.pad_token_id {
            return Ok(id);
        }
        ["[PAD]", "<pad>", "<|pad|>"]
            .iter()
            .find_map(|t| self.model.tokenizer.token_to_id(t))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} has no pad token (no pad_token_id in config.json, none in the tokenizer): use --baseline zero",
                    self.model.name
                ))
            })
    }

    pub(crate) fn result(
        &self,
        method: &str,
        scores: Vec<f32>,
        map: Vec<f32>,
        target_score: f32,
    ) -> Attribution {
        Attribution {
            model: self.model.name.clone(),
            architecture: self.model.arch.name().to_string(),
            method: method.to_string(),
            device: self.model.device().to_string(),
            tokens: self
                .ids
                .iter()
                .map(|&i| self.model.tokenizer.token_text(i))
                .collect(),
            token_ids: self.ids.clone(),
            target: self.target.info(self.model),
            target_score,
            baseline_score: None,
            convergence_delta: None,
            scores,
            steps: None,
            quadrature: None,
            elapsed_ms: 0.0,
            repeat_ms: Vec::new(),
            warnings: Vec::new(),
            map: if self.include_map { Some(map) } else { None },
        }
    }
}

fn row_sums(map: &[f32], d: usize) -> Vec<f32> {
    map.chunks(d)
        .map(|r| r.iter().map(|&v| v as f64).sum::<f64>() as f32)
        .collect()
}

/// Explains `F` for `prompt` with `method`. The time reported excludes model loading.
pub fn attribute(
    model: &Model,
    prompt: &str,
    method: Method,
    opts: &Options,
) -> Result<Attribution> {
    let start = Instant::now();
    let p = Prepared::new(model, prompt, opts)?;
    let mut out = match method {
        Method::Saliency => saliency::saliency(&p)?,
        Method::InputXGradient => input_x_gradient::input_x_gradient(&p)?,
        Method::IntegratedGradients => integrated_gradients::integrated_gradients(&p, opts)?,
    };
    if let (Some(delta), Some(b)) = (out.convergence_delta, out.baseline_score) {
        let gap = (out.target_score - b).abs();
        if delta.abs() > 0.05 * gap.max(1e-6) {
            out.warnings.push(format!(
                "convergence delta {delta:.4} is {:.0}% of F(x) - F(x') = {:.4}: the path integral is not resolved; try more --steps{}",
                100.0 * delta.abs() / gap.max(1e-6),
                out.target_score - b,
                if matches!(opts.baseline, Baseline::Zero) && model.arch == crate::Architecture::Llama {
                    " or --baseline pad (pre-norm models are discontinuous near the zero baseline)"
                } else {
                    ""
                }
            ));
        }
    }
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}
