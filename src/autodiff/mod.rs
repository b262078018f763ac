//! Tape-based reverse-mode autodiff with rule-driven backward passes.

mod rules;
mod tape;

pub use rules::{Gradient, NodeView, RuleSet};
pub use tape::{Tape, Var};
