// reference_recall.mjs: the reference (face-api.js on TensorFlow.js, wasm backend) detecting faces
// with SsdMobilenetv1 (minConfidence 0.5, maxResults 100, its defaults as in the goldens) on the
// crops bench_recall made, so both are scored the same way by `bench_recall run DIR REF.json`.
// Usage: node bench/recall/reference_recall.mjs DIR OUT.json
// Writes { "<crop file>": [[x, y, width, height, score], ...], ... } (boxes in crop pixels, as
// face-api returns them: not clipped). Pixels come from the PPMs, so both see the same bytes.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const lib = await import(path.join(here, '../../reference/lib.mjs'));

const [dir, outFile] = process.argv.slice(2);
if (!dir || !outFile) throw new Error('usage: reference_recall.mjs DIR OUT.json');
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const { tf, faceapi } = await lib.initTf(process.env.REF_BACKEND || 'wasm');
await lib.loadNets(faceapi, ['ssd']);
const opts = new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5, maxResults: 100 });
const out = {};
for (const e of manifest) {
  const img = lib.readPPM(path.join(dir, e.file));
  const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
  const dets = await faceapi.detectAllFaces(t, opts);
  t.dispose();
  out[e.file] = dets.map((d) => [d.box.x, d.box.y, d.box.width, d.box.height, d.score]);
}
fs.writeFileSync(outFile, JSON.stringify(out));
console.log(`ref_backend ${lib.backendInfo(tf).backend} name`);
