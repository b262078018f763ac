//! A request by option names, as every surface but the CLI's flags makes one: Python's keyword
//! arguments, the server's JSON fields, the records of a JSONL input. Names are the CLI's long
//! flags, with `_` or `-` alike (`compare_text`, `max-dist`). The settings every method shares
//! (target, batching, map) are taken out; the rest must be some method's option, and a name
//! that is neither is an error that names it.

use super::methods;
use super::targets::{ScoreKind, TargetSpec};
use super::Checkpoint;
use super::{Method, Settings, Values};
use crate::error::{Error, Result};
use crate::{Attribution, Model};

/// The names of the settings, as the CLI spells them.
pub const SETTINGS: &[&str] = &[
    "target",
    "target-id",
    "target-class",
    "target-kind",
    "compare-text",
    "batch-size",
    "checkpoint",
    "include-map",
];

/// A method by name with its option values, and the settings.
#[derive(Clone, Default)]
pub struct Request {
    pub method: String,
    pub values: Values,
    pub settings: Settings,
}

impl Request {
    /// `method` (a name or alias) with `options` as `(name, value as text)`; JSON's `true`
    /// and numbers come as their text.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(
        method: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Request> {
        Request {
            method: methods::find(method)?.name.to_string(),
            ..Request::default()
        }
        .with(options)
    }

    /// This request with `options` given on top: each replaces what it names (a target
    /// replaces the target, however it was given), the rest stays.
    pub fn with<K: AsRef<str>, V: AsRef<str>>(
        mut self,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Request> {
        let r = &mut self;
        let mut targets = Vec::new();
        for (name, value) in options {
            let (name, value) = (name.as_ref(), value.as_ref());
            let flag = name.replace('_', "-");
            let bad = |what: &str| {
                Error::InvalidArgument(format!("option {name} = {value:?}: expected {what}"))
            };
            match flag.as_str() {
                "target" => targets.push((flag, TargetSpec::Token(value.to_string()))),
                "target-id" => targets.push((
                    flag,
                    TargetSpec::TokenId(value.parse().map_err(|_| bad("a token id"))?),
                )),
                "target-class" => targets.push((
                    flag,
                    TargetSpec::Class(value.parse().map_err(|_| bad("a class index"))?),
                )),
                "compare-text" => targets.push((flag, TargetSpec::Compare(value.to_string()))),
                "target-kind" => r.settings.score = value.parse::<ScoreKind>()?,
                "batch-size" => r.settings.batch_size = parse_batch_size(value)?,
                "checkpoint" => r.settings.checkpoint = value.parse::<Checkpoint>()?,
                "include-map" => {
                    r.settings.include_map =
                        parse_bool(value).ok_or_else(|| bad("true or false"))?
                }
                _ => {
                    if !methods::all_options().iter().any(|(s, _)| s.name == flag) {
                        return Err(Error::InvalidArgument(format!(
                            "unknown option '{name}' (every method takes {}; --help and gradlens.methods() list each method's own)",
                            SETTINGS.join(", ")
                        )));
                    }
                    r.values.set(&flag, value);
                }
            }
        }
        match targets.len() {
            0 => {}
            1 => r.settings.target = targets.pop().expect("one").1,
            _ => {
                let names: Vec<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
                return Err(Error::InvalidArgument(format!(
                    "{} choose the target each in their own way: give one",
                    names.join(" and ")
                )));
            }
        }
        // Every value is checked against its option's range now, before any model work.
        methods::check_values(&r.values)?;
        Ok(self)
    }

    /// The method, configured from the values.
    pub fn build(&self) -> Result<Box<dyn Method>> {
        methods::build(&self.method, &self.values)
    }

    /// `text` attributed by the requested method under `settings` (the request's own, or
    /// those with a cancel added), with a warning for each option the method did not read.
    pub fn attribute(&self, model: &Model, text: &str, settings: &Settings) -> Result<Attribution> {
        let method = self.build()?;
        let mut a = super::attribute(model, text, method.as_ref(), settings)?;
        a.warnings.extend(ignored_options(
            &self.values,
            std::slice::from_ref(&method),
            false,
        ));
        Ok(a)
    }
}

impl Request {
    /// Generates up to `n` tokens greedily after `prompt` and attributes each to the prompt and
    /// the tokens generated before it with the requested method (`attribute --generate`).
    pub fn generate_and_attribute(
        &self,
        model: &Model,
        prompt: &str,
        settings: &Settings,
        n: usize,
        stop_at_eos: bool,
    ) -> Result<Attribution> {
        let method = self.build()?;
        crate::generation::attribute_generation(
            model,
            prompt,
            method.as_ref(),
            settings,
            n,
            stop_at_eos,
        )
    }

