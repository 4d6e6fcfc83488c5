import { UserError } from '../util/errors.js';
import type { Balancer } from './balancer.js';
import { noneBalancer, randomBalancer } from './balancers/baselines.js';
import { bldmSwapBalancer } from './balancers/bldm-swap.js';
import { deepseekBalancer } from './balancers/deepseek.js';
import { forecastBalancer } from './balancers/forecast.js';
import { gpuLptBalancer } from './balancers/gpu-balancer.js';

/**
 * Every named balancer. The first entry is the default (the best one we have): `adrs rebalance`
 * without --balancer runs it. Add a balancer by adding it here. `bldm-swap` is the same packing placed
 * on the latest window alone (last-window placement), kept for comparison.
 */
export const BALANCERS: readonly Balancer[] = [
  forecastBalancer,
  bldmSwapBalancer,
  deepseekBalancer,
  gpuLptBalancer,
  noneBalancer,
  randomBalancer,
];

export function listBalancers(): readonly Balancer[] {
  return BALANCERS;
}

export function defaultBalancer(): Balancer {
  return BALANCERS[0]!;
}

export function getBalancer(name: string): Balancer {
  const found = BALANCERS.find((b) => b.name === name);
  if (!found) {
    throw new UserError(
      `unknown balancer '${name}'; choose one of: ${BALANCERS.map((b) => b.name).join(', ')}`,
    );
  }
  return found;
}
