//! Input × gradient: `x ⊙ ∇F(x)`, summed over the hidden dimension per token.

use super::{evaluate, Attribution, Prepared};
use crate::error::Result;

pub fn input_x_gradient(p: &Prepared) -> Result<Attribution> {
    let (f, g) = evaluate::gradients(p.model, &p.target, &p.x_batch()?)?;
    let x = p.x.to_vec()?;
    let map: Vec<f32> = g.to_vec()?.iter().zip(&x).map(|(g, x)| g * x).collect();
    let scores = super::row_sums(&map, p.model.hidden_size());
    Ok(p.result("input-x-gradient", scores, map, f[0]))
}
