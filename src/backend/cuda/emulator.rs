//! The CUDA backend without a GPU, for tests (`GRADLENS_CUDA_EMULATOR=1`): the same kernel
//! files, compiled for the host by the system C++ compiler with `emulator.h` in front, and the
//! same launches, with every argument passed by CUDA's parameter convention. Buffers live in
//! host memory; fresh ones are filled with NaN, so a kernel that leaves part of its output
//! unwritten shows up in every comparison. What it cannot check is what only hardware has:
//! timing, the memory model across blocks, and NVRTC itself (compiled separately in CI).

use super::context::{Arg, MatmulArgs, Slice};
use super::kernels;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

const HEADER: &str = include_str!("emulator.h");

/// A host buffer standing in for device memory. Kernels write it through raw pointers, so it
/// is owned as one.
pub struct HostSlice<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: the buffer is owned; kernels only touch it during a launch, and write only the fresh
// output buffers of their own op, so a buffer seen by two threads (a model's weights) is only
// read.
unsafe impl<T: Send> Send for HostSlice<T> {}
unsafe impl<T: Sync> Sync for HostSlice<T> {}

impl<T: Copy> HostSlice<T> {
    pub fn from_vec(v: Vec<T>) -> Self {
        let len = v.len();
        let ptr = Box::into_raw(v.into_boxed_slice()) as *mut T;
        HostSlice { ptr, len }
    }

    pub fn to_vec(&self) -> Vec<T> {
        // SAFETY: `ptr` holds `len` initialised values for the slice's whole life.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
    }

    /// The "device pointer" a kernel receives.
    fn address(&self) -> *mut c_void {
        self.ptr as *mut c_void
    }
}

