//! Feature ablation (Captum's `FeatureAblation`): each feature, a token or a word of tokens,
//! replaced by the baseline; its score is `F(x) − F(x with that feature ablated)`, given to
//! every token of the feature. With tokens as features it is occlusion with a window of one.
//! All ablated copies are forward passes only, batched.

use super::common;
use crate::attribution::engine::{coalitions, Baseline, Prepared};
use crate::attribution::{Attribution, Family, Kind, Method, MethodInfo, OptionSpec, Values};
use crate::error::{Error, Result};

/// What one feature is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Token,
    /// Tokens joined into words: a token starts a new word when its text starts with
    /// whitespace (a whitespace-only token joins the word after it), when it or the token
    /// before it is punctuation or a special token (`<s>`, `[CLS]`), and, for WordPiece, unless
    /// it is a `##` piece.
    Word,
}

impl std::str::FromStr for Group {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "token" => Ok(Group::Token),
            "word" => Ok(Group::Word),
            _ => Err(Error::InvalidArgument(format!(
                "unknown --group '{s}' (expected token or word)"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FeatureAblation {
    pub baseline: Baseline,
    pub group: Group,
}

const BASELINE: OptionSpec = common::baseline("zero");
const GROUP: OptionSpec = OptionSpec::new(
    "group",
    Kind::Text,
    Some("token"),
    "feature-ablation: what is ablated at once, token or word",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "feature-ablation",
    aliases: &[],
    summary: "F(x) - F(one token, or one --group word, at --baseline)",
    cost: "1 forward per feature, batched",
    family: Family::Perturbation,
    options: &[BASELINE, GROUP],
    build: |v| Ok(Box::new(FeatureAblation::from_values(v)?)),
};

impl FeatureAblation {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(FeatureAblation {
            baseline: v.get(&BASELINE)?,
            group: v.get(&GROUP)?,
        })
    }
}

impl Default for FeatureAblation {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

/// Each token's feature index, features numbered in order.
pub fn features(p: &Prepared, group: Group) -> Vec<usize> {
    let texts: Vec<String> = p
        .ids
        .iter()
        .map(|&i| p.model.tokenizer.token_text(i))
        .collect();
    // WordPiece marks a word's later pieces with `##`; the BPE tokenizers mark its first
    // piece with a leading space.
    let wordpiece = p.model.tokenizer.token_to_id("##s").is_some();
    let wordy = |t: &str| t.chars().any(char::is_alphanumeric);
    let blank = |t: &str| !t.is_empty() && t.trim().is_empty();
    let special = |t: &str| {
        (t.starts_with('<') && t.ends_with('>')) || (t.starts_with('[') && t.ends_with(']'))
    };
    let punctuation = |t: &str| !wordy(t) && !blank(t);
    let starts_word = |i: usize| {
        let (t, prev) = (texts[i].as_str(), texts[i - 1].as_str());
        special(t)
            || special(prev)
            || punctuation(t)
            || punctuation(prev)
            || t.starts_with(char::is_whitespace)
            || (wordpiece && !t.starts_with("##"))
    };
    let mut out = Vec::with_capacity(texts.len());
    for i in 0..texts.len() {
        let next = match out.last() {
            None => 0,
            Some(&last) if group == Group::Token || starts_word(i) => last + 1,
            Some(&last) => last,
        };
        out.push(next);
    }
    out
}

impl Method for FeatureAblation {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let feature = features(p, self.group);
        let count = feature.last().map_or(0, |f| f + 1);
        let b = p.baseline(&self.baseline)?.to_vec()?;
        // Copy `count` is x itself, so F(x) shares the batch.
        let f = coalitions::scores(p, &b, count + 1, |g, t| feature[t] != g)?;
        let f_x = f[count];
        let scores = feature.iter().map(|&g| f_x - f[g]).collect();
        let mut a = p.token_level(INFO.name, scores, f_x);
        if self.group == Group::Word {
            a.set_extra("features", &feature);
        }
        Ok(a)
    }
}
