//! Backward rules written in Python: a `gradlens.RuleSet` subclass whose methods named after op
//! kinds (`silu`, `linear`, `attention_probs`, …) replace those ops' backward. Each receives
//! the op's inputs, its output and the gradient arriving at it as float32 numpy arrays and
//! returns one gradient (or `None`) per input; every other op keeps its exact gradient.

use gradlens::attribution::{Settings, TokenScore};
use gradlens::autodiff::{NodeView, RuleSet};
use gradlens::ops::Op;
use gradlens::{Error, Result, Tensor};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::sync::Mutex;

/// The ops a fused attention is made of: a rule set that changes either sees attention as
/// these pieces instead of the fused op.
const ATTENTION_PIECES: [&str; 2] = ["attention_probs", "matmul"];

pub struct PyRules {
    object: Py<PyAny>,
    /// The op kinds the object has a method for.
    ops: Vec<String>,
    name: String,
    times_input: bool,
    score: TokenScore,
    /// The first Python exception a rule raised, re-raised as it is once the run ends.
    raised: Mutex<Option<PyErr>>,
}

impl PyRules {
    pub fn new(py: Python<'_>, object: Py<PyAny>) -> PyResult<Self> {
        let o = object.bind(py);
        let ops: Vec<String> = o.call_method0("overridden")?.extract()?;
        let name: String = o.getattr("name")?.extract()?;
        let times_input: bool = o.getattr("times_input")?.extract()?;
        let score = match o.getattr("token_score")?.extract::<String>()?.as_str() {
            "sum" => TokenScore::Sum,
            "norm" => TokenScore::Norm,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "{name}.token_score is {other:?}: expected \"sum\" or \"norm\""
                )))
            }
        };
        Ok(PyRules {
            object,
            ops,
            name,
            times_input,
            score,
            raised: Mutex::new(None),
        })
    }

    /// `text` attributed with these rules: `x ⊙ g` or `g` per `times_input`, scored per token
    /// by `token_score`.
    pub fn attribute(
        &self,
        model: &gradlens::Model,
        text: &str,
        settings: &Settings,
    ) -> Result<gradlens::Attribution> {
        gradlens::attribution::attribute_with_rules_as(
            model,
            text,
            self,
            self.times_input,
            self.score,
            settings,
        )
    }

    /// The Python exception a rule raised, if one did.
    pub fn raised(&self) -> Option<PyErr> {
        self.raised.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn call(
        &self,
        py: Python<'_>,
        kind: &str,
        node: &NodeView,
        g: &Tensor,
    ) -> PyResult<Vec<Option<Tensor>>> {
        let array = |t: &Tensor| -> PyResult<Bound<'_, PyArrayDyn<f32>>> {
            let values = t.to_vec().map_err(to_py_err)?;
            values.into_pyarray(py).reshape(t.dims().to_vec())
        };
        let inputs = PyList::empty(py);
        for t in node.inputs {
            inputs.append(array(t)?)?;
        }
        let grads = self
            .object
            .bind(py)
            .call_method1("_backward", (kind, inputs, array(node.output)?, array(g)?))?;
        let grads: Vec<Option<Bound<'_, PyArrayDyn<f32>>>> = grads.extract()?;
        if grads.len() != node.inputs.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{}.{kind} returned {} gradients for the op's {} inputs",
                self.name,
                grads.len(),
                node.inputs.len()
            )));
        }
        grads
            .into_iter()
            .zip(node.inputs)
            .map(|(g, input)| {
                let Some(g) = g else { return Ok(None) };
                if g.shape() != input.dims() {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "{}.{kind}: a gradient of shape {:?} for an input of shape {:?}",
                        self.name,
                        g.shape(),
                        input.dims()
                    )));
                }
                let values = g
                    .readonly()
                    .as_array()
                    .iter()
                    .copied()
                    .collect::<Vec<f32>>();
                Tensor::from_vec(values, input.dims().to_vec(), input.device())
                    .map(Some)
                    .map_err(to_py_err)
            })
            .collect()
    }
}

fn to_py_err(e: Error) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(e.to_string())
}

impl RuleSet for PyRules {
    fn name(&self) -> &str {
        &self.name
    }

    fn backward(&self, node: &NodeView, g: &Tensor) -> Option<Result<Vec<Option<Tensor>>>> {
        let kind = node.op.name();
        if matches!(node.op, Op::Attention { .. })
            && self
                .ops
                .iter()
                .any(|o| ATTENTION_PIECES.contains(&o.as_str()))
        {
            return None; // the tape gives this rule set attention's pieces instead
        }
        if !self.ops.iter().any(|o| o == kind) {
            return Some(node.op.vjp(node, g));
        }
        Some(Python::attach(|py| {
            self.call(py, kind, node, g).map_err(|e| {
                let message = format!("rule {}.{kind} raised: {e}", self.name);
                let mut slot = self.raised.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(e);
                Error::Other(message)
            })
        }))
    }
}
