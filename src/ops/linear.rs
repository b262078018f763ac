//! Linear layers (activation × constant weight) and products of two activations.

use super::{tensor, MatmulRole, Op};
use crate::autodiff::{Tape, Var};
use crate::backend::MatmulSpec;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `C = op(A) · op(B)` batched per `spec`; the output is `[batch, m, n]` (or `[m, n]`).
pub fn matmul(a: &Tensor, b: &Tensor, spec: &MatmulSpec) -> Result<Tensor> {
    let s = a.backend().matmul(a.storage(), b.storage(), spec)?;
    Ok(if spec.batch == 1 && !spec.a_batched {
        tensor(s, [spec.m, spec.n])
    } else {
        tensor(s, [spec.batch, spec.m, spec.n])
    })
}

/// A linear layer's input `[points.., rows, features]` as a batch of points of `rows` rows
/// each (a 2-D input is one row per point). A backend picks its kernel by the rows of one
/// point, so that a point's result does not depend on how many others share its batch.
fn points_and_rows(x: &Tensor) -> (usize, usize) {
    match x.dims() {
        [points, _] => (*points, 1),
        [.., rows, _] => (x.shape().rows() / rows.max(&1), *rows),
        _ => (1, x.shape().rows()),
    }
}

/// `x Wᵀ + b` outside any tape.
pub fn linear_forward(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (&[out_f, in_f], k) = (weight.dims(), x.shape().last()) else {
        return Err(Error::Shape(format!(
            "linear weight must be 2-D, got {}",
            weight.shape()
        )));
    };
    if k != in_f {
        return Err(Error::Shape(format!(
            "linear: input {} against weight {}",
            x.shape(),
            weight.shape()
        )));
    }
    let (batch, m) = points_and_rows(x);
    let spec = MatmulSpec {
        batch,
        m,
        n: out_f,
        k: in_f,
        trans_a: false,
        trans_b: true,
        a_batched: true,
        b_batched: false,
    };
    let mut y = x.backend().matmul(x.storage(), weight.storage(), &spec)?;
    if let Some(b) = bias {
        y = x.backend().add_broadcast(&y, b.storage())?;
    }
    let mut dims = x.dims().to_vec();
    *dims.last_mut().unwrap() = out_f;
    Ok(tensor(y, dims))
}

/// `∂x = g · W`.
pub fn linear_vjp(g: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (out_f, in_f) = (weight.dims()[0], weight.dims()[1]);
    let (batch, m) = points_and_rows(g);
    let spec = MatmulSpec {
        batch,
        m,
        n: in_f,
        k: out_f,
        trans_a: false,
        trans_b: false,
        a_batched: true,
        b_batched: false,
    };
    let s = g.backend().matmul(g.storage(), weight.storage(), &spec)?;
    let mut dims = g.dims().to_vec();
    *dims.last_mut().unwrap() = in_f;
    Ok(tensor(s, dims))
}

/// Gradients of `C = op(A) op(B)` for both operands, each in its stored layout.
pub fn matmul_vjp(
    a: &Tensor,
    b: &Tensor,
    g: &Tensor,
    s: &MatmulSpec,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let base = MatmulSpec {
        a_batched: true,
        b_batched: true,
        ..*s
    };
    let ga = if needs[0] {
        let spec = if s.trans_a {
            // A stored [k, m]: ∂A = op(B) gᵀ.
            MatmulSpec {
                m: s.k,
                n: s.m,
                k: s.n,
                trans_a: s.trans_b,
                trans_b: true,
                ..base
            }
        } else {
            // ∂A = g op(B)ᵀ.
            MatmulSpec {
                m: s.m,
                n: s.k,
                k: s.n,
                trans_a: false,
                trans_b: !s.trans_b,
                ..base
            }
        };
        let (l, r) = if s.trans_a { (b, g) } else { (g, b) };
        Some(matmul(l, r, &spec)?.reshape(a.shape().clone())?)
    } else {
        None
    };
    let gb = if needs[1] {
        let spec = if s.trans_b {
            // B stored [n, k]: ∂B = gᵀ op(A).
            MatmulSpec {
                m: s.n,
                n: s.k,
                k: s.m,
                trans_a: true,
                trans_b: s.trans_a,
                ..base
            }
        } else {
            // ∂B = op(A)ᵀ g.
            MatmulSpec {
                m: s.k,
                n: s.n,
                k: s.m,
                trans_a: !s.trans_a,
                trans_b: false,
                ..base
            }
        };
        let (l, r) = if s.trans_b { (g, a) } else { (a, g) };
        Some(matmul(l, r, &spec)?.reshape(b.shape().clone())?)
    } else {
        None
    };
    Ok(vec![ga, gb])
}

impl Tape {
    /// `x Wᵀ + b` over the last dimension of `x`.
    pub fn linear(&mut self, x: Var, weight: &Tensor, bias: Option<&Tensor>) -> Result<Var> {
        let y = linear_forward(self.value(x), weight, bias)?;
        let op = Op::Linear {
            weight: weight.clone(),
            bias: bias.cloned(),
        };
        Ok(self.push(op, &[x], y))
    }

    /// Batched `op(A) · op(B)` of two activations `[batch, .., ..]`.
    pub fn matmul(&mut self, a: Var, b: Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        self.matmul_as(a, b, trans_a, trans_b, MatmulRole::Other)
    }

    /// Attention output `A V` of probabilities `a: [.., len, len]` and `v: [.., len, head_dim]`.
    pub fn attention_context(&mut self, a: Var, v: Var) -> Result<Var> {
        self.matmul_as(a, v, false, false, MatmulRole::AttentionContext)
    }

    fn matmul_as(
        &mut self,
        a: Var,
        b: Var,
        trans_a: bool,
        trans_b: bool,
        role: MatmulRole,
    ) -> Result<Var> {
        let (ad, bd) = (self.value(a).dims().to_vec(), self.value(b).dims().to_vec());
        if ad.len() < 2 || bd.len() < 2 {
            return Err(Error::Shape("matmul needs matrices".into()));
        }
        let batch: usize = ad[..ad.len() - 2].iter().product();
        let (r, c) = (ad[ad.len() - 2], ad[ad.len() - 1]);
        let (m, k) = if trans_a { (c, r) } else { (r, c) };
        let (br, bc) = (bd[bd.len() - 2], bd[bd.len() - 1]);
        let (kb, n) = if trans_b { (bc, br) } else { (br, bc) };
        let bbatch: usize = bd[..bd.len() - 2].iter().product();
        if k != kb || batch != bbatch {
            return Err(Error::Shape(format!("matmul: {ad:?} against {bd:?}")));
        }
        let spec = MatmulSpec {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
            a_batched: true,
            b_batched: true,
        };
        let out = matmul(self.value(a), self.value(b), &spec)?;
        let mut dims = ad[..ad.len() - 2].to_vec();
        dims.extend([m, n]);
        let out = out.reshape(dims)?;
        Ok(self.push(Op::Matmul { spec, role }, &[a, b], out))
    }
}
