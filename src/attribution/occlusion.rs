//! Occlusion: `F(x) − F(x with a window of tokens replaced by the baseline)`, for every window
//! of `window` tokens; a token's score is the mean over the windows that cover it. All
//! occluded copies run as forward passes only, batched (`points::scores`).

use super::{points, Prepared};
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
    let f_x = p.score_x()?;
    let occluded = |s: usize, out: &mut [f32]| {
        out.copy_from_slice(&x);
        out[s * d..(s + window) * d].copy_from_slice(&b[s * d..(s + window) * d]);
    };
    let drops: Vec<f32> = points::scores(p, windows, occluded, batch)?
        .into_iter()
        .map(|f| f_x - f)
        .collect();
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
