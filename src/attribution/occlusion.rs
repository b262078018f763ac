//! Occlusion: `F(x) − F(x with a window of tokens replaced by the baseline)`, for every window
//! of `window` tokens; a token's score is the mean over the windows that cover it. All
//! occluded copies run as forward passes only, batched.

use super::{chunks, evaluate, Prepared};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub struct Out {
    /// One score per token.
    pub scores: Vec<f32>,
    pub f_x: f32,
}

pub fn occlusion(
    p: &Prepared,
    baseline: &Tensor,
    window: usize,
    batch: Option<usize>,
) -> Result<Out> {
    let len = p.ids.len();
    if window == 0 || window > len {
        return Err(Error::InvalidArgument(format!(
            "--window {window} must be between 1 and the prompt's {len} tokens"
        )));
    }
    let d = p.model.hidden_size();
    let (x, b) = (p.x.to_vec()?, baseline.to_vec()?);
    let windows = len - window + 1;
    let f_x = evaluate::scores(p.model, &p.target, &p.x_batch()?)?[0];
    // Forward passes keep no tape: a fraction of a gradient pass's memory per copy.
    let chunk = chunks::size(
        batch,
        windows,
        chunks::tape_bytes_per_row(p.model, len) / 4,
        1,
    );
    let mut drops = Vec::with_capacity(windows);
    for start in (0..windows).step_by(chunk) {
        let end = (start + chunk).min(windows);
        let mut copies = Vec::with_capacity((end - start) * len * d);
        for s in start..end {
            let mut c = x.clone();
            c[s * d..(s + window) * d].copy_from_slice(&b[s * d..(s + window) * d]);
            copies.extend(c);
        }
        let t = Tensor::from_vec(copies, [end - start, len, d], p.x.device())?;
        drops.extend(
            evaluate::scores(p.model, &p.target, &t)?
                .into_iter()
                .map(|f| f_x - f),
        );
    }
    let scores = (0..len)
        .map(|i| {
            let covering: Vec<f32> = (i.saturating_sub(window - 1)..=i.min(windows - 1))
                .map(|s| drops[s])
                .collect();
            covering.iter().sum::<f32>() / covering.len() as f32
        })
        .collect();
    Ok(Out { scores, f_x })
}
