//! The `gradlens` binary: output formats, and one clear error line (no panic, non-zero exit,
//! no output file) for each kind of bad input.

mod common;
use common::root;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tiny_path(name: &str) -> PathBuf {
    root().join("tests/fixtures/models").join(name)
}

/// A fresh folder per call: tests run in parallel and must not share one.
fn scratch(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("gradlens-cli-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_model(name: &str, to: &Path) {
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(tiny_path(name).join(f), to.join(f)).unwrap();
    }
}

fn run(args: &[&str]) -> (bool, String, String) {
    // The CUDA emulator (CI without a GPU) is for the GPU tests: here cuda is the real driver.
    let out = Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .env_remove("GRADLENS_CUDA_EMULATOR")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Fails with one `error:` line containing `needle`, and leaves no output file behind.
fn fails_with(model: &Path, extra: &[&str], needle: &str) {
    let dir = scratch("out");
    let out = dir.join("result.json");
    let mut args = vec![
        "attribute",
        "--model",
        model.to_str().unwrap(),
        "--format",
        "json",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--prompt") {
        args.extend_from_slice(&["--prompt", "The capital of France is"]);
    }
    let (ok, _, err) = run(&args);
    assert!(!ok, "expected failure for {extra:?}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "stderr {err:?} lacks {needle:?}"
    );
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "output left behind for {extra:?}"
    );
}

