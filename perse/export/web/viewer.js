// PERSE Studio web viewer: renders and edits a PERSE avatar bundle (perse/export/web.py) with WebGL2.
// Written for this project (no code copied); the depth sort follows the 16-bit counting sort idea of
// antimatter15/splat (MIT). The decoder and rasterizer mirror perse/avatar/model.py and the torch
// compositor of perse/core/render.py, so a view matches `Avatar.render` (docs/web.md).
"use strict";

const VERTEX_SHADER = `#version 300 es
precision highp float;
precision highp int;
uniform highp sampler2D u_data;
uniform highp sampler2D u_features;  // 8-bit features: low + span * texel
uniform int u_width;            // data texture width in texels
uniform int u_feature_width;
uniform vec4 u_feature_low[F4], u_feature_span[F4];
uniform vec4 u_basis[OUTPUTS * F4];
uniform mat4 u_view;            // world to camera
uniform vec4 u_intrinsics;      // fx, fy, cx, cy
uniform vec2 u_size;            // viewport in pixels
uniform float u_offset_unit;
uniform float u_eps2d, u_near, u_alpha_min, u_max_extent;
in vec2 a_corner;
in uint a_index;
out vec3 v_color;
out vec2 v_offset;
flat out vec3 v_conic;
flat out float v_opacity;

vec4 texel(int j) {
  int t = int(a_index) * 4 + j;
  return texelFetch(u_data, ivec2(t % u_width, t / u_width), 0);
}

vec4 feature(int k) {
  int t = int(a_index) * F4 + k;
  return u_feature_low[k] + u_feature_span[k] * texelFetch(u_features, ivec2(t % u_feature_width, t / u_feature_width), 0);
}

float delta(int o, vec4 features[F4]) {
  float sum = 0.0;
  for (int k = 0; k < F4; k++) sum += dot(features[k], u_basis[o * F4 + k]);
  return sum;
}

float sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }

void cull() { gl_Position = vec4(0.0, 0.0, 2.0, 1.0); }

void main() {
  vec4 t0 = texel(0), t1 = texel(1), t2 = texel(2), t3 = texel(3);
  vec4 features[F4];
  for (int k = 0; k < F4; k++) features[k] = feature(k);
  // Output order of perse.avatar.model.OUTPUTS: colour 3, opacity 1, scale 3, rotation 4, offset 3.
  float d[OUTPUTS];
  for (int o = 0; o < OUTPUTS; o++) d[o] = delta(o, features);
  vec3 mean = t0.xyz + u_offset_unit * vec3(d[11], d[12], d[13]);
  float opacity = sigmoid(t0.w + d[3]);
  vec3 scale = exp(t1.xyz + vec3(d[4], d[5], d[6]));
  vec4 q = t2 + vec4(d[7], d[8], d[9], d[10]);
  q /= max(length(q), 1e-12);
  vec3 color = vec3(sigmoid(t3.x + d[0]), sigmoid(t3.y + d[1]), sigmoid(t3.z + d[2]));

  float w = q.x, x = q.y, y = q.z, z = q.w;
  // Column-major: each vec3 is a column of the rotation matrix.
  mat3 R = mat3(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y),
                2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x),
                2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y));
  mat3 M = R * mat3(scale.x, 0.0, 0.0, 0.0, scale.y, 0.0, 0.0, 0.0, scale.z);
  mat3 V = mat3(u_view);
  vec3 c = V * mean + u_view[3].xyz;
  if (c.z <= u_near || opacity < u_alpha_min) { cull(); return; }
  mat3 cov = V * M * transpose(M) * transpose(V);
  float fx = u_intrinsics.x, fy = u_intrinsics.y, cx = u_intrinsics.z, cy = u_intrinsics.w;
  // As gsplat, the Jacobian is taken at the point clamped to 1.3x the frustum.
  float limx = 0.3 * 0.5 * u_size.x / fx, limy = 0.3 * 0.5 * u_size.y / fy;
  float jx = c.z * clamp(c.x / c.z, -(cx / fx + limx), (u_size.x - cx) / fx + limx);
  float jy = c.z * clamp(c.y / c.z, -(cy / fy + limy), (u_size.y - cy) / fy + limy);
  mat3 J = mat3(fx / c.z, 0.0, 0.0, 0.0, fy / c.z, 0.0, -fx * jx / (c.z * c.z), -fy * jy / (c.z * c.z), 0.0);
  mat3 cov2 = J * cov * transpose(J);
  float a = cov2[0][0] + u_eps2d, b = 0.5 * (cov2[0][1] + cov2[1][0]), cc = cov2[1][1] + u_eps2d;
  float det = a * cc - b * b;
  if (det <= 0.0) { cull(); return; }
  float extent = min(sqrt(2.0 * max(log(opacity / u_alpha_min), 0.0)), u_max_extent);
  vec2 radius = vec2(ceil(extent * sqrt(a)), ceil(extent * sqrt(cc)));
  vec2 centre = vec2(fx * c.x / c.z + cx, fy * c.y / c.z + cy);
  if (any(lessThanEqual(centre + radius, vec2(0.0))) || any(greaterThanEqual(centre - radius, u_size))) {
    cull(); return;
  }
  v_offset = a_corner * radius;
  vec2 pixel = centre + v_offset;
  // Pixels are y-down like OpenCV; clip space is y-up.
  gl_Position = vec4(2.0 * pixel.x / u_size.x - 1.0, 1.0 - 2.0 * pixel.y / u_size.y, 0.0, 1.0);
  v_conic = vec3(cc / det, -b / det, a / det);
  v_opacity = opacity;
  v_color = color;
}`;

