// The CUDA driver API as the backend uses it: the few libcuda functions it calls, bound through
// koffi (a C FFI with prebuilt binaries for each platform), and CUresult codes turned into
// RuntimeErrors that name the call and the error. The backend takes any object with these
// functions, so tests drive it with a stand-in library.

import { RuntimeError } from '../errors.ts';

/** An opaque driver handle (context, module, function, stream, event). */
export type Handle = unknown;
/** A device address (CUdeviceptr). */
export type DevicePtr = number | bigint;

/** The libcuda functions the backend calls; each returns a CUresult (0 = success). Out-parameters
 *  are one-element arrays the call fills in. */
export interface CudaDriver {
  /** The library that was opened (for messages). */
  readonly library: string;
  cuInit(flags: number): number;
  cuDriverGetVersion(version: number[]): number;
  cuDeviceGetCount(count: number[]): number;
  cuDeviceGet(device: number[], ordinal: number): number;
  cuDeviceGetName(name: Uint8Array, len: number, device: number): number;
  cuDeviceGetAttribute(value: number[], attribute: number, device: number): number;
  cuDevicePrimaryCtxRetain(ctx: Handle[], device: number): number;
  cuDevicePrimaryCtxRelease(device: number): number;
  cuCtxSetCurrent(ctx: Handle): number;
  cuModuleLoadData(module: Handle[], image: Uint8Array): number;
  cuModuleGetFunction(fn: Handle[], module: Handle, name: string): number;
  cuModuleUnload(module: Handle): number;
  cuFuncSetAttribute(fn: Handle, attribute: number, value: number): number;
  cuMemAlloc(ptr: DevicePtr[], bytes: number): number;
  cuMemFree(ptr: DevicePtr): number;
  cuMemcpyHtoD(dst: DevicePtr, src: Uint8Array, bytes: number): number;
  cuMemcpyDtoH(dst: Uint8Array, src: DevicePtr, bytes: number): number;
  cuMemcpyDtoD(dst: DevicePtr, src: DevicePtr, bytes: number): number;
  cuMemsetD8(dst: DevicePtr, value: number, bytes: number): number;
  /** One argument (ArchcArgs, packed): `params` is [its bytes]. */
  cuLaunchKernel(fn: Handle, gx: number, gy: number, gz: number, bx: number, by: number, bz: number,
    sharedBytes: number, stream: Handle, params: Uint8Array[], extra: null): number;
  cuStreamCreate(stream: Handle[], flags: number): number;
  cuStreamSynchronize(stream: Handle): number;
  cuStreamDestroy(stream: Handle): number;
  cuEventCreate(event: Handle[], flags: number): number;
  cuEventRecord(event: Handle, stream: Handle): number;
  cuEventSynchronize(event: Handle): number;
  cuEventElapsedTime(ms: number[], start: Handle, end: Handle): number;
  cuEventDestroy(event: Handle): number;
  cuGetErrorName(code: number, name: string[]): number;
  /** CUDA Graphs (runtime/cuda/graph.ts): a stream's launches captured into a graph, made executable,
   *  launched again. `mode` a CUstreamCaptureMode. */
  cuStreamBeginCapture(stream: Handle, mode: number): number;
  cuStreamEndCapture(stream: Handle, graph: Handle[]): number;
  cuGraphInstantiateWithFlags(exec: Handle[], graph: Handle, flags: number): number;
  cuGraphLaunch(exec: Handle, stream: Handle): number;
  cuGraphExecDestroy(exec: Handle): number;
  cuGraphDestroy(graph: Handle): number;
}

/** CUresult values the backend tells apart. */
export const CUDA_SUCCESS = 0;
export const CUDA_ERROR_NOT_FOUND = 500;
/** CUdevice_attribute values. */
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
/** CUstreamCaptureMode: calls the driver refuses during a capture are refused on the capturing
 *  thread only (another thread's model is not disturbed). */
export const CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;

