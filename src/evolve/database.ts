import { assert } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { EvolveConfig, FeatureConfig } from './config.js';

export type Mutation = 'seed' | 'diff' | 'rewrite' | 'crossover';

/** What the database knows of an evaluated program (its files live in the run folder's program store). */
export interface ProgramRecord {
  id: string;
  hash: string;
  iteration: number;
  island: number;
  parents: string[];
  generation: number;
  mutation: Mutation;
  model: string | null;
  valid: boolean;
  score: number | null;
  metrics: Record<string, number>;
  /**
   * σ of one measurement of this program's score, where known: the evaluator's score_noise, or the
   * spread of its re-measurements in a comparison (src/evolve/selection.ts).
   */
  noise?: number;
}

interface Island {
  /** MAP-Elites grid: cell key → id of the best program in that cell. */
  grid: Record<string, string>;
  /** Valid programs living on this island (cell elites always kept). */
  members: string[];
}

export interface DatabaseState {
  programs: Record<string, ProgramRecord>;
  islands: Island[];
  archive: string[];
  best: string | null;
  migrations: number;
  /** Pooled noise of every comparison so far: sum of squared deviations and degrees of freedom. */
  noise?: { ss: number; dof: number };
}

/**
 * Islands with ring migration, a MAP-Elites grid per island over configured feature dimensions,
 * and a global elite archive. Every decision is a pure function of the committed programs and
 * the RNG it is handed, so a run replays and resumes identically.
 */
export class ProgramDatabase {
  private state: DatabaseState;
  constructor(
    private readonly search: EvolveConfig['search'],
    state?: DatabaseState,
  ) {
    this.state = state ?? {
      programs: {},
      islands: Array.from({ length: search.islands }, () => ({ grid: {}, members: [] })),
      archive: [],
      best: null,
      migrations: 0,
    };
  }

  toJSON(): DatabaseState {
    return this.state;
  }

  get(id: string): ProgramRecord {
    // Own keys only: an id such as "constructor" must not find Object's prototype.
    assert(this.has(id), `program ${id} is not in the database`);
    return this.state.programs[id]!;
  }

  has(id: string): boolean {
    return Object.hasOwn(this.state.programs, id);
  }

  get size(): number {
    return Object.keys(this.state.programs).length;
  }

  best(): ProgramRecord | null {
    return this.state.best ? this.get(this.state.best) : null;
  }

  byHash(hash: string): ProgramRecord | undefined {
    return Object.values(this.state.programs).find((p) => p.hash === hash);
  }

  /**
   * Adds an evaluated program; a valid one enters its island's grid and the archive when it earns a
   * place. It becomes the best when `decision` says so (a noise-aware comparison, or a recorded
   * decision), or, without a decision, when its score is higher.
   */
  add(p: ProgramRecord, decision?: 'promote' | 'keep'): void {
    this.state.programs[p.id] = p;
    if (!p.valid || p.score === null) return;
    this.place(p, p.island);
    this.updateArchive(p);
    if (decision === 'keep') return;
    if (decision === 'promote' || this.beatsBest(p.score)) this.state.best = p.id;
  }

  /** Whether a score is above the best's (so the program would challenge it). */
  beatsBest(score: number): boolean {
    const best = this.best();
    return !best || score > best.score!;
  }

  /** σ of one measurement from every comparison so far, or null before the first. */
  runNoise(): number | null {
    const n = this.state.noise;
    return n && n.dof > 0 ? Math.sqrt(n.ss / n.dof) : null;
  }

  runNoiseSums(): { ss: number; dof: number } {
    return { ...(this.state.noise ?? { ss: 0, dof: 0 }) };
  }

  /** A comparison's rounds join the run's estimate, and both programs carry the σ it used. */
  recordComparison(ss: number, dof: number, noise: number, ids: string[]): void {
    const n = this.state.noise ?? { ss: 0, dof: 0 };
    this.state.noise = { ss: n.ss + ss, dof: n.dof + dof };
    if (dof > 0) for (const id of ids) if (this.has(id)) this.get(id).noise = noise;
  }

  /** Puts an existing program on another island too (the seed starts every island). */
  placeOnIsland(id: string, island: number): void {
    this.place(this.get(id), island);
  }

  private place(p: ProgramRecord, island: number): void {
    const isl = this.state.islands[island]!;
    const cell = cellKey(this.search.features, p.metrics);
    const holder = isl.grid[cell];
    if (!holder || this.get(holder).score! < p.score!) isl.grid[cell] = p.id;
    if (!isl.members.includes(p.id)) isl.members.push(p.id);
    if (isl.members.length > this.search.population) {
      // Drop the weakest program that is not a cell elite (elites carry the grid's diversity).
      const elites = new Set(Object.values(isl.grid));
      const candidates = isl.members.filter((id) => !elites.has(id));
      if (candidates.length > 0) {
        const worst = candidates.reduce((a, b) => (this.get(b).score! < this.get(a).score! ? b : a));
        isl.members = isl.members.filter((id) => id !== worst);
      }
    }
  }

