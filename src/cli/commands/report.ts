import type { CommandModule } from 'yargs';
import { buildRunReport } from '../../evolve/report.js';
import { reportText } from '../../evolve/report-format.js';
import { readRunFiles } from '../../evolve/report-read.js';
import { UserError } from '../../util/errors.js';
import { printJson, withJson } from '../options.js';

interface ReportArgs {
  dir: string;
  json: boolean;
  top: number;
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report <dir>',
  describe:
    'Report on an evolution run folder (finished, stopped or running): best vs seed, lineage, top programs, cost, refusals, failures; read-only',
  builder: (y) =>
    withJson(y)
      .positional('dir', {
        type: 'string',
        demandOption: true,
        describe: 'The run folder (--out of adrs evolve)',
      })
      .option('top', { type: 'number', default: 10, describe: 'How many of the best programs to list' })
      .example('$0 report runs/evolve-2025-01-01-12-00-00', '')
      .example('$0 report runs/evolve-2025-01-01-12-00-00 --json --top 3', ''),
  handler: (argv) => {
    if (!Number.isInteger(argv.top) || argv.top < 0)
      throw new UserError(`--top must be a non-negative integer, got ${argv.top}`);
    const report = buildRunReport(readRunFiles(argv.dir), { top: argv.top });
    if (argv.json) printJson(report);
    else console.log(reportText(report));
  },
};
