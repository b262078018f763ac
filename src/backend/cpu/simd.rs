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

/// `$call` with the const `$R` = `$rows`, one of the listed literals: the weight kernels keep
/// `R` rows of accumulators in registers, so the row count is a const generic.
macro_rules! with_rows {
    ($rows:expr, [$($r:literal)+], |$R:ident| $call:expr) => {
        match $rows {
            $($r => {
                const $R: usize = $r;
                $call
            })+
            other => unreachable!("{other} rows"),
        }
    };
}
pub(super) use with_rows;

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

/// The horizontal sums of four AVX-512 vectors, in lanes 0..4 of the result, each summed in
/// exactly the order of `_mm512_reduce_add_ps` (lane i with i + 8, then i + 4, i + 2, i + 1),
/// so the bits are the same, at about a third of its instructions per sum.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn reduce4_avx512(v: [std::arch::x86_64::__m512; 4]) -> std::arch::x86_64::__m128 {
    use std::arch::x86_64::*;
    // [A.lo256 + A.hi256 | B.lo256 + B.hi256], and the same for C, D.
    let ab = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x44>(v[0], v[1]),
        _mm512_shuffle_f32x4::<0xEE>(v[0], v[1]),
    );
    let cd = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x44>(v[2], v[3]),
        _mm512_shuffle_f32x4::<0xEE>(v[2], v[3]),
    );
    // Each 256-bit half's low 128 + high 128: [A, B, C, D], four lanes each.
    let x = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x88>(ab, cd),
        _mm512_shuffle_f32x4::<0xDD>(ab, cd),
    );
    // Within each 128-bit lane: lane i + lane i + 2, then lane 0 + lane 1.
    let x = _mm512_add_ps(x, _mm512_permute_ps::<0b01_00_11_10>(x));
    let x = _mm512_add_ps(x, _mm512_permute_ps::<0b10_11_00_01>(x));
    _mm512_castps512_ps128(_mm512_maskz_compress_ps(0x1111, x))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The four sums are those of `_mm512_reduce_add_ps`, bit for bit, on values whose sums
    /// depend on the order (mixed signs and magnitudes).
    #[test]
    fn reduce4_gives_the_bits_of_reduce_add() {
        if !Kernel::available().contains(&Kernel::Avx512) {
            return;
        }
        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
        unsafe fn check(vals: &[f32; 64]) {
            use std::arch::x86_64::*;
            let v: [__m512; 4] = std::array::from_fn(|i| _mm512_loadu_ps(vals[16 * i..].as_ptr()));
            let mut got = [0f32; 4];
            _mm_storeu_ps(got.as_mut_ptr(), reduce4_avx512(v));
            for i in 0..4 {
                let want = _mm512_reduce_add_ps(v[i]);
                assert_eq!(got[i].to_bits(), want.to_bits(), "vector {i}: {vals:?}");
            }
        }
        let mut state = 0x1234_5678_9abc_def1u64;
        for _ in 0..20000 {
            let vals: [f32; 64] = std::array::from_fn(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let mantissa = ((state >> 40) % 20001) as f32 / 10000.0 - 1.0;
                mantissa * 10f32.powi(((state >> 20) % 9) as i32 - 4)
            });
            // SAFETY: AVX-512 was detected above.
            unsafe { check(&vals) };
        }
    }
}
