//! GGUF: dequantisation against the `gguf` package, the SmolLM2 file against transformers'
//! loading of it, conversion, and bad files.

mod common;
use common::*;
use gradlens::gguf::{dequantize, GgmlType};

fn base64(s: &str) -> Vec<u8> {
    let table = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            _ => 63,
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | table(c) << (18 - 6 * i));
        out.extend_from_slice(&v.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn every_quantisation_matches_the_gguf_package() {
    let fx = fixture("gguf-quants");
    let types = [
        ("F32", GgmlType::F32),
        ("F16", GgmlType::F16),
        ("BF16", GgmlType::BF16),
        ("Q8_0", GgmlType::Q8_0),
        ("Q4_0", GgmlType::Q4_0),
        ("Q4_1", GgmlType::Q4_1),
        ("Q4_K", GgmlType::Q4K),
        ("Q5_K", GgmlType::Q5K),
        ("Q6_K", GgmlType::Q6K),
    ];
    for (name, t) in types {
        let bytes = base64(fx[name]["bytes"].as_str().unwrap());
        let want = floats(&fx[name]["values"]);
        let got = dequantize(t, &bytes, want.len()).unwrap();
        assert_eq!(got, want, "{name}");
    }
}

use gradlens::attribution::{self, Method, Options, TargetSpec};

#[test]
fn smollm2_tokenises_like_transformers() {
    let Some(model) = smollm2() else { return };
    let fx = fixture("smollm2");
    for (text, want) in fx["tokenizer_cases"].as_object().unwrap() {
        assert_eq!(
            model.tokenizer.encode(text, true).unwrap(),
            ids(want),
            "{text:?}"
        );
    }
}

#[test]
fn smollm2_logits_match_transformers() {
    let Some(model) = smollm2() else { return };
    let fx = fixture("smollm2");
    let ids_ = model.tokenize(fx["prompt"].as_str().unwrap()).unwrap();
    assert_eq!(ids_, ids(&fx["token_ids"]));
    let logits = attribution::next_token_logits(&model, &model.embed(&ids_).unwrap()).unwrap();
    assert_close(&logits, &floats(&fx["last_logits"]), 1e-3, "smollm2 logits");
    assert_eq!(model.info.layers, 30);
    assert_eq!(model.info.key_value_heads, 3);
}

#[test]
fn smollm2_input_x_gradient_and_saliency_match_captum() {
    let Some(model) = smollm2() else { return };
    let fx = fixture("smollm2");
    let prompt = fx["prompt"].as_str().unwrap();
    let opts = Options::default();
    let ixg = attribution::attribute(&model, prompt, Method::InputXGradient, &opts).unwrap();
    assert_eq!(
        ixg.target.id,
        Some(fx["target"].as_u64().unwrap() as u32),
        "same top token as transformers"
    );
    assert_close(
        &ixg.scores,
        &floats(&fx["input_x_gradient"]),
        1e-2,
        "input x gradient",
    );
    let sal = attribution::attribute(&model, prompt, Method::Saliency, &opts).unwrap();
    assert_close(&sal.scores, &floats(&fx["saliency"]), 1e-2, "saliency");
}

#[test]
fn smollm2_continues_the_capital_of_france_with_paris() {
    let Some(model) = smollm2() else { return };
    let fx = fixture("smollm2");
    let ids_ = model.tokenize("The capital of France is").unwrap();
    let generated = gradlens::generation::greedy(&model, &ids_, 2, false).unwrap();
    assert_eq!(generated, ids(&fx["greedy"])[..2].to_vec());
    let text: String = generated
        .iter()
        .map(|&i| model.tokenizer.token_text(i))
        .collect();
    assert_eq!(text, " Paris.");
    let _ = TargetSpec::Auto;
}
