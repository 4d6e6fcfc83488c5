import type { CommandModule } from 'yargs';
import { benchCommand } from './bench.js';
import { devicesCommand } from './devices.js';
import { evalCommand } from './eval.js';
import { evolveCommand } from './evolve.js';
import { profileCommand } from './profile.js';
import { rebalanceCommand } from './rebalance.js';
import { reportCommand } from './report.js';
import { simulateCommand } from './simulate.js';
import { traceCommand } from './trace.js';
import { workerCommand } from './worker.js';

// biome-ignore lint/suspicious/noExplicitAny: yargs command modules differ in their argument types.
export const commands: CommandModule<any, any>[] = [
  devicesCommand,
  rebalanceCommand,
  benchCommand,
  simulateCommand,
  evalCommand,
  traceCommand,
  profileCommand,
  evolveCommand,
  reportCommand,
  workerCommand,
];
