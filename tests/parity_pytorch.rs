//! Tiny random models of every family against PyTorch/transformers/Captum fixtures made by
//! tools/reference/make_fixtures.py (BERT, GPT-2, Llama) and make_family_fixtures.py (Llama 3,
//! Mistral, Qwen2, Qwen3, Phi-3, Gemma 2 and 3, RoBERTa, XLM-R): tokenisation, outputs, gradients w.r.t. input embeddings (1e-4 of
//! the largest value) and integrated gradients (1e-3).

mod common;
use common::*;
use gradlens::attribution::methods::IntegratedGradients;
use gradlens::attribution::{self, Baseline, Prepared, ScoreKind, Settings, TargetSpec};

fn ig16() -> IntegratedGradients {
    IntegratedGradients {
        steps: 16,
        ..Default::default()
    }
}

fn grad_for(
    model: &gradlens::Model,
    prompt: &str,
    spec: TargetSpec,
    kind: ScoreKind,
) -> (f32, Vec<f32>) {
    let opts = Settings {
        target: spec,
        score: kind,
        ..Settings::default()
    };
    let p = Prepared::new(model, prompt, &opts).unwrap();
    let (f, g) = attribution::gradients(model, &p.target, &p.x_batch().unwrap()).unwrap();
    (f[0], g.to_vec().unwrap())
}

fn causal(name: &str) {
    causal_on(name, gradlens::Device::Cpu);
}

fn causal_on(name: &str, device: gradlens::Device) {
    let fx = fixture(name);
    let model = tiny_on(name, device);
    let name = &format!("{name} on {device}");
    let prompt = fx["prompt"].as_str().unwrap();
    assert_eq!(
        model.tokenize(prompt).unwrap(),
        ids(&fx["token_ids"]),
        "{name}: token ids"
    );
    let x = model.embed(&model.tokenize(prompt).unwrap()).unwrap();
    let logits = attribution::next_token_logits(&model, &x).unwrap();
    assert_close(
        &logits,
        &floats(&fx["last_logits"]),
        1e-4,
        &format!("{name} logits"),
    );
    let target = fx["target_id"].as_u64().unwrap() as u32;
    for (kind, key) in [
        (ScoreKind::Logit, "grad_logit"),
        (ScoreKind::LogProb, "grad_log_prob"),
        (ScoreKind::Prob, "grad_prob"),
    ] {
        let (_, g) = grad_for(&model, prompt, TargetSpec::TokenId(target), kind);
        assert_close(&g, &floats(&fx[key]), 1e-4, &format!("{name} {key}"));
    }
    // The default target is the model's own top token.
    let (_, g) = grad_for(&model, prompt, TargetSpec::Auto, ScoreKind::Logit);
    assert_close(
        &g,
        &floats(&fx["grad_logit"]),
        1e-4,
        &format!("{name} auto target"),
    );

    if on_emulator(device) {
        return;
    }
    let opts = with_map();
    let mut method = ig16();
    let ig = attribution::attribute(&model, prompt, &method, &opts).unwrap();
    assert_close(
        ig.map.as_ref().unwrap(),
        &floats(&fx["ig_zero_gl16"]),
        1e-3,
        &format!("{name} IG"),
    );
    let delta = fx["ig_zero_gl16_delta"].as_f64().unwrap() as f32;
    assert!(
        (ig.convergence_delta.unwrap() - delta).abs() < 1e-3 * (1.0 + delta.abs()),
        "{name} delta"
    );
    if fx.get("ig_pad_gl16").is_some() {
        method.baseline = Baseline::Pad;
        let ig = attribution::attribute(&model, prompt, &method, &opts).unwrap();
        assert_close(
            ig.map.as_ref().unwrap(),
            &floats(&fx["ig_pad_gl16"]),
            1e-3,
            &format!("{name} IG pad"),
        );
    }
}

#[test]
fn gpt2_matches_pytorch() {
    causal("tiny-gpt2");
}

