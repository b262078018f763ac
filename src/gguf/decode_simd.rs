//! Sixteen values of a stored row at a time, decoded into SIMD registers: what the CPU's
//! weight kernels (`backend/cpu/weight_t.rs`, `g_times_w.rs`) compute with, so no decoded copy
//! of a weight matrix is made. Every format has an AVX-512 and an AVX2 version. Each value is
//! computed with the scalar decoder's operations in its order (`d · q`, then `+ m`; the
//! K-quants' `(d · sc) · q − dmin · m`), each rounded once, so the bits are those of
//! `dequant::decode_into` (tested below for every format, byte and position).
//!
//! Chunk `h` of a row is its values `16h..16h + 16`. Quantised rows are whole blocks of 32, so
//! only the float formats (f32, f16, bf16) can end in a partial chunk (`partial_*`).

use super::dequant::GgmlType;

/// `[body with x = a, body with x = b, …]`, written out. A closure (`[a, b].map(|x| …)`) is
/// compiled without its caller's target features, so the intrinsics in it stay calls instead
/// of instructions: the Q5 decoders were ten times slower so.
macro_rules! each {
    ([$($item:expr),+ $(,)?], |$x:ident| $body:expr) => {
        [$({
            #[allow(clippy::redundant_locals)] // an item may be the binding's own name
            let $x = $item;
            $body
        }),+]
    };
}
pub(crate) use each;

/// A matrix's rows as stored: what the kernels decode from. Row `r` is stored row `order[r]`
/// where there is an order (llama.cpp's Q/K head interleave, undone by whole rows).
#[derive(Clone, Copy)]
pub struct StoredRows<'a> {
    pub format: GgmlType,
    data: &'a [u8],
    row_bytes: usize,
    order: Option<&'a [u32]>,
    pub rows: usize,
    pub cols: usize,
}

impl<'a> StoredRows<'a> {
    /// `rows` rows of `cols` values of `format` in `data` (whole blocks, checked by the
    /// caller's constructor: `StoredMatrix::new`).
    pub fn new(
        format: GgmlType,
        data: &'a [u8],
        row_bytes: usize,
        order: Option<&'a [u32]>,
        rows: usize,
        cols: usize,
    ) -> Self {
        assert!(
            data.len() >= rows * row_bytes && order.is_none_or(|o| o.len() == rows),
            "StoredRows: {rows} rows of {row_bytes} bytes in {} bytes",
            data.len()
        );
        StoredRows {
            format,
            data,
            row_bytes,
            order,
            rows,
            cols,
        }
    }

    /// f32 rows in memory, as a "format" like the others.
    pub fn f32(values: &'a [f32], cols: usize) -> Self {
        let rows = values.len().checked_div(cols).unwrap_or(0);
        StoredRows::new(
            GgmlType::F32,
            bytemuck::cast_slice(values),
            4 * cols,
            None,
            rows,
            cols,
        )
    }

    /// Bytes per stored row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// The first byte of row `r` (`r < rows`).
    #[inline(always)]
    pub fn row(&self, r: usize) -> *const u8 {
        debug_assert!(r < self.rows);
        let s = match self.order {
            Some(o) => o[r] as usize,
            None => r,
        };
        // SAFETY: `new` checked that every row lies inside `data`.
        unsafe { self.data.as_ptr().add(s * self.row_bytes) }
    }

    /// Rows `first..first + out.len() / cols`, decoded into `out`: the SIMD decoders where the
    /// CPU has them, else the scalar one (the same bits either way).
    pub fn decode_into(&self, first: usize, out: &mut [f32]) {
        for (i, dst) in out.chunks_exact_mut(self.cols.max(1)).enumerate() {
            let row = self.row(first + i);
            #[cfg(target_arch = "x86_64")]
            if avx512_available() {
                // SAFETY: the features were detected; the row holds `cols` values.
                unsafe { avx512::decode_row(self.format, row, dst) };
                continue;
            } else if avx2_available() {
                // SAFETY: as above.
                unsafe { avx2::decode_row(self.format, row, dst) };
                continue;
            }
            // SAFETY: the row's bytes lie inside `data` (`new`).
            let bytes = unsafe { std::slice::from_raw_parts(row, self.row_bytes) };
            super::dequant::decode_into(self.format, bytes, dst);
        }
    }
}

