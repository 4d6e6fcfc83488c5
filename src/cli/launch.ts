/**
 * The `adrs` executable's entry. Runs the CLI in a child process behind a launcher that keeps
 * Dawn's start-up warnings off the user's screen (see launch/native-stderr-filter.ts), except with
 * --verbose or ADRS_NATIVE_STDERR=show, which run the CLI in this process with nothing filtered, and
 * under a debugger (node --inspect…), which must see the CLI in the process it attached to.
 */
import { fileURLToPath } from 'node:url';
import { adoptLauncherStreams } from './launch/launched-child.js';
import { launch } from './launch/launcher.js';
import { wantsVerbose } from './verbose.js';

const args = process.argv.slice(2);
const unfiltered =
  wantsVerbose(args) ||
  process.env.ADRS_NATIVE_STDERR === 'show' ||
  process.execArgv.some((a) => a.startsWith('--inspect'));

// Only the child imports the CLI: the launcher process stays small, and the CLI loads once.
if (adoptLauncherStreams() || unfiltered) await (await import('./main.js')).runAsEntry();
else launch({ entry: fileURLToPath(import.meta.url), args });
