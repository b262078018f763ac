//! AVX2 decoding of the 32-value blocks (Q8_0, Q4_0, Q4_1), which the CPU's stored-weight
//! kernels decode on every pass. Each value is computed with the scalar decoder's operations in
//! its order (`d · q`, then `+ m` for Q4_1, each rounded once), so the bits are the same.

use super::dequant::GgmlType;
use half::f16;

/// Whether this CPU runs `decode`.
pub fn available() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Decodes whole blocks of `t` (Q8_0, Q4_0 or Q4_1) from `bytes` into `out`; `false` for any
/// other type or where AVX2 is missing (the caller then decodes as usual).
pub fn decode(t: GgmlType, bytes: &[u8], out: &mut [f32]) -> bool {
    if !available() || !matches!(t, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1) {
        return false;
    }
    let (_, size) = t.block();
    assert_eq!(bytes.len() / size * 32, out.len(), "decode: sizes");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 was detected; each block reads `size` bytes of `bytes` and writes 32 values
    // of `out`, whose sizes the assertion matched.
    unsafe {
        for (b, y) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(32)) {
            match t {
                GgmlType::Q8_0 => q8_0(b, y),
                GgmlType::Q4_0 => q4(b, y, false),
                _ => q4(b, y, true),
            }
        }
    }
    true
}

fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn q8_0(b: &[u8], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let d = _mm256_set1_ps(half_at(b, 0));
    for part in 0..4 {
        let q = _mm_loadl_epi64(b.as_ptr().add(2 + 8 * part) as *const __m128i);
        let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
        _mm256_storeu_ps(y.as_mut_ptr().add(8 * part), _mm256_mul_ps(d, v));
    }
}

/// Q4_0 (`d · (q − 8)`) or, with `min`, Q4_1 (`d · q + m`): low nibbles are values 0..16,
/// high nibbles 16..32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn q4(b: &[u8], y: &mut [f32], min: bool) {
    use std::arch::x86_64::*;
    let d = _mm256_set1_ps(half_at(b, 0));
    let (m, qs) = if min {
        (_mm256_set1_ps(half_at(b, 2)), b.as_ptr().add(4))
    } else {
        (_mm256_setzero_ps(), b.as_ptr().add(2))
    };
    let bytes = _mm_loadu_si128(qs as *const __m128i);
    let low = _mm_and_si128(bytes, _mm_set1_epi8(0x0F));
    let high = _mm_and_si128(_mm_srli_epi16::<4>(bytes), _mm_set1_epi8(0x0F));
    let offset = _mm256_set1_epi32(if min { 0 } else { 8 });
    for (half, nibbles) in [low, high].into_iter().enumerate() {
        for part in 0..2 {
            let eight = if part == 0 {
                nibbles
            } else {
                _mm_srli_si128::<8>(nibbles)
            };
            let q = _mm256_sub_epi32(_mm256_cvtepu8_epi32(eight), offset);
            let v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(q));
            let v = if min { _mm256_add_ps(v, m) } else { v };
            _mm256_storeu_ps(y.as_mut_ptr().add(16 * half + 8 * part), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value in every position, against the scalar decoder, bit for bit.
    #[test]
    fn matches_the_scalar_decoder_bit_for_bit() {
        if !available() {
            return;
        }
        for t in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
            let (_, size) = t.block();
            let blocks = 256;
            let mut bytes: Vec<u8> = (0..blocks * size).map(|i| (i * 31 % 256) as u8).collect();
            for (i, b) in bytes.chunks_exact_mut(size).enumerate() {
                let scale = half::f16::from_f32(0.01 * (1.0 + i as f32 / 7.0)).to_le_bytes();
                b[..2].copy_from_slice(&scale);
                if t == GgmlType::Q4_1 {
                    b[2..4].copy_from_slice(
                        &half::f16::from_f32(-0.3 + i as f32 / 300.0).to_le_bytes(),
                    );
                }
            }
            let want = super::super::dequantize(t, &bytes, blocks * 32).unwrap();
            let mut got = vec![0.0f32; blocks * 32];
            assert!(decode(t, &bytes, &mut got));
            let same = want
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{t:?}");
        }
    }
}
