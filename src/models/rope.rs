//! Rotary position embeddings: the inverse frequencies a config asks for (plain, linear, Llama 3
//! or Phi-3's longrope scaling, or llama.cpp's stored frequency factors) and the cos/sin tables
//! a pass needs, computed for the positions it covers (so a claimed context of millions of
//! positions costs nothing until it is used).

use super::config::Config;
use crate::error::{Error, Result};
use crate::tensor::{Device, Tensor};
use serde_json::Value;

pub struct RopeTables {
    inv_freq: Vec<f32>,
    /// Longrope: the frequencies for a pass reaching past `original` positions, which replace
    /// `inv_freq` there (transformers' `longrope_frequency_update`, per pass).
    long: Option<(Vec<f32>, usize)>,
    /// What cos and sin are multiplied by (longrope's attention factor; else 1).
    attention_factor: f32,
    device: Device,
}

/// `θ^(−2i/d)` for `i in 0..d/2`, as Hugging Face computes it (f32 at the end).
fn default_inv_freq(head_dim: usize, theta: f64) -> Vec<f64> {
    (0..head_dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64))
        .collect()
}

impl RopeTables {
    /// The tables `cfg` describes for heads of `head_dim`: its `rope_theta` and its scaling,
    /// from transformers 5's `rope_parameters` or 4.x's `rope_scaling` and top-level
    /// `rope_theta`. A scaling this engine does not compute is refused by name.
    pub fn from_config(cfg: &Config, head_dim: usize, device: Device) -> Result<Self> {
        let params = cfg
            .json
            .get("rope_parameters")
            .or_else(|| cfg.json.get("rope_scaling"))
            .filter(|p| !p.is_null());
        let err = |reason: String| Error::Config {
            path: cfg.path.clone(),
            reason,
        };
        let number = |key: &str| -> Result<Option<f64>> {
            match params.and_then(|p| p.get(key)).filter(|v| !v.is_null()) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|v| v.is_finite())
                    .map(Some)
                    .ok_or_else(|| err(format!("rope '{key}' is {v}, not a finite number"))),
            }
        };
        let theta = match number("rope_theta")? {
            Some(t) => t,
            None => cfg.f32_or(&["rope_theta"], 10000.0)? as f64,
        };
        if !(theta.is_finite() && theta > 0.0) {
            return Err(err(format!(
                "'rope_theta' is {theta}: it must be a finite number > 0"
            )));
        }
        let rope_type = params
            .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let need = |key: &str| -> Result<f64> {
            number(key)?.ok_or_else(|| err(format!("rope scaling '{rope_type}' lacks '{key}'")))
        };
        let mut inv_freq = default_inv_freq(head_dim, theta);
        let (mut long, mut attention_factor) = (None, 1.0f64);
        match rope_type {
            "default" => {}
            "linear" => {
                let factor = need("factor")?;
                if factor <= 0.0 {
                    return Err(err(format!("rope 'factor' is {factor}: it must be > 0")));
                }
                inv_freq.iter_mut().for_each(|f| *f /= factor);
            }
            "llama3" => {
                let factor = need("factor")?;
                let (low, high) = (need("low_freq_factor")?, need("high_freq_factor")?);
                let original = match number("original_max_position_embeddings")? {
                    Some(n) => n,
                    None => cfg.usize(&["max_position_embeddings"])? as f64,
                };
                if factor <= 0.0 || low <= 0.0 || high <= low || original <= 0.0 {
                    return Err(err(format!(
                        "llama3 rope scaling needs factor > 0 and 0 < low_freq_factor < high_freq_factor, got {factor}, {low}, {high}"
                    )));
                }
                llama3_scaling(&mut inv_freq, factor, low, high, original);
            }
            "longrope" => {
                let original = match number("original_max_position_embeddings")? {
                    Some(n) => n,
                    None => cfg.usize(&["original_max_position_embeddings"])? as f64,
                };
                let max = cfg.usize(&["max_position_embeddings"])? as f64;
                let factors = |key: &str| -> Result<Vec<f64>> {
                    let list = params
                        .and_then(|p| p.get(key))
                        .and_then(Value::as_array)
                        .ok_or_else(|| err(format!("longrope scaling lacks '{key}'")))?;
                    let f: Option<Vec<f64>> = list
                        .iter()
                        .map(|v| v.as_f64().filter(|v| v.is_finite() && *v > 0.0))
                        .collect();
                    match f {
                        Some(f) if f.len() == inv_freq.len() => Ok(f),
                        _ => Err(err(format!(
                            "longrope '{key}' must hold {} numbers > 0",
                            inv_freq.len()
                        ))),
                    }
                };
                let (short, long_f) = (factors("short_factor")?, factors("long_factor")?);
                if original < 1.0 {
                    return Err(err(
                        "longrope's original_max_position_embeddings is 0".into()
                    ));
                }
                let factor = number("factor")?.unwrap_or(max / original);
                attention_factor = match number("attention_factor")? {
                    Some(a) => a,
                    None if factor <= 1.0 => 1.0,
                    None => (1.0 + factor.ln() / original.ln()).sqrt(),
                };
                let scaled = |ext: &[f64]| -> Vec<f32> {
                    inv_freq
                        .iter()
                        .zip(ext)
                        .map(|(f, e)| (f / e) as f32)
                        .collect()
                };
                long = Some((scaled(&long_f), original as usize));
                inv_freq = inv_freq.iter().zip(&short).map(|(f, e)| f / e).collect();
            }
            "yarn" => {
                let original = match number("original_max_position_embeddings")? {
                    Some(n) => n,
                    None => cfg.usize_or(
                        &["original_max_position_embeddings"],
                        cfg.usize(&["max_position_embeddings"])?,
                    )? as f64,
                };
                let factor = match number("factor")? {
                    Some(f) => f,
                    None => cfg.usize(&["max_position_embeddings"])? as f64 / original,
                };
                if !(factor > 0.0 && original >= 1.0) {
                    return Err(err(format!(
                        "yarn rope scaling needs factor > 0 and an original context, got {factor} and {original}"
                    )));
                }
                let truncate = params
                    .and_then(|p| p.get("truncate"))
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                // transformers takes a beta of 0 as unset (`or`).
                let beta = |key: &str, default: f64| -> Result<f64> {
                    Ok(number(key)?.filter(|b| *b != 0.0).unwrap_or(default))
                };
                let (fast, slow) = (beta("beta_fast", 32.0)?, beta("beta_slow", 1.0)?);
                attention_factor = match (
                    number("attention_factor")?,
                    number("mscale")?.filter(|m| *m != 0.0),
                    number("mscale_all_dim")?.filter(|m| *m != 0.0),
                ) {
                    (Some(a), _, _) => a,
                    (None, Some(m), Some(all)) => yarn_mscale(factor, m) / yarn_mscale(factor, all),
                    _ => yarn_mscale(factor, 1.0),
                };
                yarn_scaling(&mut inv_freq, theta, factor, original, fast, slow, truncate);
            }
            other => {
                return Err(err(format!(
                    "unsupported rope scaling '{other}' (supported: default, linear, llama3, longrope, yarn)"
                )))
            }
        }
        // llama.cpp keeps Llama 3's scaling as a tensor of per-frequency divisors
        // (`rope_freqs.weight`), which the GGUF reader passes on as this key.
        if let Some(factors) = cfg.json.get("rope_freq_factors").and_then(Value::as_array) {
            if factors.len() != inv_freq.len() {
                return Err(err(format!(
                    "{} rope frequency factors for heads of {head_dim}",
                    factors.len()
                )));
            }
            for (f, d) in inv_freq.iter_mut().zip(factors) {
                match d.as_f64().filter(|d| d.is_finite() && *d > 0.0) {
                    Some(d) => *f /= d,
                    None => return Err(err(format!("rope frequency factor {d} is not > 0"))),
                }
            }
        }
        Ok(RopeTables {
            inv_freq: inv_freq.into_iter().map(|f| f as f32).collect(),
            long,
            attention_factor: attention_factor as f32,
            device,
        })
    }

    /// Tables `[len, head_dim / 2]` for positions `start..start+len`.
    pub fn slice(&self, start: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let inv_freq = match &self.long {
            Some((long, original)) if start + len > *original => long,
            _ => &self.inv_freq,
        };
        let (a, half) = (self.attention_factor, inv_freq.len());
        let (mut cos, mut sin) = (
            Vec::with_capacity(len * half),
            Vec::with_capacity(len * half),
        );
        for pos in start..start + len {
            for &f in inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos() * a);
                sin.push(angle.sin() * a);
            }
        }
        Ok((
            Tensor::from_vec(cos, [len, half], self.device)?,
            Tensor::from_vec(sin, [len, half], self.device)?,
        ))
    }
}

