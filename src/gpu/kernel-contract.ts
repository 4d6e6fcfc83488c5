import { readKernel } from './kernel-files.js';
import {
  type AddressSpace,
  checkScalar,
  layoutStruct,
  packStruct,
  parseWgslType,
  roundUp,
  type ScalarKind,
  type StructLayout,
  sizeOf,
  strideOf,
} from './wgsl-layout.js';
import { moduleDeclarations } from './wgsl-text.js';

/**
 * One declaration of a kernel's interface: its uniform structs, bindings, constants, pipeline
 * overrides and workgroup memory. From it come (a) the WGSL declarations, prepended to the kernel's
 * body file (which holds only code), (b) the host packing of its uniforms by WGSL's layout rules,
 * (c) its explicit bind-group and pipeline layouts (KernelCache.kernelPipeline / bindGroup), and
 * (d) its workgroup-memory budget. Nothing is matched by position between TS and WGSL any more.
 * (The design follows onnxruntime-web's WebGPU programs, which declare their uniforms in the host
 * language and generate the WGSL struct, rather than reflecting WGSL as webgpu-utils does: the
 * host side then type-checks the values it packs.)
 */

/** A struct member: its WGSL type, or the type with a comment for the generated WGSL. */
export type FieldDecl = string | { type: string; doc?: string };

export interface BindingDecl {
  binding: number;
  /** Bind group index (default 0). */
  group?: number;
  /** A uniform buffer, or a storage buffer the kernel only reads or also writes. */
  access: 'uniform' | 'read' | 'read_write';
  /** WGSL type: a struct of this contract or e.g. "array<f32>", "array<atomic<u32>>". */
  type: string;
  doc?: string;
}

export interface ConstDecl {
  type: ScalarKind;
  value: number;
  doc?: string;
}

export interface OverrideDecl {
  type: ScalarKind;
  /** The WGSL default; without one the host must pass a value. */
  default?: number;
  doc?: string;
}

export interface WorkgroupDecl {
  /** Element type (or the whole type when `length` is absent). */
  type: string;
  /** Array length: a number or a product/sum of constant and override names and integers ("GPUS * 3"). */
  length?: number | string;
  doc?: string;
}

/** Struct declarations by name: field name → declaration, in layout order. */
export type StructDecls = Record<string, Record<string, FieldDecl>>;

export interface KernelDecl<
  S extends StructDecls,
  B extends Record<string, BindingDecl>,
  O extends Record<string, OverrideDecl>,
> {
  /** The body file under kernels/ (or a label when `code` is given). */
  file: string;
  /** The body's WGSL when it is not read from kernels/<file> (tests, generated kernels). */
  code?: string;
  /** The TypeScript module holding this declaration, named in the generated WGSL and in errors. */
  declaredIn: string;
  structs?: S;
  bindings: B;
  constants?: Record<string, ConstDecl>;
  overrides?: O;
  workgroup?: Record<string, WorkgroupDecl>;
}

/** The WGSL type text of a field declaration. */
type FieldType<D> = D extends string ? D : D extends { type: infer T extends string } ? T : string;

/** A scalar field takes a number; a vector, matrix or array takes its components or elements. */
type FieldValueOf<T extends string> = T extends ScalarKind | `atomic<${string}>`
  ? number
  : ArrayLike<number> | ArrayLike<ArrayLike<number>>;

/** Values for a struct's fields, typed by each field's declaration (packStruct checks the counts). */
export type StructValues<F> = { [K in keyof F]: FieldValueOf<FieldType<F[K]>> };

/** Pipeline-constant values: every override without a default, optionally the others. */
export type OverrideValues<O extends Record<string, OverrideDecl>> = {
  [K in keyof O as O[K] extends { default: number } ? never : K]: number;
} & { [K in keyof O as O[K] extends { default: number } ? K : never]?: number };

const IDENT = /^[A-Za-z_]\w*$/;

/** A packing area for one uniform struct, reused across calls (set() then write `bytes`). */
export class UniformData<F> {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(
    readonly layout: StructLayout,
    private readonly what: string,
  ) {
    this.bytes = new Uint8Array(layout.size);
    this.view = new DataView(this.bytes.buffer);
  }

  set(values: StructValues<F>): this {
    packStruct(this.layout, values, this.view, this.what);
    return this;
  }
}

export class KernelContract<
  S extends StructDecls = StructDecls,
  B extends Record<string, BindingDecl> = Record<string, BindingDecl>,
  O extends Record<string, OverrideDecl> = Record<string, OverrideDecl>,
