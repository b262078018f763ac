//! A weight matrix kept in the format its file stores it in (f16, bf16 or a GGUF block
//! quantisation), usually straight from the memory map: the CPU kernels decode a few rows at a
//! time into cache-sized buffers, so no f32 copy of the matrix ever exists. Decoded values are
//! those of the load-time f32 decode, bit for bit.

use crate::gguf::{self, GgmlType};
use memmap2::Mmap;
use std::sync::Arc;

/// Where a stored matrix's bytes live.
pub enum StoredBytes {
    /// A range of a memory-mapped file (shared by every matrix of the file).
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
    Owned(Vec<u8>),
}

impl StoredBytes {
    fn bytes(&self) -> &[u8] {
        match self {
            StoredBytes::Mapped { map, start, len } => &map[*start..*start + *len],
            StoredBytes::Owned(v) => v,
        }
    }
}

pub struct StoredMatrix {
    format: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    bytes: StoredBytes,
    /// Row `r` of the matrix is stored row `order[r]` (llama.cpp stores the query and key
    /// projections with each head's rows interleaved for its RoPE): whole rows are remapped,
    /// so the blocks themselves stay as stored.
    order: Option<Vec<u32>>,
}

impl std::fmt::Debug for StoredMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StoredMatrix({:?}, [{}, {}])",
            self.format, self.rows, self.cols
        )
    }
}

impl StoredMatrix {
    /// A `[rows, cols]` matrix of `format` in `bytes`. Each row must be whole blocks, and
    /// `order`, if given, a permutation of the rows.
    pub fn new(
        format: GgmlType,
        rows: usize,
        cols: usize,
        bytes: StoredBytes,
        order: Option<Vec<u32>>,
    ) -> Result<Self, String> {
        let row_bytes =
            gguf::byte_size(format, cols).map_err(|e| format!("a row of {cols} values: {e}"))?;
        let want = rows.checked_mul(row_bytes).ok_or("size overflows")?;
        if bytes.bytes().len() != want {
            return Err(format!(
                "{} bytes for [{rows}, {cols}] {format:?}, expected {want}",
                bytes.bytes().len()
            ));
        }
        if let Some(o) = &order {
            let mut seen = vec![false; rows];
            if o.len() != rows
                || !o.iter().all(|&r| {
                    (r as usize) < rows && !std::mem::replace(&mut seen[r as usize], true)
                })
            {
                return Err("the row order is not a permutation of the rows".into());
            }
        }
        Ok(StoredMatrix {
            format,
            rows,
            cols,
            row_bytes,
            bytes,
            order,
        })
    }

    pub fn format(&self) -> GgmlType {
        self.format
    }

    /// The format's lower-case name (`q4_1`, `bf16`).
    pub fn format_label(&self) -> String {
        format!("{:?}", self.format)
            .to_lowercase()
            .replace("k", "_k")
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of the stored data (resident once the pages are touched).
    pub fn stored_bytes(&self) -> usize {
        self.rows * self.row_bytes
    }

    /// Bytes per stored row (whole blocks).
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// The stored bytes, rows in stored order (what a GPU backend uploads as it is).
    pub fn raw_bytes(&self) -> &[u8] {
        self.bytes.bytes()
    }

    /// Matrix row `r` is stored row `order()[r]`, where the file permuted them.
    pub fn order(&self) -> Option<&[u32]> {
        self.order.as_deref()
    }

    /// Decodes rows `first..first + out.len() / cols` into `out`.
    pub fn decode_rows(&self, first: usize, out: &mut [f32]) {
        let data = self.bytes.bytes();
        for (i, row) in out.chunks_exact_mut(self.cols).enumerate() {
            let r = first + i;
            let s = self.order.as_ref().map_or(r, |o| o[r] as usize);
            let bytes = &data[s * self.row_bytes..(s + 1) * self.row_bytes];
            gguf::decode_into(self.format, bytes, row);
        }
    }

    /// Rows `ids`, decoded: `[ids.len(), cols]`.
    pub fn gather(&self, ids: &[u32]) -> Vec<f32> {
        let mut out = vec![0.0f32; ids.len() * self.cols];
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(self.cols.max(1))) {
            self.decode_rows(id as usize, row);
        }
        out
    }

    /// The whole matrix as f32 (for ops that have no stored-format kernel).
    pub fn decode_all(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.rows * self.cols];
        self.decode_rows(0, &mut out);
        out
    }
}
