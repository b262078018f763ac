//! A prompt made ready for a method: its tokens, embeddings and resolved target, with what
//! every method shares (`Settings`), and the builders of a method's `Attribution`.

use super::checkpoint::Checkpoint;
use super::evaluate::RecordedPass;
use super::targets::{ScoreKind, Target, TargetSpec};
use super::{adaptive, chunks, evaluate};
use crate::attribution::{Attribution, TokenScore};
use crate::error::{Error, Result};
use crate::models::Model;
use crate::tensor::Tensor;
use std::sync::Mutex;

/// Called after each chunk of work with (done, total).
pub type Progress = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

/// A request to stop a run, set from another thread (Ctrl-C in Python, a cancelled request
/// in the server). A run checks it before each chunk of passes and at each step it reports,
/// and then ends with `Error::Cancelled`.
#[derive(Clone, Debug, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `other` is this very switch (a clone of it), not merely in the same state.
    pub fn same(&self, other: &Cancel) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }

    /// `Error::Cancelled` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// What a run reports to and listens to between its chunks of work.
#[derive(Clone, Copy, Default)]
pub struct Watch<'a> {
    pub progress: Option<&'a Progress>,
    pub cancel: Option<&'a Cancel>,
}

impl Watch<'_> {
    pub fn check(&self) -> Result<()> {
        self.cancel.map_or(Ok(()), Cancel::check)
    }
}

/// What every method shares: what to explain, how to batch, what to report.
#[derive(Clone, Default)]
pub struct Settings {
    pub target: TargetSpec,
    pub score: ScoreKind,
    /// Path points or samples per forward/backward; `None` picks one from a memory budget.
    pub batch_size: Option<usize>,
    /// Keep the full `[tokens, hidden]` map in the result's JSON.
    pub include_map: bool,
    pub progress: Option<Progress>,
    /// When gradient passes recompute their layers to bound their memory.
    pub checkpoint: Checkpoint,
    /// Set to stop the run.
    pub cancel: Option<Cancel>,
}

/// A baseline `x′` of path and reference methods.
#[derive(Clone, Debug, Default)]
pub enum Baseline {
    #[default]
    Zero,
    /// The pad token's embedding at every position.
    Pad,
    /// The pad token's embedding where the model has a pad token, else zero: the default of
    /// the methods whose papers start from the pad (or mask) embedding.
    PadOrZero,
    /// A `[tokens, hidden]` matrix.
    Custom(Tensor),
}

impl std::str::FromStr for Baseline {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "zero" => Ok(Baseline::Zero),
            "pad" => Ok(Baseline::Pad),
            "pad-or-zero" => Ok(Baseline::PadOrZero),
            _ => Err(Error::InvalidArgument(format!(
                "unknown baseline '{s}' (expected zero or pad)"
            ))),
        }
    }
}

impl Baseline {
    /// `zero,pad,…`, or a JSON file holding a list of `[tokens][hidden]` matrices (their
    /// width is checked against the model when they are used).
    pub fn parse_set(spec: &str) -> Result<Vec<Baseline>> {
        if !spec.ends_with(".json") {
            return spec.split(',').map(|s| s.trim().parse()).collect();
        }
        let path = std::path::Path::new(spec);
        let text = crate::files::read_text(path, crate::files::BASELINES_LIMIT)?;
        let bad = |why: String| Error::InvalidArgument(format!("--baselines {spec}: {why}"));
        let list: Vec<Vec<Vec<f32>>> = serde_json::from_str(&text)
            .map_err(|e| bad(format!("expected a list of [tokens][hidden] matrices: {e}")))?;
        list.into_iter()
            .enumerate()
            .map(|(i, m)| {
                let d = m.first().map_or(0, Vec::len);
                if d == 0 || m.iter().any(|row| row.len() != d) {
                    return Err(bad(format!(
                        "baseline {i} is not a [tokens][hidden] matrix"
                    )));
                }
                let rows = m.len();
                Ok(Baseline::Custom(Tensor::from_vec(
                    m.concat(),
                    [rows, d],
                    crate::Device::Cpu,
                )?))
            })
            .collect()
    }
}

/// A tokenised prompt with its embeddings and resolved target.
pub struct Prepared<'a> {
    pub model: &'a Model,
    pub ids: Vec<u32>,
    /// `[tokens, hidden]`.
    pub x: Tensor,
    pub target: Target,
    pub batch_size: Option<usize>,
    pub progress: Option<Progress>,
    pub cancel: Option<Cancel>,
    pub include_map: bool,
    pub checkpoint: Checkpoint,
    /// The automatic target's forward pass of `x`, recorded, for the first method that can
    /// use it (`take_first_pass`).
    first_pass: Mutex<Option<RecordedPass>>,
}

impl<'a> Prepared<'a> {
    pub fn new(model: &'a Model, prompt: &str, settings: &Settings) -> Result<Self> {
        Prepared::from_ids(model, model.tokenize(prompt)?, settings)
    }

