#!/usr/bin/env python3
"""The GPU script's driver: replays the launches bench/gpu/prepare.ts recorded, on an NVIDIA GPU,
through the CUDA driver API (ctypes on libcuda.so.1; numpy for host arrays; no Node; torch only for
the baselines, where it is installed).

1. The tiny model: its weights uploaded as the CUDA backend stores them, the arena poisoned with
   NaN, then a packed ragged prefill, two decode steps and a forward; after every launch the
   kernel's outputs are compared with the CPU engine's, and each run's logits (max error relative
   to max |ref| at most 2e-2, as the emulated tests ask). The narrow model (Bamba-9B's head, state
   and chunk sizes; weights made here by the fill kernels' hash, the same bits prepare.ts gave the
   CPU engine) the same way, on each kernel's first and last output rows.
2. The Bamba-9B-shaped model with random bf16 weights made on the GPU (fills that keep its SSM
   states finite): prefill of 4096 tokens and decode steps of batch 1 and 8. Each run's arguments
   are packed once, before any timing; CUDA events bracket the launches alone: the step launched
   kernel by kernel, the step as one CUDA graph (decode), and every kernel (an event between
   launches), each against its floor (bytes / HBM bandwidth, FLOPs / dense bf16 tensor-core rate)
   and beside the cost model of the build report; the run's logits and first state slot checked
   finite. torch's F.linear (cuBLAS), and scaled_dot_product_attention at each product's and
   attention's shape, timed the same way on the same card.

The numbers go to --out (JSON). --dry-run does everything up to the first CUDA call: reads the
trace and its files, packs every launch's arguments and checks the packing against the one
runtime/cuda/abi.ts made, and prints the floors and the cost model it will compare with.
--budget stops starting timed work past that many seconds (default 420: the run stays under 8
minutes).
"""

import argparse
import base64
import ctypes
import glob
import json
import os
import re
import struct
import sys
import time

import numpy as np

ARGS_FIELDS = ["arena", "pool", "w", "tokens", "positions", "seq_start", "seq_len", "seq_before", "seq_slot", "scratch"]
TOLERANCE = 2e-2


def pack_args(template: bytes, ptrs: dict) -> bytes:
    """ArchcArgs: the recorded bytes with the ten pointers (little-endian u64, in order) set."""
    out = bytearray(template)
    for i, f in enumerate(ARGS_FIELDS):
        struct.pack_into("<Q", out, 8 * i, ptrs[f])
    return bytes(out)


def batch_pointers(base: int, T: int, S: int) -> dict:
    """Where the batch's int32 arrays sit in its buffer: tokens, positions [T]; start, len, before, slot [S]."""
    return {
        "tokens": base, "positions": base + 4 * T, "seq_start": base + 8 * T, "seq_len": base + 8 * T + 4 * S,
        "seq_before": base + 8 * T + 8 * S, "seq_slot": base + 8 * T + 12 * S,
    }


def entry_functions(source: str) -> list:
    """The __global__ functions of a kernel source (runtime/cuda/kernels.ts entryFunctions)."""
    return list(dict.fromkeys(re.findall(r"__global__\b[^;{]*?\b(archc_\w+)\s*\(", source)))


def translation_unit(ids, sources) -> str:
    """The translation unit archc build gives nvcc (runtime/cuda/kernels.ts translationUnit)."""
    head = "#include <cuda_bf16.h>\n#include <mma.h>\n#include <stdint.h>\n#include <math.h>\n"
    def unit(i):
        fns = entry_functions(sources[i])
        return (f"namespace k_{i} {{\n" + "".join(f"#define {f} {f}_{i}\n" for f in fns) + f'#include "{i}.cu"\n'
                + "".join(f"#undef {f}\n" for f in fns) + "}\n")
    return head + "".join(unit(i) for i in ids)


def arch_number(arch: str) -> int:
    return int("".join(c for c in arch if c.isdigit()) or 0)


class CudaError(RuntimeError):
    pass