  private updateArchive(p: ProgramRecord): void {
    const a = [...this.state.archive, p.id];
    a.sort(
      (x, y) => this.get(y).score! - this.get(x).score! || this.get(x).iteration - this.get(y).iteration,
    );
    this.state.archive = a.slice(0, this.search.archive_size);
  }

  /** Ring migration: each island sends copies of its best programs to the next one. */
  migrate(): void {
    const n = this.state.islands.length;
    if (n < 2 || this.search.migration_count === 0) return;
    const outgoing = this.state.islands.map((isl) =>
      this.ranked(isl.members).slice(0, this.search.migration_count),
    );
    outgoing.forEach((ids, i) => {
      for (const id of ids) this.place(this.get(id), (i + 1) % n);
    });
    this.state.migrations++;
  }

  private ranked(ids: string[]): string[] {
    return [...ids].sort(
      (x, y) => this.get(y).score! - this.get(x).score! || this.get(x).iteration - this.get(y).iteration,
    );
  }

  /**
   * The parent for an iteration on `island`: exploration = a uniform pick among the island's
   * MAP-Elites cells (diversity), exploitation = a tournament over the elite archive, otherwise a
   * uniform pick among the island's members.
   */
  selectParent(island: number, rng: Rng): { id: string; how: 'exploration' | 'exploitation' | 'uniform' } {
    const isl = this.state.islands[island]!;
    const r = rng.next();
    const cells = Object.keys(isl.grid).sort();
    if (r < this.search.exploration && cells.length > 0)
      return { id: isl.grid[rng.pick(cells)]!, how: 'exploration' };
    if (r < this.search.exploration + this.search.exploitation && this.state.archive.length > 0) {
      const k = Math.min(3, this.state.archive.length);
      let best: string | null = null;
      for (let i = 0; i < k; i++) {
        const c = rng.pick(this.state.archive);
        if (!best || this.get(c).score! > this.get(best).score!) best = c;
      }
      return { id: best!, how: 'exploitation' };
    }
    if (isl.members.length > 0) return { id: rng.pick([...isl.members].sort()), how: 'uniform' };
    // An island still empty (early in the run) borrows from the global best.
    return { id: this.state.best!, how: 'uniform' };
  }

  /** A second parent for crossover: a different strong program, from the archive or another island. */
  selectMate(parent: string, rng: Rng): string | null {
    const pool = [...new Set([...this.state.archive, ...this.state.islands.flatMap((i) => i.members)])]
      .filter((id) => id !== parent && this.get(id).hash !== this.get(parent).hash)
      .sort();
    return pool.length > 0 ? rng.pick(pool) : null;
  }

  /** The best programs overall (not the parent) and a few from other MAP-Elites cells, for the prompt. */
  inspirations(
    parent: string,
    island: number,
    top: number,
    diverse: number,
    rng: Rng,
  ): { top: string[]; diverse: string[] } {
    const tops = this.state.archive.filter((id) => id !== parent).slice(0, top);
    const isl = this.state.islands[island]!;
    const taken = new Set([parent, ...tops]);
    const pool = Object.values(isl.grid)
      .filter((id) => !taken.has(id))
      .sort();
    const picks: string[] = [];
    while (picks.length < diverse && pool.length > 0) picks.push(pool.splice(rng.int(pool.length), 1)[0]!);
    return { top: tops, diverse: picks };
  }

  islandsSummary(): { members: number; cells: number; best: number | null }[] {
    return this.state.islands.map((isl) => ({
      members: isl.members.length,
      cells: Object.keys(isl.grid).length,
      best: isl.members.length ? Math.max(...isl.members.map((id) => this.get(id).score!)) : null,
    }));
  }
}

/** The MAP-Elites cell of a program: one bin per feature dimension; missing metrics fall in bin 0. */
export function cellKey(features: FeatureConfig[], metrics: Record<string, number>): string {
  return features
    .map((f) => {
      const v = metrics[f.metric];
      if (v === undefined || !Number.isFinite(v)) return 0;
      const [lo, hi, x] =
        f.scale === 'log'
          ? [Math.log(f.min), Math.log(f.max), Math.log(Math.max(v, f.min))]
          : [f.min, f.max, v];
      return Math.min(f.bins - 1, Math.max(0, Math.floor(((x - lo) / (hi - lo)) * f.bins)));
    })
    .join(',');
}

/** An RNG for one iteration, derived from the run seed: independent of timing and of how many calls came before. */
export function iterationRng(seed: number, iteration: number): Rng {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (iteration + 0x7f4a7c15), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return new Rng((h ^ (h >>> 16)) >>> 0);
}
