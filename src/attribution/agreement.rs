//! How much methods agree on one prompt: for every pair, the Spearman and Kendall (τ-b) rank
//! correlations of their token scores and the overlap of their top-k tokens. Tokens are ranked
//! by the magnitude of their score (what a heatmap's intensity shows), so a method whose signs
//! differ but whose important tokens are the same counts as agreeing.

use serde::{Deserialize, Serialize};

/// The matrices of every pair of methods (each symmetric, 1 on the diagonal; `None` where a
/// correlation is undefined because a method gives every token the same magnitude).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Agreement {
    pub methods: Vec<String>,
    /// The top-k overlap's k (at most the number of tokens).
    pub k: usize,
    pub spearman: Vec<Vec<Option<f64>>>,
    pub kendall: Vec<Vec<Option<f64>>>,
    /// `|top-k(a) ∩ top-k(b)| / k`.
    pub top_k: Vec<Vec<f64>>,
}

/// The agreement of `scores` (one vector per method, all of the same length), top-k with
/// `k` clamped to the number of tokens.
pub fn agreement(methods: &[String], scores: &[Vec<f32>], k: usize) -> Agreement {
    let magnitudes: Vec<Vec<f64>> = scores
        .iter()
        .map(|s| s.iter().map(|&x| (x as f64).abs()).collect())
        .collect();
    let n = magnitudes.first().map_or(0, Vec::len);
    let k = k.min(n);
    let ranks: Vec<Vec<f64>> = magnitudes.iter().map(|m| ranks(m)).collect();
    let tops: Vec<Vec<usize>> = magnitudes.iter().map(|m| top(m, k)).collect();
    let pairs = |f: &dyn Fn(usize, usize) -> Option<f64>| -> Vec<Vec<Option<f64>>> {
        (0..scores.len())
            .map(|a| (0..scores.len()).map(|b| f(a, b)).collect())
            .collect()
    };
    Agreement {
        methods: methods.to_vec(),
        k,
        spearman: pairs(&|a, b| pearson(&ranks[a], &ranks[b])),
        kendall: pairs(&|a, b| kendall_tau_b(&magnitudes[a], &magnitudes[b])),
        top_k: pairs(&|a, b| Some(overlap(&tops[a], &tops[b], k)))
            .into_iter()
            .map(|row| row.into_iter().map(|x| x.unwrap_or(0.0)).collect())
            .collect(),
    }
}

/// Ranks from 1, ties sharing their average rank (as Spearman's coefficient needs).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            r[o] = average;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    (aa > 0.0 && bb > 0.0).then(|| (ab / (aa * bb).sqrt()).clamp(-1.0, 1.0))
}

/// Kendall's τ-b, which corrects for ties in either vector (all pairs: O(n²), a few tenths
/// of a second at 8,192 tokens).
fn kendall_tau_b(a: &[f64], b: &[f64]) -> Option<f64> {
    let (mut concordant, mut discordant, mut ties_a, mut ties_b) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            let (da, db) = (a[i].total_cmp(&a[j]) as i8, b[i].total_cmp(&b[j]) as i8);
            match (da, db) {
                (0, 0) => {}
                (0, _) => ties_a += 1,
                (_, 0) => ties_b += 1,
                _ if da == db => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let left = (concordant + discordant + ties_a) as f64;
    let right = (concordant + discordant + ties_b) as f64;
    if left > 0.0 && right > 0.0 {
        Some((concordant - discordant) as f64 / (left * right).sqrt())
    } else {
        None
    }
}

/// The `k` largest entries' indices (ties broken by position, earliest first).
fn top(v: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

fn overlap(a: &[usize], b: &[usize], k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    a.iter().filter(|i| b.contains(i)).count() as f64 / k as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(a: &[f32], b: &[f32], k: usize) -> Agreement {
        agreement(&["a".into(), "b".into()], &[a.to_vec(), b.to_vec()], k)
    }

    #[test]
    fn identical_rankings_agree_fully_and_reversed_ones_not_at_all() {
        let same = one(&[0.1, -0.5, 2.0, 0.0], &[1.0, -2.0, 9.0, 0.5], 2);
        assert_eq!(same.spearman[0][1], Some(1.0));
        assert_eq!(same.kendall[0][1], Some(1.0));
        assert_eq!(same.top_k[0][1], 1.0);
        let reversed = one(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0], 2);
        assert_eq!(reversed.spearman[1][0], Some(-1.0));
        assert_eq!(reversed.kendall[1][0], Some(-1.0));
        assert_eq!(reversed.top_k[1][0], 0.0);
    }

    #[test]
    fn matches_scipy_on_ties() {
        // scipy.stats.spearmanr and kendalltau (τ-b) of these magnitudes.
        let r = one(&[1.0, 2.0, 2.0, 3.0, 5.0], &[1.0, 3.0, 2.0, 2.0, 4.0], 3);
        assert!((r.spearman[0][1].unwrap() - 0.7631578947368421).abs() < 1e-12);
        assert!((r.kendall[0][1].unwrap() - 0.6666666666666666).abs() < 1e-12);
        // Top 3: {4, 3, 1} (ties by position) and {4, 1, 2}.
        assert!((r.top_k[0][1] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_constant_method_has_no_correlation() {
        let r = one(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], 5);
        assert_eq!(r.spearman[0][1], None);
        assert_eq!(r.kendall[0][1], None);
        assert_eq!(r.k, 3);
    }
}
