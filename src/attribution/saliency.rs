//! Saliency: `∇F(x)`; a token's score is the L2 norm of its gradient row.

use super::{evaluate, Attribution, Prepared};
use crate::error::Result;

pub fn saliency(p: &Prepared) -> Result<Attribution> {
    let (f, g) = evaluate::gradients(p.model, &p.target, &p.x_batch()?)?;
    let map = g.to_vec()?;
    let d = p.model.hidden_size();
    let scores = map
        .chunks(d)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    Ok(p.result("saliency", scores, map, f[0]))
}
