//! The GGUF reader, the llama.cpp metadata it maps to a config, the tokenizer rebuilt from
//! it, and a model loaded from it.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = common::scratch().join("model.gguf");
    std::fs::write(&path, data).unwrap();
    let Ok(file) = gradlens::gguf::GgufFile::open(&path) else {
        return;
    };
    let _ = gradlens::gguf::llama::config(&file);
    let _ = gradlens::gguf::tokenizer::tokenizer_json(&file);
    drop(file);
    common::load_and_run(&path);
});
