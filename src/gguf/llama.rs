//! Llama-family GGUF files (llama.cpp's `llama`, `qwen2`, `qwen3` and `gemma3` architectures;
//! Mistral and Llama 3 are `llama` there) as Hugging Face names and `config.json`.
//!
//! For `llama` only, llama.cpp stores the query and key projections with the rows of each head
//! permuted for its RoPE layout (pairs interleaved instead of halves); `unpermute_order` undoes
//! that, so the weights match a Hugging Face checkpoint and the rotate-half RoPE. The Qwen
//! architectures use llama.cpp's NeoX RoPE, which is rotate-half, and are stored unpermuted.

use super::reader::{GgufFile, Value};
use crate::error::{Error, Result};
use serde_json::json;

/// The architectures (`general.architecture`) read here; each names its metadata namespace.
pub const ARCHITECTURES: [&str; 6] = ["llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"];

/// Gemma's architectures, whose norms llama.cpp stores as `1 + w`.
pub fn is_gemma(arch: &str) -> bool {
    matches!(arch, "gemma2" | "gemma3")
}

/// The file's `general.architecture`.
pub fn architecture(file: &GgufFile) -> &str {
    file.get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("(none)")
}

/// The Hugging Face name of each GGUF tensor of a block of `arch`, and whether its rows are
/// permuted in a `llama` file (`Some(kv)`: permuted per head; `kv` says which head count
/// applies). Gemma's block norms its sublayers' outputs too, and llama.cpp calls its norm
/// before the MLP `ffn_norm`, which is the Llama block's second norm.
fn block_names(arch: &str) -> Vec<(&'static str, &'static str, Option<bool>)> {
    let mut names = vec![
        ("attn_norm.weight", "input_layernorm.weight", None),
        ("attn_q.weight", "self_attn.q_proj.weight", Some(false)),
        ("attn_k.weight", "self_attn.k_proj.weight", Some(true)),
        ("attn_v.weight", "self_attn.v_proj.weight", None),
        ("attn_q.bias", "self_attn.q_proj.bias", Some(false)),
        ("attn_k.bias", "self_attn.k_proj.bias", Some(true)),
        ("attn_v.bias", "self_attn.v_proj.bias", None),
        ("attn_output.bias", "self_attn.o_proj.bias", None),
        ("attn_q_norm.weight", "self_attn.q_norm.weight", None),
        ("attn_k_norm.weight", "self_attn.k_norm.weight", None),
        ("attn_output.weight", "self_attn.o_proj.weight", None),
        ("ffn_gate.weight", "mlp.gate_proj.weight", None),
        ("ffn_down.weight", "mlp.down_proj.weight", None),
    ];
    // Phi-3's fused projections: llama.cpp's `ffn_up` holds gate and up.
    if arch == "phi3" {
        names.extend([
            ("attn_qkv.weight", "self_attn.qkv_proj.weight", None),
            ("ffn_up.weight", "mlp.gate_up_proj.weight", None),
        ]);
    } else {
        names.push(("ffn_up.weight", "mlp.up_proj.weight", None));
    }
    if is_gemma(arch) {
        names.extend([
            (
                "post_attention_norm.weight",
                "post_attention_layernorm.weight",
                None,
            ),
            ("ffn_norm.weight", "pre_feedforward_layernorm.weight", None),
            (
                "post_ffw_norm.weight",
                "post_feedforward_layernorm.weight",
                None,
            ),
        ]);
    } else {
        names.push(("ffn_norm.weight", "post_attention_layernorm.weight", None));
    }
    names
}

