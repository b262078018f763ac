//! What a forward pass does with each attention layer's probabilities: records them (the
//! attention methods read them) and, where asked, replaces one layer's by given ones (RPI
//! differentiates with respect to them). The model passes it down to its attention layers,
//! so the tape knows nothing of attention. A pass whose hook wants neither (the default)
//! runs the fused attention, which never holds the probabilities.

use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Default)]
pub struct AttentionHook {
    /// Every attention layer's probabilities `[b, heads, len, len]` so far, in layer order.
    pub probabilities: Vec<Var>,
    /// Probabilities that replace one layer's own (layer index, tensor).
    replacement: Option<(usize, Tensor)>,
    /// Whether the pass must form the probabilities (to record or replace them).
    wanted: bool,
}

impl AttentionHook {
    /// A hook that records every layer's probabilities.
    pub fn recording() -> Self {
        AttentionHook {
            wanted: true,
            ..Default::default()
        }
    }

    /// Whether the attention layers must form their probabilities for this hook.
    pub fn wants_probabilities(&self) -> bool {
        self.wanted
    }

    /// A hook that replaces layer `layer`'s probabilities by `probs` (a leaf with a gradient).
    pub fn replacing(layer: usize, probs: Tensor) -> Self {
        AttentionHook {
            probabilities: Vec::new(),
            replacement: Some((layer, probs)),
            wanted: true,
        }
    }

    /// Called by each attention layer with its probabilities: records them, and returns
    /// what the layer goes on with (the replacement, for the named layer).
    pub fn see(&mut self, tape: &mut Tape, probs: Var) -> Result<Var> {
        let layer = self.probabilities.len();
        let out = match &self.replacement {
            Some((l, t)) if *l == layer => {
                if t.dims() != tape.value(probs).dims() {
                    return Err(Error::Shape(format!(
                        "attention replacement {} for layer {layer}, whose probabilities are {}",
                        t.shape(),
                        tape.value(probs).shape()
                    )));
                }
                tape.input(t.clone())
            }
            _ => probs,
        };
        self.probabilities.push(out);
        Ok(out)
    }
}
