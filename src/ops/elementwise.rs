//! Sums, products and scaling of activations.

use super::{tensor, Op};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn scale(x: &Tensor, factor: f32) -> Result<Tensor> {
    Ok(tensor(
        x.backend().scale(x.storage(), factor)?,
        x.shape().clone(),
    ))
}

/// `a + b` of two tensors of one shape (outside any tape).
pub fn add_tensors(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_shape(a, b, "add")?;
    Ok(tensor(
        a.backend().add(a.storage(), b.storage())?,
        a.shape().clone(),
    ))
}

fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(tensor(
        a.backend().mul(a.storage(), b.storage())?,
        a.shape().clone(),
    ))
}

pub fn mul_vjp(a: &Tensor, b: &Tensor, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
    Ok(vec![
        if needs[0] { Some(mul(g, b)?) } else { None },
        if needs[1] { Some(mul(g, a)?) } else { None },
    ])
}

fn same_shape(a: &Tensor, b: &Tensor, op: &str) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(Error::Shape(format!(
            "{op}: {} and {}",
            a.shape(),
            b.shape()
        )));
    }
    Ok(())
}

impl Tape {
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        let (x, y) = (self.value(a), self.value(b));
        same_shape(x, y, "add")?;
        let out = tensor(
            x.backend().add(x.storage(), y.storage())?,
            x.shape().clone(),
        );
        Ok(self.push(Op::Add, &[a, b], out))
    }

    /// `x + c` with `c` a constant repeated along `x` (e.g. `[L, d]` added to `[B, L, d]`).
    pub fn add_const(&mut self, x: Var, c: &Tensor) -> Result<Var> {
        let t = self.value(x);
        let out = tensor(
            t.backend().add_broadcast(t.storage(), c.storage())?,
            t.shape().clone(),
        );
        Ok(self.push(Op::AddConst, &[x], out))
    }

    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        let (x, y) = (self.value(a), self.value(b));
        same_shape(x, y, "mul")?;
        let out = mul(x, y)?;
        Ok(self.push(Op::Mul, &[a, b], out))
    }

    /// `gate ⊙ value` of a gated MLP; like `mul`, but rules that treat gates specially
    /// (CP-LRP) can tell which operand is the gate.
    pub fn gate(&mut self, gate: Var, value: Var) -> Result<Var> {
        let (x, y) = (self.value(gate), self.value(value));
        same_shape(x, y, "gate")?;
        let out = mul(x, y)?;
        Ok(self.push(Op::Gate, &[gate, value], out))
    }

    pub fn scale(&mut self, x: Var, factor: f32) -> Result<Var> {
        let out = scale(self.value(x), factor)?;
        Ok(self.push(Op::Scale { factor }, &[x], out))
    }

    pub fn reshape(&mut self, x: Var, dims: Vec<usize>) -> Result<Var> {
        let out = self.value(x).reshape(dims)?;
        Ok(self.push(Op::Reshape, &[x], out))
    }
}
