//! Noisy copies of the input: the engine of SmoothGrad and VarGrad (and GradientSHAP's noise).
//! Sample `s` draws from its own stream (`Rng::for_sample(seed, s)`), so results are
//! reproducible for a seed and do not depend on batching or on what shares a batch.

use super::random::Rng;
use super::{chunks, evaluate, Prepared};
use crate::attribution::method::MapAt;
use crate::error::Result;
use crate::tensor::Tensor;

/// `x + σ ε`, ε ~ N(0, 1) per element, from sample `s`'s stream (after `skip` other draws).
pub fn noisy(x: &[f32], sigma: f32, rng: &mut Rng) -> Vec<f32> {
    if sigma == 0.0 {
        return x.to_vec();
    }
    x.iter().map(|&v| v + sigma * rng.normal() as f32).collect()
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
pub fn noise_tunnel(
    p: &Prepared,
    base: &dyn MapAt,
    samples: usize,
    seed: u64,
    sigma: f32,
) -> Result<NoiseOut> {
    let s_total = samples;
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let x = p.x.to_vec()?;
    let n = len * d;
    let concurrent = p.x.backend().concurrent_batches();
    let per_sample = base.rows_per_input();
    let chunk = chunks::size(
        p.x.backend(),
        p.batch_size.map(|b| (b / per_sample).max(1)),
        s_total,
        chunks::tape_bytes_per_row(p.model, len) * per_sample,
    );
    let base_map = |xs: Vec<f32>, count: usize| -> Result<Vec<f32>> {
        base.maps(p, &Tensor::from_vec(xs, [count, len, d], p.x.device())?)
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
            .map(|s| noisy(&x, sigma, &mut Rng::for_sample(seed, s as u64)))
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
        p.watch(),
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

/// 0.1 × the root mean square of the input embeddings: a noise level on the input's scale.
pub fn default_sigma(x: &Tensor) -> Result<f32> {
    let v = x.to_vec()?;
    Ok(0.1
        * (v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
            as f32)
}
