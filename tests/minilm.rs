//! The real MiniLM-L6 (fetched by scripts/fetch-models.sh) against transformers + Captum:
//! hidden states, and cosine-target integrated gradients (Gauss–Legendre, zero baseline, 50 steps).

mod common;
use common::*;
use gradlens::attribution::methods::IntegratedGradients;
use gradlens::attribution::{self, Settings, TargetSpec};

#[test]
fn minilm_hidden_states_match_transformers() {
    let Some(model) = minilm() else { return };
    let fx = fixture("minilm");
    let ids_ = model.tokenize(fx["prompt"].as_str().unwrap()).unwrap();
    assert_eq!(ids_, ids(&fx["token_ids"]));
    assert_close(
        &hidden_states(&model, &ids_),
        &floats(&fx["last_hidden"]),
        1e-4,
        "minilm hidden",
    );
}

#[test]
fn minilm_cosine_ig_matches_captum() {
    let Some(model) = minilm() else { return };
    for name in ["minilm", "minilm-2"] {
        let fx = fixture(name);
        let opts = Settings {
            target: TargetSpec::Compare(fx["compare"].as_str().unwrap().into()),
            ..Settings::default()
        };
        let fifty = IntegratedGradients {
            steps: 50,
            ..Default::default()
        };
        let prompt = fx["prompt"].as_str().unwrap();
        let ig = attribution::attribute(&model, prompt, &fifty, &opts).unwrap();
        assert_eq!(ig.token_ids, ids(&fx["token_ids"]));
        assert!((ig.target_score - fx["target_score"].as_f64().unwrap() as f32).abs() < 1e-5);
        assert_close(
            &ig.scores,
            &floats(&fx["ig_scores"]),
            1e-3,
            &format!("{name} IG scores"),
        );
        assert!(
            ig.convergence_delta.unwrap().abs() < 1e-3,
            "{name}: delta {:?}",
            ig.convergence_delta
        );
    }
}
