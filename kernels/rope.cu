// Rotary position embedding, rotate-half layout; sign = -1 rotates back (the exact backward).
// The first 2·rot dimensions of each head rotate (rot = the tables' width: head/2, or fewer for a
// partial rotary factor), the rest pass through. One thread per pair of a head's values:
// `pairs` = rows · head/2, `head` = head_dim / 2.

extern "C" __global__ void rope(float* out, const float* x, const float* cos_t, const float* sin_t,
                                u32 pairs, u32 len, u32 head, u32 rot, float sign) {
    const u32 t = flat_index();
    if (t >= pairs) return;
    const u32 row = t / head, i = t % head, pos = row % len;
    const size_t base = (size_t)row * 2u * head;
    if (i >= rot) {  // two values of the part that does not rotate
        const size_t at = base + 2u * rot + 2u * (i - rot);
        out[at] = x[at];
        out[at + 1] = x[at + 1];
        return;
    }
    const float c = cos_t[pos * rot + i], s = sign * sin_t[pos * rot + i];
    const float lo = x[base + i], hi = x[base + i + rot];
    out[base + i] = lo * c - hi * s;
    out[base + i + rot] = hi * c + lo * s;
}