class Cuda:
    """The driver calls the script makes."""

    def __init__(self, library: str):
        try:
            self.lib = ctypes.CDLL(library)
        except OSError as e:
            raise CudaError(f"no CUDA driver: cannot load {library} ({e}); this script needs an NVIDIA GPU and its driver")
        L, u64, vp, i32 = self.lib, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int
        sig = {
            "cuInit": [ctypes.c_uint], "cuDeviceGet": [ctypes.POINTER(i32), i32], "cuDeviceGetCount": [ctypes.POINTER(i32)],
            "cuDeviceGetAttribute": [ctypes.POINTER(i32), i32, i32], "cuDeviceGetName": [ctypes.c_char_p, i32, i32],
            "cuDevicePrimaryCtxRetain": [ctypes.POINTER(vp), i32], "cuCtxSetCurrent": [vp],
            "cuModuleLoadData": [ctypes.POINTER(vp), ctypes.c_char_p], "cuModuleGetFunction": [ctypes.POINTER(vp), vp, ctypes.c_char_p],
            "cuMemAlloc_v2": [ctypes.POINTER(u64), ctypes.c_size_t], "cuMemFree_v2": [u64],
            "cuMemcpyHtoD_v2": [u64, vp, ctypes.c_size_t], "cuMemcpyDtoH_v2": [vp, u64, ctypes.c_size_t],
            "cuMemsetD8_v2": [u64, ctypes.c_ubyte, ctypes.c_size_t],
            "cuLaunchKernel": [vp] + [ctypes.c_uint] * 7 + [vp, ctypes.POINTER(vp), ctypes.POINTER(vp)],
            "cuStreamCreate": [ctypes.POINTER(vp), ctypes.c_uint], "cuStreamSynchronize": [vp],
            "cuEventCreate": [ctypes.POINTER(vp), ctypes.c_uint], "cuEventRecord": [vp, vp], "cuEventSynchronize": [vp],
            "cuEventElapsedTime": [ctypes.POINTER(ctypes.c_float), vp, vp], "cuGetErrorName": [i32, ctypes.POINTER(ctypes.c_char_p)],
            "cuDriverGetVersion": [ctypes.POINTER(i32)],
            "cuStreamBeginCapture_v2": [vp, i32], "cuStreamEndCapture": [vp, ctypes.POINTER(vp)],
            "cuGraphInstantiateWithFlags": [ctypes.POINTER(vp), vp, ctypes.c_ulonglong], "cuGraphLaunch": [vp, vp],
            "cuGraphExecDestroy": [vp], "cuGraphDestroy": [vp], "cuFuncSetAttribute": [vp, i32, i32],
        }
        for name, args in sig.items():
            f = getattr(L, name)
            f.argtypes, f.restype = args, ctypes.c_int

    def error(self, r: int) -> str:
        name = ctypes.c_char_p()
        return f"{name.value.decode()} ({r})" if self.lib.cuGetErrorName(r, ctypes.byref(name)) == 0 and name.value else f"CUresult {r}"

    def check(self, r: int, what: str):
        if r != 0:
            raise CudaError(f"{what} failed: {self.error(r)}")

    def init(self):
        r = self.lib.cuInit(0)
        if r != 0:
            raise CudaError(f"the CUDA driver failed to initialise: {self.error(r)}")
        n, dev = ctypes.c_int(), ctypes.c_int()
        self.check(self.lib.cuDeviceGetCount(ctypes.byref(n)), "cuDeviceGetCount")
        if n.value < 1:
            raise CudaError("no CUDA device")
        self.check(self.lib.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
        self.dev = dev.value
        major, minor, version = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        self.check(self.lib.cuDeviceGetAttribute(ctypes.byref(major), 75, self.dev), "cuDeviceGetAttribute")
        self.check(self.lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, self.dev), "cuDeviceGetAttribute")
        self.lib.cuDriverGetVersion(ctypes.byref(version))
        self.arch = f"sm_{major.value}{minor.value}"
        name = ctypes.create_string_buffer(256)
        self.check(self.lib.cuDeviceGetName(name, 256, self.dev), "cuDeviceGetName")
        self.name, self.driver_version = name.value.decode(), version.value
        ctx, stream = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), self.dev), "cuDevicePrimaryCtxRetain")
        self.check(self.lib.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        self.check(self.lib.cuStreamCreate(ctypes.byref(stream), 0), "cuStreamCreate")
        self.stream = stream

    def alloc(self, nbytes: int) -> int:
        p = ctypes.c_uint64()
        self.check(self.lib.cuMemAlloc_v2(ctypes.byref(p), max(nbytes, 4)), f"cuMemAlloc({nbytes} bytes)")
        return p.value

    def htod(self, ptr: int, data: bytes):
        buf = ctypes.create_string_buffer(data, len(data))
        self.check(self.lib.cuMemcpyHtoD_v2(ptr, buf, len(data)), "cuMemcpyHtoD")

    def dtoh_f32(self, ptr: int, n: int) -> np.ndarray:
        return self.dtoh(ptr, n, np.float32)

    def memset(self, ptr: int, value: int, nbytes: int):
        self.check(self.lib.cuMemsetD8_v2(ptr, value, nbytes), "cuMemsetD8")

    def module(self, image: bytes, what: str):
        m = ctypes.c_void_p()
        r = self.lib.cuModuleLoadData(ctypes.byref(m), image)
        if r != 0:
            raise CudaError(f"cannot load {what} on {self.name} ({self.arch}): {self.error(r)}")
        return m

    def function(self, module, name: str):
        f = ctypes.c_void_p()
        r = self.lib.cuModuleGetFunction(ctypes.byref(f), module, name.encode())
        return f if r == 0 else None

    def dtoh(self, ptr: int, n: int, dtype) -> np.ndarray:
        out = np.empty(n, dtype=dtype)
        self.sync()
        self.check(self.lib.cuMemcpyDtoH_v2(out.ctypes.data_as(ctypes.c_void_p), ptr, out.nbytes), "cuMemcpyDtoH")
        return out

    def sync(self):
        self.check(self.lib.cuStreamSynchronize(self.stream), "cuStreamSynchronize")

    def event(self):
        e = ctypes.c_void_p()
        self.check(self.lib.cuEventCreate(ctypes.byref(e), 0), "cuEventCreate")
        return e

    def record(self, e):
        self.check(self.lib.cuEventRecord(e, self.stream), "cuEventRecord")

    def graph(self, launch_all, what: str):
        """The launches `launch_all` makes, captured from the stream (nothing runs) and instantiated."""
        g, exe = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.cuStreamBeginCapture_v2(self.stream, 1), f"cuStreamBeginCapture({what})")
        try:
            launch_all()
        finally:
            r = self.lib.cuStreamEndCapture(self.stream, ctypes.byref(g))
        self.check(r, f"cuStreamEndCapture({what})")
        r = self.lib.cuGraphInstantiateWithFlags(ctypes.byref(exe), g, 0)
        self.lib.cuGraphDestroy(g)
        self.check(r, f"cuGraphInstantiate({what})")
        return exe

    def graph_launch(self, exe, what: str):
        self.check(self.lib.cuGraphLaunch(exe, self.stream), f"cuGraphLaunch({what})")

    def elapsed_ms(self, a, b) -> float:
        ms = ctypes.c_float()
        self.check(self.lib.cuEventSynchronize(b), "cuEventSynchronize")
        self.check(self.lib.cuEventElapsedTime(ctypes.byref(ms), a, b), "cuEventElapsedTime")
        return ms.value


