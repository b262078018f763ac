//! Attribution methods. Each is a function of a prepared input (model, token embeddings,
//! resolved target) and options, returning an `Attribution`.

mod adaptive_ig;
pub mod attention;
mod chunks;
mod deeplift;
mod discretized_ig;
mod evaluate;
pub mod faithfulness;
mod greedy_pig;
mod guided_ig;
mod integrated_gradients;
mod method;
mod occlusion;
mod pgd;
mod points;
pub mod quadrature;
mod random;
mod result;
mod rpi;
mod sampling;
mod sequential_ig;
mod single_pass;
pub mod targets;

pub use discretized_ig::discretized_path;
pub(crate) use evaluate::{argmax, last_logits};
pub use evaluate::{gradients, gradients_seeded, gradients_with, next_token_logits, scores};
pub use method::{Method, TokenScore};
pub use quadrature::Quadrature;
pub use result::Attribution;
pub use single_pass::maps_with;
pub use targets::{ScoreKind, Target, TargetInfo, TargetSpec};

use crate::autodiff::RuleSet;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::tensor::Tensor;
use std::time::Instant;

/// A baseline `x′` of path and reference methods.
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
pub type Progress = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

#[derive(Clone)]
pub struct Options {
    pub target: TargetSpec,
    pub score: ScoreKind,
    /// Integration steps of path methods.
    pub steps: usize,
    /// Integrated gradients: refine until `|delta| ≤ tolerance · |F(x) − F(x′)|` (adaptive).
    pub tolerance: Option<f32>,
    /// The evaluation budget of adaptive integrated gradients.
    pub max_steps: usize,
    pub quadrature: Quadrature,
    /// The baseline of integrated gradients and DeepLIFT.
    pub baseline: Baseline,
    /// The baseline set of GradientSHAP and DeepLIFT-SHAP.
    pub baselines: Vec<Baseline>,
    /// Path points or samples per forward/backward; `None` picks one from a memory budget.
    pub batch_size: Option<usize>,
    /// ε of the LRP rules' stabiliser.
    pub epsilon: f32,
    /// γ of LRP-γ.
    pub gamma: f32,
    /// Samples of GradientSHAP, SmoothGrad and VarGrad.
    pub samples: usize,
    /// Noise σ of the sampling methods; `None`: 0 for GradientSHAP, 0.1 × RMS(x) for
    /// SmoothGrad and VarGrad.
    pub noise_std: Option<f32>,
    pub seed: u64,
    /// The method SmoothGrad and VarGrad wrap.
    pub base: Method,
    /// Occlusion: tokens replaced at once.
    pub window: usize,
    /// Guided IG: the fraction of features moved per inner step.
    pub fraction: f32,
    /// Guided IG: how far (in α) a feature may run ahead of or behind the straight line.
    pub max_dist: f32,
    /// Greedy PIG: tokens selected per round (`None`: a quarter of the prompt, rounded up).
    pub per_round: Option<usize>,
    /// Greedy PIG: tokens selected in all (`None`: every token).
    pub budget: Option<usize>,
    /// PGD: each token's L2 ball, relative to its embedding's norm.
    pub radius: f32,
    /// Discretized IG: vocabulary neighbours considered for each anchor.
    pub neighbors: usize,
    /// Attention, RPI: the layer (`None`: the last).
    pub layer: Option<usize>,
    /// Attention: one head (`None`: the mean over heads).
    pub head: Option<usize>,
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
            tolerance: None,
            max_steps: 600,
            quadrature: Quadrature::GaussLegendre,
            baseline: Baseline::Zero,
            baselines: vec![Baseline::Zero],
            batch_size: None,
            epsilon: 1e-6,
            gamma: 0.25,
            samples: 20,
            noise_std: None,
            seed: 0,
            base: Method::Saliency,
            window: 1,
            fraction: 0.25,
            max_dist: 0.02,
            per_round: None,
            budget: None,
            radius: 0.1,
            neighbors: 50,
            layer: None,
            head: None,
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
        Prepared::from_ids(model, model.tokenize(prompt)?, opts)
    }

    pub fn from_ids(model: &'a Model, ids: Vec<u32>, opts: &Options) -> Result<Self> {
        if ids.is_empty() || ids.len() > model.info.max_positions {
            return Err(Error::InvalidInput(format!(
                "{} tokens: the model takes 1 to {}",
                ids.len(),
                model.info.max_positions
            )));
        }
        let x = model.embed(&ids)?;
        // Before the target's forward pass, which is long already for such a text.
        chunks::check_fits(model, x.backend(), ids.len())?;
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

    /// `F(x)`, one forward pass.
    pub(crate) fn score_x(&self) -> Result<f32> {
        Ok(scores(self.model, &self.target, &self.x_batch()?)?[0])
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
        self.model.pad_token_id().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no pad token (no pad_token_id in config.json, none in the tokenizer): use --baseline zero",
                self.model.name
            ))
        })
    }

    fn result(
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
        Attribution {
            model: self.model.name.clone(),
            architecture: self.model.arch.name().to_string(),
            method: method.to_string(),
            device: self.model.device().to_string(),
            weights: self.model.info.weight_formats(),
            tokens: self
                .ids
                .iter()
                .map(|&i| self.model.tokenizer.token_text(i))
                .collect(),
            display: self
                .ids
                .iter()
                .map(|&i| self.model.tokenizer.token_display(i))
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
            evaluations: None,
            samples: None,
            noise_std: None,
            seed: None,
            base_method: None,
            per_token_delta: None,
            selection_order: None,
            rounds: None,
            adversarial_drop: None,
            layer: None,
            head: None,
            attention: None,
            warnings: Vec::new(),
            generated_ids: None,
            generated_tokens: None,
            generation: None,
            map: if self.include_map { Some(map) } else { None },
        }
    }

    /// Paths that start at the baseline: a warning when `F` is discontinuous there.
    fn warn_discontinuity(&self, baseline: &Tensor, a: &mut Attribution) -> Result<()> {
        let f_baseline = a.baseline_score.unwrap_or(0.0);
        if let Some(w) =
            adaptive_ig::baseline_discontinuity(self, baseline, a.target_score, f_baseline)?
        {
            a.warnings.push(w);
        }
        Ok(())
    }

    /// A token-level method's result (occlusion, attention, RPI): each token's score spread
    /// evenly over its row of the map.
    fn token_level(&self, method: &str, scores: Vec<f32>, f_x: f32) -> Attribution {
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
    fn referenced(&self, method: &str, map: Vec<f32>, f_x: f32, f_ref: f32) -> Attribution {
        let total: f64 = map.iter().map(|&v| v as f64).sum();
        let mut a = self.result(method, TokenScore::Sum, map, f_x);
        a.baseline_score = Some(f_ref);
        a.convergence_delta = Some((total - (f_x as f64 - f_ref as f64)) as f32);
        a
    }
}

