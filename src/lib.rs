pub mod autodiff;
pub mod backend;
pub mod error;
pub mod ops;
pub mod tensor;

pub use error::{Error, Result};
pub use tensor::{Device, Shape, Tensor};
pub mod models;
pub use models::{Architecture, Model};
pub mod attribution;
pub use attribution::{attribute, Attribution, Method, Options};
pub mod report;