/// Whether this CPU has what the AVX-512 decoders use (AVX-512 F, VL, BW, DQ; F16C; FMA).
pub fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            // VL, BW and DQ (every AVX-512 CPU since Skylake-X has them) let the 128- and
            // 256-bit operations of the decoders use all 32 registers: with AVX-512F alone
            // they are VEX-encoded, limited to 16, and the kernels' accumulators spill.
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("f16c")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU has what the AVX2 decoders use (AVX2, F16C, FMA).
pub fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("f16c")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K super-block, as f32.
#[inline(always)]
unsafe fn scale_min_k4(j: usize, q: *const u8) -> (f32, f32) {
    let b = |i: usize| *q.add(i);
    let (sc, m) = if j < 4 {
        (b(j) & 63, b(j + 4) & 63)
    } else {
        (
            (b(j + 4) & 0xF) | ((b(j - 4) >> 6) << 4),
            (b(j + 4) >> 4) | ((b(j) >> 6) << 4),
        )
    };
    (sc as f32, m as f32)
}

/// Where chunk `h` of a K-quant row lies: its super-block's first byte and, inside it, its
/// 32-value sub-block (0..8) and which half of that (0, 1).
#[inline(always)]
unsafe fn k_quant_chunk(row: *const u8, h: usize, block_bytes: usize) -> (*const u8, usize, usize) {
    let unit = h / 2;
    (row.add(block_bytes * (unit / 8)), unit % 8, h % 2)
}

/// One f16 at `p` (unaligned), as f32, with F16C.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    use std::arch::x86_64::*;
    let bits = (p as *const u16).read_unaligned() as i32;
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)))
}

/// Copies the first `live` values (1..16) of chunk `h` of a float-format row into a zeroed
/// 64-byte buffer: a partial chunk then decodes as a whole one whose missing values are +0.
#[inline(always)]
unsafe fn padded(format: GgmlType, row: *const u8, h: usize, live: usize) -> [u8; 64] {
    let size = match format {
        GgmlType::F32 => 4,
        GgmlType::F16 | GgmlType::BF16 => 2,
        other => unreachable!("{other:?} rows are whole blocks"),
    };
    let mut buf = [0u8; 64];
    std::ptr::copy_nonoverlapping(row.add(16 * h * size), buf.as_mut_ptr(), live * size);
    buf
}

/// A stored format as a type, so that the kernels are compiled once per format with its
/// decoder inlined (a `match` per chunk would sit in the innermost loop).
pub trait Format {
    const FORMAT: GgmlType;
}

macro_rules! formats {
    ($($name:ident),*) => {
        $(
            #[doc = concat!("The `", stringify!($name), "` format, as a type.")]
            pub struct $name;
            impl Format for $name {
                const FORMAT: GgmlType = GgmlType::$name;
            }
        )*
    };
}
formats!(F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4K, Q5K, Q6K);

/// Runs `$body` with `$F` the format type of `$format` (a `GgmlType`).
#[macro_export]
macro_rules! with_format {
    ($format:expr, $F:ident => $body:expr) => {{
        use $crate::gguf::decode_simd as formats;
        match $format {
            $crate::gguf::GgmlType::F32 => {
                type $F = formats::F32;
                $body
            }
            $crate::gguf::GgmlType::F16 => {
                type $F = formats::F16;
                $body
            }
            $crate::gguf::GgmlType::BF16 => {
                type $F = formats::BF16;
                $body
            }
            $crate::gguf::GgmlType::Q8_0 => {
                type $F = formats::Q8_0;
                $body
            }
            $crate::gguf::GgmlType::Q4_0 => {
                type $F = formats::Q4_0;
                $body
            }
            $crate::gguf::GgmlType::Q4_1 => {
                type $F = formats::Q4_1;
                $body
            }
            $crate::gguf::GgmlType::Q5_0 => {
                type $F = formats::Q5_0;
                $body
            }
            $crate::gguf::GgmlType::Q5_1 => {
                type $F = formats::Q5_1;
                $body
            }
            $crate::gguf::GgmlType::Q4K => {
                type $F = formats::Q4K;
                $body
            }
            $crate::gguf::GgmlType::Q5K => {
                type $F = formats::Q5K;
                $body
            }
            $crate::gguf::GgmlType::Q6K => {
                type $F = formats::Q6K;
                $body
            }
        }
    }};
}

