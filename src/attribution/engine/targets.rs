//! What is being explained: the scalar `F` for each batch row.

use super::evaluate;
use crate::autodiff::{Tape, Var};
use crate::backend::PickKind;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::tensor::Tensor;
use serde::Serialize;

/// How the user named the target.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum TargetSpec {
    /// Causal LM: the model's own top next token. Classifier: its top class.
    #[default]
    Auto,
    /// Causal LM: this text, which must be exactly one token.
    Token(String),
    TokenId(u32),
    /// Classification head: this class's score.
    Class(usize),
    /// Encoder: cosine similarity of mean-pooled embeddings with this text's.
    Compare(String),
}

/// How a token or class is scored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScoreKind {
    #[default]
    Logit,
    Prob,
    LogProb,
}

impl ScoreKind {
    pub fn name(self) -> &'static str {
        match self {
            ScoreKind::Logit => "logit",
            ScoreKind::Prob => "prob",
            ScoreKind::LogProb => "log-prob",
        }
    }
}

impl std::str::FromStr for ScoreKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "logit" => Ok(ScoreKind::Logit),
            "prob" => Ok(ScoreKind::Prob),
            "log-prob" => Ok(ScoreKind::LogProb),
            _ => Err(Error::InvalidArgument(format!(
                "unknown target kind '{s}' (expected logit, prob or log-prob)"
            ))),
        }
    }
}

/// A resolved target.
#[derive(Clone)]
pub enum Target {
    NextToken { id: u32, kind: ScoreKind },
    Class { index: usize, kind: ScoreKind },
    Cosine { reference: Tensor, text: String },
}

/// The target as reported: `{kind, id, token}`.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct TargetInfo {
    pub kind: String,
    pub id: Option<u32>,
    pub token: Option<String>,
}

impl Target {
    /// Resolves `spec` for `model` on the prompt embeddings `x: [len, hidden]`.
    pub fn resolve(
        model: &Model,
        x: &Tensor,
        spec: &TargetSpec,
        kind: ScoreKind,
    ) -> Result<Target> {
        Ok(Target::resolve_keeping(model, x, spec, kind, None)?.0)
    }

    /// As `resolve`; an automatic target's forward pass comes back too, recorded for a
    /// backward under `record`'s checkpointing where given (the single-pass methods then run
    /// no second forward).
    pub fn resolve_keeping(
        model: &Model,
        x: &Tensor,
        spec: &TargetSpec,
        kind: ScoreKind,
        record: Option<super::checkpoint::Checkpoint>,
    ) -> Result<(Target, Option<evaluate::RecordedPass>)> {
        let target = |t: Target| Ok((t, None));
        let causal = model.arch.is_causal();
        match spec {
            TargetSpec::Compare(_) | TargetSpec::Class(_) if causal => Err(Error::InvalidArgument(format!(
                "{} is a causal LM: use --target, --target-id or the default top token, not --compare-text or --target-class",
                model.arch.name()
            ))),
            TargetSpec::Token(_) | TargetSpec::TokenId(_) if !causal => Err(Error::InvalidArgument(
                "an encoder has no next token: use --compare-text TEXT or --target-class N".into(),
            )),
            TargetSpec::Auto if causal => {
                let (top, pass) = evaluate::top_next_token(model, x, record)?;
                Ok((Target::NextToken { id: top, kind }, Some(pass)))
            }
            TargetSpec::Token(text) => {
                let ids = model.tokenizer.encode(text, false)?;
                if ids.len() != 1 {
                    let parts: Vec<String> =
                        ids.iter().map(|&i| format!("{:?}", model.tokenizer.token_text(i))).collect();
                    return Err(Error::InvalidArgument(format!(
                        "target {text:?} must be exactly one token, but it splits into {} tokens: [{}]",
                        ids.len(),
                        parts.join(", ")
                    )));
                }
                target(Target::NextToken { id: ids[0], kind })
            }
            TargetSpec::TokenId(id) => {
                if *id as usize >= model.info.vocab_size {
                    return Err(Error::InvalidArgument(format!(
                        "target id {id} is outside the vocabulary of {}",
                        model.info.vocab_size
                    )));
                }
                target(Target::NextToken { id: *id, kind })
            }
            TargetSpec::Class(index) => {
                let labels = model.info.classifier_labels.ok_or_else(|| {
                    Error::InvalidArgument(format!("{} has no classification head for --target-class", model.name))
                })?;
                if *index >= labels {
                    return Err(Error::InvalidArgument(format!("class {index} of a {labels}-class head")));
                }
                target(Target::Class { index: *index, kind })
            }
            TargetSpec::Compare(text) => {
                if kind != ScoreKind::Logit {
                    return Err(Error::InvalidArgument(
                        "--target-kind applies to token and class targets, not --compare-text".into(),
                    ));
                }
                let ids = model.tokenize_as(text, "the compare text")?;
                let reference = evaluate::pooled_embedding(model, &model.embed(&ids)?)?;
                target(Target::Cosine { reference, text: text.clone() })
            }
            TargetSpec::Auto => {
                if model.classifier().is_some() {
                    let (index, pass) = evaluate::top_class(model, x, record)?;
                    Ok((Target::Class { index, kind }, Some(pass)))
                } else {
                    Err(Error::InvalidArgument(
                        "an encoder needs a target: --compare-text TEXT (or --target-class N with a classification head)".into(),
                    ))
                }
            }
        }
    }

