//! Run-time choice of SIMD kernels: the crate is compiled for plain x86-64, and each kernel
//! comes in AVX-512, AVX2+FMA and portable versions.

/// The instruction sets our hand-written kernels come in, fastest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Avx512,
    Avx2,
    Portable,
}

impl Kernel {
    pub fn available() -> Vec<Kernel> {
        let mut all = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                all.push(Kernel::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                all.push(Kernel::Avx2);
            }
        }
        all.push(Kernel::Portable);
        all
    }

    /// The fastest kernel, or the one `GRADLENS_SIMD` (`avx512`, `avx2`, `portable`) names if
    /// this CPU has it: results differ between kernels in the last bits, so a run can be
    /// reproduced on another machine, or the AVX2 path tested on an AVX-512 one.
    pub fn best() -> Kernel {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let all = Kernel::available();
            let wanted = std::env::var("GRADLENS_SIMD").unwrap_or_default();
            all.iter()
                .copied()
                .find(|k| format!("{k:?}").eq_ignore_ascii_case(&wanted))
                .unwrap_or(all[0])
        })
    }
}

/// Block starts over `0..len` for a kernel that takes `block` items at a time: `(start, true)`
/// for each full block, then `(start, false)` for each item left over, one at a time.
pub fn blocks(len: usize, block: usize) -> impl Iterator<Item = (usize, bool)> {
    let full = len / block * block;
    (0..full)
        .step_by(block)
        .map(|i| (i, true))
        .chain((full..len).map(|i| (i, false)))
}