const FRAGMENT_SHADER = `#version 300 es
precision highp float;
uniform float u_alpha_min, u_alpha_max;
in vec3 v_color;
in vec2 v_offset;
flat in vec3 v_conic;
flat in float v_opacity;
out vec4 fragColor;
void main() {
  // v_offset is mean -> pixel; the compositor uses pixel - mean, the same up to a sign that cancels.
  vec2 d = v_offset;
  float sigma = 0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) + v_conic.y * d.x * d.y;
  float alpha = min(u_alpha_max, v_opacity * exp(-sigma));
  if (sigma < 0.0 || alpha < u_alpha_min) discard;
  fragColor = vec4(v_color * alpha, alpha);
}`;

function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function halves(buffer, entry) {
  return new Uint16Array(buffer, entry.offset, entry.bytes / 2);
}

function floats(buffer, entry) {
  const raw = halves(buffer, entry);
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = halfToFloat(raw[i]);
  return out;
}

// A slider position p in [0, n-1] blends codes floor(p) and ceil(p), as Avatar.slider_code.
function sliderCode(codes, position) {
  const last = codes.length - 1;
  const p = Math.min(Math.max(position, 0), last);
  const low = Math.floor(p), high = Math.min(low + 1, last), t = p - low;
  return codes[low].map((v, i) => (1 - t) * v + t * codes[high][i]);
}

// The world-to-camera matrix of perse.core.camera.head_pose_viewmat (roll 0), column-major for WebGL.
function headPoseView(camera, yawDeg, pitchDeg) {
  const y = yawDeg * Math.PI / 180, p = pitchDeg * Math.PI / 180;
  const cy = Math.cos(y), sy = Math.sin(y), cp = Math.cos(p), sp = Math.sin(p);
  // R = Rx(pitch) Ry(yaw), row-major.
  const R = [[cy, 0, sy], [sp * sy, cp, -sp * cy], [-cp * sy, sp, cp * cy]];
  const pivot = camera.pivot;
  const t = [0, 1, 2].map(i => pivot[i] - (R[i][0] * pivot[0] + R[i][1] * pivot[1] + R[i][2] * pivot[2]));
  t[2] += camera.distance;
  return new Float32Array([R[0][0], R[1][0], R[2][0], 0, R[0][1], R[1][1], R[2][1], 0,
                           R[0][2], R[1][2], R[2][2], 0, t[0], t[1], t[2], 1]);
}

