//! Sampling methods: GradientSHAP, SmoothGrad and VarGrad. Sample `s` draws from its own
//! stream (`Rng::for_sample(seed, s)`), so results are reproducible for a seed and do not
//! depend on batching or on what shares a batch.

use super::random::Rng;
use super::{chunks, evaluate, integrated_gradients, single_pass, Method, Options, Prepared};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `x + σ ε`, ε ~ N(0, 1) per element, from sample `s`'s stream (after `skip` other draws).
fn noisy(x: &[f32], sigma: f32, rng: &mut Rng) -> Vec<f32> {
    if sigma == 0.0 {
        return x.to_vec();
    }
    x.iter().map(|&v| v + sigma * rng.normal() as f32).collect()
}

pub struct GradientShapOut {
    pub map: Vec<f32>,
    pub f_x: f32,
    /// Mean `F` over the baseline set.
    pub f_baselines: f32,
}

/// Mean over samples of `∇F(b + α(x̃ − b)) ⊙ (x̃ − b)`, with `b` drawn from `baselines`,
/// `α ~ U(0, 1)` and `x̃ = x + ε`, `ε ~ N(0, σ²)`.
pub fn gradient_shap(
    p: &Prepared,
    baselines: &[Tensor],
    opts: &Options,
    sigma: f32,
) -> Result<GradientShapOut> {
    let s_total = opts.samples;
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let x = p.x.to_vec()?;
    let base: Vec<Vec<f32>> = baselines
        .iter()
        .map(|b| b.to_vec())
        .collect::<Result<_>>()?;
    let (chunk, concurrent) = chunks::for_gradients(p, opts.batch_size, s_total);
    let work = |start: usize, end: usize| -> Result<Vec<f64>> {
        let (mut points, mut deltas) = (Vec::new(), Vec::new());
        for s in start..end {
            let mut rng = Rng::for_sample(opts.seed, s as u64);
            let b = &base[rng.index(base.len())];
            let alpha = rng.uniform() as f32;
            let xt = noisy(&x, sigma, &mut rng);
            for j in 0..len * d {
                points.push(b[j] + alpha * (xt[j] - b[j]));
                deltas.push(xt[j] - b[j]);
            }
        }
        let pts = Tensor::from_vec(points, [end - start, len, d], p.x.device())?;
        let (_, g) = evaluate::gradients(p.model, &p.target, &pts)?;
        let mut acc = vec![0.0f64; len * d];
        for (i, (g, dl)) in g.to_vec()?.iter().zip(&deltas).enumerate() {
            acc[i % (len * d)] += (*g as f64) * (*dl as f64);
        }
        Ok(acc)
    };
    let sum = chunks::run(
        s_total,
        chunk,
        concurrent,
        work,
        chunks::add_vecs,
        opts.progress.as_ref(),
    )?;
    let map = sum.iter().map(|v| (v / s_total as f64) as f32).collect();
    let f_x = p.score_x()?;
    let f_baselines = mean_score(p, &base)?;
    Ok(GradientShapOut {
        map,
        f_x,
        f_baselines,
    })
}

/// Mean `F` over a set of inputs.
pub fn mean_score(p: &Prepared, inputs: &[Vec<f32>]) -> Result<f32> {
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let flat: Vec<f32> = inputs.concat();
    let t = Tensor::from_vec(flat, [inputs.len(), len, d], p.x.device())?;
    let f = evaluate::scores(p.model, &p.target, &t)?;
    Ok((f.iter().map(|&v| v as f64).sum::<f64>() / f.len() as f64) as f32)
}

pub struct NoiseOut {
    /// Mean of the base method's maps over the noisy copies.
    pub mean: Vec<f32>,
    /// Their variance (population).
    pub variance: Vec<f32>,
}

/// The base method's map at `samples` noisy copies `x + ε`, `ε ~ N(0, σ²)`: mean and variance.
pub fn noise_tunnel(p: &Prepared, base: Method, opts: &Options, sigma: f32) -> Result<NoiseOut> {
    if !(base.is_single_pass() || base == Method::IntegratedGradients) {
        return Err(Error::InvalidArgument(format!(
            "--base {} cannot be smoothed: use a single-pass method or integrated-gradients",
            base.name()
        )));
    }
    let s_total = opts.samples;
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let x = p.x.to_vec()?;
    let n = len * d;
    let concurrent = p.x.backend().concurrent_batches();
    let per_sample = if base.is_single_pass() { 1 } else { opts.steps };
    let chunk = chunks::size(
        p.x.backend(),
        opts.batch_size.map(|b| (b / per_sample).max(1)),
        s_total,
        chunks::tape_bytes_per_row(p.model, len) * per_sample,
    );
    let baseline = p.baseline(&opts.baseline)?;
    let base_map = |xs: Vec<f32>, count: usize| -> Result<Vec<f32>> {
        if base.is_single_pass() {
            let xs = Tensor::from_vec(xs, [count, len, d], p.x.device())?;
            return Ok(single_pass::maps(p.model, &p.target, base, opts, &xs)?.1);
        }
        let inner = Options {
            progress: None,
            ..opts.clone()
        };
        let mut all = Vec::with_capacity(count * n);
        for c in xs.chunks(n) {
            let xt = Tensor::from_vec(c.to_vec(), [len, d], p.x.device())?;
            all.extend(integrated_gradients::integrated_gradients(p, &xt, &baseline, &inner)?.map);
        }
        Ok(all)
    };
    // Sums are of `map − centre`, the map at x itself: the variance then has no cancellation,
    // and is exactly 0 when every sample equals x (σ = 0).
    let centre = base_map(x.clone(), 1)?;
    if sigma == 0.0 {
        // Every sample is x itself.
        return Ok(NoiseOut {
            mean: centre,
            variance: vec![0.0; n],
        });
    }
    // Accumulates Σ (map − centre) and Σ (map − centre)² (the second half).
    let work = |start: usize, end: usize| -> Result<Vec<f64>> {
        let copies: Vec<Vec<f32>> = (start..end)
            .map(|s| noisy(&x, sigma, &mut Rng::for_sample(opts.seed, s as u64)))
            .collect();
        let maps = base_map(copies.concat(), end - start)?;
        let mut acc = vec![0.0f64; 2 * n];
        for (i, &m) in maps.iter().enumerate() {
            let c = m as f64 - centre[i % n] as f64;
            acc[i % n] += c;
            acc[n + i % n] += c * c;
        }
        Ok(acc)
    };
    let sum = chunks::run(
        s_total,
        chunk,
        concurrent,
        work,
        chunks::add_vecs,
        opts.progress.as_ref(),
    )?;
    let k = s_total as f64;
    let shifted: Vec<f64> = sum[..n].iter().map(|v| v / k).collect();
    let variance = sum[n..]
        .iter()
        .zip(&shifted)
        .map(|(sq, m)| ((sq / k) - m * m).max(0.0) as f32)
        .collect();
    let mean = shifted
        .iter()
        .zip(&centre)
        .map(|(m, c)| (m + *c as f64) as f32)
        .collect();
    Ok(NoiseOut { mean, variance })
}
