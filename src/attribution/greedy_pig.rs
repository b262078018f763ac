//! Greedy PIG (Axiotis et al. 2023): rounds of integrated gradients. Each round runs IG from a
//! baseline in which the tokens selected so far are fixed at their real embeddings (so they get
//! no further attribution), selects the `per_round` unselected tokens with the largest
//! attribution, and records their rows of that round's map. It stops once `budget` tokens are
//! selected; tokens never selected score 0. One round that selects every token is IG. Rounds are
//! sequential; each round's path points run batched.

use super::{integrated_gradients, Options, Prepared};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub struct Out {
    pub map: Vec<f32>,
    pub f_x: f32,
    pub f_baseline: f32,
    /// The selected tokens, in order of selection.
    pub order: Vec<usize>,
    pub rounds: usize,
}

pub fn greedy_pig(p: &Prepared, baseline: &Tensor, opts: &Options) -> Result<Out> {
    let (len, d) = (p.ids.len(), p.model.hidden_size());
    let per_round = opts.per_round.unwrap_or(len.div_ceil(4));
    let budget = opts.budget.unwrap_or(len);
    if per_round == 0 || budget == 0 || budget > len {
        return Err(Error::InvalidArgument(format!(
            "greedy-pig: --per-round {per_round} must be at least 1 and --budget {budget} between 1 and the prompt's {len} tokens"
        )));
    }
    let x = p.x.to_vec()?;
    let mut base = baseline.to_vec()?;
    let mut map = vec![0.0f32; len * d];
    let mut order = Vec::with_capacity(budget);
    let (mut f_x, mut f_baseline, mut rounds) = (0.0, 0.0, 0);
    // Progress counts rounds; IG's own progress is per chunk within a round.
    let inner = Options {
        progress: None,
        ..opts.clone()
    };
    while order.len() < budget {
        let b = Tensor::from_vec(base.clone(), [len, d], p.x.device())?;
        let r = integrated_gradients::integrated_gradients(p, &p.x, &b, &inner)?;
        if rounds == 0 {
            (f_x, f_baseline) = (r.f_x, r.f_baseline);
        }
        rounds += 1;
        let score = |i: usize| {
            r.map[i * d..(i + 1) * d]
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>()
        };
        let mut free: Vec<usize> = (0..len).filter(|i| !order.contains(i)).collect();
        // Largest attribution first; ties by position, so the order is deterministic.
        free.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
        for &i in free.iter().take(per_round.min(budget - order.len())) {
            map[i * d..(i + 1) * d].copy_from_slice(&r.map[i * d..(i + 1) * d]);
            base[i * d..(i + 1) * d].copy_from_slice(&x[i * d..(i + 1) * d]);
            order.push(i);
        }
        if let Some(progress) = &opts.progress {
            progress(order.len(), budget);
        }
    }
    Ok(Out {
        map,
        f_x,
        f_baseline,
        order,
        rounds,
    })
}
