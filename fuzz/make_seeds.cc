// Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/:
//   make_seeds <corpus dir>
// Small valid inputs: a tiny model and optimizer checkpoint, its manifest, a
// dataset, and a few Generate and StartTraining requests. Rerun after a
// format change and commit the output.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/checkpoint.h"
#include "common/checkpoint_store.h"
#include "fuzz/fuzz_util.h"
#include "microgpt/v1/microgpt.pb.h"

namespace {

void Write(const std::filesystem::path& path, const std::string& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  using namespace microgpt;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <corpus dir>\n");
    return 2;
  }
  const std::filesystem::path out = argv[1];
  const ModelCheckpoint model = fuzz::TinyCheckpoint();
  const ParameterLayout layout(model.config);
  OptimizerCheckpoint state;
  state.adam_step = 3;
  state.m.assign(layout.total_size(), 0.5f);
  state.v.assign(layout.total_size(), 0.25f);
  state.data_order = {1, 0};
  state.data_cursor = 1;
  state.dataset_sha256 = std::string(64, 'a');
  Write(out / "safetensors" / "model.safetensors", SerializeModel(model));
  Write(out / "safetensors" / "optimizer.safetensors",
        SerializeOptimizer(state, layout));

  // A manifest from a real publish of the same model the target uses.
  const std::filesystem::path tmp =
      std::filesystem::temp_directory_path() / "microgpt-make-seeds";
  std::filesystem::remove_all(tmp);
  CheckpointStore store(tmp.string());
  if (!store.Publish("m", 1, model, &state, layout).ok()) return 1;
  Write(out / "manifest" / "manifest.json",
        ReadAll(std::filesystem::path(store.VersionPath("m", 1)) /
                "manifest.json"));
  std::filesystem::remove_all(tmp);

  Write(out / "dataset" / "names.txt", "emma\nolivia\nava\n\nisabella\n");
  Write(out / "dataset" / "utf8.txt",
        "caf\xc3\xa9\n\xe6\x97\xa5\xe6\x9c\xac\r\nz\n");
  Write(out / "dataset" / "tokenizer.json", model.tokenizer.ToJson());

  v1::GenerateRequest generate;
  generate.set_model("m");
  generate.set_prompt("ab");
  generate.set_max_tokens(4);
  generate.set_temperature(0.7f);
  generate.set_top_k(2);
  generate.set_top_p(0.9f);
  generate.set_seed(7);
  generate.set_num_samples(3);
  generate.set_top_logprobs(2);
  Write(out / "generate_request" / "full", generate.SerializeAsString());
  v1::GenerateRequest contract = generate;
  contract.add_stop("ab");
  contract.set_include_stop(true);
  contract.set_min_tokens(2);
  contract.set_time_limit_ms(1000);
  contract.set_min_p(0.1f);
  contract.set_repetition_penalty(1.2f);
  contract.set_presence_penalty(0.5f);
  contract.set_frequency_penalty(-0.5f);
  (*contract.mutable_logit_bias())["a"] = 2.0f;
  (*contract.mutable_logit_bias())[""] = -3.0f;
  contract.set_regex("[ab]+c?");
  Write(out / "generate_request" / "contract", contract.SerializeAsString());
  v1::ScoreRequest score;
  score.set_model("m");
  score.add_texts("ab");
  score.add_texts("");
  score.set_top_logprobs(2);
  Write(out / "generate_request" / "score", score.SerializeAsString());
  Write(out / "generate_request" / "empty", "");
  v1::GenerateRequest bad = generate;
  bad.set_prompt("xyz");
  Write(out / "generate_request" / "oov_prompt", bad.SerializeAsString());

  v1::StartTrainingRequest start;
  start.set_model("names");
  start.mutable_inline_dataset()->add_documents("emma");
  start.mutable_inline_dataset()->add_documents("ava");
  start.mutable_config()->set_n_embd(16);
  start.mutable_config()->set_n_head(4);
  start.mutable_config()->set_n_layer(1);
  start.mutable_config()->set_block_size(16);
  start.set_steps(10);
  start.set_batch_size(2);
  start.set_learning_rate(0.01f);
  start.set_seed(1);
  start.set_checkpoint_every(5);
  Write(out / "start_training" / "inline", start.SerializeAsString());
  v1::StartTrainingRequest by_path;
  by_path.set_model("names");
  by_path.set_dataset_path("names.txt");
  by_path.set_resume(true);
  Write(out / "start_training" / "path_resume", by_path.SerializeAsString());
  return 0;
}
