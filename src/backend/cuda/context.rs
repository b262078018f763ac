//! The CUDA device: library checks, NVRTC compilation of the embedded kernels to CUBIN for the
//! device's own architecture (once per file, on first use), buffers and launches on one stream;
//! or, for tests without a GPU, the same kernels and launches on the host emulator.

use super::emulator::{Emulator, HostSlice};
use super::kernels;
use crate::error::{Error, Result};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig,
    PushKernelArg,
};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex};

/// The matmul kernels' by-value argument (`MatmulArgs` in `kernels/matmul.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MatmulArgs {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub trans_a: u32,
    pub trans_b: u32,
    pub stride_a: u32,
    pub stride_b: u32,
}

// SAFETY: a plain `repr(C)` struct of `u32`s, laid out as the CUDA struct.
unsafe impl DeviceRepr for MatmulArgs {}

/// A device buffer: driver memory, or host memory under the emulator.
pub enum Slice<T: DeviceRepr> {
    Driver(CudaSlice<T>),
    Host(HostSlice<T>),
}

/// One kernel argument, in the order of the kernel's parameter list.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Buf(&'a Slice<f32>),
    Ids(&'a Slice<u32>),
    U32(u32),
    F32(f32),
    Matmul(MatmulArgs),
}

/// Launch geometry, as in the WGSL backend; 256-thread blocks.
pub enum Grid {
    /// One thread per element, spread over a 2-D grid (65535 blocks per dimension).
    Threads(usize),
    /// One block per row, spread the same way.
    Rows(usize),
    /// Explicit block counts.
    Blocks(u32, u32, u32),
}

const BLOCK: u32 = 256;
const MAX_GRID: usize = 65535;

fn spread(blocks: usize) -> (u32, u32, u32) {
    let x = blocks.clamp(1, MAX_GRID);
    (x as u32, blocks.div_ceil(x).max(1) as u32, 1)
}

/// What runs the kernels.
enum Engine {
    Driver(Driver),
    /// `GRADLENS_CUDA_EMULATOR=1`: the kernels built for the host (tests without a GPU).
    Emulator(Emulator),
}

struct Driver {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// e.g. "sm_90".
    arch: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
}

pub struct Context {
    engine: Engine,
    name: String,
}

/// The memory the emulator reports as free: enough for the test models' batches.
const EMULATED_MEMORY: usize = 1 << 30;

fn driver_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> String + '_ {
    move |e| format!("cuda: {what}: {e:?}")
}

impl Context {
    /// Opens device 0, or says why CUDA cannot be used. cudarc panics when a library or a
    /// symbol is missing, so the libraries are probed first and the rest runs under
    /// `catch_unwind`. With `GRADLENS_CUDA_EMULATOR=1` the kernels run on the host instead.
    pub fn new() -> std::result::Result<Self, String> {
        if std::env::var("GRADLENS_CUDA_EMULATOR").as_deref() == Ok("1") {
            return Ok(Context {
                engine: Engine::Emulator(Emulator::new()?),
                name: "CUDA emulator on the host".into(),
            });
        }
        Self::open_driver()
    }