#[test]
fn llama_matches_pytorch() {
    causal("tiny-llama");
}

/// Llama 3.x: llama3 rope scaling and an explicit head_dim (made by make_family_fixtures.py).
#[test]
fn llama3_matches_pytorch() {
    causal("tiny-llama3");
}

/// Mistral: a sliding window of 4 keys on every layer, over a prompt of 35 tokens.
#[test]
fn mistral_matches_pytorch() {
    causal("tiny-mistral");
}

/// Qwen2: q/k/v biases, and a sliding window of 3 keys on the second layer only.
#[test]
fn qwen2_matches_pytorch() {
    causal("tiny-qwen2");
}

/// Qwen3: per-head RMSNorm of queries and keys before RoPE, an explicit head_dim.
#[test]
fn qwen3_matches_pytorch() {
    causal("tiny-qwen3");
}

/// Phi-3: fused qkv_proj and gate_up_proj (cut by rows at load), a sliding window of 5.
#[test]
fn phi3_matches_pytorch() {
    causal("tiny-phi3");
}

/// Qwen3 with YaRN rope scaling (factor 4 over an original 16 positions) and its attention
/// factor.
#[test]
fn qwen3_yarn_matches_pytorch() {
    causal("tiny-qwen3-yarn");
}

/// Phi-3 with longrope: the fixture prompt (35 tokens) reaches past the original 16
/// positions, so the long factors and the attention factor apply; its first 10 tokens take the
/// short factors.
#[test]
fn phi3_longrope_matches_pytorch() {
    causal("tiny-phi3-longrope");
    let fx = fixture("tiny-phi3-longrope");
    let model = tiny("tiny-phi3-longrope");
    let n = fx["short_prefix"].as_u64().unwrap() as usize;
    let prefix = &ids(&fx["token_ids"])[..n];
    let logits = attribution::next_token_logits(&model, &model.embed(prefix).unwrap()).unwrap();
    assert_close(
        &logits,
        &floats(&fx["short_logits"]),
        1e-4,
        "phi3 short factors",
    );
}

/// Phi-4-mini's partial rotary embedding: the first 8 of each head's 16 dimensions rotate.
#[test]
fn phi3_partial_rotary_matches_pytorch() {
    causal("tiny-phi3-partial");
}

/// Gemma 2: soft-capped attention scores and final logits (caps of 3 and 8, which the tiny
/// model reaches), a local layer and a global one, (1 + w) norms, scaled embeddings.
#[test]
fn gemma2_matches_pytorch() {
    causal("tiny-gemma2");
}

/// Gemma 3: (1 + w) norms around attention and MLP, GeGLU, q/k norms, a local layer with its
/// own RoPE base and window, a global one with linear rope scaling, scaled embeddings.
#[test]
fn gemma3_matches_pytorch() {
    causal("tiny-gemma3");
}

#[test]
fn bert_cosine_target_matches_pytorch() {
    cosine_target("tiny-bert");
}

/// XLM-R: BERT with positions from pad_token_id + 1 (made by make_family_fixtures.py).
#[test]
fn xlm_roberta_cosine_target_matches_pytorch() {
    cosine_target("tiny-xlm-roberta");
}

fn cosine_target(name: &str) {
    cosine_target_on(name, gradlens::Device::Cpu);
}

