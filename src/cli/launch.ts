/**
 * The `adrs` executable's entry. Runs the CLI in a child process behind a launcher that keeps
 * Dawn's start-up warnings off the user's screen (see launch/native-stderr-filter.ts), except with
 * --verbose or ADRS_NATIVE_STDERR=show, which run the CLI in this process with nothing filtered.
 */
import { fileURLToPath } from 'node:url';
import { adoptLauncherStreams } from './launch/launched-child.js';
import { launch } from './launch/launcher.js';

const args = process.argv.slice(2);
const unfiltered = args.includes('--verbose') || process.env.ADRS_NATIVE_STDERR === 'show';

// Only the child imports the CLI: the launcher process stays small, and the CLI loads once.
if (adoptLauncherStreams() || unfiltered) await (await import('./main.js')).runAsEntry();
else launch({ entry: fileURLToPath(import.meta.url), args });