    pub fn from_ids(model: &'a Model, ids: Vec<u32>, settings: &Settings) -> Result<Self> {
        Prepared::keeping_first_pass(model, ids, settings, false)
    }

    /// As `from_ids`; with `keep`, an automatic target's forward pass is recorded and kept
    /// for a method that backpropagates from `x` itself, which then runs no forward of its
    /// own (a third of a single-pass method's time).
    pub fn keeping_first_pass(
        model: &'a Model,
        ids: Vec<u32>,
        settings: &Settings,
        keep: bool,
    ) -> Result<Self> {
        if ids.len() > model.info.max_positions {
            return Err(Error::TooLong(format!(
                "{} tokens, more than the model's {} positions",
                ids.len(),
                model.info.max_positions
            )));
        }
        if ids.is_empty() {
            return Err(Error::InvalidInput("no tokens to explain".into()));
        }
        let x = model.embed(&ids)?;
        // Before the target's forward pass, which is long already for such a text.
        chunks::check_fits(model, x.backend(), ids.len(), settings.checkpoint)?;
        // Kept as a whole tape, or as its steps' inputs where the backward recomputes them.
        let record = keep.then_some(settings.checkpoint);
        let (target, pass) =
            Target::resolve_keeping(model, &x, &settings.target, settings.score, record)?;
        Ok(Prepared {
            model,
            ids,
            x,
            target,
            batch_size: settings.batch_size,
            progress: settings.progress.clone(),
            cancel: settings.cancel.clone(),
            include_map: settings.include_map,
            checkpoint: settings.checkpoint,
            first_pass: Mutex::new(pass.filter(|_| keep)),
        })
    }

