// `archc serve MODEL.arch --weights DIR`: an OpenAI-compatible HTTP server over one loaded model
// (cli/serve/: the routes, continuous batching over state slots, the state cache, chat templates).
// Every flag is checked, and the chat template parsed, before the weights load.

import { basename, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { BACKEND_NAMES } from '../runtime/targets.ts';
import { withCommon } from './common.ts';
import { quantizeOption, withQuantize } from './quant.ts';
import { type LoadFlags, loadModel, numberFlag, usage, withStateFormat } from './run.ts';

type ServeFlags = LoadFlags & {
  host: string; port: string; alias?: string; maxSequences: string; maxQueue: string; cacheBytes: string; maxBodyBytes: string; maxTokens: string; prefillChunk: string;
  snapshotEvery: string; maxConnections: string; headersTimeout: string; bodyTimeout: string; requestTimeout: string;
};

export function registerServeCommand(p: Command): void {
  withStateFormat(withQuantize(withCommon(p.command('serve <file>').description('serve the model over HTTP with the OpenAI API (chat and text completions, streamed or not)'))))
    .requiredOption('--weights <dir>', 'checkpoint directory')
    .option('--host <host>', 'the address to listen on', '127.0.0.1')
    .option('--port <n>', 'the port (0: any free one)', '8080')
    .option('--alias <name>', 'the model id clients name (default: the checkpoint directory\'s name)')
    .option('--max-sequences <n>', 'requests decoding at once, each in a state slot (at most 128)', '8')
    .option('--max-queue <n>', 'requests waiting for a slot; more are refused with 429', '64')
    .option('--cache-bytes <n>', 'bytes of conversation state kept to resume prompts that extend it (0: off)', String(256 * 2 ** 20))
    .option('--max-body-bytes <n>', 'bytes of one request body; more are refused with 413', String(2 ** 20))
    .option('--max-tokens <n>', 'tokens one reply may ask for', '4096')
    .option('--prefill-chunk <n>', 'prompt tokens read between two decode steps; a longer prompt is read in pieces', '512')
    .option('--snapshot-every <n>', 'cache a prompt\'s state every n tokens inside it, so prompts sharing a beginning (a system prompt) resume there (0: at its end only)', '512')
    .option('--max-connections <n>', 'connections open at once; more are dropped as they come', '1024')
    .option('--headers-timeout <s>', 'seconds a client has to send its request headers (then 408)', '30')
    .option('--body-timeout <s>', 'seconds a client has to send its whole request (then 408)', '60')
    .option('--request-timeout <s>', 'seconds a request may take, waiting and replying, before it is cancelled with 503 (0: no limit)', '600')
    .option('--capacity <n>', 'tokens one sequence may hold, prompt and reply (default: the model\'s context param)')
    .option('--allow-extra', 'accept checkpoint tensors the model does not use')
    .option('--no-check-weights', 'load weights holding NaN or infinities')
    .addOption(new Option('--backend <backend>', 'where to run').choices(BACKEND_NAMES).default('wasm'))
    .option('--cuda-arch <archs>', 'backend cuda: architectures to compile the kernels for', 'sm_80,sm_90')
    .action(async (file: string, o: ServeFlags) => {
      const int = (v: string, flag: string, min: number, max?: number) => numberFlag(v, flag, { int: true, min, max, what: max !== undefined ? `an integer from ${min} to ${max}` : min ? 'a positive integer' : 'an integer ≥ 0' })!;
      const port = int(o.port, '--port', 0, 65535);
      // each request decoding holds a slot, and so does a finished one while its state is saved
      const slots = int(o.maxSequences, '--max-sequences', 1, 128);
      const queue = int(o.maxQueue, '--max-queue', 1);
      const cacheBytes = int(o.cacheBytes, '--cache-bytes', 0);
      const maxBodyBytes = int(o.maxBodyBytes, '--max-body-bytes', 1);
      const maxTokens = int(o.maxTokens, '--max-tokens', 1);
      const prefillChunk = int(o.prefillChunk, '--prefill-chunk', 1);
      const snapshotEvery = int(o.snapshotEvery, '--snapshot-every', 0);
      const maxConnections = int(o.maxConnections, '--max-connections', 1);
      const headersTimeoutMs = int(o.headersTimeout, '--headers-timeout', 1) * 1000;
      const bodyTimeoutMs = int(o.bodyTimeout, '--body-timeout', 1) * 1000;
      const requestTimeoutMs = int(o.requestTimeout, '--request-timeout', 0) * 1000;
      if (bodyTimeoutMs < headersTimeoutMs) usage('--body-timeout', `${o.bodyTimeout} s is less than --headers-timeout (${o.headersTimeout} s): the whole request includes its headers`);
      quantizeOption(o);
      const { loadChatTemplate } = await import('./serve/chat.ts');
      const template = loadChatTemplate(o.weights);
      const model = await loadModel(file, o);
      const { serve } = await import('./serve/server.ts');
      const id = o.alias ?? basename(resolve(o.weights));
      const s = await serve(model, o.host, port, {
        id, template, slots, queue, cacheBytes, maxBodyBytes, maxTokens, prefillChunk, snapshotEvery, maxConnections, headersTimeoutMs, bodyTimeoutMs, requestTimeoutMs,
        log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
      });
      process.stderr.write(`serving ${id} at ${s.url}/v1 (${slots} sequences at once, queue ${queue}, state cache ${cacheBytes} bytes${template ? '' : ', no chat template: /v1/completions only'})\n`);
      // runs until a signal; in-flight streams are cut
      await new Promise<void>((done) => {
        const stop = () => void s.close().then(done);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
