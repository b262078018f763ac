//! The weight operand of the CPU's weight products: f32 rows in memory, or a stored-format
//! matrix whose rows the kernels decode in registers (`gguf::decode_simd`).

use crate::gguf::decode_simd::StoredRows;
use crate::tensor::StoredMatrix;

#[derive(Clone, Copy)]
pub enum WeightRows<'a> {
    F32(&'a [f32]),
    Stored(&'a StoredMatrix),
}

impl<'a> WeightRows<'a> {
    /// The rows as the SIMD kernels read them (`cols` values each).
    pub fn stored_rows(&self, cols: usize) -> StoredRows<'a> {
        match self {
            WeightRows::F32(w) => StoredRows::f32(w, cols),
            WeightRows::Stored(m) => m.stored_rows(),
        }
    }

    pub fn is_stored(&self) -> bool {
        matches!(self, WeightRows::Stored(_))
    }
}
