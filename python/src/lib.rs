//! `gradlens._gradlens`, the compiled half of the Python package: a `Model` whose attributions
//! run in Rust with the GIL released, an `Attribution` that hands its scores and map over as
//! numpy arrays, and the method registry. The pure-Python half (`gradlens/`) adds keyword
//! arguments, the exception classes and rules written in Python.

mod attribution;
mod errors;
mod model;
mod rules;
mod run;

use pyo3::prelude::*;

// Large buffers on transparent huge pages (see gradlens::alloc).
#[global_allocator]
static ALLOCATOR: gradlens::alloc::HugePages = gradlens::alloc::HugePages;

/// Loads a Hugging Face folder or a GGUF file onto `device` (cpu, cuda, wgpu or auto), weight
/// matrices `weights` (stored or f32).
#[pyfunction]
#[pyo3(signature = (path, device = "cpu", weights = "stored"))]
fn load(
    py: Python<'_>,
    path: std::path::PathBuf,
    device: &str,
    weights: &str,
) -> PyResult<model::Model> {
    let (device, weights) = (device.to_string(), weights.to_string());
    let inner = run::run(py, move |_| {
        let device: gradlens::Device = device.parse()?;
        gradlens::Model::load_with(&path, device, weights.parse()?)
    })?;
    Ok(model::Model::new(inner))
}

/// Every method with its summary, cost, family and options (name, kind, default, help), and
/// the settings every method takes, as JSON.
#[pyfunction]
fn methods_json() -> String {
    gradlens::attribution::methods::registry_json().to_string()
}

#[pymodule]
fn _gradlens(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(methods_json, m)?)?;
    m.add_class::<model::Model>()?;
    m.add_class::<attribution::Attribution>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
