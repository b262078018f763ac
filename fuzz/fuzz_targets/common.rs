#![allow(dead_code)] // each target uses a part
//! What the fuzz targets share: a private scratch folder per process, and the tiny Llama's
//! files to surround the fuzzed one.

use std::path::{Path, PathBuf};

/// A folder of this process's own (fuzzing runs several processes at once).
pub fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradlens-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The tiny Llama's folder in the repository.
pub fn tiny_llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/tiny-llama")
}

/// A model folder of the tiny Llama's files with `name` replaced by `bytes`.
pub fn folder_with(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = scratch().join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        let to = dir.join(f);
        if !to.exists() && !(f == "model.safetensors" && name.ends_with("index.json")) {
            std::fs::copy(tiny_llama().join(f), &to).unwrap();
        }
    }
    std::fs::write(dir.join(name), bytes).unwrap();
    dir
}

/// Loads the model and, when it loads, runs one saliency pass: every outcome must be a
/// result or an error, never a panic (libFuzzer reports panics and aborts as crashes).
pub fn load_and_run(path: &Path) {
    use gradlens::attribution::{attribute, Method, Options};
    let Ok(model) = gradlens::Model::load(path, gradlens::Device::Cpu) else {
        return;
    };
    if let Ok(a) = attribute(&model, "Hello there", Method::Saliency, &Options::default()) {
        assert!(
            a.scores.iter().all(|s| s.is_finite()),
            "a non-finite success"
        );
    }
}
