// A stand-in for libcuda.so (tests only): the driver functions the CUDA backend binds, over host
// memory. It lets the backend's own code run where there is no GPU: device memory is malloc'd, a
// module is any image (one starting "FAIL" is rejected as CUDA_ERROR_INVALID_IMAGE), a function is
// found when its name occurs in the image, and a launch records its function, grid and argument
// bytes (FAKE_CUDA_ARGS_BYTES of them) instead of running. FAKE_CUDA_INIT sets cuInit's result,
// FAKE_CUDA_DEVICES the device count, FAKE_CUDA_CC the compute capability (digits, default 90),
// FAKE_CUDA_FAIL names one function that then fails; two events are always 1 µs apart.
// Graphs: a launch on a capturing stream is recorded into the graph instead of running, and calls a
// real driver refuses during a capture (copies, allocations, synchronisation) fail and spoil it;
// launching an instantiated graph runs its launches. Every launch that runs is folded into a log
// (count and FNV-1a hash of its function, dims, argument bytes and, with FAKE_CUDA_TOKENS_AT set to
// the tokens pointer's offset in the arguments, the 16 ints there as the launch finds them).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { OK = 0, INVALID_VALUE = 1, NO_DEVICE = 100, INVALID_IMAGE = 200, NOT_FOUND = 500, CAPTURE_UNSUPPORTED = 900, CAPTURE_INVALIDATED = 901 };
#define ARGS_MAX 1024

typedef struct { size_t size; char* image; } Module;
static struct { int count; char name[128]; unsigned dims[6]; unsigned char args[ARGS_MAX]; } last;
typedef struct { const char* fn; unsigned dims[6]; unsigned shared; unsigned char args[ARGS_MAX]; } Node;
typedef struct { int n; Node* nodes; } Graph;
/* the stream's capture (one stream) and what the graphs did */
static struct { Graph* capturing; int spoiled; int begun, instantiated, launched, live; } cap;
static struct { long count; uint64_t hash; } run_log;

static int fails(const char* name) { const char* e = getenv("FAKE_CUDA_FAIL"); return e && strcmp(e, name) == 0; }
/* a call a real driver refuses while the stream captures (thread-local mode, this thread) */
static int refused(void) { if (!cap.capturing) return 0; cap.spoiled = 1; return 1; }
static size_t args_bytes(void) { const char* n = getenv("FAKE_CUDA_ARGS_BYTES"); return n && atoi(n) <= ARGS_MAX ? (size_t)atoi(n) : 0; }
static void fold(const void* p, size_t n) {
  const unsigned char* b = (const unsigned char*)p;
  for (size_t i = 0; i < n; i++) run_log.hash = (run_log.hash ^ b[i]) * 1099511628211ull;
}
static void run(const char* fn, const unsigned* dims, unsigned shared, const unsigned char* args) {
  last.count++;
  run_log.count++;
  strncpy(last.name, fn, sizeof last.name - 1);
  memcpy(last.dims, dims, sizeof last.dims);
  memcpy(last.args, args, args_bytes());
  fold(fn, strlen(fn));
  fold(dims, 6 * sizeof *dims);
  fold(&shared, sizeof shared);
  fold(args, args_bytes());
  const char* at = getenv("FAKE_CUDA_TOKENS_AT");
  if (at) { uint64_t p; memcpy(&p, args + atoi(at), 8); fold((const void*)(uintptr_t)p, 16 * sizeof(int)); }
}

