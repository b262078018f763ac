//! `gradlens.Attribution`: one result, its scores and map as numpy arrays, its record as the
//! CLI's JSON (`to_dict`) and the CLI's HTML page (`to_html`).

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;

#[pyclass(module = "gradlens._gradlens", frozen)]
pub struct Attribution {
    inner: gradlens::Attribution,
}

impl Attribution {
    pub fn new(inner: gradlens::Attribution) -> Self {
        Attribution { inner }
    }
}

/// A serialisable value as the Python object `json.loads` makes of it.
fn to_python<T: serde::Serialize + ?Sized>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(v)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

#[pymethods]
impl Attribution {
    /// The tokens as the tokenizer gives them.
    #[getter]
    fn tokens(&self) -> Vec<String> {
        self.inner.tokens.clone()
    }

    /// The tokens as a person reads them (byte pieces as `\xNN`).
    #[getter]
    fn display(&self) -> Vec<String> {
        self.inner.display.clone()
    }

    #[getter]
    fn token_ids(&self) -> Vec<u32> {
        self.inner.token_ids.clone()
    }

    /// One score per token, float32.
    #[getter]
    fn scores<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.inner.scores.clone().into_pyarray(py)
    }

    /// The `[tokens, hidden]` map (float32), where `include_map=True` asked for it.
    #[getter]
    fn map<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray2<f32>>>> {
        let Some(map) = &self.inner.map else {
            return Ok(None);
        };
        let rows = self.inner.tokens.len().max(1);
        let array = map.clone().into_pyarray(py);
        Ok(Some(array.reshape([rows, map.len() / rows])?))
    }

    /// What was explained: `{"kind", "id", "token"}` as in the CLI's JSON.
    #[getter]
    fn target(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.inner.target)
    }

    /// `F(x)`.
    #[getter]
    fn target_score(&self) -> f32 {
        self.inner.target_score
    }

    /// `F(x′)` for path methods.
    #[getter]
    fn baseline_score(&self) -> Option<f32> {
        self.inner.baseline_score
    }

    /// `Σ scores − (F(x) − F(x′))` for path methods.
    #[getter]
    fn delta(&self) -> Option<f32> {
        self.inner.convergence_delta
    }

    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings.clone()
    }

    #[getter]
    fn method(&self) -> String {
        self.inner.method.clone()
    }

    #[getter]
    fn model(&self) -> String {
        self.inner.model.clone()
    }

    #[getter]
    fn elapsed_ms(&self) -> f64 {
        self.inner.elapsed_ms
    }

    /// What only this method reports (`steps`, `selection_order`, …).
    #[getter]
    fn extras(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.inner.extras)
    }

    /// With generation: the generated tokens.
    #[getter]
    fn generated_tokens(&self) -> Option<Vec<String>> {
        self.inner.generated_tokens.clone()
    }

    /// With generation: each generated token's attribution to the tokens before it, as dicts.
    #[getter]
    fn generation(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner
            .generation
            .as_ref()
            .map(|g| to_python(py, g))
            .transpose()
    }

    /// The result as the CLI's JSON output, field for field.
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.inner)
    }

    /// The CLI's JSON text.
    fn to_json(&self) -> PyResult<String> {
        gradlens::report::render_json(&self.inner)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    /// The CLI's self-contained HTML page.
    fn to_html(&self) -> String {
        gradlens::report::render_html(&self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "Attribution(method={:?}, tokens={}, target_score={:.5})",
            self.inner.method,
            self.inner.tokens.len(),
            self.inner.target_score
        )
    }
}
