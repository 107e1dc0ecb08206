// Weights for the GPU script, made on the device: element i of a buffer is
// around + scale · (u - 0.5), u uniform in [0, 1) from a 32-bit hash of (seed, i), rounded once per
// operation (no fused multiply-add) so that bench/gpu/prepare.ts `fillValues` makes the same values
// on the host, bit for bit (the narrow model's CPU reference runs on them).
#include <cuda_bf16.h>

static __device__ __forceinline__ float fill_value(unsigned seed, unsigned i, float around, float scale) {
  unsigned h = (i * 0x9E3779B9u) ^ (seed * 0x85EBCA6Bu);
  h ^= h >> 16; h *= 0x7FEB352Du; h ^= h >> 15; h *= 0x846CA68Bu; h ^= h >> 16;
  float u = (float)(h >> 8) * (1.0f / 16777216.0f);
  return __fadd_rn(around, __fmul_rn(scale, u - 0.5f));
}

extern "C" __global__ void archc_fill_bf16(__nv_bfloat16* p, long long n, unsigned seed, float around, float scale) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    p[i] = __float2bfloat16_rn(fill_value(seed, (unsigned)i, around, scale));
}

extern "C" __global__ void archc_fill_f32(float* p, long long n, unsigned seed, float around, float scale) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    p[i] = fill_value(seed, (unsigned)i, around, scale);
}
