//! GGUF files (versions 2 and 3): metadata, tensor directory and dequantisation, memory-mapped;
//! `decode_simd` decodes stored rows sixteen values at a time into SIMD registers.
//! `llama` maps a Llama-family file and `bert` a BERT-family one onto the Hugging Face names
//! and config the models use; `tokenizer` rebuilds its `tokenizer.json` (byte-level BPE,
//! Gemma's sentencepiece vocabulary as `sentencepiece` recovers its merges, and the encoders'
//! WordPiece and Unigram vocabularies in `encoder_vocab`).

pub mod bert;
pub mod decode_simd;
mod dequant;
mod encoder_vocab;
pub mod llama;
mod reader;
mod sentencepiece;
pub mod tokenizer;

pub use dequant::{byte_size, decode_into, dequantize, random_blocks, type_label, GgmlType};
pub use llama::architecture;
pub use reader::{GgufFile, TensorInfo, Value};

/// Whether the file is llama.cpp's `bert` (BERT, RoBERTa, XLM-R).
fn is_bert(file: &GgufFile) -> bool {
    architecture(file) == "bert"
}

/// A Hugging Face `config.json` for the file's model.
pub fn config(file: &GgufFile) -> crate::error::Result<serde_json::Value> {
    if is_bert(file) {
        bert::config(file)
    } else {
        llama::config(file)
    }
}

/// Where a Hugging Face tensor lives in the file: (GGUF name, heads whose rows to un-permute).
pub fn locate(file: &GgufFile, hf_name: &str) -> Option<(String, Option<usize>)> {
    if is_bert(file) {
        bert::locate(file, hf_name).map(|n| (n, None))
    } else {
        llama::locate(file, hf_name)
    }
}

/// Every Hugging Face tensor name the file provides, in file order.
pub fn hf_names(file: &GgufFile) -> Vec<String> {
    if is_bert(file) {
        bert::hf_names(file)
    } else {
        llama::hf_names(file)
    }
}
