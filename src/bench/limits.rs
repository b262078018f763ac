//! The device's limits, measured before any kernel so that each kernel's rates can be given
//! as fractions of them: memory bandwidth (a streaming read and a copy, on buffers much larger
//! than the last-level cache) and peak f32 FMA throughput (on the CPU per core and for all
//! cores). Each number comes with the method that produced it. A limit is the fastest of its
//! timed runs (a peak; on a shared machine a slower run is interference), while kernels are
//! reported by their median, so a kernel's fraction of a limit errs low, not high.

use super::timing::{measure, seconds};
use crate::backend::cpu::Kernel;
use crate::error::{Error, Result};
use crate::tensor::Device;
use rayon::prelude::*;
use std::time::Duration;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Limits {
    /// GB/s of a streaming read (10⁹ bytes per second).
    pub read_gb_s: f64,
    /// GB/s of a copy, its read and its write both counted (as STREAM counts them).
    pub copy_gb_s: f64,
    /// GFLOP/s of independent f32 FMA chains (an FMA counts 2) on one core (CPU only).
    pub fma_gflop_s_core: Option<f64>,
    /// The same on every core, or on the whole GPU.
    pub fma_gflop_s: f64,
    /// How each was measured.
    pub read_method: String,
    pub copy_method: String,
    pub fma_method: String,
}

/// Measures `device`'s limits within about `budget`.
pub fn measure_limits(device: Device, budget: Duration) -> Result<Limits> {
    match device {
        Device::Cpu => cpu(budget),
        #[cfg(feature = "wgpu")]
        Device::Wgpu => gpu::wgpu(budget),
        #[cfg(feature = "cuda")]
        Device::Cuda => gpu::cuda(budget),
        #[allow(unreachable_patterns)]
        other => Err(Error::DeviceUnavailable(format!(
            "{other}: not in this build"
        ))),
    }
}

/// The last-level cache's size in bytes, where the system says (Linux sysfs).
fn last_level_cache() -> Option<usize> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let mut best = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let read = |f: &str| std::fs::read_to_string(entry.path().join(f)).ok();
        let (Some(level), Some(size)) = (read("level"), read("size")) else {
            continue;
        };
        let level: u32 = level.trim().parse().ok()?;
        let size = size.trim();
        let bytes: usize = match size.strip_suffix('K') {
            Some(k) => k.parse::<usize>().ok()? << 10,
            None => match size.strip_suffix('M') {
                Some(m) => m.parse::<usize>().ok()? << 20,
                None => size.parse().ok()?,
            },
        };
        if best.is_none_or(|(l, _)| level > l) {
            best = Some((level, bytes));
        }
    }
    best.map(|(_, b)| b)
}

fn cpu(budget: Duration) -> Result<Limits> {
    let cache = last_level_cache();
    // Four times the last-level cache, so that little of it can be a cache hit; at least
    // 256 MiB, and at most 2 GiB or a quarter of the free memory.
    let free = crate::backend::backend_for(Device::Cpu)?
        .free_memory()
        .unwrap_or(8 << 30);
    let bytes = (4 * cache.unwrap_or(64 << 20))
        .clamp(256 << 20, 2 << 30)
        .min(free / 4);
    let floats = bytes / 4;
    let mut buf: Vec<f32> = Vec::new();
    buf.try_reserve_exact(floats)
        .map_err(|_| Error::Device(format!("bench: cannot allocate {} MiB", bytes >> 20)))?;
    // Written in parallel so that its pages spread over the threads' memory.
    buf.resize(floats, 0.0);
    buf.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(i, c)| c.iter_mut().for_each(|v| *v = (i % 7) as f32));
    let share = budget / 5;
    let read = measure(share, || {
        seconds(|| {
            std::hint::black_box(parallel_sum(&buf));
            Ok(())
        })
    })?;
    let (src, dst) = buf.split_at_mut(floats / 2);
    let half = src.len().min(dst.len());
    let copy = measure(share, || {
        seconds(|| {
            dst[..half]
                .par_chunks_mut(1 << 16)
                .zip(src[..half].par_chunks(1 << 16))
                .for_each(|(d, s)| d.copy_from_slice(s));
            Ok(())
        })
    })?;
    let kernel = Kernel::best();
    let (core, all) = fma_peak(kernel, share)?;
    let threads = rayon::current_num_threads();
    let cache_text = cache.map_or("unknown".into(), |c| format!("{} MiB", c >> 20));
    Ok(Limits {
        read_gb_s: bytes as f64 / read.best_s / 1e9,
        copy_gb_s: 2.0 * (half * 4) as f64 / copy.best_s / 1e9,
        fma_gflop_s_core: Some(core),
        fma_gflop_s: all,
        read_method: format!(
            "sum of a {} MiB buffer on {threads} threads (last-level cache {cache_text})",
            bytes >> 20
        ),
        copy_method: format!(
            "copy of {} MiB on {threads} threads, read and write counted",
            (half * 4) >> 20
        ),
        fma_method: format!(
            "{} independent FMA chains per thread ({}), one thread and {threads}",
            fma_chains(kernel),
            kernel_label(kernel)
        ),
    })
}