/// Llama 3.1's scaling: wavelengths shorter than `original / high` keep their frequency, those
/// longer than `original / low` are divided by `factor`, and those between are interpolated
/// (transformers' `_compute_llama3_parameters`).
fn llama3_scaling(inv_freq: &mut [f64], factor: f64, low: f64, high: f64, original: f64) {
    let (low_wavelen, high_wavelen) = (original / low, original / high);
    for f in inv_freq.iter_mut() {
        let wavelen = 2.0 * std::f64::consts::PI / *f;
        if wavelen > low_wavelen {
            *f /= factor;
        } else if wavelen >= high_wavelen {
            let smooth = (original / wavelen - low) / (high - low);
            *f = (1.0 - smooth) * *f / factor + smooth * *f;
        }
    }
}

/// YaRN's attention scale for a context `scale` times longer.
fn yarn_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

/// YaRN (transformers' `_compute_yarn_parameters`): each frequency blends its interpolated
/// (`/ factor`) and original values by a linear ramp over the dimensions between the
/// corrections for `fast` and `slow` rotations within the original context.
fn yarn_scaling(
    inv_freq: &mut [f64],
    theta: f64,
    factor: f64,
    original: f64,
    fast: f64,
    slow: f64,
    truncate: bool,
) {
    let dim = (2 * inv_freq.len()) as f64;
    let correction = |rotations: f64| {
        dim * (original / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln())
    };
    let (mut low, mut high) = (correction(fast), correction(slow));
    if truncate {
        (low, high) = (low.floor(), high.ceil());
    }
    let (low, mut high) = (low.max(0.0), high.min(dim - 1.0));
    if low == high {
        high += 0.001;
    }
    for (i, f) in inv_freq.iter_mut().enumerate() {
        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
        let extrapolation = 1.0 - ramp;
        *f = *f / factor * (1.0 - extrapolation) + *f * extrapolation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_keeps_short_divides_long_and_blends_between() {
        // head_dim 8, θ 500: wavelengths 6.3, 29.7, 140.5 and 664.
        let mut f = default_inv_freq(8, 500.0);
        let before = f.clone();
        llama3_scaling(&mut f, 8.0, 1.0, 4.0, 32.0);
        assert_eq!(f[0], before[0]);
        assert!((f[2] - before[2] / 8.0).abs() < 1e-15);
        assert!((f[3] - before[3] / 8.0).abs() < 1e-15);
        assert!(f[1] < before[1] && f[1] > before[1] / 8.0);
    }
}
