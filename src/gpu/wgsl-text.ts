/**
 * Lexical helpers over WGSL source, shared by the kernel contracts (which must find a body file's
 * module-scope declarations) and the candidates' binding reflection (src/eval/wgsl-bindings.ts).
 * Not a parser: enough structure (comments, braces, declaration keywords) for those two uses.
 */

/** WGSL without its comments (line and nested block comments); a block comment becomes one space. */
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

/** Brace depth before each character (and one past the end). */
export function braceDepths(text: string): Int32Array {
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

export interface ModuleDeclaration {
  keyword: 'struct' | 'const' | 'override' | 'var' | 'fn' | 'alias';
  name: string;
}

const DECL_RE = /\b(struct|const|override|var|fn|alias)\b\s*(?:<[^>]*>)?\s*([A-Za-z_]\w*)/g;

/** The names a module declares at module scope (outside every function and struct body). */
export function moduleDeclarations(code: string): ModuleDeclaration[] {
  const text = stripComments(code);
  const depth = braceDepths(text);
  const out: ModuleDeclaration[] = [];
  for (const m of text.matchAll(DECL_RE)) {
    if (depth[m.index!] !== 0) continue;
    out.push({ keyword: m[1] as ModuleDeclaration['keyword'], name: m[2]! });
  }
  return out;
}
