import { describe, expect, it } from 'vitest';
import { GPU_LPT_KERNEL } from '../src/eplb/balancers/gpu-balancer.contract.js';
import { defineKernel } from '../src/gpu/kernel-contract.js';
import { SMOKE_KERNEL } from '../src/gpu/smoke.contract.js';
import { alignOf, layoutStruct, packStruct, parseWgslType, sizeOf } from '../src/gpu/wgsl-layout.js';
import { moduleDeclarations } from '../src/gpu/wgsl-text.js';
import { PLACEMENT_EVAL_KERNEL } from '../src/sim/placement-eval.contract.js';
import { ROUTE_SIM_KERNEL } from '../src/sim/route-sim.contract.js';

const offsets = (members: Array<[string, string]>, space: 'uniform' | 'storage' = 'storage') => {
  const l = layoutStruct('S', members, space);
  return { size: l.size, align: l.align, offsets: l.fields.map((f) => f.offset) };
};

// Every expected number below is worked out by hand from the WGSL spec's AlignOf/SizeOf table.
describe('WGSL layout rules', () => {
  it('sizes and aligns scalars, vectors, matrices and arrays', () => {
    const cases: Array<[string, number, number]> = [
      ['u32', 4, 4],
      ['vec2<f32>', 8, 8],
      ['vec3f', 16, 12],
      ['vec4<i32>', 16, 16],
      ['mat2x2<f32>', 8, 16],
      ['mat3x2f', 8, 24],
      ['mat2x4<f32>', 16, 32],
      ['mat3x3<f32>', 16, 48], // three vec3 columns padded to 16
      ['mat4x3f', 16, 64],
      ['array<f32, 5>', 4, 20],
      ['array<vec3<f32>, 3>', 16, 48], // stride 16, not 12
      ['array<vec2u, 3>', 8, 24],
      ['atomic<u32>', 4, 4],
    ];
    for (const [type, align, size] of cases) {
      const t = parseWgslType(type);
      expect([type, alignOf(t), sizeOf(t)]).toEqual([type, align, size]);
    }
    expect(() => parseWgslType('array<f32>')).toThrow(/'array<f32>' has no host layout/);
    expect(() => parseWgslType('f16')).toThrow(/no host layout/);
  });

  it('lays out structs of mixed scalars and vectors at their offsets', () => {
    // The spec's example struct A: w aligns to 8, x follows at 16; the size rounds up to 8.
    expect(
      offsets([
        ['u', 'f32'],
        ['v', 'f32'],
        ['w', 'vec2<f32>'],
        ['x', 'f32'],
      ]),
    ).toEqual({ size: 24, align: 8, offsets: [0, 4, 8, 16] });
    // A scalar after a vec3 takes its fourth lane (28); vec2 realigns to 8 (32); size rounds to 16.
    expect(
      offsets([
        ['a', 'f32'],
        ['b', 'vec3<f32>'],
        ['c', 'u32'],
        ['d', 'vec2<u32>'],
      ]),
    ).toEqual({ size: 48, align: 16, offsets: [0, 16, 28, 32] });
    expect(
      offsets([
        ['a', 'u32'], // 0..4
        ['b', 'vec2<f32>'], // 8..16
        ['c', 'i32'], // 16..20
        ['d', 'vec4<i32>'], // 32..48
        ['e', 'f32'], // 48..52
        ['f', 'mat2x2<f32>'], // align 8: 56..72
        ['g', 'vec3<u32>'], // 80..92
        ['h', 'f32'], // 92..96
      ]),
    ).toEqual({ size: 96, align: 16, offsets: [0, 8, 16, 32, 48, 56, 80, 92] });
  });

  it('applies the uniform address space rules to arrays', () => {
    const members: Array<[string, string]> = [
      ['a', 'u32'],
      ['m', 'array<mat2x2<f32>, 2>'],
    ];
    // Storage: AlignOf is 8, so m follows at 8. Uniform: arrays are 16-aligned, so @align(16) at 16.
    expect(offsets(members, 'storage')).toEqual({ size: 40, align: 8, offsets: [0, 8] });
    expect(offsets(members, 'uniform')).toEqual({ size: 48, align: 16, offsets: [0, 16] });
    expect(layoutStruct('S', members, 'uniform').fields[1]!.explicitAlign).toBe(16);
    expect(
      offsets(
        [
          ['n', 'u32'],
          ['k', 'array<vec4<u32>, 2>'],
          ['m', 'f32'],
        ],
        'uniform',
      ),
    ).toEqual({ size: 64, align: 16, offsets: [0, 16, 48] });
    expect(() => layoutStruct('S', [['a', 'array<u32, 4>']], 'uniform')).toThrow(
      /S\.a: array<u32, 4> has a 4-byte stride; arrays in a uniform buffer need a multiple of 16/,
    );
    expect(() => layoutStruct('S', [['a', 'atomic<u32>']], 'uniform')).toThrow(/atomics/);
  });

  it('refuses a nested array whose inner stride the uniform address space forbids', () => {
    // The outer stride is 16 (four f32s), but the inner array's is 4. WGSL's core uniform rules refuse
    // it at every level (Dawn's uniform_buffer_standard_layout extension would not), as for array<u32, 4>.
    expect(() => layoutStruct('S', [['a', 'array<array<f32, 4>, 2>']], 'uniform')).toThrow(
      /S\.a: array<array<f32, 4>, 2> has a 4-byte stride; arrays in a uniform buffer need a multiple of 16/,
    );
    // Every level 16: allowed; in storage the inner stride of 4 is fine.
    expect(offsets([['a', 'array<array<vec4<f32>, 2>, 3>']], 'uniform').size).toBe(96);
    expect(offsets([['a', 'array<array<f32, 4>, 2>']], 'storage').size).toBe(32);
  });

  it('packs values at those offsets, little-endian, matrices column by padded column', () => {
    const layout = layoutStruct(
      'S',
      [
        ['a', 'u32'],
        ['b', 'vec3<f32>'],
        ['c', 'i32'],
        ['m', 'mat3x3<f32>'],
        ['k', 'array<vec4<u32>, 2>'],
      ],
      'uniform',
    );
    const view = new DataView(new ArrayBuffer(layout.size));
    packStruct(
      layout,
      {
        a: 0xfffffffe,
        b: [1.5, -2, 3.25],
        c: -7,
        m: [1, 2, 3, 4, 5, 6, 7, 8, 9],
        k: [
          [1, 2, 3, 4],
          [5, 6, 7, 8],
        ],
      },
      view,
      'S',
    );
    expect(layout.size).toBe(112); // a 0, b 16, c 28, m 32..80, k 80..112
    expect(view.getUint32(0, true)).toBe(0xfffffffe);
    expect([16, 20, 24].map((o) => view.getFloat32(o, true))).toEqual([1.5, -2, 3.25]);
    expect(view.getInt32(28, true)).toBe(-7);
    expect([32, 36, 40, 48, 52, 56, 64, 68, 72].map((o) => view.getFloat32(o, true))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]);
    expect(Array.from({ length: 8 }, (_, i) => view.getUint32(80 + 4 * i, true))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8,
    ]);
  });

  it('refuses values that do not fit their field, naming it', () => {
    const layout = layoutStruct(
      'S',
      [
        ['n', 'u32'],
        ['v', 'vec2<i32>'],
      ],
      'storage',
    );
    const view = new DataView(new ArrayBuffer(layout.size));
    expect(() => packStruct(layout, { n: -1, v: [0, 0] }, view, 'P')).toThrow(
      /P\.n is a u32: give an integer/,
    );
    expect(() => packStruct(layout, { n: 1 }, view, 'P')).toThrow(/P needs a value for 'v'/);
    expect(() => packStruct(layout, { n: 1, v: [0, 0], w: 2 }, view, 'P')).toThrow(/P has no field 'w'/);
    expect(() => packStruct(layout, { n: 1, v: [0] }, view, 'P')).toThrow(/P\.v needs 2 numbers, got 1/);
    expect(() => packStruct(layout, { n: 1, v: [0, 2 ** 31] }, view, 'P')).toThrow(/P\.v is an i32/);
  });

  it('refuses an f32 value past f32 range (it would be stored as Infinity)', () => {
    const layout = layoutStruct('S', [['x', 'f32']], 'storage');
    const view = new DataView(new ArrayBuffer(layout.size));
    expect(() => packStruct(layout, { x: 1e39 }, view, 'P')).toThrow(
      /P\.x is an f32: 1e\+39 is past its range/,
    );
    expect(() => packStruct(layout, { x: -1e39 }, view, 'P')).toThrow(/P\.x is an f32/);
    // The largest f32 itself, and a double that rounds to it, still pack.
    packStruct(layout, { x: 3.4028234663852886e38 }, view, 'P');
    expect(view.getFloat32(0, true)).toBe(3.4028234663852886e38);
    packStruct(layout, { x: 3.40282350000001e38 }, view, 'P');
    expect(view.getFloat32(0, true)).toBe(3.4028234663852886e38);
  });
});

