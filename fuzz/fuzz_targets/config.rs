//! `config.json`: every size, constant and flag a config claims, checked before use.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::load_and_run(&common::folder_with("config.json", data));
});
