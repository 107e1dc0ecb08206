// The emulator's driver (tests only): reads one launch from stdin — kernel id, function, grid, the
// ArchcArgs packed by runtime/cuda/abi.ts (its pointers filled in here), the batch, weights, arena
// and state pool — runs it, and writes the arena and pool back to stdout.
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
  auto h = take<int32_t>(8);  // fn, gx, gy, bx, T, S, weights, bytes of the packed ArchcArgs
  auto sizes = take<int64_t>(2);  // arena floats, pool floats
  if (size_t(h[7]) != k->args_bytes) { fprintf(stderr, "emu: %d bytes of arguments, the kernel's ArchcArgs has %zu\n", h[7], k->args_bytes); return 2; }
  // ArchcArgs as runtime/cuda/abi.ts packs it; its nine pointers are then set to this process' memory
  auto args = take<uint8_t>(h[7]);
  std::vector<std::vector<uint8_t>> weights;
  std::vector<const void*> wp;
  for (int i = 0; i < h[6]; i++) {
    auto bytes = take<int64_t>(1)[0];
    weights.push_back(take<uint8_t>(bytes));
  }
  for (auto& w : weights) wp.push_back(w.data());
  const int T = h[4], S = h[5];
  auto tokens = take<int32_t>(T), positions = take<int32_t>(T);
  auto start = take<int32_t>(S), len = take<int32_t>(S), before = take<int32_t>(S), slot = take<int32_t>(S);
  auto arena = take<float>(sizes[0]);
  auto pool = take<float>(sizes[1]);
  const void* ptrs[9] = {arena.data(), pool.data(), wp.data(), tokens.data(), positions.data(), start.data(), len.data(), before.data(), slot.data()};
  std::memcpy(args.data(), ptrs, sizeof ptrs);
  void (*fn)(const void*) = h[0] ? k->gemv : k->main;
  emu::launch({unsigned(h[1]), unsigned(h[2]), 1}, {unsigned(h[3]), 1, 1}, [&] { fn(args.data()); });
  fwrite(arena.data(), 4, arena.size(), stdout);
  fwrite(pool.data(), 4, pool.size(), stdout);
  return 0;
}
