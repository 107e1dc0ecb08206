// WebGPU with q4 weights against the CPU reference of the same format: the cases of
// quant-compare.ts (random tiny Bamba in both renderings and split over bindings, the trained
// tiny-bamba-a), one file per format so that the two run side by side.

import { quantCases } from './quant-compare.ts';

quantCases('q4');
