//! The perturbation methods (Shapley sampling, KernelSHAP, LIME): their defining properties,
//! and agreement with Captum's `KernelShap` and `Lime` given the same coalitions.

mod common;
use common::*;
use gradlens::attribution::methods::{kernel_shap, lime};
use gradlens::attribution::{self, Attribution, Prepared, Settings};

const PROMPT: &str = "Language models predict the next";
const PAD: (&str, &str) = ("baseline", "pad");

fn efficient(a: &Attribution) {
    let gap = a.target_score - a.baseline_score.unwrap();
    let total: f32 = a.scores.iter().sum();
    assert!(
        (total - gap).abs() <= 1e-5 * (1.0 + gap.abs()),
        "{}: scores sum to {total}, F(x) - F(x') = {gap}",
        a.method
    );
}

/// Shapley value sampling: every order's credits telescope to `F(x) − F(x′)` (efficiency,
/// exactly), the estimate approaches the exact Shapley values as orders grow, and it does
/// not depend on batching.
#[test]
fn shapley_sampling_is_efficient_and_converges_to_the_exact_values() {
    let model = tiny("tiny-llama");
    let prompt = "hello you";
    assert!(model.tokenize(prompt).unwrap().len() <= 8);
    let shapley = |options: &[(&str, &str)], settings: &Settings| {
        let m = method("shapley-sampling", options);
        attribution::attribute(&model, prompt, m.as_ref(), settings).unwrap()
    };
    let exact = shapley(&[("exact", "true"), PAD], &Settings::default());
    let efficient = |a: &Attribution| {
        let gap = a.target_score - a.baseline_score.unwrap();
        let total: f32 = a.scores.iter().sum();
        assert!(
            (total - gap).abs() <= 1e-5 * (1.0 + gap.abs()),
            "{total} vs {gap}"
        );
    };
    efficient(&exact);
    let err = |a: &Attribution| {
        a.scores
            .iter()
            .zip(&exact.scores)
            .map(|(s, e)| (s - e).abs())
            .fold(0f32, f32::max)
    };
    let few = shapley(&[("samples", "10"), PAD], &Settings::default());
    let many = shapley(&[("samples", "300"), PAD], &Settings::default());
    efficient(&few);
    efficient(&many);
    let scale = exact.scores.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        err(&many) < err(&few) && err(&many) < 0.1 * scale,
        "error {} with 300 orders, {} with 10 (largest value {scale})",
        err(&many),
        err(&few)
    );
    let batched = shapley(
        &[("samples", "10"), PAD],
        &Settings {
            batch_size: Some(3),
            ..Settings::default()
        },
    );
    assert_close(&batched.scores, &few.scores, 1e-6, "batching");
    // Exact enumeration refuses what would take 2^tokens passes beyond its limit.
    let long = method("shapley-sampling", &[("exact", "true")]);
    let e = attribution::attribute(&model, PROMPT, long.as_ref(), &Settings::default());
    assert!(e.unwrap_err().to_string().contains("at most 8 tokens"));
}

/// The exact Shapley values of `v` over `n` players, from the formula.
fn shapley_values(v: &[f64], n: usize) -> Vec<f64> {
    let fact = |m: usize| (1..=m).map(|v| v as f64).product::<f64>();
    (0..n)
        .map(|i| {
            (0..1usize << n)
                .filter(|s| s >> i & 1 == 0)
                .map(|s| {
                    let k = s.count_ones() as usize;
                    fact(k) * fact(n - k - 1) / fact(n) * (v[s | 1 << i] - v[s])
                })
                .sum()
        })
        .collect()
}

/// With every coalition and the Shapley kernel's weights, the constrained least-squares fit
/// is the Shapley values, to rounding (a game that is not additive, so the fit is not exact
/// by accident).
#[test]
fn kernel_shap_fit_over_every_coalition_is_the_shapley_values() {
    for n in [2usize, 3, 5, 8] {
        let v: Vec<f64> = (0..1usize << n)
            .map(|s| {
                let k = s.count_ones() as f64;
                (s as f64 * 0.37).sin() + k * k * 0.1 + if s & 3 == 3 { 0.5 } else { 0.0 }
            })
            .collect();
        let want = shapley_values(&v, n);
        let full = (1usize << n) - 1;
        let (masks, weights): (Vec<Vec<bool>>, Vec<f64>) = (1..full)
            .map(|c| {
                let mask: Vec<bool> = (0..n).map(|t| c >> t & 1 == 1).collect();
                (mask, kernel_shap::kernel_weight(c.count_ones() as usize, n))
            })
            .unzip();
        let y: Vec<f32> = (1..full).map(|c| v[c] as f32).collect();
        let got = kernel_shap::fit(&masks, &weights, &y, v[full] as f32, v[0] as f32).unwrap();
        let want: Vec<f32> = want.iter().map(|&w| w as f32).collect();
        assert_close(&got, &want, 1e-6, &format!("{n} players"));
    }
}

