import type { CommandModule } from 'yargs';
import { devicesCommand } from './devices.js';

// biome-ignore lint/suspicious/noExplicitAny: yargs command modules differ in their argument types.
export const commands: CommandModule<any, any>[] = [devicesCommand];
