//! Model weights by Hugging Face name: memory-mapped safetensors (single file or sharded with
//! an index), or a GGUF file (with llama.cpp's layout undone). Matrices stay in their stored
//! format where the device computes with it (`matrix`, on the CPU); everything else is
//! decoded to f32.

use crate::error::{Error, Result};
use crate::gguf::{self, llama, GgmlType, GgufFile};
use crate::tensor::{Device, StoredBytes, StoredMatrix, Tensor};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How weight matrices are held: as the file stores them (the default), or decoded to f32
/// (the reference path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightMode {
    #[default]
    Stored,
    F32,
}

impl std::str::FromStr for WeightMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "stored" => Ok(WeightMode::Stored),
            "f32" => Ok(WeightMode::F32),
            other => Err(Error::InvalidArgument(format!(
                "unknown weight mode '{other}' (expected stored or f32)"
            ))),
        }
    }
}

/// The weights of one kind across layers (`model.layers.*.mlp.up_proj.weight`): how they are
/// held and the bytes they take.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WeightGroup {
    pub name: String,
    pub format: String,
    pub tensors: usize,
    pub bytes: usize,
}

pub struct Weights {
    files: Vec<(PathBuf, Arc<Mmap>)>,
    /// Tensor name -> index into `files`.
    index: HashMap<String, usize>,
    /// The file named in errors: `model.safetensors`, the shard index, or the GGUF file.
    source: PathBuf,
    gguf: Option<GgufFile>,
    device: Device,
    mode: WeightMode,
    /// What each loaded tensor became, by group.
    loaded: RefCell<BTreeMap<String, WeightGroup>>,
}

/// A weight on the host, for load-time reshaping (transposes, splits) before upload.
pub struct HostTensor {
    pub data: Vec<f32>,
    pub dims: Vec<usize>,
}

