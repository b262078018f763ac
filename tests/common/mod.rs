//! Shared test helpers: fixture loading and closeness checks.
#![allow(dead_code)]

pub mod gguf_writer;

use gradlens::{Device, Model};
use serde_json::Value;
use std::path::PathBuf;

/// The repository: where the tests were built, or `GRADLENS_TEST_ROOT` for test binaries run
/// from a copy elsewhere (`scripts/device-check.sh` on a GPU machine).
pub fn root() -> PathBuf {
    std::env::var_os("GRADLENS_TEST_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub fn fixture(name: &str) -> Value {
    let path = root().join("tests/fixtures").join(format!("{name}.json"));
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

pub fn tiny(name: &str) -> Model {
    tiny_on(name, Device::Cpu)
}

/// The tiny model in `name` on `device`.
pub fn tiny_on(name: &str, device: Device) -> Model {
    Model::load(&root().join("tests/fixtures/models").join(name), device)
        .unwrap_or_else(|e| panic!("{name} on {device}: {e}"))
}

/// The GPU devices this build has and this machine can open.
#[allow(dead_code)]
pub fn gpu_devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut all = Vec::new();
    #[cfg(feature = "wgpu")]
    if wgpu_backend().is_some() {
        all.push(Device::Wgpu);
    }
    #[cfg(feature = "cuda")]
    if cuda_backend().is_some() {
        all.push(Device::Cuda);
    }
    all
}

/// The tiny model in `folder`, with `use_sliding_window` off.
pub fn without_sliding_window(folder: &str) -> Model {
    tiny_with_config(folder, |cfg| cfg["use_sliding_window"] = false.into())
}

/// The tiny model in `folder` (a copy) with its config changed by `change`.
pub fn tiny_with_config(folder: &str, change: impl Fn(&mut Value)) -> Model {
    let src = root().join("tests/fixtures/models").join(folder);
    let dir = std::env::temp_dir().join(format!("gradlens-{folder}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    change(&mut cfg);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    Model::load(&dir, gradlens::Device::Cpu).unwrap()
}

/// The real MiniLM from scripts/fetch-models.sh. Under CI=true its absence fails the test.
/// The methods a stored-format model is checked with on the CPU: a gradient, a path and two
/// rule methods (LRP-γ decodes its weights).
pub const STORED_CHECK_METHODS: [&str; 4] =
    ["saliency", "integrated-gradients", "attnlrp", "lrp-gamma"];

/// The registered method `name` configured with `options` (CLI names, values as text).
pub fn method(name: &str, options: &[(&str, &str)]) -> Box<dyn gradlens::attribution::Method> {
    let mut values = gradlens::attribution::Values::new();
    for (k, v) in options {
        values.set(k, v);
    }
    gradlens::attribution::methods::build(name, &values)
        .unwrap_or_else(|e| panic!("{name} {options:?}: {e}"))
}

/// Settings that keep the full map.
pub fn with_map() -> gradlens::attribution::Settings {
    gradlens::attribution::Settings {
        include_map: true,
        ..Default::default()
    }
}

pub fn minilm() -> Option<Model> {
    let path = root().join("models/minilm");
    if !path.join("model.safetensors").exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("models/minilm is missing under CI=true: run scripts/fetch-models.sh");
        }
        eprintln!("SKIP: models/minilm missing (run scripts/fetch-models.sh)");
        return None;
    }
    Some(Model::load(&path, Device::Cpu).unwrap())
}

/// Last hidden states of `ids` (batch of one), flattened.
pub fn hidden_states(model: &Model, ids: &[u32]) -> Vec<f32> {
    let mut tape = gradlens::autodiff::Tape::new();
    let x = model
        .embed(ids)
        .unwrap()
        .reshape([1, ids.len(), model.hidden_size()])
        .unwrap();
    let xv = tape.constant(x);
    let h = model.forward(&mut tape, xv).unwrap();
    tape.value(h).to_vec().unwrap()
}

/// SmolLM2-135M-Instruct from scripts/fetch-models.sh (the GGUF file). Under CI=true its
/// absence fails the test.
pub fn smollm2() -> Option<Model> {
    real_model("smollm2.gguf")
}

/// Gemma 3 270M (Q4_K_M) from scripts/fetch-models.sh; under CI=true its absence fails.
pub fn gemma3() -> Option<Model> {
    real_model("gemma3-270m.gguf")
}

fn real_model(file: &str) -> Option<Model> {
    let path = root().join("models").join(file);
    if !path.exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("models/{file} is missing under CI=true: run scripts/fetch-models.sh");
        }
        eprintln!("SKIP: models/{file} missing (run scripts/fetch-models.sh)");
        return None;
    }
    Some(Model::load(&path, Device::Cpu).unwrap())
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Every `|got − want| ≤ rel · max|want|` (relative to the largest reference value).
pub fn assert_close(got: &[f32], want: &[f32], rel: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let (i, err) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold(
            (0, 0f32),
            |(bi, be), (i, e)| if e > be { (i, e) } else { (bi, be) },
        );
    assert!(
        err <= rel * scale,
        "{what}: max error {err:.3e} at {i} (got {}, want {}) exceeds {rel:.0e} of max |want| {scale:.3e}",
        got[i],
        want[i]
    );
}

