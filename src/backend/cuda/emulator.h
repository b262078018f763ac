// Host emulation of the CUDA features that kernels/*.cu use, so that the CUDA backend (its
// launches and the kernels' own source) runs and is tested on machines without a GPU.
//
// Blocks run one after another; the threads of a block run as fibers on one OS thread and switch
// only at __syncthreads and warp shuffles. On x86-64 a switch is six pushes, a stack-pointer
// exchange and six pops (emu_switch below): glibc's _longjmp also demangles pointers and
// unwinds cancellation handlers, which was a third of the emulator's time. Elsewhere a fiber is
// started once with ucontext and then switched with _setjmp/_longjmp, which, unlike
// swapcontext, make no system call. Each fiber runs the kernel body again for each block.
// Running each thread as far as it can go
// before the next one starts is the harshest schedule for a missing barrier: a read of shared
// or global memory that another thread writes before the next barrier sees the old value. A
// barrier that not every thread reaches, or a shuffle after lanes of its warp have exited,
// stops the launch with an error instead of hanging.

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <ucontext.h>

#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct emu_dim3 {
    unsigned x, y, z;
};

namespace emu {

enum State { READY, AT_BARRIER, AT_WARP, DONE };

#if defined(__x86_64__)
#define EMU_ASM_SWITCH 1
// Saves the callee-saved registers on the current stack and its pointer in *save, then loads
// `load` and returns into the fiber (or scheduler) that was saved there.
extern "C" __attribute__((visibility("hidden"))) void emu_switch(void** save, void* load);
asm(".text\n"
    ".globl emu_switch\n"
    ".hidden emu_switch\n"
    ".type emu_switch, @function\n"
    "emu_switch:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size emu_switch, .-emu_switch\n");
#endif

struct Fiber {
#ifdef EMU_ASM_SWITCH
    void* sp;
#else
    ucontext_t start;
    jmp_buf resume;
#endif
    bool started;
    emu_dim3 idx;
    unsigned linear;
    State state;
    unsigned shuffles;  // shuffles this thread has done in this block
};

constexpr unsigned MAX_THREADS = 1024;
constexpr size_t STACK_BYTES = 64 * 1024;

struct Launch {
    emu_dim3 grid, block, block_idx;
    Fiber fibers[MAX_THREADS];
    unsigned count;
    Fiber* current;
#ifdef EMU_ASM_SWITCH
    void* scheduler_sp;
#else
    ucontext_t scheduler_start;
    jmp_buf scheduler;
#endif
    // One shuffle slot per thread, in two sets used by alternate shuffles: a lane that has read
    // shuffle k's value and writes shuffle k+1's cannot overwrite a value of shuffle k that a
    // later lane has yet to read, and shuffle k+2 waits until every lane has passed k+1.
    float lanes[2][MAX_THREADS];
    void (*body)(void**);
    void** params;
    char* stacks;
    const char* error;
};

static Launch launch_state;
static Launch* const L = &launch_state;

inline void yield(State s) {
    Fiber* f = L->current;
    f->state = s;
#ifdef EMU_ASM_SWITCH
    emu_switch(&f->sp, L->scheduler_sp);
#else
    if (_setjmp(f->resume) == 0) _longjmp(L->scheduler, 1);
#endif
}

// A fiber never returns: after each block's body it waits for the next block.
inline void fiber_main() {
    for (;;) {
        L->body(L->params);
        yield(DONE);
    }
}

#ifdef EMU_ASM_SWITCH
inline void resume(Fiber& f) {
    L->current = &f;
    if (!f.started) {
        f.started = true;
        // A fresh stack whose first switch "returns" into fiber_main with the ABI's alignment
        // (rsp = 8 mod 16 on entry), below a null return address it never uses.
        void** sp = reinterpret_cast<void**>(L->stacks + (f.linear + 1) * STACK_BYTES);
        *--sp = nullptr;
        *--sp = reinterpret_cast<void*>(+[] { fiber_main(); });
        for (int r = 0; r < 6; r++) *--sp = nullptr;  // rbp, rbx, r12-r15
        f.sp = sp;
    }
    emu_switch(&L->scheduler_sp, f.sp);
}
#else
inline void resume(Fiber& f) {
    L->current = &f;
    if (_setjmp(L->scheduler) != 0) return;
    if (f.started) _longjmp(f.resume, 1);
    f.started = true;
    getcontext(&f.start);
    f.start.uc_stack.ss_sp = L->stacks + f.linear * STACK_BYTES;
    f.start.uc_stack.ss_size = STACK_BYTES;
    f.start.uc_link = nullptr;
    makecontext(&f.start, fiber_main, 0);
    swapcontext(&L->scheduler_start, &f.start);
}
#endif

// Frees fibers waiting at a warp shuffle whose whole warp has arrived, else a block barrier
// that every live thread has reached. Returns false (with `error`) where nothing can move.
inline bool release() {
    bool any = false;
    for (unsigned w = 0; w * 32 < L->count; w++) {
        unsigned end = w * 32 + 32 < L->count ? w * 32 + 32 : L->count;
        unsigned waiting = 0, done = 0;
        for (unsigned t = w * 32; t < end; t++) {
            waiting += L->fibers[t].state == AT_WARP;
            done += L->fibers[t].state == DONE;
        }
        if (waiting == 0) continue;
        if (end - w * 32 != 32 || done > 0) {
            L->error = "a warp shuffle ran with lanes of its warp inactive (exited or a partial warp)";
            return false;
        }
        if (waiting == 32) {
            for (unsigned t = w * 32; t < end; t++) L->fibers[t].state = READY;
            any = true;
        }
    }
    if (any) return true;
    unsigned at_barrier = 0, live = 0;
    for (unsigned t = 0; t < L->count; t++) {
        live += L->fibers[t].state != DONE;
        at_barrier += L->fibers[t].state == AT_BARRIER;
    }
    if (live > 0 && at_barrier == live) {
        for (unsigned t = 0; t < L->count; t++)
            if (L->fibers[t].state == AT_BARRIER) L->fibers[t].state = READY;
        return true;
    }
    L->error = "deadlock: threads wait at __syncthreads and at a warp shuffle at once (divergent barrier)";
    return false;
}

inline bool run_block() {
    for (unsigned t = 0; t < L->count; t++) {
        Fiber& f = L->fibers[t];
        f.linear = t;
        f.idx = {t % L->block.x, t / L->block.x % L->block.y, t / (L->block.x * L->block.y)};
        f.state = READY;
        f.shuffles = 0;
    }
    for (;;) {
        bool live = false;
        for (unsigned t = 0; t < L->count; t++) {
            Fiber& f = L->fibers[t];
            if (f.state != READY) {
                live |= f.state != DONE;
                continue;
            }
            resume(f);
            live |= f.state != DONE;
        }
        if (!live) return true;
        if (!release()) return false;
    }
}

// geometry: grid x, y, z, block x, y, z. Returns 0, or 1 with a message in `err`.
inline int launch(void (*body)(void**), void** params, const unsigned* geometry, char* err,
                  size_t err_len) {
    L->grid = {geometry[0], geometry[1], geometry[2]};
    L->block = {geometry[3], geometry[4], geometry[5]};
    L->count = L->block.x * L->block.y * L->block.z;
    if (L->count == 0 || L->count > MAX_THREADS) {
        snprintf(err, err_len, "block of %u threads (1 to %u)", L->count, MAX_THREADS);
        return 1;
    }
    if (!L->stacks) L->stacks = static_cast<char*>(malloc(MAX_THREADS * STACK_BYTES));
    if (!L->stacks) {
        snprintf(err, err_len, "no memory for the emulated threads' stacks");
        return 1;
    }
    L->body = body;
    L->params = params;
    L->error = nullptr;
    for (unsigned z = 0; z < L->grid.z; z++)
        for (unsigned y = 0; y < L->grid.y; y++)
            for (unsigned x = 0; x < L->grid.x; x++) {
                L->block_idx = {x, y, z};
                if (!run_block() || L->error) {
                    snprintf(err, err_len, "block (%u, %u, %u): %s", x, y, z, L->error);
                    return 1;
                }
            }
    return 0;
}

// Calls `f` with its arguments read from `params` (CUDA's kernel-parameter convention: one
// pointer per argument, to a value of the parameter's type).
template <typename... A, size_t... I>
void call(void (*f)(A...), void** params, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<A>*>(params[I])...);
}

