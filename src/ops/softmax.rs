//! Masked softmax over the last dimension, and the softmax pick of probability targets.

use super::{tensor, Op};
use crate::autodiff::{Tape, Var};
use crate::backend::{PickKind, SoftmaxMask};
use crate::error::Result;
use crate::tensor::Tensor;

pub fn vjp(y: &Tensor, g: &Tensor, cols: usize) -> Result<Tensor> {
    Ok(tensor(
        y.backend()
            .softmax_backward(y.storage(), g.storage(), cols, 1.0)?,
        y.shape().clone(),
    ))
}

pub fn pick_vjp(x: &Tensor, g: &Tensor, col: usize, kind: PickKind) -> Result<Tensor> {
    let cols = x.shape().last();
    let s = x
        .backend()
        .pick_softmax_backward(x.storage(), g.storage(), cols, col, kind)?;
    Ok(tensor(s, x.shape().clone()))
}

impl Tape {
    pub fn softmax(&mut self, x: Var, mask: SoftmaxMask) -> Result<Var> {
        let t = self.value(x);
        let cols = t.shape().last();
        let out = tensor(
            t.backend().softmax(t.storage(), cols, mask)?,
            t.shape().clone(),
        );
        Ok(self.push(Op::Softmax { cols, mask }, &[x], out))
    }

    /// `x: [rows, cols] -> [rows]`: probability or log-probability of column `col`.
    pub fn pick_softmax(&mut self, x: Var, col: usize, kind: PickKind) -> Result<Var> {
        let t = self.value(x);
        let cols = t.shape().last();
        let out = tensor(
            t.backend().pick_softmax(t.storage(), cols, col, kind)?,
            [t.shape().rows()],
        );
        Ok(self.push(Op::PickSoftmax { col, kind }, &[x], out))
    }
}