/// 0.1 × the root mean square of the input embeddings: a noise level on the input's scale.
fn default_noise(x: &Tensor) -> Result<f32> {
    let v = x.to_vec()?;
    Ok(0.1
        * (v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
            as f32)
}

/// Explains `F` for `prompt` with `method`. The time reported excludes model loading.
pub fn attribute(
    model: &Model,
    prompt: &str,
    method: Method,
    opts: &Options,
) -> Result<Attribution> {
    let start = Instant::now();
    let mut out = attribute_ids(model, &model.tokenize(prompt)?, method, opts)?;
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

/// As `attribute`, for token ids (a prefix of generated text, say) instead of text.
pub fn attribute_ids(
    model: &Model,
    ids: &[u32],
    method: Method,
    opts: &Options,
) -> Result<Attribution> {
    let start = Instant::now();
    let p = Prepared::from_ids(model, ids.to_vec(), opts)?;
    let name = method.name();
    let mut out = match method {
        m if m.is_single_pass() => {
            let (f, map) = single_pass::maps(model, &p.target, m, opts, &p.x_batch()?)?;
            p.result(name, m.token_score(), map, f[0])
        }
        Method::IntegratedGradients => {
            let baseline = p.baseline(&opts.baseline)?;
            let mut a = match opts.tolerance {
                None => {
                    let r = integrated_gradients::integrated_gradients(&p, &p.x, &baseline, opts)?;
                    let mut a = p.referenced(name, r.map, r.f_x, r.f_baseline);
                    a.steps = Some(opts.steps);
                    a.quadrature = Some(opts.quadrature.name().to_string());
                    a
                }
                Some(tol) => {
                    let r = adaptive_ig::adaptive_ig(&p, &baseline, opts, tol)?;
                    let mut a = p.referenced(name, r.map, r.f_x, r.f_baseline);
                    a.steps = Some(r.gradient_evaluations);
                    a.evaluations = Some(r.gradient_evaluations);
                    a.quadrature = Some("adaptive-simpson".into());
                    if !r.converged {
                        a.warnings.push(format!(
                            "adaptive IG did not reach the tolerance {tol} within --max-steps {} evaluations",
                            opts.max_steps
                        ));
                    }
                    a
                }
            };
            p.warn_discontinuity(&baseline, &mut a)?;
            a
        }
        Method::DeepLift | Method::DeepLiftShap => {
            let references = if method == Method::DeepLift {
                vec![p.baseline(&opts.baseline)?]
            } else {
                baseline_set(&p, opts)?
            };
            let r = deeplift::deeplift(&p, &references)?;
            p.referenced(name, r.map, r.f_x, r.f_ref)
        }
        Method::GradientShap => {
            let set = baseline_set(&p, opts)?;
            let sigma = opts.noise_std.unwrap_or(0.0);
            let r = sampling::gradient_shap(&p, &set, opts, sigma)?;
            let mut a = p.referenced(name, r.map, r.f_x, r.f_baselines);
            (a.samples, a.noise_std, a.seed) = (Some(opts.samples), Some(sigma), Some(opts.seed));
            a
        }
        Method::SmoothGrad | Method::VarGrad => {
            let sigma = match opts.noise_std {
                Some(s) => s,
                None => default_noise(&p.x)?,
            };
            let r = sampling::noise_tunnel(&p, opts.base, opts, sigma)?;
            let f = p.score_x()?;
            let mut a = if method == Method::SmoothGrad {
                p.result(name, opts.base.token_score(), r.mean, f)
            } else {
                p.result(name, TokenScore::Sum, r.variance, f)
            };
            (a.samples, a.noise_std, a.seed) = (Some(opts.samples), Some(sigma), Some(opts.seed));
            a.base_method = Some(opts.base.name().to_string());
            a
        }
        Method::Occlusion => {
            let baseline = p.baseline(&opts.baseline)?;
            let r = occlusion::occlusion(&p, &baseline, opts.window, opts.batch_size)?;
            p.token_level(name, r.scores, r.f_x)
        }
        Method::GuidedIg => {
            let baseline = p.baseline(&opts.baseline)?;
            let r = guided_ig::guided_ig(&p, &baseline, opts)?;
            let mut a = p.referenced(name, r.map, r.f_x, r.f_baseline);
            a.steps = Some(opts.steps);
            p.warn_discontinuity(&baseline, &mut a)?;
            a
        }
        Method::SequentialIg => {
            let baseline = p.baseline(&opts.baseline)?;
            let r = sequential_ig::sequential_ig(&p, &baseline, opts)?;
            let mut a = p.result(name, TokenScore::Sum, r.map, r.f_x);
            a.steps = Some(opts.steps);
            a.quadrature = Some(opts.quadrature.name().to_string());
            let gaps: Vec<f32> = r.f_without.iter().map(|f| r.f_x - f).collect();
            let worst = (0..gaps.len())
                .max_by(|&i, &j| r.deltas[i].abs().total_cmp(&r.deltas[j].abs()))
                .unwrap_or(0);
            let scale = gaps.iter().fold(1e-6f32, |m, g| m.max(g.abs()));
            if r.deltas[worst].abs() > 0.05 * scale {
                a.warnings.push(format!(
                    "token {worst}'s delta {:.4} is {:.0}% of the largest per-token gap F(x) - F(x with token i at the baseline) = {scale:.4}; try more --steps",
                    r.deltas[worst],
                    100.0 * r.deltas[worst].abs() / scale
                ));
            }
            a.per_token_delta = Some(r.deltas);
            a
        }
        Method::GreedyPig => {
            let baseline = p.baseline(&opts.baseline)?;
            let r = greedy_pig::greedy_pig(&p, &baseline, opts)?;
            // A path method like the others: its delta is reported and checked.
            let mut a = p.referenced(name, r.map, r.f_x, r.f_baseline);
            a.steps = Some(opts.steps);
            a.quadrature = Some(opts.quadrature.name().to_string());
            a.selection_order = Some(r.order);
            a.rounds = Some(r.rounds);
            p.warn_discontinuity(&baseline, &mut a)?;
            a
        }
        Method::DiscretizedIg => {
            let baseline = p.baseline(&opts.baseline)?;
            let r = discretized_ig::discretized_ig(&p, &baseline, opts)?;
            let mut a = p.referenced(name, r.map, r.f_x, r.f_baseline);
            a.steps = Some(opts.steps);
            p.warn_discontinuity(&baseline, &mut a)?;
            a.quadrature = Some("gauss-legendre-per-segment".into());
            a
        }
        Method::Pgd => {
            let r = pgd::pgd(&p, opts)?;
            let mut a = p.referenced(name, r.map, r.f_x, r.f_adversarial);
            a.steps = Some(opts.steps);
            a.adversarial_drop = Some(r.f_x - r.f_adversarial);
            a
        }
        Method::Rpi => {
            let r = rpi::rpi(&p, opts)?;
            let mut a = p.token_level(name, r.scores, r.f_x);
            a.layer = Some(r.layer);
            a.steps = Some(opts.steps);
            a.quadrature = Some(opts.quadrature.name().to_string());
            (a.samples, a.seed) = (Some(opts.samples), Some(opts.seed));
            a
        }
        Method::Attention | Method::AttentionRollout => {
            let (maps, f) = attention::attention_maps(&p)?;
            let (len, heads) = (p.ids.len(), model.info.attention_heads);
            let layer = match method {
                Method::Attention => Some(attention::layer_index(&p, opts.layer)?),
                _ => None,
            };
            let map = match layer {
                Some(l) => attention::head_map(&maps[l], heads, len, opts.head)?,
                None => attention::rollout(&maps, heads, len)?,
            };
            let scores = attention::token_scores(&map, &attention::query_weights(&p.target, len));
            let mut a = p.token_level(name, scores, f);
            if layer.is_some() {
                (a.layer, a.head) = (layer, opts.head);
            }
            if opts.include_map {
                a.attention = Some(attention::nested(&maps, heads, len));
            }
            a
        }
        _ => unreachable!("every method is handled above"),
    };
    check_delta(&mut out, opts);
    check_finite(model, &out)?;
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

/// A result with a NaN or infinite score, target score or delta is an error, never a success:
/// it names the method and the first bad value.
fn check_finite(model: &Model, out: &Attribution) -> Result<()> {
    let bad = |what: String, v: f32| {
        let why = model.non_finite_weight().unwrap_or_else(|| {
            "the model's weights or constants, or the method's options, overflow in f32".into()
        });
        Err(Error::NonFinite(format!(
            "{}: {what} is {v}, not a finite number ({why})",
            out.method
        )))
    };
    for (name, v) in [
        ("F(x), the target score", Some(out.target_score)),
        ("F(x'), the baseline score", out.baseline_score),
        ("the convergence delta", out.convergence_delta),
    ] {
        if let Some(v) = v.filter(|v| !v.is_finite()) {
            return bad(name.to_string(), v);
        }
    }
    if let Some((i, &v)) = out.scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        let token = out
            .tokens
            .get(i)
            .map_or(String::new(), |t| format!(" {t:?}"));
        return bad(format!("the score of token {i}{token}"), v);
    }
    if let Some(map) = &out.map {
        if let Some((i, &v)) = map.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return bad(format!("entry {i} of the attribution map"), v);
        }
    }
    Ok(())
}

/// Input × modified gradient under a rule set of the caller's own (see `examples/`).
pub fn attribute_with_rules(
    model: &Model,
    prompt: &str,
    rules: &dyn RuleSet,
    opts: &Options,
) -> Result<Attribution> {
    let start = Instant::now();
    let p = Prepared::new(model, prompt, opts)?;
    let (f, map) = single_pass::maps_with(model, &p.target, rules, true, &p.x_batch()?)?;
    let mut out = p.result(rules.name(), TokenScore::Sum, map, f[0]);
    check_finite(model, &out)?;
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

fn baseline_set(p: &Prepared, opts: &Options) -> Result<Vec<Tensor>> {
    if opts.baselines.is_empty() {
        return Err(Error::InvalidArgument("the baseline set is empty".into()));
    }
    opts.baselines.iter().map(|b| p.baseline(b)).collect()
}

/// Warns when a reference method's attributions miss `F(x) − F(x′)` by more than 5%.
fn check_delta(out: &mut Attribution, opts: &Options) {
    let (Some(delta), Some(b)) = (out.convergence_delta, out.baseline_score) else {
        return;
    };
    let gap = (out.target_score - b).abs();
    if delta.abs() <= 0.05 * gap.max(1e-6) {
        return;
    }
    let hint = match out.method.as_str() {
        "integrated-gradients" if opts.tolerance.is_none() => {
            "; try more --steps, or --tolerance for adaptive integration".to_string()
        }
        "gradient-shap" => "; it is a Monte Carlo estimate: try more --samples".into(),
        _ => String::new(),
    };
    out.warnings.push(format!(
        "convergence delta {delta:.4} is {:.0}% of F(x) - F(x') = {:.4}{hint}",
        100.0 * delta.abs() / gap.max(1e-6),
        out.target_score - b,
    ));
}
