// Runs exported ONNX models under ONNX Runtime's WebAssembly build
// (npm onnxruntime-web, installed by tests/onnx/ort_setup.sh) on IDX images
// and writes each one's int8 logit codes ("logits_q") as qat-infer
// --dump-logits does: N x classes int8, row-major. Prints one JSON line a
// model with the timing. Several models in one node process: starting node
// and the WebAssembly runtime costs more than running a small model.
//
// usage: node run_ort.mjs ORT_DIR MODEL.onnx IMAGES.idx[.gz] OUT.bin
//                         [MODEL2.onnx OUT2.bin ...]
//                         [--batch N] [--threads N] [--limit N]
//   ORT_DIR  the folder whose node_modules holds onnxruntime-web
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';

let current = '';
function fail(msg) {
  process.stderr.write(`run_ort: ${current ? current + ': ' : ''}${msg}\n`);
  process.exit(1);
}

const args = process.argv.slice(2);
const usage = 'usage: run_ort.mjs ORT_DIR MODEL.onnx IMAGES OUT.bin [MODEL OUT ...] [--batch N] [--threads N] [--limit N]';
let npos = args.findIndex((a) => a.startsWith('--'));
if (npos < 0) npos = args.length;
if (npos < 4 || npos % 2 !== 0) fail(usage);
const [ortDir, firstModel, imagesPath, firstOut] = args;
const jobs = [[firstModel, firstOut]];
for (let i = 4; i < npos; i += 2) jobs.push([args[i], args[i + 1]]);
const opt = { batch: 100, threads: 1, limit: 0 };
for (let i = npos; i < args.length; i += 2) {
  const key = args[i].replace(/^--/, '');
  if (!(key in opt) || i + 1 >= args.length) fail(`bad option ${args[i]}`);
  opt[key] = Number(args[i + 1]);
}

const require = createRequire(path.join(path.resolve(ortDir), 'package.json'));
const ort = require('onnxruntime-web');
ort.env.wasm.numThreads = opt.threads;
ort.env.logLevel = 'error';

// IDX images: magic 0x00000803, count, rows, cols (big-endian), then bytes.
let idx = readFileSync(imagesPath);
if (idx[0] === 0x1f && idx[1] === 0x8b) idx = gunzipSync(idx);
if (idx.readUInt32BE(0) !== 0x803) fail(`${imagesPath}: not an IDX image file`);
let n = idx.readUInt32BE(4);
const rows = idx.readUInt32BE(8), cols = idx.readUInt32BE(12);
if (opt.limit > 0 && opt.limit < n) n = opt.limit;
const pixels = idx.subarray(16, 16 + n * rows * cols);

process.on('unhandledRejection', (e) => fail(e && e.message ? e.message : e));
const per = rows * cols;
for (const [modelPath, outPath] of jobs) {
  current = modelPath;
  let session;
  try {
    session = await ort.InferenceSession.create(readFileSync(modelPath));
  } catch (e) {
    fail(e && e.message ? e.message : e);
  }
  let classes = 0;
  let out = null;
  const t0 = process.hrtime.bigint();
  for (let s = 0; s < n; s += opt.batch) {
    const m = Math.min(opt.batch, n - s);
    // p / 255 in float32: QuantizeLinear inside the model turns it back into
    // p - 128 exactly (docs/ONNX.md, "Input")
    const x = new Float32Array(m * per);
    for (let i = 0; i < m * per; i++) x[i] = pixels[s * per + i] / 255;
    const r = await session.run({ input: new ort.Tensor('float32', x, [m, 1, rows, cols]) });
    const q = r.logits_q;
    if (!out) {
      classes = q.dims[1];
      out = new Int8Array(n * classes);
    }
    out.set(q.data, s * classes);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  writeFileSync(outPath, Buffer.from(out.buffer));
  process.stdout.write(JSON.stringify({ model: modelPath, images: n, classes, seconds,
    images_per_second: n / seconds, batch: opt.batch, threads: opt.threads }) + '\n');
  await session.release();
}
current = '';
