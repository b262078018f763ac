//! Tensors: an immutable, reference-counted device buffer plus a row-major shape.
//!
//! Model and method code only ever see `Tensor`; the numbers live in a backend's `Storage` and
//! are read back to the host (`to_vec`) only at the edges (final results, target selection).

mod shape;
mod storage;
mod stored;

pub use shape::Shape;
pub use storage::{Device, Storage};
pub use stored::{StoredBytes, StoredLayout, StoredMatrix, StoredUpload};

use crate::backend::{backend_for, Backend};
use crate::error::{Error, Result};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Tensor {
    storage: Arc<Storage>,
    shape: Shape,
}

impl Tensor {
    pub(crate) fn from_storage(storage: Storage, shape: Shape) -> Self {
        debug_assert_eq!(storage.len(), shape.numel());
        Tensor {
            storage: Arc::new(storage),
            shape,
        }
    }

    /// Uploads host data to `device`.
    pub fn from_vec(data: Vec<f32>, shape: impl Into<Shape>, device: Device) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::Shape(format!(
                "{} values do not fill shape {shape}",
                data.len()
            )));
        }
        let storage = backend_for(device)?.upload(data)?;
        Ok(Tensor::from_storage(storage, shape))
    }

    /// A weight matrix kept in its stored format on the CPU (see `StoredMatrix`).
    pub fn stored(matrix: StoredMatrix) -> Self {
        let shape = Shape::from(vec![matrix.rows(), matrix.cols()]);
        Tensor::from_storage(Storage::Stored(Arc::new(matrix)), shape)
    }

    /// A weight matrix kept in its stored format on `device`: in place on the CPU, its bytes
    /// uploaded as they are to a GPU.
    pub fn stored_on(matrix: StoredMatrix, device: Device) -> Result<Self> {
        match device {
            Device::Cpu => Ok(Tensor::stored(matrix)),
            #[cfg(feature = "wgpu")]
            Device::Wgpu => {
                let shape = Shape::from(vec![matrix.rows(), matrix.cols()]);
                let m = crate::backend::wgpu::backend()?.upload_stored(&matrix)?;
                Ok(Tensor::from_storage(Storage::WgpuStored(m), shape))
            }
            #[cfg(feature = "cuda")]
            Device::Cuda => {
                let shape = Shape::from(vec![matrix.rows(), matrix.cols()]);
                let m = crate::backend::cuda::backend()?.upload_stored(&matrix)?;
                Ok(Tensor::from_storage(Storage::CudaStored(m), shape))
            }
            #[allow(unreachable_patterns)] // a GPU this build leaves out
            other => Err(Error::DeviceUnavailable(format!(
                "{other}: not in this build"
            ))),
        }
    }

    /// The stored-format matrix behind this tensor, if it is one on the CPU.
    pub fn as_stored(&self) -> Option<&StoredMatrix> {
        match &*self.storage {
            Storage::Stored(m) => Some(m),
            _ => None,
        }
    }

    /// This tensor with its values in f32 (a copy only for a stored-format matrix).
    pub fn dense(&self) -> Result<Self> {
        match &*self.storage {
            Storage::Stored(m) => Tensor::from_vec(m.decode_all(), self.shape.clone(), Device::Cpu),
            #[cfg(feature = "wgpu")]
            Storage::WgpuStored(m) => {
                let f32s = crate::backend::wgpu::backend()?.decode_stored(m)?;
                Ok(Tensor::from_storage(
                    Storage::Wgpu(f32s),
                    self.shape.clone(),
                ))
            }
            #[cfg(feature = "cuda")]
            Storage::CudaStored(m) => {
                let f32s = crate::backend::cuda::backend()?.decode_stored(m)?;
                Ok(Tensor::from_storage(
                    Storage::Cuda(f32s),
                    self.shape.clone(),
                ))
            }
            _ => Ok(self.clone()),
        }
    }

    pub fn zeros(shape: impl Into<Shape>, device: Device) -> Result<Self> {
        let shape = shape.into();
        let storage = backend_for(device)?.zeros(shape.numel())?;
        Ok(Tensor::from_storage(storage, shape))
    }

    pub fn full(value: f32, shape: impl Into<Shape>, device: Device) -> Result<Self> {
        let shape = shape.into();
        Tensor::from_vec(vec![value; shape.numel()], shape, device)
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    pub fn device(&self) -> Device {
        self.storage.device()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub(crate) fn backend(&self) -> &'static dyn Backend {
        // A tensor only exists on a backend that was available when it was made.
        backend_for(self.device()).expect("tensor on an unavailable backend")
    }

    /// Same buffer, new shape (no copy). The element count must match.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::Shape(format!(
                "cannot reshape {} into {shape}",
                self.shape
            )));
        }
        Ok(Tensor {
            storage: self.storage.clone(),
            shape,
        })
    }

    /// Copies the values to the host.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.backend().download(&self.storage)
    }

    pub fn to_device(&self, device: Device) -> Result<Self> {
        if device == self.device() {
            return Ok(self.clone());
        }
        Tensor::from_vec(self.to_vec()?, self.shape.clone(), device)
    }
}
