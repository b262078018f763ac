//! gradlens' errors as the Python exceptions of `gradlens.errors`, with the CLI's messages.

use gradlens::Error;
use pyo3::prelude::*;

/// The class in `gradlens.errors` for `e`.
fn class_of(e: &Error) -> &'static str {
    match e {
        Error::ModelNotFound(_)
        | Error::MissingConfig(_)
        | Error::Config { .. }
        | Error::UnsupportedArchitecture(_)
        | Error::CorruptWeights { .. }
        | Error::CorruptGguf { .. }
        | Error::MissingTensor { .. }
        | Error::BadTensor { .. }
        | Error::Tokenizer(_) => "ModelError",
        Error::InvalidArgument(_) | Error::NoRule { .. } => "InvalidArgumentError",
        Error::InvalidInput(_) | Error::TooLong(_) | Error::Shape(_) => "InvalidInputError",
        Error::DeviceUnavailable(_) | Error::Device(_) => "DeviceError",
        Error::NonFinite(_) => "NonFiniteError",
        Error::Io { .. } => "FileError",
        Error::Cancelled => "CancelledError",
        _ => "GradlensError",
    }
}

/// `e` as the exception of its kind.
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    raise(py, class_of(&e), e.to_string())
}

/// An exception of the class `name` of `gradlens.errors` with `message`.
pub fn raise(py: Python<'_>, name: &str, message: String) -> PyErr {
    let made = py
        .import("gradlens.errors")
        .and_then(|m| m.getattr(name))
        .and_then(|cls| cls.call1((message.clone(),)));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        // The package's Python half is missing (the module imported alone): still an error.
        Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
    }
}
