import type { Argv } from 'yargs';
import { DEFAULT_HISTORY } from '../eplb/balancer.js';
import { DEEPSEEK_V3_SHAPE, SHAPE_TEXT, type Shape, validateShape } from '../eplb/shape.js';
import { check } from '../util/errors.js';

/**
 * The flags that describe a deployment — replicas R, GPUs P, nodes N, expert groups G — and the
 * history each balancer call gets, declared once for every command (bench, simulate, rebalance,
 * profile, eval; evolve's come from its config schema, with the same words). A flag left out means
 * DeepSeek-V3's deployment (288 slots, 32 GPUs, 4 nodes) and the trace's own groups.
 */
export type DeploymentKey = 'replicas' | 'gpus' | 'nodes' | 'groups';
export const DEPLOYMENT_KEYS: readonly DeploymentKey[] = ['replicas', 'gpus', 'nodes', 'groups'];

export interface DeploymentArgs {
  replicas?: number;
  gpus?: number;
  nodes?: number;
  groups?: number;
  history?: number;
}

export interface DeploymentFlagOptions {
  /** Before each description, e.g. 'With DIR:' (profile's flags apply to a candidate folder only). */
  context?: string;
  /** A default of this command other than the rule above (rebalance: groups 8, as DeepSeek-V3's). */
  defaults?: Partial<Record<DeploymentKey, number>>;
  /** Also --history (windows per balancer call, the latest included), with this description. */
  history?: string;
  /** The deployment flags to declare (default all four). */
  keys?: readonly DeploymentKey[];
}

const unsetText: Record<DeploymentKey, string> = {
  replicas: `default ${DEEPSEEK_V3_SHAPE.replicas}`,
  gpus: `default ${DEEPSEEK_V3_SHAPE.gpus}`,
  nodes: `default ${DEEPSEEK_V3_SHAPE.nodes}`,
  groups: "default: the trace's",
};

const capitalized = (s: string): string => s[0]!.toUpperCase() + s.slice(1);

/** Declares --replicas, --gpus, --nodes, --groups (and --history when asked) on a command. */
export function withDeployment<T>(y: Argv<T>, options: DeploymentFlagOptions = {}): Argv<T & DeploymentArgs> {
  const describe = (text: string) => (options.context ? `${options.context} ${text}` : capitalized(text));
  let out = y as Argv<T & DeploymentArgs>;
  for (const key of options.keys ?? DEPLOYMENT_KEYS) {
    const fixed = options.defaults?.[key];
    out = out.option(key, {
      type: 'number',
      describe: describe(fixed === undefined ? `${SHAPE_TEXT[key]} (${unsetText[key]})` : SHAPE_TEXT[key]),
      ...(fixed !== undefined ? { default: fixed } : {}),
    }) as Argv<T & DeploymentArgs>;
  }
  if (options.history !== undefined) {
    out = out.option('history', {
      type: 'number',
      default: DEFAULT_HISTORY,
      describe: describe(options.history),
    }) as Argv<T & DeploymentArgs>;
  }
  return out;
}

const positiveInt = (v: number | undefined, flag: string): void =>
  check(v === undefined || (Number.isInteger(v) && v >= 1), `--${flag} must be a positive integer, got ${v}`);

/** The deployment the flags describe: DeepSeek-V3's replicas, GPUs and nodes where left out; groups only when given. */
export function deploymentOf(
  argv: DeploymentArgs,
): Pick<Shape, 'replicas' | 'gpus' | 'nodes'> & { groups?: number } {
  for (const key of DEPLOYMENT_KEYS) positiveInt(argv[key], key);
  return {
    replicas: argv.replicas ?? DEEPSEEK_V3_SHAPE.replicas,
    gpus: argv.gpus ?? DEEPSEEK_V3_SHAPE.gpus,
    nodes: argv.nodes ?? DEEPSEEK_V3_SHAPE.nodes,
    ...(argv.groups !== undefined ? { groups: argv.groups } : {}),
  };
}

/** --history, checked: the windows each balancer call gets. */
export function historyOf(argv: DeploymentArgs): number {
  positiveInt(argv.history, 'history');
  return argv.history ?? DEFAULT_HISTORY;
}

/** The Shape of a model (a trace's layers, experts and groups) on the deployment the flags describe. */
export function shapeOf(model: Pick<Shape, 'layers' | 'experts' | 'groups'>, argv: DeploymentArgs): Shape {
  const { layers, experts, groups } = model;
  const shape: Shape = { layers, experts, groups, ...deploymentOf(argv) };
  validateShape(shape);
  return shape;
}
