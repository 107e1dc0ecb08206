#!/usr/bin/env bash
# Fetches llama.cpp's source from the node-llama-cpp npm package (its tarball ships the source as a
# git bundle, llama/gitRelease.bundle) into a cache outside the repository, builds the CPU tools the
# side-by-side bench needs (llama-bench, llama-quantize) and bench/llama/logits.cpp against libllama.
#
#   bench/llama/build.sh            # cache: $ARCHC_BENCH_CACHE or ~/.cache/archc-bench
#   NODE_LLAMA_CPP_VERSION=3.22.1 bench/llama/build.sh
#
# CPU only, Release, the build machine's instruction set (-DGGML_NATIVE=ON, or its AVX-512 set without
# AMX where the CPU lists AMX: see below; build where you time), -j2. Nothing is added to
# package.json; rerunning rebuilds only what changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${ARCHC_BENCH_CACHE:-$HOME/.cache/archc-bench}
version=${NODE_LLAMA_CPP_VERSION:-3.22.1}
jobs=${JOBS:-2}
mkdir -p "$cache"
cd "$cache"

if [ ! -d llama.cpp/.git ]; then
  tgz=node-llama-cpp-$version.tgz
  [ -f "$tgz" ] || npm pack "node-llama-cpp@$version" >/dev/null
  rm -rf package llama.cpp.tmp
  tar xzf "$tgz" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
  git clone -q package/llama/gitRelease.bundle llama.cpp.tmp
  mv llama.cpp.tmp llama.cpp
  echo "llama.cpp from node-llama-cpp $version: $(cat package/llama/llama.cpp.info.json | tr -d '\n ')"
fi
src=$cache/llama.cpp
# The instruction set: -march=native, except where the CPU lists AMX. There -march=native compiles
# ggml's AMX kernels, and a virtual machine whose CPUID lists AMX without running it (one seen: its
# kernel grants ARCH_REQ_XCOMP_PERM, then ldtilecfg faults) crashes in the first product; so AMX is
# left out and the AVX-512 extensions the CPU lists are named one by one (llama.cpp's Q4_0 / Q8_0
# decode products are its AVX-512 / AVX2 kernels either way; AMX only takes its larger batches).
isa=(-DGGML_NATIVE=ON)
if grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
  has() { grep -qw "$1" /proc/cpuinfo; }
  isa=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
  has avx512f && isa+=(-DGGML_AVX512=ON)
  has avx512vbmi && isa+=(-DGGML_AVX512_VBMI=ON)
  has avx512_vnni && isa+=(-DGGML_AVX512_VNNI=ON)
  has avx512_bf16 && isa+=(-DGGML_AVX512_BF16=ON)
  has avx_vnni && isa+=(-DGGML_AVX_VNNI=ON)
  echo "AMX listed by the CPU: llama.cpp built without it (${isa[*]})"
fi
# configured every time (cheap; a changed instruction set rebuilds ggml's CPU library only)
cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release "${isa[@]}" \
  -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >/dev/null
cmake --build "$src/build" -j"$jobs" --target llama-bench llama-batched-bench llama-quantize llama

# the logits tool, linked to the shared libllama/libggml just built (rpath: no install step)
lib=$src/build/bin
g++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" "$here/logits.cpp" -o "$lib/archc-llama-logits" \
  -L"$lib" -lllama -lggml -lggml-base -Wl,-rpath,"$lib"
echo "built: $lib/llama-bench $lib/llama-batched-bench $lib/llama-quantize $lib/archc-llama-logits"
