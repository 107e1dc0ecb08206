// Random weights for the GPU script, made on the device: element i of a buffer is
// around + scale · (u - 0.5) with u uniform in [0, 1) from a hash of (seed, i).
#include <cuda_bf16.h>

static __device__ __forceinline__ float uniform(unsigned seed, unsigned long long i) {
  unsigned long long x = i * 0x9E3779B97F4A7C15ull + seed * 0xBF58476D1CE4E5B9ull + 1;
  x ^= x >> 31; x *= 0x94D049BB133111EBull; x ^= x >> 29;
  return (float)(x >> 40) * (1.0f / 16777216.0f);
}

extern "C" __global__ void archc_fill_bf16(__nv_bfloat16* p, long long n, unsigned seed, float around, float scale) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    p[i] = __float2bfloat16(around + scale * (uniform(seed, i) - 0.5f));
}

extern "C" __global__ void archc_fill_f32(float* p, long long n, unsigned seed, float around, float scale) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    p[i] = around + scale * (uniform(seed, i) - 0.5f);
}
