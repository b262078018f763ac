//! Rotary position embedding in the rotate-half layout used by Hugging Face Llama, over the
//! whole head or (a partial rotary factor) its first dimensions.

use super::for_rows;
use crate::error::Result;

pub fn apply(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    len: usize,
    head_dim: usize,
    inverse: bool,
) -> Result<Vec<f32>> {
    // The rotated part's half: the tables' width.
    let half = cos.len() / len;
    let sign = if inverse { -1.0 } else { 1.0 };
    let mut out = super::zeros(x.len(), "a rotary embedding")?;
    for_rows(&mut out, head_dim, |r, o| {
        let pos = r % len;
        let v = &x[r * head_dim..(r + 1) * head_dim];
        o[2 * half..].copy_from_slice(&v[2 * half..]);
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
