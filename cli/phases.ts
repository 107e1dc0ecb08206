// A build's phases on the terminal: one status line on stderr (only when it is a TTY), naming the
// phase in progress and the seconds it has taken, redrawn each second, cleared at the end, so a
// build of several minutes (nvcc for Bamba-9B) says what it is doing. Off a TTY it prints nothing.

export interface Phases {
  /** Phase `name` starts (the previous one is done). */
  start(name: string): void;
  /** Clears the line. */
  end(): void;
}

export function phases(what: string, total: number, stream: NodeJS.WriteStream = process.stderr): Phases {
  if (!stream.isTTY) return { start: () => {}, end: () => {} };
  let n = 0, name = '', since = 0;
  const draw = () => {
    const line = `${what} [${n}/${total}] ${name} ${((performance.now() - since) / 1000).toFixed(0)} s`;
    stream.write(`\r${line.slice(0, (stream.columns || 80) - 1)}\x1b[K`);
  };
  const timer = setInterval(draw, 1000);
  timer.unref();
  return {
    start(next) {
      n++;
      name = next;
      since = performance.now();
      draw();
    },
    end() {
      clearInterval(timer);
      stream.write('\r\x1b[K');
    },
  };
}
