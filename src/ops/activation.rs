//! Pointwise activations.

use super::{tensor, Op};
use crate::autodiff::{Tape, Var};
use crate::backend::Activation;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn vjp(x: &Tensor, g: &Tensor, f: Activation) -> Result<Tensor> {
    Ok(tensor(
        x.backend()
            .activation_backward(x.storage(), g.storage(), f)?,
        x.shape().clone(),
    ))
}

impl Tape {
    pub fn activation(&mut self, x: Var, f: Activation) -> Result<Var> {
        let t = self.value(x);
        let out = tensor(t.backend().activation(t.storage(), f)?, t.shape().clone());
        Ok(self.push(Op::Activation { f }, &[x], out))
    }
}
