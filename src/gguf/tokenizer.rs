//! Rebuilding a Hugging Face `tokenizer.json` from `tokenizer.ggml.*`, as transformers'
//! conversion does for byte-level BPE (`tokenizer.ggml.model = gpt2`): the vocabulary in the
//! byte-level alphabet, the merges, control tokens as special added tokens, user-defined
//! tokens as plain added tokens, a ByteLevel pre-tokenizer (with Llama 3's or Qwen2's split
//! regex for the files that name them; Qwen2's also NFC-normalises) and decoder, and BOS
//! prepended when `add_bos_token` says so.

use super::reader::{GgufFile, Value};
use crate::error::{Error, Result};
use serde_json::{json, Map};

/// GPT-2's reversible byte → printable character map.
fn byte_alphabet() -> Vec<char> {
    let mut printable: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in printable.iter().zip(chars) {
        table[*b as usize] = char::from_u32(c).unwrap();
    }
    table
}

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_PRE: [&str; 11] = [
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
];
/// Qwen2's split (transformers' `Qwen2Converter`): Llama 3's, but digits one at a time.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_PRE: [&str; 2] = ["qwen2", "deepseek-r1-qwen"];
/// Pre-tokenizers whose split transformers knows and we do not rebuild yet.
const OTHER_PRE: [&str; 9] = [
    "tekken", "kormo", "f2llmv2", "megrez", "qwen35", "gpt-4o", "llama4", "kanana2", "talkie",
];

fn strings<'a>(file: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
    file.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Tokenizer(format!("{}: no '{key}'", file.path.display())))?
        .iter()
        .map(|v| {
            v.as_str().ok_or_else(|| {
                Error::Tokenizer(format!(
                    "{}: '{key}' holds a non-string",
                    file.path.display()
                ))
            })
        })
        .collect()
}

/// `(tokenizer.json, tokenizer_config.json)` for the file.
pub fn tokenizer_json(file: &GgufFile) -> Result<(serde_json::Value, serde_json::Value)> {
    let model = file
        .get("tokenizer.ggml.model")
        .and_then(Value::as_str)
        .unwrap_or("(none)");
    // Gemma's sentencepiece vocabulary becomes a byte-fallback BPE (see `sentencepiece`).
    let gemma = model == "llama" && super::llama::is_gemma(super::llama::architecture(file));
    let encoder = matches!(model, "bert" | "t5");
    if model != "gpt2" && !gemma && !encoder {
        return Err(Error::Tokenizer(format!(
            "{}: tokenizer model '{model}' cannot be rebuilt (supported: byte-level BPE 'gpt2', WordPiece 'bert', Unigram 't5', and Gemma's sentencepiece)",
            file.path.display()
        )));
    }
    let pre = file
        .get("tokenizer.ggml.pre")
        .and_then(Value::as_str)
        .unwrap_or("default");
    if OTHER_PRE.contains(&pre) {
        return Err(Error::Tokenizer(format!(
            "{}: pre-tokenizer '{pre}' is not supported yet",
            file.path.display()
        )));
    }
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    if gemma {
        return gemma_tokenizer_json(file, &tokens);
    }
    if encoder {
        let tokenizer = match model {
            "bert" => super::encoder_vocab::wordpiece(file, &tokens)?,
            _ => super::encoder_vocab::unigram(file, &tokens)?,
        };
        return Ok((tokenizer, tokenizer_config(file, &tokens)));
    }
    let merges = strings(file, "tokenizer.ggml.merges")?;
    let types = token_types(file);
    let alphabet = byte_alphabet();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    let mut vocab = Map::new();
    for (id, t) in tokens.iter().enumerate() {
        let spelled = if in_alphabet(t) {
            t.to_string()
        } else {
            t.bytes().map(|b| alphabet[b as usize]).collect()
        };
        vocab.insert(spelled, json!(id));
    }
    let merges: Vec<serde_json::Value> = merges
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').unwrap_or((m, ""));
            json!([a, b])
        })
        .collect();
    // 3: control (special); 4: user-defined (matched whole, not special). A control token
    // outside the byte alphabet is a mislabel in some files, and is skipped as transformers does.
    let added = added_tokens(tokens.iter().copied(), &types, |t, ty| match ty {
        3 if in_alphabet(t) => Some(true),
        4 => Some(false),
        _ => None,
    });
    let byte_level = |regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
    let split = |regex: &str| {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            byte_level(false)]})
    };
    let (normalizer, pre_tokenizer) = if LLAMA3_PRE.contains(&pre) {
        (json!(null), split(LLAMA3_SPLIT))
    } else if QWEN2_PRE.contains(&pre) {
        (json!({"type": "NFC"}), split(QWEN2_SPLIT))
    } else {
        (json!(null), byte_level(true))
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": bos_template(file, &tokens),
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    Ok((tokenizer, tokenizer_config(file, &tokens)))
}

/// The id `key` names, and that token.
pub(super) fn special<'a>(
    file: &GgufFile,
    tokens: &[&'a str],
    key: &str,
) -> (Option<usize>, Option<&'a str>) {
    let id = file.get(key).and_then(Value::as_u64).map(|v| v as usize);
    (id, id.and_then(|i| tokens.get(i).copied()))
}

/// The id and token `key` names, where both exist.
pub(super) fn special_token<'a>(
    file: &GgufFile,
    tokens: &[&'a str],
    key: &str,
) -> Option<(usize, &'a str)> {
    let (id, token) = special(file, tokens, key);
    id.zip(token)
}

