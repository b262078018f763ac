//! The tape: an eager forward that records nodes, and a reverse walk that applies a rule set.

use super::rules::{NodeView, RuleSet};
use crate::backend::backend_for;
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::tensor::Tensor;

/// A value on the tape (an activation). Weights are never `Var`s: they are constants held by
/// the ops, which is why no weight gradient is ever computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(usize);

struct Node {
    op: Op,
    inputs: Vec<Var>,
    output: Var,
}

#[derive(Default)]
pub struct Tape {
    values: Vec<Tensor>,
    requires_grad: Vec<bool>,
    nodes: Vec<Node>,
    attention: AttentionOutputs,
}

/// What the fused attention ops of a tape do with their outputs: a checkpointed pass records
/// them in its forward, and its recomputation in the backward takes them back instead of
/// computing them again. At thousands of tokens the attention is most of a layer's forward,
/// and its output is one `[len, hidden]` tensor per layer; the forward is deterministic, so
/// what is taken back is what would have been computed.
#[derive(Default)]
enum AttentionOutputs {
    #[default]
    Compute,
    Record(Vec<Tensor>),
    Replay(std::vec::IntoIter<Tensor>),
}

impl Tape {
    pub fn new() -> Self {
        Tape::default()
    }

    /// A tape whose fused attention ops keep their outputs for `take_attention_outputs`.
    pub fn recording_attention() -> Self {
        Tape {
            attention: AttentionOutputs::Record(Vec::new()),
            ..Tape::default()
        }
    }

    /// A tape whose fused attention ops take their outputs from `outputs`, in order: the
    /// recording of the same ops on the same inputs.
    pub fn replaying_attention(outputs: Vec<Tensor>) -> Self {
        Tape {
            attention: AttentionOutputs::Replay(outputs.into_iter()),
            ..Tape::default()
        }
    }

    /// The outputs a recording tape's fused attention ops kept (none for any other tape).
    pub fn take_attention_outputs(&mut self) -> Vec<Tensor> {
        match &mut self.attention {
            AttentionOutputs::Record(kept) => std::mem::take(kept),
            _ => Vec::new(),
        }
    }

    /// The fused attention's output: replayed, or computed by `compute` (and kept where the
    /// tape records). A replayed output must have the query's shape `like`.
    pub(crate) fn attention_output(
        &mut self,
        like: &[usize],
        compute: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Tensor> {
        match &mut self.attention {
            AttentionOutputs::Replay(kept) => match kept.next() {
                Some(t) if t.dims() == like => Ok(t),
                other => Err(Error::Other(format!(
                    "a recomputed attention found {} to replay for a query of {like:?}",
                    other.map_or("no output".to_string(), |t| format!("{:?}", t.dims()))
                ))),
            },
            AttentionOutputs::Record(kept) => {
                let out = compute()?;
                kept.push(out.clone());
                Ok(out)
            }
            AttentionOutputs::Compute => compute(),
        }
    }

    /// A leaf whose gradient `backward` can return.
    pub fn input(&mut self, t: Tensor) -> Var {
        self.leaf(t, true)
    }

    /// A leaf that needs no gradient.
    pub fn constant(&mut self, t: Tensor) -> Var {
        self.leaf(t, false)
    }

    fn leaf(&mut self, t: Tensor, requires_grad: bool) -> Var {
        self.values.push(t);
        self.requires_grad.push(requires_grad);
        Var(self.values.len() - 1)
    }

    pub fn value(&self, v: Var) -> &Tensor {
        &self.values[v.0]
    }

    pub fn requires_grad(&self, v: Var) -> bool {
        self.requires_grad[v.0]
    }

    /// Records `op` producing `out` from `inputs`; nodes nobody differentiates are not kept.
    pub fn push(&mut self, op: Op, inputs: &[Var], out: Tensor) -> Var {
        let requires = inputs.iter().any(|v| self.requires_grad[v.0]);
        let output = self.leaf(out, requires);
        if requires {
            self.nodes.push(Node {
                op,
                inputs: inputs.to_vec(),
                output,
            });
        }
        output
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Reverse pass from `output`, seeded with `seed` (same shape as the output), through
    /// `rules`. Returns the gradient of every var in `wrt` (zeros where nothing flowed).
    pub fn backward(
        &self,
        output: Var,
        seed: Tensor,
        rules: &dyn RuleSet,
        wrt: &[Var],
    ) -> Result<Vec<Tensor>> {
        if seed.dims() != self.value(output).dims() {
            return Err(Error::Shape(format!(
                "backward seed {} does not match output {}",
                seed.shape(),
                self.value(output).shape()
            )));
        }
        let mut grads: Vec<Option<Tensor>> = vec![None; self.values.len()];
        grads[output.0] = Some(seed);
        for node in self.nodes.iter().rev() {
            // Taken, not cloned: an output's gradient is complete once its node is reached.
            let Some(g) = grads[node.output.0].take() else {
                continue;
            };
            let inputs: Vec<&Tensor> = node.inputs.iter().map(|v| self.value(*v)).collect();
            let needs: Vec<bool> = node
                .inputs
                .iter()
                .map(|v| self.requires_grad[v.0])
                .collect();
            let view = NodeView {
                op: &node.op,
                inputs: &inputs,
                output: self.value(node.output),
                needs_grad: &needs,
            };
            let input_grads = backward_of(rules, &view, &g)?;
            if input_grads.len() != node.inputs.len() {
                return Err(Error::Other(format!(
                    "rule '{}' for op '{}' returned {} gradients for {} inputs",
                    rules.name(),
                    node.op.name(),
                    input_grads.len(),
                    node.inputs.len()
                )));
            }
            for ((var, gi), need) in node.inputs.iter().zip(input_grads).zip(needs) {
                let (Some(gi), true) = (gi, need) else {
                    continue;
                };
                if gi.dims() != self.value(*var).dims() {
                    return Err(Error::Shape(format!(
                        "op '{}' gave a gradient {} for an input {}",
                        node.op.name(),
                        gi.shape(),
                        self.value(*var).shape()
                    )));
                }
                grads[var.0] = Some(match grads[var.0].take() {
                    None => gi,
                    Some(acc) => accumulate(&acc, &gi)?,
                });
            }
        }
        wrt.iter()
            .map(|v| match grads[v.0].take() {
                Some(g) => Ok(g),
                None => Tensor::zeros(self.value(*v).shape().clone(), self.value(*v).device()),
            })
            .collect()
    }
}

fn accumulate(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let storage = backend_for(a.device())?.add(a.storage(), b.storage())?;
    Ok(Tensor::from_storage(storage, a.shape().clone()))
}

/// `rules`' backward of `view`; the fused attention, where they have no rule for it, as its
/// two pieces under their rules for those.
fn backward_of(rules: &dyn RuleSet, view: &NodeView, g: &Tensor) -> crate::ops::Grads {
    let no_rule = |op: &Op| Error::NoRule {
        rules: rules.name().to_string(),
        op: op.name(),
    };
    match rules.backward(view, g) {
        Some(grads) => grads,
        None if matches!(view.op, Op::Attention { .. }) => {
            crate::ops::attention::unfused(view, g, &|piece, g| {
                rules.backward(piece, g).ok_or_else(|| no_rule(piece.op))?
            })
        }
        None => Err(no_rule(view.op)),
    }
}
