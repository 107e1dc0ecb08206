// The load progress bar on stderr, for every command that reads a checkpoint (run, forward, eval,
// quantize): checkpoint bytes read of the total, MB/s and the time left. Shown only when stderr is
// a terminal (a pipe or a file gets nothing); cli-progress loads only then.

import type { LoadProgress } from '../runtime/load.ts';

export interface LoadBar {
  update(p: LoadProgress, tensor: string): void;
  stop(): void;
}

const MB = 1e6;

/** A bar labelled `what` (e.g. `loading weights`), or null when stderr is not a TTY. */
export async function loadBar(what: string): Promise<LoadBar | null> {
  if (!process.stderr.isTTY) return null;
  const cliProgress = (await import('cli-progress')).default;
  const bar = new cliProgress.SingleBar({
    format: `${what} [{bar}] {read}/{all} MB, {rate} MB/s, ETA {eta_formatted} {tensor}`,
    clearOnComplete: true, stream: process.stderr, etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update(p, tensor) {
      const payload = { read: (p.bytesRead / MB).toFixed(0), all: (p.totalBytes / MB).toFixed(0), rate: (p.bytesPerSecond / MB).toFixed(0), tensor };
      if (!started) {
        bar.start(Math.max(1, p.totalBytes), 0, payload);
        started = true;
      }
      bar.update(p.bytesRead, payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
