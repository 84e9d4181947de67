// make_goldens.mjs: runs the reference (face-api.js 1.7.15 on tfjs 4.22.0) on the pixels our loader
// decodes and writes the golden fixtures the C vision tests compare against:
//   <out>/goldens.json   end-to-end results per sample photo (SSD and Tiny pipelines)
//   <out>/raw/index.json + <out>/raw/*.bin   network parity tensors (little-endian float32 / uint8)
//   <out>/raw/traces.json  op-by-op summaries of each network's forward pass on its case 0
// reference/README.md documents every field and how the C tests use them.
// Usage: node make_goldens.mjs --pixels DIR [--out DIR] [--backend wasm|cpu] [--decoder ppm|jpeg-js]
//        [--images sample1.jpg,...] [--no-raw]
//   --pixels DIR: DIR/<name>.ppm holds the RGB pixels of samples/<name>.jpg as decoded by libvips
//   (scripts/make-goldens writes them). --decoder jpeg-js decodes the JPEGs with jpeg-js instead
//   (only to measure the decoder effect; never for the committed fixtures).
// What must stay true: the output depends only on the pixels, the pinned packages and the backend:
// no timestamps, fixed order, numbers rounded to 6 decimals, so regenerating is idempotent.
import fs from 'node:fs';
import path from 'node:path';
import {
  initTf, loadNets, readPPM, jpegJs, decodeJpegJs, sha256, r6, samplesDir, refDir, faceapiVersion, backendInfo, toJson, traceKernels,
} from './lib.mjs';

const SAMPLES = ['sample1.jpg', 'sample2.jpg', 'sample3.jpg', 'sample4.jpg', 'sample5.jpg', 'sample6.jpg'];
// A committed fixture made by scripts/make-goldens: a portrait crop of sample5 (x 330..1029, full
// height, halved), stored rotated with EXIF Orientation 6, so autorotation and right-hand padding are
// covered. Its path is relative to the fixture folder.
const PORTRAIT = 'portrait_exif6.jpg';
const IMAGES = [...SAMPLES, PORTRAIT];
const SSD_OPTS = { minConfidence: 0.5, maxResults: 100 };
const TINY_OPTS = { inputSize: 416, scoreThreshold: 0.5 };
// Raw parity cases: which photos feed the detector cases, and whose first SSD face feeds the
// landmark / recognition cases.
const RAW_SSD_IMAGES = ['sample1.jpg', 'sample2.jpg'];
// Detector-input resize checks (subsampled float tensors): a landscape and the portrait photo.
const PRE_SSD_IMAGES = ['sample1.jpg', PORTRAIT];
const PRE_TINY_IMAGES = ['sample3.jpg', PORTRAIT];
// tiny_0's 416x416 input is this crop of ssd_1_input_u8 (sample2 at 512), so it costs no extra file.
const TINY0_CROP = { x: 40, y: 0, width: 416, height: 416 };
const RAW_FACE_IMAGES = ['sample1.jpg', 'sample2.jpg', 'sample3.jpg'];
const SUBSAMPLE = 8; // stride of the subsampled detector-input resize checks

function parseArgs(argv) {
  const a = { out: null, pixels: null, backend: 'wasm', decoder: 'ppm', images: IMAGES, raw: true };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    if (k === '--out') a.out = v();
    else if (k === '--pixels') a.pixels = v();
    else if (k === '--backend') a.backend = v();
    else if (k === '--decoder') a.decoder = v();
    else if (k === '--images') a.images = v().split(',');
    else if (k === '--no-raw') a.raw = false;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.out) a.out = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../tests/fixtures/vision');
  if (a.decoder === 'ppm' && !a.pixels) throw new Error('--pixels DIR is required with --decoder ppm');
  return a;
}

// Where the JPEG lives, relative to the repository root (recorded in goldens.json).
function sourceOf(file, outDir) {
  const repo = path.resolve(refDir, '..');
  const abs = SAMPLES.includes(file) ? path.join(samplesDir(), file) : path.join(outDir, file);
  return { abs, rel: path.relative(repo, abs) };
}

function loadPixels(args, file) {
  if (args.decoder === 'jpeg-js') {
    const jpeg = jpegJs();
    if (!jpeg) throw new Error('jpeg-js is not installed (see reference/README.md)');
    // jpeg-js ignores EXIF orientation: only the upright samples are comparable.
    if (!SAMPLES.includes(file)) return null;
    return decodeJpegJs(jpeg, fs.readFileSync(sourceOf(file, args.out).abs));
  }
  return readPPM(path.join(args.pixels, file.replace(/\.[^.]+$/, '.ppm')));
}