fn kernel_label(k: Kernel) -> &'static str {
    match k {
        Kernel::Avx512 => "AVX-512, 16 lanes",
        Kernel::Avx2 => "AVX2, 8 lanes",
        Kernel::Portable => "scalar",
    }
}

fn fma_chains(k: Kernel) -> usize {
    match k {
        Kernel::Avx512 => 16,
        Kernel::Avx2 => 12,
        Kernel::Portable => 16,
    }
}

/// Sum of `v` on every thread, in 16 lanes per thread (vectorised even on plain x86-64).
fn parallel_sum(v: &[f32]) -> f32 {
    v.par_chunks(1 << 16)
        .map(|c| {
            let mut acc = [0.0f32; 16];
            for x in c.chunks_exact(16) {
                for l in 0..16 {
                    acc[l] += x[l];
                }
            }
            acc.iter().sum::<f32>()
        })
        .sum()
}

/// GFLOP/s of FMA chains on one thread and on all threads at once, each timed for about
/// `budget / 2` after calibrating the number of rounds.
fn fma_peak(kernel: Kernel, budget: Duration) -> Result<(f64, f64)> {
    let lanes = match kernel {
        Kernel::Avx512 => 16,
        Kernel::Avx2 => 8,
        Kernel::Portable => 1,
    };
    let flops_per_round = (2 * lanes * fma_chains(kernel)) as f64;
    // Rounds that take about a millisecond, from a short trial.
    let trial = 1 << 14;
    let t = seconds(|| {
        std::hint::black_box(fma_rounds(kernel, trial));
        Ok(())
    })?;
    let rounds = ((trial as f64 * 1e-3 / t.max(1e-9)) as usize).clamp(1 << 10, 1 << 26);
    let one = measure(budget / 2, || {
        seconds(|| {
            std::hint::black_box(fma_rounds(kernel, rounds));
            Ok(())
        })
    })?;
    let threads = rayon::current_num_threads();
    let all = measure(budget / 2, || {
        seconds(|| {
            rayon::broadcast(|_| std::hint::black_box(fma_rounds(kernel, rounds)));
            Ok(())
        })
    })?;
    let flops = flops_per_round * rounds as f64;
    Ok((
        flops / one.best_s / 1e9,
        flops * threads as f64 / all.best_s / 1e9,
    ))
}