class Decoder {
  // The per-frame half of perse.avatar.model.Decoder: each category's MLP on its (rescaled) code, summed,
  // and the expression basis, together one (F x outputs) basis.
  constructor(manifest, buffer) {
    this.m = manifest;
    this.layers = [];
    for (let i = 0; `layer${i}.weight` in manifest.arrays; i++) {
      const w = manifest.arrays[`layer${i}.weight`], b = manifest.arrays[`layer${i}.bias`];
      this.layers.push({w: floats(buffer, w), b: floats(buffer, b), inputs: w.shape[1], outputs: w.shape[2]});
    }
    this.expression = floats(buffer, manifest.arrays.expression);
    this.size = manifest.feature_dim * manifest.outputs.reduce((s, [, n]) => s + n, 0);
  }

  basis(codes, expression) {
    const total = new Float32Array(this.size);
    codes.forEach((code, c) => {
      let h = Float32Array.from(code, v => v * this.m.code_scale);
      this.layers.forEach((layer, i) => {
        const out = new Float32Array(layer.outputs);
        const w = layer.w, base = c * layer.inputs * layer.outputs;
        for (let o = 0; o < layer.outputs; o++) out[o] = layer.b[c * layer.outputs + o];
        for (let k = 0; k < layer.inputs; k++) {
          const hk = h[k];
          if (hk === 0) continue;
          const row = base + k * layer.outputs;
          for (let o = 0; o < layer.outputs; o++) out[o] += hk * w[row + o];
        }
        if (i < this.layers.length - 1) for (let o = 0; o < out.length; o++) out[o] = Math.max(out[o], 0);
        h = out;
      });
      for (let j = 0; j < h.length; j++) total[j] += h[j];
    });
    // The expression basis fills the last rows of the basis: the features of their own (or all of
    // them, where the decoder shares the categories' features with the expressions).
    const e = expression.length, rows = this.expression.length / e, first = total.length - rows;
    for (let j = 0; j < rows; j++) {
      let sum = 0;
      for (let k = 0; k < e; k++) sum += this.expression[j * e + k] * expression[k] * this.m.expression_gain;
      total[first + j] += sum;
    }
    return total;  // index f * outputs + o
  }
}

class SplatViewer {
  constructor(canvas, manifest, buffer) {
    this.canvas = canvas;
    this.m = manifest;
    this.count = manifest.count;
    this.outputs = manifest.outputs.reduce((s, [, n]) => s + n, 0);
    this.f4 = manifest.arrays.features.shape[1];
    this.decoder = new Decoder(manifest, buffer);
    this.yaw = 0; this.pitch = 0; this.zoom = 1;
    this.positions = manifest.categories.map(() => 0);
    this.expression = manifest.expressions.map(() => 0);
    this.timings = {decode: 0, sort: 0, frame: 0};
    const gl = canvas.getContext("webgl2", {antialias: false, premultipliedAlpha: true, preserveDrawingBuffer: true});
    if (!gl) throw new Error("this browser has no WebGL2");
    this.gl = gl;
    this.readGaussians(buffer);
    this.setupGL();
    this.setLook(this.positions, this.expression);
  }

