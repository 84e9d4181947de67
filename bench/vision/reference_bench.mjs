// reference_bench.mjs: the reference (face-api.js on TensorFlow.js, wasm backend with SIMD, one
// thread) timed stage by stage on the same photos as bench_vision, printing `ref_<name> value unit`
// lines. Usage: node bench/vision/reference_bench.mjs [--reps N] PHOTO...
// Stages: JPEG decode (jpeg-js, the pure-JS decoder a Node app without tfjs-node uses), SSD and
// tiny detection (locateFaces: resize, network, NMS), landmarks and descriptor per face (the
// nets on face tensors cut as the reference cuts them), and the whole pipeline per photo
// (decode + detectAllFaces().withFaceLandmarks().withFaceDescriptors()).
// What must stay true: every stage is warmed up once before timing (the first call compiles and
// allocates), each item's best of `reps` runs counts (wall time unless BENCH_CLOCK=cpu), and
// the backend actually used is printed.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const refDir = path.resolve(here, '../../reference');
const lib = await import(path.join(refDir, 'lib.mjs'));

function findJpegJs() {
  const j = lib.jpegJs();
  if (j) return j;
  for (const dir of [process.env.JPEGJS_DIR, process.env.NODE_PATH].filter(Boolean)) {
    try { return createRequire(path.join(dir, 'x.js'))('jpeg-js'); } catch { /* next */ }
  }
  return null;
}

const args = process.argv.slice(2);
let reps = 3;
const photos = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--reps') reps = Number(args[++i]);
  else photos.push(args[i]);
}
if (!photos.length) throw new Error('usage: reference_bench.mjs [--reps N] PHOTO...');

const { tf, faceapi } = await lib.initTf(process.env.REF_BACKEND || 'wasm');
const nets = await lib.loadNets(faceapi, ['ssd', 'tiny', 'lm', 'rec']);
const jpeg = findJpegJs();
const info = lib.backendInfo(tf);
console.log(`ref_backend_${info.backend}_simd ${info.wasm_simd ? 1 : 0} flag`);
console.log(`ref_backend_threads ${info.wasm_threads ? 'multi' : 1} threads`);

// Wall time by default, like bench_vision (each item's best run counts); BENCH_CLOCK=cpu for
// process CPU time (user + system, which includes node's GC and compiler threads).
const wall = process.env.BENCH_CLOCK !== 'cpu';
const now = wall ? () => performance.now() : () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
console.log(`ref_clock_is_process_cpu ${wall ? 0 : 1} flag`);
const ssdOpts = new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5, maxResults: 100 });
const tinyOpts = new faceapi.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: 0.5 });

function decode(file) {
  const bytes = fs.readFileSync(file);
  if (jpeg) return lib.decodeJpegJs(jpeg, bytes);
  throw new Error('jpeg-js not found (install it in reference/ or set JPEGJS_DIR)');
}

// Decoded pixels and tensors, kept for the per-stage timings.
const imgs = photos.map((f) => {
  const img = decode(f);
  return { f, img, t: tf.tensor3d(img.data, [img.height, img.width, 3], 'int32') };
});

// Each item (photo or face) is timed `reps` times after a warm-up; its best time counts (on a
// shared machine the best is the run nobody interrupted); the mean over items is printed.
async function bestMean(items, fn) {
  await fn(items[0]); // warm-up
  const best = items.map(() => Infinity);
  for (let r = 0; r < reps; r++) {
    for (const [i, it] of items.entries()) {
      const t0 = now();
      await fn(it);
      best[i] = Math.min(best[i], now() - t0);
    }
  }
  return best.reduce((a, b) => a + b, 0) / items.length;
}

console.log(`ref_decode ${(await bestMean(photos, async (f) => { decode(f); })).toFixed(2)} ms/photo`);
console.log(`ref_ssd ${(await bestMean(imgs, async (im) => { await nets.ssd.locateFaces(im.t, ssdOpts); })).toFixed(2)} ms/photo`);
console.log(`ref_tiny ${(await bestMean(imgs, async (im) => { await nets.tiny.locateFaces(im.t, tinyOpts); })).toFixed(2)} ms/photo`);
// landmarks and descriptors per face, on the reference's own face crops
{
  const faces = [];
  for (const im of imgs) {
    const res = await faceapi.detectAllFaces(im.t, ssdOpts).withFaceLandmarks();
    const lmCrops = await faceapi.extractFaceTensors(im.t, res.map((r) => r.detection));
    const alCrops = await faceapi.extractFaceTensors(im.t, res.map((r) => r.alignedRect));
    lmCrops.forEach((c, i) => faces.push({ lm: c, al: alCrops[i] }));
  }
  const lmMs = await bestMean(faces, (fc) => nets.lm.detectLandmarks(fc.lm));
  const descMs = await bestMean(faces, (fc) => nets.rec.computeFaceDescriptor(fc.al));
  console.log(`ref_faces ${faces.length} faces`);
  console.log(`ref_landmarks ${lmMs.toFixed(2)} ms/face`);
  console.log(`ref_descriptor ${descMs.toFixed(2)} ms/face`);
  for (const fc of faces) { fc.lm.dispose(); fc.al.dispose(); }
}
// whole pipeline per photo, decode included: photos/s from each photo's best time
{
  const one = async (f) => {
    const img = decode(f);
    const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
    await faceapi.detectAllFaces(t, ssdOpts).withFaceLandmarks().withFaceDescriptors();
    t.dispose();
  };
  const ms = await bestMean(photos, one);
  console.log(`ref_pipeline ${(1000 / ms).toFixed(3)} photos/s`);
}
for (const im of imgs) im.t.dispose();
