// Classify PNG images with an edgeinfer image model on onnxruntime-node: decode, run, read the outputs.
//
//   npm install --ignore-scripts     # the CPU binaries ship inside onnxruntime-node
//   node predict.mjs [--model path/to/model.image.onnx] image.png [...]
//
// The image model takes the decoded image as uint8 [H, W, C] (C = 1, 3 or 4) and holds the model's whole
// preprocessing, bit-exact with torchvision's PIL path, so nothing is re-implemented here: pngjs gives
// RGBA pixels, the graph converts them to the model's image mode as Pillow does. Prints one JSON line per
// image: {"image", "label", "index", "top": [{"label", "score"}, ...]} with the top 5 probabilities.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ort from "onnxruntime-node";
import { PNG } from "pngjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const DEFAULT_MODEL = path.join(here, "..", "..", "edgeinfer", "models", "default.image.onnx");

// The labels are in the model's edgeinfer metadata (ModelProto.metadata_props, field 14: key 1, value 2).
function metadataProps(bytes) {
  const props = {};
  for (const [field, value] of protobufFields(bytes)) {
    if (field !== 14) continue;
    const entry = Object.fromEntries(protobufFields(value));
    props[new TextDecoder().decode(entry[1])] = new TextDecoder().decode(entry[2]);
  }
  return props;
}

function* protobufFields(bytes) {
  let pos = 0;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = bytes[pos++];
      result |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return result;
      shift += 7n;
    }
  };
  while (pos < bytes.length) {
    const key = Number(varint());
    const [field, wire] = [key >>> 3, key & 7];
    if (wire === 0) yield [field, varint()];
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const length = Number(varint());
      yield [field, bytes.subarray(pos, pos + length)];
      pos += length;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
}

async function main(argv) {
  let model = DEFAULT_MODEL;
  const images = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--model") model = argv[++i];
    else images.push(argv[i]);
  }
  const bytes = fs.readFileSync(model);
  const labels = JSON.parse(metadataProps(bytes).edgeinfer).labels;
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  for (const file of images) {
    const png = PNG.sync.read(fs.readFileSync(file)); // always RGBA, 8 bits per channel
    const image = new ort.Tensor("uint8", png.data, [png.height, png.width, 4]);
    const { probabilities } = await session.run({ image }, ["probabilities"]);
    const scores = Array.from(probabilities.data);
    const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
    const top = order.slice(0, 5).map((i) => ({ label: labels[i], score: scores[i] }));
    console.log(JSON.stringify({ image: file, label: top[0].label, index: order[0], top }));
  }
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
