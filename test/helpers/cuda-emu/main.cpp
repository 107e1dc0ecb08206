// The emulator's driver (tests only): reads one kernel's launches from stdin — kernel id, each
// launch's function, grid and dynamic shared bytes, the ArchcArgs packed by runtime/cuda/abi.ts (its
// pointers filled in here), the batch, weights, arena, state pool and the workspace's size — runs
// them in order, and writes the arena and pool back to stdout.
// The kernels are compiled in parts generated per set of kernels (test/helpers/cuda-emu.ts).
#include "emu.h"
#include <cstdio>
#include <string>

#include "launchers.inc"  // struct Launcher and LAUNCHERS, generated per set of kernels

template <class T> static std::vector<T> take(size_t n) {
  std::vector<T> v(n);
  if (n && fread(v.data(), sizeof(T), n, stdin) != n) { fprintf(stderr, "emu: short input\n"); exit(2); }
  return v;
}

int main(int argc, char** argv) {
  if (argc != 2) { fprintf(stderr, "usage: emu <kernel id> < launch\n"); return 2; }
  const Launcher* k = nullptr;
  for (const Launcher* l : LAUNCHERS) if (std::string(l->id) == argv[1]) k = l;
  if (!k) { fprintf(stderr, "emu: no kernel %s\n", argv[1]); return 2; }
  auto h = take<int32_t>(5);  // launches, T, S, weights, bytes of the packed ArchcArgs
  struct L { int32_t fn, gx, gy, bx, shared; };
  std::vector<L> launches(h[0]);
  for (L& l : launches) {
    auto v = take<int32_t>(5);
    l = {v[0], v[1], v[2], v[3], v[4]};
    if (l.fn < 0 || l.fn >= k->count) { fprintf(stderr, "emu: kernel %s has no function %d\n", k->id, l.fn); return 2; }
    if (l.shared > emu::DYNAMIC_SHARED) { fprintf(stderr, "emu: %s asks %d bytes of dynamic shared memory; a block has %d\n", k->names[l.fn], l.shared, emu::DYNAMIC_SHARED); return 2; }
  }
  auto sizes = take<int64_t>(3);  // arena floats, pool floats, workspace floats
  if (size_t(h[4]) != k->args_bytes) { fprintf(stderr, "emu: %d bytes of arguments, the kernel's ArchcArgs has %zu\n", h[4], k->args_bytes); return 2; }
  // ArchcArgs as runtime/cuda/abi.ts packs it; its ten pointers are then set to this process' memory
  auto args = take<uint8_t>(h[4]);
  std::vector<std::vector<uint8_t>> weights;
  std::vector<const void*> wp;
  for (int i = 0; i < h[3]; i++) {
    auto bytes = take<int64_t>(1)[0];
    weights.push_back(take<uint8_t>(bytes));
  }
  for (auto& w : weights) wp.push_back(w.data());
  const int T = h[1], S = h[2];
  auto tokens = take<int32_t>(T), positions = take<int32_t>(T);
  auto start = take<int32_t>(S), len = take<int32_t>(S), before = take<int32_t>(S), slot = take<int32_t>(S);
  auto arena = take<float>(sizes[0]);
  auto pool = take<float>(sizes[1]);
  // the workspace starts as NaN: a kernel that reads what no phase wrote shows it
  const size_t scratch_bytes = (size_t(sizes[2]) * 4 + 255) / 256 * 256;
  float* scratch = static_cast<float*>(std::aligned_alloc(256, scratch_bytes ? scratch_bytes : 256));
  for (size_t i = 0; i < size_t(sizes[2]); i++) scratch[i] = std::nanf("");
  const void* ptrs[10] = {arena.data(), pool.data(), wp.data(), tokens.data(), positions.data(), start.data(), len.data(), before.data(), slot.data(), scratch};
  std::memcpy(args.data(), ptrs, sizeof ptrs);
  for (const L& l : launches) {
    void (*fn)(const void*) = k->fns[l.fn];
    emu::launch({unsigned(l.gx), unsigned(l.gy), 1}, {unsigned(l.bx), 1, 1}, [&] { fn(args.data()); });
  }
  std::free(scratch);
  fwrite(arena.data(), 4, arena.size(), stdout);
  fwrite(pool.data(), 4, pool.size(), stdout);
  return 0;
}
