/**
 * Just enough WGSL reflection for ctx.dispatch (candidate-context.ts) to bind buffers by the
 * kernel's variable names and to pack a uniform struct from a record of named values: the
 * module-scope `@group(g) @binding(b) var<space, access> name: Type;` declarations, the structs,
 * the compute entry points, and which bindings an entry point uses (the globals named in its body
 * and in the functions it calls, transitively). That use is an over-approximation of the
 * compiler's (a local that shadows a global counts as a use), which is safe: ctx.dispatch builds
 * an explicit layout from it, and a layout may hold bindings a shader does not use.
 */

import {
  type FieldLayout,
  layoutStruct,
  packStruct as packFields,
  parseWgslType,
  type WgslType,
} from '../gpu/wgsl-layout.js';
import { braceDepths, stripComments } from '../gpu/wgsl-text.js';

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
 * rules, src/gpu/wgsl-layout.ts), or a sentence saying why it cannot be packed from a record.
 */
export function structLayout(module: WgslModule, type: string): StructLayout | string {
  const members = module.structs.get(type);
  if (!members) return `its type ${type} is not a struct`;
  for (const [name, memberType] of members) {
    const t = scalarOrVector(memberType);
    if (!t)
      return `field '${name}' has type ${memberType}; records pack only u32, i32, f32 and their vec2/3/4 (pass the bytes yourself as a typed array)`;
  }
  // Scalars and vectors lay out alike in every address space.
  const layout = layoutStruct(type, members, 'storage');
  return {
    size: layout.size,
    fields: layout.fields.map((f) => {
      const t = f.type as Extract<WgslType, { kind: 'scalar' | 'vector' }>;
      return { name: f.name, offset: f.offset, kind: t.scalar, count: t.kind === 'vector' ? t.n : 1 };
    }),
  };
}

/**
 * Writes a record of named values into `out` by a struct layout. Every field must be given, and
 * nothing else; u32/i32 values must be integers in range, f32 values finite. `what` names the
 * binding in error messages.
 */
export function packStruct(layout: StructLayout, values: object, out: DataView, what: string): void {
  const fields: FieldLayout[] = layout.fields.map((f) => {
    const type: WgslType =
      f.count === 1 ? { kind: 'scalar', scalar: f.kind } : { kind: 'vector', scalar: f.kind, n: f.count };
    return { name: f.name, type, typeText: '', offset: f.offset, size: 4 * f.count, explicitAlign: 0 };
  });
  packFields({ size: layout.size, align: 4, fields }, values, out, what);
}

function scalarOrVector(type: string): WgslType | null {
  if (type.includes('@')) return null; // an explicit @align/@size changes the layout
  try {
    const t = parseWgslType(type);
    return t.kind === 'scalar' || t.kind === 'vector' ? t : null;
  } catch {
    return null;
  }
}

/** Identifiers in a function body that are not member accesses (`.name`). */
function identifiers(body: string): Set<string> {
  return new Set(body.match(/(?<![.\w])[A-Za-z_]\w*/g) ?? []);
}

function attrNumber(attrs: string, name: string): number | null {
  const m = new RegExp(String.raw`@${name}\s*\(\s*(\d+)[iu]?\s*\)`).exec(attrs);
  return m ? Number(m[1]) : null;
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
