// Worker-thread entry of bldm-swap: runs its share of the layers (see src/eplb/layer-parallel.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type LayerWorkerData, serveLayers } from '../layer-parallel.js';
import { BldmSwapLayers } from './bldm-swap.js';

const data = workerData as LayerWorkerData;
serveLayers(data, new BldmSwapLayers(data.shape), () => parentPort?.postMessage('ready'));