/// On a real prompt: KernelSHAP over every coalition is exact Shapley sampling, and from
/// sampled coalitions its scores still sum to F(x) − F(x′) exactly, whatever the batching.
#[test]
fn kernel_shap_is_exact_shapley_with_every_coalition_and_always_efficient() {
    let model = tiny("tiny-llama");
    let prompt = "hello you";
    let run = |name: &str, options: &[(&str, &str)], settings: &Settings| {
        let m = method(name, options);
        attribution::attribute(&model, prompt, m.as_ref(), settings).unwrap()
    };
    let exact = run(
        "shapley-sampling",
        &[("exact", "true"), PAD],
        &Settings::default(),
    );
    let every = run(
        "kernel-shap",
        &[("samples", "1000"), PAD],
        &Settings::default(),
    );
    assert_eq!(every.extra::<bool>("every_coalition"), Some(true));
    assert_close(&every.scores, &exact.scores, 1e-5, "every coalition");
    let sampled = run(
        "kernel-shap",
        &[("samples", "40"), PAD],
        &Settings::default(),
    );
    efficient(&sampled);
    let batched = run(
        "kernel-shap",
        &[("samples", "40"), PAD],
        &Settings {
            batch_size: Some(7),
            ..Settings::default()
        },
    );
    assert_close(&batched.scores, &sampled.scores, 1e-5, "batching");
    // Too few coalitions to determine the values: an error that says what to do.
    let m = method("kernel-shap", &[("samples", "3")]);
    let e = attribution::attribute(&model, PROMPT, m.as_ref(), &Settings::default()).unwrap_err();
    assert!(e.to_string().contains("or more"), "{e}");
}

/// LIME is seeded and batch-independent.
#[test]
fn lime_is_seeded_and_does_not_depend_on_batching() {
    let model = tiny("tiny-gpt2");
    let run = |seed: &str, batch: Option<usize>| {
        let m = method("lime", &[("seed", seed), ("samples", "30")]);
        let settings = Settings {
            batch_size: batch,
            ..Settings::default()
        };
        attribution::attribute(&model, PROMPT, m.as_ref(), &settings)
            .unwrap()
            .scores
    };
    let a = run("1", None);
    assert_eq!(a, run("1", None));
    assert_ne!(a, run("2", None));
    assert_close(&run("1", Some(4)), &a, 1e-5, "batching");
}

/// Given the coalitions Captum was given (`tools/reference/make_perturbation_fixtures.py`),
/// our fits agree with Captum's `KernelShap` (which approximates the efficiency constraint
/// with a weight of 1e6 where ours imposes it) and `Lime` (cosine kernel, scikit-learn ridge).
/// Measured: within 8.5e-7 (KernelSHAP) and 6.3e-7 (LIME) of the largest score.
#[test]
fn kernel_shap_and_lime_agree_with_captum_on_the_same_coalitions() {
    use gradlens::attribution::engine::coalitions;
    use gradlens::attribution::TargetSpec;
    let fx = fixture("perturbation");
    for case in fx["cases"].as_array().unwrap() {
        let name = case["model"].as_str().unwrap();
        let model = tiny(name);
        let prompt = case["prompt"].as_str().unwrap();
        assert_eq!(
            model.tokenize(prompt).unwrap(),
            ids(&case["token_ids"]),
            "{name}"
        );
        let target = case["target"].as_u64().unwrap();
        let settings = Settings {
            target: match name {
                "tiny-bert-cls" => TargetSpec::Class(target as usize),
                _ => TargetSpec::TokenId(target as u32),
            },
            ..Settings::default()
        };
        let p = Prepared::new(&model, prompt, &settings).unwrap();
        let (m, d) = (p.ids.len(), model.hidden_size());
        let x = p.x.to_vec().unwrap();
        let zero = vec![0.0f32; m * d];
        let masks = |key: &str| -> Vec<Vec<bool>> {
            case[key]["masks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|mk| ids(mk).iter().map(|&v| v == 1).collect())
                .collect()
        };
        // F at the coalitions, then at the full and the empty one.
        let scores = |masks: &[Vec<bool>]| {
            let n = masks.len();
            coalitions::scores(
                &p,
                &zero,
                n + 2,
                |c, t| if c < n { masks[c][t] } else { c == n },
            )
            .unwrap()
        };

        let shap_masks = masks("kernel_shap");
        let f = scores(&shap_masks);
        let n = shap_masks.len();
        let ones = vec![1.0; n];
        let shap = kernel_shap::fit(&shap_masks, &ones, &f[..n], f[n], f[n + 1]).unwrap();
        assert_close(
            &shap,
            &floats(&case["kernel_shap"]["captum"]),
            1e-5,
            &format!("{name} kernel-shap"),
        );

        let lime_masks = masks("lime");
        let f = scores(&lime_masks);
        let n = lime_masks.len();
        let w = lime::weights(&x, &zero, d, &lime_masks, 1.0);
        let (coef, _) = lime::fit(&lime_masks, &w, &f[..n], 1.0).unwrap();
        assert_close(
            &coef,
            &floats(&case["lime"]["captum"]),
            1e-5,
            &format!("{name} lime"),
        );
    }
}
