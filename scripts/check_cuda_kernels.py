#!/usr/bin/env python3
"""Compiles every kernels/*.cu with NVRTC to SASS for each architecture, exactly as the CUDA
backend will (common.cuh prepended), and fails on any error or warning.

Usage: check_cuda_kernels.py LIBNVRTC [ARCH ...]   (default architectures: sm_80 sm_90)
"""
import ctypes
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPTIONS = ["--std=c++17", "--fmad=true"]


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    nvrtc = ctypes.CDLL(sys.argv[1])
    archs = sys.argv[2:] or ["sm_80", "sm_90"]
    nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
    major, minor = ctypes.c_int(), ctypes.c_int()
    nvrtc.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    print(f"NVRTC {major.value}.{minor.value}: {sys.argv[1]}")

    prelude = (ROOT / "kernels/common.cuh").read_text()
    files = sorted((ROOT / "kernels").glob("*.cu"))
    if not files:
        print("no kernels/*.cu found", file=sys.stderr)
        return 1
    failures = 0
    for path in files:
        source = (prelude + "\n#line 1\n" + path.read_text()).encode()
        for arch in archs:
            prog = ctypes.c_void_p()
            check(nvrtc, nvrtc.nvrtcCreateProgram(
                ctypes.byref(prog), source, path.name.encode(), 0, None, None))
            opts = [o.encode() for o in OPTIONS + [f"--gpu-architecture={arch}"]]
            argv = (ctypes.c_char_p * len(opts))(*opts)
            status = nvrtc.nvrtcCompileProgram(prog, len(opts), argv)
            size = ctypes.c_size_t()
            nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            nvrtc.nvrtcGetProgramLog(prog, log)
            text = log.value.decode(errors="replace").strip()
            cubin = ctypes.c_size_t()
            if status == 0:
                nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(cubin))
            nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
            if status != 0 or "warning" in text.lower() or "error" in text.lower():
                failures += 1
                reason = nvrtc.nvrtcGetErrorString(status).decode()
                print(f"FAIL {path.name} {arch}: {reason}\n{text}")
            else:
                print(f"ok   {path.name} {arch}: {cubin.value} bytes of SASS")
    if failures:
        print(f"{failures} kernel compilations failed", file=sys.stderr)
        return 1
    return 0


def check(nvrtc, status: int) -> None:
    if status != 0:
        raise SystemExit(f"NVRTC: {nvrtc.nvrtcGetErrorString(status).decode()}")


if __name__ == "__main__":
    sys.exit(main())
