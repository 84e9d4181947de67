// lib.mjs: shared helpers for the reference scripts (make_goldens, compare_goldens, bench_ingest).
// Loads face-api.js on TensorFlow.js with the wasm (SIMD) or cpu backend, entirely offline, and reads
// the pixel files our loader exports. What must stay true: every module is resolved from this
// folder's node_modules (the pinned versions in package.json), so the tfjs instance face-api uses
// is the one we configure here; nothing touches the network.
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const refDir = path.dirname(fileURLToPath(import.meta.url));
export const require = createRequire(path.join(refDir, 'package.json'));

let tfMod = null;
let faceapiMod = null;

// initTf: loads tfjs + face-api and selects the backend ('wasm' or 'cpu'). The wasm backend loads its
// .wasm binary from node_modules (no setWasmPaths: with a plain path it would try fetch()).
export async function initTf(backend = 'wasm') {
  if (!tfMod) {
    tfMod = require('@tensorflow/tfjs');
    require('@tensorflow/tfjs-backend-wasm');
    faceapiMod = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  }
  if (!(await tfMod.setBackend(backend))) throw new Error(`cannot set tfjs backend ${backend}`);
  await tfMod.ready();
  return { tf: tfMod, faceapi: faceapiMod };
}

export function backendInfo(tf) {
  const info = { backend: tf.getBackend(), tfjs: tf.version.tfjs };
  if (info.backend === 'wasm') {
    // Flags are evaluated lazily by the wasm backend; after ready() they are cached.
    try { info.wasm_simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT'); } catch { info.wasm_simd = null; }
    try { info.wasm_threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'); } catch { info.wasm_threads = null; }
  }
  return info;
}

export function modelDir() {
  return path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
}

export function faceapiVersion() {
  return JSON.parse(fs.readFileSync(require.resolve('@vladmandic/face-api/package.json'), 'utf8')).version;
}

export function samplesDir() {
  return path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');
}

// loadNets: loads the networks the pipeline uses from the installed model folder.
export async function loadNets(faceapi, which = ['ssd', 'tiny', 'lm', 'lmTiny', 'rec']) {
  const dir = modelDir();
  const n = faceapi.nets;
  const map = {
    ssd: n.ssdMobilenetv1,
    tiny: n.tinyFaceDetector,
    lm: n.faceLandmark68Net,
    lmTiny: n.faceLandmark68TinyNet,
    rec: n.faceRecognitionNet,
  };
  for (const k of which) if (!map[k].isLoaded) await map[k].loadFromDisk(dir);
  return map;
}

// readPPM: binary P6 with maxval 255 (libvips writes a '#vips2ppm' comment line). Returns
// { width, height, data } with data the raw row-major RGB bytes.
export function readPPM(file) {
  const buf = fs.readFileSync(file);
  let pos = 0;
  const tokens = [];
  while (tokens.length < 4) {
    while (pos < buf.length && /\s/.test(String.fromCharCode(buf[pos]))) pos++;
    if (buf[pos] === 0x23) { // comment up to end of line
      while (pos < buf.length && buf[pos] !== 0x0a) pos++;
      continue;
    }
    let tok = '';
    while (pos < buf.length && !/\s/.test(String.fromCharCode(buf[pos]))) tok += String.fromCharCode(buf[pos++]);
    tokens.push(tok);
  }
  pos++; // exactly one whitespace byte after maxval
  const [magic, w, h, maxval] = tokens;
  if (magic !== 'P6' || maxval !== '255') throw new Error(`${file}: not an 8-bit P6 PPM`);
  const width = Number(w);
  const height = Number(h);
  const data = new Uint8Array(buf.buffer, buf.byteOffset + pos, width * height * 3);
  if (data.length !== width * height * 3) throw new Error(`${file}: truncated PPM`);
  return { width, height, data };
}

// decodeJpegJs: the pure-JS decoder (jpeg-js), RGBA -> RGB. Needs jpeg-js resolvable from here
// (reference/node_modules once pinned, or NODE_PATH). Returns null when jpeg-js is not installed.
export function jpegJs() {
  try { return require('jpeg-js'); } catch { return null; }
}

export function decodeJpegJs(jpeg, bytes) {
  const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 2048 });
  return { width: img.width, height: img.height, data: img.data };
}

export function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

export function r6(v) {
  return Math.round(v * 1e6) / 1e6;
}

export const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// toJson: pretty JSON whose leaves stay on one line (numeric arrays, [x, y] pairs, small flat
// objects such as boxes), so golden files are readable, diffable and small.
export function toJson(v, ind = '') {
  const flat = (x) => x === null || typeof x !== 'object'
    || (Array.isArray(x) ? x.every((e) => e === null || typeof e !== 'object' || (Array.isArray(e) && e.every((f) => typeof f !== 'object')))
      : Object.values(x).every((e) => e === null || typeof e !== 'object') && Object.keys(x).length <= 6);
  if (flat(v)) return JSON.stringify(v);
  const next = `${ind} `;
  if (Array.isArray(v)) return `[\n${v.map((e) => next + toJson(e, next)).join(',\n')}\n${ind}]`;
  return `{\n${Object.entries(v).map(([k, e]) => `${next}${JSON.stringify(k)}: ${toJson(e, next)}`).join(',\n')}\n${ind}}`;
}

// traceKernels: runs fn() with every kernel of the current backend wrapped so that each kernel call
// is recorded in order: op name, output shape, the conv/pool attributes, and a summary of the output
// values (sum, mean |x|, first 4). This is the reference's exact computation, op by op, for finding
// the first layer where an implementation diverges. Kernels are restored afterwards.
const TRACE_SKIP = new Set(['Reshape', 'Identity', 'Cast', 'Fill', 'Unpack', 'Pack', 'Slice', 'StridedSlice', 'ZerosLike', 'Transpose']);
export function traceKernels(tf, fn) {
  const backendName = tf.getBackend();
  const kernels = tf.getKernelsForBackend(backendName);
  const trace = [];
  const record = (name, attrs, backend, out) => {
    if (TRACE_SKIP.has(name)) return;
    for (const o of Array.isArray(out) ? out : [out]) {
      if (!o || !o.dataId || o.dtype !== 'float32') continue;
      const d = backend.readSync(o.dataId);
      let sum = 0;
      let sumAbs = 0;
      for (let i = 0; i < d.length; i++) { sum += d[i]; sumAbs += Math.abs(d[i]); }
      const e = { op: name, shape: o.shape };
      if (attrs && attrs.strides !== undefined) {
        for (const k of ['strides', 'pad', 'filterSize', 'dilations']) if (attrs[k] !== undefined) e[k] = attrs[k];
      }
      Object.assign(e, { sum: r6(sum), mean_abs: r6(sumAbs / d.length), first: Array.from(d.slice(0, 4), r6) });
      trace.push(e);
    }
  };
  for (const k of kernels) {
    tf.unregisterKernel(k.kernelName, backendName);
    tf.registerKernel({
      ...k,
      kernelFunc: (args) => {
        const out = k.kernelFunc(args);
        record(k.kernelName, args.attrs, args.backend, out);
        return out;
      },
    });
  }
  try {
    fn();
  } finally {
    for (const k of kernels) {
      tf.unregisterKernel(k.kernelName, backendName);
      tf.registerKernel(k);
    }
  }
  return trace;
}
