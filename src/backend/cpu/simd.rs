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
        // The weight kernels decode stored formats in registers: F16C and FMA come with both.
        use crate::gguf::decode_simd::{avx2_available, avx512_available};
        if avx512_available() {
            all.push(Kernel::Avx512);
        }
        if avx2_available() {
            all.push(Kernel::Avx2);
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

/// How the weight kernels decode a stored matrix: in registers for each block of activation
/// rows, or once per tile into a cache-sized buffer; `Auto` chooses by the number of rows.
/// (Both give the same bits; f32 weights are read as they are either way.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decode {
    Auto,
    Registers,
    Tiles,
}

/// An output buffer that parallel tasks write through, each its own elements.
#[derive(Clone, Copy)]
pub struct Out(pub *mut f32);
// SAFETY: the kernels that share an `Out` write disjoint elements, and the buffer outlives them.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// Element `i`.
    ///
    /// # Safety
    /// `i` is inside the buffer and no other task writes it.
    #[inline(always)]
    pub unsafe fn at(self, i: usize) -> *mut f32 {
        self.0.add(i)
    }

    /// The buffer from element `by` on.
    ///
    /// # Safety
    /// `by` is inside the buffer.
    pub unsafe fn offset(self, by: usize) -> Out {
        Out(self.0.add(by))
    }
}
