// One-pass x4 super-resolution yardstick: node upscale.mjs IN.png OUT.png [THREADS]
// ESRGAN medium (@upscalerjs/esrgan-medium, weights in the npm package) on
// TensorFlow.js' WASM backend (the .wasm files ship in the npm package).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { PNG } from 'pngjs';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths, setThreadsCount, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';

const [inPath, outPath, threadsArg] = process.argv.slice(2);
if (!inPath || !outPath) { console.error('usage: node upscale.mjs IN.png OUT.png [THREADS]'); process.exit(2); }
const require = createRequire(import.meta.url);
// upscaler's Node build requires @tensorflow/tfjs-node (a native download that is
// not reachable here): point that one name at the pure-JS @tensorflow/tfjs.
const Module = require('node:module');
const resolve0 = Module._resolveFilename;
Module._resolveFilename = function (req, ...rest) {
  return resolve0.call(this, req === '@tensorflow/tfjs-node' ? '@tensorflow/tfjs' : req, ...rest);
};
// tfjs-node's file:// model loader, for plain tfjs: read model.json and its
// weight shards from disk.
tf.io.registerLoadRouter((url) => {
  const u = Array.isArray(url) ? url[0] : url;
  if (typeof u !== 'string' || !u.startsWith('file://')) return null;
  const file = u.slice('file://'.length);
  return {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      const specs = [], bufs = [];
      for (const g of json.weightsManifest) {
        specs.push(...g.weights);
        for (const p of g.paths) bufs.push(fs.readFileSync(path.join(path.dirname(file), p)));
      }
      const all = Buffer.concat(bufs);
      return {
        modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy,
        convertedBy: json.convertedBy, weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
});
const Upscaler = require('upscaler/node');
const x4 = require('@upscalerjs/esrgan-medium/4x');
setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
setThreadsCount(Number(threadsArg || 2));
// Node's fetch cannot read file paths: hide it while Emscripten loads the
// .wasm so that it reads the file from disk instead.
const fetch0 = globalThis.fetch;
delete globalThis.fetch;
await tf.setBackend('wasm');
await tf.ready();
globalThis.fetch = fetch0;
const png = PNG.sync.read(fs.readFileSync(inPath));
const rgb = new Int32Array(png.width * png.height * 3);
for (let i = 0; i < png.width * png.height; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = png.data[i * 4 + c];
const input = tf.tensor3d(rgb, [png.height, png.width, 3], 'int32');
const upscaler = new Upscaler({ model: x4 });
const out = await upscaler.execute(input, { output: 'tensor' });
const [h, w] = out.shape;
const px = await out.data();
const o = new PNG({ width: w, height: h });
for (let i = 0; i < w * h; i++) {
  for (let c = 0; c < 3; c++) o.data[i * 4 + c] = Math.max(0, Math.min(255, Math.round(px[i * 3 + c])));
  o.data[i * 4 + 3] = 255;
}
fs.writeFileSync(outPath, PNG.sync.write(o));
console.error(`yardstick: ${png.width}x${png.height} -> ${w}x${h}, backend ${tf.getBackend()}, threads ${getThreadsCount()}`);
