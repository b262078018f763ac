//! A weight matrix kept in the format its file stores it in (f16, bf16 or a GGUF block
//! quantisation), usually straight from the memory map: the CPU kernels decode a few rows at a
//! time into cache-sized buffers, so no f32 copy of the matrix ever exists. Decoded values are
//! those of the load-time f32 decode, bit for bit.

use crate::gguf::decode_simd::StoredRows;
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

/// The shape and format of a stored matrix, as a GPU backend's kernels take them.
#[derive(Clone, Copy, Debug)]
pub struct StoredLayout {
    pub format: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// Bytes per stored row (whole blocks).
    pub row_bytes: usize,
    /// Whether matrix row `r` is stored row `order[r]`.
    pub ordered: bool,
}

impl StoredLayout {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The format's GGML id, the row bytes and the order flag: the words every stored-weight
    /// kernel takes after its buffers.
    pub fn kernel_words(&self) -> [u32; 3] {
        [self.format.id(), self.row_bytes as u32, self.ordered as u32]
    }
}

/// What a GPU backend uploads of a stored matrix: its bytes as little-endian u32 words (the
/// last padded), and its row order (one unused word where the rows are in order, as a device
/// binding cannot be empty).
pub struct StoredUpload {
    pub words: Vec<u32>,
    pub order: Vec<u32>,
    pub layout: StoredLayout,
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

    /// Rows `rows` of the matrix, still as stored (the same mapped bytes): one part of a fused
    /// projection such as Phi-3's `qkv_proj`. Only a matrix without a row order splits so.
    pub fn row_range(&self, rows: std::ops::Range<usize>) -> Result<StoredMatrix, String> {
        if self.order.is_some() || rows.end > self.rows || rows.start > rows.end {
            return Err(format!(
                "rows {rows:?} of a [{}, {}] matrix{}",
                self.rows,
                self.cols,
                if self.order.is_some() {
                    " with a row order"
                } else {
                    ""
                }
            ));
        }
        let (from, len) = (rows.start * self.row_bytes, rows.len() * self.row_bytes);
        let bytes = match &self.bytes {
            StoredBytes::Mapped { map, start, .. } => StoredBytes::Mapped {
                map: map.clone(),
                start: start + from,
                len,
            },
            StoredBytes::Owned(v) => StoredBytes::Owned(v[from..from + len].to_vec()),
        };
        StoredMatrix::new(self.format, rows.len(), self.cols, bytes, None)
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

    /// The bytes as they are stored and the row order, for a GPU backend to upload.
    pub fn for_upload(&self) -> StoredUpload {
        let bytes = self.bytes.bytes();
        let mut words = vec![0u32; bytes.len().div_ceil(4).max(1)];
        bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        StoredUpload {
            words,
            order: self.order.clone().unwrap_or_else(|| vec![0]),
            layout: StoredLayout {
                format: self.format,
                rows: self.rows,
                cols: self.cols,
                row_bytes: self.row_bytes,
                ordered: self.order.is_some(),
            },
        }
    }

    /// The rows as the SIMD kernels read them (row order applied).
    pub fn stored_rows(&self) -> StoredRows<'_> {
        StoredRows::new(
            self.format,
            self.bytes.bytes(),
            self.row_bytes,
            self.order.as_deref(),
            self.rows,
            self.cols,
        )
    }

    /// Decodes rows `first..first + out.len() / cols` into `out`.
    pub fn decode_rows(&self, first: usize, out: &mut [f32]) {
        self.stored_rows().decode_into(first, out);
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