/** The C declarations, by the name the driver exports (`_v2` where the ABI moved on). */
const DECLS: Readonly<Record<keyof Omit<CudaDriver, 'library'>, string>> = {
  cuInit: 'int cuInit(unsigned int flags)',
  cuDriverGetVersion: 'int cuDriverGetVersion(_Out_ int *version)',
  cuDeviceGetCount: 'int cuDeviceGetCount(_Out_ int *count)',
  cuDeviceGet: 'int cuDeviceGet(_Out_ int *device, int ordinal)',
  cuDeviceGetName: 'int cuDeviceGetName(void *name, int len, int device)',
  cuDeviceGetAttribute: 'int cuDeviceGetAttribute(_Out_ int *value, int attribute, int device)',
  cuDevicePrimaryCtxRetain: 'int cuDevicePrimaryCtxRetain(_Out_ CUhandle *ctx, int device)',
  cuDevicePrimaryCtxRelease: 'int cuDevicePrimaryCtxRelease_v2(int device)',
  cuCtxSetCurrent: 'int cuCtxSetCurrent(CUhandle ctx)',
  cuModuleLoadData: 'int cuModuleLoadData(_Out_ CUhandle *module, const void *image)',
  cuModuleGetFunction: 'int cuModuleGetFunction(_Out_ CUhandle *fn, CUhandle module, const char *name)',
  cuModuleUnload: 'int cuModuleUnload(CUhandle module)',
  cuFuncSetAttribute: 'int cuFuncSetAttribute(CUhandle fn, int attribute, int value)',
  cuMemAlloc: 'int cuMemAlloc_v2(_Out_ uint64_t *ptr, size_t bytes)',
  cuMemFree: 'int cuMemFree_v2(uint64_t ptr)',
  cuMemcpyHtoD: 'int cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t bytes)',
  cuMemcpyDtoH: 'int cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t bytes)',
  cuMemcpyDtoD: 'int cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t bytes)',
  cuMemsetD8: 'int cuMemsetD8_v2(uint64_t dst, uint8_t value, size_t bytes)',
  cuLaunchKernel: 'int cuLaunchKernel(CUhandle fn, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int sharedBytes, CUhandle stream, void **params, void **extra)',
  cuStreamCreate: 'int cuStreamCreate(_Out_ CUhandle *stream, unsigned int flags)',
  cuStreamSynchronize: 'int cuStreamSynchronize(CUhandle stream)',
  cuStreamDestroy: 'int cuStreamDestroy_v2(CUhandle stream)',
  cuEventCreate: 'int cuEventCreate(_Out_ CUhandle *event, unsigned int flags)',
  cuEventRecord: 'int cuEventRecord(CUhandle event, CUhandle stream)',
  cuEventSynchronize: 'int cuEventSynchronize(CUhandle event)',
  cuEventElapsedTime: 'int cuEventElapsedTime(_Out_ float *ms, CUhandle start, CUhandle end)',
  cuEventDestroy: 'int cuEventDestroy_v2(CUhandle event)',
  cuGetErrorName: 'int cuGetErrorName(int code, _Out_ const char **name)',
  cuStreamBeginCapture: 'int cuStreamBeginCapture_v2(CUhandle stream, int mode)',
  cuStreamEndCapture: 'int cuStreamEndCapture(CUhandle stream, _Out_ CUhandle *graph)',
  cuGraphInstantiateWithFlags: 'int cuGraphInstantiateWithFlags(_Out_ CUhandle *exec, CUhandle graph, uint64_t flags)',
  cuGraphLaunch: 'int cuGraphLaunch(CUhandle exec, CUhandle stream)',
  cuGraphExecDestroy: 'int cuGraphExecDestroy(CUhandle exec)',
  cuGraphDestroy: 'int cuGraphDestroy(CUhandle graph)',
};

/** The default library: libcuda.so.1 (nvcuda.dll on Windows), or ARCHC_LIBCUDA. */
export function defaultLibrary(): string {
  return process.env.ARCHC_LIBCUDA || (process.platform === 'win32' ? 'nvcuda.dll' : 'libcuda.so.1');
}

interface Koffi {
  load(path: string): { func(decl: string): (...args: unknown[]) => unknown };
  pointer(name: string, ref: unknown): unknown;
  opaque(): unknown;
}

let koffiModule: Koffi | null = null;

/** koffi, imported once (only the cuda backend needs it). */
export async function loadKoffi(): Promise<Koffi> {
  if (!koffiModule) {
    try {
      // by a name the package's compile does not resolve (koffi is an optional dependency)
      const name = 'koffi';
      koffiModule = ((await import(name)) as { default: Koffi }).default;
    } catch (e) {
      throw new RuntimeError('RT707', [e instanceof Error ? e.message : String(e)]);
    }
    koffiModule.pointer('CUhandle', koffiModule.opaque());
  }
  return koffiModule;
}

/** Opens the driver library and binds its functions; RT700 when there is none. */
export async function openDriver(library = defaultLibrary()): Promise<CudaDriver> {
  const koffi = await loadKoffi();
  let lib: ReturnType<Koffi['load']>;
  try {
    lib = koffi.load(library);
  } catch (e) {
    throw new RuntimeError('RT700', [library, e instanceof Error ? e.message.split('\n')[0] : String(e)]);
  }
  const out: Record<string, unknown> = { library };
  for (const [name, decl] of Object.entries(DECLS)) {
    try {
      out[name] = lib.func(decl);
    } catch (e) {
      throw new RuntimeError('RT700', [library, `it lacks ${decl.split('(')[0]!.split(' ').pop()}: ${e instanceof Error ? e.message : e}`]);
    }
  }
  return out as unknown as CudaDriver;
}

/** The name of a CUresult (`CUDA_ERROR_INVALID_IMAGE`), or its number when the driver has none. */
export function errorName(d: CudaDriver, code: number): string {
  const name: string[] = [''];
  return d.cuGetErrorName(code, name) === CUDA_SUCCESS && name[0] ? `${name[0]} (${code})` : `CUresult ${code}`;
}

/** Throws RT704 naming the call when `code` is not success. */
export function check(d: CudaDriver, code: number, call: string): void {
  if (code !== CUDA_SUCCESS) throw new RuntimeError('RT704', [call, errorName(d, code)]);
}

/** A device address as a BigInt (koffi gives numbers below 2^53). */
export const addr = (p: DevicePtr): bigint => (typeof p === 'bigint' ? p : BigInt(p));

/** cuInit, and a device `ordinal` there: RT701 when the driver does not start, RT702 without it. */
export function initDriver(d: CudaDriver, ordinal = 0): void {
  const init = d.cuInit(0);
  if (init !== CUDA_SUCCESS) throw new RuntimeError('RT701', [d.library, errorName(d, init)]);
  const count = [0];
  const c = d.cuDeviceGetCount(count);
  if (c !== CUDA_SUCCESS || count[0]! <= ordinal) {
    throw new RuntimeError('RT702', [d.library, c === CUDA_SUCCESS ? count[0] : 0, c === CUDA_SUCCESS ? (ordinal ? `; device ${ordinal} was asked for` : '') : ` (${errorName(d, c)})`]);
  }
}
