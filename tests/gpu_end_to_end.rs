//! Every method on every architecture on each GPU backend (wgpu, CUDA) gives the CPU's answer
//! (1e-3 of the largest score), on the tiny models and on MiniLM and SmolLM2. Run with
//! `--features wgpu` and/or `--features cuda`; with `CI=true` a missing wgpu adapter fails
//! instead of skipping, and so does a missing CUDA device with `GRADLENS_REQUIRE_CUDA=1`.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

mod common;
use common::*;
use gradlens::attribution::{self, methods, Method, ScoreKind, Settings, TargetSpec};
use gradlens::{Device, Model};

fn load(path: &std::path::Path, device: Device) -> Model {
    Model::load(path, device).unwrap_or_else(|e| panic!("{} on {device}: {e}", path.display()))
}

/// Runs `method` on both devices and compares scores and F(x).
fn same_answer(
    cpu: &Model,
    gpu: &Model,
    prompt: &str,
    method: &dyn Method,
    opts: &Settings,
    tol: f32,
) {
    let run = |m: &Model| {
        attribution::attribute(m, prompt, method, opts)
            .unwrap_or_else(|e| panic!("{} {} on {}: {e}", m.name, method.name(), m.device()))
    };
    let (want, got) = (run(cpu), run(gpu));
    let what = format!("{} {}", cpu.name, method.name());
    assert_eq!(got.device, gpu.device().to_string(), "{what}");
    let scale = want
        .scores
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-6);
    let worst = want
        .scores
        .iter()
        .zip(&got.scores)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
        / scale;
    eprintln!("DIFF {what}: {worst:.2e}");
    if std::env::var("DIFF_ONLY").is_ok() {
        return;
    }
    for (i, (a, b)) in want.scores.iter().zip(&got.scores).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{what}: token {i}: cpu {a}, {} {b} (largest {scale})",
            gpu.device()
        );
    }
    let fx = want.target_score.abs().max(1e-3);
    assert!(
        (want.target_score - got.target_score).abs() <= tol * fx,
        "{what}: F(x) cpu {} {} {}",
        want.target_score,
        gpu.device(),
        got.target_score
    );
}

// One test per backend, so that the test harness runs the two side by side.
#[cfg(feature = "wgpu")]
#[test]
fn every_method_on_every_tiny_architecture_on_wgpu() {
    on(Device::Wgpu, every_method_on);
}

#[cfg(feature = "cuda")]
#[test]
fn every_method_on_every_tiny_architecture_on_cuda() {
    on(Device::Cuda, every_method_on);
}

/// Runs `check` on `device` where this machine has it (`wgpu_backend` and `cuda_backend`
/// decide: under CI=true, or GRADLENS_REQUIRE_CUDA=1, a missing one fails instead).
fn on(device: Device, check: fn(Device)) {
    let available = match device {
        #[cfg(feature = "wgpu")]
        Device::Wgpu => wgpu_backend().is_some(),
        #[cfg(feature = "cuda")]
        Device::Cuda => cuda_backend().is_some(),
        _ => false,
    };
    if available {
        check(device);
    }
}

fn every_method_on(device: Device) {
    // Qwen2 (a sliding window on its second layer, q/k/v biases) and Gemma 3 (q/k norms, a
    // local layer's window and RoPE, norms after each sublayer, scaled embeddings) bring what
    // the new families add; Llama 3, Mistral and Qwen3 add nothing these two do not.
    let cases: [(&str, TargetSpec, ScoreKind, &str); 6] = [
        (
            "tiny-bert",
            TargetSpec::Compare("a lazy dog".into()),
            ScoreKind::Logit,
            "zero",
        ),
        (
            "tiny-bert-cls",
            TargetSpec::Class(2),
            ScoreKind::Logit,
            "zero",
        ),
        ("tiny-gpt2", TargetSpec::Auto, ScoreKind::LogProb, "zero"),
        ("tiny-llama", TargetSpec::Auto, ScoreKind::Logit, "pad"),
        ("tiny-qwen2", TargetSpec::Auto, ScoreKind::Prob, "pad"),
        ("tiny-gemma3", TargetSpec::Auto, ScoreKind::Logit, "pad"),
    ];
    for (name, target, score, baseline) in cases {
        let path = root().join("tests/fixtures/models").join(name);
        let (cpu, gpu) = (load(&path, Device::Cpu), load(&path, device));
        for info in methods::REGISTRY {
            let opts = Settings {
                target: target.clone(),
                score,
                ..Settings::default()
            };
            // Few samples keep the emulated devices quick; KernelSHAP needs at least one
            // coalition per token to determine the values.
            let samples = if info.name == "kernel-shap" {
                "40"
            } else {
                "3"
            };
            let values = [("baseline", baseline), ("steps", "6"), ("samples", samples)];
            let method = common::method(info.name, &values);
            // LRP-γ divides by z = Σ x(w + γw⁺), which for signed transformer activations comes
            // close to 0: its scores move by 2e-5 when ε moves by 1e-8 on the CPU alone, so f32
            // summation order (1e-7 of the terms) shows at 1e-3. Every other method agrees to
            // about 1e-6.
            let tol = if info.name == "lrp-gamma" { 1e-2 } else { 1e-3 };
            same_answer(
                &cpu,
                &gpu,
                "the quick brown fox",
                method.as_ref(),
                &opts,
                tol,
            );
        }
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn minilm_and_smollm2_match_the_cpu_on_wgpu() {
    on(Device::Wgpu, real_models_on);
}

#[cfg(feature = "cuda")]
#[test]
fn minilm_and_smollm2_match_the_cpu_on_cuda() {
    on(Device::Cuda, real_models_on);
}

fn real_models_on(device: Device) {
    // Few steps: lavapipe, the CI adapter, runs SmolLM2 at about 10 s per gradient.
    let cases: [(&str, &str, TargetSpec, &[&str]); 2] = [
        (
            "models/minilm",
            "The quick brown fox jumps over the lazy dog.",
            TargetSpec::Compare("A fast auburn fox leaps above a sleepy hound.".into()),
            &["integrated-gradients", "attnlrp"],
        ),
        (
            "models/smollm2.gguf",
            "The capital of France is",
            TargetSpec::Auto,
            &["saliency", "attnlrp"],
        ),
    ];
    for (path, prompt, target, methods) in cases {
        let path = root().join(path);
        if !path.exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{} is missing under CI=true: run scripts/fetch-models.sh",
                path.display()
            );
            eprintln!("SKIP: {} missing", path.display());
            continue;
        }
        let (cpu, gpu) = (load(&path, Device::Cpu), load(&path, device));
        for &name in methods {
            let opts = Settings {
                target: target.clone(),
                ..Settings::default()
            };
            let method = common::method(name, &[("steps", "8")]);
            same_answer(&cpu, &gpu, prompt, method.as_ref(), &opts, 1e-3);
        }
    }
}