fn cosine_target_on(name: &str, device: gradlens::Device) {
    let fx = fixture(name);
    let model = tiny_on(name, device);
    let name = &format!("{name} on {device}");
    let prompt = fx["prompt"].as_str().unwrap();
    let compare = fx["compare"].as_str().unwrap().to_string();
    assert_eq!(model.tokenize(prompt).unwrap(), ids(&fx["token_ids"]));
    let ids_ = model.tokenize(prompt).unwrap();
    assert_close(
        &hidden_states(&model, &ids_),
        &floats(&fx["last_hidden"]),
        1e-4,
        &format!("{name} hidden"),
    );

    let (f, g) = grad_for(
        &model,
        prompt,
        TargetSpec::Compare(compare.clone()),
        ScoreKind::Logit,
    );
    assert!((f - fx["target_score"].as_f64().unwrap() as f32).abs() < 1e-5);
    assert_close(
        &g,
        &floats(&fx["grad_cosine"]),
        1e-4,
        &format!("{name} cosine gradient"),
    );

    if on_emulator(device) {
        return;
    }
    let opts = Settings {
        target: TargetSpec::Compare(compare),
        ..with_map()
    };
    let ig = attribution::attribute(&model, prompt, &ig16(), &opts).unwrap();
    assert_close(
        &ig.scores,
        &floats(&fx["ig_scores"]),
        1e-3,
        &format!("{name} IG scores"),
    );
    assert_close(
        ig.map.as_ref().unwrap(),
        &floats(&fx["ig_map"]),
        1e-3,
        &format!("{name} IG map"),
    );
}

#[test]
fn bert_classifier_head_matches_pytorch() {
    classifier_head("tiny-bert-cls");
}

/// RoBERTa's head (dense, tanh, out_proj on <s>) and its offset positions.
#[test]
fn roberta_classifier_head_matches_pytorch() {
    classifier_head("tiny-roberta");
}

fn classifier_head(name: &str) {
    classifier_head_on(name, gradlens::Device::Cpu);
}

fn classifier_head_on(name: &str, device: gradlens::Device) {
    let fx = fixture(name);
    let model = tiny_on(name, device);
    let name = &format!("{name} on {device}");
    let prompt = fx["prompt"].as_str().unwrap();
    assert_eq!(
        model.tokenize(prompt).unwrap(),
        ids(&fx["token_ids"]),
        "{name}: token ids"
    );
    let (_, g) = grad_for(&model, prompt, TargetSpec::Class(1), ScoreKind::Logit);
    assert_close(
        &g,
        &floats(&fx["grad_class1"]),
        1e-4,
        &format!("{name} classifier gradient"),
    );
    if on_emulator(device) {
        return;
    }
    let opts = Settings {
        target: TargetSpec::Class(1),
        ..with_map()
    };
    let ig = attribution::attribute(&model, prompt, &ig16(), &opts).unwrap();
    assert_close(
        ig.map.as_ref().unwrap(),
        &floats(&fx["ig_class1_zero_gl16"]),
        1e-3,
        &format!("{name} classifier IG"),
    );
}

/// Whether `device` is CUDA on its host emulator, which runs a kernel thousands of times slower
/// than a GPU: there the parity checks stop after the outputs and gradients, as IG's batched
/// passes are the same kernels (and run on the emulator in `tests/gpu_end_to_end.rs`).
fn on_emulator(device: gradlens::Device) -> bool {
    #[cfg(feature = "cuda")]
    if device == gradlens::Device::Cuda {
        return cuda_backend().is_some_and(|b| b.is_emulated());
    }
    let _ = device;
    false
}

/// Every family's checks above on each GPU backend this build and machine have (lavapipe and
/// the CUDA emulator in CI): the same fixtures, the same tolerances.
#[test]
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn every_family_matches_pytorch_on_each_gpu() {
    for device in gpu_devices() {
        for name in [
            "tiny-gpt2",
            "tiny-llama",
            "tiny-llama3",
            "tiny-mistral",
            "tiny-qwen2",
            "tiny-qwen3",
            "tiny-qwen3-yarn",
            "tiny-phi3",
            "tiny-phi3-longrope",
            "tiny-phi3-partial",
            "tiny-gemma2",
            "tiny-gemma3",
        ] {
            causal_on(name, device);
        }
        cosine_target_on("tiny-bert", device);
        cosine_target_on("tiny-xlm-roberta", device);
        classifier_head_on("tiny-bert-cls", device);
        classifier_head_on("tiny-roberta", device);
    }
}
