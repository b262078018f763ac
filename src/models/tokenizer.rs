//! Text to token ids through a Hugging Face `tokenizer.json`.

use crate::error::{Error, Result};
use std::path::Path;

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

impl TextTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Tokenizer(format!(
                "{}: no tokenizer.json in the model folder",
                path.display()
            )));
        }
        let text = crate::files::read_text(path, crate::files::TOKENIZER_LIMIT)?;
        let mut inner: tokenizers::Tokenizer = text
            .parse()
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        // Some tokenizer.json files pad or truncate to a fixed length (MiniLM's to 128);
        // transformers switches both off per call, and so do we: a prompt is never padded, and
        // one too long for the model is an error, not silently cut.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(TextTokenizer { inner })
    }

    /// From the text of a `tokenizer.json` (one rebuilt from a GGUF file, say).
    pub fn from_json(json: &str, source: &Path) -> Result<Self> {
        let inner: tokenizers::Tokenizer = json
            .parse()
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", source.display())))?;
        Ok(TextTokenizer { inner })
    }

    /// Token ids, with the model's special tokens (e.g. `[CLS] … [SEP]`, BOS) when `special`.
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, special)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// A readable form of one token (byte-level BPE markers decoded; a token that is part of
    /// a multi-byte character is shown raw rather than as U+FFFD).
    pub fn token_text(&self, id: u32) -> String {
        match self.inner.decode(&[id], false) {
            Ok(s) if !s.is_empty() && !s.contains('\u{FFFD}') => s,
            _ => self
                .inner
                .id_to_token(id)
                .unwrap_or_else(|| format!("<{id}>")),
        }
    }

    /// The token as a person reads it: `token_text`, except that a piece of a multi-byte
    /// character (byte-level BPE's `âĢ`, SentencePiece's `<0xE2>`) shows its bytes as `\xe2`
    /// escapes, and the bytes that do form characters as those characters.
    pub fn token_display(&self, id: u32) -> String {
        let text = self.token_text(id);
        let Some(piece) = self.inner.id_to_token(id) else {
            return text;
        };
        if text != piece {
            return text; // decoded: already readable
        }
        let bytes = sentencepiece_byte(&piece)
            .map(|b| vec![b])
            .or_else(|| byte_level_bytes(&piece));
        match bytes {
            Some(b) => escape_invalid_utf8(&b),
            None => text,
        }
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// SentencePiece's byte-fallback tokens, `<0xE2>`.
fn sentencepiece_byte(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok())?
}

/// The bytes behind a byte-level BPE piece (GPT-2's alphabet: the printable bytes stand for
/// themselves, the other 68 for U+0100 onwards, in byte order), or `None` for another kind.
fn byte_level_bytes(piece: &str) -> Option<Vec<u8>> {
    let printable = |b: u8| matches!(b, 33..=126 | 161..=172 | 174..=255);
    let shifted: Vec<u8> = (0..=255u8).filter(|&b| !printable(b)).collect();
    piece
        .chars()
        .map(|c| match c as u32 {
            n @ 0..=255 if printable(n as u8) => Some(n as u8),
            n @ 256..=323 => Some(shifted[(n - 256) as usize]),
            _ => None,
        })
        .collect()
}

/// UTF-8 text with each byte that is not part of a whole character as `\xNN`.
fn escape_invalid_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::new();
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).expect("valid up to here"));
                let bad = e.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                bytes = &rest[bad..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_of_characters_show_their_bytes() {
        // "—" is E2 80 94; byte-level BPE writes E2 80 as "âĢ" and 94 as "Ķ".
        assert_eq!(byte_level_bytes("âĢ").unwrap(), vec![0xe2, 0x80]);
        assert_eq!(escape_invalid_utf8(&[0xe2, 0x80]), "\\xe2\\x80");
        assert_eq!(
            escape_invalid_utf8(&[b'a', 0xe2, 0x80, 0x94, 0xff]),
            "a—\\xff"
        );
        assert_eq!(byte_level_bytes("Ġthe").unwrap(), b" the".to_vec());
        assert_eq!(sentencepiece_byte("<0xE2>"), Some(0xe2));
        assert_eq!(sentencepiece_byte("<0xE>"), None);
        assert_eq!(byte_level_bytes("▁the"), None);
    }
}
