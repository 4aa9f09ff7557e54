import type { Command } from 'commander';
import { displayName, nameToText } from '../names';
import { evaluateGates, humanizeBytes, parseGates, type GateResult } from '../query/dive-gates';
import { diveEfficiency } from '../query/efficiency';
import { addImageOptions, reporting, withImage, type ImageOptions } from './common';

interface EfficiencyOptions extends ImageOptions {
  json?: boolean;
  ci?: boolean;
  lowestEfficiency?: string;
  highestWastedBytes?: string;
  highestUserWastedPercent?: string;
}

const HELP = `
Measures how much of the image is wasted the way dive does (dive's "image efficiency"), with
the same numbers dive prints for the same image:

  efficiency         the sum of each path's smallest size over the sum of all its sizes, over
                     the leaf paths of every layer (a path written in three layers counts three
                     times; a whiteout counts what it removes from the layers below)
  wastedBytes        the cumulative size of every path found in more than one layer
  userWastedPercent  wastedBytes over the size of the user layers (all but the first), a ratio

followed by the inefficient paths, largest cumulative size first.

Gates, as dive --ci has them: each gate prints PASS or FAIL (SKIP when disabled) and any FAIL
makes the exit code 1, so a CI step can stop a wasteful image. --ci turns on dive's defaults
(--lowest-efficiency 0.9 --highest-user-wasted-percent 0.1); a value of 'disabled' turns one off.

  --lowest-efficiency R             fail when efficiency < R (0-1)
  --highest-wasted-bytes SIZE       fail when wastedBytes > SIZE: 20MB (10^6), 20 MiB (2^20),
                                    1048576 (bytes), as dive parses it
  --highest-user-wasted-percent R   fail when userWastedPercent > R (0-1, a ratio: 0.1 is 10%)

Examples:
  ocimount efficiency myapp.tar
  ocimount efficiency --ci myapp.tar                                  # dive --ci's defaults
  ocimount efficiency myapp.tar --lowest-efficiency 0.95 --highest-wasted-bytes 20MB
  docker save myapp:1.0 | ocimount efficiency - --highest-user-wasted-percent 0.2
  ocimount efficiency --json myapp.tar | jq '.inefficiencies[:5]'
`;

export function registerEfficiency(program: Command): Command {
  return addImageOptions(
    program
      .command('efficiency <image>')
      .description('wasted space across layers, measured as dive measures it; CI gates like dive --ci')
      .option('--lowest-efficiency <ratio>', 'gate: fail when the efficiency is below this (0-1)')
      .option('--highest-wasted-bytes <size>', 'gate: fail when more bytes than this are wasted (20MB, 20 MiB, bytes)')
      .option('--highest-user-wasted-percent <ratio>', 'gate: fail when wasted bytes over user-layer bytes is above this (0-1)')
      .option('--ci', "dive --ci's default gates: --lowest-efficiency 0.9 --highest-user-wasted-percent 0.1")
      .option('--json', 'print one JSON document'),
  )
    .addHelpText('after', HELP)
    .action(
      reporting(async (image: string, opts: EfficiencyOptions) => {
        const gates = parseGates(opts, !!opts.ci);
        await withImage(image, opts, async (view) => {
          const report = diveEfficiency(view.applied.map((p) => view.layers[p].index));
          const results = evaluateGates(gates, report);
          const pass = results.every((r) => r.status !== 'FAIL');
          if (opts.json) {
            const doc = {
              archive: image,
              image: view.image.record.position,
              efficiency: report.efficiency,
              sizeBytes: report.sizeBytes,
              userSizeBytes: report.userSizeBytes,
              wastedBytes: report.wastedBytes,
              userWastedPercent: Number.isFinite(report.userWastedPercent) ? report.userWastedPercent : null,
              inefficiencies: report.inefficiencies.map((i) => ({ path: nameToText(i.path), count: i.count, cumulativeSize: i.cumulativeSize })),
              ...(results.length && { gates: results.map((r) => ({ name: r.name, status: r.status, message: r.message })), pass }),
            };
            process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
          } else {
            process.stdout.write(textReport(report, results, pass));
          }
          if (!pass) process.exitCode = 1;
        });
      }),
    );
}

function textReport(r: ReturnType<typeof diveEfficiency>, results: GateResult[], pass: boolean): string {
  const out: string[] = ['Analysis:'];
  out.push(`  ${'efficiency:'.padEnd(18)} ${(r.efficiency * 100).toFixed(2)} %`);
  out.push(`  ${'wastedBytes:'.padEnd(18)} ${r.wastedBytes} bytes${r.wastedBytes > 0 ? ` (${humanizeBytes(r.wastedBytes)})` : ''}`);
  const pct = r.wastedBytes > 0 && Number.isFinite(r.userWastedPercent) ? `${(r.userWastedPercent * 100).toFixed(2)} %` : '0 %';
  out.push(`  ${'userWastedPercent:'.padEnd(18)} ${pct}`, '');
  if (r.inefficiencies.length === 0) out.push('Inefficient Files: (None)');
  else {
    out.push('Inefficient Files:', `  ${'Count'.padEnd(5)}  ${'Wasted Space'.padEnd(12)}  File Path`);
    for (const i of r.inefficiencies) out.push(`  ${String(i.count).padEnd(5)}  ${humanizeBytes(i.cumulativeSize).padEnd(12)}  ${displayName(i.path)}`);
  }
  if (results.length) {
    out.push('', 'Evaluation:');
    for (const g of results) out.push(`  ${g.status}  ${g.name} (${g.message})`);
    const tally = (s: GateResult['status']) => results.filter((g) => g.status === s).length;
    const parts = [['pass', tally('PASS')], ['fail', tally('FAIL')], ['skip', tally('SKIP')]].filter(([, n]) => (n as number) > 0).map(([k, n]) => `${k}:${n}`);
    out.push('', `${pass ? 'PASS' : 'FAIL'} [${parts.join(' ')}]`);
  }
  return `${out.join('\n')}\n`;
}
