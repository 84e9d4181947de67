// check_spec.mjs: re-derives the golden numbers from the written description in reference/README.md
// ("What the reference does"), in plain JS without face-api's helpers, and reports how far each
// re-derivation is from the reference. It proves the description the C code follows is complete:
// resize (1), box mapping (4), tiny decode + NMS (5), landmark crop (6), landmark mapping (7),
// descriptor crop (8). Exits 1 if any check is outside its bound.
// Usage: node check_spec.mjs --pixels DIR [--fixtures DIR]   (DIR: the PPMs of scripts/make-goldens --keep-pixels)
import fs from 'node:fs';
import path from 'node:path';
import { initTf, loadNets, readPPM, refDir } from './lib.mjs';

const args = { pixels: null, fixtures: path.resolve(refDir, '../tests/fixtures/vision') };
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--pixels') args.pixels = process.argv[++i];
  else if (process.argv[i] === '--fixtures') args.fixtures = process.argv[++i];
}
if (!args.pixels) throw new Error('usage: node check_spec.mjs --pixels DIR [--fixtures DIR]');

const golden = JSON.parse(fs.readFileSync(path.join(args.fixtures, 'goldens.json'), 'utf8'));
const index = JSON.parse(fs.readFileSync(path.join(args.fixtures, 'raw', 'index.json'), 'utf8'));
const readRaw = (name) => {
  const t = index.tensors.find((x) => x.name === name);
  const b = fs.readFileSync(path.join(args.fixtures, 'raw', t.file));
  return t.dtype === 'uint8' ? new Uint8Array(b) : new Float32Array(b.buffer, b.byteOffset, b.length / 4);
};
let failed = 0;
const report = (what, value, bound) => {
  const ok = value <= bound;
  if (!ok) failed++;
  process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${value.toPrecision(3)} (bound ${bound})\n`);
};

// (1) pad (zeros at the end, or centred with round(d/2) at the end) + bilinear, float32 arithmetic.
function padResize(src, w, h, size, centred) {
  const S = Math.max(w, h);
  const d = S - Math.min(w, h);
  const before = centred ? d - Math.round(d / 2) : 0;
  const offX = w < h ? before : 0;
  const offY = h < w ? before : 0;
  const px = (x, y, c) => {
    const sx = x - offX; const sy = y - offY;
    return (sx < 0 || sy < 0 || sx >= w || sy >= h) ? 0 : src[(sy * w + sx) * 3 + c];
  };
  const out = new Float32Array(size * size * 3);
  const f = Math.fround;
  const scale = f(S / size);
  for (let r = 0; r < size; r++) {
    const sy = f(r * scale); const y0 = Math.floor(sy); const y1 = Math.min(y0 + 1, S - 1); const fy = f(sy - y0);
    for (let q = 0; q < size; q++) {
      const sx = f(q * scale); const x0 = Math.floor(sx); const x1 = Math.min(x0 + 1, S - 1); const fx = f(sx - x0);
      for (let c = 0; c < 3; c++) {
        const top = f(px(x0, y0, c) + f(f(px(x1, y0, c) - px(x0, y0, c)) * fx));
        const bot = f(px(x0, y1, c) + f(f(px(x1, y1, c) - px(x0, y1, c)) * fx));
        out[(r * size + q) * 3 + c] = f(top + f(f(bot - top) * fy));
      }
    }
  }
  return out;
}

function crop(img, b) {
  const out = new Uint8Array(b.width * b.height * 3);
  for (let y = 0; y < b.height; y++) {
    out.set(img.data.subarray(((b.y + y) * img.width + b.x) * 3, ((b.y + y) * img.width + b.x + b.width) * 3), y * b.width * 3);
  }
  return out;
}

const maxDiff = (a, b) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };

// (6)/(8) clipAtImageBorders: clip then floor each field separately.
function clip(b, W, H) {
  const x = Math.max(b.x, 0); const y = Math.max(b.y, 0);
  const w = Math.min(b.x + b.width - x, W - x); const h = Math.min(b.y + b.height - y, H - y);
  return { x: Math.floor(x), y: Math.floor(y), width: Math.floor(w), height: Math.floor(h) };
}

function dlibRect(lm, lmCrop) {
  const mean = (pts) => pts.reduce((s, p) => [s[0] + p[0] / pts.length, s[1] + p[1] / pts.length], [0, 0]);
  const le = mean(lm.slice(36, 42)); const re = mean(lm.slice(42, 48)); const mo = mean(lm.slice(48, 68));
  const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]);
  const size = Math.floor((dist(mo, le) + dist(mo, re)) / 2 / 0.45);
  const ref = mean([le, re, mo]);
  const x = Math.floor(Math.max(0, ref[0] - 0.5 * size));
  const y = Math.floor(Math.max(0, ref[1] - 0.43 * size));
  // The reference bounds the size by the landmark crop's dims plus x / y (not by the photo).
  return { x, y, width: Math.min(size, lmCrop.width + x), height: Math.min(size, lmCrop.height + y) };
}

async function main() {
  const { tf, faceapi } = await initTf('wasm');
  const nets = await loadNets(faceapi, ['ssd', 'tiny', 'lm']);
  let cropErr = 0; let rectErr = 0; let lmErr = 0; let boxErr = 0; let tinyErr = 0; let tinyCount = 0;
  for (const im of golden.images) {
    const img = readPPM(path.join(args.pixels, im.file.replace(/\.jpg$/, '.ppm')));
    const W = img.width; const H = img.height;
    // (1) detector resize vs the subsampled fixtures.
    for (const [kind, size] of [['ssd', 512], ['tiny', 416]]) {
      const name = `pre_${kind}_${im.file.replace(/\.jpg$/, '')}_sub8`;
      if (!index.tensors.find((t) => t.name === name)) continue;
      const full = padResize(img.data, W, H, size, false);
      const sub = readRaw(name);
      const n = size / 8;
      let m = 0;
      for (let r = 0; r < n; r++) for (let q = 0; q < n; q++) for (let c = 0; c < 3; c++) {
        m = Math.max(m, Math.abs(full[((r * 8) * size + q * 8) * 3 + c] - sub[(r * n + q) * 3 + c]));
      }
      report(`(1) ${name} resize`, m, 0);
    }
    // (4) SSD box mapping, from the net's decoded boxes on this photo.
    const t = tf.tensor3d(img.data, [H, W, 3], 'int32');
    const ni = await faceapi.toNetInput(t);
    const out = nets.ssd.forwardInput(ni);
    const boxes = out.boxes[0].dataSync(); const scores = out.scores[0].dataSync();
    tf.dispose([...out.boxes, ...out.scores]);
    const rw = Math.round(W * 512 / Math.max(W, H)); const rh = Math.round(H * 512 / Math.max(W, H));
    for (const f of im.faces_ssd) {
      // find the anchor whose score is this face's
      let best = -1;
      for (let i = 0; i < scores.length; i++) if (Math.abs(scores[i] - f.score) < 1e-6 && (best < 0 || Math.abs(scores[i] - f.score) < Math.abs(scores[best] - f.score))) best = i;
      const [y0, x0, y1, x1] = boxes.slice(best * 4, best * 4 + 4);
      const top = Math.max(0, y0) * (512 / rh) * H; const bottom = Math.min(1, y1) * (512 / rh) * H;
      const left = Math.max(0, x0) * (512 / rw) * W; const right = Math.min(1, x1) * (512 / rw) * W;
      boxErr = Math.max(boxErr, Math.abs(left - f.box.x), Math.abs(top - f.box.y), Math.abs(right - left - f.box.width), Math.abs(bottom - top - f.box.height));
    }
    // (5) tiny decode + NMS from the raw grid of this photo.
    {
      const g = nets.tiny.forwardInput(ni, 416);
      const grid = g.dataSync(); g.dispose();
      const cells = 13; const anchors = [[1.603231, 2.094468], [6.041143, 7.080126], [2.882459, 3.518061], [4.266906, 5.178857], [9.041765, 10.66308]];
      const rw4 = Math.round(W * 416 / Math.max(W, H)); const rh4 = Math.round(H * 416 / Math.max(W, H));
      const cx = 416 / rw4; const cy = 416 / rh4;
      const sig = (v) => 1 / (1 + Math.exp(-v));
      const cand = [];
      for (let r = 0; r < cells; r++) for (let q = 0; q < cells; q++) for (let a = 0; a < 5; a++) {
        const o = ((r * cells + q) * 5 + a) * 5;
        const s = sig(grid[o + 4]);
        if (s > 0.5) {
          const w = Math.exp(grid[o + 2]) * anchors[a][0] / cells * cx; const h = Math.exp(grid[o + 3]) * anchors[a][1] / cells * cy;
          const x = (q + sig(grid[o])) / cells * cx - w / 2; const y = (r + sig(grid[o + 1])) / cells * cy - h / 2;
          cand.push({ s, x, y, w, h });
        }
      }
      cand.sort((p, q) => q.s - p.s);
      const keep = [];
      const iou = (p, q) => {
        const iw = Math.max(0, Math.min(p.x + p.w, q.x + q.w) - Math.max(p.x, q.x));
        const ih = Math.max(0, Math.min(p.y + p.h, q.y + q.h) - Math.max(p.y, q.y));
        return iw * ih / (p.w * p.h + q.w * q.h - iw * ih);
      };
      for (const c of cand) if (keep.every((k) => iou(k, c) <= 0.4)) keep.push(c);
      if (keep.length !== im.faces_tiny.length) { report(`(5) ${im.file} tiny face count ${keep.length} vs ${im.faces_tiny.length}`, 1, 0); }
      keep.forEach((k, i) => {
        const f = im.faces_tiny[i];
        if (!f) return;
        tinyCount++;
        tinyErr = Math.max(tinyErr, Math.abs(k.x * W - f.box.x), Math.abs(k.y * H - f.box.y), Math.abs(k.w * W - f.box.width), Math.abs(k.h * H - f.box.height), Math.abs(k.s - f.score));
      });
    }
    // (6), (7), (8) per face, both detectors.
    for (const f of [...im.faces_ssd, ...im.faces_tiny]) {
      const c = clip(f.box, W, H);
      cropErr = Math.max(cropErr, ...['x', 'y', 'width', 'height'].map((k) => Math.abs(c[k] - f.landmark_crop[k])));
      const r = dlibRect(f.landmarks, c);
      rectErr = Math.max(rectErr, ...['x', 'y', 'width', 'height'].map((k) => Math.abs(r[k] - f.descriptor_rect[k])));
      const dc = clip(r, W, H);
      rectErr = Math.max(rectErr, ...['x', 'y', 'width', 'height'].map((k) => Math.abs(dc[k] - f.descriptor_crop[k])));
      // (7): run the landmark net on the reference's own 112 input of this crop, map by hand.
      const ct = tf.tensor3d(crop(img, c), [c.height, c.width, 3], 'int32');
      const o = nets.lm.runNet(await faceapi.toNetInput(ct));
      const raw = o.dataSync(); o.dispose(); ct.dispose();
      const s = 112 / Math.max(c.width, c.height); const iw = c.width * s; const ih = c.height * s;
      const padX = iw < ih ? (ih - iw) / 2 : 0; const padY = ih < iw ? (iw - ih) / 2 : 0;
      for (let i = 0; i < 68; i++) {
        const x = (raw[2 * i] * 112 - padX) / iw * c.width + f.box.x;
        const y = (raw[2 * i + 1] * 112 - padY) / ih * c.height + f.box.y;
        lmErr = Math.max(lmErr, Math.hypot(x - f.landmarks[i][0], y - f.landmarks[i][1]));
      }
    }
    t.dispose();
  }
  report('(4) SSD box mapping, max |px|', boxErr, 1e-3);
  report(`(5) tiny decode + NMS (${tinyCount} faces), max |px| or |score|`, tinyErr, 1e-3);
  report('(6) landmark_crop from box', cropErr, 0);
  report('(7) landmark mapping, max px', lmErr, 1e-3);
  report('(8) descriptor_rect / descriptor_crop from landmarks', rectErr, 0);
  // Resize of the landmark / recognition crops (centred padding) vs the preprocessed fixtures.
  {
    const im = golden.images[0];
    const img = readPPM(path.join(args.pixels, im.file.replace(/\.jpg$/, '.ppm')));
    for (const [name, key, size] of [['lm_0_preprocessed', 'landmark_crop', 112], ['rec_0_preprocessed', 'descriptor_crop', 150]]) {
      const b = im.faces_ssd[0][key];
      report(`(6)/(8) ${name} crop + centred pad + resize`, maxDiff(padResize(crop(img, b), b.width, b.height, size, true), readRaw(name)), 0);
    }
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