    /// The same input without progress reports: for a method run inside another (SmoothGrad's
    /// IG, Greedy PIG's rounds), whose progress is the outer method's.
    pub fn quiet(&self) -> Prepared<'a> {
        Prepared {
            model: self.model,
            ids: self.ids.clone(),
            x: self.x.clone(),
            target: self.target.clone(),
            batch_size: self.batch_size,
            progress: None,
            cancel: self.cancel.clone(),
            include_map: self.include_map,
            checkpoint: self.checkpoint,
            first_pass: Mutex::new(None),
        }
    }

    /// The recorded forward pass of `x`, once, where the target's resolution made one.
    pub fn take_first_pass(&self) -> Option<RecordedPass> {
        self.first_pass.lock().unwrap().take()
    }

    /// `x` as a batch of one: `[1, tokens, hidden]`.
    pub fn x_batch(&self) -> Result<Tensor> {
        let mut dims = vec![1];
        dims.extend_from_slice(self.x.dims());
        self.x.reshape(dims)
    }

    /// `F(x_b)` and `∂F/∂x_b` for each row of `xs: [b, len, hidden]`.
    pub fn gradients(&self, xs: &Tensor) -> Result<(Vec<f32>, Tensor)> {
        self.gradients_with(xs, &crate::autodiff::Gradient)
    }

    /// As `gradients`, under `rules`.
    pub fn gradients_with(
        &self,
        xs: &Tensor,
        rules: &dyn crate::autodiff::RuleSet,
    ) -> Result<(Vec<f32>, Tensor)> {
        self.gradients_seeded(xs, rules, &vec![1.0; xs.dims()[0]])
    }

    /// As `gradients_with`, the backward seeded by `seed` (one value per row).
    pub fn gradients_seeded(
        &self,
        xs: &Tensor,
        rules: &dyn crate::autodiff::RuleSet,
        seed: &[f32],
    ) -> Result<(Vec<f32>, Tensor)> {
        evaluate::gradients_planned(self.model, &self.target, xs, rules, seed, self.checkpoint)
    }

    /// `F(x)`, one forward pass.
    pub fn score_x(&self) -> Result<f32> {
        Ok(evaluate::scores(self.model, &self.target, &self.x_batch()?)?[0])
    }

    pub fn baseline(&self, b: &Baseline) -> Result<Tensor> {
        match b {
            Baseline::Zero => Tensor::zeros(self.x.shape().clone(), self.x.device()),
            Baseline::Pad => {
                let pad = self.pad_token_id()?;
                self.model.embed(&vec![pad; self.ids.len()])
            }
            Baseline::PadOrZero => match self.model.pad_token_id() {
                Some(_) => self.baseline(&Baseline::Pad),
                None => self.baseline(&Baseline::Zero),
            },
            Baseline::Custom(t) => {
                if t.dims() != self.x.dims() {
                    return Err(Error::InvalidArgument(format!(
                        "custom baseline {} is not a [tokens][{}] matrix of this prompt: the input is {}",
                        t.shape(),
                        self.model.hidden_size(),
                        self.x.shape()
                    )));
                }
                t.to_device(self.x.device())
            }
        }
    }

    /// Every baseline of a set (GradientSHAP, DeepLIFT-SHAP).
    pub fn baseline_set(&self, set: &[Baseline]) -> Result<Vec<Tensor>> {
        if set.is_empty() {
            return Err(Error::InvalidArgument("the baseline set is empty".into()));
        }
        set.iter().map(|b| self.baseline(b)).collect()
    }

    fn pad_token_id(&self) -> Result<u32> {
        self.model.pad_token_id().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no pad token (no pad_token_id in config.json, none in the tokenizer): use --baseline zero",
                self.model.name
            ))
        })
    }

    /// A result from the method's `[tokens, hidden]` map.
    pub fn result(
        &self,
        method: &str,
        token_score: TokenScore,
        map: Vec<f32>,
        target_score: f32,
    ) -> Attribution {
        let d = self.model.hidden_size();
        let scores = match token_score {
            TokenScore::Sum => map
                .chunks(d)
                .map(|r| r.iter().map(|&v| v as f64).sum::<f64>() as f32)
                .collect(),
            TokenScore::Norm => map
                .chunks(d)
                .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
                .collect(),
        };
        let model = self.model;
        Attribution {
            model: model.name.clone(),
            architecture: model.arch.name().to_string(),
            method: method.to_string(),
            device: model.device().to_string(),
            weights: model.info.weight_formats(),
            tokens: self
                .ids
                .iter()
                .map(|&i| model.tokenizer.token_text(i))
                .collect(),
            display: self
                .ids
                .iter()
                .map(|&i| model.tokenizer.token_display(i))
                .collect(),
            token_ids: self.ids.clone(),
            target: self.target.info(model),
            target_score,
            baseline_score: None,
            convergence_delta: None,
            scores,
            elapsed_ms: 0.0,
            repeat_ms: Vec::new(),
            extras: Default::default(),
            warnings: Vec::new(),
            generated_ids: None,
            generated_tokens: None,
            generation: None,
            map: if self.include_map { Some(map) } else { None },
        }
    }

    /// Paths that start at the baseline: a warning when `F` is discontinuous there.
    pub fn warn_discontinuity(&self, baseline: &Tensor, a: &mut Attribution) -> Result<()> {
        let f_baseline = a.baseline_score.unwrap_or(0.0);
        if let Some(w) =
            adaptive::baseline_discontinuity(self, baseline, a.target_score, f_baseline)?
        {
            a.warnings.push(w);
        }
        Ok(())
    }

    /// A token-level method's result (occlusion, attention, RPI, the perturbation methods):
    /// each token's score spread evenly over its row of the map.
    pub fn token_level(&self, method: &str, scores: Vec<f32>, f_x: f32) -> Attribution {
        let d = self.model.hidden_size();
        let map = scores
            .iter()
            .flat_map(|&s| std::iter::repeat_n(s / d as f32, d))
            .collect();
        let mut a = self.result(method, TokenScore::Sum, map, f_x);
        a.scores = scores;
        a
    }

    /// A reference method's result: its map summed per token, `F(x′)`, and the delta
    /// `Σ attr − (F(x) − F(x′))`.
    pub fn referenced(&self, method: &str, map: Vec<f32>, f_x: f32, f_ref: f32) -> Attribution {
        let total = sum(&map);
        with_reference(self.result(method, TokenScore::Sum, map, f_x), total, f_ref)
    }

    /// A token-level result with a reference (Shapley sampling, KernelSHAP): `F(x′)` and the
    /// delta of its scores.
    pub fn token_level_referenced(
        &self,
        method: &str,
        scores: Vec<f32>,
        f_x: f32,
        f_ref: f32,
    ) -> Attribution {
        let total = sum(&scores);
        with_reference(self.token_level(method, scores, f_x), total, f_ref)
    }

    /// Reports (done, total) to the progress callback, if any, after checking for a
    /// cancellation.
    pub fn report_progress(&self, done: usize, total: usize) -> Result<()> {
        self.watch().check()?;
        if let Some(progress) = &self.progress {
            progress(done, total);
        }
        Ok(())
    }

    /// Progress and cancellation, for `chunks::run`.
    pub fn watch(&self) -> Watch<'_> {
        Watch {
            progress: self.progress.as_ref(),
            cancel: self.cancel.as_ref(),
        }
    }

    /// Cancellation only (work whose progress is not the run's).
    pub fn watch_silent(&self) -> Watch<'_> {
        Watch {
            progress: None,
            cancel: self.cancel.as_ref(),
        }
    }
}

fn sum(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum()
}

/// `a` with `F(x′) = f_ref` and the delta `total − (F(x) − F(x′))`.
fn with_reference(mut a: Attribution, total: f64, f_ref: f32) -> Attribution {
    a.baseline_score = Some(f_ref);
    a.convergence_delta = Some((total - (a.target_score as f64 - f_ref as f64)) as f32);
    a
}