describe('kernel contracts', () => {
  const decl = {
    file: 't.wgsl',
    declaredIn: 'test/gpu-wgsl-layout.test.ts',
    code: '@compute @workgroup_size(WG) fn main() { _ = params.n; }\n',
    overrides: { N: { type: 'u32' }, WG: { type: 'u32', default: 8 } },
    constants: { BIG: { type: 'u32', value: 0xffffffff }, HALF: { type: 'f32', value: 0.5 } },
    structs: { P: { n: 'u32', v: { type: 'vec3<f32>', doc: 'a vector' }, k: 'array<vec4<u32>, 2>' } },
    bindings: {
      params: { binding: 0, access: 'uniform', type: 'P' },
      data: { binding: 1, access: 'read_write', type: 'array<f32>' },
    },
    workgroup: {
      a: { type: 'u32', length: 'N * 3' },
      b: { type: 'vec4<f32>', length: 'WG' },
      c: { type: 'u32' },
    },
  } as const;

  it('generates the WGSL declarations from the one declaration', () => {
    const k = defineKernel(decl);
    expect(k.header).toContain('override N: u32;\noverride WG: u32 = 8u;');
    expect(k.header).toContain('const BIG: u32 = 0xffffffffu;\nconst HALF: f32 = 0.5;');
    expect(k.header).toContain(
      'struct P {\n  n: u32,\n  v: vec3<f32>, // a vector\n  k: array<vec4<u32>, 2>,\n}',
    );
    expect(k.header).toContain('@group(0) @binding(0) var<uniform> params: P;');
    expect(k.header).toContain('@group(0) @binding(1) var<storage, read_write> data: array<f32>;');
    // The length as written (abstract literals): a `3u` would not type-check beside an i32 override.
    expect(k.header).toContain('var<workgroup> a: array<u32, N * 3>;');
    expect(k.wgsl()).toBe(k.header + decl.code);
    expect(k.layouts.P.size).toBe(64);
  });

  it('types each uniform value by its field declaration (and still checks it at run time)', () => {
    const data = defineKernel(decl).uniform('P');
    const k = [
      [0, 0, 0, 0],
      [0, 0, 0, 0],
    ];
    // @ts-expect-error a u32 field takes a number, not an array
    expect(() => data.set({ n: [1], v: [0, 0, 0], k })).toThrow(/t\.wgsl: P\.n must be a finite number/);
    // @ts-expect-error a vector field takes its components
    expect(() => data.set({ n: 1, v: 2, k })).toThrow(/P\.v is a vec3<f32>: give an array of 3 numbers/);
    expect(data.set({ n: 1, v: [0, 0, 0], k }).bytes.byteLength).toBe(64);
  });

  it('budgets workgroup memory by WebGPU’s rule (each variable rounded up to 16 bytes)', () => {
    const k = defineKernel(decl);
    // a: 5·3·4 = 60 → 64; b: 8 vec4 = 128; c: 4 → 16.
    expect(k.workgroupBytes({ N: 5 })).toBe(208);
    expect(k.workgroupBytes({ N: 5, WG: 16 })).toBe(336);
    expect(() => k.workgroupBytes({ N: 2.5 })).toThrow(/kernels\/t\.wgsl: override N is a u32/);
  });

  it('checks pipeline constants against the declared overrides', () => {
    const k = defineKernel(decl);
    expect(k.constants({ N: 3 })).toEqual({ N: 3 });
    expect(() => k.constants({ N: 3, WGG: 4 } as never)).toThrow(/kernels\/t\.wgsl has no override 'WGG'/);
    expect(() => k.constants({} as never)).toThrow(/needs a value for its override 'N'/);
    // WebGPU would truncate 2.5 to 2 silently and refuse -1 naming no kernel.
    expect(() => k.constants({ N: 2.5 })).toThrow(
      /^kernels\/t\.wgsl: override N is a u32: give an integer in 0…4294967295, got 2\.5$/,
    );
    expect(() => k.constants({ N: -1 })).toThrow(/override N is a u32/);
    expect(() => k.constants({ N: 3, WG: 2 ** 32 })).toThrow(/override WG is a u32/);
  });

  it('writes i32 constants WGSL accepts, the most negative one included', () => {
    const k = defineKernel({
      file: 'i.wgsl',
      declaredIn: 'test/gpu-wgsl-layout.test.ts',
      code: '',
      constants: { LOW: { type: 'i32', value: -0x80000000 }, MINUS: { type: 'i32', value: -5 } },
      bindings: {},
    });
    // `-2147483648i` would negate 2147483648i, which is out of i32's range (a WGSL error).
    expect(k.header).toContain('const LOW: i32 = i32(-2147483648);\nconst MINUS: i32 = -5i;');
    expect(() => defineKernel({ ...k.decl, constants: { HUGE: { type: 'f32', value: 1e39 } } })).toThrow(
      /test\/gpu-wgsl-layout\.test\.ts: constant HUGE is an f32: 1e\+39 is past its range/,
    );
  });

  it('refuses a contract that declares a name twice or reuses a binding slot', () => {
    expect(() => defineKernel({ ...decl, constants: { N: { type: 'u32', value: 1 } } })).toThrow(
      /'N' is declared as a constant and as an override/,
    );
    expect(() =>
      defineKernel({
        ...decl,
        bindings: { ...decl.bindings, more: { binding: 1, access: 'read', type: 'array<u32>' } },
      }),
    ).toThrow(/binding 'more' reuses @group\/@binding 0\/1/);
    expect(() =>
      defineKernel({ ...decl, bindings: { params: { binding: 0, access: 'uniform', type: 'u32' } } }),
    ).toThrow(/uniform binding 'params' must have a struct type/);
  });

  it('a body that re-declares a contract name fails, naming the kernel file and the contract', () => {
    const body = `// struct P in a comment is fine\nstruct P { n: u32 }\nfn f() { var data = 1.0; _ = data; }\n${decl.code}`;
    const k = defineKernel({ ...decl, code: body });
    expect(() => k.wgsl()).toThrow(
      'kernels/t.wgsl re-declares struct P, which its contract (test/gpu-wgsl-layout.test.ts) generates',
    );
    // A real kernel file: eplb-balancer.wgsl declares `struct Pick` itself.
    const clash = defineKernel({
      ...GPU_LPT_KERNEL.decl,
      structs: { ...GPU_LPT_KERNEL.decl.structs, Pick: { v: 'f32' } },
    });
    expect(() => clash.wgsl()).toThrow(/^kernels\/eplb-balancer\.wgsl re-declares struct Pick/);
  });

  it('sizes array bindings by their element stride', () => {
    expect(PLACEMENT_EVAL_KERNEL.elementBytes('windows')).toBe(4);
    expect(PLACEMENT_EVAL_KERNEL.elementBytes('pairs')).toBe(8);
    expect(PLACEMENT_EVAL_KERNEL.elementBytes('layer_stats')).toBe(16);
    expect(ROUTE_SIM_KERNEL.elementBytes('counters')).toBe(4);
    expect(() => ROUTE_SIM_KERNEL.elementBytes('params')).toThrow(/'params' is not an array binding/);
  });

  it("the project's kernel files hold only code: every contract name is declared once, by the contract", () => {
    for (const k of [SMOKE_KERNEL, GPU_LPT_KERNEL, ROUTE_SIM_KERNEL, PLACEMENT_EVAL_KERNEL]) {
      const names = moduleDeclarations(k.wgsl()).map((d) => d.name);
      expect(new Set(names).size, k.file).toBe(names.length);
    }
  });
});
