// build/export_hf: a checkpoint's weights as a Hugging Face folder
// (model/hf_export.h), as run.export_hf writes at the end of a run.
//
//   export_hf --checkpoint out/default/checkpoints/step_00000600 --out out/default/hf
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "config/config.h"
#include "model/hf_export.h"
#include "train/checkpoint.h"
#include "train/logging.h"

using namespace llmdion;

int main(int argc, char** argv) {
  CLI::App app{"llm.dion export_hf: a checkpoint as a Hugging Face folder"};
  std::string folder, out;
  app.add_option("--checkpoint", folder, "a checkpoint folder: OUT/checkpoints/step_N")->required();
  app.add_option("--out", out, "the folder to write (config.json, model.safetensors)")->required();
  CLI11_PARSE(app, argc, argv);
  setup_console_logging();
  try {
    const TrainState state = read_checkpoint_state(folder, nullptr);
    const GptShape shape = shape_from_config(parse_config(state.config_yaml, "checkpoint '" + folder + "'").model);
    const GptLayout layout = gpt_layout(shape);
    for (const std::string& gap : write_hf_folder(out, shape, layout, read_checkpoint_weights(folder, layout)))
      spdlog::warn("no Hugging Face class holds {}; {}/config.json names no architecture", gap, out);
    spdlog::info("wrote {} (config.json, model.safetensors) from {}", out, folder);
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