int cuInit(unsigned flags) { (void)flags; const char* e = getenv("FAKE_CUDA_INIT"); return e ? atoi(e) : OK; }
int cuDriverGetVersion(int* v) { *v = 13000; return OK; }
int cuDeviceGetCount(int* n) { const char* e = getenv("FAKE_CUDA_DEVICES"); *n = e ? atoi(e) : 1; return OK; }
int cuDeviceGet(int* d, int ordinal) { *d = ordinal; return OK; }
int cuDeviceGetName(char* name, int len, int d) { (void)d; strncpy(name, "Fake GPU", len); return OK; }
int cuDeviceGetAttribute(int* v, int attr, int d) {
  (void)d;
  const char* cc = getenv("FAKE_CUDA_CC");  /* compute capability as digits, 90 by default */
  int n = cc ? atoi(cc) : 90;
  *v = attr == 75 ? n / 10 : attr == 76 ? n % 10 : 0;
  return OK;
}
int cuDevicePrimaryCtxRetain(void** ctx, int d) { (void)d; *ctx = (void*)&last; return OK; }
int cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return OK; }
int cuCtxSetCurrent(void* ctx) { (void)ctx; return OK; }
int cuModuleLoadData(void** mod, const void* image) {
  const char* s = (const char*)image;
  if (strncmp(s, "FAIL", 4) == 0) return INVALID_IMAGE;
  Module* m = malloc(sizeof(Module));
  m->size = strlen(s);
  m->image = strdup(s);
  *mod = m;
  return OK;
}
int cuModuleGetFunction(void** fn, void* mod, const char* name) {
  Module* m = (Module*)mod;
  if (!strstr(m->image, name)) return NOT_FOUND;
  *fn = strdup(name);
  return OK;
}
int cuModuleUnload(void* mod) { Module* m = (Module*)mod; free(m->image); free(m); return OK; }
// as a Hopper GPU: dynamic shared memory up to 227 KiB a block (attribute 8, MAX_DYNAMIC_SHARED_SIZE_BYTES)
int cuFuncSetAttribute(void* fn, int attribute, int value) { if (refused()) return CAPTURE_UNSUPPORTED; return fn && attribute == 8 && value >= 0 && value <= 232448 ? OK : INVALID_VALUE; }
int cuMemAlloc_v2(uint64_t* p, size_t bytes) { if (refused()) return CAPTURE_UNSUPPORTED; *p = (uint64_t)(uintptr_t)malloc(bytes); return *p ? OK : INVALID_VALUE; }
int cuMemFree_v2(uint64_t p) { if (refused()) return CAPTURE_UNSUPPORTED; free((void*)(uintptr_t)p); return OK; }
int cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t n) { if (refused()) return CAPTURE_UNSUPPORTED; memcpy((void*)(uintptr_t)dst, src, n); return OK; }
int cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t n) { if (refused()) return CAPTURE_UNSUPPORTED; memcpy(dst, (const void*)(uintptr_t)src, n); return OK; }
int cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t n) { if (refused()) return CAPTURE_UNSUPPORTED; memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, n); return OK; }
int cuMemsetD8_v2(uint64_t dst, unsigned char v, size_t n) { if (refused()) return CAPTURE_UNSUPPORTED; memset((void*)(uintptr_t)dst, v, n); return OK; }
int cuLaunchKernel(void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared,
                   void* stream, void** params, void** extra) {
  (void)stream; (void)extra;
  if (!fn || !params || !params[0] || fails("cuLaunchKernel")) { if (cap.capturing) cap.spoiled = 1; return INVALID_VALUE; }
  unsigned d[6] = {gx, gy, gz, bx, by, bz};
  if (cap.capturing) {
    Graph* g = cap.capturing;
    g->nodes = realloc(g->nodes, (g->n + 1) * sizeof(Node));
    Node* x = &g->nodes[g->n++];
    x->fn = (const char*)fn;
    memcpy(x->dims, d, sizeof d);
    x->shared = shared;
    memcpy(x->args, params[0], args_bytes());  /* the parameters are copied at capture */
    return OK;
  }
  run((const char*)fn, d, shared, (const unsigned char*)params[0]);
  return OK;
}
int cuStreamBeginCapture_v2(void* s, int mode) {
  (void)s;
  if (fails("cuStreamBeginCapture") || mode != 1) return fails("cuStreamBeginCapture") ? CAPTURE_UNSUPPORTED : INVALID_VALUE;
  if (cap.capturing) return INVALID_VALUE;
  cap.capturing = calloc(1, sizeof(Graph));
  cap.spoiled = 0;
  cap.begun++;
  return OK;
}
static void graph_free(Graph* g) { free(g->nodes); free(g); }
int cuStreamEndCapture(void* s, void** graph) {
  (void)s;
  if (!cap.capturing) return INVALID_VALUE;
  Graph* g = cap.capturing;
  cap.capturing = 0;
  if (cap.spoiled) { graph_free(g); *graph = 0; return CAPTURE_INVALIDATED; }
  *graph = g;
  return OK;
}
int cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long flags) {
  if (!graph || flags || fails("cuGraphInstantiateWithFlags")) return INVALID_VALUE;
  Graph* g = graph, *e = calloc(1, sizeof(Graph));
  e->n = g->n;
  e->nodes = malloc(g->n * sizeof(Node) + 1);
  memcpy(e->nodes, g->nodes, g->n * sizeof(Node));
  cap.instantiated++;
  cap.live++;
  *exec = e;
  return OK;
}
int cuGraphLaunch(void* exec, void* s) {
  (void)s;
  if (!exec || refused() || fails("cuGraphLaunch")) return INVALID_VALUE;
  Graph* e = exec;
  for (int i = 0; i < e->n; i++) run(e->nodes[i].fn, e->nodes[i].dims, e->nodes[i].shared, e->nodes[i].args);
  cap.launched++;
  return OK;
}
int cuGraphExecDestroy(void* exec) { if (!exec) return INVALID_VALUE; graph_free(exec); cap.live--; return OK; }
int cuGraphDestroy(void* graph) { if (!graph) return INVALID_VALUE; graph_free(graph); return OK; }
int cuStreamCreate(void** s, unsigned flags) { (void)flags; *s = (void*)&last; return OK; }
int cuStreamSynchronize(void* s) { (void)s; return refused() ? CAPTURE_UNSUPPORTED : OK; }
int cuStreamDestroy_v2(void* s) { (void)s; return OK; }
int cuEventCreate(void** e, unsigned flags) { (void)flags; *e = malloc(1); return OK; }
int cuEventRecord(void* e, void* s) { (void)e; (void)s; return OK; }
int cuEventSynchronize(void* e) { (void)e; return OK; }
int cuEventElapsedTime(float* ms, void* a, void* b) { (void)a; (void)b; *ms = 0.001f; return OK; }
int cuEventDestroy_v2(void* e) { free(e); return OK; }
int cuGetErrorName(int code, const char** name) {
  switch (code) {
    case OK: *name = "CUDA_SUCCESS"; return OK;
    case INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; return OK;
    case NO_DEVICE: *name = "CUDA_ERROR_NO_DEVICE"; return OK;
    case INVALID_IMAGE: *name = "CUDA_ERROR_INVALID_IMAGE"; return OK;
    case NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; return OK;
    case CAPTURE_UNSUPPORTED: *name = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"; return OK;
    case CAPTURE_INVALIDATED: *name = "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"; return OK;
    default: *name = 0; return INVALID_VALUE;
  }
}

// What the last launch received (tests read it back).
int fake_launches(void) { return last.count; }
int fake_last_launch(char* name, unsigned* dims, unsigned char* args) {
  strcpy(name, last.name);
  memcpy(dims, last.dims, sizeof last.dims);
  memcpy(args, last.args, ARGS_MAX);
  return last.count;
}
// What the graphs did: [captures begun, graphs instantiated, graph launches, executable graphs alive,
// capturing now]; and the log of launches run ([count, hash low, hash high]), reset when `reset`.
int fake_graphs(int* out) {
  int v[5] = {cap.begun, cap.instantiated, cap.launched, cap.live, cap.capturing != 0};
  memcpy(out, v, sizeof v);
  return OK;
}
int fake_run_log(unsigned* out, int reset) {
  unsigned v[3] = {(unsigned)run_log.count, (unsigned)run_log.hash, (unsigned)(run_log.hash >> 32)};
  memcpy(out, v, sizeof v);
  if (reset) { run_log.count = 0; run_log.hash = 1469598103934665603ull; }
  return OK;
}