/// The boolean `key`, or `default` where the file has none.
pub(super) fn flag(file: &GgufFile, key: &str, default: bool) -> bool {
    match file.get(key) {
        Some(Value::Bool(b)) => *b,
        _ => default,
    }
}

/// Whether the file asks for BOS in front of each sequence.
fn add_bos(file: &GgufFile) -> bool {
    flag(file, "tokenizer.ggml.add_bos_token", false)
}

/// BOS in front of each sequence when `add_bos_token` says so, and EOS after it when
/// `add_eos_token` does (RoBERTa's `<s> … </s>`).
fn bos_template(file: &GgufFile, tokens: &[&str]) -> serde_json::Value {
    let first =
        special_token(file, tokens, "tokenizer.ggml.bos_token_id").filter(|_| add_bos(file));
    let last = special_token(file, tokens, "tokenizer.ggml.eos_token_id")
        .filter(|_| flag(file, "tokenizer.ggml.add_eos_token", false));
    wrap_template(first, last)
}

/// A post-processor that puts `first` before and `last` after each sequence (of a pair, `last`
/// after each of the two, as BERT does).
pub(super) fn wrap_template(
    first: Option<(usize, &str)>,
    last: Option<(usize, &str)>,
) -> serde_json::Value {
    let token = |t: &str, ty: u32| json!({"SpecialToken": {"id": t, "type_id": ty}});
    let seq = |id: &str, ty: u32| json!({"Sequence": {"id": id, "type_id": ty}});
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut specials = Map::new();
    if let Some((id, t)) = first {
        single.push(token(t, 0));
        pair.push(token(t, 0));
        specials.insert(t.into(), json!({"id": t, "ids": [id], "tokens": [t]}));
    }
    single.push(seq("A", 0));
    pair.push(seq("A", 0));
    if let Some((_, t)) = last {
        single.push(token(t, 0));
        pair.push(token(t, 0));
    }
    pair.push(seq("B", 1));
    if let Some((id, t)) = last {
        pair.push(token(t, 1));
        specials.insert(t.into(), json!({"id": t, "ids": [id], "tokens": [t]}));
    }
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials})
}

/// `tokenizer_config.json`: the special tokens, BOS, the context and the chat template.
fn tokenizer_config(file: &GgufFile, tokens: &[&str]) -> serde_json::Value {
    let token_of = |key: &str| special(file, tokens, key).1;
    let arch = super::llama::architecture(file);
    let context = file
        .get(&format!("{arch}.context_length"))
        .and_then(Value::as_u64);
    json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos(file),
        "bos_token": token_of("tokenizer.ggml.bos_token_id"),
        "eos_token": token_of("tokenizer.ggml.eos_token_id"),
        "pad_token": token_of("tokenizer.ggml.padding_token_id"),
        "unk_token": token_of("tokenizer.ggml.unknown_token_id"),
        "model_max_length": context,
        "chat_template": file.get("tokenizer.chat_template").and_then(Value::as_str),
    })
}

pub(super) fn token_types(file: &GgufFile) -> Vec<i64> {
    file.get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| if let Value::Int(i) = v { *i } else { 1 })
                .collect()
        })
        .unwrap_or_default()
}

/// Gemma's vocabulary as transformers rebuilds it: a byte-fallback BPE over text whose spaces
/// are "▁", with the merges `sentencepiece::merges` recovers; control tokens special, and
/// user-defined ones (the runs of newlines) matched whole where the vocabulary spells them so.
fn gemma_tokenizer_json(
    file: &GgufFile,
    tokens: &[&str],
) -> Result<(serde_json::Value, serde_json::Value)> {
    let types = token_types(file);
    let respelled: Vec<String> = tokens
        .iter()
        .map(|t| super::sentencepiece::respell(t))
        .collect();
    let mut vocab = Map::new();
    for (id, t) in respelled.iter().enumerate() {
        vocab.insert(t.clone(), json!(id));
    }
    let merges: Vec<serde_json::Value> = super::sentencepiece::merges(&respelled)
        .into_iter()
        .map(|(l, r)| json!([l, r]))
        .collect();
    let added = added_tokens(tokens.iter().copied(), &types, |t, ty| match ty {
        3 => Some(true),
        4 if vocab.contains_key(t) => Some(false),
        _ => None,
    });
    let unk = special(file, tokens, "tokenizer.ggml.unknown_token_id")
        .1
        .unwrap_or("<unk>");
    let space = |from: &str, to: &str| json!({"type": "Replace", "pattern": {"String": from}, "content": to});
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": space(" ", "\u{2581}"),
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
        "post_processor": bos_template(file, tokens),
        "decoder": {"type": "Sequence", "decoders": [space("\u{2581}", " "), {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    Ok((tokenizer, tokenizer_config(file, tokens)))
}

/// `added_tokens` entries: each token `kind(token, type)` marks (`Some(special)`), by id.
pub(super) fn added_tokens<'a>(
    tokens: impl Iterator<Item = &'a str>,
    types: &[i64],
    kind: impl Fn(&str, i64) -> Option<bool>,
) -> Vec<serde_json::Value> {
    tokens
        .zip(types.iter().copied().chain(std::iter::repeat(1)))
        .enumerate()
        .filter_map(|(id, (t, ty))| {
            kind(t, ty).map(|special| {
                json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": special})
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::byte_alphabet;

    #[test]
    fn byte_alphabet_matches_gpt2() {
        let a = byte_alphabet();
        assert_eq!(a[b'A' as usize], 'A');
        assert_eq!(a[b' ' as usize], 'Ġ');
        assert_eq!(a[b'\n' as usize], 'Ċ');
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 256, "one character per byte");
    }
}
