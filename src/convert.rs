//! `gradlens convert`: a GGUF file to a Hugging Face folder (`config.json`,
//! `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`) that transformers and
//! gradlens load. The folder is written under a temporary name and renamed when complete.

use crate::error::{Error, Result};
use crate::gguf::{llama, tokenizer, GgufFile};
use crate::models::Weights;
use crate::tensor::Device;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutDtype {
    F32,
    F16,
    BF16,
}

impl std::str::FromStr for OutDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(OutDtype::F32),
            "f16" => Ok(OutDtype::F16),
            "bf16" => Ok(OutDtype::BF16),
            _ => Err(Error::InvalidArgument(format!(
                "unknown dtype '{s}' (expected f32, f16 or bf16)"
            ))),
        }
    }
}

fn encode(data: &[f32], dtype: OutDtype) -> (Dtype, Vec<u8>) {
    match dtype {
        OutDtype::F32 => (
            Dtype::F32,
            data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        OutDtype::F16 => (
            Dtype::F16,
            data.iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
        OutDtype::BF16 => (
            Dtype::BF16,
            data.iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
    }
}

pub fn convert(input: &Path, out: &Path, dtype: OutDtype) -> Result<()> {
    if out.exists()
        && out
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::InvalidArgument(format!(
            "{} exists and is not empty",
            out.display()
        )));
    }
    // Only a file that loads as a model is converted: the folder must not carry a bad claim
    // (a block count of 1e9, say) on to whoever loads it next.
    crate::Model::load(input, Device::Cpu)?;
    let file = GgufFile::open(input)?;
    let mut config = crate::gguf::config(&file)?;
    config["torch_dtype"] = serde_json::json!(match dtype {
        OutDtype::F32 => "float32",
        OutDtype::F16 => "float16",
        OutDtype::BF16 => "bfloat16",
    });
    let (tok, tok_config) = tokenizer::tokenizer_json(&file)?;
    // llama.cpp stores Gemma's norm weights as 1 + w; Hugging Face keeps w.
    let norm_shift = if llama::is_gemma(llama::architecture(&file)) {
        1.0
    } else {
        0.0
    };
    let weights = Weights::from_gguf(file, Device::Cpu, crate::models::WeightMode::F32);
    let mut tensors = Vec::new();
    for name in weights.names() {
        let mut h = weights.host(&name, None)?;
        if norm_shift != 0.0 && name.ends_with("norm.weight") {
            h.data.iter_mut().for_each(|v| *v -= norm_shift);
        }
        let (dt, bytes) = encode(&h.data, dtype);
        tensors.push((name, dt, h.dims, bytes));
    }
    let staging = out.with_file_name(format!(
        ".{}.partial",
        out.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    let write = || -> Result<()> {
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        let views = tensors
            .iter()
            .map(|(n, dt, dims, bytes)| {
                TensorView::new(*dt, dims.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Other(format!("{n}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(meta), &staging.join("model.safetensors"))
            .map_err(|e| Error::Other(format!("{}: {e}", staging.display())))?;
        for (name, value) in [
            ("config.json", &config),
            ("tokenizer.json", &tok),
            ("tokenizer_config.json", &tok_config),
        ] {
            let text =
                serde_json::to_string_pretty(value).map_err(|e| Error::Other(e.to_string()))?;
            std::fs::write(staging.join(name), text)
                .map_err(|e| Error::io(staging.join(name), e))?;
        }
        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| Error::io(out, e))?;
        }
        std::fs::rename(&staging, out).map_err(|e| Error::io(out, e))
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}
