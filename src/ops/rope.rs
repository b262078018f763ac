//! Rotary position embeddings; the backward is the inverse rotation.

use super::{tensor, Op};
use crate::autodiff::{Tape, Var};
use crate::error::Result;
use crate::tensor::Tensor;

pub fn rope_raw(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    len: usize,
    head_dim: usize,
    inverse: bool,
) -> Result<Tensor> {
    let s = x.backend().rope(
        x.storage(),
        cos.storage(),
        sin.storage(),
        len,
        head_dim,
        inverse,
    )?;
    Ok(tensor(s, x.shape().clone()))
}

impl Tape {
    /// Rotates `x: [b, h, len, head_dim]` by the tables `cos, sin: [len, head_dim/2]`.
    pub fn rope(&mut self, x: Var, cos: &Tensor, sin: &Tensor) -> Result<Var> {
        let t = self.value(x);
        let d = t.dims();
        let (len, head_dim) = (d[d.len() - 2], d[d.len() - 1]);
        let out = rope_raw(t, cos, sin, len, head_dim, false)?;
        let op = Op::Rope {
            cos: cos.clone(),
            sin: sin.clone(),
            len,
            head_dim,
        };
        Ok(self.push(op, &[x], out))
    }
}
