// Throughput of the JavaScript GPT-2 encoders on the same files as
// bench_tokenizer: OpenAI's tiktoken (Rust core as WASM, encode_ordinary) and
// gpt-3-encoder. Median of 3 passes on one thread (node is single-threaded).
// Prints "name MB/s tokens fnv1a(ids)" rows.
//   node tiktoken_bench.js NPM_CACHE FILE...
const fs = require("fs");
const path = require("path");
const [cacheArg, ...files] = process.argv.slice(2);
const cache = path.resolve(cacheArg);
const { get_encoding } = require(path.join(cache, "tiktoken"));
const gpt3 = require(path.join(cache, "gpt-3-encoder"));
const docs = files.map((f) => fs.readFileSync(f, "utf8"));
const megabytes = files.reduce((n, f) => n + fs.statSync(f).size, 0) / 1e6;

function fnv1a(all) {
  let hash = 0xcbf29ce484222325n;
  let tokens = 0;
  for (const ids of all)
    for (const id of ids) {
      hash = ((hash ^ BigInt(id)) * 0x100000001b3n) & 0xffffffffffffffffn;
      tokens++;
    }
  return [tokens, hash.toString(16).padStart(16, "0")];
}

function bench(name, encode, passes) {
  const seconds = [];
  let result;
  for (let p = 0; p < passes; p++) {
    const start = process.hrtime.bigint();
    result = docs.map(encode);
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  seconds.sort((a, b) => a - b);
  const [tokens, hash] = fnv1a(result);
  console.log(`${name} ${(megabytes / seconds[Math.floor(passes / 2)]).toFixed(2)} ${tokens} ${hash}`);
}

const enc = get_encoding("gpt2");
bench("tiktoken", (d) => enc.encode_ordinary(d), 3);
bench("gpt-3-encoder", (d) => gpt3.encode(d), 1);
enc.free();
