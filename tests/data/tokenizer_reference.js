// Reference ids for the tokenizer tests, from the two JavaScript GPT-2 encoders:
// OpenAI's tiktoken (npm "tiktoken", its Rust core as WASM; encode_ordinary)
// and the npm "gpt-3-encoder" (a port of OpenAI's original encoder.py).
//   node tokenizer_reference.js NPM_CACHE CASES OUT
// CASES holds one hex-encoded UTF-8 byte string per line; decoding uses
// TextDecoder's replacement of invalid bytes. OUT gets, per case, a line
// "<tiktoken ids>|<gpt-3-encoder ids>", ids separated by spaces.
const fs = require("fs");
const path = require("path");
const [cacheArg, casesPath, outPath] = process.argv.slice(2);
const cache = path.resolve(cacheArg);
const { get_encoding } = require(path.join(cache, "tiktoken"));
const gpt3 = require(path.join(cache, "gpt-3-encoder"));
const tiktoken = get_encoding("gpt2");
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const lines = fs.readFileSync(casesPath, "utf8").split("\n").filter((l) => l.length > 0);
const out = lines.map((hex) => {
  const text = decoder.decode(Buffer.from(hex === "-" ? "" : hex, "hex"));
  return Array.from(tiktoken.encode_ordinary(text)).join(" ") + "|" + gpt3.encode(text).join(" ");
});
fs.writeFileSync(outPath, out.join("\n") + "\n");
tiktoken.free();