  readGaussians(buffer) {
    this.raw = halves(buffer, this.m.arrays.gaussians);
    const entry = this.m.arrays.features;
    this.rawFeatures = new Uint8Array(buffer, entry.offset, entry.bytes);
    const n = this.count, F4 = this.f4, {low, span} = this.m.feature_range;
    // CPU copies of what the depth sort needs: canonical means and the features behind the offsets.
    this.means = new Float32Array(n * 3);
    this.features = new Float32Array(n * F4 * 4);
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < 3; a++) this.means[i * 3 + a] = halfToFloat(this.raw[i * 16 + a]);
      for (let f = 0; f < F4 * 4; f++) {
        this.features[i * F4 * 4 + f] = low[f] + span[f] * this.rawFeatures[i * F4 * 4 + f] / 255;
      }
    }
    this.decoded = new Float32Array(n * 3);
  }

  setupGL() {
    const gl = this.gl;
    const define = `#define OUTPUTS ${this.outputs}\n#define F4 ${this.f4}\n`;
    const compile = (type, source) => {
      const shader = gl.createShader(type);
      gl.shaderSource(shader, source.replace("\n", "\n" + define));
      gl.compileShader(shader);
      if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
      return shader;
    };
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl.VERTEX_SHADER, VERTEX_SHADER));
    gl.attachShader(program, compile(gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    gl.useProgram(program);
    this.program = program;
    const u = name => gl.getUniformLocation(program, name);
    this.u = {basis: u("u_basis"), view: u("u_view"), intrinsics: u("u_intrinsics"), size: u("u_size")};
    const r = this.m.render;
    gl.uniform1f(u("u_offset_unit"), this.m.offset_unit);
    gl.uniform1f(u("u_eps2d"), r.eps2d);
    gl.uniform1f(u("u_near"), r.near_plane);
    gl.uniform1f(u("u_alpha_min"), r.alpha_min);
    gl.uniform1f(u("u_alpha_max"), r.alpha_max);
    gl.uniform1f(u("u_max_extent"), r.max_extent);

    // The data textures, straight from the bundle, no conversion: the state as RGBA16F, the features as
    // RGBA8 (read as byte / 255).
    const texture = (unit, texels, raw, internalFormat, type) => {
      const width = Math.min(texels, gl.getParameter(gl.MAX_TEXTURE_SIZE), 4096);
      const height = Math.ceil(texels / width);
      const padded = new raw.constructor(width * height * 4);
      padded.set(raw);
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
      gl.texImage2D(gl.TEXTURE_2D, 0, internalFormat, width, height, 0, gl.RGBA, type, padded);
      return width;
    };
    gl.uniform1i(u("u_width"), texture(0, this.count * 4, this.raw, gl.RGBA16F, gl.HALF_FLOAT));
    gl.uniform1i(u("u_data"), 0);
    gl.uniform1i(u("u_feature_width"), texture(1, this.count * this.f4, this.rawFeatures, gl.RGBA8, gl.UNSIGNED_BYTE));
    gl.uniform1i(u("u_features"), 1);
    const {low, span} = this.m.feature_range;
    gl.uniform4fv(u("u_feature_low"), new Float32Array(low));
    gl.uniform4fv(u("u_feature_span"), new Float32Array(span));

    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    const corners = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, corners);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const corner = gl.getAttribLocation(program, "a_corner");
    gl.enableVertexAttribArray(corner);
    gl.vertexAttribPointer(corner, 2, gl.FLOAT, false, 0, 0);
    this.indexBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.indexBuffer);
    const index = gl.getAttribLocation(program, "a_index");
    gl.enableVertexAttribArray(index);
    gl.vertexAttribIPointer(index, 1, gl.UNSIGNED_INT, 0, 0);
    gl.vertexAttribDivisor(index, 1);
    this.order = new Uint32Array(this.count);
    this.depths = new Float32Array(this.count);
    this.depthKeys = new Uint32Array(this.count);
    this.bins = new Uint32Array(65536);

    gl.disable(gl.DEPTH_TEST);
    gl.enable(gl.BLEND);
    // Premultiplied colour drawn back to front: the same sum as the compositor's front-to-back pass.
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
  }

  // Set slider positions (one per category) and expression values; recomputes the basis and offsets.
  setLook(positions, expression) {
    const start = performance.now();
    this.positions = positions.slice();
    this.expression = expression.slice();
    const codes = this.m.categories.map((c, i) => sliderCode(c.codes, this.positions[i]));
    const basis = this.decoder.basis(codes, this.expression);
    const F = this.m.feature_dim, O = this.outputs, F4 = this.f4;
    // Uniform layout: for output o, F4 vec4s of the basis column (features zero-padded to 4 * F4).
    const packed = new Float32Array(O * F4 * 4);
    for (let o = 0; o < O; o++) for (let f = 0; f < F; f++) packed[o * F4 * 4 + f] = basis[f * O + o];
    this.gl.uniform4fv(this.u.basis, packed);
    // Decoded means for the sort: canonical + offset (the last three outputs).
    const n = this.count, feats = this.features, means = this.means, out = this.decoded;
    const unit = this.m.offset_unit, stride = F4 * 4;
    const b0 = packed.subarray((O - 3) * stride, (O - 2) * stride);
    const b1 = packed.subarray((O - 2) * stride, (O - 1) * stride);
    const b2 = packed.subarray((O - 1) * stride, O * stride);
    for (let i = 0; i < n; i++) {
      let x = 0, y = 0, z = 0;
      const base = i * stride;
      for (let f = 0; f < F; f++) {
        const v = feats[base + f];
        x += v * b0[f]; y += v * b1[f]; z += v * b2[f];
      }
      out[i * 3] = means[i * 3] + unit * x;
      out[i * 3 + 1] = means[i * 3 + 1] + unit * y;
      out[i * 3 + 2] = means[i * 3 + 2] + unit * z;
    }
    this.timings.decode = performance.now() - start;
    this.dirty = true;
  }

  view() {
    return headPoseView(this.m.camera, this.yaw, this.pitch);
  }

  intrinsics() {
    // The training intrinsics scaled to the canvas (Avatar.camera); zoom scales the focal length.
    const cam = this.m.camera, K = cam.intrinsics;
    const side = Math.min(this.canvas.width, this.canvas.height), s = side / cam.image_size;
    return [K[0][0] * s * this.zoom, K[1][1] * s * this.zoom,
            this.canvas.width / 2 + (K[0][2] - cam.image_size / 2) * s,
            this.canvas.height / 2 + (K[1][2] - cam.image_size / 2) * s];
  }

  sort(view) {
    // Back to front by camera depth: a 16-bit counting sort (two passes over N, no comparisons).
    const start = performance.now();
    const n = this.count, p = this.decoded, keys = this.depthKeys, bins = this.bins, order = this.order;
    const r0 = view[2], r1 = view[6], r2 = view[10], r3 = view[14];
    let lo = Infinity, hi = -Infinity;
    const depth = this.depths;
    for (let i = 0; i < n; i++) {
      const z = r0 * p[i * 3] + r1 * p[i * 3 + 1] + r2 * p[i * 3 + 2] + r3;
      depth[i] = z;
      if (z < lo) lo = z;
      if (z > hi) hi = z;
    }
    const scale = 65535 / Math.max(hi - lo, 1e-9);
    bins.fill(0);
    for (let i = 0; i < n; i++) {
      keys[i] = Math.round((hi - depth[i]) * scale);
      bins[keys[i]]++;
    }
    for (let k = 1; k < 65536; k++) bins[k] += bins[k - 1];
    for (let i = n - 1; i >= 0; i--) order[--bins[keys[i]]] = i;
    this.timings.sort = performance.now() - start;
  }

  draw() {
    const start = performance.now();
    const gl = this.gl;
    const view = this.view();
    this.sort(view);
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.uniformMatrix4fv(this.u.view, false, view);
    gl.uniform4fv(this.u.intrinsics, this.intrinsics());
    gl.uniform2f(this.u.size, this.canvas.width, this.canvas.height);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.indexBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, this.order, gl.DYNAMIC_DRAW);
    gl.bindVertexArray(this.vao);
    gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, this.count);
    this.dirty = false;
    this.timings.frame = performance.now() - start;
  }

  // RGB bytes of the canvas, top row first (for tests and benches).
  pixels() {
    const gl = this.gl, w = this.canvas.width, h = this.canvas.height;
    const data = new Uint8Array(w * h * 4);
    gl.finish();
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, data);
    const rgb = new Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++)
      rgb[(y * w + x) * 3 + c] = data[((h - 1 - y) * w + x) * 4 + c];
    return rgb;
  }
}

