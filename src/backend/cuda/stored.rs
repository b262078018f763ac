//! A weight matrix on the CUDA device in its file's format: the file's bytes as u32 words (and
//! the row order of a permuted Q/K projection), decoded by `kernels/stored_weight.cu` where
//! the products, the embedding look-up and the whole-matrix decode read them.

use super::context::{Arg, Grid, Slice};
use super::{b, buf, u, CudaBackend, CudaBuffer};
use crate::backend::{Backend, MatmulSpec};
use crate::error::Result;
use crate::tensor::{Storage, StoredLayout, StoredMatrix};

pub struct CudaStoredMatrix {
    words: Slice<u32>,
    order: Slice<u32>,
    pub layout: StoredLayout,
}

impl std::fmt::Debug for CudaStoredMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaStoredMatrix({:?})", self.layout)
    }
}

impl CudaStoredMatrix {
    /// The layout words every stored-weight kernel takes after its buffers.
    fn layout_args(&self) -> [Arg<'_>; 3] {
        self.layout.kernel_words().map(Arg::U32)
    }
}

/// Rows of a product above which the weight is decoded once to f32 for the tiled kernel: the
/// per-output kernels reread each weight per row.
const DECODE_ABOVE_ROWS: usize = 64;

impl CudaBackend {
    /// Uploads `m`'s bytes as they are stored.
    pub fn upload_stored(&self, m: &StoredMatrix) -> Result<CudaStoredMatrix> {
        let up = m.for_upload();
        Ok(CudaStoredMatrix {
            words: self.ctx.upload(&up.words)?,
            order: self.ctx.upload(&up.order)?,
            layout: up.layout,
        })
    }

    /// The whole matrix in f32 (a copy: many-row products, ops without a stored kernel).
    pub fn decode_stored(&self, m: &CudaStoredMatrix) -> Result<CudaBuffer> {
        let n = m.layout.len();
        let mut args = vec![
            Arg::Ids(&m.words),
            Arg::Ids(&m.order),
            u(n),
            u(m.layout.cols),
        ];
        args.extend(m.layout_args());
        match self.run(
            "stored_weight.cu",
            "stored_decode",
            n,
            &args,
            Grid::Threads(n),
        )? {
            Storage::Cuda(out) => Ok(out),
            _ => unreachable!("run returns a CUDA buffer"),
        }
    }

    pub(super) fn stored_gather(
        &self,
        m: &CudaStoredMatrix,
        ids: &[u32],
        cols: usize,
    ) -> Result<Storage> {
        let n = ids.len() * cols;
        let id_buf = self.ctx.upload(if ids.is_empty() { &[0] } else { ids })?;
        let mut args = vec![Arg::Ids(&m.words), Arg::Ids(&m.order), Arg::Ids(&id_buf)];
        args.extend([u(n), u(cols)]);
        args.extend(m.layout_args());
        self.run(
            "stored_weight.cu",
            "stored_gather",
            n,
            &args,
            Grid::Threads(n),
        )
    }

    /// `A · op(W)` for a stored `W` (one matrix for the whole batch): a few rows by the
    /// eight-at-a-time kernels, many rows through an f32 decode and the tiled kernel.
    pub(super) fn stored_matmul(
        &self,
        a: &Storage,
        w: &CudaStoredMatrix,
        spec: &MatmulSpec,
    ) -> Result<Storage> {
        let x = buf(a)?;
        let &MatmulSpec {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
            a_batched,
            b_batched: _,
        } = spec;
        if m > DECODE_ABOVE_ROWS
            || trans_a
            || !w.layout.cols.is_multiple_of(8)
            || batch * m * n == 0
        {
            let dense = Storage::Cuda(self.decode_stored(w)?);
            return self.matmul(a, &dense, spec);
        }
        let (entry, threads) = if trans_b {
            ("stored_x_wt", n)
        } else {
            ("stored_g_w", n / 8)
        };
        let stride_a = if a_batched { m * k } else { 0 };
        let mut args = vec![b(x), Arg::Ids(&w.words), Arg::Ids(&w.order)];
        args.extend([u(m), u(n), u(k), u(stride_a)]);
        args.extend(w.layout_args());
        let grid = Grid::Blocks(threads.div_ceil(256) as u32, m as u32, batch as u32);
        self.run("stored_weight.cu", entry, batch * m * n, &args, grid)
    }
}
