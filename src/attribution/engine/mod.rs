//! What the methods are built from: evaluation of `F` and `∇F` over a batch, targets, chunk
//! planning, path points, quadrature, seeded randomness, noisy copies, attention maps, the
//! single-pass engine, and the prepared input every method starts from.

pub mod adaptive;
pub mod attention;
pub mod checkpoint;
pub mod checks;
pub mod chunks;
pub mod coalitions;
pub mod evaluate;
pub mod noise;
pub mod points;
mod prepared;
pub mod quadrature;
pub mod random;
pub mod single_pass;
pub mod targets;

pub use prepared::{Baseline, Cancel, Prepared, Progress, Settings, Watch};
