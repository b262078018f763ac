//! Dequantisation of GGML tensor types to f32: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the
//! K-quants Q4_K, Q5_K, Q6_K. Block layouts follow the GGUF format: each block stores its
//! scale(s) as f16 next to packed integers; K-quants group 256 values in super-blocks with
//! 6-bit (Q4_K, Q5_K) or 8-bit (Q6_K) sub-block scales.

use half::f16;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q4K,
    Q5K,
    Q6K,
}

/// The lower-case name of a GGML type id (`q4_1`), for summaries.
pub fn type_label(id: u32) -> String {
    type_name(id).to_lowercase()
}

/// Names of the GGML type ids, for errors about the ones we do not decode.
fn type_name(id: u32) -> String {
    let names = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
        "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",
        "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    names
        .get(id as usize)
        .map_or_else(|| format!("type {id}"), |n| n.to_string())
}

impl GgmlType {
    pub fn from_id(id: u32) -> Result<Self, String> {
        Ok(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            30 => GgmlType::BF16,
            8 => GgmlType::Q8_0,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            other => {
                return Err(format!(
                    "quantisation {} is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                    type_name(other)
                ))
            }
        })
    }

    /// The type's GGML id (the inverse of `from_id`).
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::BF16 => 30,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
        }
    }

    /// (values per block, bytes per block)
    pub fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q5K => (256, 176),
            GgmlType::Q6K => (256, 210),
        }
    }
}

pub fn byte_size(t: GgmlType, n: usize) -> Result<usize, String> {
    let (per, bytes) = t.block();
    if !n.is_multiple_of(per) {
        return Err(format!("{n} values are not whole blocks of {per}"));
    }
    (n / per)
        .checked_mul(bytes)
        .ok_or_else(|| format!("{n} values of {t:?} overflow the address space"))
}

/// `n` values of `format` with pseudo-random quants and finite scales of both signs (benchmarks
/// and tests): every byte that is not a scale takes every value, so the decoders meet every
/// bit pattern; the float formats hold values in [-1.5, 1.5].
pub fn random_blocks(format: GgmlType, n: usize, seed: u64) -> Vec<u8> {
    let (per, size) = format.block();
    let blocks = n / per;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let small = |r: u64| ((r >> 40) % 3001) as f32 / 1000.0 - 1.5;
    let half = |v: f32| f16::from_f32(v).to_le_bytes();
    let mut bytes: Vec<u8> = (0..blocks * size).map(|_| (next() >> 56) as u8).collect();
    for block in bytes.chunks_exact_mut(size) {
        let r = next();
        // Scales of 0.002 to 0.03, of either sign.
        let d = (0.002 + 0.028 * small(r).abs() / 1.5) * if r & 1 == 0 { 1.0 } else { -1.0 };
        match format {
            GgmlType::F32 => block.copy_from_slice(&small(r).to_le_bytes()),
            GgmlType::F16 => block.copy_from_slice(&half(small(r))),
            GgmlType::BF16 => block.copy_from_slice(&half::bf16::from_f32(small(r)).to_le_bytes()),
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => {
                block[..2].copy_from_slice(&half(d))
            }
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => {
                block[..2].copy_from_slice(&half(d));
                block[2..4].copy_from_slice(&half(0.3 * d.abs()));
            }
            GgmlType::Q6K => block[208..].copy_from_slice(&half(d)),
        }
    }
    bytes
}

fn h(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Decodes `n` values of type `t` from `bytes`.
pub fn dequantize(t: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>, String> {
    let (per, size) = t.block();
    if bytes.len() != byte_size(t, n)? {
        return Err(format!("{} bytes for {n} values of {t:?}", bytes.len()));
    }
    let mut out = vec![0.0f32; n];
    // A few thousand values per task.
    let blocks_per_task = (4096 / per).max(1);
    out.par_chunks_mut(per * blocks_per_task)
        .zip(bytes.par_chunks(size * blocks_per_task))
        .for_each(|(o, b)| {
            for (ob, bb) in o.chunks_mut(per).zip(b.chunks(size)) {
                decode_block(t, bb, ob);
            }
        });
    Ok(out)
}

/// Decodes the whole blocks in `bytes` into `out` (as many values as they hold), on the
/// calling thread: the values are those of `dequantize`, bit for bit. (The scalar reference;
/// `decode_simd` gives the same bits in SIMD registers.)
pub fn decode_into(t: GgmlType, bytes: &[u8], out: &mut [f32]) {
    let (per, size) = t.block();
    debug_assert_eq!(bytes.len() / size * per, out.len());
    match t {
        // Exact conversions, so the slice conversion (F16C where the CPU has it) gives the
        // same bits as the scalar one; bytes that are not 2-aligned take the scalar loop.
        GgmlType::F16 => match bytemuck::try_cast_slice::<u8, f16>(bytes) {
            Ok(h) => half::slice::HalfFloatSliceExt::convert_to_f32_slice(h, out),
            Err(_) => out
                .iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, c)| *o = h(c, 0)),
        },
        GgmlType::BF16 => out
            .iter_mut()
            .zip(bytes.chunks_exact(2))
            .for_each(|(o, c)| {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)
            }),
        _ => out
            .chunks_mut(per)
            .zip(bytes.chunks_exact(size))
            .for_each(|(o, b)| decode_block(t, b, o)),
    }
}