def nvrtc_compile(ids, sources: dict, arch: str) -> bytes:
    """The kernels compiled for `arch` with NVRTC (for a device the prepared modules do not cover)."""
    names = [os.environ.get("ARCHC_LIBNVRTC", ""), "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"]
    names += sorted(glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")))
    lib = None
    for n in filter(None, names):
        try:
            lib = ctypes.CDLL(n)
            break
        except OSError:
            pass
    if lib is None:
        raise CudaError(f"no prepared module runs on {arch} and NVRTC (libnvrtc.so) was not found; prepare with --cuda-arch {arch}")
    incs = [os.environ.get("ARCHC_CUDA_INCLUDE", ""), os.path.join(os.environ.get("CUDA_HOME", "/nonexistent"), "include"), "/usr/local/cuda/include"]
    incs += glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nvidia", "cuda_runtime", "include"))
    inc = next((d for d in incs if d and os.path.exists(os.path.join(d, "mma.h"))), None)
    stand_ins = {"stdint.h": "#pragma once\n", "math.h": "#pragma once\n#ifndef INFINITY\n#define INFINITY __int_as_float(0x7f800000)\n#endif\n#ifndef NAN\n#define NAN __int_as_float(0x7fffffff)\n#endif\n"}
    hdr_names = [f"{i}.cu" for i in ids] + list(stand_ins)
    hdr_texts = [sources[i] for i in ids] + list(stand_ins.values())
    arr = lambda xs: (ctypes.c_char_p * len(xs))(*[x.encode() for x in xs])
    prog = ctypes.c_void_p()
    r = lib.nvrtcCreateProgram(ctypes.byref(prog), translation_unit(ids, sources).encode(), b"module.cu", len(hdr_names), arr(hdr_texts), arr(hdr_names))
    if r != 0:
        raise CudaError(f"nvrtcCreateProgram failed ({r})")
    opts = [f"--gpu-architecture={arch}", "--std=c++17"] + ([f"--include-path={inc}"] if inc else [])
    r = lib.nvrtcCompileProgram(prog, len(opts), arr(opts))
    if r != 0:
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        raise CudaError(f"NVRTC rejected the kernels for {arch}:\n{log.value.decode(errors='replace')[:4000]}")
    size = ctypes.c_size_t()
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    out = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetCUBIN(prog, out)
    return out.raw


class Model:
    """One prepared model on the device: modules and functions, weights, weight tables."""

    def __init__(self, cuda: Cuda, work: str, m: dict, dry: bool):
        self.cuda, self.m, self.dir, self.dry = cuda, m, os.path.join(work, m["name"]), dry
        # modules and kernel sources: the model's folder, or the one of another model of the same build
        mdir = os.path.join(work, m.get("moduleDir", m["name"]))
        self.fns, self.tables, self.weights = {}, {}, []
        wanted = {l["id"] for s in m["sessions"] for r in s["runs"] for l in r["launches"]}
        for i in wanted:
            if not os.path.exists(os.path.join(mdir, "cuda", "kernels", f"{i}.cu")):
                raise CudaError(f"{m['name']}: the source of kernel {i} is missing from {mdir}")
        for mod in m["modules"]:
            if not os.path.exists(os.path.join(mdir, mod["file"])):
                raise CudaError(f"{m['name']}: module {mod['file']} is missing")
        for w in m["weights"]:
            if "segments" in w and sum(g["count"] for g in w["segments"]) * (2 if w["dtype"] == "bf16" else 4) != w["bytes"]:
                raise CudaError(f"{m['name']}: the fill segments of {w['name']} do not cover its {w['bytes']} bytes")
        if dry:
            return
        arch = cuda.arch
        left, images = set(wanted), []
        cubins = [x for x in m["modules"] if x["kind"] == "cubin" and x["arch"] == arch]
        ptx = sorted([x for x in m["modules"] if x["kind"] == "ptx" and arch_number(x["arch"]) <= arch_number(arch)], key=lambda x: -arch_number(x["arch"]))
        for mod in cubins + ptx:
            if left & set(mod["ids"]):
                data = open(os.path.join(mdir, mod["file"]), "rb").read()
                try:
                    images.append((cuda.module(data + (b"\0" if mod["kind"] == "ptx" else b""), mod["file"]), mod["ids"]))
                    left -= set(mod["ids"])
                except CudaError as e:
                    print(f"  {e}; trying the next way", flush=True)
        if left:
            ids = sorted(left)
            sources = {i: open(os.path.join(mdir, "cuda", "kernels", f"{i}.cu")).read() for i in ids}
            images.append((cuda.module(nvrtc_compile(ids, sources, arch), f"NVRTC module ({arch})"), ids))
        for module, ids in images:
            for i in ids:
                if i in wanted:
                    fns = {l["fn"] for s in m["sessions"] for r in s["runs"] for l in r["launches"] if l["id"] == i}
                    self.fns[i] = {fn: cuda.function(module, f"{fn}_{i}") for fn in fns}
        self.upload()

    def upload(self):
        blob = open(os.path.join(self.dir, self.m["weightFile"]), "rb").read() if self.m.get("weightFile") else None
        fill = Fill.get(self.cuda)
        for i, w in enumerate(self.m["weights"]):
            p = self.cuda.alloc(w["bytes"])
            if "segments" in w:  # made by the fill kernels' hash, as prepare.ts made them for the CPU engine
                size, at = (2 if w["dtype"] == "bf16" else 4), 0
                for g in w["segments"]:
                    fill.fill(p + at * size, w["dtype"], g["count"] * size, seed=g["seed"], around=g["around"], scale=g["scale"])
                    at += g["count"]
            elif "offset" in w:
                self.cuda.htod(p, blob[w["offset"]:w["offset"] + w["bytes"]])
            else:
                fill.fill(p, w["dtype"], w["bytes"], seed=i + 1, around=w.get("around", 0), scale=w.get("scale", 0.02 if w["dtype"] == "bf16" else 0.1))
            self.weights.append(p)
        self.cuda.sync()

    def table(self, idx) -> int:
        key = tuple(idx)
        if key not in self.tables:
            ptrs = [self.weights[i] for i in idx] or [0]
            p = self.cuda.alloc(8 * len(ptrs))
            self.cuda.htod(p, struct.pack(f"<{len(ptrs)}Q", *ptrs))
            self.tables[key] = p
        return self.tables[key]


class Fill:
    """The random-weight kernels (bench/gpu/fill.cu), loaded once."""
    one = None

    @classmethod
    def get(cls, cuda: Cuda):
        if cls.one is None:
            cls.one = Fill(cuda)
        return cls.one

    def __init__(self, cuda: Cuda):
        self.cuda = cuda
        d = os.path.join(WORK, "fill")
        cubin, ptx = os.path.join(d, f"{cuda.arch}.cubin"), sorted(glob.glob(os.path.join(d, "*.ptx")))
        image = open(cubin, "rb").read() if os.path.exists(cubin) else open(ptx[0], "rb").read() + b"\0"
        mod = cuda.module(image, "the fill kernels")
        self.fns = {"bf16": cuda.function(mod, "archc_fill_bf16"), "f32": cuda.function(mod, "archc_fill_f32")}

    def fill(self, ptr, dtype, nbytes, seed, around, scale):
        n = nbytes // (2 if dtype == "bf16" else 4)
        # the parameters one by one: pointer, long long, unsigned, float, float
        vals = [ctypes.c_uint64(ptr), ctypes.c_int64(n), ctypes.c_uint32(seed), ctypes.c_float(around), ctypes.c_float(scale)]
        params = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in vals])
        self.cuda.check(self.cuda.lib.cuLaunchKernel(self.fns[dtype], min(65535, (n + 255) // 256), 1, 1, 256, 1, 1, 0, self.cuda.stream, params, None), "cuLaunchKernel(fill)")


def close(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / (max |ref| + 1e-6); inf when anything is NaN."""
    if got.shape != ref.shape or not np.all(np.isfinite(got) | ~np.isfinite(ref)):
        return float("inf")
    return float(np.max(np.abs(got - ref)) / (np.max(np.abs(ref)) + 1e-6)) if ref.size else 0.0


def view_values(cuda: Cuda, arena: int, base: int, rows: int, stride: int, width: int) -> np.ndarray:
    if rows == 0:
        return np.zeros(0, np.float32)
    raw = cuda.dtoh_f32(arena + 4 * base, (rows - 1) * stride + width)
    return np.stack([raw[r * stride:r * stride + width] for r in range(rows)]).reshape(-1)


class Packed:
    """A run's launches with their arguments packed and their parameter arrays made once, so that
    launching them is one driver call each (nothing of Python's packing inside a timed region)."""

    def __init__(self, cuda: Cuda, model: Model, run: dict, pool: int, arena: int, batch: int, scratch: int, dry: bool):
        self.cuda, self.run, self.batch, self.items = cuda, run, batch, []
        ptrs = {"arena": arena, "pool": pool, "scratch": scratch, **batch_pointers(batch, run["T"], run["S"])}
        for l in run["launches"]:
            ptrs["w"] = 0 if dry else model.table(l["weights"])
            args = pack_args(base64.b64decode(l["args"]), ptrs)
            if dry:
                self.items.append((None, l, args, None))
                continue
            fn = model.fns[l["id"]][l["fn"]]
            if fn is None:
                raise CudaError(f"kernel {l['kernel']}: no function {l['fn']}_{l['id']}")
            if l.get("shared", 0) > 48 * 1024:  # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
                cuda.check(cuda.lib.cuFuncSetAttribute(fn, 8, l["shared"]), f"cuFuncSetAttribute({l['kernel']}, {l['shared']} bytes)")
            buf = ctypes.create_string_buffer(args, len(args))
            params = (ctypes.c_void_p * 1)(ctypes.cast(buf, ctypes.c_void_p))
            self.items.append((fn, l, buf, params))

    def upload_batch(self):
        self.cuda.htod(self.batch, struct.pack(f"<{len(self.run['batch'])}i", *self.run["batch"]))

    def launch(self, i: int):
        fn, l, _, params = self.items[i]
        r = self.cuda.lib.cuLaunchKernel(fn, *l["grid"], *l["block"], l.get("shared", 0), self.cuda.stream, params, None)
        if r != 0:
            self.cuda.check(r, f"cuLaunchKernel({l['kernel']})")

    def launch_all(self):
        for i in range(len(self.items)):
            self.launch(i)


def check_run(cuda: Cuda, packed: Packed, arena: int, refs, report: dict):
    """Launches the run one kernel at a time, comparing each kernel's outputs with the CPU engine's."""
    packed.upload_batch()
    for i, (_, l, _, _) in enumerate(packed.items):
        packed.launch(i)
        for base, rows, stride, width, at in l.get("check") or []:
            err = close(view_values(cuda, arena, base, rows, stride, width), refs[at:at + rows * width])
            fam = report.setdefault(l["family"], {"launches": 0, "max_error": 0.0, "worst": None})
            fam["launches"] += 1
            if not err <= fam["max_error"]:
                fam["max_error"], fam["worst"] = err, l["kernel"]


def layer_key(name: str) -> str:
    """A kernel's name with its layer indices as `*` (`model.layers.*.mamba.in_proj:linear`)."""
    return re.sub(r"\.\d+(?=[.:])", ".*", name)


def layer_keys(name: str):
    """The keys the cost models give a kernel's rows: the whole-step model's, the decode GEMVs'."""
    return (layer_key(name), re.sub(r"layers\.\d+\.", "layers.*.", name))


def modelled(cost: dict, run: dict, card: str) -> dict:
    """The cost model's rows for `run` on `card` (bf16), by kernel key: {modelUs, floorUs}; empty when
    the build report models none of it (the whole-step model, `decode` / `prefill`)."""
    if not cost:
        return {}
    rows = []
    if run["entry"] == "decode" and cost.get("decode"):
        rows = cost["decode"].get("cards", {}).get(card, {}).get(f"batch{run['S']}", {}).get("bf16", {}).get("kernels", [])
    elif run["entry"] == "prefill" and cost.get("prefill"):
        rows = cost["prefill"].get("cards", {}).get(card, {}).get("kernels", [])
    return {r["kernel"]: r for r in rows}


def card_of(name: str) -> str:
    return "H200" if "H200" in name else "H100 SXM"


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def time_run(cuda: Cuda, model: Model, packed: Packed, t: dict, trace: dict, pool: int, arena: int, slot_floats: int, deadline: float) -> dict:
    """One timed run: the step kernel by kernel and as a graph, each kernel, torch's baselines."""
    run, h = packed.run, trace["h200"]
    packed.upload_batch()
    packed.launch_all()  # warm-up
    cuda.sync()
    e0, e1 = cuda.event(), cuda.event()

    def timed(launch, reps):
        out = []
        for _ in range(reps):
            cuda.record(e0)
            launch()
            cuda.record(e1)
            out.append(cuda.elapsed_ms(e0, e1))
            if time.time() > deadline:
                break
        return out

    times = timed(packed.launch_all, t["reps"])
    ms = median(times)
    bw_ms, fl_ms = 1e3 * t["bytes"] / h["bandwidth"], 1e3 * t["flops"] / h["bf16Flops"]
    floor = max(bw_ms, fl_ms)
    row = {"run": run["name"], "ms": ms, "samples": times, "floor_ms": floor, "bytes": t["bytes"], "flops": t["flops"],
           "bytes_floor_ms": bw_ms, "flops_floor_ms": fl_ms, "of_floor": floor / ms, "GBps": t["bytes"] / ms / 1e6, "TFLOPs": t["flops"] / ms / 1e9}
    print(f"  {run['name']}: {ms:.3f} ms launched kernel by kernel (median of {len(times)}); floor {floor:.3f} ms = max({t['bytes'] / 1e9:.2f} GB / "
          f"{h['bandwidth'] / 1e12:.1f} TB/s = {bw_ms:.3f} ms, {t['flops'] / 1e12:.2f} TFLOP / {h['bf16Flops'] / 1e12:.0f} TFLOP/s = {fl_ms:.3f} ms); "
          f"{100 * floor / ms:.1f}% of the floor", flush=True)
    if run["entry"] == "decode" and time.time() < deadline:
        exe = cuda.graph(packed.launch_all, run["name"])
        cuda.graph_launch(exe, run["name"])
        gtimes = timed(lambda: cuda.graph_launch(exe, run["name"]), t["reps"])
        cuda.lib.cuGraphExecDestroy(exe)
        row["graph_ms"], row["graph_samples"] = median(gtimes), gtimes
        print(f"  {run['name']}: {row['graph_ms']:.3f} ms as one CUDA graph; {100 * floor / row['graph_ms']:.1f}% of the floor", flush=True)
    # every kernel: an event before each launch and one after the last (a few µs of gaps counted in each)
    events = [cuda.event() for _ in range(len(packed.items) + 1)]
    per = [[] for _ in packed.items]
    for _ in range(3 if run["entry"] == "prefill" else 10):
        for i in range(len(packed.items)):
            cuda.record(events[i])
            packed.launch(i)
        cuda.record(events[-1])
        cuda.sync()
        for i in range(len(packed.items)):
            per[i].append(cuda.elapsed_ms(events[i], events[i + 1]))
        if time.time() > deadline:
            break
    row["kernels"] = kernel_table(packed, [median(p) for p in per], modelled(model.m.get("cost") or {}, run, card_of(cuda.name)))
    # the run's logits and its first sequence's state slot: finite (the fills keep SSM states bounded)
    base, rows, stride, width = run["output"]
    logits = view_values(cuda, arena, base, rows, stride, width)
    state = cuda.dtoh_f32(pool, slot_floats)
    row["finite"] = {"logits": bool(np.all(np.isfinite(logits))), "state": bool(np.all(np.isfinite(state))), "max_abs_logit": float(np.max(np.abs(logits)))}
    print(f"  {run['name']}: logits {'finite' if row['finite']['logits'] else 'NOT FINITE'} (max |x| {row['finite']['max_abs_logit']:.3g}), "
          f"state slot 0 {'finite' if row['finite']['state'] else 'NOT FINITE'}", flush=True)
    if time.time() < deadline:
        row["torch"] = torch_baselines(run, deadline)
    return row


def kernel_table(packed: Packed, ms: list, model: dict) -> list:
    """Each kernel kind of the run (the same layer at every depth together): how many, measured µs each
    (the median of each launch, a kernel's phases summed), the cost model's µs and floor where it has
    the kernel; printed slowest first."""
    kinds, prev = {}, None
    for (_, l, _, _), t in zip(packed.items, ms):
        key = layer_key(l["kernel"])
        k = kinds.setdefault(key, {"kernel": key, "family": l["family"], "fn": l["fn"], "count": 0, "us": 0.0})
        k["count"] += l["kernel"] != prev  # a kernel of phases: its launches follow one another, their times summed
        k["us"] += 1e3 * t
        prev = l["kernel"]
        m = next((model[x] for x in layer_keys(l["kernel"]) if x in model), None)
        if m:
            k["model_us"], k["floor_us"] = m.get("modelUs"), m.get("floorUs")
    rows = sorted(kinds.values(), key=lambda k: -k["us"])
    total = sum(k["us"] for k in rows)
    for k in rows:
        k["us"] /= k["count"]
    print(f"    {'kernel':<60} {'n':>3} {'us each':>9} {'model':>9} {'floor':>9} {'share':>6}")
    for k in rows[:16]:
        fmt = lambda x: f"{x:9.1f}" if isinstance(x, (int, float)) else f"{'-':>9}"
        print(f"    {k['kernel'][:60]:<60} {k['count']:>3} {k['us']:9.1f} {fmt(k.get('model_us'))} {fmt(k.get('floor_us'))} {100 * k['us'] * k['count'] / total:5.1f}%")
    return rows


def torch_baselines(run: dict, deadline: float) -> list:
    """torch on the same card at each distinct product and attention shape of the run: F.linear
    (cuBLAS: the GEMV at decode, the GEMM at prefill) and scaled_dot_product_attention (causal at
    prefill), timed by CUDA events around `reps` calls on tensors made before."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("    (no torch here: no baselines)")
        return []
    if not torch.cuda.is_available():
        return []
    out, seen = [], set()
    for l in run["launches"]:
        shape = ("linear", *l["product"]) if "product" in l else ("sdpa", *l["attention"]) if "attention" in l else None
        if shape is None or shape in seen or time.time() > deadline:
            continue
        seen.add(shape)
        if shape[0] == "linear":
            m, k, n = shape[1:]
            # several weights in turn, so that a small one is not timed from L2
            xs = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(max(1, min(8, (256 << 20) // (2 * n * k))))]
            call = lambda i, ws=ws, xs=xs: F.linear(xs, ws[i % len(ws)])
            flops, nbytes = 2 * m * k * n, 2 * n * k + 2 * m * k + 2 * m * n
        else:
            s, q, kv, hq, hkv, d = shape[1:]
            qs = torch.randn(s, hq, q, d, device="cuda", dtype=torch.bfloat16)
            ks, vs = (torch.randn(s, hkv, kv, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
            call = lambda i, qs=qs, ks=ks, vs=vs, q=q: F.scaled_dot_product_attention(qs, ks, vs, is_causal=q > 1, enable_gqa=True)
            flops, nbytes = 4 * s * hq * d * (q * (q + 1) // 2 if q > 1 else kv), 2 * s * d * (2 * hq * q + 2 * hkv * kv)
        reps = 20 if flops > 1e11 else 100
        for i in range(3):
            call(i)
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        for i in range(reps):
            call(i)
        t1.record()
        torch.cuda.synchronize()
        ms = t0.elapsed_time(t1) / reps
        row = {"op": shape[0], "shape": list(shape[1:]), "kernel": l["kernel"], "ms": ms, "TFLOPs": flops / ms / 1e9, "GBps": nbytes / ms / 1e6}
        out.append(row)
        print(f"    torch {shape[0]} {list(shape[1:])}: {1e3 * ms:.1f} us ({row['TFLOPs']:.0f} TFLOP/s, {row['GBps']:.0f} GB/s)", flush=True)
        del call
    return out


def plain_json(x):
    """`x` with non-finite floats as the strings "inf", "-inf", "nan" (JSON has no such numbers)."""
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: plain_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain_json(v) for v in x]
    return x


def main():
    global WORK
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "work"))
    ap.add_argument("--out", default=None, help="results JSON (default: <work>/results.json)")
    ap.add_argument("--dry-run", action="store_true", help="stop before the first CUDA call")
    ap.add_argument("--library", default=os.environ.get("ARCHC_LIBCUDA", "libcuda.so.1"))
    ap.add_argument("--budget", type=float, default=420, help="seconds after which no timed work starts")
    a = ap.parse_args()
    WORK = a.work
    t0 = time.time()
    deadline = t0 + a.budget
    path = os.path.join(WORK, "trace.json")
    if not os.path.exists(path):
        sys.exit(f"error: {path} is missing; run `npx tsx bench/gpu/prepare.ts` where Node is, and carry bench/gpu/work here")
    trace = json.load(open(path))
    if trace.get("format") != FORMAT:
        sys.exit(f"error: {path}: format {trace.get('format')}, this driver reads {FORMAT}; prepare it again")
    # the packing of the arguments, against the bytes runtime/cuda/abi.ts made with the same pointers
    chk = trace["abiCheck"]
    if pack_args(base64.b64decode(chk["launch"]), chk["pointers"]) != base64.b64decode(chk["packed"]):
        sys.exit("error: this driver packs ArchcArgs differently from runtime/cuda/abi.ts")
    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "checks": {}, "timings": [], "h200": trace["h200"]}
    cuda = None
    if not a.dry_run:
        try:
            cuda = Cuda(a.library)
            cuda.init()
        except CudaError as e:
            sys.exit(f"error: {e}")
        results["device"] = {"name": cuda.name, "arch": cuda.arch, "driver": cuda.driver_version}
        print(f"device: {cuda.name} ({cuda.arch}), driver {cuda.driver_version}", flush=True)
    ok = True
    for m in trace["models"]:
        try:
            model = Model(cuda, WORK, m, a.dry_run)
        except CudaError as e:
            sys.exit(f"error: {e}")
        refs = np.fromfile(os.path.join(model.dir, m["refFile"]), dtype=np.float32) if m.get("refFile") else None
        for s in m["sessions"]:
            pool_bytes = 4 * s["slots"] * s["slotFloats"]
            arena_bytes = 4 * max(r["arenaFloats"] for r in s["runs"])
            batch_bytes = 4 * max(len(r["batch"]) for r in s["runs"])
            if a.dry_run:
                n = sum(len(Packed(None, model, r, 0x2000, 0x1000, 0x3000, 0x4000, True).items) for r in s["runs"])
                print(f"{m['name']}: {len(s['runs'])} runs, {n} launches packed; device memory: pool {pool_bytes / 2**20:.1f} MiB, arena {arena_bytes / 2**20:.1f} MiB, "
                      f"weights {sum(w['bytes'] for w in m['weights']) / 2**30:.2f} GiB", flush=True)
                for r in s["runs"]:
                    if r.get("time"):
                        f = r["time"]
                        floor = max(f["bytes"] / trace["h200"]["bandwidth"], f["flops"] / trace["h200"]["bf16Flops"])
                        model_rows = modelled(m.get("cost") or {}, r, "H200")
                        print(f"  {r['name']}: floor {floor * 1e3:.3f} ms ({f['bytes'] / 1e9:.2f} GB, {f['flops'] / 1e12:.2f} TFLOP); "
                              f"the cost model has {len(model_rows)} of its kernel kinds")
                continue
            pool, arena, batch = cuda.alloc(pool_bytes), cuda.alloc(arena_bytes), cuda.alloc(batch_bytes)
            scratch = cuda.alloc(max(256, 4 * max(r.get("scratchFloats", 0) for r in s["runs"])))
            cuda.memset(pool, 0, pool_bytes)
            for r in s["runs"]:
                packed = Packed(cuda, model, r, pool, arena, batch, scratch, False)
                if refs is not None:
                    cuda.memset(arena, 0xFF, arena_bytes)  # NaN: every value read must have been written
                    check_run(cuda, packed, arena, refs, results["checks"].setdefault(m["name"], {}))
                    base, rows, stride, width, at = r["logits"]
                    err = close(view_values(cuda, arena, base, rows, stride, width), refs[at:at + rows * width])
                    good = err <= TOLERANCE
                    ok &= good
                    results["checks"].setdefault("logits", {})[r["name"]] = err
                    print(f"  {r['name']}: logits max error {err:.2e} of max |ref| ({'ok' if good else 'FAIL'})", flush=True)
                if r.get("time"):
                    if time.time() > deadline:
                        print(f"  {r['name']}: not timed, past the budget of {a.budget:.0f} s", flush=True)
                        continue
                    row = time_run(cuda, model, packed, r["time"], trace, pool, arena, s["slotFloats"], deadline)
                    ok &= row["finite"]["logits"] and row["finite"]["state"]
                    results["timings"].append(row)
        if refs is not None and not a.dry_run:
            for fam, v in sorted(results["checks"][m["name"]].items()):
                good = v["max_error"] <= TOLERANCE
                ok &= good
                print(f"  {m['name']} {fam}: {v['launches']} outputs checked, max error {v['max_error']:.2e} ({'ok' if good else 'FAIL at ' + str(v['worst'])})", flush=True)
    if a.dry_run:
        print(f"dry run: trace and files complete, argument packing matches runtime/cuda/abi.ts ({time.time() - t0:.1f} s)")
        return
    results["ok"], results["seconds"] = bool(ok), time.time() - t0
    out = a.out or os.path.join(WORK, "results.json")
    json.dump(plain_json(results), open(out, "w"), indent=2)
    print(f"{'all checks passed' if ok else 'CHECKS FAILED'}; numbers in {out} ({time.time() - t0:.0f} s)")
    sys.exit(0 if ok else 1)


FORMAT = "archc-gpu-bench/2"
WORK = ""
if __name__ == "__main__":
    main()
