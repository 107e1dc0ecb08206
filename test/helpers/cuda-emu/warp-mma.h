// The emulator's tensor-core fragments (tests only): what codegen/cuda/templates/mma.cu.hbs does in
// PTX, as host C++ with the same lane layouts. Each is collective over the warp: its lanes publish
// their part (an address, or their fragment registers) in per-thread slots, meet at the warp's
// barrier, read what they own, and meet again before the slots are reused. mma sums in f32 over k in
// order, from the bf16 values (exact products).
#pragma once

namespace emu {
struct MmaSlot {
  const void* p;
  uint32_t r[6];
};
inline std::vector<MmaSlot> mma_slots;
inline MmaSlot& mma_slot(unsigned t) {
  if (mma_slots.size() < blockDim.x) mma_slots.resize(blockDim.x);
  return mma_slots[t];
}
inline float bf16_lo(uint32_t r) { return __bfloat162float(__nv_bfloat16{uint16_t(r & 0xffffu)}); }
inline float bf16_hi(uint32_t r) { return __bfloat162float(__nv_bfloat16{uint16_t(r >> 16)}); }
/** ldmatrix x4: each lane's row address published; register i from matrix i. */
inline void ldsm_x4(uint32_t (&r)[4], const __nv_bfloat16* p, bool trans) {
  const unsigned lane = threadIdx.x % 32, base = threadIdx.x - lane;
  mma_slot(threadIdx.x).p = p;
  __syncwarp();
  for (int i = 0; i < 4; i++) {
    uint16_t lo, hi;
    if (!trans) {
      const uint16_t* row = static_cast<const uint16_t*>(mma_slot(base + 8 * i + lane / 4).p);
      lo = row[2 * (lane % 4)], hi = row[2 * (lane % 4) + 1];
    } else {
      lo = static_cast<const uint16_t*>(mma_slot(base + 8 * i + 2 * (lane % 4)).p)[lane / 4];
      hi = static_cast<const uint16_t*>(mma_slot(base + 8 * i + 2 * (lane % 4) + 1).p)[lane / 4];
    }
    r[i] = uint32_t(lo) | uint32_t(hi) << 16;
  }
  __syncwarp();
}
}  // namespace emu

inline void archc_ldsm_x4(uint32_t (&r)[4], const __nv_bfloat16* p) { emu::ldsm_x4(r, p, false); }
inline void archc_ldsm_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) { emu::ldsm_x4(r, p, true); }
/** mma.m16n8k16 (bf16 in, f32 accumulate): every lane's A and B registers published, each lane sums
 *  its own four outputs. */
inline void archc_mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const unsigned lane = threadIdx.x % 32, base = threadIdx.x - lane;
  emu::MmaSlot& me = emu::mma_slot(threadIdx.x);
  for (int i = 0; i < 4; i++) me.r[i] = a[i];
  me.r[4] = b0, me.r[5] = b1;
  __syncwarp();
  // A[m][k]: lane 4 (m % 8) + (k % 8) / 2, register (m / 8) + 2 (k / 8), half k % 2;
  // B[k][n]: lane 4 n + (k % 8) / 2, register 4 + k / 8, half k % 2
  auto A = [&](int m, int k) { const uint32_t r = emu::mma_slot(base + 4 * (m % 8) + (k % 8) / 2).r[m / 8 + 2 * (k / 8)]; return k % 2 ? emu::bf16_hi(r) : emu::bf16_lo(r); };
  auto B = [&](int k, int n) { const uint32_t r = emu::mma_slot(base + 4 * n + (k % 8) / 2).r[4 + k / 8]; return k % 2 ? emu::bf16_hi(r) : emu::bf16_lo(r); };
  const int g = lane / 4, t = lane % 4;
  float out[4];
  for (int e = 0; e < 4; e++) {
    const int m = g + 8 * (e / 2), n = 2 * t + e % 2;
    float s = d[e];
    for (int k = 0; k < 16; k++) s += A(m, k) * B(k, n);
    out[e] = s;
  }
  __syncwarp();
  for (int e = 0; e < 4; e++) d[e] = out[e];
}
