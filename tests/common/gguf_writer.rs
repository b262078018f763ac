//! A GGUF writer for tests: the tiny Llama-family fixtures written as llama.cpp writes a file,
//! with changes applied, for the GGUF tests and the mutation test.
#![allow(dead_code)]

use super::root;

/// Metadata values for the test writer.
pub enum Meta {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
    F32s(Vec<f32>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// A GGUF v3 file: metadata, then tensors as (name, Hugging Face dims, ggml type, bytes).
pub fn write_gguf(
    path: &std::path::Path,
    meta: &[(&str, Meta)],
    tensors: &[(String, Vec<usize>, u32, Vec<u8>)],
) {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((meta.len() as u64).to_le_bytes());
    for (key, value) in meta {
        put_str(&mut out, key);
        match value {
            Meta::U32(v) => {
                out.extend(4u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::F32(v) => {
                out.extend(6u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::Bool(v) => {
                out.extend(7u32.to_le_bytes());
                out.push(*v as u8);
            }
            Meta::Str(s) => {
                out.extend(8u32.to_le_bytes());
                put_str(&mut out, s);
            }
            Meta::Strs(v) => {
                out.extend(9u32.to_le_bytes());
                out.extend(8u32.to_le_bytes());
                out.extend((v.len() as u64).to_le_bytes());
                v.iter().for_each(|s| put_str(&mut out, s));
            }
            Meta::I32s(v) => {
                out.extend(9u32.to_le_bytes());
                out.extend(5u32.to_le_bytes());
                out.extend((v.len() as u64).to_le_bytes());
                v.iter().for_each(|x| out.extend(x.to_le_bytes()));
            }
            Meta::F32s(v) => {
                out.extend(9u32.to_le_bytes());
                out.extend(6u32.to_le_bytes());
                out.extend((v.len() as u64).to_le_bytes());
                v.iter().for_each(|x| out.extend(x.to_le_bytes()));
            }
        }
    }
    let mut offset = 0usize;
    for (name, dims, ty, bytes) in tensors {
        put_str(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        dims.iter()
            .rev()
            .for_each(|d| out.extend((*d as u64).to_le_bytes()));
        out.extend(ty.to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offset += bytes.len().div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    for (_, _, _, bytes) in tensors {
        out.extend(bytes);
        out.resize(out.len().div_ceil(32) * 32, 0);
    }
    // Written aside and renamed into place: tests running at once may write the same model
    // while another has it memory-mapped, and rewriting a mapped file in place is a SIGBUS.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{n}"));
    std::fs::write(&tmp, out).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// llama.cpp's layout of a query/key projection: each head's rows in interleaved pairs.
pub fn permute_rows(w: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let half = rows / heads / 2;
    let mut out = vec![0.0; w.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let (hf, gg) = (h * 2 * half + j * half + i, h * 2 * half + 2 * i + j);
                out[gg * cols..(gg + 1) * cols].copy_from_slice(&w[hf * cols..(hf + 1) * cols]);
            }
        }
    }
    out
}

/// The tiny Llama fixture written as a llama.cpp-style GGUF (F32), with changes applied.
pub fn tiny_llama_gguf(
    name: &str,
    change: impl Fn(&mut Vec<(&str, Meta)>, &mut Vec<(String, Vec<usize>, u32, Vec<u8>)>),
) -> std::path::PathBuf {
    tiny_gguf("tiny-llama", "llama", name, change)
}

/// llama.cpp's `rope_freqs.weight` for a config's llama3 rope scaling: the divisor of each
/// frequency (as its convert_hf_to_gguf.py computes it).
fn llama3_rope_freqs(cfg: &serde_json::Value, head_dim: usize) -> Option<Vec<f32>> {
    let r = cfg.get("rope_parameters")?;
    if r["rope_type"] != "llama3" {
        return None;
    }
    let num = |k: &str| r[k].as_f64().unwrap();
    let (theta, factor) = (num("rope_theta"), num("factor"));
    let (low, high, original) = (
        num("low_freq_factor"),
        num("high_freq_factor"),
        num("original_max_position_embeddings"),
    );
    Some(
        (0..head_dim / 2)
            .map(|i| {
                let freq = 1.0 / theta.powf((2 * i) as f64 / head_dim as f64);
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                if wavelen < original / high {
                    1.0
                } else if wavelen > original / low {
                    factor as f32
                } else {
                    let smooth = (original / wavelen - low) / (high - low);
                    (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
                }
            })
            .collect(),
    )
}

/// A fixture tokenizer's tokens by id and its merges as "left right" (none for WordPiece).
fn fixture_vocab(folder: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("tokenizer.json")).unwrap())
            .unwrap();
    let vocab = tok["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (t, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = t.clone();
    }
    let merges = tok["model"]["merges"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| match m {
                    serde_json::Value::Array(p) => {
                        format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap())
                    }
                    s => s.as_str().unwrap().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    (tokens, merges)
}

/// The tiny fixture model in `folder` written as llama.cpp writes architecture `arch` (F32):
/// its metadata under `{arch}.`, its tensors under llama.cpp's names (query and key rows
/// permuted for `llama` only), Llama 3's rope scaling as `rope_freqs.weight`; with changes
/// applied.
pub fn tiny_gguf(
    folder: &str,
    arch: &str,
    name: &str,
    change: impl Fn(&mut Vec<(&str, Meta)>, &mut Vec<(String, Vec<usize>, u32, Vec<u8>)>),
) -> std::path::PathBuf {
    let src = root().join("tests/fixtures/models").join(folder);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let size = |k: &str| cfg[k].as_u64().unwrap() as u32;
    let (heads, kv_heads) = (size("num_attention_heads"), size("num_key_value_heads"));
    let head_dim = cfg["head_dim"]
        .as_u64()
        .map_or(size("hidden_size") / heads, |h| h as u32);
    // Gemma 3 keeps rope settings per layer type: the file's are the global layers'.
    let rope = match arch {
        "gemma3" => &cfg["rope_parameters"]["full_attention"],
        _ => &cfg["rope_parameters"],
    };
    let theta = rope["rope_theta"]
        .as_f64()
        .or(cfg["rope_theta"].as_f64())
        .unwrap() as f32;
    // Metadata keys live as long as the test process.
    let key = |k: &str| -> &'static str { Box::leak(format!("{arch}.{k}").into_boxed_str()) };
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (tokens, merges) = fixture_vocab(&src);
    let types: Vec<i32> = tokens
        .iter()
        .map(|t| {
            if ["<|endoftext|>", "<s>", "<pad>"].contains(&t.as_str()) {
                3
            } else {
                1
            }
        })
        .collect();
    let id = |t: &str| tokens.iter().position(|x| x == t).unwrap() as u32;
    let mut meta = vec![
        ("general.architecture", Meta::Str(arch.into())),
        (key("block_count"), Meta::U32(size("num_hidden_layers"))),
        (
            key("context_length"),
            Meta::U32(size("max_position_embeddings")),
        ),
        (key("embedding_length"), Meta::U32(size("hidden_size"))),
        (
            key("feed_forward_length"),
            Meta::U32(size("intermediate_size")),
        ),
        (key("attention.head_count"), Meta::U32(heads)),
        (key("attention.head_count_kv"), Meta::U32(kv_heads)),
        (key("rope.freq_base"), Meta::F32(theta)),
        (
            key("attention.layer_norm_rms_epsilon"),
            Meta::F32(cfg["rms_norm_eps"].as_f64().unwrap() as f32),
        ),
        ("tokenizer.ggml.model", Meta::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Meta::Str("default".into())),
        ("tokenizer.ggml.tokens", Meta::Strs(tokens.clone())),
        ("tokenizer.ggml.token_type", Meta::I32s(types)),
        ("tokenizer.ggml.merges", Meta::Strs(merges)),
        ("tokenizer.ggml.bos_token_id", Meta::U32(id("<s>"))),
        ("tokenizer.ggml.eos_token_id", Meta::U32(0)),
        ("tokenizer.ggml.padding_token_id", Meta::U32(id("<pad>"))),
        ("tokenizer.ggml.add_bos_token", Meta::Bool(true)),
    ];
    // As llama.cpp, the head size only where it is not hidden / heads (after the rest, so the
    // tests that change metadata by position find it where it always was).
    if arch.starts_with("gemma") || arch == "phi3" {
        if let Some(window) = cfg["sliding_window"].as_u64() {
            meta.push((key("attention.sliding_window"), Meta::U32(window as u32)));
        }
    }
    for cap in ["attn_logit_softcapping", "final_logit_softcapping"] {
        if let Some(c) = cfg[cap].as_f64() {
            meta.push((key(cap), Meta::F32(c as f32)));
        }
    }
    if let Some(p) = cfg["partial_rotary_factor"].as_f64().filter(|&p| p != 1.0) {
        let rot = (head_dim as f64 * p) as u32;
        meta.push((key("rope.dimension_count"), Meta::U32(rot)));
    }
    if rope["rope_type"] == "longrope" {
        let original = rope["original_max_position_embeddings"].as_u64().unwrap() as u32;
        meta.push((
            key("rope.scaling.original_context_length"),
            Meta::U32(original),
        ));
    }
    if rope["rope_type"] == "yarn" {
        let original = rope["original_max_position_embeddings"].as_u64().unwrap() as u32;
        meta.push((key("rope.scaling.type"), Meta::Str("yarn".into())));
        let factor = rope["factor"].as_f64().unwrap() as f32;
        meta.push((key("rope.scaling.factor"), Meta::F32(factor)));
        meta.push((
            key("rope.scaling.original_context_length"),
            Meta::U32(original),
        ));
    }
    if rope["rope_type"] == "linear" {
        meta.push((key("rope.scaling.type"), Meta::Str("linear".into())));
        let factor = rope["factor"].as_f64().unwrap() as f32;
        meta.push((key("rope.scaling.factor"), Meta::F32(factor)));
    }
    if head_dim != size("hidden_size") / heads || arch.starts_with("gemma") {
        meta.push((key("attention.key_length"), Meta::U32(head_dim)));
        meta.push((key("attention.value_length"), Meta::U32(head_dim)));
    }
    // Gemma's second norm follows attention (llama.cpp's `post_attention_norm`); the Llama
    // block's second norm is before the MLP (`ffn_norm`).
    let post_attention = if arch.starts_with("gemma") {
        "post_attention_norm"
    } else {
        "ffn_norm"
    };
    let rename = |n: &str| -> String {
        let n = n
            .replace("model.embed_tokens", "token_embd")
            .replace("model.norm", "output_norm")
            .replace("model.layers.", "blk.");
        [
            ("input_layernorm", "attn_norm"),
            ("self_attn.q_proj", "attn_q"),
            ("self_attn.k_proj", "attn_k"),
            ("self_attn.v_proj", "attn_v"),
            ("self_attn.o_proj", "attn_output"),
            ("self_attn.q_norm", "attn_q_norm"),
            ("self_attn.k_norm", "attn_k_norm"),
            ("pre_feedforward_layernorm", "ffn_norm"),
            ("post_feedforward_layernorm", "post_ffw_norm"),
            ("post_attention_layernorm", post_attention),
            ("mlp.gate_proj", "ffn_gate"),
            ("mlp.up_proj", "ffn_up"),
            ("mlp.gate_up_proj", "ffn_up"),
            ("self_attn.qkv_proj", "attn_qkv"),
            ("mlp.down_proj", "ffn_down"),
        ]
        .iter()
        .fold(n, |n, (a, b)| n.replace(a, b))
    };
    let mut tensors = Vec::new();
    for (n, view) in sorted_tensors(&st) {
        let mut f: Vec<f32> = view
            .data()
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let dims = view.shape().to_vec();
        let cols = dims.get(1).copied().unwrap_or(1);
        // llama.cpp's converter stores Gemma's norms as 1 + w.
        if arch.starts_with("gemma") && n.ends_with("norm.weight") {
            f.iter_mut().for_each(|v| *v += 1.0);
        }
        if arch == "llama" && n.contains("q_proj") {
            f = permute_rows(&f, dims[0], cols, heads as usize);
        }
        if arch == "llama" && n.contains("k_proj") {
            f = permute_rows(&f, dims[0], cols, kv_heads as usize);
        }
        tensors.push((
            rename(&n),
            dims,
            0u32,
            f.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    if rope["rope_type"] == "longrope" {
        for (which, name) in [
            ("long_factor", "rope_factors_long.weight"),
            ("short_factor", "rope_factors_short.weight"),
        ] {
            let f: Vec<f32> = rope[which]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            tensors.push((
                name.into(),
                vec![f.len()],
                0,
                f.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
        }
    }
    if let Some(freqs) = llama3_rope_freqs(&cfg, head_dim as usize) {
        tensors.push((
            "rope_freqs.weight".into(),
            vec![freqs.len()],
            0,
            freqs.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    change(&mut meta, &mut tensors);
    let dir = std::env::temp_dir().join(format!("gradlens-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.gguf"));
    write_gguf(&path, &meta, &tensors);
    path
}

/// A tiny encoder fixture (BERT, RoBERTa, XLM-R) written as llama.cpp's converter writes its
/// `bert` architecture: prefixes and the pooler dropped, RoBERTa's position rows below
/// `pad_token_id + 1` cut off, its head as `cls`/`cls.output`, and the vocabulary as the
/// converter spells it: WordPiece with a phantom space (`bert`), byte-level BPE with BOS and
/// EOS (`gpt2`), or, for XLM-R, a Unigram (`t5`) over the fixture's pieces respelled with "▁"
/// and scored by length (the fixture's own tokenizer is a BPE).
pub fn tiny_encoder_gguf(folder: &str, name: &str) -> std::path::PathBuf {
    let src = root().join("tests/fixtures/models").join(folder);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let size = |k: &str| cfg[k].as_u64().unwrap() as u32;
    let roberta = cfg["model_type"] != "bert";
    let offset = if roberta { size("pad_token_id") + 1 } else { 0 };
    let (tokens, merges) = fixture_vocab(&src);
    let special = |t: &str| t.starts_with(['[', '<']) && t.ends_with([']', '>']) && t.len() > 2;
    let types: Vec<i32> = tokens
        .iter()
        .map(|t| if special(t) { 3 } else { 1 })
        .collect();
    let id = |t: &str| tokens.iter().position(|x| x == t).unwrap() as u32;
    let mut meta = vec![
        ("general.architecture", Meta::Str("bert".into())),
        ("bert.block_count", Meta::U32(size("num_hidden_layers"))),
        (
            "bert.context_length",
            Meta::U32(size("max_position_embeddings") - offset),
        ),
        ("bert.embedding_length", Meta::U32(size("hidden_size"))),
        (
            "bert.feed_forward_length",
            Meta::U32(size("intermediate_size")),
        ),
        (
            "bert.attention.head_count",
            Meta::U32(size("num_attention_heads")),
        ),
        (
            "bert.attention.layer_norm_epsilon",
            Meta::F32(cfg["layer_norm_eps"].as_f64().unwrap() as f32),
        ),
        ("bert.attention.causal", Meta::Bool(false)),
        (
            "tokenizer.ggml.token_type_count",
            Meta::U32(size("type_vocab_size")),
        ),
    ];
    match cfg["model_type"].as_str().unwrap() {
        "bert" => {
            let phantom: Vec<String> = tokens
                .iter()
                .map(|t| match t.strip_prefix("##") {
                    _ if special(t) => t.clone(),
                    Some(rest) => rest.to_string(),
                    None => format!("\u{2581}{t}"),
                })
                .collect();
            meta.extend([
                ("tokenizer.ggml.model", Meta::Str("bert".into())),
                ("tokenizer.ggml.pre", Meta::Str("default".into())),
                ("tokenizer.ggml.tokens", Meta::Strs(phantom)),
                ("tokenizer.ggml.token_type", Meta::I32s(types)),
                ("tokenizer.ggml.unknown_token_id", Meta::U32(id("[UNK]"))),
                ("tokenizer.ggml.seperator_token_id", Meta::U32(id("[SEP]"))),
                ("tokenizer.ggml.padding_token_id", Meta::U32(id("[PAD]"))),
                ("tokenizer.ggml.cls_token_id", Meta::U32(id("[CLS]"))),
                ("tokenizer.ggml.mask_token_id", Meta::U32(id("[MASK]"))),
            ]);
        }
        "roberta" => {
            meta.extend([
                ("tokenizer.ggml.model", Meta::Str("gpt2".into())),
                ("tokenizer.ggml.pre", Meta::Str("roberta-bpe".into())),
                ("tokenizer.ggml.tokens", Meta::Strs(tokens.clone())),
                ("tokenizer.ggml.token_type", Meta::I32s(types)),
                ("tokenizer.ggml.merges", Meta::Strs(merges)),
                ("tokenizer.ggml.bos_token_id", Meta::U32(id("<s>"))),
                ("tokenizer.ggml.eos_token_id", Meta::U32(id("</s>"))),
                ("tokenizer.ggml.padding_token_id", Meta::U32(id("<pad>"))),
                ("tokenizer.ggml.unknown_token_id", Meta::U32(id("<unk>"))),
                ("tokenizer.ggml.add_bos_token", Meta::Bool(true)),
                ("tokenizer.ggml.add_eos_token", Meta::Bool(true)),
            ]);
        }
        _ => {
            let pieces: Vec<String> = tokens.iter().map(|t| t.replace('Ġ', "\u{2581}")).collect();
            let scores = pieces
                .iter()
                .map(|p| {
                    if special(p) {
                        0.0
                    } else {
                        -10.0 / p.chars().count() as f32
                    }
                })
                .collect();
            let types = pieces
                .iter()
                .map(|p| match p.as_str() {
                    "<unk>" => 2,
                    p if special(p) => 3,
                    _ => 1,
                })
                .collect();
            meta.extend([
                ("tokenizer.ggml.model", Meta::Str("t5".into())),
                ("tokenizer.ggml.pre", Meta::Str("default".into())),
                ("tokenizer.ggml.tokens", Meta::Strs(pieces)),
                ("tokenizer.ggml.scores", Meta::F32s(scores)),
                ("tokenizer.ggml.token_type", Meta::I32s(types)),
                ("tokenizer.ggml.add_space_prefix", Meta::Bool(true)),
                ("tokenizer.ggml.remove_extra_whitespaces", Meta::Bool(true)),
                ("tokenizer.ggml.bos_token_id", Meta::U32(id("<s>"))),
                ("tokenizer.ggml.eos_token_id", Meta::U32(id("</s>"))),
                ("tokenizer.ggml.padding_token_id", Meta::U32(id("<pad>"))),
                ("tokenizer.ggml.add_bos_token", Meta::Bool(true)),
                ("tokenizer.ggml.add_eos_token", Meta::Bool(true)),
            ]);
        }
    }
    let rename = |n: &str| -> Option<String> {
        let n = n.trim_start_matches("bert.").trim_start_matches("roberta.");
        if n.starts_with("pooler.") || n == "classifier.weight" || n == "classifier.bias" {
            return None;
        }
        let n = n
            .replace("embeddings.word_embeddings", "token_embd")
            .replace("embeddings.token_type_embeddings", "token_types")
            .replace("embeddings.position_embeddings", "position_embd")
            .replace("embeddings.LayerNorm", "token_embd_norm")
            .replace("classifier.dense", "cls")
            .replace("classifier.out_proj", "cls.output")
            .replace("encoder.layer.", "blk.");
        Some(
            [
                ("attention.self.query", "attn_q"),
                ("attention.self.key", "attn_k"),
                ("attention.self.value", "attn_v"),
                ("attention.output.dense", "attn_output"),
                ("attention.output.LayerNorm", "attn_output_norm"),
                ("intermediate.dense", "ffn_up"),
                ("output.dense", "ffn_down"),
                ("output.LayerNorm", "layer_output_norm"),
            ]
            .iter()
            .fold(n, |n, (a, b)| n.replace(a, b)),
        )
    };
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = Vec::new();
    for (n, view) in sorted_tensors(&st) {
        let Some(gguf) = rename(&n) else { continue };
        let mut dims = view.shape().to_vec();
        let mut data = view.data().to_vec();
        if gguf == "position_embd.weight" {
            data.drain(..offset as usize * dims[1] * 4);
            dims[0] -= offset as usize;
        }
        tensors.push((gguf, dims, 0u32, data));
    }
    let dir = std::env::temp_dir().join(format!("gradlens-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.gguf"));
    write_gguf(&path, &meta, &tensors);
    path
}

/// The file's tensors by name: `SafeTensors::tensors` comes in hash order, and tests that
/// patch or retype a tensor by its position need the same file every run.
fn sorted_tensors<'a>(
    st: &'a safetensors::SafeTensors<'a>,
) -> Vec<(String, safetensors::tensor::TensorView<'a>)> {
    let mut all = st.tensors();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}