/// The AVX-512 decoders: chunk `h` as one `__m512`. Callers enable
/// `avx512f,avx512vl,avx512bw,avx512dq,f16c,fma`.
#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    /// Chunk `h` (whole) of the row at `row`, of format `F::FORMAT`.
    ///
    /// # Safety
    /// The CPU has AVX-512 (F, VL, BW, DQ) and F16C, and `row` points at a row of `F::FORMAT`
    /// holding chunk `h`.
    #[inline(always)]
    pub unsafe fn sixteen<F: Format>(row: *const u8, h: usize) -> __m512 {
        chunk(F::FORMAT, row, h)
    }

    /// The first `live` values (1..16) of chunk `h` of a float-format row, zeros after.
    ///
    /// # Safety
    /// The CPU has AVX-512 (F, VL, BW, DQ) and F16C, and `row` points at a row of `F::FORMAT`
    /// holding chunk `h`.
    #[inline(always)]
    pub unsafe fn partial<F: Format>(row: *const u8, h: usize, live: usize) -> __m512 {
        let buf = padded(F::FORMAT, row, h, live);
        chunk(F::FORMAT, buf.as_ptr(), 0)
    }

    /// Block `u` of the row: values `32u..32u + 32` (chunks `2u` and `2u + 1`), each scale
    /// converted once for both halves.
    ///
    /// # Safety
    /// The CPU has AVX-512 (F, VL, BW, DQ) and F16C, and `row` points at a row of `F::FORMAT`
    /// holding block `u` whole.
    #[inline(always)]
    pub unsafe fn pair<F: Format>(row: *const u8, u: usize) -> [__m512; 2] {
        block(F::FORMAT, row, u)
    }

    /// Two f16 at `p` (`d` and `m`, or `d` and `dmin`), each broadcast.
    #[inline(always)]
    unsafe fn two_halves(p: *const u8) -> (__m512, __m512) {
        let both = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
        (
            _mm512_broadcastss_ps(both),
            _mm512_broadcastss_ps(_mm_movehdup_ps(both)),
        )
    }

    /// 32 bytes' low or high nibbles (`high`), as two vectors of 16 u32 lanes.
    #[inline(always)]
    unsafe fn nibbles32(p: *const u8, high: bool) -> [__m512i; 2] {
        let bytes = _mm256_loadu_si256(p as *const __m256i);
        let bytes = if high {
            _mm256_srli_epi16::<4>(bytes)
        } else {
            bytes
        };
        let q = _mm256_and_si256(bytes, _mm256_set1_epi8(0x0F));
        widen32(q)
    }

    #[inline(always)]
    unsafe fn widen32(q: __m256i) -> [__m512i; 2] {
        [
            _mm512_cvtepu8_epi32(_mm256_castsi256_si128(q)),
            _mm512_cvtepu8_epi32(_mm256_extracti128_si256::<1>(q)),
        ]
    }

    #[inline(always)]
    unsafe fn block(format: GgmlType, row: *const u8, u: usize) -> [__m512; 2] {
        match format {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
                [chunk(format, row, 2 * u), chunk(format, row, 2 * u + 1)]
            }
            GgmlType::Q8_0 => {
                let b = row.add(34 * u);
                let d = _mm512_set1_ps(f16_at(b));
                each!([0, 1], |p| {
                    let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(b.add(2 + 16 * p) as *const _));
                    _mm512_mul_ps(d, _mm512_cvtepi32_ps(q))
                })
            }
            // Low nibbles are values 0..16, high nibbles 16..32.
            GgmlType::Q4_0 => {
                let b = row.add(18 * u);
                let d = _mm512_set1_ps(f16_at(b));
                each!([false, true], |high| {
                    let q = _mm512_sub_epi32(nibbles(b.add(2), high), _mm512_set1_epi32(8));
                    _mm512_mul_ps(d, _mm512_cvtepi32_ps(q))
                })
            }
            GgmlType::Q4_1 => {
                let b = row.add(20 * u);
                let (d, m) = two_halves(b);
                each!([false, true], |high| {
                    let v = _mm512_mul_ps(d, _mm512_cvtepi32_ps(nibbles(b.add(4), high)));
                    _mm512_add_ps(v, m)
                })
            }
            GgmlType::Q5_0 | GgmlType::Q5_1 => {
                let one = format == GgmlType::Q5_1;
                let (size, at) = if one { (24, 4) } else { (22, 2) };
                let b = row.add(size * u);
                let qh = (b.add(at) as *const u32).read_unaligned();
                let (d, m) = if one {
                    two_halves(b)
                } else {
                    (_mm512_set1_ps(f16_at(b)), _mm512_setzero_ps())
                };
                each!([false, true], |high| {
                    let q = nibbles(b.add(at + 4), high);
                    let fifth = (qh >> if high { 16 } else { 0 }) as __mmask16;
                    let q = _mm512_mask_or_epi32(q, fifth, q, _mm512_set1_epi32(16));
                    if one {
                        _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(q)), m)
                    } else {
                        let q = _mm512_sub_epi32(q, _mm512_set1_epi32(16));
                        _mm512_mul_ps(d, _mm512_cvtepi32_ps(q))
                    }
                })
            }
            GgmlType::Q4K | GgmlType::Q5K => {
                let five = format == GgmlType::Q5K;
                let (b, sub, _) = k_quant_chunk(row, 2 * u, if five { 176 } else { 144 });
                let (sc, mn) = scale_min_k4(sub, b.add(4));
                let qs = b.add(if five { 48 } else { 16 } + 32 * (sub / 2));
                let mut q = nibbles32(qs, sub % 2 == 1);
                if five {
                    // Bit `sub` of each of the 32 high-bit bytes, as 16.
                    let qh = _mm256_loadu_si256(b.add(16) as *const __m256i);
                    let bit = _mm256_and_si256(
                        _mm256_srl_epi16(qh, _mm_cvtsi32_si128(sub as i32)),
                        _mm256_set1_epi8(1),
                    );
                    let bit = widen32(_mm256_slli_epi16::<4>(bit));
                    q = [_mm512_or_si512(q[0], bit[0]), _mm512_or_si512(q[1], bit[1])];
                }
                let both = _mm_cvtph_ps(_mm_cvtsi32_si128((b as *const i32).read_unaligned()));
                let ds = _mm512_set1_ps(_mm_cvtss_f32(both) * sc);
                let dm = _mm512_set1_ps(_mm_cvtss_f32(_mm_movehdup_ps(both)) * mn);
                each!([q[0], q[1]], |q| _mm512_sub_ps(
                    _mm512_mul_ps(ds, _mm512_cvtepi32_ps(q)),
                    dm
                ))
            }
            GgmlType::Q6K => {
                let (b, sub, _) = k_quant_chunk(row, 2 * u, 210);
                let (half, quarter) = (sub / 4, sub % 4);
                let ql =
                    _mm256_loadu_si256(b.add(64 * half + 32 * (quarter % 2)) as *const __m256i);
                let ql = if quarter >= 2 {
                    _mm256_srli_epi16::<4>(ql)
                } else {
                    ql
                };
                let ql = _mm256_and_si256(ql, _mm256_set1_epi8(0x0F));
                let qh = _mm256_loadu_si256(b.add(128 + 32 * half) as *const __m256i);
                let qh = _mm256_and_si256(
                    _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * quarter as i32)),
                    _mm256_set1_epi8(3),
                );
                let q = widen32(_mm256_or_si256(ql, _mm256_slli_epi16::<4>(qh)));
                let d = f16_at(b.add(208));
                let scales = b.add(192 + 8 * half + 2 * quarter);
                each!([0, 1], |p| {
                    let ds = _mm512_set1_ps(d * (*scales.add(p) as i8) as f32);
                    let q = _mm512_sub_epi32(q[p], _mm512_set1_epi32(32));
                    _mm512_mul_ps(ds, _mm512_cvtepi32_ps(q))
                })
            }
        }
    }

    /// The low (`high == false`) or high nibbles of 16 bytes, as 16 lanes of u32.
    #[inline(always)]
    unsafe fn nibbles(p: *const u8, high: bool) -> __m512i {
        let bytes = _mm_loadu_si128(p as *const __m128i);
        let bytes = if high {
            _mm_srli_epi16::<4>(bytes)
        } else {
            bytes
        };
        _mm512_cvtepu8_epi32(_mm_and_si128(bytes, _mm_set1_epi8(0x0F)))
    }

    #[inline(always)]
    unsafe fn chunk(format: GgmlType, row: *const u8, h: usize) -> __m512 {
        match format {
            GgmlType::F32 => _mm512_loadu_ps((row as *const f32).add(16 * h)),
            GgmlType::F16 => _mm512_cvtph_ps(_mm256_loadu_si256(row.add(32 * h) as *const _)),
            GgmlType::BF16 => {
                let w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(row.add(32 * h) as *const _));
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w))
            }
            GgmlType::Q8_0 => {
                let b = row.add(34 * (h / 2));
                let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(b.add(2 + 16 * (h % 2)) as *const _));
                _mm512_mul_ps(_mm512_set1_ps(f16_at(b)), _mm512_cvtepi32_ps(q))
            }
            GgmlType::Q4_0 => {
                let b = row.add(18 * (h / 2));
                let q = _mm512_sub_epi32(nibbles(b.add(2), h % 2 == 1), _mm512_set1_epi32(8));
                _mm512_mul_ps(_mm512_set1_ps(f16_at(b)), _mm512_cvtepi32_ps(q))
            }
            GgmlType::Q4_1 => {
                let b = row.add(20 * (h / 2));
                let q = _mm512_cvtepi32_ps(nibbles(b.add(4), h % 2 == 1));
                let v = _mm512_mul_ps(_mm512_set1_ps(f16_at(b)), q);
                _mm512_add_ps(v, _mm512_set1_ps(f16_at(b.add(2))))
            }
            // The fifth bit of value j is bit j of the 32-bit word before the nibbles.
            GgmlType::Q5_0 | GgmlType::Q5_1 => {
                let one = format == GgmlType::Q5_1;
                let (size, at) = if one { (24, 4) } else { (22, 2) };
                let b = row.add(size * (h / 2));
                let qh = (b.add(at) as *const u32).read_unaligned();
                let fifth = (qh >> (16 * (h % 2))) as __mmask16;
                let q = nibbles(b.add(at + 4), h % 2 == 1);
                let q = _mm512_mask_or_epi32(q, fifth, q, _mm512_set1_epi32(16));
                let d = _mm512_set1_ps(f16_at(b));
                if one {
                    let v = _mm512_mul_ps(d, _mm512_cvtepi32_ps(q));
                    _mm512_add_ps(v, _mm512_set1_ps(f16_at(b.add(2))))
                } else {
                    let q = _mm512_sub_epi32(q, _mm512_set1_epi32(16));
                    _mm512_mul_ps(d, _mm512_cvtepi32_ps(q))
                }
            }
            GgmlType::Q4K | GgmlType::Q5K => {
                let five = format == GgmlType::Q5K;
                let (b, sub, part) = k_quant_chunk(row, h, if five { 176 } else { 144 });
                let (sc, m) = scale_min_k4(sub, b.add(4));
                let qs = b.add(if five { 48 } else { 16 } + 32 * (sub / 2) + 16 * part);
                let mut q = nibbles(qs, sub % 2 == 1);
                if five {
                    // Bit `sub` of each of the 32 high-bit bytes.
                    let qh = _mm_loadu_si128(b.add(16 + 16 * part) as *const __m128i);
                    let bit = _mm_and_si128(
                        _mm_srl_epi16(qh, _mm_cvtsi32_si128(sub as i32)),
                        _mm_set1_epi8(1),
                    );
                    q = _mm512_or_si512(q, _mm512_slli_epi32::<4>(_mm512_cvtepu8_epi32(bit)));
                }
                let ds = _mm512_set1_ps(f16_at(b) * sc);
                let dm = _mm512_set1_ps(f16_at(b.add(2)) * m);
                _mm512_sub_ps(_mm512_mul_ps(ds, _mm512_cvtepi32_ps(q)), dm)
            }
            GgmlType::Q6K => {
                let (b, sub, part) = k_quant_chunk(row, h, 210);
                let (half, quarter) = (sub / 4, sub % 4);
                let ql = _mm_loadu_si128(
                    b.add(64 * half + 32 * (quarter % 2) + 16 * part) as *const __m128i
                );
                let ql = if quarter >= 2 {
                    _mm_srli_epi16::<4>(ql)
                } else {
                    ql
                };
                let ql = _mm_and_si128(ql, _mm_set1_epi8(0x0F));
                let qh = _mm_loadu_si128(b.add(128 + 32 * half + 16 * part) as *const __m128i);
                let qh = _mm_and_si128(
                    _mm_srl_epi16(qh, _mm_cvtsi32_si128(2 * quarter as i32)),
                    _mm_set1_epi8(3),
                );
                let q = _mm_or_si128(ql, _mm_slli_epi16::<4>(qh));
                let q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(q), _mm512_set1_epi32(32));
                let sc = *b.add(192 + 8 * half + 2 * quarter + part) as i8;
                let ds = _mm512_set1_ps(f16_at(b.add(208)) * sc as f32);
                _mm512_mul_ps(ds, _mm512_cvtepi32_ps(q))
            }
        }
    }

    /// A whole row of `out.len()` values, decoded into `out`.
    ///
    /// # Safety
    /// The CPU has AVX-512 (F, VL, BW, DQ) and F16C, and `row` points at a row of `format`
    /// holding at least `out.len()` values.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,f16c,fma")]
    pub unsafe fn decode_row(format: GgmlType, row: *const u8, out: &mut [f32]) {
        let (full, rest) = (out.len() / 16, out.len() % 16);
        for h in 0..full {
            _mm512_storeu_ps(out.as_mut_ptr().add(16 * h), chunk(format, row, h));
        }
        if rest > 0 {
            let buf = padded(format, row, full, rest);
            let mut v = [0.0f32; 16];
            _mm512_storeu_ps(v.as_mut_ptr(), chunk(format, buf.as_ptr(), 0));
            out[16 * full..].copy_from_slice(&v[..rest]);
        }
    }
}

