//! The weight operand of the CPU's weight products: f32 rows in memory, or a stored-format
//! matrix whose rows are decoded a block at a time into a buffer that stays in cache.

use crate::tensor::StoredMatrix;

#[derive(Clone, Copy)]
pub enum WeightRows<'a> {
    F32(&'a [f32]),
    Stored(&'a StoredMatrix),
}

impl<'a> WeightRows<'a> {
    /// Rows `first..first + count` of a matrix with `cols` columns: borrowed where they are
    /// f32 already, else decoded into `buf`.
    pub fn rows<'b>(
        &'b self,
        first: usize,
        count: usize,
        cols: usize,
        buf: &'b mut Vec<f32>,
    ) -> &'b [f32]
    where
        'a: 'b,
    {
        match self {
            WeightRows::F32(w) => &w[first * cols..(first + count) * cols],
            WeightRows::Stored(m) => {
                buf.resize(count * cols, 0.0);
                m.decode_rows(first, buf);
                buf
            }
        }
    }

    pub fn is_stored(&self) -> bool {
        matches!(self, WeightRows::Stored(_))
    }
}
