// Engine benchmarks: training steps and decoding for the four reference
// configurations of docs/benchmarks.md.
//   (a) n_embd 16, n_layer 1, n_head 4, block 16, batch 1  (microgpt)
//   (b) as (a) with batch 32
//   (c) n_embd 64, n_layer 2, n_head 4, block 16, batch 32
//   (d) n_embd 128, n_layer 4, n_head 4, block 32, batch 64
// Training reads names.txt (--data, default ../shared/data/names.txt) and falls
// back to generated names when it is absent. tokens/s counts real target
// tokens only (padding excluded).
//
//   OPENBLAS_CORETYPE=Haswell build/bench/engine_bench --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/dataset.h"
#include "common/decoder.h"
#include "common/model.h"
#include "common/rng.h"
#include "common/sampler.h"
#include "common/training_run.h"

namespace microgpt {
namespace {

struct Reference {
  const char* name;
  int n_embd, n_layer, n_head, block_size, batch;
};
constexpr Reference kConfigs[] = {
    {"a", 16, 1, 4, 16, 1},
    {"b", 16, 1, 4, 16, 32},
    {"c", 64, 2, 4, 16, 32},
    {"d", 128, 4, 4, 32, 64},
};

ModelConfig ConfigOf(const Reference& r, int vocab_size) {
  ModelConfig c;
  c.n_embd = r.n_embd;
  c.n_layer = r.n_layer;
  c.n_head = r.n_head;
  c.block_size = r.block_size;
  c.vocab_size = vocab_size;
  return c;
}

const std::vector<std::string>& Documents() {
  static const std::vector<std::string>* docs = [] {
    const char* path = std::getenv("MICROGPT_BENCH_DATA");
    auto loaded = LoadDocuments(path ? path : "../shared/data/names.txt");
    if (loaded.ok()) return new std::vector<std::string>(*std::move(loaded));
    // Generated stand-in: 32k lowercase "names" of 3-8 letters.
    auto* generated = new std::vector<std::string>;
    Rng rng(1);
    for (int i = 0; i < 32000; ++i) {
      std::string name;
      const int len = 3 + static_cast<int>(rng.UniformInt(6));
      for (int j = 0; j < len; ++j)
        name += static_cast<char>('a' + rng.UniformInt(26));
      generated->push_back(name);
    }
    return generated;
  }();
  return *docs;
}

void BM_Train(benchmark::State& state) {
  const Reference& r = kConfigs[state.range(0)];
  TrainingOptions options;
  options.config = ConfigOf(r, 2);
  options.batch_size = r.batch;
  options.steps = 1 << 30;  // never done within a benchmark
  auto run = TrainingRun::Start(options, Documents());
  if (!run.ok()) {
    state.SkipWithError(std::string(run.status().message()).c_str());
    return;
  }
  int64_t tokens = 0;
  for (auto _ : state) tokens += (*run)->Step().tokens;
  state.SetLabel(r.name);
  state.counters["steps/s"] =
      benchmark::Counter(state.iterations(), benchmark::Counter::kIsRate);
  state.counters["tokens/s"] =
      benchmark::Counter(tokens, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Train)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

// Decoding: `streams` sequences advanced together with Decoder::StepBatch,
// each sampling at temperature 0.5 and restarting when its cache is full.
void BM_Decode(benchmark::State& state) {
  const Reference& r = kConfigs[state.range(0)];
  const int streams = static_cast<int>(state.range(1));
  const Model model = Model::Initialize(ConfigOf(r, 27), 1);
  Decoder decoder(model, streams);
  std::vector<KVCache> caches(streams, KVCache(model.config()));
  std::vector<KVCache*> cache_ptrs;
  for (KVCache& c : caches) cache_ptrs.push_back(&c);
  std::vector<int> tokens(streams, model.config().vocab_size - 1);
  std::vector<float> logits(static_cast<size_t>(streams) *
                            model.config().vocab_size);
  Sampler sampler(SamplingParams{}, 1);
  const int V = model.config().vocab_size;
  for (auto _ : state) {
    if (streams == 1) {
      decoder.Step(tokens[0], cache_ptrs[0], logits.data());
    } else {
      decoder.StepBatch(tokens, cache_ptrs, logits.data());
    }
    for (int s = 0; s < streams; ++s) {
      tokens[s] = sampler
                      .Sample({logits.data() + static_cast<size_t>(s) * V,
                               static_cast<size_t>(V)})
                      .id;
      if (caches[s].full()) {
        caches[s].Clear();
        tokens[s] = V - 1;
      }
    }
  }
  state.SetLabel(std::string(r.name) + " x" + std::to_string(streams));
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * streams,
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Decode)
    ->Args({0, 1})
    ->Args({0, 64})
    ->Args({3, 1})
    ->Args({3, 64})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace microgpt

BENCHMARK_MAIN();
