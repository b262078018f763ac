//! LayerNorm and RMSNorm over the last dimension.

use super::{tensor, Op};
use crate::autodiff::{Tape, Var};
use crate::error::Result;
use crate::tensor::Tensor;

pub fn layer_norm_vjp(g: &Tensor, xhat: &Tensor, rstd: &Tensor, w: &Tensor) -> Result<Tensor> {
    let s = g.backend().layer_norm_backward(
        g.storage(),
        xhat.storage(),
        rstd.storage(),
        w.storage(),
        w.numel(),
    )?;
    Ok(tensor(s, g.shape().clone()))
}

pub fn rms_norm_vjp(g: &Tensor, x: &Tensor, rstd: &Tensor, w: &Tensor) -> Result<Tensor> {
    let s = g.backend().rms_norm_backward(
        g.storage(),
        x.storage(),
        rstd.storage(),
        w.storage(),
        w.numel(),
    )?;
    Ok(tensor(s, g.shape().clone()))
}

impl Tape {
    pub fn layer_norm(&mut self, x: Var, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Var> {
        let t = self.value(x);
        let cols = t.shape().last();
        let (y, xhat, rstd) =
            t.backend()
                .layer_norm(t.storage(), weight.storage(), bias.storage(), cols, eps)?;
        let shape = t.shape().clone();
        let rows = shape.rows();
        let op = Op::LayerNorm {
            xhat: tensor(xhat, shape.clone()),
            rstd: tensor(rstd, [rows]),
            weight: weight.clone(),
        };
        Ok(self.push(op, &[x], tensor(y, shape)))
    }

    pub fn rms_norm(&mut self, x: Var, weight: &Tensor, eps: f32) -> Result<Var> {
        let t = self.value(x);
        let cols = t.shape().last();
        let (y, rstd) = t
            .backend()
            .rms_norm(t.storage(), weight.storage(), cols, eps)?;
        let shape = t.shape().clone();
        let op = Op::RmsNorm {
            rstd: tensor(rstd, [shape.rows()]),
            weight: weight.clone(),
        };
        Ok(self.push(op, &[x], tensor(y, shape)))
    }
}
