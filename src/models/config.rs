//! Reading `config.json`: typed access with errors that name the file and the key.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub struct Config {
    pub path: PathBuf,
    pub json: Value,
}

impl Config {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        if !path.exists() {
            return Err(Error::MissingConfig(dir.to_path_buf()));
        }
        let text = crate::files::read_text(&path, crate::files::CONFIG_LIMIT)?;
        let json = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Config { path, json })
    }

    /// A config built elsewhere (from GGUF metadata); `path` is named in errors.
    pub fn from_json(path: &Path, json: Value) -> Self {
        Config {
            path: path.to_path_buf(),
            json,
        }
    }

    fn err(&self, reason: String) -> Error {
        Error::Config {
            path: self.path.clone(),
            reason,
        }
    }

    /// The first present key among `keys` (architectures name the same thing differently).
    fn find(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter()
            .filter_map(|k| self.json.get(*k))
            .find(|v| !v.is_null())
    }

    /// A size (hidden, heads, layers, vocabulary, positions): a whole number of at least 1, as
    /// a zero size only fails later in a shape check that cannot say which key was wrong.
    pub fn usize(&self, keys: &[&str]) -> Result<usize> {
        let Some(v) = self.find(keys) else {
            return Err(self.err(format!("missing '{}'", keys[0])));
        };
        v.as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&n| n >= 1)
            .ok_or_else(|| self.err(format!("'{}' is {v}, not a whole number >= 1", keys[0])))
    }

    /// A norm's epsilon: finite and >= 0 (a negative one makes the norm's root NaN).
    pub fn eps_or(&self, keys: &[&str], default: f32) -> Result<f32> {
        let v = self.f32_or(keys, default)?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(self.err(format!(
                "'{}' is {v}: it must be a finite number >= 0",
                keys[0]
            )));
        }
        Ok(v)
    }

    pub fn usize_or(&self, keys: &[&str], default: usize) -> Result<usize> {
        match self.find(keys) {
            None => Ok(default),
            Some(_) => self.usize(keys),
        }
    }

    pub fn f32_or(&self, keys: &[&str], default: f32) -> Result<f32> {
        match self.find(keys) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .map(|v| v as f32)
                .filter(|v| !v.is_nan())
                .ok_or_else(|| self.err(format!("'{}' is {v}, not a number", keys[0]))),
        }
    }

    pub fn str_or<'a>(&'a self, keys: &[&str], default: &'a str) -> &'a str {
        self.find(keys).and_then(Value::as_str).unwrap_or(default)
    }

    pub fn bool_or(&self, keys: &[&str], default: bool) -> bool {
        self.find(keys).and_then(Value::as_bool).unwrap_or(default)
    }

    /// A token id; some configs give a list (several EOS ids): the first is taken.
    pub fn token_id(&self, key: &str) -> Option<u32> {
        match self.json.get(key)? {
            Value::Number(n) => n.as_u64().map(|v| v as u32),
            Value::Array(a) => a.first()?.as_u64().map(|v| v as u32),
            _ => None,
        }
    }

    /// `layer_types` as whether each of `n_layers` layers is local (`sliding_attention`)
    /// rather than global (`full_attention`); `None` where the config gives no list.
    pub fn sliding_layers(&self, n_layers: usize) -> Result<Option<Vec<bool>>> {
        let Some(types) = self.json.get("layer_types").and_then(Value::as_array) else {
            return Ok(None);
        };
        if types.len() != n_layers {
            return Err(self.err(format!(
                "'layer_types' lists {} layers of {n_layers}",
                types.len()
            )));
        }
        types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(self.err(format!(
                    "layer type {t} is neither 'full_attention' nor 'sliding_attention'"
                ))),
            })
            .collect::<Result<Vec<bool>>>()
            .map(Some)
    }

    pub fn model_type(&self) -> Result<String> {
        if let Some(t) = self.json.get("model_type").and_then(Value::as_str) {
            return Ok(t.to_string());
        }
        Err(self.err("no 'model_type'".into()))
    }
}