/// The AVX2 decoders: chunk `h` as two `__m256` (values `16h..16h + 8`, `16h + 8..16h + 16`).
/// Callers enable `avx2,f16c,fma`.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    /// Chunk `h` (whole) of the row at `row`, of format `F::FORMAT`.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C, and `row` points at a row of `F::FORMAT` holding chunk
    /// `h`.
    #[inline(always)]
    pub unsafe fn sixteen<F: Format>(row: *const u8, h: usize) -> [__m256; 2] {
        chunk(F::FORMAT, row, h)
    }

    /// The first `live` values (1..16) of chunk `h` of a float-format row, zeros after.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C, and `row` points at a row of `F::FORMAT` holding chunk
    /// `h`.
    #[inline(always)]
    pub unsafe fn partial<F: Format>(row: *const u8, h: usize, live: usize) -> [__m256; 2] {
        let buf = padded(F::FORMAT, row, h, live);
        chunk(F::FORMAT, buf.as_ptr(), 0)
    }

    /// Block `u` of the row: values `32u..32u + 32` as four vectors of 8, each scale
    /// converted once.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C, and `row` points at a row of `F::FORMAT` holding block
    /// `u` whole.
    #[inline(always)]
    pub unsafe fn pair<F: Format>(row: *const u8, u: usize) -> [__m256; 4] {
        let format = F::FORMAT;
        let halves = |a: [__m256; 2], b: [__m256; 2]| [a[0], a[1], b[0], b[1]];
        match format {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
                halves(chunk(format, row, 2 * u), chunk(format, row, 2 * u + 1))
            }
            GgmlType::Q4_1 => {
                let b = row.add(20 * u);
                let both = _mm_cvtph_ps(_mm_cvtsi32_si128((b as *const i32).read_unaligned()));
                let m = _mm256_broadcastss_ps(_mm_movehdup_ps(both));
                let d = _mm_cvtss_f32(both);
                let lo = scaled(widen(nibble_bytes(b.add(4), false)), 0, d);
                let hi = scaled(widen(nibble_bytes(b.add(4), true)), 0, d);
                let v = halves(lo, hi);
                each!([v[0], v[1], v[2], v[3]], |v| _mm256_add_ps(v, m))
            }
            GgmlType::Q4_0 => {
                let b = row.add(18 * u);
                let d = f16_at(b);
                halves(
                    scaled(widen(nibble_bytes(b.add(2), false)), 8, d),
                    scaled(widen(nibble_bytes(b.add(2), true)), 8, d),
                )
            }
            GgmlType::Q8_0 => {
                let b = row.add(34 * u);
                let d = f16_at(b);
                let q = each!([0, 8, 16, 24], |o| {
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64(b.add(2 + o) as *const _))
                });
                halves(scaled([q[0], q[1]], 0, d), scaled([q[2], q[3]], 0, d))
            }
            // The rest convert their scales per chunk.
            _ => halves(chunk(format, row, 2 * u), chunk(format, row, 2 * u + 1)),
        }
    }

    /// 16 bytes' values as two vectors of 8 u32 lanes.
    #[inline(always)]
    unsafe fn widen(bytes: __m128i) -> [__m256i; 2] {
        [
            _mm256_cvtepu8_epi32(bytes),
            _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(bytes)),
        ]
    }

    #[inline(always)]
    unsafe fn nibble_bytes(p: *const u8, high: bool) -> __m128i {
        let bytes = _mm_loadu_si128(p as *const __m128i);
        let bytes = if high {
            _mm_srli_epi16::<4>(bytes)
        } else {
            bytes
        };
        _mm_and_si128(bytes, _mm_set1_epi8(0x0F))
    }

    /// `d · (q − offset)` in f32 per lane, each operation rounded once.
    #[inline(always)]
    unsafe fn scaled(q: [__m256i; 2], offset: i32, d: f32) -> [__m256; 2] {
        let d = _mm256_set1_ps(d);
        each!([q[0], q[1]], |q| {
            _mm256_mul_ps(
                d,
                _mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(offset))),
            )
        })
    }

    #[inline(always)]
    unsafe fn chunk(format: GgmlType, row: *const u8, h: usize) -> [__m256; 2] {
        match format {
            GgmlType::F32 => {
                let p = (row as *const f32).add(16 * h);
                [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))]
            }
            GgmlType::F16 => {
                let p = row.add(32 * h);
                [
                    _mm256_cvtph_ps(_mm_loadu_si128(p as *const _)),
                    _mm256_cvtph_ps(_mm_loadu_si128(p.add(16) as *const _)),
                ]
            }
            GgmlType::BF16 => {
                let p = row.add(32 * h);
                each!([p, p.add(16)], |p| {
                    let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const _));
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w))
                })
            }
            GgmlType::Q8_0 => {
                let b = row.add(34 * (h / 2));
                let p = b.add(2 + 16 * (h % 2));
                let q = each!([p, p.add(8)], |p| _mm256_cvtepi8_epi32(_mm_loadl_epi64(
                    p as *const _
                )));
                scaled(q, 0, f16_at(b))
            }
            GgmlType::Q4_0 => {
                let b = row.add(18 * (h / 2));
                scaled(widen(nibble_bytes(b.add(2), h % 2 == 1)), 8, f16_at(b))
            }
            GgmlType::Q4_1 => {
                let b = row.add(20 * (h / 2));
                let m = _mm256_set1_ps(f16_at(b.add(2)));
                let v = scaled(widen(nibble_bytes(b.add(4), h % 2 == 1)), 0, f16_at(b));
                each!([v[0], v[1]], |v| _mm256_add_ps(v, m))
            }
            GgmlType::Q5_0 | GgmlType::Q5_1 => {
                let one = format == GgmlType::Q5_1;
                let (size, at) = if one { (24, 4) } else { (22, 2) };
                let b = row.add(size * (h / 2));
                let qh = (b.add(at) as *const u32).read_unaligned() >> (16 * (h % 2));
                let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let mut q = widen(nibble_bytes(b.add(at + 4), h % 2 == 1));
                for (i, q) in q.iter_mut().enumerate() {
                    let bits = _mm256_srlv_epi32(_mm256_set1_epi32((qh >> (8 * i)) as i32), lanes);
                    let fifth =
                        _mm256_slli_epi32::<4>(_mm256_and_si256(bits, _mm256_set1_epi32(1)));
                    *q = _mm256_or_si256(*q, fifth);
                }
                if one {
                    let m = _mm256_set1_ps(f16_at(b.add(2)));
                    let v = scaled(q, 0, f16_at(b));
                    each!([v[0], v[1]], |v| _mm256_add_ps(v, m))
                } else {
                    scaled(q, 16, f16_at(b))
                }
            }
            GgmlType::Q4K | GgmlType::Q5K => {
                let five = format == GgmlType::Q5K;
                let (b, sub, part) = k_quant_chunk(row, h, if five { 176 } else { 144 });
                let (sc, m) = scale_min_k4(sub, b.add(4));
                let qs = b.add(if five { 48 } else { 16 } + 32 * (sub / 2) + 16 * part);
                let mut q = nibble_bytes(qs, sub % 2 == 1);
                if five {
                    let qh = _mm_loadu_si128(b.add(16 + 16 * part) as *const __m128i);
                    let bit = _mm_and_si128(
                        _mm_srl_epi16(qh, _mm_cvtsi32_si128(sub as i32)),
                        _mm_set1_epi8(1),
                    );
                    q = _mm_or_si128(q, _mm_slli_epi16::<4>(bit));
                }
                let dm = _mm256_set1_ps(f16_at(b.add(2)) * m);
                let v = scaled(widen(q), 0, f16_at(b) * sc);
                each!([v[0], v[1]], |v| _mm256_sub_ps(v, dm))
            }
            GgmlType::Q6K => {
                let (b, sub, part) = k_quant_chunk(row, h, 210);
                let (half, quarter) = (sub / 4, sub % 4);
                let ql = _mm_loadu_si128(
                    b.add(64 * half + 32 * (quarter % 2) + 16 * part) as *const __m128i
                );
                let ql = if quarter >= 2 {
                    _mm_srli_epi16::<4>(ql)
                } else {
                    ql
                };
                let ql = _mm_and_si128(ql, _mm_set1_epi8(0x0F));
                let qh = _mm_loadu_si128(b.add(128 + 32 * half + 16 * part) as *const __m128i);
                let qh = _mm_and_si128(
                    _mm_srl_epi16(qh, _mm_cvtsi32_si128(2 * quarter as i32)),
                    _mm_set1_epi8(3),
                );
                let q = _mm_or_si128(ql, _mm_slli_epi16::<4>(qh));
                let sc = *b.add(192 + 8 * half + 2 * quarter + part) as i8;
                scaled(widen(q), 32, f16_at(b.add(208)) * sc as f32)
            }
        }
    }

    /// A whole row of `out.len()` values, decoded into `out`.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C, and `row` points at a row of `format` holding at least
    /// `out.len()` values.
    #[target_feature(enable = "avx2,f16c,fma")]
    pub unsafe fn decode_row(format: GgmlType, row: *const u8, out: &mut [f32]) {
        let (full, rest) = (out.len() / 16, out.len() % 16);
        for h in 0..full {
            let [a, b] = chunk(format, row, h);
            _mm256_storeu_ps(out.as_mut_ptr().add(16 * h), a);
            _mm256_storeu_ps(out.as_mut_ptr().add(16 * h + 8), b);
        }
        if rest > 0 {
            let buf = padded(format, row, full, rest);
            let mut v = [0.0f32; 16];
            let [a, b] = chunk(format, buf.as_ptr(), 0);
            _mm256_storeu_ps(v.as_mut_ptr(), a);
            _mm256_storeu_ps(v.as_mut_ptr().add(8), b);
            out[16 * full..].copy_from_slice(&v[..rest]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,f16c,fma")]
    unsafe fn pair_avx512<F: Format>(row: *const u8, u: usize, out: &mut [f32; 32]) {
        use std::arch::x86_64::*;
        let [a, b] = avx512::pair::<F>(row, u);
        _mm512_storeu_ps(out.as_mut_ptr(), a);
        _mm512_storeu_ps(out.as_mut_ptr().add(16), b);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,f16c,fma")]
    unsafe fn pair_avx2<F: Format>(row: *const u8, u: usize, out: &mut [f32; 32]) {
        use std::arch::x86_64::*;
        for (i, v) in avx2::pair::<F>(row, u).into_iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * i), v);
        }
    }

    /// Every format: rows of awkward lengths where the format allows them, bytes that take
    /// every value in every position, scales of both signs (and the K-quants' 6-bit scale
    /// packing in every sub-block), decoded by each instruction set and compared with the
    /// scalar decoder bit for bit.
    #[test]
    fn every_format_decodes_to_the_scalar_bits_on_every_instruction_set() {
        use GgmlType::*;
        for format in [F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4K, Q5K, Q6K] {
            let (per, size) = format.block();
            let cols_list: &[usize] = match per {
                1 => &[1, 15, 16, 17, 47, 96],
                32 => &[32, 96, 512],
                _ => &[256, 512],
            };
            for &cols in cols_list {
                let rows = 3;
                let row_bytes = cols / per * size;
                let mut data: Vec<u8> = (0..rows * row_bytes)
                    .map(|i| ((i * 37 + 11) % 251) as u8)
                    .collect();
                // f16 scales: finite, of both signs and varied size (bytes that would make
                // a NaN or infinity test nothing the weights hold).
                let half = |v: f32| half::f16::from_f32(v).to_le_bytes();
                for (b, block) in data.chunks_exact_mut(size).enumerate() {
                    let s = 0.01 * (1.0 + b as f32 / 3.0) * if b % 2 == 0 { 1.0 } else { -1.0 };
                    match format {
                        F16 => block.copy_from_slice(&half(b as f32 / 7.0 - 3.0)),
                        BF16 => block.copy_from_slice(
                            &half::bf16::from_f32(b as f32 / 7.0 - 3.0).to_le_bytes(),
                        ),
                        Q8_0 | Q4_0 | Q5_0 => block[..2].copy_from_slice(&half(s)),
                        Q4_1 | Q5_1 | Q4K | Q5K => {
                            block[..2].copy_from_slice(&half(s));
                            block[2..4].copy_from_slice(&half(-0.3 * s + 0.001));
                        }
                        Q6K => block[208..].copy_from_slice(&half(s)),
                        _ => {}
                    }
                }
                if format == F32 {
                    for (i, v) in data.chunks_exact_mut(4).enumerate() {
                        v.copy_from_slice(&(i as f32 * 0.37 - 5.0).to_le_bytes());
                    }
                }
                let want = super::super::dequantize(format, &data, rows * cols).unwrap();
                let stored = StoredRows::new(format, &data, row_bytes, None, rows, cols);
                let mut got = vec![f32::NAN; rows * cols];
                stored.decode_into(0, &mut got);
                let same =
                    |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same(&want, &got), "{format:?} cols {cols}: decode_into");
                #[cfg(target_arch = "x86_64")]
                for r in 0..rows {
                    let want = &want[r * cols..(r + 1) * cols];
                    let mut row = vec![f32::NAN; cols];
                    if avx2_available() {
                        unsafe { avx2::decode_row(format, stored.row(r), &mut row) };
                        assert!(same(want, &row), "{format:?} cols {cols} row {r}: AVX2");
                    }
                    if avx512_available() {
                        row.fill(f32::NAN);
                        unsafe { avx512::decode_row(format, stored.row(r), &mut row) };
                        assert!(same(want, &row), "{format:?} cols {cols} row {r}: AVX-512");
                    }
                    // Whole blocks of 32, as the weight kernels read them.
                    for u in 0..cols / 32 {
                        let want = &want[32 * u..32 * u + 32];
                        let mut got = [f32::NAN; 32];
                        with_format!(format, F => {
                            if avx2_available() {
                                unsafe { pair_avx2::<F>(stored.row(r), u, &mut got) };
                                assert!(same(want, &got), "{format:?} row {r} block {u}: AVX2 pair");
                            }
                            if avx512_available() {
                                got.fill(f32::NAN);
                                unsafe { pair_avx512::<F>(stored.row(r), u, &mut got) };
                                assert!(same(want, &got), "{format:?} row {r} block {u}: AVX-512 pair");
                            }
                        });
                    }
                }
            }
        }
    }
}
