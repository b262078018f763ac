use std::fmt;

/// Where a tensor's numbers live.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Device {
    Cpu,
    /// The portable GPU backend (Vulkan, Metal, DX12), built with `--features wgpu`.
    Wgpu,
    /// NVIDIA GPUs through CUDA, built with `--features cuda`.
    Cuda,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Wgpu => write!(f, "wgpu"),
            Device::Cuda => write!(f, "cuda"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(crate::backend::auto_device()),
            "wgpu" => crate::backend::backend_for(Device::Wgpu).map(|_| Device::Wgpu),
            "cuda" => crate::backend::backend_for(Device::Cuda).map(|_| Device::Cuda),
            other => Err(crate::error::Error::InvalidArgument(format!(
                "unknown device '{other}' (expected cpu, cuda, wgpu or auto)"
            ))),
        }
    }
}

/// A backend's buffer. One variant per backend; the GPU backends add theirs.
#[derive(Debug)]
pub enum Storage {
    Cpu(Vec<f32>),
    /// A weight matrix in its file's format, on the host; the CPU backend computes with it
    /// directly (see `StoredMatrix`).
    Stored(std::sync::Arc<super::StoredMatrix>),
    #[cfg(feature = "wgpu")]
    Wgpu(crate::backend::wgpu::GpuBuffer),
    /// A weight matrix in its file's format, on the wgpu device.
    #[cfg(feature = "wgpu")]
    WgpuStored(crate::backend::wgpu::GpuStoredMatrix),
    #[cfg(feature = "cuda")]
    Cuda(crate::backend::cuda::CudaBuffer),
    /// A weight matrix in its file's format, on the CUDA device.
    #[cfg(feature = "cuda")]
    CudaStored(crate::backend::cuda::CudaStoredMatrix),
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) | Storage::Stored(_) => Device::Cpu,
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(_) | Storage::WgpuStored(_) => Device::Wgpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) | Storage::CudaStored(_) => Device::Cuda,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(v) => v.len(),
            Storage::Stored(m) => m.rows() * m.cols(),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(b) => b.len(),
            #[cfg(feature = "wgpu")]
            Storage::WgpuStored(m) => m.layout.len(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => b.len(),
            #[cfg(feature = "cuda")]
            Storage::CudaStored(m) => m.layout.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[rows, cols]` of a weight kept in its file's format; `None` for f32 values.
    pub fn stored_shape(&self) -> Option<[usize; 2]> {
        match self {
            Storage::Stored(m) => Some([m.rows(), m.cols()]),
            #[cfg(feature = "wgpu")]
            Storage::WgpuStored(m) => Some([m.layout.rows, m.layout.cols]),
            #[cfg(feature = "cuda")]
            Storage::CudaStored(m) => Some([m.layout.rows, m.layout.cols]),
            _ => None,
        }
    }
}
