// compare_goldens.mjs: compares two golden sets made by make_goldens.mjs (e.g. wasm vs cpu backend,
// or libvips pixels vs jpeg-js pixels) the way the C tests compare ours with the reference: faces
// matched by IoU, then score, landmark and descriptor differences. Also compares the raw tensors
// when both folders have raw/index.json. Prints a summary; exit code 0 (it measures, it does not judge).
// Usage: node compare_goldens.mjs DIR_A DIR_B
import fs from 'node:fs';
import path from 'node:path';

function iou(a, b) {
  const x0 = Math.max(a.x, b.x); const y0 = Math.max(a.y, b.y);
  const x1 = Math.min(a.x + a.width, b.x + b.width); const y1 = Math.min(a.y + a.height, b.y + b.height);
  const inter = Math.max(0, x1 - x0) * Math.max(0, y1 - y0);
  return inter / (a.width * a.height + b.width * b.height - inter);
}
const dist = (u, v) => Math.sqrt(u.reduce((s, x, i) => s + (x - v[i]) ** 2, 0));
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN; };
const fmt = (x) => (Number.isFinite(x) ? x.toPrecision(3) : String(x));

function compareFaces(fa, fb, key) {
  const stats = { matched: 0, unmatched_a: 0, unmatched_b: 0, min_iou: 1, max_score: 0, max_lm_px: 0, desc: [], max_lm_tiny_px: 0 };
  const used = new Set();
  for (const a of fa) {
    let best = -1; let bestIou = 0;
    fb.forEach((b, j) => { const v = iou(a.box, b.box); if (!used.has(j) && v > bestIou) { bestIou = v; best = j; } });
    if (best < 0 || bestIou < 0.5) { stats.unmatched_a++; continue; }
    used.add(best);
    const b = fb[best];
    stats.matched++;
    stats.min_iou = Math.min(stats.min_iou, bestIou);
    stats.max_score = Math.max(stats.max_score, Math.abs(a.score - b.score));
    a.landmarks.forEach((p, i) => { stats.max_lm_px = Math.max(stats.max_lm_px, dist(p, b.landmarks[i])); });
    if (a.landmarks_tiny) a.landmarks_tiny.forEach((p, i) => { stats.max_lm_tiny_px = Math.max(stats.max_lm_tiny_px, dist(p, b.landmarks_tiny[i])); });
    if (a.descriptor && b.descriptor) stats.desc.push(dist(a.descriptor, b.descriptor));
  }
  stats.unmatched_b = fb.length - used.size;
  void key;
  return stats;
}

function main() {
  const [da, db] = process.argv.slice(2);
  if (!da || !db) { process.stderr.write('usage: node compare_goldens.mjs DIR_A DIR_B\n'); process.exit(2); }
  const ga = JSON.parse(fs.readFileSync(path.join(da, 'goldens.json'), 'utf8'));
  const gb = JSON.parse(fs.readFileSync(path.join(db, 'goldens.json'), 'utf8'));
  const all = {};
  for (const ia of ga.images) {
    const ib = gb.images.find((x) => x.file === ia.file);
    if (!ib) continue;
    const same = ia.rgb_sha256 === ib.rgb_sha256 ? 'same pixels' : 'different pixels';
    for (const key of ['faces_ssd', 'faces_tiny']) {
      const s = compareFaces(ia[key], ib[key], key);
      (all[key] ||= []).push(s);
      process.stdout.write(`${ia.file} ${key} (${same}): faces ${ia[key].length}/${ib[key].length} matched ${s.matched} `
        + `min_iou ${fmt(s.min_iou)} max_score_diff ${fmt(s.max_score)} max_landmark_px ${fmt(s.max_lm_px)} `
        + `${key === 'faces_tiny' ? `max_tiny_landmark_px ${fmt(s.max_lm_tiny_px)} ` : ''}`
        + `descriptor_dist max ${fmt(Math.max(...s.desc))} median ${fmt(median(s.desc))}\n`);
    }
  }
  for (const [key, list] of Object.entries(all)) {
    const desc = list.flatMap((s) => s.desc);
    process.stdout.write(`ALL ${key}: unmatched ${list.reduce((n, s) => n + s.unmatched_a + s.unmatched_b, 0)} `
      + `min_iou ${fmt(Math.min(...list.map((s) => s.min_iou)))} max_score_diff ${fmt(Math.max(...list.map((s) => s.max_score)))} `
      + `max_landmark_px ${fmt(Math.max(...list.map((s) => s.max_lm_px)))} `
      + `descriptor_dist max ${fmt(Math.max(...desc))} median ${fmt(median(desc))} (n=${desc.length})\n`);
  }
  const ra = path.join(da, 'raw', 'index.json');
  const rb = path.join(db, 'raw', 'index.json');
  if (fs.existsSync(ra) && fs.existsSync(rb)) {
    const xa = JSON.parse(fs.readFileSync(ra, 'utf8'));
    const xb = JSON.parse(fs.readFileSync(rb, 'utf8'));
    for (const t of xa.tensors) {
      const u = xb.tensors.find((x) => x.name === t.name);
      if (!u) continue;
      const read = (dir, x) => {
        const b = fs.readFileSync(path.join(dir, 'raw', x.file));
        return x.dtype === 'uint8' ? new Uint8Array(b) : new Float32Array(b.buffer, b.byteOffset, b.length / 4);
      };
      const va = read(da, t); const vb = read(db, u);
      let m = 0; let n = 0;
      for (let i = 0; i < va.length; i++) { const d = Math.abs(va[i] - vb[i]); if (d > m) m = d; if (d > 0) n++; }
      process.stdout.write(`raw ${t.name}: max_abs_diff ${fmt(m)} (${n} of ${va.length} differ)\n`);
    }
  }
}

main();