    /// Device 0 through the driver.
    pub fn open_driver() -> std::result::Result<Self, String> {
        // SAFETY: probing only tries to open the shared libraries.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(
                "cuda: no CUDA driver (libcuda.so) found: this machine has no NVIDIA \
                        driver; use --device wgpu or cpu"
                    .into(),
            );
        }
        nvrtc_present()?;
        std::panic::catch_unwind(Self::open).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("cuda: the CUDA libraries failed to load: {msg}"))
        })
    }

    fn open() -> std::result::Result<Self, String> {
        let count = CudaContext::device_count().map_err(driver_err("counting devices"))?;
        if count < 1 {
            return Err("cuda: the driver reports no CUDA device".into());
        }
        let ctx = CudaContext::new(0).map_err(driver_err("opening device 0"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(driver_err("reading the compute capability"))?;
        let name = ctx.name().unwrap_or_else(|_| "CUDA device 0".into());
        let stream = ctx.default_stream();
        Ok(Context {
            engine: Engine::Driver(Driver {
                ctx,
                stream,
                arch: format!("sm_{major}{minor}"),
                modules: Mutex::new(HashMap::new()),
            }),
            name: format!("{name} (sm_{major}{minor})"),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_emulated(&self) -> bool {
        matches!(self.engine, Engine::Emulator(_))
    }

    /// The driver's CUDA version ("13.0"), where a driver runs the kernels.
    pub fn driver_version(&self) -> Option<String> {
        let Engine::Driver(_) = self.engine else {
            return None;
        };
        let mut v = 0;
        // SAFETY: the driver is loaded (the context is open); the call writes one int.
        let ok = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) }
            == cudarc::driver::sys::CUresult::CUDA_SUCCESS;
        ok.then(|| format!("{}.{}", v / 1000, v % 1000 / 10))
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        match &self.engine {
            Engine::Driver(d) => d
                .ctx
                .mem_get_info()
                .map_err(|e| Error::Device(driver_err("reading free memory")(e))),
            Engine::Emulator(_) => Ok((EMULATED_MEMORY, EMULATED_MEMORY)),
        }
    }

    /// An uninitialised buffer of `len` floats (every kernel writes all of its output; the
    /// emulator fills it with NaN to check that).
    pub fn alloc(&self, len: usize, what: &str) -> Result<Slice<f32>> {
        match &self.engine {
            // SAFETY: f32 has no invalid bit patterns; the kernel writing it runs before any read.
            Engine::Driver(d) => unsafe { d.stream.alloc::<f32>(len.max(1)) }
                .map(Slice::Driver)
                .map_err(|e| self.oom(len, what, e)),
            Engine::Emulator(_) => Ok(Slice::Host(HostSlice::from_vec(vec![f32::NAN; len.max(1)]))),
        }
    }

    pub fn zeros(&self, len: usize) -> Result<Slice<f32>> {
        match &self.engine {
            Engine::Driver(d) => d
                .stream
                .alloc_zeros::<f32>(len.max(1))
                .map(Slice::Driver)
                .map_err(|e| self.oom(len, "zeros", e)),
            Engine::Emulator(_) => Ok(Slice::Host(HostSlice::from_vec(vec![0.0; len.max(1)]))),
        }
    }

    pub fn upload<T: DeviceRepr + Copy>(&self, data: &[T]) -> Result<Slice<T>> {
        match &self.engine {
            Engine::Driver(d) => d
                .stream
                .clone_htod(data)
                .map(Slice::Driver)
                .map_err(|e| self.oom(data.len(), "upload", e)),
            Engine::Emulator(_) => Ok(Slice::Host(HostSlice::from_vec(data.to_vec()))),
        }
    }

    /// Waits for every queued kernel (the emulator has run each one already).
    pub fn synchronize(&self) -> Result<()> {
        match &self.engine {
            Engine::Driver(d) => d
                .stream
                .synchronize()
                .map_err(|e| Error::Device(format!("cuda: waiting for {}: {e:?}", self.name))),
            Engine::Emulator(_) => Ok(()),
        }
    }

    pub fn download(&self, s: &Slice<f32>, len: usize) -> Result<Vec<f32>> {
        let mut v = match (&self.engine, s) {
            (Engine::Driver(d), Slice::Driver(s)) => d.stream.clone_dtoh(s).map_err(|e| {
                Error::Device(format!("cuda: reading back from {}: {e:?}", self.name))
            })?,
            (_, Slice::Host(s)) => s.to_vec(),
            _ => return Err(Error::Other("cuda: a buffer of another engine".into())),
        };
        v.truncate(len);
        Ok(v)
    }

    fn oom(&self, len: usize, what: &str, e: cudarc::driver::DriverError) -> Error {
        Error::Device(format!(
            "cuda: allocating {:.1} MiB for {what} on {}: {e:?} (try a smaller --batch-size)",
            (len * 4) as f64 / (1 << 20) as f64,
            self.name
        ))
    }

    /// Queues one kernel; nothing waits for it (the emulator runs it to completion).
    pub fn launch(
        &self,
        file: &'static str,
        entry: &'static str,
        args: &[Arg],
        grid: Grid,
    ) -> Result<()> {
        let (grid_dim, block_dim) = match grid {
            Grid::Threads(n) => (spread(n.div_ceil(BLOCK as usize)), BLOCK),
            Grid::Rows(rows) => (spread(rows), BLOCK),
            Grid::Blocks(x, y, z) => ((x, y, z), BLOCK),
        };
        if grid_dim.0 == 0 || grid_dim.1 == 0 || grid_dim.2 == 0 {
            return Ok(());
        }
        let result = match &self.engine {
            Engine::Driver(d) => d.launch(file, entry, args, grid_dim, block_dim),
            Engine::Emulator(e) => e
                .launch(file, entry, args, grid_dim, (block_dim, 1, 1))
                .map_err(Error::Device),
        };
        result.map_err(|e| match e {
            Error::Device(m) => Error::Device(format!("{m} (on {})", self.name)),
            other => other,
        })
    }
}

impl Driver {
    /// The module of one kernel file, compiled on first use.
    fn module(&self, file: &'static str) -> Result<Arc<CudaModule>> {
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = modules.get(file) {
            return Ok(m.clone());
        }
        let cubin = compile_file(file, &self.arch).map_err(Error::Device)?;
        let module = self
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
            .map_err(|e| Error::Device(format!("cuda: loading {file}: {e:?}")))?;
        modules.insert(file, module.clone());
        Ok(module)
    }

    fn function(&self, file: &'static str, entry: &'static str) -> Result<CudaFunction> {
        self.module(file)?
            .load_function(entry)
            .map_err(|e| Error::Device(format!("cuda: kernel {file}:{entry}: {e:?}")))
    }

    fn launch(
        &self,
        file: &'static str,
        entry: &'static str,
        args: &[Arg],
        grid_dim: (u32, u32, u32),
        block_dim: u32,
    ) -> Result<()> {
        let f = self.function(file, entry)?;
        let mut b = self.stream.launch_builder(&f);
        for a in args {
            match a {
                Arg::Buf(Slice::Driver(s)) => b.arg(s),
                Arg::Ids(Slice::Driver(s)) => b.arg(s),
                Arg::U32(v) => b.arg(v),
                Arg::F32(v) => b.arg(v),
                Arg::Matmul(m) => b.arg(m),
                _ => {
                    return Err(Error::Device(
                        "cuda: an emulator buffer passed to the driver".into(),
                    ))
                }
            };
        }
        let cfg = LaunchConfig {
            grid_dim,
            block_dim: (block_dim, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: every call site passes the kernel's parameters in its declared order and
        // types, with buffers whose lengths the shape checks have verified.
        unsafe { b.launch(cfg) }
            .map(drop)
            .map_err(|e| Error::Device(format!("cuda: launching {file}:{entry}: {e:?}")))
    }
}

/// Whether NVRTC can be loaded (cudarc panics on first use where it cannot).
pub fn nvrtc_present() -> std::result::Result<(), String> {
    // SAFETY: probing only tries to open the shared library.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(
            "cuda: NVRTC (libnvrtc.so) not found: `pip install nvidia-cuda-nvrtc` and add its \
             lib directory to LD_LIBRARY_PATH"
                .into(),
        )
    }
}

/// One embedded kernel file with the prelude in front, compiled for `arch`.
pub fn compile_file(file: &str, arch: &str) -> std::result::Result<Vec<u8>, String> {
    let source = kernels::source(file).ok_or_else(|| format!("cuda: no kernel file {file}"))?;
    compile_cubin(
        &format!("{}\n#line 1\n{source}", kernels::PRELUDE),
        file,
        arch,
    )
}

/// NVRTC-compiles one kernel file to a CUBIN for `arch`. A CUBIN, unlike PTX, loads on any
/// driver that supports the architecture, whatever NVRTC version built it.
fn compile_cubin(source: &str, file: &str, arch: &str) -> std::result::Result<Vec<u8>, String> {
    use cudarc::nvrtc::{result, sys};
    let src = CString::new(source).map_err(|_| format!("cuda: {file} contains a NUL byte"))?;
    let name = CString::new(file).unwrap_or_default();
    let prog = result::create_program(&src, Some(&name))
        .map_err(|e| format!("cuda: NVRTC could not create {file}: {e:?}"))?;
    let opts = [
        "--std=c++17".to_string(),
        "--fmad=true".to_string(),
        format!("--gpu-architecture={arch}"),
    ];
    // SAFETY: `prog` is a live program until destroyed below; the buffers are sized by NVRTC.
    let out = unsafe {
        let compiled = result::compile_program(prog, &opts);
        let out = match compiled {
            Err(e) => {
                let log = result::get_program_log(prog)
                    .map(|l| {
                        let bytes: Vec<u8> = l
                            .iter()
                            .take_while(|&&c| c != 0)
                            .map(|&c| c as u8)
                            .collect();
                        String::from_utf8_lossy(&bytes).into_owned()
                    })
                    .unwrap_or_default();
                Err(format!(
                    "cuda: NVRTC failed on {file} for {arch}: {e:?}\n{log}"
                ))
            }
            Ok(()) => {
                let mut size = 0usize;
                let status = sys::nvrtcGetCUBINSize(prog, &mut size);
                if status != sys::nvrtcResult::NVRTC_SUCCESS || size == 0 {
                    Err(format!(
                        "cuda: NVRTC gave no CUBIN for {file} ({arch}): {status:?}"
                    ))
                } else {
                    let mut cubin = vec![0u8; size];
                    let status = sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut _);
                    if status == sys::nvrtcResult::NVRTC_SUCCESS {
                        Ok(cubin)
                    } else {
                        Err(format!(
                            "cuda: NVRTC gave no CUBIN for {file} ({arch}): {status:?}"
                        ))
                    }
                }
            }
        };
        let _ = result::destroy_program(prog);
        out
    };
    out
}
