//! Data movement: head permutes, grouped-query repeats, row gathers and position selects.

use super::for_rows;
use crate::error::Result;

pub fn permute_0213(x: &[f32], [_, b, c, d]: [usize; 4]) -> Result<Vec<f32>> {
    let mut out = super::zeros(x.len(), "a layout copy")?;
    // Output row (ia, ic, ib) of d values comes from input row (ia, ib, ic).
    for_rows(&mut out, d, |r, o| {
        let ib = r % b;
        let ic = (r / b) % c;
        let ia = r / (b * c);
        let src = ((ia * b + ib) * c + ic) * d;
        o.copy_from_slice(&x[src..src + d]);
    });
    Ok(out)
}

pub fn repeat_heads(x: &[f32], [_, h, l, d]: [usize; 4], rep: usize) -> Result<Vec<f32>> {
    let head = l * d;
    let mut out = super::zeros(x.len() * rep, "a layout copy")?;
    for_rows(&mut out, head, |r, o| {
        // Output head r = (batch, kv_head * rep + j) reads input head (batch, kv_head).
        let (ib, oh) = (r / (h * rep), r % (h * rep));
        let src = (ib * h + oh / rep) * head;
        o.copy_from_slice(&x[src..src + head]);
    });
    Ok(out)
}

pub fn sum_head_groups(g: &[f32], [b, h, l, d]: [usize; 4], rep: usize) -> Result<Vec<f32>> {
    let head = l * d;
    let mut out = super::zeros(b * h * head, "a layout copy")?;
    for_rows(&mut out, head, |r, o| {
        let (ib, kh) = (r / h, r % h);
        for j in 0..rep {
            let src = (ib * h * rep + kh * rep + j) * head;
            for (a, &v) in o.iter_mut().zip(&g[src..src + head]) {
                *a += v;
            }
        }
    });
    Ok(out)
}

pub fn gather_rows(table: &[f32], ids: &[u32], cols: usize) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(ids.len() * cols);
    for &id in ids {
        let id = id as usize;
        out.extend_from_slice(&table[id * cols..(id + 1) * cols]);
    }
    Ok(out)
}

pub fn select_position(x: &[f32], [b, l, d]: [usize; 3], pos: usize) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(b * d);
    for ib in 0..b {
        let src = (ib * l + pos) * d;
        out.extend_from_slice(&x[src..src + d]);
    }
    Ok(out)
}

pub fn scatter_position(g: &[f32], [b, l, d]: [usize; 3], pos: usize) -> Result<Vec<f32>> {
    let mut out = super::zeros(b * l * d, "a layout copy")?;
    for ib in 0..b {
        let dst = (ib * l + pos) * d;
        out[dst..dst + d].copy_from_slice(&g[ib * d..(ib + 1) * d]);
    }
    Ok(out)
}

pub fn concat_seq(a: &[f32], b: &[f32], [bs, h, t1, d]: [usize; 4], t2: usize) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    for head in 0..bs * h {
        out.extend_from_slice(&a[head * t1 * d..(head + 1) * t1 * d]);
        out.extend_from_slice(&b[head * t2 * d..(head + 1) * t2 * d]);
    }
    Ok(out)
}
