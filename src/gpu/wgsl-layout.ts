/**
 * WGSL's memory layout rules for host-shareable types (WGSL spec §"Memory Layout": alignment and
 * size of scalars, vectors, matrices, fixed-size arrays and structs, plus the uniform address
 * space's stricter array rules), and packing a record of numbers by them. One implementation for
 * the project's kernel contracts (kernel-contract.ts) and the candidates' ctx.dispatch
 * (src/eval/wgsl-bindings.ts).
 */

export type ScalarKind = 'u32' | 'i32' | 'f32';

export type WgslType =
  | { kind: 'scalar'; scalar: ScalarKind }
  | { kind: 'vector'; scalar: ScalarKind; n: 2 | 3 | 4 }
  | { kind: 'matrix'; scalar: 'f32'; cols: 2 | 3 | 4; rows: 2 | 3 | 4 }
  | { kind: 'array'; element: WgslType; length: number }
  | { kind: 'atomic'; scalar: 'u32' | 'i32' };

const SCALARS = new Set(['u32', 'i32', 'f32']);
const SHORT: Record<string, ScalarKind> = { u: 'u32', i: 'i32', f: 'f32' };

/**
 * Parses a WGSL type of the supported subset ("u32", "vec3<f32>", "vec3f", "mat4x4<f32>",
 * "array<vec2u, 4>", "atomic<u32>"), or throws naming it. Runtime-sized arrays have no layout here.
 */
export function parseWgslType(text: string): WgslType {
  const t = text.replace(/\s+/g, '');
  if (SCALARS.has(t)) return { kind: 'scalar', scalar: t as ScalarKind };
  let m = /^vec([234])(?:<(u32|i32|f32)>|([uif]))$/.exec(t);
  if (m)
    return { kind: 'vector', scalar: (m[2] ?? SHORT[m[3]!]) as ScalarKind, n: Number(m[1]) as 2 | 3 | 4 };
  m = /^mat([234])x([234])(?:<f32>|f)$/.exec(t);
  if (m)
    return {
      kind: 'matrix',
      scalar: 'f32',
      cols: Number(m[1]) as 2 | 3 | 4,
      rows: Number(m[2]) as 2 | 3 | 4,
    };
  m = /^atomic<(u32|i32)>$/.exec(t);
  if (m) return { kind: 'atomic', scalar: m[1] as 'u32' | 'i32' };
  m = /^array<(.+),(\d+)[ui]?>$/.exec(t);
  if (m && Number(m[2]) >= 1) return { kind: 'array', element: parseWgslType(m[1]!), length: Number(m[2]) };
  throw new Error(
    `WGSL type '${text}' has no host layout here (supported: u32/i32/f32, vecN, matCxR<f32>, atomic, array<T, N>)`,
  );
}

/** AlignOf(T) of the WGSL spec. */
export function alignOf(t: WgslType): number {
  switch (t.kind) {
    case 'scalar':
    case 'atomic':
      return 4;
    case 'vector':
      return t.n === 2 ? 8 : 16;
    case 'matrix':
      return alignOf({ kind: 'vector', scalar: 'f32', n: t.rows });
    case 'array':
      return alignOf(t.element);
  }
}

/** SizeOf(T) of the WGSL spec. */
export function sizeOf(t: WgslType): number {
  switch (t.kind) {
    case 'scalar':
    case 'atomic':
      return 4;
    case 'vector':
      return 4 * t.n;
    case 'matrix':
      // C columns, each a vecR padded to its alignment.
      return t.cols * strideOf({ kind: 'vector', scalar: 'f32', n: t.rows });
    case 'array':
      return t.length * strideOf(t.element);
  }
}

/** The element stride of array<T>: SizeOf(T) rounded up to AlignOf(T). */
export const strideOf = (element: WgslType): number => roundUp(alignOf(element), sizeOf(element));

export const roundUp = (k: number, n: number): number => Math.ceil(n / k) * k;

/** Where a struct lives: the uniform address space adds the 16-byte array rules. */
export type AddressSpace = 'uniform' | 'storage';

export interface FieldLayout {
  name: string;
  type: WgslType;
  /** The type as written in the declaration. */
  typeText: string;
  offset: number;
  size: number;
  /** An @align(n) the generated WGSL must carry (the uniform rules ask more than AlignOf gives), else 0. */
  explicitAlign: number;
}

export interface StructLayout {
  /** SizeOf(struct): just past the last member, rounded up to the struct's alignment. */
  size: number;
  align: number;
  fields: FieldLayout[];
}

/**
 * Lays out a struct of the given members in order: each member at its alignment past the previous
 * one. In the uniform address space an array's stride must be a multiple of 16 (else a sentence
 * saying so is thrown) and the array itself 16-aligned, which an @align(16) gives where AlignOf does not.
 */
export function layoutStruct(
  name: string,
  members: ReadonlyArray<readonly [string, string]>,
  space: AddressSpace,
): StructLayout {
  const fields: FieldLayout[] = [];
  let offset = 0;
  let align = 4;
  for (const [field, typeText] of members) {
    const type = parseWgslType(typeText);
    if (type.kind === 'atomic' && space === 'uniform')
      throw new Error(`${name}.${field}: atomics cannot live in the uniform address space`);
    let fieldAlign = alignOf(type);
    let explicitAlign = 0;
    if (space === 'uniform' && type.kind === 'array') {
      const stride = uniformRefusedStride(type);
      if (stride !== 0)
        throw new Error(
          `${name}.${field}: ${typeText} has a ${stride}-byte stride; arrays in a uniform buffer need a multiple of 16 ` +
            '(use an array of vec4)',
        );
      if (fieldAlign < 16) explicitAlign = fieldAlign = 16;
    }
    align = Math.max(align, fieldAlign);
    offset = roundUp(fieldAlign, offset);
    const size = sizeOf(type);
    fields.push({ name: field, type, typeText, offset, size, explicitAlign });
    offset += size;
  }
  return { size: roundUp(align, offset), align, fields };
}

