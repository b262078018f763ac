//! The shape checks `Checked` runs in front of every backend, on lengths only.

use crate::error::{Error, Result};

pub fn same_len(a: usize, b: usize, what: &str) -> Result<()> {
    if a != b {
        return Err(Error::Shape(format!("{what}: lengths {a} and {b} differ")));
    }
    Ok(())
}

/// `len` values as rows of `cols`; returns the row count.
pub fn rows(len: usize, cols: usize, what: &str) -> Result<usize> {
    if cols == 0 || !len.is_multiple_of(cols) {
        return Err(Error::Shape(format!(
            "{what}: {len} values are not rows of {cols}"
        )));
    }
    Ok(len / cols)
}

/// Rows of `cols` with one weight per column (norms); returns the row count.
pub fn weighted_rows(len: usize, w: usize, cols: usize, what: &str) -> Result<usize> {
    if cols == 0 || !len.is_multiple_of(cols) || w != cols {
        return Err(Error::Shape(format!(
            "{what}: {len} values with a weight of {w} do not form rows of {cols}"
        )));
    }
    Ok(len / cols)
}

/// Rows of `d` against one vector of `d` (cosine targets); returns the row count.
pub fn rows_against(len: usize, c: usize, d: usize, what: &str) -> Result<usize> {
    if d == 0 || c != d || !len.is_multiple_of(d) {
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
    if !len.is_multiple_of(2) {
        return Err(Error::Shape(format!(
            "{what}: a DeepLIFT batch pairs inputs with references, got {len} values"
        )));
    }
    Ok(len / 2)
}

/// `x` of `x_len` values rotated over `len` positions with `cos`/`sin` tables of up to half a
/// head (fewer: only the head's first `2·cos/len` dimensions rotate, as Phi-4-mini's do).
pub fn rope(x_len: usize, cos: usize, sin: usize, len: usize, head_dim: usize) -> Result<()> {
    if !head_dim.is_multiple_of(2)
        || len == 0
        || !x_len.is_multiple_of(len * head_dim)
        || !cos.is_multiple_of(len)
        || cos / len > head_dim / 2
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

/// A product with a stored-format weight: the weight is one matrix for every batch entry.
pub fn stored_product(spec: &super::MatmulSpec) -> Result<()> {
    if spec.b_batched {
        return Err(Error::Shape(
            "matmul: a stored-format weight is one matrix for every batch entry".into(),
        ));
    }
    Ok(())
}

/// A look-up of rows `ids` of `cols` columns in a stored-format weight of `[rows, w_cols]`.
pub fn stored_rows([rows, w_cols]: [usize; 2], ids: &[u32], cols: usize) -> Result<()> {
    if cols != w_cols {
        return Err(Error::Shape(format!(
            "gather_rows: {cols} columns asked of a [{rows}, {w_cols}] weight"
        )));
    }
    token_ids(ids, rows)
}

/// One value per row (a norm's saved `1/σ`, a gradient of a row-wise scalar).
pub fn per_row(len: usize, rows: usize, what: &str) -> Result<()> {
    if len != rows {
        return Err(Error::Shape(format!(
            "{what}: {len} values for {rows} rows"
        )));
    }
    Ok(())
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

/// Operands of a matmul against its spec.
pub fn matmul(a: usize, b: usize, spec: &super::MatmulSpec) -> Result<()> {
    let s = spec;
    let want_a = if s.a_batched { s.batch } else { 1 } * s.m * s.k;
    let want_b = if s.b_batched { s.batch } else { 1 } * s.k * s.n;
    if a != want_a || b != want_b {
        return Err(Error::Shape(format!(
            "matmul {spec:?}: operands of {a} and {b} values"
        )));
    }
    Ok(())
}

/// `b` repeats a whole number of times along `a`.
pub fn broadcast(a: usize, b: usize) -> Result<()> {
    if b == 0 || !a.is_multiple_of(b) {
        return Err(Error::Shape(format!(
            "add_broadcast: {b} values do not repeat into {a}"
        )));
    }
    Ok(())
}

/// A softmax pick: rows of `cols` and a column inside them; returns the row count.
pub fn pick(len: usize, cols: usize, col: usize, what: &str) -> Result<usize> {
    let rows = self::rows(len, cols, what)?;
    if col >= cols {
        return Err(Error::Shape(format!("{what}: column {col} of {cols}")));
    }
    Ok(rows)
}

/// A softmax pick's backward: `x` as in `pick`, one gradient per row; returns the row count.
pub fn pick_backward(x: usize, g: usize, cols: usize, col: usize) -> Result<usize> {
    const WHAT: &str = "pick_softmax_backward";
    let rows = pick(x, cols, col, WHAT)?;
    if g != rows {
        return Err(Error::Shape(format!(
            "{WHAT}: {g} gradients for {rows} rows"
        )));
    }
    Ok(rows)
}

/// The DeepLIFT rank-one rescale's operands; returns the rows of the input half.
pub fn rank1(
    x: usize,
    y: usize,
    g: usize,
    exact: usize,
    x_cols: usize,
    y_cols: usize,
) -> Result<usize> {
    const WHAT: &str = "rank1_rescale_halves";
    same_len(y, g, WHAT)?;
    same_len(x, exact, WHAT)?;
    if x_cols == 0 || y_cols == 0 || x / x_cols != y / y_cols {
        return Err(Error::Shape(format!("{WHAT}: row counts differ")));
    }
    halves(y, WHAT)?;
    Ok(halves(x, WHAT)? / x_cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_backward_wants_whole_rows_a_column_inside_them_and_a_gradient_per_row() {
        assert_eq!(pick_backward(6, 2, 3, 2).unwrap(), 2);
        for (x, g, cols, col) in [(6, 5, 3, 1), (6, 2, 3, 3), (7, 2, 3, 1), (6, 2, 0, 0)] {
            let e = pick_backward(x, g, cols, col).unwrap_err().to_string();
            assert!(e.contains("pick_softmax_backward"), "{e}");
        }
    }
}