const rect = (b) => ({ x: r6(b.x), y: r6(b.y), width: r6(b.width), height: r6(b.height) });
const intRect = (b) => ({ x: b.x, y: b.y, width: b.width, height: b.height });
const pts = (positions) => positions.map((p) => [r6(p.x), r6(p.y)]);
const vec = (a) => Array.from(a, r6);

// ---------------------------------------------------------------- end to end
async function endToEnd(faceapi, img, t) {
  const { width: W, height: H } = img;
  const ssd = await faceapi.detectAllFaces(t, new faceapi.SsdMobilenetv1Options(SSD_OPTS))
    .withFaceLandmarks().withFaceDescriptors();
  const facesSsd = ssd.map((r) => faceRecord(r, W, H));

  const tinyOpts = new faceapi.TinyFaceDetectorOptions(TINY_OPTS);
  const tiny = await faceapi.detectAllFaces(t, tinyOpts).withFaceLandmarks().withFaceDescriptors();
  const tinyLm = await faceapi.detectAllFaces(t, tinyOpts).withFaceLandmarks(true);
  if (tinyLm.length !== tiny.length) throw new Error('tiny detector is not deterministic');
  const facesTiny = tiny.map((r, i) => {
    const rec = faceRecord(r, W, H);
    const rt = tinyLm[i];
    if (Math.abs(rt.detection.box.x - r.detection.box.x) > 0 || rt.detection.score !== r.detection.score) {
      throw new Error('tiny detector is not deterministic');
    }
    rec.landmarks_tiny = pts(rt.landmarks.positions);
    return rec;
  });
  // Near misses: what each detector finds with a 0.4 threshold but not with 0.5 (a lower threshold
  // never changes the faces above 0.5: NMS is greedy by score). An implementation within the score
  // tolerance may legitimately report these; a test can use them to tell that apart from a real error.
  const low = (dets) => dets.filter((d) => d.score <= 0.5).map((d) => ({ box: rect(d.box), score: r6(d.score) }));
  const nearSsd = low(await faceapi.detectAllFaces(t, new faceapi.SsdMobilenetv1Options({ ...SSD_OPTS, minConfidence: 0.4 })));
  const nearTiny = low(await faceapi.detectAllFaces(t, new faceapi.TinyFaceDetectorOptions({ ...TINY_OPTS, scoreThreshold: 0.4 })));
  return { facesSsd, facesTiny, nearSsd, nearTiny };
}

function faceRecord(r, W, H) {
  const det = r.detection;
  // The crops exactly as extractFaceTensors computes them (floored, clipped at the borders).
  const lmCrop = det.forSize(W, H).box.clipAtImageBorders(W, H);
  const aligned = r.landmarks.align(null, { useDlibAlignment: true });
  const descCrop = aligned.clipAtImageBorders(W, H);
  return {
    box: rect(det.box),
    score: r6(det.score),
    landmarks: pts(r.landmarks.positions),
    descriptor: vec(r.descriptor),
    landmark_crop: intRect(lmCrop),
    descriptor_rect: rect(aligned),
    descriptor_crop: intRect(descCrop),
  };
}

// ---------------------------------------------------------------- raw fixtures
class RawWriter {
  constructor(dir) {
    this.dir = dir;
    this.tensors = [];
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
  }

  add(name, data, shape, meta) {
    const dtype = data instanceof Uint8Array ? 'uint8' : 'float32';
    const arr = dtype === 'uint8' ? data : Float32Array.from(data);
    const n = shape.reduce((x, y) => x * y, 1);
    if (arr.length !== n) throw new Error(`${name}: ${arr.length} values for shape ${shape}`);
    const bytes = Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength); // x86/ARM: little-endian
    const file = `${name}.bin`;
    fs.writeFileSync(path.join(this.dir, file), bytes);
    this.tensors.push({ name, file, dtype, shape, bytes: bytes.length, sha256: sha256(bytes), ...meta });
  }
}

const toU8 = (f32) => Uint8Array.from(f32, (v) => Math.min(255, Math.max(0, Math.round(v))));
const maxAbsDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

function subsample(data, size, stride) {
  const n = Math.ceil(size / stride);
  const out = new Float32Array(n * n * 3);
  let k = 0;
  for (let y = 0; y < size; y += stride) {
    for (let x = 0; x < size; x += stride) {
      for (let c = 0; c < 3; c++) out[k++] = data[((y * size) + x) * 3 + c];
    }
  }
  return { out, n };
}

