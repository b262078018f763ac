//! What a method returns.

use super::targets::TargetInfo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One attribution. Serialised field by field as the CLI's JSON output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attribution {
    pub model: String,
    pub architecture: String,
    pub method: String,
    pub device: String,
    /// The formats the weight matrices were computed in (`q4_1, f32`: largest share first).
    pub weights: String,
    pub tokens: Vec<String>,
    /// Each token as a person reads it (`tokens`, with pieces of characters as `\xNN`
    /// escapes): what the text and HTML reports show.
    pub display: Vec<String>,
    pub token_ids: Vec<u32>,
    pub target: TargetInfo,
    /// `F(x)`.
    pub target_score: f32,
    /// `F(x′)` for path methods.
    pub baseline_score: Option<f32>,
    /// `Σ attr − (F(x) − F(x′))` for path methods.
    pub convergence_delta: Option<f32>,
    /// One per token: the L2 norm over the hidden dimension for saliency, else the sum.
    pub scores: Vec<f32>,
    pub elapsed_ms: f64,
    /// With `--repeat N`: every run's time (`elapsed_ms` is then their median).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeat_ms: Vec<f64>,
    /// What only this method reports (`steps`, `quadrature`, `seed`, `selection_order`, …),
    /// by name; each method's file says what it puts here.
    pub extras: serde_json::Map<String, serde_json::Value>,
    pub warnings: Vec<String>,
    /// With `--generate`: the generated tokens and each one's attribution to its prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_ids: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_tokens: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<Vec<GenerationStep>>,
    /// The full `[tokens, hidden]` map, row-major (in JSON only when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<Vec<f32>>,
}

impl Attribution {
    /// A method-specific output, typed: `a.extra::<Vec<usize>>("selection_order")`.
    pub fn extra<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.extras
            .get(name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Records a method-specific output under `extras`.
    pub fn set_extra(&mut self, name: &str, value: impl Serialize) {
        let v = serde_json::to_value(value).expect("extras are plain data");
        self.extras.insert(name.to_string(), v);
    }
}

/// One generated token's attribution to the tokens before it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerationStep {
    pub target: TargetInfo,
    pub target_score: f32,
    pub baseline_score: Option<f32>,
    pub convergence_delta: Option<f32>,
    /// One per source token: the prompt's, then those generated before this one.
    pub scores: Vec<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
