//! Property tests of the path methods beyond IG, the attention baselines and the faithfulness
//! metrics (METHODS.md, "Properties that are tests").

mod common;
use common::*;
use gradlens::attribution::{
    self, attention, faithfulness, Attribution, Baseline, Method, Prepared, Settings,
};
use gradlens::Model;

const PROMPT: &str = "Language models predict the next";

/// `name` with `options` (CLI names), its map kept.
fn run(model: &Model, name: &str, options: &[(&str, &str)]) -> Attribution {
    attribution::attribute(model, PROMPT, method(name, options).as_ref(), &with_map()).unwrap()
}

const PAD: (&str, &str) = ("baseline", "pad");

/// `|a − b| ≤ tol · max|b|`, elementwise.
fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}: element {i}: {x} vs {y} (scale {scale})"
        );
    }
}

fn gap(a: &Attribution) -> f32 {
    (a.target_score - a.baseline_score.unwrap()).abs()
}

#[test]
fn guided_ig_with_max_dist_zero_is_ig_with_the_left_riemann_rule() {
    for name in ["tiny-llama", "tiny-bert-cls", "tiny-gpt2"] {
        let model = tiny(name);
        let base = if name == "tiny-gpt2" { "zero" } else { "pad" };
        let guided = run(
            &model,
            "guided-ig",
            &[("steps", "16"), ("max-dist", "0"), ("baseline", base)],
        );
        let ig = run(
            &model,
            "integrated-gradients",
            &[
                ("steps", "16"),
                ("quadrature", "riemann-left"),
                ("baseline", base),
            ],
        );
        assert_close(
            guided.map.as_ref().unwrap(),
            ig.map.as_ref().unwrap(),
            1e-4,
            name,
        );
    }
}

/// Completeness holds up to the left Riemann error, which shrinks with the band (a feature
/// may move up to 2 × max_dist of its range in one move) and with 1/steps.
#[test]
fn guided_ig_is_complete_and_leaves_the_straight_line() {
    let model = tiny("tiny-llama");
    let guided = run(
        &model,
        "guided-ig",
        &[("steps", "400"), ("max-dist", "0.005"), PAD],
    );
    let delta = guided.convergence_delta.unwrap();
    assert!(delta.abs() < 0.01 * gap(&guided), "delta {delta}");
    let ig = run(
        &model,
        "integrated-gradients",
        &[("steps", "400"), ("quadrature", "riemann-left"), PAD],
    );
    let diff = guided
        .scores
        .iter()
        .zip(&ig.scores)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff > 1e-3, "a guided path differs from the straight line");
}

/// At a zero input every RMSNorm of SmolLM2 scales the gradient by 1/√ε ≈ 316: thirty of
/// them overflow f32, and the reference's left Riemann rule gave all-NaN scores with exit 0.
/// The overflowed step moves straight and takes the next gradient: the scores are finite.
#[test]
fn guided_ig_from_a_zero_baseline_on_smollm2_is_finite() {
    let Some(model) = smollm2() else { return };
    let a = attribution::attribute(
        &model,
        "The capital of France is",
        &attribution::methods::GuidedIg {
            steps: 4,
            baseline: Baseline::Zero,
            ..Default::default()
        },
        &Settings::default(),
    )
    .unwrap();
    assert!(a.scores.iter().all(|s| s.is_finite()), "{:?}", a.scores);
    assert!(a.convergence_delta.unwrap().is_finite());
}

/// Greedy PIG reports Σ scores − (F(x) − F(x′)) like every path method, and warns when it is
/// over 5% of the gap (it reported null, with no warning, at 41–480%).
#[test]
fn greedy_pig_reports_and_checks_its_delta() {
    for name in ["tiny-llama", "tiny-bert-cls"] {
        let a = run(&tiny(name), "greedy-pig", &[PAD]);
        let delta = a.convergence_delta.expect("a delta");
        let total: f32 = a.scores.iter().sum();
        assert!(
            (delta - (total - (a.target_score - a.baseline_score.unwrap()))).abs()
                < 1e-3 * (1.0 + total.abs())
        );
        let warned = a.warnings.iter().any(|w| w.contains("convergence delta"));
        assert_eq!(
            warned,
            delta.abs() > 0.05 * gap(&a).max(1e-6),
            "{name}: {:?}",
            a.warnings
        );
    }
}

#[test]
fn sequential_ig_is_complete_per_token() {
    for name in ["tiny-llama", "tiny-bert-cls"] {
        let model = tiny(name);
        let a = run(&model, "sequential-ig", &[PAD]);
        let deltas = a.extra::<Vec<f32>>("per_token_delta").unwrap();
        assert_eq!(deltas.len(), a.tokens.len());
        let scale = a.scores.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, d) in deltas.iter().enumerate() {
            assert!(
                d.abs() < 1e-3 * scale.max(1.0),
                "{name} token {i}: delta {d}"
            );
        }
    }
}

