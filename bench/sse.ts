// Server-sent events as the bench clients read them from `archc serve`: the complete events in what
// has arrived (each `data: ` line parsed as JSON; the closing [DONE] dropped) and the text after the
// last complete one, kept for the next chunk.

export function sseEvents(buf: string): { events: Record<string, any>[]; rest: string } {
  const events: Record<string, any>[] = [];
  let at;
  while ((at = buf.indexOf('\n\n')) >= 0) {
    const line = buf.slice(0, at).replace(/^data: /, '');
    buf = buf.slice(at + 2);
    if (line !== '[DONE]') events.push(JSON.parse(line));
  }
  return { events, rest: buf };
}
