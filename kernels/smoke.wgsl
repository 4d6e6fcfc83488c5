// Smoke kernel: out[i] = a[i] * scale + i. Proves the device compiles WGSL and runs compute.
// Its declarations (WG, override scale, bindings a and out) come from src/gpu/smoke.contract.ts.

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= arrayLength(&a)) {
    return;
  }
  out[i] = a[i] * scale + f32(i);
}