/**
 * The first array stride in `t` (the array itself, then the arrays nested in it) that is not a
 * multiple of 16, else 0: WGSL's core uniform rules refuse such a stride at every level, so an
 * array<array<f32, 4>, 2> is refused for its inner 4-byte stride although its own is 16. (Dawn's
 * uniform_buffer_standard_layout extension lifts the rule; contracts keep to the portable core.)
 */
function uniformRefusedStride(t: WgslType): number {
  if (t.kind !== 'array') return 0;
  const stride = strideOf(t.element);
  return stride % 16 !== 0 ? stride : uniformRefusedStride(t.element);
}

/**
 * Writes a record of named values into `out` (little-endian, as WebGPU reads it) by a struct
 * layout. Every field must be given, and nothing else; u32/i32 values must be integers in range,
 * f32 values finite and within f32's range. A matrix is given as its cols·rows numbers, column by
 * column. `what` names the struct in error messages. Padding bytes are left as they are.
 */
export function packStruct(layout: StructLayout, values: object, out: DataView, what: string): void {
  const given = values as Record<string, unknown>;
  const names = layout.fields.map((f) => f.name);
  for (const key of Object.keys(given)) {
    if (!names.includes(key))
      throw new Error(`${what} has no field '${key}' (its fields, in order: ${names.join(', ')})`);
  }
  for (const f of layout.fields) {
    const v = given[f.name];
    if (v === undefined)
      throw new Error(`${what} needs a value for '${f.name}' (its fields, in order: ${names.join(', ')})`);
    writeValue(out, f.offset, f.type, v, `${what}.${f.name}`);
  }
}

function writeValue(out: DataView, at: number, t: WgslType, v: unknown, where: string): void {
  if (t.kind === 'scalar' || t.kind === 'atomic') {
    writeScalar(out, at, t.scalar, v, where);
    return;
  }
  const list = components(v, where, t);
  if (t.kind === 'vector') {
    for (let c = 0; c < t.n; c++) writeScalar(out, at + 4 * c, t.scalar, list[c], where);
  } else if (t.kind === 'matrix') {
    // Column-major, each column at the padded column stride.
    const column = strideOf({ kind: 'vector', scalar: 'f32', n: t.rows });
    for (let c = 0; c < t.cols; c++)
      for (let r = 0; r < t.rows; r++)
        writeScalar(out, at + c * column + 4 * r, 'f32', list[c * t.rows + r], where);
  } else {
    const stride = strideOf(t.element);
    for (let i = 0; i < t.length; i++) writeValue(out, at + i * stride, t.element, list[i], `${where}[${i}]`);
  }
}

function components(v: unknown, where: string, t: WgslType): ArrayLike<unknown> {
  const count =
    t.kind === 'vector' ? t.n : t.kind === 'matrix' ? t.cols * t.rows : t.kind === 'array' ? t.length : 1;
  const name = typeName(t);
  if (!Array.isArray(v) && !ArrayBuffer.isView(v))
    throw new Error(
      `${where} is a ${name}: give an array of ${count} ${t.kind === 'array' ? 'elements' : 'numbers'}`,
    );
  const list = v as unknown as ArrayLike<unknown>;
  if (list.length !== count)
    throw new Error(
      `${where} needs ${count} ${t.kind === 'array' ? 'elements' : 'numbers'}, got ${list.length}`,
    );
  return list;
}

function writeScalar(out: DataView, at: number, kind: ScalarKind, x: unknown, where: string): void {
  checkScalar(kind, x, where);
  if (kind === 'f32') out.setFloat32(at, x, true);
  else if (kind === 'u32') out.setUint32(at, x, true);
  else out.setInt32(at, x, true);
}

/**
 * Throws, naming `where`, unless `x` is a value of the WGSL scalar type: an integer in range for
 * u32 and i32, a finite number within f32's range (a larger double would become ±Infinity). One
 * rule for packed uniforms, pipeline-override values and the literals of generated constants.
 */
export function checkScalar(kind: ScalarKind, x: unknown, where: string): asserts x is number {
  if (typeof x !== 'number' || !Number.isFinite(x))
    throw new Error(`${where} must be a finite number, got ${String(x)}`);
  if (kind === 'f32') {
    if (!Number.isFinite(Math.fround(x)))
      throw new Error(`${where} is an f32: ${x} is past its range (±3.4028235e38)`);
  } else if (kind === 'u32') {
    if (!Number.isInteger(x) || x < 0 || x > 0xffffffff)
      throw new Error(`${where} is a u32: give an integer in 0…4294967295, got ${x}`);
  } else if (!Number.isInteger(x) || x < -0x80000000 || x > 0x7fffffff)
    throw new Error(`${where} is an i32: give an integer in −2147483648…2147483647, got ${x}`);
}

/** The canonical WGSL spelling of a type (for messages). */
export function typeName(t: WgslType): string {
  switch (t.kind) {
    case 'scalar':
      return t.scalar;
    case 'vector':
      return `vec${t.n}<${t.scalar}>`;
    case 'matrix':
      return `mat${t.cols}x${t.rows}<f32>`;
    case 'atomic':
      return `atomic<${t.scalar}>`;
    case 'array':
      return `array<${typeName(t.element)}, ${t.length}>`;
  }
}
