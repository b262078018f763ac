//! A weight matrix on the wgpu device in its file's format: the file's bytes as u32 words
//! (and the row order of a permuted Q/K projection), decoded by `shaders/stored_weight.wgsl`
//! where the products, the embedding look-up and the whole-matrix decode read them.

use super::{GpuBuffer, WgpuBackend};
use crate::error::Result;
use crate::gguf::GgmlType;
use crate::tensor::StoredMatrix;

pub struct GpuStoredMatrix {
    pub(super) words: GpuBuffer,
    /// The row order, or one unused word where the rows are in order (a binding cannot be
    /// empty).
    pub(super) order: GpuBuffer,
    pub(super) ordered: bool,
    pub(super) format: GgmlType,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_bytes: usize,
}

impl std::fmt::Debug for GpuStoredMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuStoredMatrix({:?}, [{}, {}])",
            self.format, self.rows, self.cols
        )
    }
}

impl GpuStoredMatrix {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn format(&self) -> GgmlType {
        self.format
    }

    /// The words of `stored_weight.wgsl`'s parameters after the product's seven.
    pub(super) fn params(&self) -> [u32; 3] {
        [self.format.id(), self.row_bytes as u32, self.ordered as u32]
    }
}

impl WgpuBackend {
    /// Uploads `m`'s bytes as they are stored (padded to whole words).
    pub fn upload_stored(&self, m: &StoredMatrix) -> Result<GpuStoredMatrix> {
        let bytes = m.raw_bytes();
        let mut words = vec![0u32; bytes.len().div_ceil(4).max(1)];
        bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        let order = m.order().map_or_else(|| vec![0], <[u32]>::to_vec);
        Ok(GpuStoredMatrix {
            words: self.ctx.upload_u32(&words)?,
            order: self.ctx.upload_u32(&order)?,
            ordered: m.order().is_some(),
            format: m.format(),
            rows: m.rows(),
            cols: m.cols(),
            row_bytes: m.row_bytes(),
        })
    }
}
