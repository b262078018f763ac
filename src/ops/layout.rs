//! Head split/merge, grouped-query head repeats and position selection.

use super::{tensor, Op};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

fn dims4(t: &Tensor) -> Result<[usize; 4]> {
    t.dims()
        .try_into()
        .map_err(|_| Error::Shape(format!("expected 4-D, got {}", t.shape())))
}

fn dims3(t: &Tensor) -> Result<[usize; 3]> {
    t.dims()
        .try_into()
        .map_err(|_| Error::Shape(format!("expected 3-D, got {}", t.shape())))
}

fn permute(x: &Tensor, [a, b, c, d]: [usize; 4]) -> Result<Tensor> {
    Ok(tensor(
        x.backend().permute_0213(x.storage(), [a, b, c, d])?,
        [a, c, b, d],
    ))
}

/// Backward of split: `[b, h, l, d] -> [b, l, h·d]`.
pub fn split_heads_vjp(g: &Tensor) -> Result<Tensor> {
    let [b, h, l, d] = dims4(g)?;
    permute(g, [b, h, l, d])?.reshape([b, l, h * d])
}

pub fn merge_heads_vjp(g: &Tensor, x: &Tensor) -> Result<Tensor> {
    let [b, h, l, d] = dims4(x)?;
    permute(&g.reshape([b, l, h, d])?, [b, l, h, d])
}

pub fn repeat_heads_vjp(g: &Tensor, x: &Tensor, rep: usize) -> Result<Tensor> {
    let dims = dims4(x)?;
    Ok(tensor(
        g.backend().sum_head_groups(g.storage(), dims, rep)?,
        x.shape().clone(),
    ))
}

pub fn select_position_vjp(g: &Tensor, x: &Tensor, pos: usize) -> Result<Tensor> {
    let dims = dims3(x)?;
    Ok(tensor(
        g.backend().scatter_position(g.storage(), dims, pos)?,
        x.shape().clone(),
    ))
}

impl Tape {
    /// `[b, l, h·d] -> [b, h, l, d]`.
    pub fn split_heads(&mut self, x: Var, heads: usize) -> Result<Var> {
        let [b, l, hd] = dims3(self.value(x))?;
        if heads == 0 || hd % heads != 0 {
            return Err(Error::Shape(format!(
                "{hd} features do not split into {heads} heads"
            )));
        }
        let out = permute(self.value(x), [b, l, heads, hd / heads])?;
        Ok(self.push(Op::SplitHeads { heads }, &[x], out))
    }

    /// `[b, h, l, d] -> [b, l, h·d]`.
    pub fn merge_heads(&mut self, x: Var) -> Result<Var> {
        let [b, h, l, d] = dims4(self.value(x))?;
        let out = permute(self.value(x), [b, h, l, d])?.reshape([b, l, h * d])?;
        Ok(self.push(Op::MergeHeads, &[x], out))
    }

    /// Grouped-query attention: each of `h` key/value heads serves `rep` query heads.
    pub fn repeat_heads(&mut self, x: Var, rep: usize) -> Result<Var> {
        if rep == 1 {
            return Ok(x);
        }
        let t = self.value(x);
        let [b, h, l, d] = dims4(t)?;
        let out = tensor(
            t.backend().repeat_heads(t.storage(), [b, h, l, d], rep)?,
            [b, h * rep, l, d],
        );
        Ok(self.push(Op::RepeatHeads { rep }, &[x], out))
    }

    /// `[b, l, d] -> [b, d]` at sequence position `pos`.
    pub fn select_position(&mut self, x: Var, pos: usize) -> Result<Var> {
        let t = self.value(x);
        let [b, l, d] = dims3(t)?;
        let out = tensor(
            t.backend().select_position(t.storage(), [b, l, d], pos)?,
            [b, d],
        );
        Ok(self.push(Op::SelectPosition { pos }, &[x], out))
    }
}
