import { describe, expect, it } from 'vitest';
import yargs, { type Argv } from 'yargs';
import { commands } from '../src/cli/commands/index.js';
import { DEPLOYMENT_KEYS, deploymentOf, historyOf, shapeOf, withDeployment } from '../src/cli/deployment.js';
import { DEFAULT_HISTORY } from '../src/eplb/balancer.js';
import { DEEPSEEK_V3_SHAPE, SHAPE_TEXT } from '../src/eplb/shape.js';
import { CONFIG_FLAGS } from '../src/evolve/config.js';
import { UserError } from '../src/util/errors.js';
import { declaredOptions } from './helpers/cli.js';

/** The options a command declares, from its own builder. */
function optionsOf(name: string): string[] {
  const command = commands.find((c) => String(c.command).split(' ')[0] === name)!;
  return declaredOptions((command.builder as (y: Argv) => Argv)(yargs([])));
}

describe('the deployment flags', () => {
  it('are declared on every command that describes a deployment, in the same words as evolve’s', () => {
    for (const name of ['bench', 'simulate', 'rebalance', 'profile', 'eval', 'evolve'])
      expect(optionsOf(name), name).toEqual(expect.arrayContaining([...DEPLOYMENT_KEYS]));
    for (const key of DEPLOYMENT_KEYS)
      expect(CONFIG_FLAGS.find((f) => f.name === key)?.describe).toContain(SHAPE_TEXT[key]);
  });

  it('describe a left-out flag by its default, and take a command’s own default', async () => {
    const y = withDeployment(yargs(['--gpus', '16']), { defaults: { groups: 4 }, history: 'windows' });
    const argv = await y.parseAsync();
    expect([argv.gpus, argv.groups, argv.history, argv.replicas]).toEqual([
      16,
      4,
      DEFAULT_HISTORY,
      undefined,
    ]);
    expect(historyOf(argv)).toBe(DEFAULT_HISTORY);
  });

  it("map to the library's deployment: DeepSeek-V3's where left out, groups only when given", () => {
    expect(deploymentOf({})).toEqual({
      replicas: DEEPSEEK_V3_SHAPE.replicas,
      gpus: DEEPSEEK_V3_SHAPE.gpus,
      nodes: DEEPSEEK_V3_SHAPE.nodes,
    });
    expect(deploymentOf({ gpus: 8, groups: 2 })).toMatchObject({ gpus: 8, groups: 2 });
    const model = { layers: 2, experts: 16, groups: 4, name: 'not a shape key' };
    expect(shapeOf(model, { replicas: 32, gpus: 8, nodes: 2 })).toEqual({
      layers: 2,
      experts: 16,
      groups: 4,
      replicas: 32,
      gpus: 8,
      nodes: 2,
    });
    expect(shapeOf(model, { replicas: 32, gpus: 8, nodes: 2, groups: 8 }).groups).toBe(8);
  });

  it('refuse a bad value in one line naming the flag', () => {
    expect(() => deploymentOf({ nodes: 0 })).toThrow(
      new UserError('--nodes must be a positive integer, got 0'),
    );
    expect(() => deploymentOf({ gpus: 2.5 })).toThrow('--gpus must be a positive integer, got 2.5');
    expect(() => historyOf({ history: -1 })).toThrow('--history must be a positive integer, got -1');
    expect(() => shapeOf({ layers: 1, experts: 16, groups: 4 }, { replicas: 30, gpus: 8 })).toThrow(
      'replicas (30) must be divisible by gpus (8)',
    );
  });
});
