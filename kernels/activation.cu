// Pointwise activations: forward, exact backward, guided backprop, and DeepLIFT's rescale rule.
// Codes: 0 GELU (erf), 1 GELU (tanh), 2 SiLU, 3 tanh, 4 ReLU.

#define SQRT_2_OVER_PI 0.7978846f
#define INV_SQRT_2 0.70710678f
#define INV_SQRT_2PI 0.3989423f

__device__ __forceinline__ float tanh_c(float v) {
    const float c = fminf(fmaxf(v, -15.0f), 15.0f);
    return 1.0f - 2.0f / (__expf(2.0f * c) + 1.0f);
}

__device__ __forceinline__ float sigmoid(float v) {
    return 1.0f / (1.0f + exp_c(-v));
}

__device__ float act(u32 code, float v) {
    switch (code) {
        case 0: return 0.5f * v * (1.0f + erff(v * INV_SQRT_2));
        case 1: return 0.5f * v * (1.0f + tanh_c(SQRT_2_OVER_PI * (v + 0.044715f * v * v * v)));
        case 2: return v * sigmoid(v);
        case 3: return tanh_c(v);
        default: return fmaxf(v, 0.0f);
    }
}

__device__ float act_derivative(u32 code, float v) {
    switch (code) {
        case 0:
            return 0.5f * (1.0f + erff(v * INV_SQRT_2)) + v * INV_SQRT_2PI * exp_c(-0.5f * v * v);
        case 1: {
            const float t = tanh_c(SQRT_2_OVER_PI * (v + 0.044715f * v * v * v));
            return 0.5f * (1.0f + t)
                + 0.5f * v * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * v * v);
        }
        case 2: {
            const float s = sigmoid(v);
            return s * (1.0f + v * (1.0f - s));
        }
        case 3: {
            const float t = tanh_c(v);
            return 1.0f - t * t;
        }
        default: return v > 0.0f ? 1.0f : 0.0f;
    }
}

extern "C" __global__ void act_forward(float* out, const float* x, u32 n, u32 code) {
    const u32 i = flat_index();
    if (i < n) out[i] = act(code, x[i]);
}

extern "C" __global__ void act_backward(float* out, const float* x, const float* g, u32 n, u32 code) {
    const u32 i = flat_index();
    if (i < n) out[i] = g[i] * act_derivative(code, x[i]);
}

// Guided backprop: only positive gradients pass, through only positive slopes.
extern "C" __global__ void guided(float* out, const float* x, const float* g, u32 n, u32 code) {
    const u32 i = flat_index();
    if (i < n) out[i] = fmaxf(g[i], 0.0f) * fmaxf(act_derivative(code, x[i]), 0.0f);
}

// DeepLIFT rescale over a [inputs; references] batch of 2h values: g ⊙ Δy/Δx on the input half
// (the slope at the midpoint where |Δx| < 1e-6), 0 on the reference half.
extern "C" __global__ void rescale_halves(float* out, const float* x, const float* g, const float* y,
                                          u32 h, u32 code) {
    const u32 i = flat_index();
    if (i >= h) return;
    const float dx = x[i] - x[i + h];
    const float m = fabsf(dx) >= 1e-6f ? (y[i] - y[i + h]) / dx
                                       : act_derivative(code, 0.5f * (x[i] + x[i + h]));
    out[i] = g[i] * m;
    out[i + h] = 0.0f;
}
