//! `gradlens.Model`: a loaded model. Its work runs in Rust with the GIL released; options come
//! as `(name, text)` pairs from the Python wrapper and are checked in Rust by name.

use crate::attribution::Attribution;
use crate::errors;
use crate::rules::PyRules;
use crate::run::run;
use gradlens::attribution::{self as attr, Request};
use pyo3::prelude::*;
use rayon::prelude::*;
use std::sync::Arc;

#[pyclass(module = "gradlens._gradlens", frozen)]
pub struct Model {
    inner: Arc<gradlens::Model>,
}

impl Model {
    pub fn new(inner: gradlens::Model) -> Self {
        Model {
            inner: Arc::new(inner),
        }
    }
}

/// `method` and `options` as a request, refused by name before any work.
fn request(py: Python<'_>, method: &str, options: Vec<(String, String)>) -> PyResult<Request> {
    Request::new(method, options).map_err(|e| errors::to_py(py, e))
}

#[pymethods]
impl Model {
    #[getter]
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    #[getter]
    fn architecture(&self) -> &'static str {
        self.inner.info.architecture
    }

    #[getter]
    fn device(&self) -> String {
        self.inner.device().to_string()
    }

    /// Whether the model predicts the next token (else it is an encoder).
    #[getter]
    fn is_causal(&self) -> bool {
        self.inner.arch.is_causal()
    }

    /// Whether the model has a classification head.
    #[getter]
    fn is_classifier(&self) -> bool {
        self.inner.info.classifier_labels.is_some()
    }

    /// Sizes, dtype and weights (what `gradlens info` prints), as JSON.
    fn info_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.info)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    fn tokenize(&self, py: Python<'_>, text: String) -> PyResult<Vec<u32>> {
        let model = self.inner.clone();
        run(py, move |_| model.tokenize(&text))
    }

    /// `texts`, each attributed by `method` with `options`, or by the Python rule set `rules`
    /// where given; several texts run concurrently, each computing exactly what it would alone.
    #[pyo3(signature = (texts, method, options, rules = None))]
    fn attribute(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        method: String,
        options: Vec<(String, String)>,
        rules: Option<Py<PyAny>>,
    ) -> PyResult<Vec<Attribution>> {
        let request = request(py, &method, options)?;
        let rules = rules.map(|r| PyRules::new(py, r)).transpose()?;
        // The method's options are checked before any model work.
        request.build().map_err(|e| errors::to_py(py, e))?;
        let model = self.inner.clone();
        let rules_ref = rules.as_ref();
        let result = run(py, move |cancel| {
            let settings = attr::Settings {
                cancel: Some(cancel.clone()),
                ..request.settings.clone()
            };
            let one = |text: &String| -> gradlens::Result<gradlens::Attribution> {
                if let Some(rules) = rules_ref {
                    return rules.attribute(&model, text, &settings);
                }
                request.attribute(&model, text, &settings)
            };
            texts
                .par_iter()
                .map(one)
                .collect::<gradlens::Result<Vec<_>>>()
        });
        // A rule's own Python exception, as it was raised.
        if let Some(e) = rules.as_ref().and_then(PyRules::raised) {
            return Err(e);
        }
        Ok(result?.into_iter().map(Attribution::new).collect())
    }

    /// Generates up to `n` tokens greedily and attributes each to the prompt and the tokens
    /// generated before it.
    fn generate_and_attribute(
        &self,
        py: Python<'_>,
        prompt: String,
        n: usize,
        stop_at_eos: bool,
        method: String,
        options: Vec<(String, String)>,
    ) -> PyResult<Attribution> {
        if n == 0 {
            return Err(errors::to_py(
                py,
                gradlens::Error::InvalidArgument("n must be at least 1".into()),
            ));
        }
        let request = request(py, &method, options)?;
        let model = self.inner.clone();
        let result = run(py, move |cancel| {
            let settings = attr::Settings {
                cancel: Some(cancel.clone()),
                ..request.settings.clone()
            };
            request.generate_and_attribute(&model, &prompt, &settings, n, stop_at_eos)
        })?;
        Ok(Attribution::new(result))
    }

    /// The faithfulness of `methods` on `text` (deletion and insertion curves,
    /// comprehensiveness, sufficiency, AOPC), as the CLI's `evaluate` JSON.
    fn evaluate(
        &self,
        py: Python<'_>,
        text: String,
        names: Vec<String>,
        options: Vec<(String, String)>,
    ) -> PyResult<String> {
        let first = names.first().cloned().unwrap_or_default();
        let request = request(py, &first, options)?;
        let model = self.inner.clone();
        run(py, move |cancel| {
            let settings = attr::Settings {
                cancel: Some(cancel.clone()),
                ..request.settings.clone()
            };
            let e = request.evaluate(&model, &text, &names, &settings)?;
            gradlens::report::render_evaluation(&e, gradlens::report::Format::Json)
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({:?}, {}, device={})",
            self.inner.name,
            self.inner.info.architecture,
            self.inner.device()
        )
    }
}
