//! The one place where a primitive's operands are checked against its sizes, in front of every
//! backend: `backend_for` hands out a `Checked` backend, so a bad shape gives the same
//! `Error::Shape` on the CPU, wgpu and CUDA, before anything is computed or launched, and the
//! backends' kernels may take their operands' sizes as given. What stays in a backend is what
//! only it knows: its device's limits (workgroups per launch, a kernel's largest head size) and
//! which stored formats its kernels compute with.

use super::checks::{self, same_len};
use super::{Activation, AttentionDims, Backend, MatmulSpec, PickKind, SoftmaxMask};
use crate::error::Result;
use crate::tensor::{Device, Storage};

pub struct Checked(pub &'static dyn Backend);

impl Backend for Checked {
    fn device(&self) -> Device {
        self.0.device()
    }
    fn concurrent_batches(&self) -> usize {
        self.0.concurrent_batches()
    }
    fn free_memory(&self) -> Option<usize> {
        self.0.free_memory()
    }
    fn batch_memory(&self) -> Option<usize> {
        self.0.batch_memory()
    }
    fn max_batch_items(&self) -> Option<usize> {
        self.0.max_batch_items()
    }
    fn synchronize(&self) -> Result<()> {
        self.0.synchronize()
    }
    fn upload(&self, data: Vec<f32>) -> Result<Storage> {
        self.0.upload(data)
    }
    fn download(&self, s: &Storage) -> Result<Vec<f32>> {
        self.0.download(s)
    }
    fn zeros(&self, len: usize) -> Result<Storage> {
        self.0.zeros(len)
    }

    fn matmul(&self, a: &Storage, b: &Storage, spec: &MatmulSpec) -> Result<Storage> {
        checks::matmul(a.len(), b.len(), spec)?;
        if b.stored_shape().is_some() {
            checks::stored_product(spec)?;
        }
        self.0.matmul(a, b, spec)
    }

    fn add(&self, a: &Storage, b: &Storage) -> Result<Storage> {
        same_len(a.len(), b.len(), "add")?;
        self.0.add(a, b)
    }
    fn mul(&self, a: &Storage, b: &Storage) -> Result<Storage> {
        same_len(a.len(), b.len(), "mul")?;
        self.0.mul(a, b)
    }
    fn scale(&self, a: &Storage, s: f32) -> Result<Storage> {
        self.0.scale(a, s)
    }
    fn add_broadcast(&self, a: &Storage, b: &Storage) -> Result<Storage> {
        checks::broadcast(a.len(), b.len())?;
        self.0.add_broadcast(a, b)
    }

    fn activation(&self, x: &Storage, f: Activation) -> Result<Storage> {
        self.0.activation(x, f)
    }
    fn activation_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage> {
        same_len(x.len(), g.len(), "activation_backward")?;
        self.0.activation_backward(x, g, f)
    }

    fn softmax(&self, x: &Storage, cols: usize, mask: SoftmaxMask) -> Result<Storage> {
        checks::rows(x.len(), cols, "softmax")?;
        self.0.softmax(x, cols, mask)
    }
    fn softmax_backward(
        &self,
        y: &Storage,
        g: &Storage,
        cols: usize,
        factor: f32,
    ) -> Result<Storage> {
        same_len(y.len(), g.len(), "softmax_backward")?;
        checks::rows(y.len(), cols, "softmax_backward")?;
        self.0.softmax_backward(y, g, cols, factor)
    }
    fn attention_probs(
        &self,
        q: &Storage,
        k: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        checks::attention(q.len(), k.len(), &dims, "attention_probs")?;
        self.0.attention_probs(q, k, dims, scale, mask)
    }

    fn attention(
        &self,
        q: &Storage,
        k: &Storage,
        v: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        checks::attention(q.len(), k.len(), &dims, "attention")?;
        same_len(k.len(), v.len(), "attention values")?;
        self.0.attention(q, k, v, dims, scale, mask)
    }

    fn attention_backward(
        &self,
        q: &Storage,
        k: &Storage,
        v: &Storage,
        g: &Storage,
        dims: AttentionDims,
        scale: f32,
        mask: SoftmaxMask,
        shares: [f32; 3],
    ) -> Result<[Option<Storage>; 3]> {
        checks::attention(q.len(), k.len(), &dims, "attention_backward")?;
        same_len(k.len(), v.len(), "attention_backward values")?;
        same_len(q.len(), g.len(), "attention_backward gradient")?;
        self.0
            .attention_backward(q, k, v, g, dims, scale, mask, shares)
    }

    fn layer_norm(
        &self,
        x: &Storage,
        w: &Storage,
        b: &Storage,
        cols: usize,
        eps: f32,
    ) -> Result<(Storage, Storage, Storage)> {
        checks::weighted_rows(x.len(), w.len(), cols, "layer_norm")?;
        same_len(w.len(), b.len(), "layer_norm bias")?;
        self.0.layer_norm(x, w, b, cols, eps)
    }
    fn layer_norm_backward(
        &self,
        g: &Storage,
        xhat: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        const WHAT: &str = "layer_norm_backward";
        let rows = checks::weighted_rows(g.len(), w.len(), cols, WHAT)?;
        same_len(g.len(), xhat.len(), WHAT)?;
        checks::per_row(rstd.len(), rows, WHAT)?;
        self.0.layer_norm_backward(g, xhat, rstd, w, cols)
    }
    fn rms_norm(
        &self,
        x: &Storage,
        w: &Storage,
        cols: usize,
        eps: f32,
    ) -> Result<(Storage, Storage)> {
        checks::weighted_rows(x.len(), w.len(), cols, "rms_norm")?;
        self.0.rms_norm(x, w, cols, eps)
    }
    fn rms_norm_backward(
        &self,
        g: &Storage,
        x: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        const WHAT: &str = "rms_norm_backward";
        let rows = checks::weighted_rows(g.len(), w.len(), cols, WHAT)?;
        same_len(g.len(), x.len(), WHAT)?;
        checks::per_row(rstd.len(), rows, WHAT)?;
        self.0.rms_norm_backward(g, x, rstd, w, cols)
    }

    fn rope(
        &self,
        x: &Storage,
        cos: &Storage,
        sin: &Storage,
        len: usize,
        head_dim: usize,
        inverse: bool,
    ) -> Result<Storage> {
        checks::rope(x.len(), cos.len(), sin.len(), len, head_dim)?;
        self.0.rope(x, cos, sin, len, head_dim, inverse)
    }

    fn permute_0213(&self, x: &Storage, dims: [usize; 4]) -> Result<Storage> {
        checks::dims(x.len(), &dims, "permute_0213")?;
        self.0.permute_0213(x, dims)
    }
    fn repeat_heads(&self, x: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage> {
        checks::dims(x.len(), &dims, "repeat_heads")?;
        self.0.repeat_heads(x, dims, rep)
    }
    fn sum_head_groups(&self, g: &Storage, dims: [usize; 4], rep: usize) -> Result<Storage> {
        let [b, h, l, d] = dims;
        checks::dims(g.len(), &[b, h * rep, l, d], "sum_head_groups")?;
        self.0.sum_head_groups(g, dims, rep)
    }
    fn concat_seq(
        &self,
        a: &Storage,
        b: &Storage,
        dims_a: [usize; 4],
        t2: usize,
    ) -> Result<Storage> {
        let [bs, h, _, d] = dims_a;
        checks::dims(a.len(), &dims_a, "concat_seq")?;
        checks::dims(b.len(), &[bs, h, t2, d], "concat_seq")?;
        self.0.concat_seq(a, b, dims_a, t2)
    }
    fn gather_rows(&self, table: &Storage, ids: &[u32], cols: usize) -> Result<Storage> {
        match table.stored_shape() {
            Some(shape) => checks::stored_rows(shape, ids, cols)?,
            None => checks::token_ids(ids, table.len().checked_div(cols).unwrap_or(0))?,
        }
        self.0.gather_rows(table, ids, cols)
    }
    fn select_position(&self, x: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage> {
        checks::dims(x.len(), &dims, "select_position")?;
        checks::position(pos, dims[1], "select_position")?;
        self.0.select_position(x, dims, pos)
    }
    fn scatter_position(&self, g: &Storage, dims: [usize; 3], pos: usize) -> Result<Storage> {
        let [b, l, d] = dims;
        checks::dims(g.len(), &[b, d], "scatter_position")?;
        checks::position(pos, l, "scatter_position")?;
        self.0.scatter_position(g, dims, pos)
    }
    fn weighted_seq_sum(&self, x: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage> {
        checks::dims(x.len(), &dims, "weighted_seq_sum")?;
        checks::per_row(w.len(), dims[1], "weighted_seq_sum weights")?;
        self.0.weighted_seq_sum(x, w, dims)
    }
    fn broadcast_seq(&self, g: &Storage, w: &[f32], dims: [usize; 3]) -> Result<Storage> {
        let [b, l, d] = dims;
        checks::dims(g.len(), &[b, d], "broadcast_seq")?;
        checks::per_row(w.len(), l, "broadcast_seq weights")?;
        self.0.broadcast_seq(g, w, dims)
    }

    fn cosine_rows(&self, x: &Storage, c: &Storage, d: usize) -> Result<Storage> {
        checks::rows_against(x.len(), c.len(), d, "cosine_rows")?;
        self.0.cosine_rows(x, c, d)
    }
    fn cosine_rows_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage> {
        const WHAT: &str = "cosine_rows_backward";
        let rows = checks::rows_against(x.len(), c.len(), d, WHAT)?;
        checks::per_row(g.len(), rows, WHAT)?;
        self.0.cosine_rows_backward(x, c, g, d)
    }
    fn pick_softmax(
        &self,
        x: &Storage,
        cols: usize,
        col: usize,
        kind: PickKind,
    ) -> Result<Storage> {
        checks::pick(x.len(), cols, col, "pick_softmax")?;
        self.0.pick_softmax(x, cols, col, kind)
    }
    fn pick_softmax_backward(
        &self,
        x: &Storage,
        g: &Storage,
        cols: usize,
        col: usize,
        kind: PickKind,
    ) -> Result<Storage> {
        checks::pick_backward(x.len(), g.len(), cols, col)?;
        self.0.pick_softmax_backward(x, g, cols, col, kind)
    }

    fn stabilized_ratio(
        &self,
        num: &Storage,
        den: &Storage,
        g: &Storage,
        eps: f32,
    ) -> Result<Storage> {
        same_len(num.len(), den.len(), "stabilized_ratio")?;
        same_len(num.len(), g.len(), "stabilized_ratio")?;
        self.0.stabilized_ratio(num, den, g, eps)
    }
    fn guided_backward(&self, x: &Storage, g: &Storage, f: Activation) -> Result<Storage> {
        same_len(x.len(), g.len(), "guided_backward")?;
        self.0.guided_backward(x, g, f)
    }
    fn layer_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        const WHAT: &str = "layer_norm_const_backward";
        let rows = checks::weighted_rows(g.len(), w.len(), cols, WHAT)?;
        checks::per_row(rstd.len(), rows, WHAT)?;
        self.0.layer_norm_const_backward(g, rstd, w, cols)
    }
    fn rms_norm_const_backward(
        &self,
        g: &Storage,
        rstd: &Storage,
        w: &Storage,
        cols: usize,
    ) -> Result<Storage> {
        const WHAT: &str = "rms_norm_const_backward";
        let rows = checks::weighted_rows(g.len(), w.len(), cols, WHAT)?;
        checks::per_row(rstd.len(), rows, WHAT)?;
        self.0.rms_norm_const_backward(g, rstd, w, cols)
    }
    fn cosine_const_norm_backward(
        &self,
        x: &Storage,
        c: &Storage,
        g: &Storage,
        d: usize,
    ) -> Result<Storage> {
        const WHAT: &str = "cosine_const_norm_backward";
        let rows = checks::rows_against(x.len(), c.len(), d, WHAT)?;
        checks::per_row(g.len(), rows, WHAT)?;
        self.0.cosine_const_norm_backward(x, c, g, d)
    }

    fn rescale_halves(
        &self,
        x: &Storage,
        y: &Storage,
        g: &Storage,
        f: Activation,
    ) -> Result<Storage> {
        same_len(x.len(), y.len(), "rescale_halves")?;
        same_len(x.len(), g.len(), "rescale_halves")?;
        checks::halves(x.len(), "rescale_halves")?;
        self.0.rescale_halves(x, y, g, f)
    }
    fn rank1_rescale_halves(
        &self,
        x: &Storage,
        y: &Storage,
        g: &Storage,
        exact: &Storage,
        x_cols: usize,
        y_cols: usize,
        mask: SoftmaxMask,
    ) -> Result<Storage> {
        checks::rank1(x.len(), y.len(), g.len(), exact.len(), x_cols, y_cols)?;
        self.0
            .rank1_rescale_halves(x, y, g, exact, x_cols, y_cols, mask)
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::backend_for;
    use crate::error::Error;
    use crate::tensor::{Device, Storage};

    /// Operands that do not fit their sizes are refused with a shape error, never a panic, on
    /// the backend `backend_for` hands out (the GPU backends get the same layer: see
    /// `tests/gpu_kernels.rs`).
    #[test]
    fn bad_shapes_are_shape_errors() {
        let be = backend_for(Device::Cpu).unwrap();
        let v = |n: usize| Storage::Cpu(vec![1.0; n]);
        let refused = [
            be.add(&v(3), &v(4)).err(),
            be.softmax(&v(7), 3, crate::backend::SoftmaxMask::None)
                .err(),
            be.rms_norm(&v(6), &v(2), 3, 1e-5).err(),
            be.rms_norm_backward(&v(6), &v(6), &v(3), &v(3), 3).err(),
            be.gather_rows(&v(6), &[2], 3).err(),
            be.select_position(&v(12), [2, 3, 2], 3).err(),
            be.weighted_seq_sum(&v(12), &[0.5; 2], [2, 3, 2]).err(),
            be.cosine_rows_backward(&v(6), &v(3), &v(3), 3).err(),
            be.rank1_rescale_halves(
                &v(6),
                &v(6),
                &v(6),
                &v(6),
                3,
                2,
                crate::backend::SoftmaxMask::None,
            )
            .err(),
        ];
        for (i, e) in refused.into_iter().enumerate() {
            match e {
                Some(Error::Shape(_)) | Some(Error::InvalidInput(_)) => {}
                other => panic!("call {i}: expected a shape error, got {other:?}"),
            }
        }
    }
}