#[test]
fn sequential_ig_of_one_token_is_ig() {
    let model = tiny("tiny-llama");
    let ids = vec![model.tokenize("hello").unwrap()[1]];
    let by_ids = |name| {
        let m = method(name, &[PAD]);
        attribution::attribute_tokens(&model, &ids, m.as_ref(), &with_map()).unwrap()
    };
    let (seq, ig) = (by_ids("sequential-ig"), by_ids("integrated-gradients"));
    assert_close(
        seq.map.as_ref().unwrap(),
        ig.map.as_ref().unwrap(),
        1e-5,
        "one token",
    );
}

#[test]
fn greedy_pig_with_one_round_selecting_everything_is_ig() {
    let model = tiny("tiny-gpt2");
    let len = model.tokenize(PROMPT).unwrap().len();
    let pig = run(&model, "greedy-pig", &[("per-round", &len.to_string())]);
    assert_eq!(pig.extra::<usize>("rounds"), Some(1));
    let ig = run(&model, "integrated-gradients", &[]);
    assert_close(
        pig.map.as_ref().unwrap(),
        ig.map.as_ref().unwrap(),
        1e-6,
        "one round",
    );
}

#[test]
fn greedy_pig_selects_in_rounds_within_its_budget() {
    let model = tiny("tiny-llama");
    let pig = run(
        &model,
        "greedy-pig",
        &[("per-round", "2"), ("budget", "5"), PAD],
    );
    let order = pig.extra::<Vec<usize>>("selection_order").unwrap();
    assert_eq!(order.len(), 5);
    assert_eq!(pig.extra::<usize>("rounds"), Some(3));
    let mut unique = order.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "no token selected twice");
    for (i, s) in pig.scores.iter().enumerate() {
        if !order.contains(&i) {
            assert_eq!(*s, 0.0, "unselected token {i} scores 0");
        }
    }
}

#[test]
fn pgd_lowers_f_and_is_complete_along_its_path() {
    for name in ["tiny-llama", "tiny-bert-cls"] {
        let model = tiny(name);
        let a = run(&model, "pgd", &[("steps", "40"), ("radius", "0.2")]);
        let drop = a.extra::<f32>("adversarial_drop").unwrap();
        assert!(drop > 0.0, "{name}: the attack lowers F ({drop})");
        let delta = a.convergence_delta.unwrap();
        assert!(
            delta.abs() < 0.02 * drop,
            "{name}: delta {delta} of a drop {drop}"
        );
        let total: f32 = a.scores.iter().sum();
        assert!((total - drop).abs() < 0.02 * drop);
    }
}

#[test]
fn pgd_grows_with_the_radius() {
    let model = tiny("tiny-llama");
    let drop = |radius| {
        run(&model, "pgd", &[("radius", radius)])
            .extra::<f32>("adversarial_drop")
            .unwrap()
    };
    assert!(drop("0.3") > drop("0.05"));
}

#[test]
fn rpi_is_seeded_and_reproducible() {
    let model = tiny("tiny-llama");
    let rpi = |seed| method("rpi", &[("seed", seed), ("samples", "3"), ("steps", "8")]);
    let run_rpi = |seed, settings: &Settings| {
        attribution::attribute(&model, PROMPT, rpi(seed).as_ref(), settings).unwrap()
    };
    let a = run_rpi("7", &Settings::default());
    let b = run_rpi("7", &Settings::default());
    let c = run_rpi("8", &Settings::default());
    assert_eq!(a.scores, b.scores, "same seed, same scores");
    assert_ne!(a.scores, c.scores, "another seed, other scores");
    assert!(a.scores.iter().all(|s| s.is_finite()));
    // Batching does not change a draw.
    let chunked = run_rpi(
        "7",
        &Settings {
            batch_size: Some(5),
            ..Default::default()
        },
    );
    assert_close(&chunked.scores, &a.scores, 1e-5, "chunked");
}

#[test]
fn discretized_ig_path_is_monotone_and_complete() {
    let model = tiny("tiny-llama");
    let p = Prepared::new(&model, PROMPT, &Settings::default()).unwrap();
    let x = p.x.to_vec().unwrap();
    let b = p.baseline(&Baseline::Pad).unwrap().to_vec().unwrap();
    let path = attribution::discretized_path(&model, &x, &b, 10, 20).unwrap();
    assert_eq!(path.len(), 11);
    assert_eq!(path[0], b);
    assert_eq!(path[10], x);
    for w in path.windows(2) {
        for j in 0..x.len() {
            // Walking from the baseline to x, every coordinate moves towards x and never past.
            let (lo, hi) = (x[j].min(b[j]), x[j].max(b[j]));
            assert!(
                w[0][j] >= lo && w[0][j] <= hi,
                "coordinate {j} stays between"
            );
            assert!(
                (w[1][j] - w[0][j]) * (x[j] - b[j]) >= 0.0,
                "coordinate {j} moves monotonically"
            );
        }
    }
    let a = run(&model, "discretized-ig", &[("steps", "30"), PAD]);
    let delta = a.convergence_delta.unwrap();
    assert!(delta.abs() < 0.02 * gap(&a), "delta {delta} of {}", gap(&a));
}

