/**
 * Just enough WGSL reflection for ctx.dispatch (candidate-context.ts) to bind buffers by the
 * kernel's variable names and to pack a uniform struct from a record of named values: the
 * module-scope `@group(g) @binding(b) var<space, access> name: Type;` declarations, the structs,
 * the compute entry points, and which bindings an entry point uses (the globals named in its body
 * and in the functions it calls, transitively). That use is an over-approximation of the
 * compiler's (a local that shadows a global counts as a use), which is safe: ctx.dispatch builds
 * an explicit layout from it, and a layout may hold bindings a shader does not use.
 */

export interface WgslBinding {
  name: string;
  group: number;
  binding: number;
  /** 'handle': a texture or sampler (ctx.dispatch binds buffers only). */
  space: 'uniform' | 'storage' | 'handle';
  access: 'read' | 'read_write';
  /** The declared type, e.g. "array<f32>" or "Params". */
  type: string;
}

export interface WgslModule {
  /** Binding variables by name. */
  bindings: Map<string, WgslBinding>;
  /** Struct member lists by struct name: [name, type]. */
  structs: Map<string, Array<[string, string]>>;
  /** Function bodies by name. */
  functions: Map<string, string>;
  /** @compute entry points, in source order. */
  entries: string[];
}

/** WGSL without its comments (line and nested block comments). */
export function stripComments(code: string): string {
  let out = '';
  let i = 0;
  while (i < code.length) {
    if (code.startsWith('//', i)) {
      const end = code.indexOf('\n', i);
      i = end < 0 ? code.length : end;
    } else if (code.startsWith('/*', i)) {
      let depth = 1;
      i += 2;
      while (i < code.length && depth > 0) {
        if (code.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (code.startsWith('*/', i)) {
          depth--;
          i += 2;
        } else i++;
      }
      out += ' ';
    } else out += code[i++];
  }
  return out;
}

const ATTRS = String.raw`((?:@[A-Za-z_]\w*\s*(?:\([^)]*\))?\s*)*)`;
const VAR_RE = new RegExp(
  String.raw`${ATTRS}\bvar\b\s*(?:<([^>]*)>)?\s*([A-Za-z_]\w*)\s*(?::\s*([^;=]+?))?\s*(?:=[^;]*)?;`,
  'g',
);
const STRUCT_RE = /\bstruct\s+([A-Za-z_]\w*)\s*\{([^}]*)\}/g;
const FN_RE = /\bfn\s+([A-Za-z_]\w*)\s*\(/g;
const COMPUTE_RE = new RegExp(String.raw`@compute\s*${ATTRS}fn\s+([A-Za-z_]\w*)`, 'g');

/** Reflects a WGSL module (see the file comment for what is covered). */
export function reflectWgsl(code: string): WgslModule {
  const text = stripComments(code);
  const depth = braceDepths(text);
  const bindings = new Map<string, WgslBinding>();
  for (const m of text.matchAll(VAR_RE)) {
    const at = m.index! + m[1]!.length;
    if (depth[at] !== 0) continue; // a function-local var
    const attrs = m[1]!;
    const group = attrNumber(attrs, 'group');
    const binding = attrNumber(attrs, 'binding');
    if (group === null || binding === null) continue; // private/workgroup vars
    const [space = '', access = ''] = (m[2] ?? '').split(',').map((s) => s.trim());
    bindings.set(m[3]!, {
      name: m[3]!,
      group,
      binding,
      space: space === 'uniform' ? 'uniform' : space === 'storage' ? 'storage' : 'handle',
      access: access === 'read_write' ? 'read_write' : 'read',
      type: (m[4] ?? '').trim(),
    });
  }
  const structs = new Map<string, Array<[string, string]>>();
  for (const m of text.matchAll(STRUCT_RE)) {
    const members: Array<[string, string]> = [];
    for (const part of splitTopLevel(m[2]!)) {
      const member = /^\s*((?:@[A-Za-z_]\w*\s*(?:\([^)]*\))?\s*)*)([A-Za-z_]\w*)\s*:\s*([\s\S]+?)\s*$/.exec(
        part,
      );
      if (!member) continue;
      // An explicit @align/@size changes the layout; keep it in the type so packing refuses it.
      const attrs = member[1]!.trim();
      members.push([member[2]!, attrs ? `${attrs} ${member[3]!}` : member[3]!]);
    }
    structs.set(m[1]!, members);
  }
  const functions = new Map<string, string>();
  for (const m of text.matchAll(FN_RE)) {
    const open = text.indexOf('{', m.index!);
    if (open < 0) continue;
    const close = matchingBrace(text, open);
    functions.set(m[1]!, text.slice(open + 1, close));
  }
  const entries = [...text.matchAll(COMPUTE_RE)].map((m) => m[2]!);
  return { bindings, structs, functions, entries };
}

/**
 * The bindings `entry` uses, sorted by (group, binding). Throws when the module has no such compute
 * entry point, naming the ones it has.
 */
export function usedBindings(module: WgslModule, entry: string, file: string): WgslBinding[] {
  if (!module.entries.includes(entry)) {
    throw new Error(
      `${file} has no @compute entry point '${entry}' (it has: ${module.entries.join(', ') || 'none'})`,
    );
  }
  const names = new Set<string>();
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const fn = queue.pop()!;
    if (seen.has(fn)) continue;
    seen.add(fn);
    for (const token of identifiers(module.functions.get(fn) ?? '')) {
      if (module.functions.has(token)) queue.push(token);
      else if (module.bindings.has(token)) names.add(token);
    }
  }
  return [...names]
    .map((n) => module.bindings.get(n)!)
    .sort((a, b) => a.group - b.group || a.binding - b.binding);
}

