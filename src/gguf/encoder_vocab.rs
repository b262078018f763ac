//! The encoders' vocabularies in llama.cpp's BERT files, rebuilt as `tokenizer.json` models:
//!
//! - `bert` (WordPiece): llama.cpp respells the vocabulary with a "phantom space": a
//!   word-initial piece `x` is stored `▁x`, a continuation `##x` is stored `x`, and bracketed
//!   specials stay as they are. Undone here, with BERT's normaliser (llama.cpp lowercases, as
//!   the uncased models it serves do) and `[CLS] … [SEP]` around each sequence.
//! - `t5` (Unigram, XLM-R): the pieces and their scores, sentencepiece's precompiled
//!   normalisation map where the file has one, "▁" for spaces, and `<s> … </s>`.

use super::reader::{GgufFile, Value};
use super::tokenizer::{added_tokens, flag, special_token, token_types, wrap_template};
use crate::error::{Error, Result};
use serde_json::{json, Map};

const SPACE: &str = "\u{2581}";

/// A WordPiece `tokenizer.json` for a `bert` vocabulary.
pub fn wordpiece(file: &GgufFile, tokens: &[&str]) -> Result<serde_json::Value> {
    let mut vocab = Map::new();
    for (id, t) in tokens.iter().enumerate() {
        let piece = if t.starts_with('[') && t.ends_with(']') {
            t.to_string()
        } else if let Some(word) = t.strip_prefix(SPACE) {
            word.to_string()
        } else {
            format!("##{t}")
        };
        vocab.insert(piece, json!(id));
    }
    let find = |key: &str, fallback: &str| match special_token(file, tokens, key) {
        Some((i, t)) => Some((i, t.to_string())),
        None => vocab
            .get(fallback)
            .and_then(|v| v.as_u64())
            .map(|i| (i as usize, fallback.to_string())),
    };
    let cls = find("tokenizer.ggml.cls_token_id", "[CLS]")
        .or_else(|| find("tokenizer.ggml.bos_token_id", "[CLS]"));
    let sep = find("tokenizer.ggml.seperator_token_id", "[SEP]")
        .or_else(|| find("tokenizer.ggml.eos_token_id", "[SEP]"));
    let unk = find("tokenizer.ggml.unknown_token_id", "[UNK]").ok_or_else(|| {
        Error::Tokenizer(format!(
            "{}: the WordPiece vocabulary has no unknown token",
            file.path.display()
        ))
    })?;
    let types = token_types(file);
    let added = added_tokens(tokens.iter().copied(), &types, |t, ty| {
        (ty == 3 || vocab_is_special(t)).then_some(true)
    });
    let first = cls.as_ref().map(|(i, t)| (*i, t.as_str()));
    let last = sep.as_ref().map(|(i, t)| (*i, t.as_str()));
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": wrap_template(first, last),
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": unk.1, "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }))
}

/// BERT's own specials, which files written before token types were kept leave as normal.
fn vocab_is_special(t: &str) -> bool {
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].contains(&t)
}

/// A Unigram `tokenizer.json` for a `t5` vocabulary (XLM-R).
pub fn unigram(file: &GgufFile, tokens: &[&str]) -> Result<serde_json::Value> {
    let scores: Vec<f64> = file
        .get("tokenizer.ggml.scores")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Error::Tokenizer(format!(
                "{}: a Unigram vocabulary without 'tokenizer.ggml.scores'",
                file.path.display()
            ))
        })?
        .iter()
        .map(|v| v.as_f64().filter(|s| s.is_finite()))
        .collect::<Option<_>>()
        .filter(|s: &Vec<f64>| s.len() == tokens.len())
        .ok_or_else(|| {
            Error::Tokenizer(format!(
                "{}: 'tokenizer.ggml.scores' is not one finite score per token",
                file.path.display()
            ))
        })?;
    let types = token_types(file);
    // 2: unknown; sentencepiece has exactly one.
    let unk = types.iter().position(|&t| t == 2).or_else(|| {
        file.get("tokenizer.ggml.unknown_token_id")
            .and_then(Value::as_u64)
            .map(|v| v as usize)
    });
    let vocab: Vec<serde_json::Value> = tokens
        .iter()
        .zip(&scores)
        .map(|(t, s)| json!([t, s]))
        .collect();
    let mut normalizers = Vec::new();
    if let Some(map) = file
        .get("tokenizer.ggml.precompiled_charsmap")
        .and_then(Value::as_array)
    {
        let bytes: Vec<u8> = map
            .iter()
            .map(|v| match v {
                Value::Int(i) => *i as u8,
                _ => 0,
            })
            .collect();
        normalizers.push(json!({"type": "Precompiled", "precompiled_charsmap": base64(&bytes)}));
    }
    if flag(file, "tokenizer.ggml.remove_extra_whitespaces", true) {
        normalizers.push(json!({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}));
    }
    let prepend = if flag(file, "tokenizer.ggml.add_space_prefix", true) {
        "always"
    } else {
        "never"
    };
    let metaspace = json!({"type": "Metaspace", "replacement": SPACE, "prepend_scheme": prepend, "split": true});
    let added = added_tokens(tokens.iter().copied(), &types, |_, ty| {
        matches!(ty, 2 | 3).then_some(true)
    });
    let on = |key: &str| flag(file, key, true);
    let first = special_token(file, tokens, "tokenizer.ggml.bos_token_id")
        .filter(|_| on("tokenizer.ggml.add_bos_token"));
    let last = special_token(file, tokens, "tokenizer.ggml.eos_token_id")
        .filter(|_| on("tokenizer.ggml.add_eos_token"));
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": metaspace,
        "post_processor": wrap_template(first, last),
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": unk, "vocab": vocab, "byte_fallback": false},
    }))
}

/// Standard base64 with padding (what `Precompiled` reads its map from).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(plain.as_bytes()), coded);
        }
    }
}
