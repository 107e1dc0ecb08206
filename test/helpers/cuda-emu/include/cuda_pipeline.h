// The emulator's cuda_pipeline.h (tests only): asynchronous global -> shared copies as a thread
// sees them on a GPU. A copy reads its source when issued and writes its destination only when the
// thread waits on its group (__pipeline_wait_prior), so a kernel that reads shared memory before
// the wait (or another thread's copy before the barrier after it) reads stale bytes, as it may on
// hardware. Groups close at __pipeline_commit; copies a thread leaves unwaited when its block ends
// are dropped (the next block's shared memory is not theirs).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

namespace emu {
struct PendingCopy {
  void* dst;
  size_t size;
  unsigned char bytes[16];
};
struct ThreadPipeline {
  unsigned bx = ~0u, by = ~0u, bz = ~0u;
  std::vector<PendingCopy> open;               // issued since the last commit
  std::deque<std::vector<PendingCopy>> groups;  // committed, oldest first
};
inline std::vector<ThreadPipeline> pipelines;
/** The running thread's pipeline, emptied when it is first used in a new block. */
inline ThreadPipeline& pipeline() {
  if (pipelines.size() <= threadIdx.x) pipelines.resize(threadIdx.x + 1);
  ThreadPipeline& p = pipelines[threadIdx.x];
  if (p.bx != blockIdx.x || p.by != blockIdx.y || p.bz != blockIdx.z) p = ThreadPipeline{blockIdx.x, blockIdx.y, blockIdx.z};
  return p;
}
}  // namespace emu

/** Copies `size` bytes (4, 8 or 16) from global `src` to shared `dst`, the last `zfill` of them zeros
 *  (not read). */
inline void __pipeline_memcpy_async(void* dst, const void* src, size_t size, size_t zfill = 0) {
  if ((size != 4 && size != 8 && size != 16) || zfill > size || reinterpret_cast<uintptr_t>(dst) % size || (zfill < size && reinterpret_cast<uintptr_t>(src) % size)) {
    fprintf(stderr, "emu: __pipeline_memcpy_async of %zu bytes (%zu zero) from %p to %p: sizes are 4, 8 or 16, both addresses aligned to it\n", size, zfill, src, dst);
    exit(4);
  }
  emu::PendingCopy c{dst, size, {}};
  std::memcpy(c.bytes, src, size - zfill);
  emu::pipeline().open.push_back(c);
}
inline void __pipeline_commit() {
  emu::ThreadPipeline& p = emu::pipeline();
  p.groups.push_back(std::move(p.open));
  p.open.clear();
}
/** Completes every committed group but the newest `prior`. */
inline void __pipeline_wait_prior(size_t prior) {
  emu::ThreadPipeline& p = emu::pipeline();
  while (p.groups.size() > prior) {
    for (const emu::PendingCopy& c : p.groups.front()) std::memcpy(c.dst, c.bytes, c.size);
    p.groups.pop_front();
  }
}
