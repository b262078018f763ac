//! A method's options: each method declares them (`OptionSpec`: name, default, help) and
//! reads them from `Values`, the text every surface passes on (the CLI's flags, later Python's
//! keywords and the server's JSON). Nothing outside a method's own file names its options.

use crate::error::{Error, Result};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::str::FromStr;
use std::sync::Mutex;

/// What kind of value an option takes: the CLI checks it before anything runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number ≥ 0.
    Count,
    /// A real number.
    Number,
    /// A word or a path.
    Text,
    /// On when given (`--exact`).
    Flag,
}

/// A number's valid range (a predicate) and what it must be, in words.
pub type Range = (fn(f64) -> bool, &'static str);

/// One option of a method, by its CLI name (`--steps`). Methods that share a name share its
/// meaning; each declares its own default.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// `None`: unset unless given (the method decides, from the input).
    pub default: Option<&'static str>,
    pub help: &'static str,
    /// A number's valid range, and what it must be in words ("a finite number > 0").
    pub range: Option<Range>,
}

impl OptionSpec {
    pub const fn new(
        name: &'static str,
        kind: Kind,
        default: Option<&'static str>,
        help: &'static str,
    ) -> Self {
        OptionSpec {
            name,
            kind,
            default,
            help,
            range: None,
        }
    }

    /// The same option, refusing numbers outside `valid` ("--epsilon must be `must`").
    pub const fn within(mut self, valid: fn(f64) -> bool, must: &'static str) -> Self {
        self.range = Some((valid, must));
        self
    }

    /// Whether `text` is a valid value: it parses as the option's kind, within its range.
    pub fn check(&self, text: &str) -> Result<()> {
        let bad = |why: String| Error::InvalidArgument(format!("--{} {text:?}: {why}", self.name));
        match self.kind {
            Kind::Count => {
                text.parse::<u64>().map_err(|e| bad(e.to_string()))?;
            }
            Kind::Number => {
                let v: f64 = text
                    .parse()
                    .map_err(|e: std::num::ParseFloatError| bad(e.to_string()))?;
                if let Some((valid, must)) = self.range {
                    if !valid(v) {
                        return Err(Error::InvalidArgument(format!(
                            "--{} must be {must}, not {text}",
                            self.name
                        )));
                    }
                }
            }
            Kind::Text | Kind::Flag => {}
        }
        Ok(())
    }
}

impl OptionSpec {
    /// The default, parsed: for a field an option leaves unread (IG's `steps` when it runs
    /// adaptively).
    pub fn default_value<T: FromStr>(&self) -> T {
        self.default
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("--{} has no valid default", self.name))
    }
}

/// Option values by name, as text. A method's `build` reads what it uses; what was given and
/// never read is reported (`unread`), so no option is silently dropped.
#[derive(Debug, Default)]
pub struct Values {
    given: BTreeMap<String, String>,
    read: Mutex<BTreeSet<String>>,
}

impl Clone for Values {
    fn clone(&self) -> Self {
        Values {
            given: self.given.clone(),
            read: Mutex::new(self.read.lock().unwrap().clone()),
        }
    }
}

impl Values {
    pub fn new() -> Values {
        Values::default()
    }

    /// `name = value` (a number, a word or a path, as its text).
    pub fn with(mut self, name: &str, value: impl Display) -> Values {
        self.set(name, value);
        self
    }

    pub fn set(&mut self, name: &str, value: impl Display) {
        self.given.insert(name.to_string(), value.to_string());
    }

    /// The text given for `name`, without marking it read.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.given.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.given.keys().map(String::as_str)
    }

    /// The text of `spec` (given, or its default), checked; marks it read.
    fn text(&self, spec: &OptionSpec) -> Result<Option<&str>> {
        self.read.lock().unwrap().insert(spec.name.to_string());
        let text = self.raw(spec.name).or(spec.default);
        if let Some(t) = text {
            spec.check(t)?;
        }
        Ok(text)
    }

    /// The value of `spec`, or its default.
    pub fn get<T: FromStr>(&self, spec: &OptionSpec) -> Result<T>
    where
        T::Err: Display + 'static,
    {
        self.get_opt(spec)?
            .ok_or_else(|| Error::InvalidArgument(format!("--{} is required", spec.name)))
    }

    /// The value of `spec`, its default, or `None` where it has none.
    pub fn get_opt<T: FromStr>(&self, spec: &OptionSpec) -> Result<Option<T>>
    where
        T::Err: Display + 'static,
    {
        self.text(spec)?
            .map(|t| {
                t.parse()
                    .map_err(|e: T::Err| match (&e as &dyn Any).downcast_ref::<Error>() {
                        // Our own types name the option and what it takes ("unknown baseline 'x'
                        // (expected zero or pad)").
                        Some(Error::InvalidArgument(why)) => Error::InvalidArgument(why.clone()),
                        _ => Error::InvalidArgument(format!("--{} {t:?}: {e}", spec.name)),
                    })
            })
            .transpose()
    }

    /// Whether a flag was given (any value but `false`).
    pub fn flag(&self, spec: &OptionSpec) -> Result<bool> {
        Ok(self.text(spec)?.is_some_and(|t| t != "false"))
    }

    /// A count of at least 1.
    pub fn positive(&self, spec: &OptionSpec) -> Result<usize> {
        let n: usize = self.get(spec)?;
        if n == 0 {
            return Err(Error::InvalidArgument(format!(
                "--{} must be at least 1",
                spec.name
            )));
        }
        Ok(n)
    }

    /// The options given that nothing has read.
    pub fn unread(&self) -> Vec<String> {
        let read = self.read.lock().unwrap();
        self.given
            .keys()
            .filter(|k| !read.contains(*k))
            .cloned()
            .collect()
    }
}