/// Deterministic pseudo-random values in [−scale, scale].
pub fn rand(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// The wgpu backend, or `None` (skip) when this machine has no adapter. Under CI=true a
/// missing adapter fails the test instead.
#[cfg(feature = "wgpu")]
pub fn wgpu_backend() -> Option<&'static gradlens::backend::wgpu::WgpuBackend> {
    match gradlens::backend::wgpu::backend() {
        Ok(b) => Some(b),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and the wgpu backend is unavailable: {e}")
        }
        Err(e) => {
            eprintln!("SKIP: wgpu backend unavailable: {e}");
            None
        }
    }
}

/// The CUDA backend, or `None` (with a note) where this machine has no usable CUDA device;
/// with `GRADLENS_REQUIRE_CUDA=1` (set on GPU machines) a missing device fails instead.
#[cfg(feature = "cuda")]
#[allow(dead_code)]
pub fn cuda_backend() -> Option<&'static gradlens::backend::cuda::CudaBackend> {
    match gradlens::backend::cuda::backend() {
        Ok(b) => Some(b),
        Err(e) if std::env::var("GRADLENS_REQUIRE_CUDA").as_deref() == Ok("1") => {
            panic!("GRADLENS_REQUIRE_CUDA=1 and the CUDA backend is unavailable: {e}")
        }
        Err(e) => {
            eprintln!("SKIP: CUDA backend unavailable: {e}");
            None
        }
    }
}

/// The model at `path` loaded on `device` with its weights as stored and decoded to f32 gives
/// the same logits (1e-5 of the largest) and attributions (1e-4 of the largest score) by
/// `methods` (on the CPU: a gradient, a path and two rule methods), and reports `format` as
/// the format it computes in.
pub fn assert_stored_matches_f32(
    path: &std::path::Path,
    prompt: &str,
    format: &str,
    device: Device,
    methods: &[&str],
) {
    use gradlens::attribution;
    use gradlens::models::WeightMode;
    let stored = Model::load_with(path, device, WeightMode::Stored).unwrap();
    let dense = Model::load_with(path, device, WeightMode::F32).unwrap();
    assert!(
        stored.info.weight_formats().starts_with(format),
        "{format}: stored model reports {}",
        stored.info.weight_formats()
    );
    assert_eq!(dense.info.weight_formats(), "f32");
    let ids = stored.tokenize(prompt).unwrap();
    let logits = |m: &Model| attribution::next_token_logits(m, &m.embed(&ids).unwrap()).unwrap();
    assert_close(
        &logits(&stored),
        &logits(&dense),
        1e-5,
        &format!("{format} logits"),
    );
    for &name in methods {
        let m = method(name, &[("steps", "8")]);
        let a = attribution::attribute(&stored, prompt, m.as_ref(), &with_map()).unwrap();
        let b = attribution::attribute(&dense, prompt, m.as_ref(), &with_map()).unwrap();
        let method = name;
        assert_eq!(
            a.target.id, b.target.id,
            "{format} {method:?}: the same target"
        );
        assert_close(
            &a.scores,
            &b.scores,
            1e-4,
            &format!("{format} {method:?} scores"),
        );
        assert_close(
            a.map.as_ref().unwrap(),
            b.map.as_ref().unwrap(),
            1e-4,
            &format!("{format} {method:?} map"),
        );
    }
}