#[test]
fn json_output_has_the_documented_fields() {
    let model = tiny_path("tiny-llama");
    let (ok, out, err) = run(&[
        "attribute",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "Language models predict the next",
        "--method",
        "integrated-gradients",
        "--steps",
        "8",
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let expected = [
        "model",
        "architecture",
        "method",
        "device",
        "tokens",
        "token_ids",
        "target",
        "target_score",
        "baseline_score",
        "convergence_delta",
        "scores",
        "elapsed_ms",
        "extras",
        "warnings",
    ];
    // Present, and in the documented order.
    let positions: Vec<usize> = expected
        .iter()
        .map(|k| {
            out.find(&format!("\n  \"{k}\":"))
                .unwrap_or_else(|| panic!("no field {k}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "fields out of order"
    );
    assert_eq!(v["architecture"], "llama");
    // What only this method reports is under `extras`.
    assert_eq!(v["extras"]["steps"], 8);
    assert_eq!(v["extras"]["quadrature"], "gauss-legendre");
    assert_eq!(v["target"]["kind"], "logit");
    assert!(v["target"]["id"].is_u64() && v["target"]["token"].is_string());
    assert_eq!(
        v["scores"].as_array().unwrap().len(),
        v["tokens"].as_array().unwrap().len()
    );
}

#[test]
fn every_method_and_format_runs_on_every_architecture() {
    let qwen3_gguf = common::gguf_writer::tiny_gguf("tiny-qwen3", "qwen3", "cli-qwen3", |_, _| {});
    let gemma3_gguf =
        common::gguf_writer::tiny_gguf("tiny-gemma3", "gemma3", "cli-gemma3", |_, _| {});
    let cases: Vec<(&str, std::path::PathBuf, &[&str])> = vec![
        (
            "tiny-bert",
            tiny_path("tiny-bert"),
            &["--compare-text", "a small model"],
        ),
        (
            "tiny-bert-cls",
            tiny_path("tiny-bert-cls"),
            &["--target-class", "2"],
        ),
        (
            "tiny-gpt2",
            tiny_path("tiny-gpt2"),
            &["--target-kind", "log-prob"],
        ),
        (
            "tiny-llama",
            tiny_path("tiny-llama"),
            &["--baseline", "pad"],
        ),
        ("tiny-llama3", tiny_path("tiny-llama3"), &[]),
        (
            "tiny-mistral",
            tiny_path("tiny-mistral"),
            &["--target-kind", "prob"],
        ),
        (
            "tiny-qwen2",
            tiny_path("tiny-qwen2"),
            &["--baseline", "pad"],
        ),
        ("tiny-qwen3", tiny_path("tiny-qwen3"), &[]),
        ("tiny-qwen3.gguf", qwen3_gguf, &[]),
        (
            "tiny-gemma3",
            tiny_path("tiny-gemma3"),
            &["--baseline", "pad"],
        ),
        ("tiny-gemma3.gguf", gemma3_gguf, &[]),
        (
            "tiny-gemma2",
            tiny_path("tiny-gemma2"),
            &["--target-kind", "log-prob"],
        ),
        ("tiny-phi3", tiny_path("tiny-phi3"), &["--baseline", "pad"]),
        ("tiny-phi3-partial", tiny_path("tiny-phi3-partial"), &[]),
        (
            "tiny-roberta",
            tiny_path("tiny-roberta"),
            &["--target-class", "1"],
        ),
        (
            "tiny-xlm-roberta",
            tiny_path("tiny-xlm-roberta"),
            &["--compare-text", "a small model"],
        ),
    ];
    let dir = scratch("formats");
    let methods: Vec<&str> = gradlens::attribution::methods::REGISTRY
        .iter()
        .map(|m| m.name)
        .collect();
    for (name, model, extra) in cases {
        for method in methods.iter().copied() {
            for format in ["text", "json", "html"] {
                let out = dir.join(format!("{name}-{method}.{format}"));
                let mut args = vec![
                    "attribute",
                    "--model",
                    model.to_str().unwrap(),
                    "--prompt",
                    "the quick brown fox",
                    "--method",
                    method,
                    "--steps",
                    "4",
                    "--format",
                    format,
                    "--output",
                    out.to_str().unwrap(),
                ];
                args.extend_from_slice(extra);
                let (ok, _, err) = run(&args);
                assert!(ok, "{name} {method} {format}: {err}");
                let text = std::fs::read_to_string(&out).unwrap();
                match format {
                    "json" => assert_eq!(
                        serde_json::from_str::<serde_json::Value>(&text).unwrap()["method"],
                        method
                    ),
                    "html" => assert!(
                        text.starts_with("<!DOCTYPE html>") && text.contains("class=\"tok\"")
                    ),
                    _ => assert!(
                        text.contains(method) && !text.contains('\x1b'),
                        "plain text when not a terminal"
                    ),
                }
            }
        }
    }
}

#[test]
fn help_lists_every_method() {
    let (ok, out, _) = run(&["attribute", "--help"]);
    assert!(ok);
    for m in gradlens::attribution::methods::REGISTRY {
        assert!(
            out.contains(&format!("\n  {} ", m.name)),
            "--help does not list {}",
            m.name
        );
    }
}

#[test]
fn unknown_base_method() {
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--method", "smoothgrad", "--base", "magic"],
        "unknown method 'magic'",
    );
}

#[test]
fn unsmoothable_base_method() {
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--method", "vargrad", "--base", "deeplift"],
        "cannot be smoothed",
    );
}

#[test]
fn baselines_file_of_the_wrong_shape() {
    let dir = scratch("baselines");
    let f = dir.join("b.json");
    std::fs::write(&f, "[[[1.0, 2.0]]]").unwrap();
    fails_with(
        &tiny_path("tiny-gpt2"),
        &[
            "--method",
            "gradient-shap",
            "--baselines",
            f.to_str().unwrap(),
        ],
        "is not a [tokens][32] matrix",
    );
}

#[test]
fn unknown_baseline_in_a_set() {
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--method", "deeplift-shap", "--baselines", "zero,uniform"],
        "unknown baseline 'uniform'",
    );
}

#[test]
fn info_reports_sizes() {
    let (ok, out, _) = run(&["info", "--model", tiny_path("tiny-llama").to_str().unwrap()]);
    assert!(ok);
    assert!(
        out.contains("llama") && out.contains("4 (2 key/value)") && out.contains("parameters:")
    );
}

#[test]
fn missing_path() {
    fails_with(Path::new("/nonexistent/model"), &[], "does not exist");
}

#[test]
fn folder_without_config() {
    let dir = scratch("noconfig");
    fails_with(&dir, &[], "no config.json");
}

#[test]
fn truncated_weights() {
    let dir = scratch("truncated");
    copy_model("tiny-gpt2", &dir);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    fails_with(&dir, &[], "corrupt safetensors file");
}

#[test]
fn garbage_weights() {
    let dir = scratch("garbage");
    copy_model("tiny-gpt2", &dir);
    std::fs::write(
        dir.join("model.safetensors"),
        b"this is not a safetensors file at all",
    )
    .unwrap();
    fails_with(&dir, &[], "corrupt safetensors file");
}

#[test]
fn missing_tensor_is_named() {
    let dir = scratch("missing-tensor");
    copy_model("tiny-llama", &dir);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "model.norm.weight")
        .collect();
    safetensors::serialize_to_file(kept, None, &dir.join("model.safetensors")).unwrap();
    fails_with(&dir, &[], "missing tensor 'model.norm.weight'");
}

#[test]
fn unsupported_architecture_is_named() {
    let dir = scratch("arch");
    copy_model("tiny-llama", &dir);
    std::fs::write(dir.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    fails_with(
        &dir,
        &[],
        "unsupported architecture 'mamba' (supported: bert, roberta, xlm-roberta, gpt2, llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3)",
    );
}

/// What a family's config gets wrong is named: a Gemma 2 soft-cap, a layer list of the wrong
/// length, a rope scaling not computed, a window of 0.
#[test]
fn family_config_errors_are_named() {
    use serde_json::json;
    let cases: [(&str, &str, serde_json::Value, &str); 4] = [
        (
            "tiny-gemma2",
            "final_logit_softcapping",
            json!(-30.0),
            "'final_logit_softcapping' is -30: it must be a finite number > 0",
        ),
        (
            "tiny-qwen2",
            "layer_types",
            json!(["full_attention"]),
            "'layer_types' lists 1 layers of 2",
        ),
        (
            "tiny-llama3",
            "rope_parameters",
            json!({"rope_type": "dynamic", "rope_theta": 500.0, "factor": 4.0}),
            "unsupported rope scaling 'dynamic' (supported: default, linear, llama3, longrope, yarn)",
        ),
        (
            "tiny-mistral",
            "sliding_window",
            json!(0),
            "'sliding_window' is 0, not a whole number >= 1",
        ),
    ];
    for (model, key, value, needle) in cases {
        let dir = scratch(model);
        copy_model(model, &dir);
        let path = dir.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg[key] = value;
        std::fs::write(&path, cfg.to_string()).unwrap();
        fails_with(&dir, &[], needle);
    }
}

#[test]
fn truncated_gguf_is_refused_clearly() {
    let dir = scratch("gguf");
    let f = dir.join("model.gguf");
    std::fs::write(&f, b"GGUF").unwrap();
    fails_with(&f, &[], "corrupt GGUF file");
}

#[test]
fn convert_refuses_bad_input_and_leaves_nothing() {
    // A GGUF that claims a billion layers is refused, not converted into a folder that
    // carries the claim on.
    {
        let dir = scratch("convert-claims");
        let src = root().join("fuzz/seeds/gguf/tiny-llama.gguf");
        let mut bytes = std::fs::read(src).unwrap();
        let key = b"llama.block_count";
        let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
        bytes[at..at + 4].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        let gguf = dir.join("claims.gguf");
        std::fs::write(&gguf, bytes).unwrap();
        let out = dir.join("out");
        let (ok, _, err) = run(&["convert", gguf.to_str().unwrap(), out.to_str().unwrap()]);
        assert!(
            !ok && err.contains("'num_hidden_layers' is 1000000000"),
            "{err}"
        );
        assert!(!out.exists());
    }
    let dir = scratch("convert");
    let out = dir.join("out");
    let (ok, _, err) = run(&["convert", "/nonexistent.gguf", out.to_str().unwrap()]);
    assert!(
        !ok && err.starts_with("error: ")
            && err.contains("/nonexistent.gguf")
            && !err.contains("panicked"),
        "{err}"
    );
    let not_gguf = dir.join("x.gguf");
    std::fs::write(&not_gguf, b"not a gguf").unwrap();
    let (ok, _, err) = run(&["convert", not_gguf.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(!ok && err.contains("not a GGUF file"), "{err}");
    let (ok, _, err) = run(&[
        "convert",
        not_gguf.to_str().unwrap(),
        out.to_str().unwrap(),
        "--dtype",
        "f8",
    ]);
    assert!(!ok && err.contains("unknown dtype 'f8'"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("x.gguf")],
        "nothing but the input is left"
    );
}

#[test]
fn empty_prompt() {
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--prompt", "  "],
        "prompt is empty",
    );
}

#[test]
fn prompt_longer_than_the_context() {
    let long = "the capital of France is Paris. ".repeat(20);
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--prompt", &long],
        "more than the model's 40 positions",
    );
    // A long compare text is named as such, not as the prompt.
    fails_with(
        &tiny_path("tiny-bert"),
        &["--compare-text", &long],
        "the compare text is",
    );
}

#[test]
fn unknown_method() {
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--method", "magic"],
        "unknown method 'magic'",
    );
}

#[test]
fn multi_token_target_says_how_it_splits() {
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--target", " Parisian"],
        "must be exactly one token",
    );
}

