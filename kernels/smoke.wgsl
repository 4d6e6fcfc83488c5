// Smoke kernel: out[i] = a[i] * scale + i. Proves the device compiles WGSL and runs compute.
override scale: f32 = 2.0;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= arrayLength(&a)) {
    return;
  }
  out[i] = a[i] * scale + f32(i);
}