// A random look like Avatar.sample: each category changes with probability 1/2 (at least one does,
// one accessory at most) to a learned look other than the source; non-accessories then move up to 0.4
// of the way towards a neighbouring look.
function randomLook(categories, random = Math.random) {
  let changed = categories.map(() => random() < 0.5);
  if (!changed.some(Boolean)) changed[Math.floor(random() * categories.length)] = true;
  const worn = categories.map((c, i) => i).filter(i => changed[i] && categories[i].accessory);
  if (worn.length > 1) {
    const keep = worn[Math.floor(random() * worn.length)];
    worn.forEach(i => { if (i !== keep) changed[i] = false; });
  }
  return categories.map((c, i) => {
    const last = c.values.length - 1;
    if (!changed[i] || last === 0) return 0;
    const pick = 1 + Math.floor(random() * last);
    if (c.accessory) return pick;
    const towards = pick === last ? pick - 1 : (random() < 0.5 ? pick - 1 : pick + 1);
    return pick + (towards - pick) * random() * 0.4;
  });
}

// A labelled range input: `describe` gives the text shown beside it, `onInput` acts on a move (not on
// creation: the page sets the starting look once, rather than decoding once per slider).
function slider(parent, label, min, max, value, describe, onInput) {
  const row = document.createElement("label");
  row.className = "slider";
  const name = document.createElement("span");
  name.textContent = label;
  const input = document.createElement("input");
  Object.assign(input, {type: "range", min, max, step: 0.01, value});
  const shown = document.createElement("output");
  row.append(name, input, shown);
  parent.append(row);
  const show = () => { shown.textContent = describe(parseFloat(input.value)); };
  input.addEventListener("input", () => { onInput(parseFloat(input.value)); show(); });
  show();
  return input;
}

