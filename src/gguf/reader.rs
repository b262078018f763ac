//! Parsing the GGUF header, metadata and tensor directory. Every read is bounds-checked, so a
//! truncated or corrupt file is an error naming the file, never a panic.

use super::dequant::{self, GgmlType};
use crate::error::{Error, Result};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(v) if *v >= 0 => Some(*v as u64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` is the innermost (contiguous) dimension.
    pub dims: Vec<usize>,
    pub ggml_type: u32,
    /// Absolute byte offset of the data in the file.
    pub start: usize,
    /// The data's length in bytes, checked against the file at open; `None` for a type we
    /// cannot decode (reported when such a tensor is read).
    pub bytes: Option<usize>,
}

pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    mmap: Arc<Mmap>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> Error {
        Error::CorruptGguf {
            path: self.path.to_path_buf(),
            reason: format!("{what} at byte {}", self.pos),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.err("file ends early"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    /// A count or length, refused when it could not fit in the rest of the file.
    fn len(&mut self, min_item_bytes: usize) -> Result<usize> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_item_bytes.max(1) as u64) > left {
            return Err(self.err(&format!("file ends early (a length of {n} does not fit)")));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String> {
        let n = self.len(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| self.err("a string is not UTF-8"))
    }

    fn value(&mut self, ty: u32, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::Int(self.take(1)?[0] as i64),
            1 => Value::Int(self.take(1)?[0] as i8 as i64),
            2 => Value::Int(u16::from_le_bytes(self.take(2)?.try_into().unwrap()) as i64),
            3 => Value::Int(i16::from_le_bytes(self.take(2)?.try_into().unwrap()) as i64),
            4 => Value::Int(self.u32()? as i64),
            5 => Value::Int(self.u32()? as i32 as i64),
            6 => Value::Float(f32::from_le_bytes(self.take(4)?.try_into().unwrap()) as f64),
            7 => Value::Bool(self.take(1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth < 4 => {
                let elem = self.u32()?;
                let n = self.len(1)?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::Int(self.u64()? as i64),
            11 => Value::Int(self.u64()? as i64),
            12 => Value::Float(f64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            other => return Err(self.err(&format!("unknown metadata value type {other}"))),
        })
    }
}

/// A key of the metadata namespaces llama.cpp writes, which no tensor name uses.
fn metadata_key(name: &str) -> bool {
    [
        "general.",
        "tokenizer.",
        "llama.",
        "qwen2.",
        "qwen3.",
        "phi3.",
        "gemma2.",
        "gemma3.",
        "gpt2.",
        "bert.",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// Tensors of known types must not overlap, and lie back to back as GGUF writers put them
/// (each padded to the alignment): a tensor whose type was changed to a smaller one leaves
/// a gap, a larger one an overlap, and either would be read as garbage.
fn check_layout(tensors: &[TensorInfo], align: usize) -> Result<(), String> {
    let mut spans = Vec::with_capacity(tensors.len());
    for t in tensors {
        let (Ok(ty), Some(bytes)) = (GgmlType::from_id(t.ggml_type), t.bytes) else {
            return Ok(()); // an unknown type's size is unknown: the layout cannot be checked
        };
        spans.push((t.start, t.start + bytes, &t.name, ty));
    }
    spans.sort_by_key(|s| (s.0, s.1));
    for w in spans.windows(2) {
        let ((_, end, name, ty), (next, _, next_name, _)) = (&w[0], &w[1]);
        if *next < *end {
            return Err(format!(
                "tensor '{name}' ({ty:?}) overlaps tensor '{next_name}': its type or offset is wrong"
            ));
        }
        if *next > end.div_ceil(align) * align {
            return Err(format!(
                "{} bytes lie unused between tensor '{name}' ({ty:?}) and '{next_name}': a \
                 tensor's type or offset is wrong",
                next - end
            ));
        }
    }
    Ok(())
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        crate::files::check_regular(path)?;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: opened read-only and not modified by us while mapped.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mut c = Cursor {
            bytes: &mmap,
            pos: 0,
            path,
        };
        if c.take(4).ok() != Some(b"GGUF".as_slice()) {
            return Err(Error::CorruptGguf {
                path: path.to_path_buf(),
                reason: "not a GGUF file (bad magic)".into(),
            });
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Error::CorruptGguf {
                path: path.to_path_buf(),
                reason: format!("GGUF version {version} is not supported (2 and 3 are)"),
            });
        }
        let n_tensors = c.len(24)?;
        let n_kv = c.len(12)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            metadata.insert(key, c.value(ty, 0)?);
        }
        let mut infos = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = c.string()?;
            if i == 0 && metadata_key(&name) {
                // What should be the tensor directory starts with a metadata key.
                return Err(c.err(&format!(
                    "the header counts {n_kv} metadata keys, but key '{name}' follows them \
                     (a wrong n_kv)"
                )));
            }
            let n_dims = c.u32()? as usize;
            if n_dims > 4 {
                return Err(c.err(&format!("tensor '{name}' has {n_dims} dimensions")));
            }
            let dims = (0..n_dims)
                .map(|_| c.u64().map(|d| d as usize))
                .collect::<Result<Vec<_>>>()?;
            let ggml_type = c.u32()?;
            let offset = c.u64()? as usize;
            infos.push((name, dims, ggml_type, offset));
        }
        let corrupt = |reason: String| Error::CorruptGguf {
            path: path.to_path_buf(),
            reason,
        };
        if !metadata.contains_key("general.architecture") {
            return Err(corrupt(format!(
                "no 'general.architecture' among its {n_kv} metadata keys"
            )));
        }
        let align = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => {
                    return Err(corrupt(format!(
                        "'general.alignment' is {v:?}, not a power of two"
                    )))
                }
            },
        };
        let data_start = c.pos.div_ceil(align) * align;
        let mut tensors = Vec::with_capacity(infos.len());
        for (name, dims, ggml_type, offset) in infos {
            if offset % align != 0 {
                return Err(corrupt(format!(
                    "tensor '{name}' starts at offset {offset}, not a multiple of the \
                     alignment {align}"
                )));
            }
            let start = data_start
                .checked_add(offset)
                .ok_or_else(|| c.err("tensor offset overflows"))?;
            // Types we cannot decode are reported when such a tensor is read, not here.
            let bytes = match GgmlType::from_id(ggml_type) {
                Err(_) => None,
                Ok(t) => {
                    let bytes = dims
                        .iter()
                        .try_fold(1usize, |n, &d| n.checked_mul(d))
                        .ok_or_else(|| c.err(&format!("tensor '{name}': size overflows")))
                        .and_then(|n| {
                            dequant::byte_size(t, n)
                                .map_err(|e| c.err(&format!("tensor '{name}': {e}")))
                        })?;
                    if start.checked_add(bytes).is_none_or(|end| end > mmap.len()) {
                        return Err(corrupt(format!(
                            "tensor '{name}' runs past the end of the file (truncated?)"
                        )));
                    }
                    Some(bytes)
                }
            };
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                start,
                bytes,
            });
        }
        check_layout(&tensors, align).map_err(corrupt)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            mmap: Arc::new(mmap),
        })
    }

    /// The file's memory map (stored-format weights point into it).
    pub fn map(&self) -> &Arc<Mmap> {
        &self.mmap
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The tensor's values as f32, in GGUF order (innermost dimension first).
    pub fn dequantize(&self, info: &TensorInfo) -> Result<Vec<f32>> {
        let t = GgmlType::from_id(info.ggml_type).map_err(|e| Error::BadTensor {
            name: info.name.clone(),
            reason: e,
        })?;
        let n: usize = info.dims.iter().product();
        // A decodable type's length was computed and checked against the file at open.
        let bytes = info.bytes.ok_or_else(|| Error::BadTensor {
            name: info.name.clone(),
            reason: "its length is unknown".into(),
        })?;
        dequant::dequantize(t, &self.mmap[info.start..info.start + bytes], n).map_err(|e| {
            Error::BadTensor {
                name: info.name.clone(),
                reason: e,
            }
        })
    }
}