    /// `text` attributed by each of `methods` (this request's own method is not among them
    /// unless named) with this request's options, and the faithfulness of each, as
    /// `gradlens evaluate` reports it: one baseline for the methods and the removed tokens.
    pub fn evaluate(
        &self,
        model: &Model,
        text: &str,
        methods: &[String],
        settings: &Settings,
    ) -> Result<super::faithfulness::Evaluation> {
        let mut values = self.values.clone();
        let baseline = super::faithfulness::shared_baseline(&mut values)?;
        let built = methods
            .iter()
            .map(|name| methods::build(name, &values))
            .collect::<Result<Vec<Box<dyn Method>>>>()?;
        let ids = model.tokenize(text)?;
        let refs: Vec<&dyn Method> = built.iter().map(|m| m.as_ref()).collect();
        super::faithfulness::faithfulness(model, &ids, &refs, &baseline, settings)
    }
}

/// `--batch-size`: a number of at least 1, or `auto` (`None`).
pub fn parse_batch_size(text: &str) -> Result<Option<usize>> {
    match text {
        "auto" => Ok(None),
        n => match n.parse::<usize>() {
            Ok(0) => Err(Error::InvalidArgument(
                "--batch-size must be at least 1".into(),
            )),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(Error::InvalidArgument(format!(
                "--batch-size must be a number or auto, not {n:?}"
            ))),
        },
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// A warning for each option given in `values` that none of `methods` read (so nothing is
/// dropped silently); `evaluate` removes tokens to the baseline whatever the methods.
pub fn ignored_options(
    values: &Values,
    methods: &[Box<dyn Method>],
    evaluate: bool,
) -> Vec<String> {
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    values
        .unread()
        .into_iter()
        .filter(|o| !(evaluate && o == "baseline"))
        .map(|o| {
            // Declared but unread: the method reads it only with other options.
            let declared = methods
                .iter()
                .flat_map(|m| m.info().options)
                .find(|s| s.name == o);
            let why = match declared {
                Some(spec) => format!(" with these options (--{o}: {})", spec.help),
                None => String::new(),
            };
            format!(
                "--{o} was ignored: {} does not use it{why}",
                names.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_options_by_name_with_either_separator() {
        let r = Request::new(
            "ig",
            [
                ("steps", "8"),
                ("compare_text", "a reference"),
                ("batch-size", "3"),
                ("include_map", "true"),
                ("target_kind", "prob"),
            ],
        )
        .unwrap();
        assert_eq!(r.method, "integrated-gradients");
        assert_eq!(r.values.raw("steps"), Some("8"));
        assert_eq!(r.settings.target, TargetSpec::Compare("a reference".into()));
        assert_eq!(r.settings.batch_size, Some(3));
        assert!(r.settings.include_map);
        assert_eq!(r.settings.score, ScoreKind::Prob);
        let guided = Request::new("guided-ig", [("max_dist", "0.1")]).unwrap();
        assert_eq!(guided.values.raw("max-dist"), Some("0.1"));
    }

    #[test]
    fn unknown_names_conflicting_targets_and_bad_values_are_refused_by_name() {
        let err = |r: Result<Request>| r.err().expect("an error").to_string();
        assert!(err(Request::new("saliency", [("stepz", "3")])).contains("unknown option 'stepz'"));
        assert!(err(Request::new("no-such", [("steps", "3")])).contains("unknown method"));
        assert!(err(Request::new(
            "saliency",
            [("target", "a"), ("target_id", "3")]
        ))
        .contains("target and target-id"));
        assert!(err(Request::new("ig", [("steps", "many")])).contains("--steps"));
        assert!(err(Request::new("ig", [("batch_size", "0")])).contains("at least 1"));
    }
}
