// A decode step as one CUDA Graph: its launches are held back while the step is dispatched, then
// run together — captured from the backend's stream into a graph the first time a shape (entry, T,
// S) is seen, the graph replayed by one cuGraphLaunch while the step's launches stay the same
// (functions, grids, shared memory and argument bytes, so the same arena, pool, batch and weight
// addresses), captured anew when they differ (the arena or the pool grown, other kernels chosen).
// What a graph reads per step (tokens, positions, lengths, slots) lives in device memory, written
// before the launch, so a replay sees each step's batch. A few shapes keep their graph at once (a
// server alternates batch sizes); the one used longest ago is dropped past that.

import { CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, CUDA_SUCCESS, type CudaDriver, type Handle, check } from './driver.ts';

/** One kernel launch as the backend makes it. */
export interface StepLaunch {
  readonly fn: Handle;
  readonly grid: readonly number[];
  readonly block: readonly number[];
  /** Bytes of dynamic shared memory. */
  readonly shared: number;
  /** The packed ArchcArgs (the driver copies them at launch and at capture). */
  readonly args: Uint8Array;
  /** The kernel, for messages. */
  readonly what: string;
}

/** Shapes that keep a graph at once. */
export const GRAPH_SHAPES = 8;

/** Whether graphs are used when a load says nothing: ARCHC_CUDA_GRAPHS=0 turns them off. */
export const graphsByDefault = (): boolean => process.env.ARCHC_CUDA_GRAPHS !== '0';

export class StepGraphs {
  /** By shape, in the order last used (the first is dropped past GRAPH_SHAPES). */
  private readonly held = new Map<string, { readonly launches: readonly StepLaunch[]; readonly exec: Handle }>();
  /** Steps captured into a graph, and steps run by replaying one. */
  readonly counts = { captures: 0, replays: 0 };

  constructor(private readonly d: CudaDriver, private readonly stream: Handle, private readonly launch: (l: StepLaunch) => void) {}

  /** Runs the launches of one step of `shape` as a graph: the one held for the shape when its
   *  launches are these, else one captured now. */
  run(shape: string, launches: readonly StepLaunch[]): void {
    const g = this.held.get(shape);
    this.held.delete(shape);
    if (g && sameLaunches(g.launches, launches)) {
      this.held.set(shape, g);
      this.counts.replays++;
    } else {
      if (g) this.d.cuGraphExecDestroy(g.exec);
      for (const [old, h] of this.held) {
        if (this.held.size < GRAPH_SHAPES) break;
        this.d.cuGraphExecDestroy(h.exec);
        this.held.delete(old);
      }
      this.held.set(shape, { launches, exec: this.capture(shape, launches) });
      this.counts.captures++;
    }
    check(this.d, this.d.cuGraphLaunch(this.held.get(shape)!.exec, this.stream), `cuGraphLaunch(${shape})`);
  }

  /** The launches captured from the stream (nothing runs) and instantiated. */
  private capture(shape: string, launches: readonly StepLaunch[]): Handle {
    const d = this.d;
    check(d, d.cuStreamBeginCapture(this.stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), `cuStreamBeginCapture(${shape})`);
    const graph: Handle[] = [null];
    try {
      for (const l of launches) this.launch(l);
    } catch (e) {
      // the stream leaves capture mode either way; a partial graph is dropped
      if (d.cuStreamEndCapture(this.stream, graph) === CUDA_SUCCESS && graph[0]) d.cuGraphDestroy(graph[0]);
      throw e;
    }
    check(d, d.cuStreamEndCapture(this.stream, graph), `cuStreamEndCapture(${shape})`);
    const exec: Handle[] = [null];
    const r = d.cuGraphInstantiateWithFlags(exec, graph[0], 0);
    d.cuGraphDestroy(graph[0]);
    check(d, r, `cuGraphInstantiate(${shape}, ${launches.length} launches)`);
    return exec[0];
  }

  dispose(): void {
    for (const g of this.held.values()) this.d.cuGraphExecDestroy(g.exec);
    this.held.clear();
  }
}

function sameLaunches(a: readonly StepLaunch[], b: readonly StepLaunch[]): boolean {
  return a.length === b.length && a.every((x, i) => {
    const y = b[i]!;
    return x.fn === y.fn && x.shared === y.shared && x.grid.every((g, j) => g === y.grid[j]) && x.block.every((g, j) => g === y.block[j])
      && Buffer.compare(x.args, y.args) === 0;
  });
}