// The look and view a page opens at, from its URL (the app opens the viewer at the studio's look, and a
// shared link keeps it): ?look=hair:1.5,glasses:1&expression=jawOpen:0.6&yaw=10&pitch=-5. Names the
// avatar does not have are ignored and values are clamped to the sliders' ranges.
function startState(manifest, search) {
  const params = new URLSearchParams(search);
  const named = key => Object.fromEntries((params.get(key) || "").split(",").filter(Boolean)
    .map(item => item.split(":")).map(([name, value]) => [name, parseFloat(value)]));
  const within = (value, low, high, fallback) => Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : fallback;
  const look = named("look"), expression = named("expression");
  const [low, high] = manifest.expression_range;
  return {
    positions: manifest.categories.map(c => within(look[c.name], 0, c.values.length - 1, 0)),
    expression: manifest.expressions.map(name => within(expression[name], low, high, low)),
    yaw: within(parseFloat(params.get("yaw")), -180, 180, 0),
    pitch: within(parseFloat(params.get("pitch")), -90, 90, 0),
  };
}

async function startViewer(root, base = ".", search = location.search) {
  const manifest = await (await fetch(`${base}/manifest.json`)).json();
  const buffer = await (await fetch(`${base}/bundle.bin`)).arrayBuffer();
  const canvas = root.querySelector("canvas");
  const viewer = new SplatViewer(canvas, manifest, buffer);
  const start = startState(manifest, search);
  viewer.yaw = start.yaw;
  viewer.pitch = start.pitch;
  const status = root.querySelector(".status");
  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      viewer.draw();
      if (status) status.textContent =
        `${viewer.count} Gaussians · frame ${viewer.timings.frame.toFixed(1)} ms · decode ${viewer.timings.decode.toFixed(1)} ms`;
    });
  };
  const panel = root.querySelector(".controls");
  const inputs = manifest.categories.map((c, i) => slider(panel, c.name, 0, c.values.length - 1, start.positions[i],
    v => c.values[Math.round(v)] + (Number.isInteger(v) ? "" : ` ~ ${v.toFixed(2)}`), v => {
      viewer.positions[i] = v;
      viewer.setLook(viewer.positions, viewer.expression);
      redraw();
    }));
  // Many expression controls: folded away until asked for, so the look's sliders stay in view.
  const expressions = document.createElement("details");
  expressions.innerHTML = "<summary>Expression</summary>";
  panel.append(expressions);
  const expressionInputs = manifest.expressions.map((name, i) => slider(expressions, name,
    manifest.expression_range[0], manifest.expression_range[1], start.expression[i], v => v.toFixed(2), v => {
      viewer.expression[i] = v;
      viewer.setLook(viewer.positions, viewer.expression);
      redraw();
    }));
  viewer.setLook(start.positions, start.expression);
  // The address bar always holds the current look and view (startState reads it back): copying it
  // shares exactly what is on screen.
  let linkTimer = null;
  const updateLink = () => {
    clearTimeout(linkTimer);
    linkTimer = setTimeout(() => {
      const params = new URLSearchParams(location.search);
      const list = (names, values) => names.map((name, i) => `${name}:${+values[i].toFixed(3)}`).filter((_, i) => values[i]).join(",");
      params.set("look", list(manifest.categories.map(c => c.name), viewer.positions));
      params.set("expression", list(manifest.expressions, viewer.expression));
      params.set("yaw", viewer.yaw.toFixed(1));
      params.set("pitch", viewer.pitch.toFixed(1));
      history.replaceState(null, "", `${location.pathname}?${params.toString().replace(/%3A/g, ":").replace(/%2C/g, ",")}`);
    }, 300);
  };
  canvas.addEventListener("pointerup", updateLink);
  panel.addEventListener("input", updateLink);
  const save = root.querySelector(".save");
  if (save) save.addEventListener("click", () => {
    const link = document.createElement("a");
    link.download = "avatar.png";
    link.href = canvas.toDataURL("image/png");
    link.click();
  });
  const set = (input, value) => { input.value = value; input.dispatchEvent(new Event("input")); };
  const random = root.querySelector(".random");
  if (random) random.addEventListener("click", () => {
    randomLook(manifest.categories).forEach((v, i) => set(inputs[i], v));
    updateLink();
  });
  const reset = root.querySelector(".reset");
  if (reset) reset.addEventListener("click", () => {
    inputs.forEach(input => set(input, 0));
    expressionInputs.forEach(input => set(input, manifest.expression_range[0]));
    viewer.yaw = 0; viewer.pitch = 0; viewer.zoom = 1;
    redraw();
    updateLink();
  });
  // Orbit with a drag (yaw and pitch as `perse render --yaw/--pitch`), zoom with the wheel.
  let drag = null;
  canvas.addEventListener("pointerdown", e => { drag = {x: e.clientX, y: e.clientY}; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { drag = null; });
  canvas.addEventListener("pointermove", e => {
    if (!drag) return;
    viewer.yaw = ((viewer.yaw - (e.clientX - drag.x) * 0.4 + 540) % 360) - 180;
    viewer.pitch = Math.max(-90, Math.min(90, viewer.pitch + (e.clientY - drag.y) * 0.4));
    drag = {x: e.clientX, y: e.clientY};
    redraw();
  });
  canvas.addEventListener("wheel", e => {
    e.preventDefault();
    viewer.zoom = Math.max(0.5, Math.min(4, viewer.zoom * Math.exp(-e.deltaY * 0.001)));
    redraw();
  }, {passive: false});
  viewer.draw();
  return viewer;
}
