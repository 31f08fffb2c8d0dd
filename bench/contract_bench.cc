// Benchmarks of the generation contract (docs/benchmarks.md, "Score and
// regex"), on the generator's scheduler as the service runs it (batched
// prefill, one compute worker; no gRPC):
//   score_names      64 names per call on config (a), vocabulary 27: texts/s
//                    and tokens/s (each text's characters and final BOS)
//   score_e          16 texts of 256 characters per call on config (e) in
//                    text mode (block 64, so each goes through the sliding
//                    window), vocabulary 65
//   generate_names_x64, generate_names_x64_regex
//                    64 samples of config (a) without and with the regex
//                    [a-z]{3,8}: the difference of their time per token is
//                    the constraint's cost per token (counter time/token)
// The models are initialised, not trained: their speed does not depend on
// the weights. Names come from $MICROGPT_BENCH_DATA (default
// ../shared/data/names.txt) or are generated; the text from
// $MICROGPT_BENCH_TEXT (default ../shared/data/shakespeare.txt) or generated.
//
//   OPENBLAS_CORETYPE=Haswell build/bench/contract_bench --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/dataset.h"
#include "common/denormals.h"
#include "common/model.h"
#include "common/regex_constraint.h"
#include "common/tokenizer.h"
#include "common/training_data.h"
#include "generator/model_manager.h"
#include "generator/scheduler.h"

namespace microgpt {
namespace {

std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::vector<std::string> Names() {
  absl::StatusOr<Dataset> names =
      LoadDataset(EnvOr("MICROGPT_BENCH_DATA", "../shared/data/names.txt"),
                  DatasetFormat::kDocuments);
  if (names.ok() && names->documents.size() >= 64) {
    return names->documents;
  }
  std::vector<std::string> generated;
  for (int i = 0; i < 1000; ++i) {
    std::string name;
    for (int j = 0; j < 3 + i % 6; ++j) name += 'a' + (i * 7 + j * 13) % 26;
    generated.push_back(name);
  }
  return generated;
}

Dataset Text() {
  absl::StatusOr<Dataset> text = LoadDataset(
      EnvOr("MICROGPT_BENCH_TEXT", "../shared/data/shakespeare.txt"),
      DatasetFormat::kText);
  if (text.ok() && text->text.size() >= 100000) return *std::move(text);
  Dataset generated;
  generated.format = DatasetFormat::kText;
  for (int i = 0; i < 100000; ++i) {
    generated.text += "abcdefgh ijk\n"[i * 7 % 13];
  }
  return generated;
}

std::shared_ptr<const ServableModel> Servable(const ModelConfig& sizes,
                                              const Tokenizer& tokenizer,
                                              DatasetFormat format) {
  ModelConfig config = sizes;
  config.vocab_size = tokenizer.vocab_size();
  return std::make_shared<const ServableModel>(
      ServableModel{"bench", 1, 0, 0.0, Model::Initialize(config, 1), tokenizer,
                    format, std::nullopt});
}

ModelConfig Sizes(int n_embd, int n_layer, int n_head, int block_size) {
  ModelConfig config;
  config.n_embd = n_embd;
  config.n_layer = n_layer;
  config.n_head = n_head;
  config.block_size = block_size;
  return config;
}

// Runs `specs` on a scheduler to the end, reading their events as the
// service does (woken by the listener); the tokens they produced (scored or
// generated).
int64_t RunToEnd(Scheduler& scheduler, std::vector<SequenceSpec> specs) {
  struct Wakes {
    absl::Mutex mu;
    int64_t count ABSL_GUARDED_BY(mu) = 0;
    int64_t seen = 0;  // the reader's
  };
  // Shared: the scheduler may call the listener after the last event was
  // read.
  auto wakes = std::make_shared<Wakes>();
  auto sequences = scheduler.Submit(std::move(specs), [wakes] {
    absl::MutexLock lock(&wakes->mu);
    ++wakes->count;
  });
  if (!sequences.ok()) std::abort();
  int64_t tokens = 0;
  while (true) {
    bool all_done = true;
    for (const auto& sequence : *sequences) {
      TokenEvent event;
      while (sequence->Pop(&event)) {
        tokens += static_cast<int64_t>(event.scored.size()) + (event.id >= 0);
      }
      all_done = all_done && sequence->done();
    }
    if (all_done) return tokens;
    absl::MutexLock lock(&wakes->mu);
    wakes->mu.Await(absl::Condition(
        +[](Wakes* w)
             ABSL_NO_THREAD_SAFETY_ANALYSIS { return w->count > w->seen; },
        wakes.get()));
    wakes->seen = wakes->count;
  }
}

void RunScore(benchmark::State& state,
              const std::shared_ptr<const ServableModel>& servable,
              const std::vector<std::vector<int>>& texts) {
  FlushDenormalsOnThisThread();
  Scheduler scheduler({});
  scheduler.Start();
  int64_t tokens = 0;
  for (auto _ : state) {
    std::vector<SequenceSpec> specs(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      specs[i].servable = servable;
      specs[i].prompt = texts[i];
      specs[i].score = true;
    }
    tokens += RunToEnd(scheduler, std::move(specs));
  }
  scheduler.Stop();
  state.counters["texts/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * texts.size()),
                         benchmark::Counter::kIsRate);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens),
                                                  benchmark::Counter::kIsRate);
}