#[test]
fn attention_rows_are_distributions_and_causal() {
    for (name, causal) in [
        ("tiny-llama", true),
        ("tiny-gpt2", true),
        ("tiny-bert-cls", false),
    ] {
        let model = tiny(name);
        let p = Prepared::new(&model, PROMPT, &Settings::default()).unwrap();
        let (maps, _) = attention::attention_maps(&p).unwrap();
        let len = p.ids.len();
        assert_eq!(maps.len(), model.info.layers);
        for layer in &maps {
            for (r, row) in layer.chunks(len).enumerate() {
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{name}: a row sums to {sum}");
                let q = r % len;
                if causal {
                    assert!(row[q + 1..].iter().all(|&v| v == 0.0), "{name}: no future");
                }
            }
        }
        let heads = model.info.attention_heads;
        let rollout = attention::rollout(&maps, heads, len).unwrap();
        for row in rollout.chunks(len) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        let a = run(&model, "attention", &[]);
        let w = attention::query_weights(&p.target, len);
        let mean = attention::head_map(&maps[model.info.layers - 1], heads, len, None).unwrap();
        assert_close(&a.scores, &attention::token_scores(&mean, &w), 1e-6, name);
        let nested = a.extra::<Vec<Vec<Vec<Vec<f32>>>>>("attention").unwrap();
        assert_eq!(
            (nested.len(), nested[0].len(), nested[0][0].len()),
            (model.info.layers, heads, len)
        );
    }
}

#[test]
fn attention_layer_and_head_are_checked() {
    let model = tiny("tiny-llama");
    let attention = |layer, head| attribution::methods::Attention { layer, head };
    let bad_layer = attribution::attribute(
        &model,
        PROMPT,
        &attention(Some(99), None),
        &Settings::default(),
    );
    assert!(bad_layer.unwrap_err().to_string().contains("--layer 99"));
    let bad_head = attribution::attribute(
        &model,
        PROMPT,
        &attention(None, Some(99)),
        &Settings::default(),
    );
    assert!(bad_head.unwrap_err().to_string().contains("--head 99"));
}

#[test]
fn faithfulness_curves_match_direct_evaluation() {
    let model = tiny("tiny-llama");
    let opts = Settings::default();
    let ids = model.tokenize(PROMPT).unwrap();
    let (saliency, ig) = (
        method("saliency", &[]),
        method("integrated-gradients", &[PAD]),
    );
    let methods: [&dyn Method; 2] = [saliency.as_ref(), ig.as_ref()];
    let e = faithfulness::faithfulness(&model, &ids, &methods, &Baseline::Pad, &opts).unwrap();
    assert_eq!(e.methods.len(), 2);
    let p = Prepared::from_ids(&model, ids.clone(), &opts).unwrap();
    let (x, b) = (
        p.x.to_vec().unwrap(),
        p.baseline(&Baseline::Pad).unwrap().to_vec().unwrap(),
    );
    let (len, d) = (ids.len(), model.hidden_size());
    let f = |v: Vec<f32>| {
        let t = gradlens::Tensor::from_vec(v, [1, len, d], model.device()).unwrap();
        attribution::scores(&model, &p.target, &t).unwrap()[0]
    };
    for m in &e.methods {
        let n = m.deletion.len();
        assert!((m.deletion[0] - e.target_score).abs() < 1e-4);
        assert!((m.deletion[n - 1] - e.baseline_score).abs() < 1e-4);
        assert!((m.insertion[0] - e.baseline_score).abs() < 1e-4);
        assert!((m.insertion[n - 1] - e.target_score).abs() < 1e-4);
        // 30% of the tokens: the top round(0.3 len) removed, by hand.
        let k = (0.3 * len as f32).round() as usize;
        let mut removed = x.clone();
        for &t in &m.ranking[..k] {
            removed[t * d..(t + 1) * d].copy_from_slice(&b[t * d..(t + 1) * d]);
        }
        assert!((m.deletion[3] - f(removed)).abs() < 1e-4, "{}", m.method);
        let aopc: f32 = m.deletion.iter().map(|v| e.target_score - v).sum::<f32>() / n as f32;
        assert!((m.aopc - aopc).abs() < 1e-5);
        let mut sorted = m.scores.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let ranked: Vec<f32> = m.ranking.iter().map(|&i| m.scores[i]).collect();
        assert_eq!(ranked, sorted, "ranking is by score");
    }
}
