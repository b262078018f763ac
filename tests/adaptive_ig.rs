//! Adaptive integrated gradients and the zero-baseline discontinuity warning.

mod common;
use common::*;
use gradlens::attribution::{self, Baseline, Method, Options, TargetSpec};

#[test]
fn adaptive_ig_meets_its_tolerance_on_a_smooth_model() {
    let model = tiny("tiny-bert");
    let target = TargetSpec::Compare("a small model".into());
    let opts = Options {
        target: target.clone(),
        tolerance: Some(1e-4),
        include_map: true,
        ..Options::default()
    };
    let r = attribution::attribute(
        &model,
        "the quick brown fox jumps",
        Method::IntegratedGradients,
        &opts,
    )
    .unwrap();
    let gap = (r.target_score - r.baseline_score.unwrap()).abs();
    assert!(
        r.convergence_delta.unwrap().abs() <= 1e-4 * gap,
        "delta {:?} gap {gap}",
        r.convergence_delta
    );
    assert!(
        r.evaluations.unwrap() <= opts.max_steps && r.warnings.is_empty(),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.quadrature.as_deref(), Some("adaptive-simpson"));
    // The same integral as fixed-step IG with many steps.
    let fixed = attribution::attribute(
        &model,
        "the quick brown fox jumps",
        Method::IntegratedGradients,
        &Options {
            target,
            steps: 256,
            include_map: true,
            ..Options::default()
        },
    )
    .unwrap();
    assert_close(
        &r.scores,
        &fixed.scores,
        1e-2,
        "adaptive vs 256 fixed steps",
    );
}

#[test]
fn adaptive_ig_respects_its_budget_and_says_when_it_stops_short() {
    let model = tiny("tiny-llama");
    let opts = Options {
        tolerance: Some(1e-9),
        max_steps: 40,
        ..Options::default()
    };
    let r = attribution::attribute(
        &model,
        "Language models predict the next",
        Method::IntegratedGradients,
        &opts,
    )
    .unwrap();
    assert!(r.evaluations.unwrap() <= 40);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("did not reach the tolerance")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn smollm2_adaptive_ig_meets_one_percent_with_the_pad_baseline_and_warns_about_zero() {
    let Some(model) = smollm2() else { return };
    let prompt = "The capital of France is";
    let pad = Options {
        tolerance: Some(0.01),
        baseline: Baseline::Pad,
        ..Options::default()
    };
    let r = attribution::attribute(&model, prompt, Method::IntegratedGradients, &pad).unwrap();
    let gap = (r.target_score - r.baseline_score.unwrap()).abs();
    assert!(
        r.convergence_delta.unwrap().abs() <= 0.01 * gap,
        "delta {:?} of {gap}",
        r.convergence_delta
    );
    assert!(r.evaluations.unwrap() <= 600);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let zero = Options {
        steps: 16,
        ..Options::default()
    };
    let r = attribution::attribute(&model, prompt, Method::IntegratedGradients, &zero).unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("discontinuous at the baseline") && w.contains("--baseline pad")),
        "{:?}",
        r.warnings
    );
}
