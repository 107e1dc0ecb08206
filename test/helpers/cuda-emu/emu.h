// Running CUDA kernels on the CPU (tests only): the CUDA C++ that archc's kernels use, as host C++.
// A block runs as blockDim.x fibers on one OS thread, switched only at barriers: a fiber that waits
// on __syncthreads or its warp's barrier yields to the next one, round robin, in thread order. (OS
// threads cost the kernel's scheduler a switch per thread per barrier, which on a loaded machine was
// most of a test's time.) Warps exchange values (shuffles, votes) through per-warp slots between two barriers
// of their threads; a thread that returns early leaves the barriers, as an exited GPU thread does;
// a barrier no thread can pass ends the process (exit 3) rather than hanging.
// Blocks run one after another, so `__shared__` (function-static storage) is the block's own.
// WMMA fragments are held whole by every lane; a warp's loads, products and stores are collective (a
// product computed once a warp, by the first lane to reach it).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <math.h>
#include <memory>
#include <mutex>
#include <stdint.h>
#include <setjmp.h>
#include <type_traits>
#include <ucontext.h>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
// dynamic shared memory: a block's own (blocks run one after another), as much as a Hopper block may ask
namespace emu { constexpr int DYNAMIC_SHARED = 232448; }
#define ARCHC_DYNAMIC_SHARED(type, name) alignas(128) static type name[emu::DYNAMIC_SHARED / sizeof(type)]

struct dim3 { unsigned x = 1, y = 1, z = 1; };
// the running fiber's; the scheduler sets them before resuming it
inline dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace emu {
// A fiber starts once per launch (makecontext) and then runs the block's body in a loop; switches
// are GCC's __builtin_setjmp/__builtin_longjmp, which unlike swapcontext leave the signal mask alone
// (no system call) and unlike _longjmp run no unwinding of pthread cleanup handlers.
struct Fiber {
  ucontext_t start;
  void* at[5];
  std::unique_ptr<char[]> stack;
  bool started = false, done = false;
};
inline void* scheduler[5];
inline std::vector<Fiber> fibers;
inline unsigned current = 0;
inline uint64_t progress = 0;  // barrier arrivals and exits: a round without any is a deadlock
constexpr size_t STACK = 256 << 10;

/** Resumes the context saved at `to` (GCC's __builtin_longjmp may not share a function with its setjmp). */
[[gnu::noinline]] inline void jump(void** to) { __builtin_longjmp(to, 1); }

inline void yield() {
  if (!__builtin_setjmp(fibers[current].at)) jump(scheduler);
}

/** A barrier of `expected` fibers; one that exits leaves it (drop), as arrive_and_drop. */
struct Barrier {
  unsigned expected = 0, arrived = 0, gen = 0;
  void pass() { arrived = 0; gen++; }
  void wait() {
    progress++;
    const unsigned g = gen;
    if (++arrived == expected) return pass();
    while (gen == g) yield();
  }
  void drop() {
    progress++;
    expected--;
    if (arrived && arrived == expected) pass();
  }
};
struct Warp {
  Barrier bar;
  uint64_t slot[32];
  // WMMA products, computed once a warp: every lane holds the same fragments (loaded whole), so the
  // first lane to reach its n-th mma_sync computes it and the others copy it; an entry goes once
  // every lane of the warp has taken it (lanes take them in order)
  uint64_t mma_base = 0, mma_seen[32] = {};
  std::deque<std::pair<std::vector<float>, unsigned>> mma;
};
inline Barrier block_bar;
inline std::vector<Warp> warps;
inline std::mutex atomics;

template <class T> inline T exchange(T v, int from) {
  Warp& w = warps[threadIdx.x / 32];
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.slot[threadIdx.x % 32] = bits;
  w.bar.wait();
  bits = w.slot[from & 31];
  w.bar.wait();
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

inline void (*body)(void*) = nullptr;
inline void* body_arg = nullptr;
/** A fiber's life: the block's body, leaving its barriers, then back to the scheduler until the next block. */
inline void fiber_main() {
  for (;;) {
    body(body_arg);
    warps[threadIdx.x / 32].bar.drop();
    block_bar.drop();
    fibers[current].done = true;
    yield();
  }
}

/** Runs `kernel` over the grid, block after block, each block's threads as fibers. */
template <class F> void launch(dim3 grid, dim3 block, F kernel) {
  gridDim = grid;
  blockDim = block;
  const unsigned n = block.x * block.y * block.z;
  body = [](void* k) { (*static_cast<F*>(k))(); };
  body_arg = &kernel;
  fibers.resize(n);
  for (Fiber& f : fibers) {
    if (!f.stack) f.stack.reset(new char[STACK]);
    getcontext(&f.start);
    f.start.uc_stack = {f.stack.get(), 0, STACK};
    f.start.uc_link = nullptr;
    makecontext(&f.start, fiber_main, 0);
    f.started = false;
  }
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        block_bar = Barrier{n};
        warps.assign((n + 31) / 32, Warp{});
        for (unsigned w = 0; w < warps.size(); w++) warps[w].bar.expected = n - 32 * w < 32 ? n - 32 * w : 32;
        for (Fiber& f : fibers) f.done = false;
        blockIdx = {bx, by, bz};
        for (unsigned live = n; live;) {
          const uint64_t before = progress;
          for (unsigned t = 0; t < n; t++) {
            Fiber& f = fibers[t];
            if (f.done) continue;
            current = t;
            threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            if (!__builtin_setjmp(scheduler)) {
              if (f.started) jump(f.at);
              f.started = true;
              setcontext(&f.start);
            }
            if (f.done) live--;
          }
          if (live && progress == before) { fprintf(stderr, "emu: deadlock: no thread of block (%u, %u, %u) can pass its barrier\n", bx, by, bz); exit(3); }
        }
      }
}
}  // namespace emu

