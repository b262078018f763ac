//! Shape checks shared by every backend, on lengths only, so that a bad shape gives the same
//! error on the CPU and on a GPU, before anything is computed or launched.

use crate::error::{Error, Result};

pub fn same_len(a: usize, b: usize, what: &str) -> Result<()> {
    if a != b {
        return Err(Error::Shape(format!("{what}: lengths {a} and {b} differ")));
    }
    Ok(())
}

/// `len` values as rows of `cols`; returns the row count.
pub fn rows(len: usize, cols: usize, what: &str) -> Result<usize> {
    if cols == 0 || len % cols != 0 {
        return Err(Error::Shape(format!(
            "{what}: {len} values are not rows of {cols}"
        )));
    }
    Ok(len / cols)
}

/// Rows of `cols` with one weight per column (norms); returns the row count.
pub fn weighted_rows(len: usize, w: usize, cols: usize, what: &str) -> Result<usize> {
    if cols == 0 || len % cols != 0 || w != cols {
        return Err(Error::Shape(format!(
            "{what}: {len} values with a weight of {w} do not form rows of {cols}"
        )));
    }
    Ok(len / cols)
}

/// Rows of `d` against one vector of `d` (cosine targets); returns the row count.
pub fn rows_against(len: usize, c: usize, d: usize, what: &str) -> Result<usize> {
    if d == 0 || c != d || len % d != 0 {
        return Err(Error::Shape(format!(
            "{what}: rows of {d} against a vector of {c}"
        )));
    }
    Ok(len / d)
}

pub fn dims(len: usize, dims: &[usize], what: &str) -> Result<()> {
    if len != dims.iter().product::<usize>() {
        return Err(Error::Shape(format!(
            "{what}: {len} values do not fit {dims:?}"
        )));
    }
    Ok(())
}

/// A DeepLIFT batch `[inputs; references]`; returns the length of one half.
pub fn halves(len: usize, what: &str) -> Result<usize> {
    if len % 2 != 0 {
        return Err(Error::Shape(format!(
            "{what}: a DeepLIFT batch pairs inputs with references, got {len} values"
        )));
    }
    Ok(len / 2)
}

/// `x` of `x_len` values rotated over `len` positions with `cos`/`sin` tables of half a head.
pub fn rope(x_len: usize, cos: usize, sin: usize, len: usize, head_dim: usize) -> Result<()> {
    if head_dim % 2 != 0
        || len == 0
        || x_len % (len * head_dim) != 0
        || cos != len * head_dim / 2
        || sin != cos
    {
        return Err(Error::Shape(format!(
            "rope: {x_len} values, {len} positions, head_dim {head_dim}, tables of {cos}"
        )));
    }
    Ok(())
}

/// Every id indexes a row of a table of `rows`.
pub fn token_ids(ids: &[u32], rows: usize) -> Result<()> {
    match ids.iter().find(|&&id| id as usize >= rows) {
        Some(id) => Err(Error::InvalidInput(format!(
            "token id {id} outside a table of {rows} rows"
        ))),
        None => Ok(()),
    }
}

pub fn position(pos: usize, l: usize, what: &str) -> Result<()> {
    if pos >= l {
        return Err(Error::Shape(format!("{what}: position {pos} of {l}")));
    }
    Ok(())
}

/// `q` and `k` of a fused attention call against their sizes.
pub fn attention(q: usize, k: usize, d: &super::AttentionDims, what: &str) -> Result<()> {
    if d.head_dim == 0 || q != d.batch * d.q_len * d.head_dim || k != d.batch * d.k_len * d.head_dim
    {
        return Err(Error::Shape(format!(
            "{what}: q of {q} and k of {k} values do not fit {d:?}"
        )));
    }
    Ok(())
}
