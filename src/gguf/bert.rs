//! BERT-family GGUF files (llama.cpp's `bert` architecture, which also holds RoBERTa and XLM-R)
//! as Hugging Face names and a `config.json`.
//!
//! llama.cpp's converter drops the pooler, the masked-LM head and, for RoBERTa and XLM-R, the
//! position rows below `pad_token_id + 1` (so positions count from 0 in the file); a RoBERTa
//! classification head becomes `cls` and `cls.output`. The file therefore loads as a BERT whose
//! positions start at 0, with the tokenizer the file names (`bert`, `gpt2` or `t5`).

use super::reader::{GgufFile, Value};
use crate::error::{Error, Result};
use serde_json::json;

/// (GGUF name, Hugging Face name) of the tensors outside the blocks.
const FIXED: [(&str, &str); 9] = [
    ("token_embd.weight", "embeddings.word_embeddings.weight"),
    (
        "token_types.weight",
        "embeddings.token_type_embeddings.weight",
    ),
    (
        "position_embd.weight",
        "embeddings.position_embeddings.weight",
    ),
    ("token_embd_norm.weight", "embeddings.LayerNorm.weight"),
    ("token_embd_norm.bias", "embeddings.LayerNorm.bias"),
    ("cls.weight", "classifier.dense.weight"),
    ("cls.bias", "classifier.dense.bias"),
    ("cls.output.weight", "classifier.out_proj.weight"),
    ("cls.output.bias", "classifier.out_proj.bias"),
];

/// (GGUF suffix, Hugging Face suffix) of a block's tensors, without `.weight`/`.bias`.
const BLOCK: [(&str, &str); 8] = [
    ("attn_q", "attention.self.query"),
    ("attn_k", "attention.self.key"),
    ("attn_v", "attention.self.value"),
    ("attn_output", "attention.output.dense"),
    ("attn_output_norm", "attention.output.LayerNorm"),
    ("ffn_up", "intermediate.dense"),
    ("ffn_down", "output.dense"),
    ("layer_output_norm", "output.LayerNorm"),
];

/// The GGUF name of Hugging Face tensor `hf_name`, where the file holds it.
pub fn locate(file: &GgufFile, hf_name: &str) -> Option<String> {
    let name = match FIXED.iter().find(|(_, hf)| *hf == hf_name) {
        Some((g, _)) => g.to_string(),
        None => {
            let rest = hf_name.strip_prefix("encoder.layer.")?;
            let (layer, suffix) = rest.split_once('.')?;
            let (stem, kind) = suffix.rsplit_once('.')?;
            let (g, _) = BLOCK.iter().find(|(_, hf)| *hf == stem)?;
            format!("blk.{layer}.{g}.{kind}")
        }
    };
    file.tensor(&name).map(|_| name)
}

/// Every Hugging Face tensor name the file provides, in file order.
pub fn hf_names(file: &GgufFile) -> Vec<String> {
    file.tensors
        .iter()
        .filter_map(|t| {
            if let Some((_, hf)) = FIXED.iter().find(|(g, _)| *g == t.name) {
                return Some(hf.to_string());
            }
            let rest = t.name.strip_prefix("blk.")?;
            let (layer, suffix) = rest.split_once('.')?;
            let (stem, kind) = suffix.rsplit_once('.')?;
            let (_, hf) = BLOCK.iter().find(|(g, _)| *g == stem)?;
            Some(format!("encoder.layer.{layer}.{hf}.{kind}"))
        })
        .collect()
}

/// A Hugging Face `config.json` for the file's encoder.
pub fn config(file: &GgufFile) -> Result<serde_json::Value> {
    let bad = |reason: String| Error::Config {
        path: file.path.clone(),
        reason,
    };
    let need = |k: &str| -> Result<usize> {
        file.get(&format!("bert.{k}"))
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| bad(format!("GGUF metadata lacks 'bert.{k}'")))
    };
    let eps = match file.get("bert.attention.layer_norm_epsilon") {
        None => 1e-12,
        Some(v) => v.as_f64().filter(|e| e.is_finite()).ok_or_else(|| {
            bad(format!(
                "GGUF metadata 'bert.attention.layer_norm_epsilon' is {v:?}, not a finite number"
            ))
        })?,
    };
    if matches!(file.get("bert.attention.causal"), Some(Value::Bool(true))) {
        return Err(bad("a causal BERT is not supported".into()));
    }
    let vocab = file
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .map(|t| t.len())
        .ok_or_else(|| bad("no vocabulary (tokenizer.ggml.tokens)".into()))?;
    let types = file
        .get("tokenizer.ggml.token_type_count")
        .and_then(Value::as_u64)
        .unwrap_or(2);
    let id = |key: &str| file.get(key).and_then(Value::as_u64);
    let head = file.tensor("cls.output.weight").is_some();
    Ok(json!({
        "architectures": [if head { "BertForSequenceClassification" } else { "BertModel" }],
        "model_type": "bert",
        "hidden_size": need("embedding_length")?,
        "intermediate_size": need("feed_forward_length")?,
        "num_hidden_layers": need("block_count")?,
        "num_attention_heads": need("attention.head_count")?,
        "max_position_embeddings": need("context_length")?,
        "layer_norm_eps": eps,
        "type_vocab_size": types,
        "vocab_size": vocab,
        // llama.cpp evaluates GELU by its tanh approximation; the models were trained with erf's.
        "hidden_act": "gelu",
        "pad_token_id": id("tokenizer.ggml.padding_token_id"),
        "torch_dtype": "float32",
    }))
}
