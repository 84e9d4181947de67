// bench_ingest.mjs: the reference ingest pipeline, for benchmarking ours against it at the same
// thread count. Each worker thread (node worker_threads) owns its own tfjs wasm backend (SIMD,
// single-threaded wasm) and the nets, and processes photos pulled from a shared queue: read the file,
// decode the JPEG with jpeg-js (pure JS; a .ppm file is read as raw pixels instead), then
// detectAllFaces(SSD, minConfidence 0.5) .withFaceLandmarks() .withFaceDescriptors().
// Prints `name value unit` lines, among them:
//   ref_photos_per_s X photos/s
//   ref_faces_per_s X faces/s
// Usage: node bench_ingest.mjs [--threads N] [--reps R] [--backend wasm|cpu] IMAGE...
// What must stay true: model loading and one warm-up photo per worker happen before the clock
// starts (the first inference compiles and allocates), the clock covers read + decode + inference of
// every photo (reps x files), and results are disposed so memory stays flat.
import fs from 'node:fs';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import {
  initTf, loadNets, readPPM, jpegJs, decodeJpegJs, backendInfo,
} from './lib.mjs';

function parseArgs(argv) {
  const a = { threads: 1, reps: 1, backend: 'wasm', files: [] };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--threads') a.threads = Number(argv[++i]);
    else if (k === '--reps') a.reps = Number(argv[++i]);
    else if (k === '--backend') a.backend = argv[++i];
    else if (k.startsWith('--')) throw new Error(`unknown option ${k}`);
    else a.files.push(path.resolve(k));
  }
  if (!a.files.length || !(a.threads >= 1) || !(a.reps >= 1)) {
    throw new Error('usage: node bench_ingest.mjs [--threads N] [--reps R] [--backend wasm|cpu] IMAGE...');
  }
  return a;
}

// ---------------------------------------------------------------- worker
async function workerMain() {
  const { backend } = workerData;
  const { tf, faceapi } = await initTf(backend);
  await loadNets(faceapi, ['ssd', 'lm', 'rec']);
  const jpeg = jpegJs();
  const opts = new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5, maxResults: 100 });
  const decode = (file) => {
    if (file.endsWith('.ppm')) return readPPM(file);
    if (!jpeg) throw new Error(`jpeg-js is not installed: cannot decode ${file} (pass .ppm exports instead)`);
    return decodeJpegJs(jpeg, fs.readFileSync(file));
  };
  const run = async (file) => {
    const img = decode(file);
    const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
    const res = await faceapi.detectAllFaces(t, opts).withFaceLandmarks().withFaceDescriptors();
    t.dispose();
    return res.length;
  };
  parentPort.on('message', async (msg) => {
    if (msg.type === 'warmup') {
      await run(msg.file);
      parentPort.postMessage({ type: 'ready', info: backendInfo(tf), jpeg: !!jpeg });
    } else if (msg.type === 'photo') {
      const faces = await run(msg.file);
      parentPort.postMessage({ type: 'done', faces });
    } else if (msg.type === 'exit') {
      process.exit(0);
    }
  });
  parentPort.postMessage({ type: 'loaded' });
}

// ---------------------------------------------------------------- main
async function main() {
  const args = parseArgs(process.argv);
  const queue = [];
  for (let r = 0; r < args.reps; r++) queue.push(...args.files);
  const total = queue.length;
  const self = fileURLToPath(import.meta.url);
  const workers = Array.from({ length: args.threads }, () => new Worker(self, { workerData: { backend: args.backend } }));
  const once = (w, type) => new Promise((resolve, reject) => {
    const on = (m) => { if (m.type === type) { w.off('message', on); resolve(m); } };
    w.on('message', on);
    w.once('error', reject);
  });
  await Promise.all(workers.map((w) => once(w, 'loaded')));
  const ready = await Promise.all(workers.map((w) => { const p = once(w, 'ready'); w.postMessage({ type: 'warmup', file: args.files[0] }); return p; }));

  let faces = 0;
  let done = 0;
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage(); // all threads of the process
  await new Promise((resolve, reject) => {
    const feed = (w) => {
      const file = queue.shift();
      if (file === undefined) return;
      w.postMessage({ type: 'photo', file });
    };
    for (const w of workers) {
      w.on('message', (m) => {
        if (m.type !== 'done') return;
        faces += m.faces;
        done++;
        if (done === total) resolve();
        else feed(w);
      });
      w.on('error', reject);
      feed(w);
    }
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuSecs = (cpu.user + cpu.system) / 1e6;
  for (const w of workers) w.postMessage({ type: 'exit' });

  const info = ready[0].info;
  const out = [
    ['ref_backend', `${info.backend}${info.wasm_simd ? '+simd' : ''}`, ''],
    ['ref_decoder', ready[0].jpeg ? 'jpeg-js' : 'ppm', ''],
    ['ref_threads', args.threads, 'threads'],
    ['ref_photos', total, 'photos'],
    ['ref_faces', faces, 'faces'],
    ['ref_seconds', secs.toFixed(3), 's'],
    // CPU seconds of all threads: on a shared machine, cpu/wall far below the thread count means
    // the benchmark was starved and its photos/s is pessimistic.
    ['ref_cpu_seconds', cpuSecs.toFixed(3), 's'],
    ['ref_cpu_ms_per_photo', (1000 * cpuSecs / total).toFixed(1), 'ms'],
    ['ref_photos_per_s', (total / secs).toFixed(3), 'photos/s'],
    ['ref_faces_per_s', (faces / secs).toFixed(3), 'faces/s'],
  ];
  for (const [k, v, u] of out) process.stdout.write(`${k} ${v}${u ? ` ${u}` : ''}\n`);
}

if (isMainThread) main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
else workerMain().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