> {
  readonly file: string;
  /** Struct layouts by name, in the address space their bindings use. */
  readonly layouts: { readonly [K in keyof S]: StructLayout };
  /** The generated WGSL declarations. */
  readonly header: string;
  /** Lines the header adds before the body (for mapping compiler diagnostics back to the file). */
  readonly headerLines: number;
  /** The checked module text, made once: kernelPipeline asks for it on every call. */
  private source: string | undefined;

  constructor(readonly decl: KernelDecl<S, B, O>) {
    this.file = decl.file;
    this.validate();
    const layouts: Record<string, StructLayout> = {};
    for (const [name, fields] of Object.entries(decl.structs ?? {})) {
      const members = Object.entries(fields).map(
        ([f, d]) => [f, typeof d === 'string' ? d : d.type] as const,
      );
      layouts[name] = layoutStruct(`${this.file}: ${name}`, members, this.spaceOf(name));
    }
    this.layouts = layouts as { [K in keyof S]: StructLayout };
    this.header = this.generateHeader();
    this.headerLines = this.header.split('\n').length - 1;
  }

  /**
   * The module's full WGSL: the generated declarations, then the body file. Throws (naming the file)
   * when the body declares any name the contract declares: a second source would be the drift this
   * contract exists to prevent.
   */
  wgsl(): string {
    if (this.source !== undefined) return this.source;
    const code = this.decl.code ?? readKernel(this.file);
    const names = this.declaredNames();
    const again = moduleDeclarations(code).filter((d) => names.has(d.name));
    if (again.length > 0) {
      const list = again.map((d) => `${d.keyword} ${d.name}`).join(', ');
      throw new Error(
        `kernels/${this.file} re-declares ${list}, which its contract (${this.decl.declaredIn}) generates: ` +
          'remove the declaration from the .wgsl file and change the contract instead',
      );
    }
    this.source = this.header + code;
    return this.source;
  }

  /** A reusable packing area for a uniform struct of this kernel. */
  uniform<K extends keyof S & string>(name: K): UniformData<S[K]> {
    return new UniformData<S[K]>(this.layouts[name], `${this.file}: ${name}`);
  }

  /**
   * Pipeline constants for `values`, checked against the declared overrides (an unknown name would
   * otherwise be a Dawn error without the kernel's name; a missing one a WGSL error) and against
   * each override's type: WebGPU converts a u32/i32 value with [EnforceRange], which truncates 2.5
   * to 2 without a word and refuses -1 with a TypeError that names no kernel.
   */
  constants(values: OverrideValues<O>): Record<string, number> {
    const declared: Record<string, OverrideDecl> = this.decl.overrides ?? {};
    const given = values as Record<string, number>;
    for (const [name, v] of Object.entries(given)) {
      const d = declared[name];
      if (!d)
        throw new Error(
          `kernels/${this.file} has no override '${name}' (declared in ${this.decl.declaredIn}: ${Object.keys(declared).join(', ') || 'none'})`,
        );
      checkScalar(d.type, v, `kernels/${this.file}: override ${name}`);
    }
    for (const [name, d] of Object.entries(declared)) {
      if (d.default === undefined && given[name] === undefined)
        throw new Error(`kernels/${this.file} needs a value for its override '${name}'`);
    }
    return { ...given };
  }

  /**
   * Workgroup memory the kernel declares for the given overrides, by WebGPU's rule for
   * maxComputeWorkgroupStorageSize: each variable's size rounded up to 16 bytes, summed. (All
   * variables count, though an entry point is charged only for those it uses: an upper bound.)
   * Only the overrides that size a variable are needed.
   */
  workgroupBytes(values: Partial<Record<keyof O, number>>): number {
    const env = this.lengthEnv(values as Record<string, number>);
    let total = 0;
    for (const [name, w] of Object.entries(this.decl.workgroup ?? {})) {
      const type = parseWgslType(w.type);
      const bytes =
        w.length === undefined
          ? sizeOf(type)
          : evalLength(w.length, env, `${this.file}: ${name}`) * strideOf(type);
      total += roundUp(16, bytes);
    }
    return total;
  }

  /** Bytes per element of an array binding (its stride), for sizing its buffer. */
  elementBytes(binding: keyof B & string): number {
    const b = this.decl.bindings[binding];
    const m = b && /^array<(.+?)(?:,\s*\d+[ui]?)?>$/.exec(b.type.replace(/\s+/g, ' ').trim());
    if (!m) throw new Error(`${this.decl.declaredIn}: '${binding}' is not an array binding`);
    return strideOf(parseWgslType(m[1]!));
  }

  /** A constant's value (the host reads the one the kernel compiles with). */
  constant(name: string): number {
    const c = this.decl.constants?.[name];
    if (!c) throw new Error(`${this.decl.declaredIn} declares no constant '${name}'`);
    return c.value;
  }

  /** The binding group indices in use, ascending from 0 (empty groups in between get empty layouts). */
  get groupCount(): number {
    return Math.max(0, ...Object.values(this.decl.bindings).map((b) => (b.group ?? 0) + 1));
  }

  /** Bind group layout entries of group `g`: visibility compute, the buffer type from the access. */
  layoutEntries(g: number): GPUBindGroupLayoutEntry[] {
    return Object.values(this.decl.bindings)
      .filter((b) => (b.group ?? 0) === g)
      .sort((a, b) => a.binding - b.binding)
      .map((b) => {
        const type: GPUBufferBindingType =
          b.access === 'uniform' ? 'uniform' : b.access === 'read' ? 'read-only-storage' : 'storage';
        return {
          binding: b.binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type, minBindingSize: this.minBindingSize(b.type) },
        };
      });
  }

  /**
   * The least a buffer bound to a variable of this type must hold, as WebGPU derives it for an
   * 'auto' layout: the struct or fixed-size type's size, one element of a runtime-sized array. So
   * a buffer too small is refused where the bind group is made, naming it, not at dispatch.
   */
  private minBindingSize(typeText: string): number {
    const struct = this.layouts[typeText as keyof S];
    if (struct) return struct.size;
    const runtime = /^array<(.+)>$/.exec(typeText.replace(/\s+/g, ''));
    if (runtime && !/,\d+[ui]?$/.test(runtime[1]!)) return strideOf(parseWgslType(runtime[1]!));
    return sizeOf(parseWgslType(typeText));
  }

  private spaceOf(struct: string): AddressSpace {
    return Object.values(this.decl.bindings).some((b) => b.type === struct && b.access === 'uniform')
      ? 'uniform'
      : 'storage';
  }

  private declaredNames(): Set<string> {
    const d = this.decl;
    return new Set([
      ...Object.keys(d.structs ?? {}),
      ...Object.keys(d.bindings),
      ...Object.keys(d.constants ?? {}),
      ...Object.keys(d.overrides ?? {}),
      ...Object.keys(d.workgroup ?? {}),
    ]);
  }

  /** Constant and override values by name, for the workgroup length expressions. */
  private lengthEnv(given: Record<string, number>): Map<string, number> {
    const env = new Map<string, number>();
    for (const [n, c] of Object.entries(this.decl.constants ?? {})) env.set(n, c.value);
    for (const [n, o] of Object.entries(this.decl.overrides ?? {})) {
      const v = given[n] ?? o.default;
      // Checked as constants() checks it: a u32 of 2.5 would budget a fractional byte count.
      if (v === undefined) continue;
      checkScalar(o.type, v, `kernels/${this.file}: override ${n}`);
      env.set(n, v);
    }
    return env;
  }

  private validate(): void {
    const d = this.decl;
    const seen = new Map<string, string>();
    const claim = (name: string, what: string) => {
      if (!IDENT.test(name)) throw new Error(`${d.declaredIn}: '${name}' is not a WGSL identifier`);
      const before = seen.get(name);
      if (before) throw new Error(`${d.declaredIn}: '${name}' is declared as ${before} and as ${what}`);
      seen.set(name, what);
    };
    for (const n of Object.keys(d.structs ?? {})) claim(n, 'a struct');
    for (const n of Object.keys(d.constants ?? {})) claim(n, 'a constant');
    for (const n of Object.keys(d.overrides ?? {})) claim(n, 'an override');
    for (const n of Object.keys(d.bindings)) claim(n, 'a binding');
    for (const n of Object.keys(d.workgroup ?? {})) claim(n, 'a workgroup variable');
    const slots = new Set<string>();
    for (const [n, b] of Object.entries(d.bindings)) {
      const slot = `${b.group ?? 0}/${b.binding}`;
      if (slots.has(slot)) throw new Error(`${d.declaredIn}: binding '${n}' reuses @group/@binding ${slot}`);
      slots.add(slot);
      if (b.access === 'uniform' && !d.structs?.[b.type])
        throw new Error(`${d.declaredIn}: uniform binding '${n}' must have a struct type of the contract`);
    }
    for (const [n, w] of Object.entries(d.workgroup ?? {})) {
      if (typeof w.length === 'string') {
        for (const term of lengthTerms(w.length)) {
          if (!/^\d+$/.test(term) && !d.constants?.[term] && !d.overrides?.[term])
            throw new Error(
              `${d.declaredIn}: workgroup '${n}' length names '${term}', no constant or override`,
            );
        }
      }
    }
  }

  private generateHeader(): string {
    const d = this.decl;
    const lines = [
      `// Declarations generated from ${d.declaredIn} (the kernel's contract); the code follows.`,
    ];
    const doc = (text: string | undefined) => (text ? ` // ${text}` : '');
    for (const [n, o] of Object.entries(d.overrides ?? {})) {
      const init =
        o.default === undefined ? '' : ` = ${literal(o.type, o.default, `${d.declaredIn}: override ${n}`)}`;
      lines.push(`override ${n}: ${o.type}${init};${doc(o.doc)}`);
    }
    for (const [n, c] of Object.entries(d.constants ?? {}))
      lines.push(
        `const ${n}: ${c.type} = ${literal(c.type, c.value, `${d.declaredIn}: constant ${n}`)};${doc(c.doc)}`,
      );
    for (const [n, fields] of Object.entries(d.structs ?? {})) {
      const layout = this.layouts[n as keyof S];
      lines.push(`struct ${n} {`);
      for (const f of layout.fields) {
        const decl: FieldDecl = fields[f.name]!;
        const align = f.explicitAlign ? `@align(${f.explicitAlign}) ` : '';
        lines.push(
          `  ${align}${f.name}: ${f.typeText},${doc(typeof decl === 'string' ? undefined : decl.doc)}`,
        );
      }
      lines.push('}');
    }
    for (const [n, b] of Object.entries(d.bindings)) {
      const space = b.access === 'uniform' ? 'uniform' : `storage, ${b.access}`;
      lines.push(
        `@group(${b.group ?? 0}) @binding(${b.binding}) var<${space}> ${n}: ${b.type};${doc(b.doc)}`,
      );
    }
    for (const [n, w] of Object.entries(d.workgroup ?? {})) {
      // The length as written: its integer literals stay abstract and take the type of the
      // overrides they meet (a `3u` beside an i32 override would be a WGSL type error).
      const type = w.length === undefined ? w.type : `array<${w.type}, ${w.length}>`;
      lines.push(`var<workgroup> ${n}: ${type};${doc(w.doc)}`);
    }
    return `${lines.join('\n')}\n\n`;
  }
}