template <typename... A>
void invoke(void (*f)(A...), void** params) {
    call(f, params, std::index_sequence_for<A...>{});
}

}  // namespace emu

#define threadIdx (emu::L->current->idx)
#define blockIdx (emu::L->block_idx)
#define blockDim (emu::L->block)
#define gridDim (emu::L->grid)

inline void __syncthreads() { emu::yield(emu::AT_BARRIER); }

inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
    if (mask != 0xffffffffu) emu::L->error = "a shuffle with a partial lane mask (not emulated)";
    emu::Fiber* f = emu::L->current;
    float* lanes = emu::L->lanes[f->shuffles++ & 1u];
    const unsigned me = f->linear;
    lanes[me] = v;
    emu::yield(emu::AT_WARP);  // every lane has written its value
    return lanes[(me & ~31u) | ((me ^ static_cast<unsigned>(lane_mask)) & 31u)];
}

inline float __expf(float x) { return expf(x); }
inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// One exported entry per kernel: `gradlens_emu_NAME(params, geometry, err, err_len)`.
#define EMU_KERNEL(name)                                                                     \
    extern "C" __attribute__((visibility("default"))) int gradlens_emu_##name(               \
        void** params, const unsigned* geometry, char* err, size_t err_len) {                \
        return emu::launch([](void** p) { emu::invoke(name, p); }, params, geometry, err,    \
                           err_len);                                                         \
    }