impl<T> Drop for HostSlice<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` came from `Box::into_raw` of a boxed slice.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr, self.len,
            )))
        };
    }
}

struct KernelLibrary {
    library: libloading::Library,
    launch_lock: Mutex<()>,
}

type Entry = unsafe extern "C" fn(*mut *mut c_void, *const u32, *mut u8, usize) -> i32;

pub struct Emulator {
    /// Each kernel file's library, with the lock its launches hold: a library's shared memory
    /// and fibers are its globals, so its launches run one at a time, while launches of
    /// different files (from different threads) run side by side.
    libraries: Mutex<HashMap<&'static str, Arc<KernelLibrary>>>,
}

impl Emulator {
    /// Checks that a C++ compiler is there, so that the first launch cannot be what fails.
    pub fn new() -> Result<Self, String> {
        let cxx = compiler();
        let ok = Command::new(&cxx)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!(
                "cuda emulator: no C++ compiler ({cxx}) to build the kernels for the host"
            ));
        }
        Ok(Emulator {
            libraries: Mutex::new(HashMap::new()),
        })
    }

    fn library(&self, file: &'static str) -> Result<Arc<KernelLibrary>, String> {
        let mut libs = self.libraries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = libs.get(file) {
            return Ok(l.clone());
        }
        let path = build(file)?;
        // SAFETY: the library is ours, built from the kernel file; it has no initialisers
        // beyond zeroed statics.
        let lib = unsafe { libloading::Library::new(&path) }
            .map_err(|e| format!("cuda emulator: loading {}: {e}", path.display()))?;
        let lib = Arc::new(KernelLibrary {
            library: lib,
            launch_lock: Mutex::new(()),
        });
        libs.insert(file, lib.clone());
        Ok(lib)
    }

    /// Runs `file:entry` over `grid` blocks of `block` threads, to completion.
    pub fn launch(
        &self,
        file: &'static str,
        entry: &'static str,
        args: &[Arg],
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
    ) -> Result<(), String> {
        let lib = self.library(file)?;
        let symbol = format!("gradlens_emu_{entry}");
        // SAFETY: every `gradlens_emu_*` symbol is an `EMU_KERNEL` wrapper of type `Entry`.
        let run: libloading::Symbol<Entry> = unsafe { lib.library.get(symbol.as_bytes()) }
            .map_err(|_| format!("cuda emulator: {file} has no kernel {entry}"))?;
        // CUDA's parameter convention: one pointer per argument, to a value of its type; a
        // buffer's value is its address, so the addresses need a place of their own.
        let addresses = args
            .iter()
            .map(|a| match a {
                Arg::Buf(Slice::Host(s)) => Ok(s.address()),
                Arg::Ids(Slice::Host(s)) => Ok(s.address()),
                Arg::Buf(_) | Arg::Ids(_) => {
                    Err("cuda emulator: a driver buffer passed to the emulator".to_string())
                }
                _ => Ok(std::ptr::null_mut()),
            })
            .collect::<Result<Vec<*mut c_void>, String>>()?;
        let mut params: Vec<*mut c_void> = args
            .iter()
            .zip(&addresses)
            .map(|(a, address)| match a {
                Arg::Buf(_) | Arg::Ids(_) => address as *const *mut c_void as *mut c_void,
                Arg::U32(v) => v as *const u32 as *mut c_void,
                Arg::F32(v) => v as *const f32 as *mut c_void,
                Arg::Matmul(m) => m as *const MatmulArgs as *mut c_void,
            })
            .collect();
        let geometry = [grid.0, grid.1, grid.2, block.0, block.1, block.2];
        let mut message = [0u8; 512];
        let _guard = lib.launch_lock.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `params` points at values of the kernel's parameter types in order (the
        // call sites' contract, as for the driver), all alive for the call.
        let status = unsafe {
            run(
                params.as_mut_ptr(),
                geometry.as_ptr(),
                message.as_mut_ptr(),
                message.len(),
            )
        };
        if status == 0 {
            Ok(())
        } else {
            let end = message
                .iter()
                .position(|&c| c == 0)
                .unwrap_or(message.len());
            Err(format!(
                "cuda emulator: {file}:{entry}: {}",
                String::from_utf8_lossy(&message[..end])
            ))
        }
    }
}

fn compiler() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "c++".into())
}

/// The host source of one kernel file: the emulation header, the prelude, the file, and one
/// exported wrapper per `__global__` function.
fn host_source(file: &str) -> Result<String, String> {
    let source = kernels::source(file).ok_or_else(|| format!("cuda: no kernel file {file}"))?;
    let mut out = format!(
        "{HEADER}\n#line 1 \"common.cuh\"\n{}\n#line 1 \"{file}\"\n{source}\n",
        kernels::PRELUDE
    );
    for name in kernel_names(source) {
        out.push_str(&format!("EMU_KERNEL({name})\n"));
    }
    Ok(out)
}

/// Names of the `__global__` functions in `source`: the identifier before the first `(` after
/// `__global__ void`, skipping `__launch_bounds__(...)`.
fn kernel_names(source: &str) -> Vec<&str> {
    source
        .split("__global__")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix("void")?.trim_start();
            let rest = match rest.strip_prefix("__launch_bounds__") {
                Some(r) => r.split_once(')')?.1.trim_start(),
                None => rest,
            };
            let name = rest.split('(').next()?.trim();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Compiles one kernel file to a shared library, cached by the hash of its source.
fn build(file: &str) -> Result<PathBuf, String> {
    let source = host_source(file)?;
    let mut h = DefaultHasher::new();
    source.hash(&mut h);
    compiler().hash(&mut h);
    let dir = std::env::temp_dir().join("gradlens-cuda-emulator");
    let stem = format!("{}-{:016x}", file.trim_end_matches(".cu"), h.finish());
    let lib = dir.join(format!("{stem}.so"));
    if lib.exists() {
        return Ok(lib);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cuda emulator: creating {}: {e}", dir.display()))?;
    // Unique temporary names, renamed into place: test processes build concurrently.
    let tmp = |ext: &str| dir.join(format!("{stem}.{}.{ext}", std::process::id()));
    let (src, out) = (tmp("cpp"), tmp("so"));
    std::fs::write(&src, &source)
        .map_err(|e| format!("cuda emulator: writing {}: {e}", src.display()))?;
    let result = compile(&src, &out, file);
    let _ = std::fs::remove_file(&src);
    result?;
    std::fs::rename(&out, &lib)
        .map_err(|e| format!("cuda emulator: placing {}: {e}", lib.display()))?;
    Ok(lib)
}

fn compile(src: &Path, out: &Path, file: &str) -> Result<(), String> {
    let o = Command::new(compiler())
        .args([
            "-std=c++17",
            "-O2",
            "-shared",
            "-fPIC",
            "-fvisibility=hidden",
        ])
        // _longjmp between fiber stacks is what the fortified longjmp check rejects.
        .arg("-U_FORTIFY_SOURCE")
        .arg("-o")
        .arg(out)
        .arg(src)
        .output()
        .map_err(|e| format!("cuda emulator: running {}: {e}", compiler()))?;
    if o.status.success() {
        Ok(())
    } else {
        let _ = std::fs::remove_file(out);
        Err(format!(
            "cuda emulator: compiling {file} for the host failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_kernel_name() {
        let src =
            "extern \"C\" __global__ void __launch_bounds__(256)\nmatmul_tiled(float* c) {}\n\
                   extern \"C\" __global__ void matmul_rows(float* c, u32 n) {}";
        assert_eq!(kernel_names(src), ["matmul_tiled", "matmul_rows"]);
        for (file, source) in kernels::FILES {
            assert!(!kernel_names(source).is_empty(), "{file}");
        }
    }
}
