//! Rotary position embedding in the rotate-half layout used by Hugging Face Llama.

use super::for_rows;
use crate::error::{Error, Result};

pub fn apply(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    len: usize,
    head_dim: usize,
    inverse: bool,
) -> Result<Vec<f32>> {
    let half = head_dim / 2;
    if head_dim % 2 != 0
        || len == 0
        || x.len() % (len * head_dim) != 0
        || cos.len() != len * half
        || sin.len() != cos.len()
    {
        return Err(Error::Shape(format!(
            "rope: {} values, {len} positions, head_dim {head_dim}, tables of {}",
            x.len(),
            cos.len()
        )));
    }
    let sign = if inverse { -1.0 } else { 1.0 };
    let mut out = vec![0.0f32; x.len()];
    for_rows(&mut out, head_dim, |r, o| {
        let pos = r % len;
        let v = &x[r * head_dim..(r + 1) * head_dim];
        let (c, s) = (
            &cos[pos * half..(pos + 1) * half],
            &sin[pos * half..(pos + 1) * half],
        );
        for i in 0..half {
            let sn = sign * s[i];
            o[i] = v[i] * c[i] - v[i + half] * sn;
            o[i + half] = v[i + half] * c[i] + v[i] * sn;
        }
    });
    Ok(out)
}