    /// `F` for each row of the last hidden states `h: [b, len, hidden]`: a `[b]` var.
    pub fn score(&self, model: &Model, tape: &mut Tape, h: Var) -> Result<Var> {
        let len = tape.value(h).dims()[1];
        let b = tape.value(h).dims()[0];
        match self {
            Target::NextToken { id, kind } => {
                let last = tape.select_position(h, len - 1)?;
                let out = model
                    .output_embeddings()
                    .ok_or_else(|| Error::Other("model has no output head".into()))?;
                let head = Head {
                    weight: out,
                    bias: None,
                    softcap: model.logit_softcap(),
                };
                pick(tape, last, &head, *id as usize, *kind, b)
            }
            Target::Class { index, kind } => {
                let head = model
                    .classifier()
                    .ok_or_else(|| Error::Other("model has no classifier".into()))?;
                let pooled = head.pooled(tape, h)?;
                let c = &head.classifier;
                let head = Head {
                    weight: &c.weight,
                    bias: c.bias.as_ref(),
                    softcap: None,
                };
                pick(tape, pooled, &head, *index, *kind, b)
            }
            Target::Cosine { reference, .. } => {
                let w = vec![1.0 / len as f32; len];
                let pooled = tape.weighted_seq_sum(h, &w)?;
                tape.cosine_to_const(pooled, reference)
            }
        }
    }

    pub fn info(&self, model: &Model) -> TargetInfo {
        match self {
            Target::NextToken { id, kind } => TargetInfo {
                kind: kind.name().into(),
                id: Some(*id),
                token: Some(model.tokenizer.token_text(*id)),
            },
            Target::Class { index, kind } => TargetInfo {
                kind: format!("class-{}", kind.name()),
                id: Some(*index as u32),
                token: None,
            },
            Target::Cosine { text, .. } => TargetInfo {
                kind: "cosine".into(),
                id: None,
                token: Some(text.clone()),
            },
        }
    }
}

/// Row `index` of `x Wᵀ + b`: only that row of `W` for a logit, every row under a softmax.
/// An output layer: `x Wᵀ + b`, then (Gemma 2's logits) soft-capped.
struct Head<'a> {
    weight: &'a Tensor,
    bias: Option<&'a Tensor>,
    softcap: Option<f32>,
}

fn pick(
    tape: &mut Tape,
    x: Var,
    head: &Head,
    index: usize,
    kind: ScoreKind,
    batch: usize,
) -> Result<Var> {
    let (weight, bias) = (head.weight, head.bias);
    let d = weight.dims()[1];
    match kind {
        ScoreKind::Logit => {
            let row = Tensor::from_storage(
                weight
                    .backend()
                    .gather_rows(weight.storage(), &[index as u32], d)?,
                [1, d].into(),
            );
            let b = match bias {
                Some(b) => Some(Tensor::from_vec(vec![b.to_vec()?[index]], [1], b.device())?),
                None => None,
            };
            let y = tape.linear(x, &row, b.as_ref())?;
            let y = softcap(tape, y, head.softcap)?;
            tape.reshape(y, vec![batch])
        }
        ScoreKind::Prob | ScoreKind::LogProb => {
            let logits = tape.linear(x, weight, bias)?;
            let logits = softcap(tape, logits, head.softcap)?;
            let pk = if kind == ScoreKind::Prob {
                PickKind::Prob
            } else {
                PickKind::LogProb
            };
            tape.pick_softmax(logits, index, pk)
        }
    }
}

/// `c·tanh(v/c)` with a cap `c`, else `v`.
pub(crate) fn softcap(tape: &mut Tape, v: Var, cap: Option<f32>) -> Result<Var> {
    let Some(c) = cap else { return Ok(v) };
    let v = tape.scale(v, 1.0 / c)?;
    let v = tape.activation(v, crate::backend::Activation::Tanh)?;
    tape.scale(v, c)
}
