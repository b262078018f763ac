//! The CUDA kernel files, embedded in the binary and compiled by NVRTC on first use, each with
//! the shared prelude (`kernels/common.cuh`) in front: exactly what
//! `scripts/check-cuda-kernels.sh` compiles in CI.

pub const PRELUDE: &str = include_str!("../../../kernels/common.cuh");

pub const FILES: &[(&str, &str)] = &[
    (
        "activation.cu",
        include_str!("../../../kernels/activation.cu"),
    ),
    (
        "attention.cu",
        include_str!("../../../kernels/attention.cu"),
    ),
    ("cosine.cu", include_str!("../../../kernels/cosine.cu")),
    (
        "elementwise.cu",
        include_str!("../../../kernels/elementwise.cu"),
    ),
    ("layout.cu", include_str!("../../../kernels/layout.cu")),
    ("limits.cu", include_str!("../../../kernels/limits.cu")),
    ("matmul.cu", include_str!("../../../kernels/matmul.cu")),
    ("norm.cu", include_str!("../../../kernels/norm.cu")),
    ("rope.cu", include_str!("../../../kernels/rope.cu")),
    ("rules.cu", include_str!("../../../kernels/rules.cu")),
    ("softmax.cu", include_str!("../../../kernels/softmax.cu")),
    (
        "stored_weight.cu",
        include_str!("../../../kernels/stored_weight.cu"),
    ),
];

pub fn source(file: &str) -> Option<&'static str> {
    FILES.iter().find(|(f, _)| *f == file).map(|(_, s)| *s)
}
