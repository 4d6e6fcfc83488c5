import type { CommandModule } from 'yargs';
import { buildRunReport } from '../../evolve/report.js';
import { reportText } from '../../evolve/report-format.js';
import { readRunFiles } from '../../evolve/report-read.js';
import { runHtml } from '../../report/run-html.js';
import { buildRunPageData } from '../../report/run-page-data.js';
import { serveRun } from '../../report/serve.js';
import { UserError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/files.js';
import { note, say } from '../io.js';
import { printJson, servePort, withJson } from '../options.js';

interface ReportArgs {
  dir: string;
  json: boolean;
  top: number;
  html?: string;
  serve?: number | boolean;
  host: string;
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report <dir>',
  describe:
    'Report on an evolution run folder (finished, stopped or running): best vs seed, lineage, top programs, cost, refusals, failures; read-only. --html writes a self-contained page with plots, --serve a live dashboard',
  builder: (y) =>
    withJson(y)
      .positional('dir', {
        type: 'string',
        demandOption: true,
        describe: 'The run folder (--out of adrs evolve)',
      })
      .option('top', { type: 'number', default: 10, describe: 'How many of the best programs to list' })
      .option('html', {
        type: 'string',
        describe:
          'Also write a self-contained HTML report (plots, lineage diffs; no network needed) to this file',
      })
      .option('serve', {
        describe:
          'Serve a live dashboard of the run on this port (no value: a free port), updated as events.jsonl grows; read-only; until Ctrl-C',
      })
      .option('host', {
        type: 'string',
        default: '127.0.0.1',
        describe:
          'Address the dashboard listens on (loopback by default; anything else exposes the run to the network)',
      })
      .example('$0 report runs/evolve-2025-01-01-12-00-00', '')
      .example('$0 report runs/evolve-2025-01-01-12-00-00 --html report.html', '')
      .example('$0 report runs/evolve-2025-01-01-12-00-00 --serve 8080', '')
      .example('$0 report runs/evolve-2025-01-01-12-00-00 --json --top 3', '') as never,
  handler: async (argv) => {
    if (!Number.isInteger(argv.top) || argv.top < 0)
      throw new UserError(`--top must be a non-negative integer, got ${argv.top}`);
    const port = servePort(argv.serve as number | boolean | undefined);
    const files = readRunFiles(argv.dir);
    const report = buildRunReport(files, { top: argv.top });
    if (argv.html) {
      writeFileAtomic(argv.html, runHtml(buildRunPageData(files, report)));
      if (!argv.json) note(`wrote ${argv.html}`);
    }
    if (argv.json) printJson(report);
    else if (port === null || !argv.html) say(reportText(report));
    if (port === null) return;
    const dashboard = await serveRun(argv.dir, { port, host: argv.host });
    note(`dashboard of ${argv.dir} at ${dashboard.url} (read-only; Ctrl-C stops it)`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await dashboard.close();
  },
};