/** One packed field: its byte offset, scalar kind and component count. */
export interface PackedField {
  name: string;
  offset: number;
  kind: 'u32' | 'i32' | 'f32';
  count: 1 | 2 | 3 | 4;
}

export interface StructLayout {
  /** The struct's size in bytes (a multiple of its alignment). */
  size: number;
  fields: PackedField[];
}

/**
 * The host-shareable layout of a struct of scalars and vectors of u32/i32/f32 (WGSL's alignment
 * rules: 4 bytes for scalars, 8 for vec2, 16 for vec3/vec4; the size rounded up to the largest
 * alignment), or a sentence saying why it cannot be packed from a record.
 */
export function structLayout(module: WgslModule, type: string): StructLayout | string {
  const members = module.structs.get(type);
  if (!members) return `its type ${type} is not a struct`;
  const fields: PackedField[] = [];
  let offset = 0;
  let maxAlign = 4;
  for (const [name, memberType] of members) {
    const t = scalarOrVector(memberType);
    if (!t)
      return `field '${name}' has type ${memberType}; records pack only u32, i32, f32 and their vec2/3/4 (pass the bytes yourself as a typed array)`;
    const align = t.count === 1 ? 4 : t.count === 2 ? 8 : 16;
    maxAlign = Math.max(maxAlign, align);
    offset = Math.ceil(offset / align) * align;
    fields.push({ name, offset, kind: t.kind, count: t.count });
    offset += 4 * t.count;
  }
  return { size: Math.ceil(offset / maxAlign) * maxAlign, fields };
}

/**
 * Writes a record of named values into `out` by a struct layout. Every field must be given, and
 * nothing else; u32/i32 values must be integers in range, f32 values finite. `what` names the
 * binding in error messages.
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
    const components = f.count === 1 ? [v] : v;
    if (!Array.isArray(components) && !ArrayBuffer.isView(components))
      throw new Error(`${what}.${f.name} is a vec${f.count}<${f.kind}>: give an array of ${f.count} numbers`);
    const list = components as ArrayLike<unknown>;
    if (list.length !== f.count)
      throw new Error(`${what}.${f.name} needs ${f.count} numbers, got ${list.length}`);
    for (let c = 0; c < f.count; c++) {
      const x = list[c];
      const at = f.offset + 4 * c;
      if (typeof x !== 'number' || !Number.isFinite(x))
        throw new Error(`${what}.${f.name} must be a finite number, got ${String(x)}`);
      if (f.kind === 'f32') out.setFloat32(at, x, true);
      else if (f.kind === 'u32') {
        if (!Number.isInteger(x) || x < 0 || x > 0xffffffff)
          throw new Error(`${what}.${f.name} is a u32: give an integer in 0…4294967295, got ${x}`);
        out.setUint32(at, x, true);
      } else {
        if (!Number.isInteger(x) || x < -0x80000000 || x > 0x7fffffff)
          throw new Error(`${what}.${f.name} is an i32: give an integer in −2147483648…2147483647, got ${x}`);
        out.setInt32(at, x, true);
      }
    }
  }
}

function scalarOrVector(type: string): { kind: PackedField['kind']; count: PackedField['count'] } | null {
  const t = type.replace(/\s+/g, '');
  const scalar = /^(u32|i32|f32)$/.exec(t);
  if (scalar) return { kind: scalar[1] as PackedField['kind'], count: 1 };
  const vec = /^vec([234])<(u32|i32|f32)>$/.exec(t) ?? /^vec([234])([uif])$/.exec(t);
  if (!vec) return null;
  const kind =
    vec[2]!.length === 1 ? (`${vec[2]}32` as PackedField['kind']) : (vec[2] as PackedField['kind']);
  return { kind, count: Number(vec[1]) as PackedField['count'] };
}

/** Identifiers in a function body that are not member accesses (`.name`). */
function identifiers(body: string): Set<string> {
  return new Set(body.match(/(?<![.\w])[A-Za-z_]\w*/g) ?? []);
}

function attrNumber(attrs: string, name: string): number | null {
  const m = new RegExp(String.raw`@${name}\s*\(\s*(\d+)[iu]?\s*\)`).exec(attrs);
  return m ? Number(m[1]) : null;
}

/** Brace depth before each character. */
function braceDepths(text: string): Int32Array {
  const depth = new Int32Array(text.length + 1);
  let d = 0;
  for (let i = 0; i < text.length; i++) {
    depth[i] = d;
    if (text[i] === '{') d++;
    else if (text[i] === '}') d = Math.max(0, d - 1);
  }
  depth[text.length] = d;
  return depth;
}

function matchingBrace(text: string, open: number): number {
  let d = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') d++;
    else if (text[i] === '}' && --d === 0) return i;
  }
  return text.length;
}

/** Splits struct members on commas outside <…> and (…). */
function splitTopLevel(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '<' || c === '(') depth++;
    else if (c === '>' || c === ')') depth--;
    else if ((c === ',' || c === ';') && depth === 0) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(body.slice(start));
  return parts.filter((p) => p.trim() !== '');
}