// The SSD graph of ssdMobilenetv1/{mobileNetV1,predictionLayer,boxPredictionLayer}.ts, rebuilt
// from the loaded params with the same tf ops, so the raw heads (before outputLayer) can be read.
// Checked below against the net's own forwardInput (decoded boxes and scores).
function ssdHeads(tf, p, x, stats) {
  const note = (name, t) => { if (stats) stats.push(layerStat(name, t)); return t; };
  const pw = (inp, q, s) => tf.clipByValue(tf.add(tf.conv2d(inp, q.filters, s, 'same'), q.batch_norm_offset), 0, 6);
  const dw = (inp, q, s) => tf.clipByValue(tf.batchNorm(tf.depthwiseConv2d(inp, q.filters, s, 'same'),
    q.batch_norm_mean, q.batch_norm_variance, q.batch_norm_offset, q.batch_norm_scale, 0.0010000000474974513), 0, 6);
  const m = p.mobilenetv1;
  let out = note('mobilenet.conv_0', pw(x, m.conv_0, [2, 2]));
  let conv11 = null;
  for (let i = 1; i <= 13; i++) {
    const s = [2, 4, 6, 12].includes(i) ? [2, 2] : [1, 1];
    out = note(`mobilenet.conv_${i}.depthwise`, dw(out, m[`conv_${i}`].depthwise_conv, s));
    out = note(`mobilenet.conv_${i}.pointwise`, pw(out, m[`conv_${i}`].pointwise_conv, [1, 1]));
    if (i === 11) conv11 = out;
  }
  const pl = p.prediction_layer;
  const c = [];
  c[0] = note('prediction.conv_0', pw(out, pl.conv_0, [1, 1]));
  for (let i = 1; i <= 7; i++) c[i] = note(`prediction.conv_${i}`, pw(c[i - 1], pl[`conv_${i}`], i % 2 ? [2, 2] : [1, 1]));
  const feats = [conv11, out, c[1], c[3], c[5], c[7]];
  const box = [];
  const cls = [];
  feats.forEach((f, i) => {
    const bp = pl[`box_predictor_${i}`];
    const conv = (q) => tf.add(tf.conv2d(f, q.filters, [1, 1], 'same'), q.bias);
    box.push(note(`box_predictor_${i}.box_encoding`, tf.reshape(conv(bp.box_encoding_predictor), [1, -1, 4])));
    cls.push(note(`box_predictor_${i}.class`, tf.reshape(conv(bp.class_predictor), [1, -1, 3])));
  });
  return { box: tf.concat(box, 1), cls: tf.concat(cls, 1) };
}

function layerStat(name, t) {
  const d = t.dataSync();
  let sum = 0;
  let sumAbs = 0;
  for (let i = 0; i < d.length; i++) { sum += d[i]; sumAbs += Math.abs(d[i]); }
  return { layer: name, shape: t.shape, sum: r6(sum), mean_abs: r6(sumAbs / d.length), first: Array.from(d.slice(0, 4), r6) };
}

