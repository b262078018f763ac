//! GGUF files (versions 2 and 3): metadata, tensor directory and dequantisation, memory-mapped.
//! `llama` maps a Llama-family file onto the Hugging Face names and config the models use, and
//! `tokenizer` rebuilds its `tokenizer.json` (byte-level BPE, and Gemma's sentencepiece
//! vocabulary as `sentencepiece` recovers its merges).

mod dequant;
mod dequant_simd;
pub mod llama;
mod reader;
mod sentencepiece;
pub mod tokenizer;

pub use dequant::{byte_size, decode_into, dequantize, type_label, GgmlType};
pub use reader::{GgufFile, TensorInfo, Value};