/** Declares a kernel's contract (see KernelContract); validates it and lays out its structs. */
export function defineKernel<
  const S extends StructDecls,
  const B extends Record<string, BindingDecl>,
  const O extends Record<string, OverrideDecl> = Record<never, OverrideDecl>,
>(decl: KernelDecl<S, B, O>): KernelContract<S, B, O> {
  return new KernelContract(decl);
}

/** A WGSL literal of `type` for `v` (large u32s in hex, as hash constants are read). */
function literal(type: ScalarKind, v: number, where: string): string {
  checkScalar(type, v, where);
  if (type === 'f32') {
    const s = String(v);
    return /[.e]/.test(s) ? s : `${s}.0`;
  }
  if (type === 'u32') return v > 0xffff ? `0x${v.toString(16)}u` : `${v}u`;
  // `-2147483648i` negates 2147483648i, which is no i32: WGSL refuses it. Converting the abstract
  // integer gives the value.
  return v === -0x80000000 ? `i32(${v})` : `${v}i`;
}

const lengthTerms = (expr: string): string[] => expr.split(/[+*]/).map((t) => t.trim());

/** Evaluates a sum of products of names and integers (no parentheses). */
function evalLength(expr: number | string, env: Map<string, number>, what: string): number {
  if (typeof expr === 'number') return expr;
  let sum = 0;
  for (const product of expr.split('+')) {
    let p = 1;
    for (const term of product.split('*').map((t) => t.trim())) {
      const v = /^\d+$/.test(term) ? Number(term) : env.get(term);
      if (v === undefined) throw new Error(`${what}: no value for '${term}' (pass the override)`);
      p *= v;
    }
    sum += p;
  }
  return sum;
}
