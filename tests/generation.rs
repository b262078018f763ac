//! Generation: the key/value cache, per-step attribution, and the views.

mod common;
use common::*;
use gradlens::attribution::methods::{IntegratedGradients, Saliency};
use gradlens::attribution::{self, Settings, TargetSpec};
use gradlens::autodiff::Tape;
use gradlens::generation;

const PROMPT: &str = "Language models predict the next";

/// Greedy decoding by recomputing the whole prefix each step (no cache).
fn greedy_uncached(model: &gradlens::Model, ids: &[u32], n: usize) -> Vec<u32> {
    let mut all = ids.to_vec();
    for _ in 0..n {
        let logits = attribution::next_token_logits(model, &model.embed(&all).unwrap()).unwrap();
        let next = logits
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
            .0;
        all.push(next as u32);
    }
    all[ids.len()..].to_vec()
}

#[test]
fn the_kv_cache_gives_the_uncached_logits() {
    // Mistral and Qwen2 have sliding windows shorter than the prompt, which the cached keys
    // must respect (the mask hides the cached keys that fell out of a query's window).
    for name in [
        "tiny-llama",
        "tiny-gpt2",
        "tiny-mistral",
        "tiny-qwen2",
        "tiny-qwen3",
        "tiny-phi3",
        "tiny-gemma2",
        "tiny-gemma3",
    ] {
        let model = tiny(name);
        let ids = model.tokenize(PROMPT).unwrap();
        assert_eq!(
            generation::greedy(&model, &ids, 6, false).unwrap(),
            greedy_uncached(&model, &ids, 6),
            "{name}"
        );
        // Prefill a few tokens, then one at a time: every step's logits match a full pass.
        let mut cache = model.new_cache();
        let out = model.output_embeddings().unwrap();
        for split in [3, 4, 5, ids.len()] {
            let start = if split == 3 { 0 } else { cache[0].len() };
            let chunk = &ids[start..split];
            let mut tape = Tape::new();
            let x = tape.constant(
                model
                    .embed(chunk)
                    .unwrap()
                    .reshape([1, chunk.len(), model.hidden_size()])
                    .unwrap(),
            );
            let h = model.forward_cached(&mut tape, x, &mut cache).unwrap();
            let last = tape.select_position(h, chunk.len() - 1).unwrap();
            let logits = tape.linear(last, out, None).unwrap();
            let full = attribution::next_token_logits(&model, &model.embed(&ids[..split]).unwrap())
                .unwrap();
            // Gemma 2 caps its logits after the projection.
            let cap = |l: f32| model.logit_softcap().map_or(l, |c| c * (l / c).tanh());
            let cached: Vec<f32> = tape
                .value(logits)
                .to_vec()
                .unwrap()
                .into_iter()
                .map(cap)
                .collect();
            assert_close(&cached, &full, 1e-5, &format!("{name} cached step {split}"));
        }
    }
}

#[test]
fn each_step_is_the_attribution_of_its_prefix() {
    let model = tiny("tiny-llama");
    let ig = IntegratedGradients {
        steps: 8,
        ..Default::default()
    };
    let r = generation::attribute_generation(&model, PROMPT, &ig, &Settings::default(), 3, false)
        .unwrap();
    let ids = model.tokenize(PROMPT).unwrap();
    let generated = r.generated_ids.clone().unwrap();
    let steps = r.generation.as_ref().unwrap();
    assert_eq!(steps.len(), 3);
    for (t, step) in steps.iter().enumerate() {
        assert_eq!(
            step.scores.len(),
            ids.len() + t,
            "step {t} scores the prompt and earlier generated tokens"
        );
        assert_eq!(step.target.id, Some(generated[t]));
        let mut prefix = ids.clone();
        prefix.extend_from_slice(&generated[..t]);
        let direct = attribution::attribute_tokens(
            &model,
            &prefix,
            &ig,
            &Settings {
                target: TargetSpec::TokenId(generated[t]),
                ..Settings::default()
            },
        )
        .unwrap();
        assert_close(&step.scores, &direct.scores, 1e-6, &format!("step {t}"));
        assert!(step.convergence_delta.is_some() && step.baseline_score.is_some());
    }
    // The top level is the first step.
    assert_eq!(r.scores, steps[0].scores);
    assert_eq!(r.target.id, Some(generated[0]));
}

#[test]
fn generation_stops_at_eos_and_at_the_context() {
    let model = tiny("tiny-gpt2");
    let ids = model.tokenize(PROMPT).unwrap();
    let all = generation::greedy(&model, &ids, 60, false).unwrap();
    assert_eq!(
        ids.len() + all.len(),
        model.info.max_positions,
        "stops at the context size"
    );
    if let Some(eos) = model.info.eos_token_id {
        let stopped = generation::greedy(&model, &ids, 60, true).unwrap();
        match all.iter().position(|&t| t == eos) {
            Some(i) => assert_eq!(stopped, all[..=i].to_vec()),
            None => assert_eq!(stopped, all),
        }
    }
    assert!(generation::greedy(&tiny("tiny-bert"), &[1, 2], 2, false).is_err());
}

#[test]
fn generation_refuses_an_explicit_target() {
    let model = tiny("tiny-llama");
    let opts = Settings {
        target: TargetSpec::TokenId(5),
        ..Settings::default()
    };
    let e =
        generation::attribute_generation(&model, PROMPT, &Saliency, &opts, 2, false).unwrap_err();
    assert!(
        e.to_string().contains("targets are the generated tokens"),
        "{e}"
    );
}

fn gradlens(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn generation_json_and_views() {
    let dir = std::env::temp_dir().join(format!("gradlens-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = root().join("tests/fixtures/models/tiny-llama");
    let m = model.to_str().unwrap();
    let out = gradlens(&[
        "attribute",
        "--model",
        m,
        "--prompt",
        PROMPT,
        "--method",
        "attnlrp",
        "--generate",
        "3",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = v["generation"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (t, s) in steps.iter().enumerate() {
        for key in [
            "target",
            "target_score",
            "baseline_score",
            "convergence_delta",
            "scores",
        ] {
            assert!(s.get(key).is_some(), "step {t} lacks {key}");
        }
        assert_eq!(
            s["scores"].as_array().unwrap().len(),
            v["tokens"].as_array().unwrap().len() + t
        );
    }
    assert_eq!(v["generated_ids"].as_array().unwrap().len(), 3);

    let text = gradlens(&[
        "attribute",
        "--model",
        m,
        "--prompt",
        PROMPT,
        "--generate",
        "2",
        "--method",
        "saliency",
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("generated:") && !text.contains('\x1b'),
        "plain text when not a terminal"
    );

    let html = dir.join("gen.html");
    let out = gradlens(&[
        "attribute",
        "--model",
        m,
        "--prompt",
        PROMPT,
        "--generate",
        "3",
        "--method",
        "saliency",
        "--format",
        "html",
        "--output",
        html.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(
        page.matches("<details><summary>→").count(),
        3,
        "one fold per generated token"
    );
    assert!(page.contains("data-tip="), "values on hover");
    assert!(
        !page.contains("http") && !page.contains("<script") && !page.contains("src="),
        "self-contained"
    );
    renders_in_chromium(&html);
}

/// Headless Chromium loads the page and logs no console message.
fn renders_in_chromium(page: &std::path::Path) {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "chromium missing under CI=true"
        );
        eprintln!("SKIP: chromium not installed");
        return;
    };
    let profile = page.with_extension("profile");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        dom.contains("<details>"),
        "chromium did not render the page: {log}"
    );
    assert!(!log.contains("CONSOLE"), "console messages: {log}");
}
