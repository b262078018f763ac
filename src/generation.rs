//! Greedy generation for causal LMs.

use crate::attribution::next_token_logits;
use crate::error::{Error, Result};
use crate::models::Model;

/// Up to `n` greedily chosen tokens after `ids` (stopping after EOS when `stop_at_eos`).
pub fn greedy(model: &Model, ids: &[u32], n: usize, stop_at_eos: bool) -> Result<Vec<u32>> {
    if !model.arch.is_causal() {
        return Err(Error::InvalidArgument(format!(
            "{} does not generate text",
            model.arch.name()
        )));
    }
    let mut all = ids.to_vec();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if all.len() >= model.info.max_positions {
            break;
        }
        let logits = next_token_logits(model, &model.embed(&all)?)?;
        let next = logits
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0 as u32;
        out.push(next);
        all.push(next);
        if stop_at_eos && Some(next) == model.info.eos_token_id {
            break;
        }
    }
    Ok(out)
}
