//! What a benchmark ran on and from: the CPU (model, SIMD flags, threads) or the GPU (adapter
//! or device name, driver), and the git revision of the build (`build.rs`).

use crate::error::Result;
use crate::tensor::Device;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Machine {
    pub cpu: String,
    /// The CPU's vector-instruction flags (`avx512f`, `avx2`, `fma`, …).
    pub cpu_flags: Vec<String>,
    pub threads: usize,
    /// What ran the kernels: "cpu (avx512 kernels)", a wgpu adapter, or a CUDA device.
    pub device: String,
    /// The GPU driver, where there is one.
    pub driver: Option<String>,
    pub os: String,
}

/// The build's git revision ("+changes" when built from a modified tree).
pub fn revision() -> &'static str {
    env!("GRADLENS_REVISION")
}

pub fn describe(device: Device) -> Result<Machine> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let simd = |f: &&str| {
        ["avx", "fma", "f16c", "amx", "sse4"]
            .iter()
            .any(|p| f.starts_with(p))
    };
    let cpu_flags = field("flags")
        .map(|f| {
            f.split_whitespace()
                .filter(simd)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let (device_name, driver) = match device {
        Device::Cpu => (
            format!(
                "cpu ({} kernels)",
                crate::backend::cpu::variants::engine_kernel()
            ),
            None,
        ),
        #[cfg(feature = "wgpu")]
        Device::Wgpu => {
            let be = crate::backend::wgpu::backend()?;
            (format!("wgpu: {}", be.adapter_name()), Some(be.driver()))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda => {
            let be = crate::backend::cuda::backend()?;
            (
                format!("cuda: {}", be.device_name()),
                be.driver_version().map(|v| format!("CUDA {v}")),
            )
        }
        #[allow(unreachable_patterns)]
        other => (other.to_string(), None),
    };
    Ok(Machine {
        cpu: field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        cpu_flags,
        threads: rayon::current_num_threads(),
        device: device_name,
        driver,
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    })
}
