//! A sharded model's `model.safetensors.index.json`: the shard names it lists must stay in
//! the folder, and anything else is an error.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = common::folder_with("model.safetensors.index.json", data);
    // The index is read only where there is no single model.safetensors: the weights are
    // there as a shard instead (the seed's index names it).
    let shard = dir.join("model-00001-of-00001.safetensors");
    if !shard.exists() {
        std::fs::copy(common::tiny_llama().join("model.safetensors"), &shard).unwrap();
    }
    common::load_and_run(&dir);
});