async function rawFixtures(tf, faceapi, nets, images, outDir, report) {
  const w = new RawWriter(path.join(outDir, 'raw'));
  const cases = {};
  // Op-by-op traces of the reference's own forward pass on case 0 of each network (traces.json).
  const traces = {};
  const trace = (name, fn) => { traces[name] = traceKernels(tf, fn); };

  // ---- Detector preprocessing checks: the float input tensor (0..255, before normalisation),
  // subsampled, for a landscape photo (zeros appended at the bottom) and the portrait one (right).
  const pre = async (kind, file, size) => {
    const ni = await faceapi.toNetInput(images[file].t);
    const batch = ni.toBatchTensor(size, false);
    const f = batch.dataSync();
    batch.dispose();
    const sub = subsample(f, size, SUBSAMPLE);
    const name = `pre_${kind}_${file.replace(/\.jpg$/, '')}_sub${SUBSAMPLE}`;
    w.add(name, sub.out, [sub.n, sub.n, 3], {
      stage: `${kind} preprocessing check (float 0..255, before normalisation)`,
      source: `${file} decoded pixels -> NetInput.toBatchTensor(${size}, isCenterInputs=false): padToSquare (zeros appended at the bottom or right) + tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=false); keeps rows and columns 0,${SUBSAMPLE},${2 * SUBSAMPLE},...,${size - SUBSAMPLE}`,
      image: file, input_size: size,
    });
    return f;
  };
  for (const file of PRE_SSD_IMAGES) await pre('ssd', file, 512);
  for (const file of PRE_TINY_IMAGES) await pre('tiny', file, 416);

  // ---- SSD: the 512x512 detector input of two photos, rounded to uint8, and the raw heads.
  for (const [k, file] of RAW_SSD_IMAGES.entries()) {
    const ni = await faceapi.toNetInput(images[file].t);
    const batch = ni.toBatchTensor(512, false); // [1,512,512,3] float 0..255, before normalisation
    const f = batch.dataSync();
    const base = `ssd_${k}`;
    const u8 = toU8(f);
    w.add(`${base}_input_u8`, u8, [512, 512, 3], {
      stage: 'ssd network input (uint8 values; the network computes x/127.5-1 on them)',
      source: `round(toBatchTensor(512) of ${file}), fed back to the network as a 512x512 tensor (no pad, no resize)`,
      max_rounding: r6(maxAbsDiff(u8, f)),
    });
    batch.dispose();
    const t8 = tf.tensor3d(u8, [512, 512, 3], 'int32');
    const stats = k === 0 ? [] : null;
    let box; let cls; let boxes; let scores;
    tf.tidy(() => {
      const x = tf.sub(tf.div(tf.cast(tf.expandDims(t8), 'float32'), 127.5), 1);
      const heads = ssdHeads(tf, nets.ssd.params, x, stats);
      const decoded = nets.ssd.forwardInput(new faceapi.NetInput([t8]));
      box = heads.box.dataSync(); cls = heads.cls.dataSync();
      boxes = decoded.boxes[0].dataSync(); scores = decoded.scores[0].dataSync();
    });
    const nAnch = boxes.length / 4;
    // Our own outputLayer decode of our heads must equal the net's: proves the heads are its heads.
    const anchors = nets.ssd.params.output_layer.extra_dim.dataSync();
    const redecoded = new Float32Array(nAnch * 4);
    for (let i = 0; i < nAnch; i++) {
      const [ay0, ax0, ay1, ax1] = anchors.slice(i * 4, i * 4 + 4);
      const sy = ay1 - ay0; const sx = ax1 - ax0; const cy = ay0 + sy / 2; const cx = ax0 + sx / 2;
      const [ty, tx, th, tw] = box.slice(i * 4, i * 4 + 4);
      const h2 = Math.exp(th / 5) * sy / 2; const w2 = Math.exp(tw / 5) * sx / 2;
      const yc = ty / 10 * sy + cy; const xc = tx / 10 * sx + cx;
      redecoded.set([yc - h2, xc - w2, yc + h2, xc + w2], i * 4);
    }
    report[`${base}_heads_vs_net_max_abs`] = r6(maxAbsDiff(redecoded, boxes));
    if (maxAbsDiff(redecoded, boxes) > 1e-4) throw new Error('SSD head reconstruction does not match the net');
    w.add(`${base}_box_encodings`, box, [nAnch, 4], {
      stage: 'ssd raw box regression (concat of the 6 box_predictor heads, before outputLayer)',
      source: 'predictionLayer().boxPredictions reshaped [anchors,4]; per anchor (ty, tx, th, tw) in the order of output_layer/extra_dim',
    });
    w.add(`${base}_class_logits`, cls, [nAnch, 3], {
      stage: 'ssd raw class predictions (before sigmoid)',
      source: 'predictionLayer().classPredictions reshaped [anchors,3]; column 1 is the face logit, column 0 background, column 2 unused',
    });
    w.add(`${base}_boxes`, boxes, [nAnch, 4], {
      stage: 'ssd decoded boxes before NMS',
      source: 'outputLayer().boxes[0]: (ymin, xmin, ymax, xmax) relative to the 512x512 input, not clipped',
    });
    w.add(`${base}_scores`, scores, [nAnch], {
      stage: 'ssd scores before NMS', source: 'outputLayer().scores[0] = sigmoid(class_logits[:,1])',
    });
    const dets = await nets.ssd.locateFaces(t8, new faceapi.SsdMobilenetv1Options(SSD_OPTS));
    cases[base] = {
      image: file,
      anchors: nAnch,
      detections_on_input: dets.map((d) => ({ score: r6(d.score), box: rect(d.box) })),
    };
    if (stats) cases[base].layer_stats = stats;
    if (k === 0) trace(base, () => { const o = nets.ssd.forwardInput(new faceapi.NetInput([t8])); tf.dispose([...o.boxes, ...o.scores]); });
    t8.dispose();
  }

  // ---- Tiny face detector: inputSize 416 on a 416x416 crop of ssd_1's input (sample2), and
  // inputSize 512 on ssd_0's input (sample1): the network input is then exactly those bytes.
  {
    const readU8 = (file) => { const b = fs.readFileSync(path.join(w.dir, file)); return new Uint8Array(b.buffer, b.byteOffset, b.length); };
    const ssd1 = readU8('ssd_1_input_u8.bin');
    const c = TINY0_CROP;
    const u8 = new Uint8Array(c.width * c.height * 3);
    for (let y = 0; y < c.height; y++) {
      u8.set(ssd1.subarray(((c.y + y) * 512 + c.x) * 3, ((c.y + y) * 512 + c.x + c.width) * 3), y * c.width * 3);
    }
    const tinyCase = async (name, u8in, size, input) => {
      const t8 = tf.tensor3d(u8in, [size, size, 3], 'int32');
      const out = nets.tiny.forwardInput(new faceapi.NetInput([t8]), size);
      w.add(`${name}_output`, out.dataSync(), out.shape.slice(1), {
        stage: 'tiny detector raw output grid (before sigmoid/exp/anchors)',
        source: `TinyYolov2Base.forwardInput(input, ${size}) = runMobilenet(...): [cells, cells, 5 anchors x (tx, ty, tw, th, score_logit)]; input ${JSON.stringify(input)}`,
      });
      out.dispose();
      if (name === 'tiny_0') trace(name, () => nets.tiny.forwardInput(new faceapi.NetInput([t8]), size).dispose());
      const dets = await nets.tiny.locateFaces(t8, new faceapi.TinyFaceDetectorOptions({ inputSize: size, scoreThreshold: 0.5 }));
      cases[name] = {
        input, input_size: size,
        detections_on_input: dets.map((d) => ({ score: r6(d.score), box: rect(d.box) })),
      };
      t8.dispose();
    };
    await tinyCase('tiny_0', u8, 416, { file: 'ssd_1_input_u8.bin', shape: [512, 512, 3], crop: c });
    await tinyCase('tiny_1', readU8('ssd_0_input_u8.bin'), 512, { file: 'ssd_0_input_u8.bin', shape: [512, 512, 3] });
  }

  // ---- Landmark nets (112x112) and recognition net (150x150) on the first SSD face of 3 photos.
  for (const [k, file] of RAW_FACE_IMAGES.entries()) {
    const { t, facesSsd } = images[file];
    if (!facesSsd.length) throw new Error(`${file}: no face for the raw face fixtures`);
    const face = facesSsd[0];
    for (const [net, crop, size] of [['lm', face.landmark_crop, 112], ['rec', face.descriptor_crop, 150]]) {
      const c = tf.slice3d(t, [crop.y, crop.x, 0], [crop.height, crop.width, 3]);
      const ni = await faceapi.toNetInput(c);
      const batch = ni.toBatchTensor(size, true); // centred padding, bilinear, float 0..255
      const f = batch.dataSync();
      batch.dispose();
      c.dispose();
      const base = `${net}_${k}`;
      if (k === 0) {
        w.add(`${base}_preprocessed`, f, [size, size, 3], {
          stage: `${net === 'lm' ? 'landmark' : 'recognition'} preprocessing check (float 0..255, before mean/scale)`,
          source: `${file} pixels cropped at ${JSON.stringify(crop)} (goldens.json faces_ssd[0].${net === 'lm' ? 'landmark_crop' : 'descriptor_crop'}) -> toBatchTensor(${size}, isCenterInputs=true)`,
        });
      }
      const u8 = toU8(f);
      w.add(`${base}_input_u8`, u8, [size, size, 3], {
        stage: `${net === 'lm' ? 'landmark' : 'recognition'} network input (uint8 values; the network computes (x - mean_rgb)/255)`,
        source: `round(toBatchTensor(${size}, true) of ${file} crop ${JSON.stringify(crop)})`,
        max_rounding: r6(maxAbsDiff(u8, f)),
      });
      const t8 = tf.tensor3d(u8, [size, size, 3], 'int32');
      if (net === 'lm') {
        const o = nets.lm.runNet(new faceapi.NetInput([t8]));
        w.add(`${base}_output`, o.dataSync(), [136], {
          stage: 'FaceLandmark68Net raw output (fc layer, before postProcess)',
          source: 'FaceProcessor.runNet(input): (x0, y0, x1, y1, ...) relative to the 112x112 input; for a square input postProcess is the identity',
        });
        o.dispose();
        const ot = nets.lmTiny.runNet(new faceapi.NetInput([t8]));
        w.add(`lmtiny_${k}_output`, ot.dataSync(), [136], {
          stage: 'FaceLandmark68TinyNet raw output (fc layer, before postProcess)',
          source: `FaceProcessor.runNet on ${base}_input_u8.bin`,
        });
        ot.dispose();
        if (k === 0) {
          trace(base, () => nets.lm.runNet(new faceapi.NetInput([t8])).dispose());
          trace(`lmtiny_${k}`, () => nets.lmTiny.runNet(new faceapi.NetInput([t8])).dispose());
        }
      } else {
        const o = nets.rec.forwardInput(new faceapi.NetInput([t8]));
        w.add(`${base}_output`, o.dataSync(), [128], {
          stage: 'FaceRecognitionNet output (the 128-d descriptor, not normalised)',
          source: 'FaceRecognitionNet.forwardInput(input)',
        });
        o.dispose();
        if (k === 0) trace(base, () => nets.rec.forwardInput(new faceapi.NetInput([t8])).dispose());
      }
      t8.dispose();
    }
  }
  return { tensors: w.tensors, cases, traces };
}

