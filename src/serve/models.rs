//! The models a server may run: one fixed at start (`--model PATH`), or an allow-list of the
//! models in a folder (`--models DIR`), which requests choose from by name. No request names
//! a path: a name is looked up in the list made at start. One model is loaded at a time (the
//! worker drops the last before it loads the next), so memory is that of the largest.

use crate::error::{Error, Result};
use crate::models::{Model, WeightMode};
use crate::tensor::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Models {
    /// Name → path: a model folder (with config.json) or a .gguf file.
    allowed: BTreeMap<String, PathBuf>,
    device: Device,
    weights: WeightMode,
    /// The loaded model (none after a load that failed).
    loaded: Mutex<Option<(String, Arc<Model>)>>,
}

impl Models {
    /// One model, loaded now; requests cannot name another.
    pub fn fixed(path: &Path, device: Device, weights: WeightMode) -> Result<Models> {
        let name = name_of(path);
        let model = Arc::new(Model::load_with(path, device, weights)?);
        Ok(Models {
            allowed: BTreeMap::from([(name.clone(), path.to_path_buf())]),
            device,
            weights,
            loaded: Mutex::new(Some((name, model))),
        })
    }

    /// The models in `dir` (each folder with a config.json, each .gguf file), the first by
    /// name loaded now.
    pub fn in_folder(dir: &Path, device: Device, weights: WeightMode) -> Result<Models> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut allowed = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let is_model = if path.is_dir() {
                path.join("config.json").is_file()
            } else {
                path.extension().is_some_and(|e| e == "gguf")
            };
            if is_model {
                allowed.insert(name_of(&path), path);
            }
        }
        let Some((name, path)) = allowed.iter().next() else {
            return Err(Error::InvalidArgument(format!(
                "--models {}: no model in it (a folder with config.json, or a .gguf file)",
                dir.display()
            )));
        };
        let model = Arc::new(Model::load_with(path, device, weights)?);
        let loaded = Mutex::new(Some((name.clone(), model)));
        Ok(Models {
            allowed,
            device,
            weights,
            loaded,
        })
    }

    /// The names a request may give, in order.
    pub fn names(&self) -> Vec<String> {
        self.allowed.keys().cloned().collect()
    }

    /// The loaded model and its name (none after a load that failed).
    pub fn current(&self) -> Option<(String, Arc<Model>)> {
        lock(&self.loaded).clone()
    }

    /// `name` checked against the list (`None`: the loaded model).
    pub fn check(&self, name: Option<&str>) -> Result<()> {
        match name {
            Some(n) if !self.allowed.contains_key(n) => Err(Error::InvalidArgument(format!(
                "model: no model '{n}' on this server (it has: {})",
                self.names().join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// The model `name` (`None`: the loaded one, or the first), loaded in place of the last
    /// if it is another; on the worker thread, which alone runs models.
    pub fn get(&self, name: Option<&str>) -> Result<Arc<Model>> {
        self.check(name)?;
        let mut loaded = lock(&self.loaded);
        let want = match (name, loaded.as_ref()) {
            (Some(n), _) => n.to_string(),
            (None, Some((n, _))) => n.clone(),
            (None, None) => self.names().remove(0),
        };
        if let Some((n, model)) = loaded.as_ref() {
            if *n == want {
                return Ok(model.clone());
            }
        }
        // The last one goes first, so two are never held at once (jobs run one at a time).
        *loaded = None;
        let model = Arc::new(Model::load_with(
            &self.allowed[&want],
            self.device,
            self.weights,
        )?);
        *loaded = Some((want, model.clone()));
        Ok(model)
    }
}

/// A model's name in the list: its folder or file name.
fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
