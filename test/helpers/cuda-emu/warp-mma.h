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
  // B[k][n]: lane 4 n + (k % 8) / 2, register 4 + k / 8, half k % 2.
  // This lane's rows of A (g, g + 8) and columns of B (2t, 2t + 1), widened once each.
  const emu::MmaSlot* w = &emu::mma_slots[base];
  const int g = lane / 4, t = lane % 4;
  float wa[2][16], wb[2][16];
  for (int k = 0; k < 16; k++) {
    const int from = (k % 8) / 2, reg = k / 8;
    for (int i = 0; i < 2; i++) {
      const uint32_t ra = w[4 * g + from].r[i + 2 * reg], rb = w[4 * (2 * t + i) + from].r[4 + reg];
      wa[i][k] = k % 2 ? emu::bf16_hi(ra) : emu::bf16_lo(ra);
      wb[i][k] = k % 2 ? emu::bf16_hi(rb) : emu::bf16_lo(rb);
    }
  }
  float out[4];
  for (int e = 0; e < 4; e++) {
    const float* x = wa[e / 2];
    const float* y = wb[e % 2];
    float s = d[e];
    for (int k = 0; k < 16; k++) s += x[k] * y[k];
    out[e] = s;
  }
  __syncwarp();
  for (int e = 0; e < 4; e++) d[e] = out[e];
}