// ---------------------------------------------------------------- main
async function main() {
  const args = parseArgs(process.argv);
  const t0 = Date.now();
  const { tf, faceapi } = await initTf(args.backend);
  const nets = await loadNets(faceapi);
  const generator = {
    script: 'reference/make_goldens.mjs',
    face_api: faceapiVersion(),
    ...backendInfo(tf),
    pixels: args.decoder === 'ppm' ? 'libvips 8.14 (vips autorot, 8-bit sRGB RGB), see scripts/make-goldens' : 'jpeg-js',
  };
  const images = {};
  const out = [];
  for (const file of args.images) {
    const img = loadPixels(args, file);
    if (!img) continue;
    const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
    const { facesSsd, facesTiny, nearSsd, nearTiny } = await endToEnd(faceapi, img, t);
    images[file] = { img, t, facesSsd };
    out.push({
      file,
      path: sourceOf(file, args.out).rel,
      exif_orientation: file === PORTRAIT ? 6 : null,
      width: img.width,
      height: img.height,
      rgb_sha256: sha256(img.data),
      faces_ssd: facesSsd,
      faces_tiny: facesTiny,
      near_threshold_ssd: nearSsd,
      near_threshold_tiny: nearTiny,
    });
    process.stderr.write(`${file}: ${img.width}x${img.height} ssd ${facesSsd.length} faces, tiny ${facesTiny.length} faces\n`);
  }
  fs.mkdirSync(args.out, { recursive: true });
  const goldens = {
    generator,
    options: { ssd: SSD_OPTS, tiny: TINY_OPTS, landmarks: 'FaceLandmark68Net (landmarks_tiny: FaceLandmark68TinyNet)', descriptor: 'FaceRecognitionNet on the dlib-aligned crop' },
    images: out,
  };
  fs.writeFileSync(path.join(args.out, 'goldens.json'), `${toJson(goldens)}\n`);
  if (args.raw && args.decoder === 'ppm') {
    const report = {};
    const { tensors, cases, traces } = await rawFixtures(tf, faceapi, nets, images, args.out, report);
    fs.writeFileSync(path.join(args.out, 'raw', 'traces.json'), `${toJson({
      about: 'every float32 kernel the reference runs, in order, for case 0 of each network (ssd_0, tiny_0, lm_0, lmtiny_0, rec_0 in index.json), on the stored uint8 input: op, output shape, strides/pad for convolutions and pools, and sum / mean |x| / first 4 values of the output (NHWC). Reshape, Cast, Fill, Slice, Pack, Unpack, Transpose and Identity are left out.',
      backend: generator.backend,
      traces,
    })}\n`);
    const index = { generator, byte_order: 'little-endian', layout: 'row-major, NHWC without the batch dimension', checks: report, cases, tensors };
    fs.writeFileSync(path.join(args.out, 'raw', 'index.json'), `${toJson(index)}\n`);
  }
  for (const v of Object.values(images)) v.t.dispose();
  process.stderr.write(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s (backend ${tf.getBackend()})\n`);
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
