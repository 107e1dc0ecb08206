#!/usr/bin/env bash
# Fetches llama.cpp's source from the node-llama-cpp npm package (its tarball ships the source as a
# git bundle, llama/gitRelease.bundle) into a cache outside the repository, builds the CPU tools the
# side-by-side bench needs (llama-bench, llama-quantize) and bench/llama/logits.cpp against libllama.
#
#   bench/llama/build.sh            # cache: $ARCHC_BENCH_CACHE or ~/.cache/archc-bench
#   NODE_LLAMA_CPP_VERSION=3.22.1 bench/llama/build.sh
#
# CPU only, Release, -DGGML_NATIVE=ON (the build machine's instruction set: build where you time),
# -j2. Nothing is added to package.json; rerunning rebuilds only what changed.
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
if [ ! -f "$src/build/CMakeCache.txt" ]; then
  cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >/dev/null
fi
cmake --build "$src/build" -j"$jobs" --target llama-bench llama-quantize llama

# the logits tool, linked to the shared libllama/libggml just built (rpath: no install step)
lib=$src/build/bin
g++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" "$here/logits.cpp" -o "$lib/archc-llama-logits" \
  -L"$lib" -lllama -lggml -lggml-base -Wl,-rpath,"$lib"
echo "built: $lib/llama-bench $lib/llama-quantize $lib/archc-llama-logits"
