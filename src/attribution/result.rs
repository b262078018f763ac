//! What a method returns.

use super::targets::TargetInfo;
use serde::Serialize;

/// One attribution. Serialised field by field as the CLI's JSON output.
#[derive(Clone, Debug, Serialize)]
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
    pub steps: Option<usize>,
    pub quadrature: Option<String>,
    pub elapsed_ms: f64,
    /// With `--repeat N`: every run's time (`elapsed_ms` is then their median).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repeat_ms: Vec<f64>,
    /// Adaptive integrated gradients: evaluations used (gradients and forward-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluations: Option<usize>,
    /// Sampling methods: samples, noise σ and seed (for reproduction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_std: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// SmoothGrad and VarGrad: the method they wrap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_method: Option<String>,
    /// Sequential IG: `Σ_d attr_i − (F(x) − F(x with token i at the baseline))`, per token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_token_delta: Option<Vec<f32>>,
    /// Greedy PIG: the tokens in the order they were selected, and the rounds run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection_order: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds: Option<usize>,
    /// PGD: `F(x) − F(x_adv)`, how far the attack lowered the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adversarial_drop: Option<f32>,
    /// Attention and RPI: the layer (and head) read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<usize>,
    /// Attention methods with `--include-map`: every layer's probabilities `[layer][head][query][key]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<Vec<Vec<Vec<Vec<f32>>>>>,
    pub warnings: Vec<String>,
    /// With `--generate`: the generated tokens and each one's attribution to its prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_ids: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_tokens: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<Vec<crate::generation::GenerationStep>>,
    /// The full `[tokens, hidden]` map, row-major (in JSON only when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<Vec<f32>>,
}