fn decode_block(t: GgmlType, b: &[u8], y: &mut [f32]) {
    match t {
        GgmlType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => y[0] = h(b, 0),
        GgmlType::BF16 => y[0] = half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        GgmlType::Q8_0 => {
            let d = h(b, 0);
            for j in 0..32 {
                y[j] = d * (b[2 + j] as i8) as f32;
            }
        }
        GgmlType::Q4_0 => {
            let d = h(b, 0);
            for j in 0..16 {
                let q = b[2 + j];
                y[j] = d * ((q & 0xF) as i32 - 8) as f32;
                y[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
            }
        }
        GgmlType::Q4_1 => {
            let (d, m) = (h(b, 0), h(b, 2));
            for j in 0..16 {
                let q = b[4 + j];
                y[j] = d * (q & 0xF) as f32 + m;
                y[j + 16] = d * (q >> 4) as f32 + m;
            }
        }
        // Q5_0: d, 32 fifth bits (bit j for value j), then the low nibbles as Q4_0's, with
        // value d·(q − 16); Q5_1: d, m, the bits and nibbles, value d·q + m.
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let one = t == GgmlType::Q5_1;
            let at = if one { 4 } else { 2 };
            let (d, m) = (h(b, 0), if one { h(b, 2) } else { 0.0 });
            let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            for j in 0..16 {
                let q = b[at + 4 + j] as u32;
                let q0 = (q & 0xF) | (((qh >> j) & 1) << 4);
                let q1 = (q >> 4) | (((qh >> (j + 16)) & 1) << 4);
                if one {
                    y[j] = d * q0 as f32 + m;
                    y[j + 16] = d * q1 as f32 + m;
                } else {
                    y[j] = d * (q0 as i32 - 16) as f32;
                    y[j + 16] = d * (q1 as i32 - 16) as f32;
                }
            }
        }
        GgmlType::Q4K => {
            let (d, dmin) = (h(b, 0), h(b, 2));
            let (scales, qs) = (&b[4..16], &b[16..144]);
            for chunk in 0..4 {
                let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                let q = &qs[32 * chunk..32 * chunk + 32];
                let yy = &mut y[64 * chunk..64 * chunk + 64];
                for l in 0..32 {
                    yy[l] = d * sc1 as f32 * (q[l] & 0xF) as f32 - dmin * m1 as f32;
                    yy[l + 32] = d * sc2 as f32 * (q[l] >> 4) as f32 - dmin * m2 as f32;
                }
            }
        }
        GgmlType::Q5K => {
            let (d, dmin) = (h(b, 0), h(b, 2));
            let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
            for chunk in 0..4 {
                let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
                let q = &qs[32 * chunk..32 * chunk + 32];
                let yy = &mut y[64 * chunk..64 * chunk + 64];
                for l in 0..32 {
                    let hi1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                    let hi2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                    yy[l] = d * sc1 as f32 * ((q[l] & 0xF) + hi1) as f32 - dmin * m1 as f32;
                    yy[l + 32] = d * sc2 as f32 * ((q[l] >> 4) + hi2) as f32 - dmin * m2 as f32;
                }
            }
        }
        GgmlType::Q6K => {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            let d = h(b, 208);
            for half in 0..2 {
                let (ql, qh, sc) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..]);
                let yy = &mut y[128 * half..128 * half + 128];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    yy[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                    yy[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                    yy[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                    yy[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                }
            }
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8), packed in 12 bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_types_are_named() {
        assert!(GgmlType::from_id(10).unwrap_err().contains("Q2_K"));
        assert!(GgmlType::from_id(99).unwrap_err().contains("type 99"));
    }

    #[test]
    fn partial_blocks_are_refused() {
        assert!(byte_size(GgmlType::Q4_1, 33).is_err());
        assert!(dequantize(GgmlType::Q8_0, &[0u8; 33], 32).is_err());
    }
}
