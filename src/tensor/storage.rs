use std::fmt;

/// Where a tensor's numbers live.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Device {
    Cpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" | "auto" => Ok(Device::Cpu),
            "cuda" | "wgpu" => Err(crate::error::Error::DeviceUnavailable(format!(
                "{s}: this build has no {s} backend yet; use --device cpu"
            ))),
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
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