/// Where a Hugging Face tensor lives in the file: (GGUF name, heads whose rows to un-permute).
pub fn locate(file: &GgufFile, hf_name: &str) -> Option<(String, Option<usize>)> {
    let arch = architecture(file);
    let heads = meta_usize(file, &format!("{arch}.attention.head_count"));
    let kv_heads = meta_usize(file, &format!("{arch}.attention.head_count_kv")).or(heads);
    let fixed = match hf_name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(n) = fixed {
        return file.tensor(n).map(|_| (n.to_string(), None));
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let (gguf, _, permute) = block_names(arch)
        .into_iter()
        .find(|(_, hf, _)| *hf == suffix)?;
    let name = format!("blk.{layer}.{gguf}");
    file.tensor(&name)?;
    let heads = match permute {
        _ if arch != "llama" => None,
        Some(true) => kv_heads,
        Some(false) => heads,
        None => None,
    };
    Some((name, heads))
}

/// Every Hugging Face tensor name the file provides, in file order.
pub fn hf_names(file: &GgufFile) -> Vec<String> {
    let blocks = block_names(architecture(file));
    let mut names = Vec::new();
    for t in &file.tensors {
        let hf = match t.name.as_str() {
            "token_embd.weight" => Some("model.embed_tokens.weight".to_string()),
            "output_norm.weight" => Some("model.norm.weight".to_string()),
            "output.weight" => Some("lm_head.weight".to_string()),
            n => n
                .strip_prefix("blk.")
                .and_then(|r| r.split_once('.'))
                .and_then(|(layer, suffix)| {
                    blocks
                        .iter()
                        .find(|(g, _, _)| *g == suffix)
                        .map(|(_, hf, _)| format!("model.layers.{layer}.{hf}"))
                }),
        };
        names.extend(hf);
    }
    names
}

/// llama.cpp stores the query and key projections with each head's rows interleaved for its
/// RoPE: Hugging Face's row `r` of `[rows, cols]` (rows = heads · 2 · half) is stored row
/// `order[r]`.
pub fn unpermute_order(rows: usize, heads: usize) -> Result<Vec<u32>> {
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(Error::Other(format!(
            "{rows} rows do not split into {heads} rotary heads"
        )));
    }
    let half = rows / heads / 2;
    let mut order = vec![0u32; rows];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                // Stored row h·2·half + 2i + j is Hugging Face's row h·2·half + j·half + i.
                order[h * 2 * half + j * half + i] = (h * 2 * half + 2 * i + j) as u32;
            }
        }
    }
    Ok(order)
}

/// `w: [rows, cols]` with llama.cpp's rows put back in Hugging Face's order.
pub fn unpermute_rows(w: &[f32], rows: usize, cols: usize, heads: usize) -> Result<Vec<f32>> {
    let order = unpermute_order(rows, heads)?;
    let mut out = vec![0.0f32; w.len()];
    for (dst, &src) in order.iter().enumerate() {
        let src = src as usize;
        out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
    }
    Ok(out)
}

fn meta_usize(file: &GgufFile, key: &str) -> Option<usize> {
    file.get(key).and_then(Value::as_u64).map(|v| v as usize)
}

