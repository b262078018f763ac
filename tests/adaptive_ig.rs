//! Adaptive integrated gradients and the zero-baseline discontinuity warning.

mod common;
use common::*;
use gradlens::attribution::methods::IntegratedGradients;
use gradlens::attribution::{self, Baseline, Settings, TargetSpec};

#[test]
fn adaptive_ig_meets_its_tolerance_on_a_smooth_model() {
    let model = tiny("tiny-bert");
    let target = TargetSpec::Compare("a small model".into());
    let opts = Settings {
        target,
        include_map: true,
        ..Settings::default()
    };
    let adaptive = IntegratedGradients {
        tolerance: Some(1e-4),
        ..Default::default()
    };
    let r = attribution::attribute(&model, "the quick brown fox jumps", &adaptive, &opts).unwrap();
    let gap = (r.target_score - r.baseline_score.unwrap()).abs();
    assert!(
        r.convergence_delta.unwrap().abs() <= 1e-4 * gap,
        "delta {:?} gap {gap}",
        r.convergence_delta
    );
    assert!(
        r.extra::<usize>("evaluations").unwrap() <= adaptive.max_steps && r.warnings.is_empty(),
        "{:?}",
        r.warnings
    );
    assert_eq!(
        r.extra::<String>("quadrature").as_deref(),
        Some("adaptive-simpson")
    );
    // The same integral as fixed-step IG with many steps.
    let fixed = attribution::attribute(
        &model,
        "the quick brown fox jumps",
        &IntegratedGradients {
            steps: 256,
            ..Default::default()
        },
        &opts,
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
    let short = IntegratedGradients {
        tolerance: Some(1e-9),
        max_steps: 40,
        ..Default::default()
    };
    let r = attribution::attribute(
        &model,
        "Language models predict the next",
        &short,
        &Settings::default(),
    )
    .unwrap();
    assert!(r.extra::<usize>("evaluations").unwrap() <= 40);
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
    let pad = IntegratedGradients {
        tolerance: Some(0.01),
        baseline: Baseline::Pad,
        ..Default::default()
    };
    let r = attribution::attribute(&model, prompt, &pad, &Settings::default()).unwrap();
    let gap = (r.target_score - r.baseline_score.unwrap()).abs();
    assert!(
        r.convergence_delta.unwrap().abs() <= 0.01 * gap,
        "delta {:?} of {gap}",
        r.convergence_delta
    );
    assert!(r.extra::<usize>("evaluations").unwrap() <= 600);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let zero = IntegratedGradients {
        steps: 16,
        ..Default::default()
    };
    let r = attribution::attribute(&model, prompt, &zero, &Settings::default()).unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("discontinuous at the baseline") && w.contains("--baseline pad")),
        "{:?}",
        r.warnings
    );
}
