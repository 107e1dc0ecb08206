// Runs generated programs through the whole pipeline in a child process (test/fuzz/compile-child.ts),
// one at a time, so that a crash, a hang or running out of memory is observed rather than suffered:
// a program that has not finished after `hangMs` is a hang (the child is killed and restarted), a
// child that dies is a crash. Everything here is asynchronous: the caller's event loop stays free.

import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import type { Job, Outcome } from './compile-child.ts';

export interface Result<J extends Job = Job> {
  readonly job: J;
  readonly kind: Outcome['kind'] | 'hang' | 'died';
  readonly detail: readonly string[];
  readonly ms: number;
}

export interface RunOptions<J extends Job = Job> {
  /** A program running longer than this is a hang (default 90 s: well past every limit; the slowest
   *  program within the limits, about 4,096 ops through lowering and three renderers, takes 4-16 s). */
  readonly hangMs?: number;
  /** The child's heap limit in MB (default 2048): a program that needs more is a crash. */
  readonly heapMb?: number;
  readonly onResult?: (r: Result<J>, index: number) => void;
  /** Child processes at once (default 1). */
  readonly concurrency?: number;
}

const CHILD = join(import.meta.dirname, 'compile-child.ts');

class Child {
  private proc: ChildProcess;
  private ready: Promise<void>;
  private pending?: { resolve: (o: Outcome | 'died') => void };

  constructor(heapMb: number) {
    this.proc = fork(CHILD, [], { cwd: join(import.meta.dirname, '..', '..'), execArgv: ['--import', 'tsx', `--max-old-space-size=${heapMb}`], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    this.ready = new Promise((resolve) => {
      this.proc.once('message', () => resolve());
    });
    this.proc.on('message', (m: Outcome | { ready: true }) => {
      if ('id' in m) this.pending?.resolve(m);
    });
    this.proc.on('exit', () => this.pending?.resolve('died'));
  }

  async run(job: Job, hangMs: number): Promise<Outcome | 'died' | 'hang'> {
    await this.ready;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        resolve('hang');
      }, hangMs);
      this.pending = {
        resolve: (o) => {
          clearTimeout(timer);
          this.pending = undefined;
          resolve(o);
        },
      };
      this.proc.send(job);
    });
  }

  kill(): void {
    this.proc.removeAllListeners('exit');
    this.proc.kill('SIGKILL');
  }
}

/** Compiles every job in child processes (`concurrency` of them, default 1); results in order. */
export async function runPrograms<J extends Job>(jobs: readonly J[], opts: RunOptions<J> = {}): Promise<Result<J>[]> {
  const hangMs = opts.hangMs ?? 90_000;
  const heapMb = opts.heapMb ?? 2048;
  const results: Result<J>[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    let child = new Child(heapMb);
    try {
      while (next < jobs.length) {
        const i = next++;
        const job = jobs[i]!;
        const t0 = performance.now();
        const o = await child.run(job, hangMs);
        let r: Result<J>;
        if (o === 'hang' || o === 'died') {
          child.kill();
          child = new Child(heapMb);
          r = { job, kind: o, detail: [], ms: performance.now() - t0 };
        } else {
          r = { job, kind: o.kind, detail: o.detail, ms: o.ms };
        }
        results[i] = r;
        opts.onResult?.(r, i);
      }
    } finally {
      child.kill();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 1) }, worker));
  return results;
}
