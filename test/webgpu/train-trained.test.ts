// The train entry on WebGPU against the CPU backend's on the trained tiny-bamba-a
// (../shared/models), eval text packed as [66, 14], the first sequence across its 64-token chunk:
// the loss within 1e-4 relative, the gradient's rel L2 over all weights and per weight < 1e-4
// (test/webgpu/train-helpers.ts). A file of its own: compiling its ~600 shaders on SwiftShader
// takes most of its time.

import { afterAll, describe, it } from 'vitest';
import { evalTextBatch, trainedTinyBamba } from '../grad/helpers.ts';
import { disposeBackends, expectTrainClose } from './train-helpers.ts';

afterAll(disposeBackends);

describe('the train entry on WebGPU against the CPU backend\'s', () => {
  it('trained tiny-bamba-a, eval text packed as [66, 14] (the first across its 64-token chunk)', async () => {
    const { c, w } = trainedTinyBamba();
    await expectTrainClose('tiny-bamba-a', c, w, evalTextBatch());
  }, 120_000);
});
