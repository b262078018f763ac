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
        let mut inner = tokenizers::Tokenizer::from_file(path)
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

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
