// Data movement: head permutes, grouped-query repeats, KV concatenation, embedding gathers,
// position selects, and the masked-mean pooling pair. One thread per output element.

// [a, b, c, d] -> [a, c, b, d].
extern "C" __global__ void permute_0213(float* out, const float* x, u32 n, u32 b, u32 c, u32 d) {
    const u32 i = flat_index();
    if (i >= n) return;
    const u32 j = i % d, r = i / d;
    const u32 ib = r % b, ic = (r / b) % c, ia = r / (b * c);
    out[i] = x[((ia * b + ib) * c + ic) * d + j];
}

// [b, h, l, d] -> [b, h·rep, l, d]; head = l·d.
extern "C" __global__ void repeat_heads(float* out, const float* x, u32 n, u32 h, u32 head, u32 rep) {
    const u32 i = flat_index();
    if (i >= n) return;
    const u32 r = i / head, ib = r / (h * rep), oh = r % (h * rep);
    out[i] = x[(ib * h + oh / rep) * head + i % head];
}

// Backward of repeat_heads: each group of rep heads summed.
extern "C" __global__ void sum_head_groups(float* out, const float* g, u32 n, u32 h, u32 head, u32 rep) {
    const u32 i = flat_index();
    if (i >= n) return;
    const u32 r = i / head, ib = r / h, kh = r % h;
    float s = 0.0f;
    for (u32 j = 0; j < rep; j++) s += g[(ib * h * rep + kh * rep + j) * head + i % head];
    out[i] = s;
}

// [.., t1, d] ++ [.., t2, d] along the sequence; ta = t1·d, tb = t2·d.
extern "C" __global__ void concat_seq(float* out, const float* a, const float* b, u32 n, u32 ta, u32 tb) {
    const u32 i = flat_index();
    if (i >= n) return;
    const u32 head = i / (ta + tb), within = i % (ta + tb);
    out[i] = within < ta ? a[head * ta + within] : b[head * tb + within - ta];
}

// Rows `ids` of a table (ids checked on the host).
extern "C" __global__ void gather_rows(float* out, const float* table, const u32* ids, u32 n, u32 cols) {
    const u32 i = flat_index();
    if (i >= n) return;
    out[i] = table[(size_t)ids[i / cols] * cols + i % cols];
}

// [b, l, d] -> [b, d] at position pos.
extern "C" __global__ void select_position(float* out, const float* x, u32 n, u32 l, u32 d, u32 pos) {
    const u32 i = flat_index();
    if (i >= n) return;
    out[i] = x[((i / d) * l + pos) * d + i % d];
}

// Backward of select_position: [b, d] into zeros [b, l, d].
extern "C" __global__ void scatter_position(float* out, const float* g, u32 n, u32 l, u32 d, u32 pos) {
    const u32 i = flat_index();
    if (i >= n) return;
    const u32 r = i / d;
    out[i] = r % l == pos ? g[(r / l) * d + i % d] : 0.0f;
}

// Σ_l w_l x[b, l, :].
extern "C" __global__ void weighted_seq_sum(float* out, const float* x, const float* w, u32 n, u32 l, u32 d) {
    const u32 i = flat_index();
    if (i >= n) return;
    const u32 ib = i / d;
    float s = 0.0f;
    for (u32 il = 0; il < l; il++) s += w[il] * x[(ib * l + il) * d + i % d];
    out[i] = s;
}

// Backward of weighted_seq_sum: out[b, l, :] = w_l g[b, :].
extern "C" __global__ void broadcast_seq(float* out, const float* g, const float* w, u32 n, u32 l, u32 d) {
    const u32 i = flat_index();
    if (i >= n) return;
    const u32 r = i / d;
    out[i] = w[r % l] * g[(r / l) * d + i % d];
}