impl Weights {
    /// Opens `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
    pub fn open(dir: &Path, device: Device, mode: WeightMode) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let source = if single.exists() {
            single.clone()
        } else {
            index_path.clone()
        };
        let paths: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index_path.exists() {
            let text = crate::files::read_text(&index_path, crate::files::CONFIG_LIMIT)?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::CorruptWeights {
                    path: index_path.clone(),
                    reason: e.to_string(),
                })?;
            let map = json["weight_map"]
                .as_object()
                .ok_or_else(|| Error::CorruptWeights {
                    path: index_path.clone(),
                    reason: "no weight_map".into(),
                })?;
            let mut shards: Vec<String> = map
                .values()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            shards.sort();
            shards.dedup();
            shards
                .into_iter()
                .map(|s| shard_path(dir, &index_path, &s))
                .collect::<Result<_>>()?
        } else {
            return Err(Error::Other(format!(
                "{}: no model.safetensors or model.safetensors.index.json",
                dir.display()
            )));
        };
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for (i, path) in paths.into_iter().enumerate() {
            crate::files::check_regular(&path)?;
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            // SAFETY: the file is opened read-only and not modified by us while mapped.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
            refuse_duplicate_names(&path, &mmap)?;
            let st = SafeTensors::deserialize(&mmap).map_err(|e| Error::CorruptWeights {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            for name in st.names() {
                index.insert(name.to_string(), i);
            }
            files.push((path, Arc::new(mmap)));
        }
        Ok(Weights {
            files,
            index,
            source,
            gguf: None,
            device,
            mode,
            loaded: RefCell::default(),
        })
    }

    /// The tensors of a GGUF file, by their Hugging Face names.
    pub fn from_gguf(file: GgufFile, device: Device, mode: WeightMode) -> Self {
        Weights {
            files: Vec::new(),
            index: HashMap::new(),
            source: file.path.clone(),
            gguf: Some(file),
            device,
            mode,
            loaded: RefCell::default(),
        }
    }

    /// What the tensors loaded so far became, by group, in name order.
    pub fn loaded(&self) -> Vec<WeightGroup> {
        self.loaded.borrow().values().cloned().collect()
    }

    fn record(&self, name: &str, format: &str, bytes: usize) {
        // Layer indices become `*`, so a group gathers one tensor of every layer.
        let group = name
            .split('.')
            .map(|p| if p.parse::<usize>().is_ok() { "*" } else { p })
            .collect::<Vec<_>>()
            .join(".");
        let mut loaded = self.loaded.borrow_mut();
        let g = loaded.entry(group.clone()).or_insert_with(|| WeightGroup {
            name: group,
            format: format.to_string(),
            tensors: 0,
            bytes: 0,
        });
        if g.format != format {
            g.format = "mixed".into();
        }
        g.tensors += 1;
        g.bytes += bytes;
    }

    /// A weight matrix `[rows, cols]` (a linear layer's weight, an embedding table) for the
    /// model's device: kept in its stored format in `WeightMode::Stored` (every backend
    /// computes with it), else decoded to f32 as `get` does.
    pub fn matrix(&self, name: &str, expect: &[usize]) -> Result<Tensor> {
        if self.mode == WeightMode::Stored && expect.len() == 2 {
            if let Some(m) = self.stored(name, expect)? {
                self.record(name, &m.format_label(), m.stored_bytes());
                return Tensor::stored_on(m, self.device);
            }
        }
        self.get(name, expect)
    }

    /// The weight matrix `name` of shape `expect` cut into the row ranges `parts` (a fused
    /// projection such as Phi-3's `qkv_proj`), each as `matrix` would hold it: still stored
    /// where it is, and read once.
    pub fn matrix_parts(
        &self,
        name: &str,
        expect: &[usize],
        parts: &[std::ops::Range<usize>],
    ) -> Result<Vec<Tensor>> {
        let bad = |reason: String| Error::BadTensor {
            name: name.to_string(),
            reason,
        };
        if self.mode == WeightMode::Stored && expect.len() == 2 {
            if let Some(m) = self.stored(name, expect)? {
                self.record(name, &m.format_label(), m.stored_bytes());
                return parts
                    .iter()
                    .map(|r| Tensor::stored_on(m.row_range(r.clone()).map_err(bad)?, self.device))
                    .collect();
            }
        }
        let cols = expect.get(1).copied().unwrap_or(1);
        let h = self.host(name, Some(expect))?;
        parts
            .iter()
            .map(|r| {
                let part = h
                    .data
                    .get(r.start * cols..r.end * cols)
                    .ok_or_else(|| bad(format!("no rows {r:?}")))?;
                Tensor::from_vec(part.to_vec(), [r.len(), cols], self.device)
            })
            .collect()
    }

    /// The stored-format matrix behind `name`, or `None` where it is stored as f32 (then the
    /// f32 path is the same thing, without the decode).
    fn stored(&self, name: &str, expect: &[usize]) -> Result<Option<StoredMatrix>> {
        let bad = |reason: String| Error::BadTensor {
            name: name.to_string(),
            reason,
        };
        let (format, bytes, order) = if let Some(f) = &self.gguf {
            let (gguf_name, heads) = gguf::locate(f, name).ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                path: self.source.clone(),
            })?;
            let info = f.tensor(&gguf_name).expect("located");
            let format = GgmlType::from_id(info.ggml_type).map_err(bad)?;
            let dims: Vec<usize> = info.dims.iter().rev().copied().collect();
            if dims != expect {
                return Err(bad(format!("shape {dims:?}, expected {expect:?}")));
            }
            if format == GgmlType::F32 {
                return Ok(None);
            }
            let len = info
                .bytes
                .ok_or_else(|| bad("its length is unknown".into()))?;
            let order = heads
                .map(|h| llama::unpermute_order(dims[0], h))
                .transpose()?;
            let bytes = StoredBytes::Mapped {
                map: f.map().clone(),
                start: info.start,
                len,
            };
            (format, bytes, order)
        } else {
            let (map, view) = self.safetensor(name)?;
            if view.shape() != expect {
                return Err(bad(format!(
                    "shape {:?}, expected {expect:?}",
                    view.shape()
                )));
            }
            let format = match view.dtype() {
                Dtype::F16 => GgmlType::F16,
                Dtype::BF16 => GgmlType::BF16,
                _ => return Ok(None),
            };
            // The view borrows the map: its data's offset in the file.
            let start = view.data().as_ptr() as usize - map.as_ptr() as usize;
            let bytes = StoredBytes::Mapped {
                map: map.clone(),
                start,
                len: view.data().len(),
            };
            (format, bytes, None)
        };
        StoredMatrix::new(format, expect[0], expect[1], bytes, order)
            .map(Some)
            .map_err(bad)
    }

    /// Every tensor name, in file order for GGUF and sorted for safetensors.
    pub fn names(&self) -> Vec<String> {
        match &self.gguf {
            Some(f) => gguf::hf_names(f),
            None => {
                let mut n: Vec<String> = self.index.keys().cloned().collect();
                n.sort();
                n
            }
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        match &self.gguf {
            Some(f) => gguf::locate(f, name).is_some(),
            None => self.index.contains_key(name),
        }
    }

    /// Number of floating-point parameters and the dtype most of them are stored in.
    pub fn summary(&self) -> (usize, String) {
        if let Some(f) = &self.gguf {
            let mut by_type: HashMap<u32, usize> = HashMap::new();
            for t in &f.tensors {
                *by_type.entry(t.ggml_type).or_default() += t.dims.iter().product::<usize>();
            }
            let count = by_type.values().sum();
            let main = by_type
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(t, _)| t)
                .unwrap_or(0);
            return (count, format!("gguf {}", crate::gguf::type_label(main)));
        }
        let mut count = 0;
        let mut by_dtype: HashMap<String, usize> = HashMap::new();
        for (_, mmap) in &self.files {
            if let Ok(st) = SafeTensors::deserialize(mmap) {
                for (_, view) in st.tensors() {
                    if matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                        let n: usize = view.shape().iter().product();
                        count += n;
                        *by_dtype
                            .entry(format!("{:?}", view.dtype()).to_lowercase())
                            .or_default() += n;
                    }
                }
            }
        }
        let dtype = by_dtype
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(d, _)| d)
            .unwrap_or_default();
        (count, dtype)
    }

    /// Decodes a tensor to f32 on the host, checking its shape when `expect` is given.
    pub fn host(&self, name: &str, expect: Option<&[usize]>) -> Result<HostTensor> {
        let h = self.host_any(name, expect)?;
        self.record(name, "f32", 4 * h.data.len());
        Ok(h)
    }

    /// A safetensors tensor's view, with the map its data lies in.
    fn safetensor(&self, name: &str) -> Result<(&Arc<Mmap>, safetensors::tensor::TensorView<'_>)> {
        let Some(&i) = self.index.get(name) else {
            return Err(Error::MissingTensor {
                name: name.to_string(),
                path: self.source.clone(),
            });
        };
        let (path, map) = &self.files[i];
        let st = SafeTensors::deserialize(map).map_err(|e| Error::CorruptWeights {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let view = st.tensor(name).map_err(|e| Error::CorruptWeights {
            path: path.clone(),
            reason: format!("{name}: {e}"),
        })?;
        Ok((map, view))
    }

    fn host_any(&self, name: &str, expect: Option<&[usize]>) -> Result<HostTensor> {
        if let Some(f) = &self.gguf {
            return self.host_gguf(f, name, expect);
        }
        let (_, view) = self.safetensor(name)?;
        let dims = view.shape().to_vec();
        if let Some(expect) = expect {
            if dims != expect {
                return Err(Error::BadTensor {
                    name: name.to_string(),
                    reason: format!("shape {dims:?}, expected {expect:?}"),
                });
            }
        }
        Ok(HostTensor {
            data: decode(name, view.dtype(), view.data())?,
            dims,
        })
    }

    fn host_gguf(&self, f: &GgufFile, name: &str, expect: Option<&[usize]>) -> Result<HostTensor> {
        let (gguf_name, heads) = gguf::locate(f, name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            path: self.source.clone(),
        })?;
        let info = f.tensor(&gguf_name).expect("located");
        // GGUF lists the innermost dimension first; Hugging Face the outermost.
        let dims: Vec<usize> = info.dims.iter().rev().copied().collect();
        if let Some(expect) = expect {
            if dims != expect {
                return Err(Error::BadTensor {
                    name: name.to_string(),
                    reason: format!("shape {dims:?}, expected {expect:?}"),
                });
            }
        }
        let mut data = f.dequantize(info)?;
        match (heads, dims.as_slice()) {
            (Some(heads), [rows, cols]) => {
                data = llama::unpermute_rows(&data, *rows, *cols, heads)?
            }
            // A query or key bias: one value per row.
            (Some(heads), [rows]) => data = llama::unpermute_rows(&data, *rows, 1, heads)?,
            _ => {}
        }
        Ok(HostTensor { data, dims })
    }

    /// The first tensor holding a NaN or infinite value, with the index and the value: the
    /// diagnosis of a run whose result was not finite (a scan of every weight, so it is run
    /// only then). Tensors that fail to decode are skipped: they failed at load already.
    pub fn first_non_finite(&self) -> Option<(String, usize, f32)> {
        self.names().into_iter().find_map(|name| {
            let h = self.host_any(&name, None).ok()?;
            let (i, &v) = h.data.iter().enumerate().find(|(_, v)| !v.is_finite())?;
            Some((name, i, v))
        })
    }

    /// Loads a tensor onto the model's device.
    pub fn get(&self, name: &str, expect: &[usize]) -> Result<Tensor> {
        let h = self.host(name, Some(expect))?;
        Tensor::from_vec(h.data, h.dims, self.device)
    }

    /// Whether the weights come from a GGUF file (whose converters change some tensors, such
    /// as Gemma's norms).
    pub fn is_gguf(&self) -> bool {
        self.gguf.is_some()
    }

    pub fn device(&self) -> Device {
        self.device
    }
}