/// A Hugging Face `config.json` for the file's model.
pub fn config(file: &GgufFile) -> Result<serde_json::Value> {
    let arch = architecture(file);
    if !ARCHITECTURES.contains(&arch) {
        return Err(Error::UnsupportedArchitecture(format!(
            "{arch} (in GGUF {})",
            file.path.display()
        )));
    }
    let key = |k: &str| format!("{arch}.{k}");
    let need = |k: &str| -> Result<usize> {
        meta_usize(file, &key(k)).ok_or_else(|| Error::Config {
            path: file.path.clone(),
            reason: format!("GGUF metadata lacks '{}'", key(k)),
        })
    };
    let hidden = need("embedding_length")?;
    let heads = need("attention.head_count")?;
    let head_dim = meta_usize(file, &key("attention.key_length")).unwrap_or(hidden / heads.max(1));
    let vocab = meta_usize(file, &key("vocab_size"))
        .or_else(|| {
            file.get("tokenizer.ggml.tokens")
                .and_then(Value::as_array)
                .map(|t| t.len())
        })
        .ok_or_else(|| Error::Config {
            path: file.path.clone(),
            reason: "no vocabulary size".into(),
        })?;
    // A present but non-finite constant is an error, never silently the default.
    let f = |key: &str, default: f64| -> Result<f64> {
        match file.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| Error::Config {
                    path: file.path.clone(),
                    reason: format!("GGUF metadata '{key}' is {v:?}, not a finite number"),
                }),
        }
    };
    let id = |key: &str| meta_usize(file, key);
    let theta = f(&key("rope.freq_base"), 10000.0)?;
    let rope = match file.get(&key("rope.scaling.type")).and_then(Value::as_str) {
        None | Some("none") => json!({"rope_type": "default", "rope_theta": theta}),
        Some("linear") => json!({"rope_type": "linear", "rope_theta": theta,
                                 "factor": f(&key("rope.scaling.factor"), 1.0)?}),
        Some("yarn") => json!({"rope_type": "yarn", "rope_theta": theta,
                               "factor": f(&key("rope.scaling.factor"), 1.0)?,
                               "original_max_position_embeddings": need("rope.scaling.original_context_length")?}),
        Some(other) => {
            return Err(Error::Config {
                path: file.path.clone(),
                reason: format!("unsupported rope scaling '{other}'"),
            })
        }
    };
    let class = match arch {
        "qwen2" => "Qwen2ForCausalLM",
        "qwen3" => "Qwen3ForCausalLM",
        "phi3" => "Phi3ForCausalLM",
        "gemma2" => "Gemma2ForCausalLM",
        "gemma3" => "Gemma3ForCausalLM",
        _ => "LlamaForCausalLM",
    };
    let mut config = json!({
        "architectures": [class],
        "model_type": arch,
        "hidden_size": hidden,
        "intermediate_size": need("feed_forward_length")?,
        "num_hidden_layers": need("block_count")?,
        "num_attention_heads": heads,
        "num_key_value_heads": meta_usize(file, &key("attention.head_count_kv")).unwrap_or(heads),
        "head_dim": head_dim,
        "max_position_embeddings": need("context_length")?,
        "rms_norm_eps": f(&key("attention.layer_norm_rms_epsilon"), 1e-5)? as f32,
        "rope_parameters": rope,
        "vocab_size": vocab,
        "hidden_act": "silu",
        "attention_bias": file.tensor("blk.0.attn_output.bias").is_some(),
        "tie_word_embeddings": file.tensor("output.weight").is_none(),
        "bos_token_id": id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": id("tokenizer.ggml.eos_token_id"),
        "pad_token_id": id("tokenizer.ggml.padding_token_id"),
        "torch_dtype": "float32",
    });
    if arch == "phi3" {
        // Longrope (Phi-3's 128k sizes): llama.cpp keeps the factors as two tensors.
        if let (Some(long), Some(short)) = (
            file.tensor("rope_factors_long.weight"),
            file.tensor("rope_factors_short.weight"),
        ) {
            let mut p = json!({
                "rope_type": "longrope",
                "rope_theta": theta,
                "long_factor": file.dequantize(long)?,
                "short_factor": file.dequantize(short)?,
                "original_max_position_embeddings": need("rope.scaling.original_context_length")?,
            });
            if file.get(&key("rope.scaling.attn_factor")).is_some() {
                p["attention_factor"] = json!(f(&key("rope.scaling.attn_factor"), 1.0)?);
            }
            config["rope_parameters"] = p;
        }
        config["sliding_window"] = match meta_usize(file, &key("attention.sliding_window")) {
            Some(w) => json!(w),
            None => serde_json::Value::Null,
        };
    }
    if arch == "gemma2" {
        // llama.cpp: every other layer local, one RoPE base for all, the query scale (but for
        // the 27B) head_dim's, and the caps in the metadata.
        config["hidden_activation"] = json!("gelu_pytorch_tanh");
        config["query_pre_attn_scalar"] = json!(head_dim);
        config["sliding_window"] = json!(need("attention.sliding_window")?);
        config["sliding_window_pattern"] = json!(2);
        for cap in ["attn_logit_softcapping", "final_logit_softcapping"] {
            config[cap] = match file.get(&key(cap)) {
                Some(_) => json!(f(&key(cap), 0.0)?),
                None => serde_json::Value::Null,
            };
        }
    }
    if arch == "gemma3" {
        // transformers' names; llama.cpp fixes the local layers' RoPE base at 10000, one layer
        // in six global, and (but for the 27B) the query scale at head_dim's.
        config["model_type"] = json!("gemma3_text");
        config["hidden_activation"] = json!("gelu_pytorch_tanh");
        config["query_pre_attn_scalar"] = json!(head_dim);
        config["sliding_window"] = json!(need("attention.sliding_window")?);
        config["sliding_window_pattern"] = json!(6);
        config["rope_parameters"] = json!({
            "full_attention": rope,
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        });
        // What transformers 4.x reads instead (LXT runs on it).
        config["rope_theta"] = json!(theta);
        config["rope_local_base_freq"] = json!(10000.0);
        config["rope_scaling"] = match rope["rope_type"].as_str() {
            Some("linear") => json!({"rope_type": "linear", "factor": rope["factor"]}),
            _ => serde_json::Value::Null,
        };
    }
    // A rotary part smaller than the head (Phi-4-mini).
    if let Some(rot) = meta_usize(file, &key("rope.dimension_count")).filter(|&r| r != head_dim) {
        config["partial_rotary_factor"] = json!(rot as f64 / head_dim.max(1) as f64);
    }
    // Llama 3's rope scaling, which llama.cpp keeps as per-frequency divisors.
    if let Some(info) = file.tensor("rope_freqs.weight") {
        let factors = file.dequantize(info)?;
        config["rope_freq_factors"] = json!(factors);
    }
    Ok(config)
}
