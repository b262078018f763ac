//! gradlens explains transformer predictions: which input tokens (and embedding dimensions)
//! made a model produce its output, by saliency, input × gradient or integrated gradients.
//!
//! Its core is a tape-based reverse-mode autodiff ([`autodiff::Tape`]) over a small, closed set
//! of transformer-level ops ([`ops::Op`]), each with a forward per backend and an exact
//! vector-Jacobian product. The backward pass goes through a [`autodiff::RuleSet`], so backward
//! rules other than the gradient replace an op's local rule instead of patching a framework.
//!
//! ```
//! use gradlens::attribution::{attribute, methods::IntegratedGradients, Settings};
//! use gradlens::{Device, Model};
//!
//! # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny-llama");
//! // A Hugging Face folder: config.json, model.safetensors, tokenizer.json.
//! let model = Model::load(&dir, Device::Cpu)?;
//! // Integrated gradients of the model's top next-token logit, 32 Gauss–Legendre steps.
//! let ig = IntegratedGradients { steps: 32, ..Default::default() };
//! let result = attribute(&model, "Language models predict the next", &ig, &Settings::default())?;
//! for (token, score) in result.tokens.iter().zip(&result.scores) {
//!     println!("{token:>12} {score:+.4}");
//! }
//! // Completeness: the scores add up to F(x) − F(x′) up to the reported delta.
//! let total: f32 = result.scores.iter().sum();
//! let gap = result.target_score - result.baseline_score.unwrap();
//! assert!((total - gap - result.convergence_delta.unwrap()).abs() < 1e-3);
//! # Ok::<(), gradlens::Error>(())
//! ```

pub mod alloc;
pub mod attribution;
pub mod autodiff;
pub mod backend;
pub mod bench;
pub mod convert;
pub mod error;
pub mod files;
pub mod generation;
pub mod gguf;
pub mod jsonl;
pub mod models;
pub mod ops;
pub mod report;
pub mod rules;
#[cfg(feature = "serve")]
pub mod serve;
pub mod tensor;

pub use attribution::{attribute, Attribution, Method, Settings};
pub use error::{Error, Result};
pub use models::{Architecture, Model};
pub use tensor::{Device, Shape, Tensor};