inline void __syncthreads() { emu::block_bar.wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warps[threadIdx.x / 32].bar.wait(); }
template <class T> inline T __shfl_sync(unsigned, T v, int src) { return emu::exchange(v, src); }
template <class T> inline T __shfl_xor_sync(unsigned, T v, int m) { return emu::exchange(v, int(threadIdx.x % 32) ^ m); }
template <class T> inline T __shfl_down_sync(unsigned, T v, int d) { int l = threadIdx.x % 32; return emu::exchange(v, l + d < 32 ? l + d : l); }
inline unsigned __ballot_sync(unsigned, int pred) {
  unsigned bits = 0;
  for (int l = 0; l < 32; l++) bits |= (unsigned)(emu::exchange(pred ? 1 : 0, l) != 0) << l;
  return bits;
}
inline int __any_sync(unsigned m, int pred) { return __ballot_sync(m, pred) != 0; }
inline int __all_sync(unsigned m, int pred) { return __ballot_sync(m, pred) == 0xffffffffu; }
template <class T> inline T atomicAdd(T* p, T v) { std::lock_guard<std::mutex> g(emu::atomics); T old = *p; *p = old + v; return old; }
template <class T> inline T atomicMax(T* p, T v) { std::lock_guard<std::mutex> g(emu::atomics); T old = *p; if (v > old) *p = v; return old; }

// bf16: the top half of an f32, rounded to nearest even
struct __nv_bfloat16 { uint16_t bits; };
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return {uint16_t(u >> 16)};
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.bits; }
inline float __bfloat162float(__nv_bfloat16 b) {
  uint32_t u = uint32_t(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// f16 (the quantised weights' scales): bits to f32, exactly
struct __half { uint16_t bits; };
inline __half __ushort_as_half(unsigned short b) { return {b}; }
inline float __half2float(__half h) {
  const uint32_t e = (h.bits >> 10) & 31u, m = h.bits & 1023u;
  const float mag = e == 31 ? (m ? NAN : INFINITY) : e ? std::ldexp(float(m | 1024u), int(e) - 25) : std::ldexp(float(m), -24);
  return h.bits & 0x8000u ? -mag : mag;
}
struct alignas(16) uint4 { unsigned x, y, z, w; };

// bit casts, and the conversion to int rounding to nearest, ties to even (the default rounding mode)
inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int __float2int_rn(float f) { return int(std::nearbyint(f)); }

namespace nvcuda { namespace wmma {
struct matrix_a {}; struct matrix_b {}; struct accumulator {};
namespace precision { struct tf32 {}; }
/** f32 to tf32 as cvt.rna.tf32.f32: 10 mantissa bits, to nearest, ties away from zero (an f32 whose
 *  low 13 bits are 0); a tf32 fragment holds values so rounded exactly. */
inline float __float_to_tf32(float f) {
  if (!std::isfinite(f)) return f;
  return __uint_as_float((__float_as_uint(f) + 0x1000u) & 0xffffe000u);
}
struct row_major {}; struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  float v[rows * cols];
};
template <class Use, int M, int N, int K, class T, class L> void fill_fragment(fragment<Use, M, N, K, T, L>& f, float x) {
  for (float& e : f.v) e = x;
}
inline float widen(const __nv_bfloat16& b) { return __bfloat162float(b); }
inline float widen(const float& f) { return f; }
template <class Use, int M, int N, int K, class T, class L, class P> void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const P* p, unsigned ld) {
  using Fr = fragment<Use, M, N, K, T, L>;
  for (int r = 0; r < Fr::rows; r++)
    for (int c = 0; c < Fr::cols; c++) {
      float x = widen(std::is_same_v<L, col_major> ? p[c * ld + r] : p[r * ld + c]);
      // a tf32 operand keeps the top 19 bits of what it loads (a kernel rounds first with __float_to_tf32)
      if constexpr (std::is_same_v<T, precision::tf32>) x = __uint_as_float(__float_as_uint(x) & 0xffffe000u);
      f.v[r * Fr::cols + c] = x;
    }
  __syncwarp();
}
template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a, const fragment<matrix_b, M, N, K, T, LB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  emu::Warp& w = emu::warps[threadIdx.x / 32];
  const uint64_t n = w.mma_seen[threadIdx.x % 32]++;
  if (n == w.mma_base + w.mma.size()) {
    std::vector<float> out(M * N);
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        float s = c.v[i * N + j];
        for (int k = 0; k < K; k++) s += a.v[i * K + k] * b.v[k * N + j];
        out[i * N + j] = s;
      }
    w.mma.emplace_back(std::move(out), 0u);
  }
  auto& e = w.mma[n - w.mma_base];
  std::memcpy(d.v, e.first.data(), sizeof(float) * M * N);
  if (++e.second >= w.bar.expected)
    while (!w.mma.empty() && w.mma.front().second >= w.bar.expected) { w.mma.pop_front(); w.mma_base++; }
}
template <int M, int N, int K> void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ld, layout_t layout) {
  __syncwarp();
  if (threadIdx.x % 32 == 0)
    for (int r = 0; r < M; r++)
      for (int c = 0; c < N; c++) (layout == mem_row_major ? p[r * ld + c] : p[c * ld + r]) = f.v[r * N + c];
  __syncwarp();
}
}}  // namespace nvcuda::wmma
// cp.async (cuda_pipeline.h, which a kernel source includes inside its namespace) and the
// tensor-core fragments (templates/mma.cu.hbs) at file scope
#include <cuda_pipeline.h>
#include "warp-mma.h"
