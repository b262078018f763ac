//! A weight matrix on the wgpu device in its file's format: the file's bytes as u32 words
//! (and the row order of a permuted Q/K projection), decoded by `shaders/stored_weight.wgsl`
//! where the products, the embedding look-up and the whole-matrix decode read them.

use super::{GpuBuffer, WgpuBackend};
use crate::error::Result;
use crate::tensor::{StoredLayout, StoredMatrix};

pub struct GpuStoredMatrix {
    pub(super) words: GpuBuffer,
    pub(super) order: GpuBuffer,
    pub layout: StoredLayout,
}

impl std::fmt::Debug for GpuStoredMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuStoredMatrix({:?})", self.layout)
    }
}

impl WgpuBackend {
    /// Uploads `m`'s bytes as they are stored.
    pub fn upload_stored(&self, m: &StoredMatrix) -> Result<GpuStoredMatrix> {
        let up = m.for_upload();
        Ok(GpuStoredMatrix {
            words: self.ctx.upload_u32(&up.words)?,
            order: self.ctx.upload_u32(&up.order)?,
            layout: up.layout,
        })
    }
}
