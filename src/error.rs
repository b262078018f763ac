use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure gradlens reports. Messages name the file, tensor, op or argument at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model folder {0} does not exist")]
    ModelNotFound(PathBuf),
    #[error("{0}: no config.json in the model folder")]
    MissingConfig(PathBuf),
    #[error("{path}: invalid config: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("unsupported architecture '{0}' (supported: {list})", list = crate::models::Architecture::supported())]
    UnsupportedArchitecture(String),
    #[error("{path}: corrupt safetensors file: {reason}")]
    CorruptWeights { path: PathBuf, reason: String },
    #[error("{path}: corrupt GGUF file: {reason}")]
    CorruptGguf { path: PathBuf, reason: String },
    #[error("missing tensor '{name}' in {path}")]
    MissingTensor { name: String, path: PathBuf },
    #[error("tensor '{name}': {reason}")]
    BadTensor { name: String, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A text longer than the model's context (or a server's limit).
    #[error("invalid input: {0}")]
    TooLong(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("shape error: {0}")]
    Shape(String),
    #[error("rule set '{rules}' has no backward rule for op '{op}'")]
    NoRule { rules: String, op: &'static str },
    #[error("device unavailable: {0}")]
    DeviceUnavailable(String),
    /// A device failed at run time (out of memory, a kernel that failed validation, a lost
    /// device); the message names the device and the kernel.
    #[error("{0}")]
    Device(String),
    #[error("{0}")]
    Other(String),
    /// The run was cancelled (`Settings::cancel`).
    #[error("cancelled")]
    Cancelled,
    /// A result with NaN or infinite values: never reported as a success.
    #[error("{0}")]
    NonFinite(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
