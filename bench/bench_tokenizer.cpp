// Tokenizer throughput on a corpus held in memory: MB/s of UTF-8 text encoded,
// on one thread and on all, each pass with cold caches (median of 3 passes).
// Prints "threads MB/s tokens fnv1a(ids)" rows for bench/tokenizer.sh.
//   bench_tokenizer VOCAB_DIR FILE...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "data/tokenizer.h"

using namespace llmdion;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_tokenizer VOCAB_DIR FILE...\n");
    return 2;
  }
  const std::string vocab_dir = argv[1];
  const Gpt2Tokenizer tokenizer = Gpt2Tokenizer::load(vocab_dir + "/encoder.json", vocab_dir + "/vocab.bpe");
  std::vector<std::string> docs;
  double megabytes = 0;
  for (int i = 2; i < argc; i++) {
    std::ifstream in(argv[i], std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    docs.push_back(ss.str());
    megabytes += docs.back().size() / 1e6;
  }
  const int all_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int threads : {1, all_threads}) {
    std::vector<double> seconds;
    uint64_t tokens = 0, hash = 0;
    for (int pass = 0; pass < 3; pass++) {
      std::vector<BpeCache> caches(threads);
      const auto start = std::chrono::steady_clock::now();
      const auto encoded = encode_documents(tokenizer, docs, caches);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      tokens = 0, hash = 0xcbf29ce484222325ull;
      for (const auto& ids : encoded)
        for (size_t k = 1; k < ids.size(); k++)  // skip the <|endoftext|> each document starts with
          tokens++, hash = (hash ^ ids[k]) * 0x100000001b3ull;
    }
    std::sort(seconds.begin(), seconds.end());
    std::printf("%d %.2f %llu %016llx\n", threads, megabytes / seconds[1], (unsigned long long)tokens,
                (unsigned long long)hash);
    if (all_threads == 1) break;
  }
  return 0;
}