/// `rounds` rounds of independent FMA chains (`x ← 0.999·x + 0.001`), their sum returned.
fn fma_rounds(kernel: Kernel, rounds: usize) -> f32 {
    match kernel {
        // SAFETY: `Kernel::best` chose an instruction set this CPU has.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { fma_avx512(rounds) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { fma_avx2(rounds) },
        _ => {
            let mut v = [1.0f32; 16];
            for _ in 0..rounds {
                for x in v.iter_mut() {
                    *x = *x * 0.999 + 0.001;
                }
            }
            v.iter().sum()
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,fma")]
unsafe fn fma_avx512(rounds: usize) -> f32 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm512_set1_ps(0.999), _mm512_set1_ps(0.001));
    let mut v: [__m512; 16] = std::array::from_fn(|i| _mm512_set1_ps(1.0 + i as f32));
    for _ in 0..rounds {
        for x in v.iter_mut() {
            *x = _mm512_fmadd_ps(*x, m, c);
        }
    }
    v.iter().map(|x| _mm512_reduce_add_ps(*x)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_avx2(rounds: usize) -> f32 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm256_set1_ps(0.999), _mm256_set1_ps(0.001));
    let mut v: [__m256; 12] = std::array::from_fn(|i| _mm256_set1_ps(1.0 + i as f32));
    for _ in 0..rounds {
        for x in v.iter_mut() {
            *x = _mm256_fmadd_ps(*x, m, c);
        }
    }
    let mut out = [0.0f32; 8];
    let total = v
        .iter()
        .fold(_mm256_setzero_ps(), |a, x| _mm256_add_ps(a, *x));
    _mm256_storeu_ps(out.as_mut_ptr(), total);
    out.iter().sum()
}

/// The GPU backends' limit kernels (`kernels/limits.cu`, `shaders/limits.wgsl`).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu {
    use super::*;
    use crate::backend::{backend_for, LimitKernel};
    use crate::tensor::Storage;

    /// Measures with `launch(kernel, input, output)` on `device`: a read of `bytes`, and
    /// `threads` threads (whole groups of 256, on a 1-D grid) for the read and the FMAs.
    pub fn measure_gpu(
        device: Device,
        bytes: usize,
        threads: usize,
        budget: Duration,
        launch: impl Fn(LimitKernel, &Storage, &Storage) -> Result<()>,
        name: &str,
    ) -> Result<Limits> {
        let be = backend_for(device)?;
        let floats = bytes / 4;
        let input = be.upload((0..floats).map(|i| (i % 7) as f32).collect())?;
        let partials = be.zeros(threads)?;
        let half = be.zeros(floats / 2)?;
        let copy_src = be.upload(vec![1.0f32; floats / 2])?;
        let share = budget / 4;
        // One launch per timed run, waited for.
        let timed = |kernel: LimitKernel, a: &Storage, out: &Storage| {
            measure(share, || {
                seconds(|| {
                    launch(kernel, a, out)?;
                    be.synchronize()
                })
            })
        };
        let read = timed(LimitKernel::Read, &input, &partials)?;
        let copy = timed(LimitKernel::Copy, &copy_src, &half)?;
        // FMA rounds that take a few milliseconds, from a short trial.
        let trial = 64u32;
        let t = seconds(|| {
            launch(LimitKernel::Fma { iterations: trial }, &input, &partials)?;
            be.synchronize()
        })?;
        let iterations = ((trial as f64 * 5e-3 / t.max(1e-7)) as u64).clamp(64, 1 << 20) as u32;
        let fma = timed(LimitKernel::Fma { iterations }, &input, &partials)?;
        let flops = 16.0 * threads as f64 * iterations as f64;
        Ok(Limits {
            read_gb_s: (floats * 4) as f64 / read.best_s / 1e9,
            copy_gb_s: 2.0 * ((floats / 2) * 4) as f64 / copy.best_s / 1e9,
            fma_gflop_s_core: None,
            fma_gflop_s: flops / fma.best_s / 1e9,
            read_method: format!(
                "{name}: grid-stride sum of {} MiB by {threads} threads",
                bytes >> 20
            ),
            copy_method: format!(
                "{name}: copy of {} MiB, read and write counted",
                (bytes / 2) >> 20
            ),
            fma_method: format!(
                "{name}: 8 independent FMA chains in each of {threads} threads, {iterations} rounds"
            ),
        })
    }

    #[cfg(feature = "wgpu")]
    pub fn wgpu(budget: Duration) -> Result<Limits> {
        let be = crate::backend::wgpu::backend()?;
        // A software adapter's memory is the host's: a smaller buffer does. Either way at
        // most what one kernel can bind.
        let (bytes, threads) = if be.is_hardware() {
            (1 << 30, 256 * 2048)
        } else {
            (64 << 20, 256 * 64)
        };
        let bytes = bytes.min(be.max_binding_bytes() / 4 * 4);
        measure_gpu(
            Device::Wgpu,
            bytes,
            threads,
            budget,
            |k, a, out| be.limit_kernel(k, a, out),
            "limits.wgsl",
        )
    }

    #[cfg(feature = "cuda")]
    pub fn cuda(budget: Duration) -> Result<Limits> {
        let be = crate::backend::cuda::backend()?;
        // The emulator runs kernels on the host, thousands of times slower.
        let (bytes, threads) = if be.is_emulated() {
            (4 << 20, 256 * 16)
        } else {
            ((1usize << 30).min(be.memory()?.0 / 4), 256 * 2048)
        };
        measure_gpu(
            Device::Cuda,
            bytes,
            threads,
            budget,
            |k, a, out| be.limit_kernel(k, a, out),
            "limits.cu",
        )
    }
}