void BM_ScoreNames(benchmark::State& state) {
  const std::vector<std::string> names = Names();
  const Tokenizer tokenizer = Tokenizer::FromDocuments(names);
  const auto servable =
      Servable(Sizes(16, 1, 4, 16), tokenizer, DatasetFormat::kDocuments);
  std::vector<std::vector<int>> texts;
  for (size_t i = 0; texts.size() < 64 && i < names.size(); ++i) {
    absl::StatusOr<std::vector<int>> ids = tokenizer.Encode(names[i]);
    if (ids.ok() && ids->size() < 16) texts.push_back(*std::move(ids));
  }
  RunScore(state, servable, texts);
}
BENCHMARK(BM_ScoreNames)
    ->Name("score_names")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_ScoreE(benchmark::State& state) {
  const Dataset dataset = Text();
  const std::string& text = dataset.text;
  const Tokenizer tokenizer = TokenizerFor(dataset);
  const auto servable =
      Servable(Sizes(128, 4, 4, 64), tokenizer, DatasetFormat::kText);
  std::vector<std::vector<int>> texts;
  for (int i = 0; i < 16; ++i) {
    texts.push_back(*tokenizer.Encode(text.substr(i * 4096, 256)));
  }
  RunScore(state, servable, texts);
}
BENCHMARK(BM_ScoreE)->Name("score_e")->UseRealTime()->Unit(
    benchmark::kMillisecond);

void BM_GenerateNames(benchmark::State& state, bool regex) {
  FlushDenormalsOnThisThread();
  const std::vector<std::string> names = Names();
  const Tokenizer tokenizer = Tokenizer::FromDocuments(names);
  const auto servable =
      Servable(Sizes(16, 1, 4, 16), tokenizer, DatasetFormat::kDocuments);
  std::shared_ptr<const RegexConstraint> constraint;
  if (regex) constraint = *RegexConstraint::Compile("[a-z]{3,8}");
  Scheduler scheduler({});
  scheduler.Start();
  int64_t tokens = 0;
  uint64_t seed = 0;
  for (auto _ : state) {
    std::vector<SequenceSpec> specs(64);
    for (SequenceSpec& spec : specs) {
      spec.servable = servable;
      spec.sampling.temperature = 1.0f;
      spec.seed = ++seed;
      spec.regex = constraint;
    }
    tokens += RunToEnd(scheduler, std::move(specs));
  }
  scheduler.Stop();
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens),
                                                  benchmark::Counter::kIsRate);
  state.counters["time/token"] = benchmark::Counter(
      static_cast<double>(tokens),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK_CAPTURE(BM_GenerateNames, plain, false)
    ->Name("generate_names_x64")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_GenerateNames, regex, true)
    ->Name("generate_names_x64_regex")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace microgpt

BENCHMARK_MAIN();