#[test]
fn encoder_needs_a_target() {
    fails_with(&tiny_path("tiny-bert"), &[], "--compare-text");
}

#[test]
fn pad_baseline_without_pad_token() {
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--baseline", "pad"],
        "no pad token",
    );
}

#[test]
fn unavailable_device() {
    #[cfg(feature = "cuda")]
    if gradlens::backend::cuda::driver_present() {
        eprintln!("SKIP: this machine has a CUDA device");
        return;
    }
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--device", "cuda"],
        "device unavailable",
    );
}

#[test]
fn repeat_reports_every_run_and_their_median() {
    let model = tiny_path("tiny-gpt2");
    let (ok, out, err) = run(&[
        "attribute",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "The capital",
        "--method",
        "saliency",
        "--format",
        "json",
        "--repeat",
        "3",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut runs: Vec<f64> = v["repeat_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    assert_eq!(runs.len(), 3);
    runs.sort_by(f64::total_cmp);
    assert_eq!(v["elapsed_ms"].as_f64().unwrap(), runs[1]);
    let (ok, _, err) = run(&[
        "attribute",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "x",
        "--repeat",
        "0",
    ]);
    assert!(!ok && err.contains("--repeat must be at least 1"), "{err}");
}

#[test]
fn tolerance_must_be_positive() {
    fails_with(
        &tiny_path("tiny-gpt2"),
        &["--tolerance", "0"],
        "--tolerance must be a positive number",
    );
}

#[test]
fn batch_size_is_a_number_or_auto() {
    let model = tiny_path("tiny-gpt2");
    fails_with(
        &model,
        &["--batch-size", "lots"],
        "--batch-size must be a number or auto",
    );
    fails_with(
        &model,
        &["--batch-size", "0"],
        "--batch-size must be at least 1",
    );
    // auto (the default) and a number give the same attribution.
    let scores = |size: &str| {
        let (ok, out, err) = run(&[
            "attribute",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "The capital of France is",
            "--method",
            "integrated-gradients",
            "--steps",
            "7",
            "--batch-size",
            size,
            "--format",
            "json",
        ]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["scores"].clone()
    };
    let (auto, three) = (scores("auto"), scores("3"));
    for (a, b) in auto
        .as_array()
        .unwrap()
        .iter()
        .zip(three.as_array().unwrap())
    {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
    }
}

#[test]
fn evaluate_compares_methods_in_every_format() {
    let dir = scratch("evaluate");
    for (name, extra) in [
        ("tiny-llama", &[][..]),
        ("tiny-gpt2", &[][..]),
        ("tiny-bert-cls", &["--target-class", "1"][..]),
    ] {
        for format in ["text", "json", "html"] {
            let out = dir.join(format!("{name}.{format}"));
            let model = tiny_path(name);
            let mut args = vec![
                "evaluate",
                "--model",
                model.to_str().unwrap(),
                "--prompt",
                "the quick brown fox jumps",
                "--methods",
                "saliency,integrated-gradients,occlusion,attention-rollout",
                "--steps",
                "4",
                "--format",
                format,
                "--output",
                out.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            let (ok, _, err) = run(&args);
            assert!(ok, "{name} {format}: {err}");
            let text = std::fs::read_to_string(&out).unwrap();
            match format {
                "json" => {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let methods = v["methods"].as_array().unwrap();
                    assert_eq!(methods.len(), 4);
                    for m in methods {
                        assert_eq!(m["deletion"].as_array().unwrap().len(), 11);
                        assert!(m["aopc"].is_number() && m["comprehensiveness"].is_number());
                    }
                    // The agreement matrices: every pair, 1 on the diagonal, symmetric.
                    let g = &v["agreement"];
                    assert_eq!(g["methods"].as_array().unwrap().len(), 4);
                    for (i, row) in g["spearman"].as_array().unwrap().iter().enumerate() {
                        assert_eq!(row[i], 1.0, "{name}: {g}");
                        assert_eq!(row[(i + 1) % 4], g["spearman"][(i + 1) % 4][i]);
                    }
                    assert_eq!(g["top_k"][2][2], 1.0);
                }
                "html" => {
                    assert!(
                        text.contains("<svg")
                            && text.contains("<polyline")
                            && text.contains("Kendall")
                    );
                    // The methods' heatmaps side by side, each token's tooltip ranking it
                    // under all four.
                    assert_eq!(text.matches("class=\"panel\"").count(), 4, "{name}");
                    let tip = text.split("data-tip=\"").nth(1).unwrap();
                    let tip = &tip[..tip.find('"').unwrap()];
                    assert_eq!(tip.matches("(rank ").count(), 4, "{tip}");
                }
                _ => assert!(
                    text.contains("occlusion")
                        && text.contains("AOPC")
                        && text.contains("Spearman")
                ),
            }
        }
    }
}

#[test]
fn evaluate_refuses_an_unknown_method() {
    let model = tiny_path("tiny-gpt2");
    let (ok, out, err) = run(&[
        "evaluate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "hi there",
        "--methods",
        "saliency,telepathy",
    ]);
    assert!(!ok && out.is_empty());
    assert!(err.contains("unknown method 'telepathy'"), "{err}");
}

/// Option values that would give NaN, zeros or an exhausted process are refused at once
/// (negative numbers are read as values, not flags).
#[test]
fn out_of_range_option_values_are_refused() {
    let m = tiny_path("tiny-llama");
    for (args, needle) in [
        (
            &["--epsilon", "nan"][..],
            "--epsilon must be a finite number > 0",
        ),
        (
            &["--epsilon", "-1"],
            "--epsilon must be a finite number > 0",
        ),
        (
            &["--epsilon", "inf"],
            "--epsilon must be a finite number > 0",
        ),
        (
            &["--gamma", "1e30"],
            "--gamma must be a number from 0 to 1000",
        ),
        (
            &["--gamma", "-1"],
            "--gamma must be a number from 0 to 1000",
        ),
        (&["--threads", "10000"], "--threads 10000"),
        (&["--steps", "-1"], "invalid value '-1' for '--steps"),
        (&["--steps=-1"], "invalid value '-1' for '--steps"),
        (
            &["--method", "ig", "--tolerance", "0.01", "--max-steps", "1"],
            "--max-steps 1 is below the 9 evaluations",
        ),
    ] {
        fails_with(&m, args, needle);
    }
}

/// `--output` never replaces the model it reads (or a file of its folder).
#[test]
fn output_over_an_input_is_refused() {
    let dir = scratch("own-model");
    copy_model("tiny-llama", &dir);
    let before = std::fs::read(dir.join("config.json")).unwrap();
    for target in ["config.json", "model.safetensors"] {
        let out = dir.join(target);
        let (ok, _, err) = run(&[
            "attribute",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            "Hello there",
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(
            !ok && err.contains("would overwrite the input"),
            "{target}: {err}"
        );
    }
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), before);
}

/// A model whose activations overflow f32 gives NaN scores: that is an error naming the
/// method and the value, with no output file, never a success.
#[test]
fn non_finite_scores_are_an_error() {
    let dir = scratch("overflow");
    copy_model("tiny-llama", &dir);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let huge: Vec<u8> = (0..32).flat_map(|_| 3e38f32.to_le_bytes()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            if n == "model.norm.weight" {
                let t = safetensors::tensor::TensorView::new(v.dtype(), v.shape().to_vec(), &huge);
                (n, t.unwrap())
            } else {
                (n, v)
            }
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    fails_with(&dir, &["--method", "saliency"], "saliency: ");
    fails_with(&dir, &["--method", "saliency"], "not a finite number");
    // evaluate refuses to rank such scores.
    let out = scratch("overflow-eval").join("e.json");
    let (ok, _, err) = run(&[
        "evaluate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "Hello there",
        "--methods",
        "saliency,occlusion",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("not a finite number"), "{err}");
    assert!(!out.exists());
    // A NaN stored in a weight is named as the cause.
    let nan = scratch("nan-weight");
    copy_model("tiny-llama", &nan);
    let bytes = std::fs::read(nan.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut down: Vec<u8> = st
        .tensor("model.layers.1.mlp.down_proj.weight")
        .unwrap()
        .data()
        .to_vec();
    down[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| match n.as_str() {
            "model.layers.1.mlp.down_proj.weight" => {
                let t = safetensors::tensor::TensorView::new(v.dtype(), v.shape().to_vec(), &down);
                (n, t.unwrap())
            }
            _ => (n, v),
        })
        .collect();
    safetensors::serialize_to_file(views, None, &nan.join("model.safetensors")).unwrap();
    fails_with(
        &nan,
        &["--method", "saliency", "--target-id", "5"],
        "the weight 'model.layers.1.mlp.down_proj.weight' holds NaN at index 10",
    );
}

/// tiny-llama in a fresh folder with `change` applied to its config.json.
fn llama_with_config(change: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let dir = scratch("config");
    copy_model("tiny-llama", &dir);
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut cfg);
    std::fs::write(&path, cfg.to_string()).unwrap();
    dir
}

/// Sizes and constants a config claims are checked before anything is allocated or run: no
/// abort on a billion layers, and each bad value named.
#[test]
fn config_claims_are_checked() {
    use serde_json::json;
    for (key, value, needle) in [
        (
            "num_hidden_layers",
            json!(1_000_000_000u64),
            "'num_hidden_layers' is 1000000000, but the weights have no layer 999999999",
        ),
        (
            "num_hidden_layers",
            json!(2.5),
            "'num_hidden_layers' is 2.5, not a whole number",
        ),
        (
            "rms_norm_eps",
            json!(-1.0),
            "'rms_norm_eps' is -1: it must be a finite number >= 0",
        ),
        (
            "rope_theta",
            json!(0.0),
            "'rope_theta' is 0: it must be a finite number > 0",
        ),
    ] {
        let dir = llama_with_config(|c| {
            c[key] = value.clone();
            if key == "rope_theta" {
                c["rope_parameters"]["rope_theta"] = value.clone();
            }
        });
        fails_with(&dir, &[], needle);
        let (ok, _, err) = run(&["info", "--model", dir.to_str().unwrap()]);
        assert!(
            !ok && err.contains(needle) && !err.contains("panicked"),
            "info: {err}"
        );
    }
    // A context of 2³² − 1 positions costs nothing until used: RoPE tables are per pass.
    let dir = llama_with_config(|c| c["max_position_embeddings"] = json!(4_294_967_295u64));
    let start = std::time::Instant::now();
    let (ok, _, err) = run(&[
        "attribute",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "Hello there",
        "--method",
        "saliency",
    ]);
    assert!(ok, "{err}");
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

/// A shard index can only name files of the model folder: absolute paths, `..` and links out
/// of the folder are refused before anything is read.
#[test]
fn shard_index_paths_stay_inside_the_model_folder() {
    for (shard, needle) in [
        ("/etc/passwd", "is not a file name inside the model folder"),
        (
            "../../../../etc/passwd",
            "is not a file name inside the model folder",
        ),
        ("link.safetensors", "leads outside the model folder"),
    ] {
        let dir = scratch("index");
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(tiny_path("tiny-llama").join(f), dir.join(f)).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link.safetensors")).unwrap();
        let index = serde_json::json!({ "weight_map": { "model.norm.weight": shard } });
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        fails_with(&dir, &[], needle);
    }
}

/// A config or tokenizer that is a link to a device, or larger than such a file can be, is
/// refused before it is read (a link to /dev/zero was read until memory ran out).
#[test]
fn model_files_that_are_devices_or_huge_are_refused() {
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let dir = scratch("devzero");
        copy_model("tiny-llama", &dir);
        std::fs::remove_file(dir.join(file)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join(file)).unwrap();
        fails_with(&dir, &[], "not a regular file");
    }
    let dir = scratch("huge-config");
    copy_model("tiny-llama", &dir);
    let f = std::fs::File::create(dir.join("config.json")).unwrap();
    f.set_len(65 << 20).unwrap(); // sparse: no disk used
    fails_with(&dir, &[], "larger than the 64 MiB");
}

/// A run that cannot fit in the memory that is free is refused before it starts, saying what
/// it needs and what there is.
#[test]
fn a_run_larger_than_free_memory_is_refused_first() {
    let dir = scratch("budget");
    let out = dir.join("r.json");
    let model = tiny_path("tiny-llama");
    let output = Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .env("GRADLENS_MEMORY_BUDGET", "1000")
        .args(["attribute", "--model", model.to_str().unwrap()])
        .args(["--prompt", "The capital of France is", "--output"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        err.contains("needs at least") && err.contains("GiB are free"),
        "{err}"
    );
    assert!(!out.exists());
}

/// Sizes of zero are refused naming the key (`hidden_size` 0 was a shape error with no
/// expected shape).
#[test]
fn zero_sizes_are_named() {
    for key in ["hidden_size", "num_attention_heads", "vocab_size"] {
        let dir = llama_with_config(|c| c[key] = serde_json::json!(0));
        fails_with(&dir, &[], &format!("'{key}' is 0, not a whole number >= 1"));
    }
    let dir = llama_with_config(|c| {
        c["hidden_size"] = serde_json::json!(30);
        c.as_object_mut().unwrap().remove("head_dim");
    });
    fails_with(
        &dir,
        &[],
        "hidden_size 30 is not a multiple of num_attention_heads 4",
    );
}

/// A safetensors header that names a tensor twice is refused naming that tensor.
#[test]
fn duplicate_tensor_names_are_named() {
    let dir = scratch("dup");
    copy_model("tiny-llama", &dir);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let entry = header["model.norm.weight"].to_string();
    let text = std::str::from_utf8(&bytes[8..8 + n]).unwrap().trim_end();
    // The same entry again before the closing brace.
    let doubled = format!(
        "{},\"model.norm.weight\":{entry}}}",
        text.strip_suffix('}').unwrap()
    );
    let mut out = (doubled.len() as u64).to_le_bytes().to_vec();
    out.extend(doubled.as_bytes());
    out.extend(&bytes[8 + n..]);
    std::fs::write(dir.join("model.safetensors"), out).unwrap();
    fails_with(&dir, &[], "names tensor 'model.norm.weight' twice");
}

fn attribute_to(out: &Path, extra: &[&str]) -> (bool, String, String) {
    let model = tiny_path("tiny-llama");
    let mut args = vec![
        "attribute",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "Hello there",
        "--format",
        "json",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--method") {
        args.extend_from_slice(&["--method", "saliency"]);
    }
    run(&args)
}

/// `--output` through a link replaces the link's target and keeps the link; a device is
/// written through; an existing file keeps its mode; a folder that takes no new files is
/// named before any work.
#[test]
fn output_goes_through_links_and_devices_and_keeps_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("special-out");
    let real = dir.join("real.json");
    std::fs::write(&real, "old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (ok, _, err) = attribute_to(&link, &[]);
    assert!(ok, "{err}");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(text.contains("\"method\""), "{text}");
    let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A device node is written through, not replaced by a file; so is a FIFO, whose reader
    // gets the whole JSON.
    let (ok, _, err) = attribute_to(Path::new("/dev/null"), &[]);
    assert!(ok, "{err}");
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let (ok, _, err) = attribute_to(&fifo, &[]);
    assert!(ok, "{err}");
    let text = reader.join().unwrap();
    assert!(text.contains("\"scores\""), "{text}");
    assert!(!std::fs::metadata(&fifo).unwrap().is_file());
    // /proc takes no new files: said before the run, naming the folder.
    let (ok, _, err) = attribute_to(Path::new("/proc/version"), &[]);
    assert!(
        !ok && err.contains("folder /proc does not take new files"),
        "{err}"
    );
    let (ok, _, err) = attribute_to(&dir, &[]);
    assert!(!ok && err.contains("is a folder"), "{err}");
}

/// Options a method does not read are reported as ignored, never silently dropped.
#[test]
fn ignored_options_are_warned_about() {
    let dir = scratch("ignored");
    let out = dir.join("r.json");
    for (method, extra, warned) in [
        (
            "saliency",
            &["--layer", "1"][..],
            Some("--layer was ignored"),
        ),
        (
            "gradient-shap",
            &["--baseline", "pad"][..],
            Some("--baseline was ignored"),
        ),
        (
            "integrated-gradients",
            &["--max-steps", "50"][..],
            Some("--max-steps was ignored"),
        ),
        (
            "attention-rollout",
            &["--head", "0"][..],
            Some("--head was ignored"),
        ),
        ("attention", &["--head", "0", "--layer", "1"][..], None),
        (
            "smoothgrad",
            &["--base", "integrated-gradients", "--steps", "4"][..],
            None,
        ),
    ] {
        let mut args = vec!["--method", method];
        args.extend_from_slice(extra);
        let (ok, _, err) = attribute_to(&out, &args[..]);
        assert!(ok, "{method}: {err}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let warnings = json["warnings"].to_string();
        match warned {
            Some(w) => assert!(
                warnings.contains(w) && err.contains(w),
                "{method}: {warnings}"
            ),
            None => assert!(!warnings.contains("was ignored"), "{method}: {warnings}"),
        }
    }
}

/// `--prompt-file` reads the text from a file or standard input (one final newline dropped),
/// and gives what `--prompt` gives.
#[test]
fn prompt_file_and_stdin_give_the_prompts_result() {
    let dir = scratch("prompt-file");
    let text = "The capital of France is";
    std::fs::write(dir.join("p.txt"), format!("{text}\n")).unwrap();
    let model = tiny_path("tiny-llama");
    let base = [
        "attribute",
        "--model",
        model.to_str().unwrap(),
        "--method",
        "saliency",
        "--format",
        "json",
    ];
    let scores = |stdout: &str| {
        let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
        (v["scores"].clone(), v["tokens"].clone())
    };
    let (ok, direct, err) = run(&[&base[..], &["--prompt", text]].concat());
    assert!(ok, "{err}");
    let p = dir.join("p.txt");
    let (ok, from_file, err) = run(&[&base[..], &["--prompt-file", p.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    assert_eq!(scores(&direct), scores(&from_file));
    let child = Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args(base)
        .args(["--prompt-file", "-"])
        .stdin(std::fs::File::open(&p).unwrap())
        .output()
        .unwrap();
    assert!(child.status.success());
    assert_eq!(
        scores(&direct),
        scores(&String::from_utf8_lossy(&child.stdout))
    );
    let (ok, _, err) = run(&[&base[..], &["--prompt", text, "--prompt-file", "x"]].concat());
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, _, err) = run(&base);
    assert!(!ok && err.contains("--prompt"), "{err}");
}

/// The JSON gives each token's display form beside the raw one; a piece of a character shows
/// its bytes as escapes.
#[test]
fn tokens_have_a_display_form() {
    let model = tiny_path("tiny-gpt2");
    let (ok, out, err) = run(&[
        "attribute",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "a — b",
        "--method",
        "saliency",
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let display = v["display"].as_array().unwrap();
    assert_eq!(display.len(), v["tokens"].as_array().unwrap().len());
    let joined: String = display.iter().map(|d| d.as_str().unwrap()).collect();
    assert!(!joined.contains('\u{FFFD}'), "{joined}");
    // tiny-gpt2's vocabulary has no "—": its three bytes are three tokens.
    assert!(joined.contains("\\xe2\\x80\\x94"), "{joined}");
    assert!(
        joined.starts_with('a') && joined.ends_with(" b"),
        "{joined}"
    );
}

/// Scores do not depend on `--batch-size` or `--threads` (item 10: IG with the pad baseline
/// moved by 0.73% of the largest score between batch sizes 1 and auto).
#[test]
fn batching_and_threads_do_not_change_scores() {
    let model = tiny_path("tiny-llama");
    let scores = |extra: &[&str]| -> Vec<f64> {
        let mut args = vec![
            "attribute",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "The capital of France is",
            "--method",
            "ig",
            "--baseline",
            "pad",
            "--steps",
            "13",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let (ok, out, err) = run(&args);
        assert!(ok, "{extra:?}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect()
    };
    let reference = scores(&[]);
    let largest = reference.iter().fold(0f64, |m, s| m.max(s.abs()));
    for extra in [
        &["--batch-size", "1"][..],
        &["--batch-size", "5"][..],
        &["--threads", "1"][..],
        &["--threads", "3", "--batch-size", "2"][..],
    ] {
        let got = scores(extra);
        for (a, b) in got.iter().zip(&reference) {
            assert!(
                (a - b).abs() <= 1e-6 * largest,
                "{extra:?}: {got:?} vs {reference:?}"
            );
        }
    }
}

/// `--input records.jsonl`: a run killed midway (and its last line cut short, as a kill during
/// a write would leave it) resumes with every id exactly once, equal to an uninterrupted run;
/// a record with a bad option becomes an error line and the run goes on.
#[test]
fn a_jsonl_run_killed_midway_resumes_with_nothing_lost_or_duplicated() {
    let dir = scratch("jsonl");
    let input = dir.join("records.jsonl");
    let mut lines: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"id": {i}, "text": "word{i} and some more text about item {i}"}}"#))
        .collect();
    lines.push(r#"{"id": "bad", "text": "a record with a bad option", "stepz": 3}"#.into());
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let model = tiny_path("tiny-llama");
    let args = |out: &Path| -> Vec<String> {
        [
            "attribute",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--output".into(), out.display().to_string()])
        .chain(["--method", "ig", "--steps", "1000", "--batch-size", "50"].map(String::from))
        .collect()
    };
    let read = |path: &Path| -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut by_id = std::collections::BTreeMap::new();
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = v["id"].to_string();
            assert!(by_id.insert(id.clone(), v).is_none(), "{id} twice");
        }
        by_id
    };
    let reference = dir.join("reference.jsonl");
    let (ok, _, err) = run(&args(&reference)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(ok, "{err}");
    let out = dir.join("results.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args(args(&out))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines_in = |p: &Path| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
    let start = std::time::Instant::now();
    while lines_in(&out) < 2 && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = lines_in(&out);
    assert!((2..9).contains(&partial), "killed after {partial} lines");
    // A write the kill interrupted.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .and_then(|mut f| std::io::Write::write_all(&mut f, br#"{"id":5,"model":"tin"#))
        .unwrap();
    let (ok, _, err) = run(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(err.contains("already there"), "{err}");
    let (want, got) = (read(&reference), read(&out));
    assert_eq!(got.len(), 9);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (id, w) in &want {
        assert_eq!(got[id]["scores"], w["scores"], "id {id}");
        assert_eq!(got[id]["error"], w["error"], "id {id}");
    }
    assert!(
        got["\"bad\""]["error"]
            .as_str()
            .unwrap()
            .contains("unknown option 'stepz'"),
        "{:?}",
        got["\"bad\""]
    );
    // A third run has nothing left to do.
    let (ok, _, err) = run(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok && err.contains("0 records attributed"), "{err}");
}