/// Runs `gradlens attribute` of the tiny `model` with `method` on `device` under `env`, the
/// JSON going to a fresh file; returns the process output and that file.
fn attribute_on(
    device: &str,
    model: &str,
    method: &str,
    env: &[(&str, &str)],
) -> (std::process::Output, std::path::PathBuf) {
    let model = root().join("tests/fixtures/models").join(model);
    let dir = std::env::temp_dir().join(format!("gradlens-{device}-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("result.json");
    let _ = std::fs::remove_file(&out);
    // A copied test binary (scripts/device-check.sh) is told where the CLI is.
    let bin = std::env::var_os("GRADLENS_BIN").unwrap_or(env!("CARGO_BIN_EXE_gradlens").into());
    let r = std::process::Command::new(bin)
        .args([
            "attribute",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "the quick brown fox",
            "--method",
            method,
            "--device",
            device,
            "--format",
            "json",
            "--output",
            out.to_str().unwrap(),
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (r, out)
}

/// A device that cannot be used: one error line containing `reason`, a non-zero exit, no
/// panic and no output file.
fn assert_unavailable(r: &std::process::Output, out: &std::path::Path, reason: &str) {
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && !err.contains("panicked"), "{err}");
    assert!(
        err.trim().lines().count() == 1 && err.contains(reason),
        "{err}"
    );
    assert!(!out.exists(), "no output file after a failure");
}

/// A successful run's JSON names the device it ran on.
fn assert_ran_on(r: &std::process::Output, out: &std::path::Path, device: &str) {
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(json["device"], device);
    let _ = std::fs::remove_file(out);
}

#[cfg(feature = "wgpu")]
#[test]
fn cli_runs_on_wgpu_and_reports_a_missing_adapter() {
    let run = |env| attribute_on("wgpu", "tiny-gpt2", "integrated-gradients", env);
    // Only the GL backend (not in this build) allowed: no adapter at all.
    let (r, out) = run(&[("WGPU_BACKEND", "gl")]);
    assert_unavailable(&r, &out, "device unavailable: wgpu: no adapter");
    if wgpu_backend().is_some() {
        let (r, out) = run(&[]);
        assert_ran_on(&r, &out, "wgpu");
        // A success says nothing that starts with "error", even where XDG_RUNTIME_DIR is
        // unset or shared (Mesa complains about both).
        for env in [&[("XDG_RUNTIME_DIR", "")], &[("XDG_RUNTIME_DIR", "/tmp")]] {
            let (r, out) = run(env);
            let err = String::from_utf8_lossy(&r.stderr).to_lowercase();
            assert!(!err.contains("error"), "{env:?}: {err}");
            assert_ran_on(&r, &out, "wgpu");
        }
    }
}

/// `--device cuda` where CUDA cannot be used is one error line naming the reason, a non-zero
/// exit and no output file; where it can, the JSON says it ran on CUDA. The real driver is
/// tried with the emulator switched off, and the emulator (a C++ compiler is all it needs)
/// must always run.
#[cfg(feature = "cuda")]
#[test]
fn cli_runs_on_cuda_or_says_why_not() {
    let run = |emulate| {
        attribute_on(
            "cuda",
            "tiny-llama",
            "attnlrp",
            &[("GRADLENS_CUDA_EMULATOR", emulate)],
        )
    };
    let (r, out) = run("0");
    if gradlens::backend::cuda::driver_present() {
        assert_ran_on(&r, &out, "cuda");
    } else {
        assert_unavailable(&r, &out, "device unavailable: cuda: ");
    }
    let (r, out) = run("1");
    assert_ran_on(&r, &out, "cuda");
}
