// A stand-in for libcuda.so (tests only): the driver functions the CUDA backend binds, over host
// memory. It lets the backend's own code run where there is no GPU: device memory is malloc'd, a
// module is any image (one starting "FAIL" is rejected as CUDA_ERROR_INVALID_IMAGE), a function is
// found when its name occurs in the image, and a launch records its function, grid and argument
// bytes (FAKE_CUDA_ARGS_BYTES of them) instead of running. FAKE_CUDA_INIT sets cuInit's result,
// FAKE_CUDA_DEVICES the device count.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { OK = 0, INVALID_VALUE = 1, NO_DEVICE = 100, INVALID_IMAGE = 200, NOT_FOUND = 500 };
#define ARGS_MAX 1024

typedef struct { size_t size; char* image; } Module;
static struct { int count; char name[128]; unsigned dims[6]; unsigned char args[ARGS_MAX]; } last;

int cuInit(unsigned flags) { (void)flags; const char* e = getenv("FAKE_CUDA_INIT"); return e ? atoi(e) : OK; }
int cuDriverGetVersion(int* v) { *v = 13000; return OK; }
int cuDeviceGetCount(int* n) { const char* e = getenv("FAKE_CUDA_DEVICES"); *n = e ? atoi(e) : 1; return OK; }
int cuDeviceGet(int* d, int ordinal) { *d = ordinal; return OK; }
int cuDeviceGetName(char* name, int len, int d) { (void)d; strncpy(name, "Fake GPU", len); return OK; }
int cuDeviceGetAttribute(int* v, int attr, int d) { (void)d; *v = attr == 75 ? 9 : 0; return OK; }
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
int cuFuncSetAttribute(void* fn, int attribute, int value) { return fn && attribute == 8 && value >= 0 && value <= 232448 ? OK : INVALID_VALUE; }
int cuMemAlloc_v2(uint64_t* p, size_t bytes) { *p = (uint64_t)(uintptr_t)malloc(bytes); return *p ? OK : INVALID_VALUE; }
int cuMemFree_v2(uint64_t p) { free((void*)(uintptr_t)p); return OK; }
int cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t n) { memcpy((void*)(uintptr_t)dst, src, n); return OK; }
int cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t n) { memcpy(dst, (const void*)(uintptr_t)src, n); return OK; }
int cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t n) { memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, n); return OK; }
int cuMemsetD8_v2(uint64_t dst, unsigned char v, size_t n) { memset((void*)(uintptr_t)dst, v, n); return OK; }
int cuLaunchKernel(void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared,
                   void* stream, void** params, void** extra) {
  (void)shared; (void)stream; (void)extra;
  if (!fn || !params || !params[0]) return INVALID_VALUE;
  last.count++;
  strncpy(last.name, (const char*)fn, sizeof last.name - 1);
  unsigned d[6] = {gx, gy, gz, bx, by, bz};
  memcpy(last.dims, d, sizeof d);
  const char* n = getenv("FAKE_CUDA_ARGS_BYTES");
  memcpy(last.args, params[0], n && atoi(n) <= ARGS_MAX ? (size_t)atoi(n) : 0);
  return OK;
}
int cuStreamCreate(void** s, unsigned flags) { (void)flags; *s = (void*)&last; return OK; }
int cuStreamSynchronize(void* s) { (void)s; return OK; }
int cuStreamDestroy_v2(void* s) { (void)s; return OK; }
int cuEventCreate(void** e, unsigned flags) { (void)flags; *e = malloc(1); return OK; }
int cuEventRecord(void* e, void* s) { (void)e; (void)s; return OK; }
int cuEventSynchronize(void* e) { (void)e; return OK; }
int cuEventElapsedTime(float* ms, void* a, void* b) { (void)a; (void)b; *ms = 0; return OK; }
int cuEventDestroy_v2(void* e) { free(e); return OK; }
int cuGetErrorName(int code, const char** name) {
  switch (code) {
    case OK: *name = "CUDA_SUCCESS"; return OK;
    case INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; return OK;
    case NO_DEVICE: *name = "CUDA_ERROR_NO_DEVICE"; return OK;
    case INVALID_IMAGE: *name = "CUDA_ERROR_INVALID_IMAGE"; return OK;
    case NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; return OK;
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
