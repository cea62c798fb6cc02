// build/generate: text from a checkpoint's weights.
//
//   generate --checkpoint out/default/checkpoints/step_00000600 [--prompt TEXT]
//            [--tokens N] [--top-k K] [--temperature T] [--seed S] [--device cpu|cuda|auto]
//
// The model is the checkpoint's (the resolved config in its state.yaml), its
// weights checked as a resume checks them; the GPT-2 tokenizer comes from the
// config's data.vocab_dir (or --vocab-dir). The text follows <|endoftext|> and
// the prompt, drawn by the trainer's sampler (train/sampler.h). --tokens and
// --top-k default to the run's train.sample_tokens and sample_top_k, and --seed
// to the seed of the trainer's sample after the checkpoint's last step: with no
// prompt and temperature 1, generate prints the sample train.log shows there.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "config/config.h"
#include "core/device.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/logging.h"
#include "train/sampler.h"

using namespace llmdion;

int main(int argc, char** argv) {
  CLI::App app{"llm.dion generate: text from a checkpoint"};
  std::string folder, prompt, vocab_dir, device = "cpu";
  int64_t tokens = -1, top_k = -1;
  double temperature = 1.0;
  uint64_t seed = 0;
  app.add_option("--checkpoint", folder, "a checkpoint folder: OUT/checkpoints/step_N")->required();
  app.add_option("--prompt", prompt, "text the generation continues (default: none)");
  app.add_option("--tokens", tokens, "tokens to generate (default: the run's train.sample_tokens)");
  app.add_option("--top-k", top_k, "draw from the k most likely tokens (default: the run's train.sample_top_k)");
  app.add_option("--temperature", temperature, "divides the logits before the softmax (default 1)")
      ->check(CLI::Range(1e-3, 1e3));
  CLI::Option* seed_option = app.add_option("--seed", seed, "the sampler's seed (default: the trainer's at that step)");
  app.add_option("--device", device, "cpu, cuda or auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  app.add_option("--vocab-dir", vocab_dir, "encoder.json and vocab.bpe (default: the run's data.vocab_dir)");
  CLI11_PARSE(app, argc, argv);
  setup_console_logging();
  try {
    if (!std::filesystem::is_directory(folder))
      throw std::runtime_error("checkpoint '" + folder + "' is not a folder (give OUT/checkpoints/step_N)");
    const TrainState state = read_checkpoint_state(folder, nullptr);
    const Config config = parse_config(state.config_yaml, "checkpoint '" + folder + "'");
    const GptShape shape = shape_from_config(config.model);
    if (vocab_dir.empty()) {
      vocab_dir = config.data.vocab_dir;
      if (!std::filesystem::exists(vocab_dir + "/encoder.json"))
        throw std::runtime_error("the run's tokenizer '" + vocab_dir + "/encoder.json' is not here (data.vocab_dir " +
                                 "is relative to where the run trained): run generate from there, or give --vocab-dir");
    }
    const Gpt2Tokenizer tokenizer =
        Gpt2Tokenizer::load(vocab_dir + "/encoder.json", vocab_dir + "/vocab.bpe");
    if (tokenizer.vocab_size() > uint32_t(shape.vocab_size))
      throw std::runtime_error("the model's vocabulary (" + std::to_string(shape.vocab_size) +
                               ") is smaller than the GPT-2 tokenizer's (" + std::to_string(tokenizer.vocab_size()) +
                               "): this checkpoint was not trained on GPT-2 tokens");
    std::vector<uint32_t> prompt_ids;
    BpeCache cache;
    tokenizer.encode(prompt, prompt_ids, cache);
    if (int64_t(prompt_ids.size()) + 1 >= shape.seq_len)
      throw std::runtime_error("the prompt is " + std::to_string(prompt_ids.size()) + " tokens; the model's context is " +
                               std::to_string(shape.seq_len) + " (with <|endoftext|>): shorten it");
    if (tokens < 0) tokens = config.train.sample_tokens;
    if (top_k < 1) top_k = config.train.sample_top_k;
    if (!seed_option->count()) seed = sample_seed(state.seed, state.step - 1);

    const std::unique_ptr<Model> model = make_model(resolve_device(device), shape, 1, shape.seq_len);
    model->copy_params_from_host(read_checkpoint_weights(folder, model->layout()));
    model->params_changed(weight_rounding_seed(config.run.seed, state.update_count));
    SplitMix64 rng{seed};
    const std::vector<uint32_t> ids = sample_tokens(*model, tokenizer.eot_id(), prompt_ids, tokens, top_k,
                                                    temperature, rng);
    std::printf("%s%s\n", prompt.c_str(), tokenizer.decode(ids).c_str());
    if (int64_t(ids.size()) < tokens)
      spdlog::warn("{} of {} tokens: the model's context of {} tokens is full", ids.size(), tokens, shape.seq_len);
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