/// A safetensors header that names one tensor twice is refused, naming the tensor: parsed
/// into a map, the second entry silently replaces the first, and the file is then reported as
/// having a hole in its data at some unrelated tensor.
fn refuse_duplicate_names(path: &Path, bytes: &[u8]) -> Result<()> {
    struct Names;
    impl<'de> serde::de::Visitor<'de> for Names {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(name.clone()) {
                    return Err(serde::de::Error::custom(format!(
                        "the header names tensor '{name}' twice"
                    )));
                }
            }
            Ok(())
        }
    }
    impl<'de> serde::Deserialize<'de> for Names {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Names).map(|()| Names)
        }
    }
    // Malformed headers are left to the safetensors parser, which names what is wrong.
    let Some(len) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    else {
        return Ok(());
    };
    let Some(header) = usize::try_from(len)
        .ok()
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
    else {
        return Ok(());
    };
    match serde_json::from_slice::<Names>(header) {
        Err(e) if e.to_string().contains("twice") => Err(Error::CorruptWeights {
            path: path.to_path_buf(),
            reason: e
                .to_string()
                .split(" at line")
                .next()
                .unwrap_or_default()
                .into(),
        }),
        _ => Ok(()),
    }
}

/// A shard named in the index, which must be a file of the model folder itself: an absolute
/// path, `..` or a link leading outside the folder is refused (an index could otherwise make
/// us read any file on the machine).
fn shard_path(dir: &Path, index: &Path, name: &str) -> Result<PathBuf> {
    let bad = |why: &str| Error::CorruptWeights {
        path: index.to_path_buf(),
        reason: format!("shard '{name}' {why}"),
    };
    let rel = Path::new(name);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(bad("is not a file name inside the model folder"));
    }
    let path = dir.join(rel);
    if let (Ok(real), Ok(root)) = (path.canonicalize(), dir.canonicalize()) {
        if !real.starts_with(&root) {
            return Err(bad("leads outside the model folder"));
        }
    }
    Ok(path)
}

/// Little-endian bytes to f32; reads byte by byte, so no alignment is assumed.
fn decode(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::BadTensor {
                name: name.to_string(),
                reason: format!("dtype {other:?} is not a supported weight type (f32, f16, bf16)"),
            })
        }
    })
}
