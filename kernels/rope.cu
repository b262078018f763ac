// Rotary position embedding, rotate-half layout; sign = -1 rotates back (the exact backward).
// One thread per rotated pair; `pairs` = rows · head_dim/2.

extern "C" __global__ void rope(float* out, const float* x, const float* cos_t, const float* sin_t,
                                u32 pairs, u32 len, u32 half, float sign) {
    const u32 t = flat_index();
    if (t >= pairs) return;
    const u32 row = t / half, i = t % half, pos = row % len;
    const size_t base = (size_t)row * 2u * half;
    const float c = cos_t[pos * half + i], s = sign * sin_t[pos * half + i];
    const float lo = x[base + i], hi = x[base + i + half];
    out[base + i] = lo * c - hi * s;
    out[base + i + half] = hi * c + lo * s;
}
