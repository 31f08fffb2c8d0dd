// Engine benchmarks: training steps and decoding for the four reference
// configurations of docs/benchmarks.md.
//   (a) n_embd 16, n_layer 1, n_head 4, block 16, batch 1  (microgpt)
//   (b) as (a) with batch 32
//   (c) n_embd 64, n_layer 2, n_head 4, block 16, batch 32
//   (d) n_embd 128, n_layer 4, n_head 4, block 32, batch 64
// and two text configurations (nanoGPT's):
//   (e) n_embd 128, n_layer 4, n_head 4, block 64, batch 12 (its CPU recipe)
//   (f) n_embd 384, n_layer 6, n_head 6, block 256, batch 16 (shakespeare_char)
// Training (a)-(d) reads names.txt ($MICROGPT_BENCH_DATA, default
// ../shared/data/names.txt) and falls back to generated names when it is
// absent; (e) and (f) read shakespeare.txt in the text format
// ($MICROGPT_BENCH_TEXT, default ../shared/data/shakespeare.txt), or a
// generated text. Batches are packed (no padding); tokens/s counts target
// tokens. Training runs (c) and (d) on two TrainingGraph threads (counter
// `threads`), decoding (d) x64 on two compute workers as the generator's
// scheduler splits a batch (counter `workers`); OpenBLAS's threads follow
// common/blas_threads.h as in the services (counter `blas_threads`: one).
//
// The benchmark names are the rows of bench/pytorch_microgpt.py: train_<cfg>
// and decode_<cfg>_x<streams>; first_token_<cfg>_chunk<n> (a 255-character
// prompt's time to first token) and decode_past_block_<cfg>_x1 (a text
// stream past block_size) are the engine's own. Rates are over wall-clock time
// (UseRealTime), as on the PyTorch side, since OpenBLAS and training may run
// threads.
//
//   OPENBLAS_CORETYPE=Haswell build/bench/engine_bench --benchmark_min_time=2
//   ... --benchmark_format=json          (what scripts/bench.sh reads)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/blas_threads.h"
#include "common/dataset.h"
#include "common/decoder.h"
#include "common/denormals.h"
#include "common/model.h"
#include "common/rng.h"
#include "common/sampler.h"
#include "common/training_run.h"

namespace microgpt {
namespace {

struct Reference {
  const char* name;
  int n_embd, n_layer, n_head, block_size, batch;
  DatasetFormat format = DatasetFormat::kDocuments;
};
constexpr Reference kConfigs[] = {
    {"a", 16, 1, 4, 16, 1},
    {"b", 16, 1, 4, 16, 32},
    {"c", 64, 2, 4, 16, 32},
    {"d", 128, 4, 4, 32, 64},
    {"e", 128, 4, 4, 64, 12, DatasetFormat::kText},
    {"f", 384, 6, 6, 256, 16, DatasetFormat::kText},
};
// (config index, streams) of the decoding rows.
constexpr int kDecodeRows[][2] = {{0, 1},  {0, 64}, {3, 1},
                                  {3, 64}, {5, 1},  {5, 64}};

// names.txt's vocabulary, or shakespeare.txt's (65 characters and BOS).
int VocabOf(const Reference& r) {
  return r.format == DatasetFormat::kText ? 66 : 27;
}

ModelConfig ConfigOf(const Reference& r, int vocab_size) {
  ModelConfig c;
  c.n_embd = r.n_embd;
  c.n_layer = r.n_layer;
  c.n_head = r.n_head;
  c.block_size = r.block_size;
  c.vocab_size = vocab_size;
  return c;
}

const char* DataPath() {
  const char* path = std::getenv("MICROGPT_BENCH_DATA");
  return path ? path : "../shared/data/names.txt";
}

// The documents and where they came from ("generated" when the file is absent).
struct Corpus {
  std::vector<std::string> documents;
  std::string source;
};

const char* TextPath() {
  const char* path = std::getenv("MICROGPT_BENCH_TEXT");
  return path ? path : "../shared/data/shakespeare.txt";
}

// The text of (e) and (f) and where it came from.
struct TextCorpus {
  Dataset dataset;
  std::string source;
};

const TextCorpus& Text() {
  static const TextCorpus* corpus = [] {
    auto* c = new TextCorpus;
    auto loaded = LoadDataset(TextPath(), DatasetFormat::kText);
    if (loaded.ok()) {
      c->dataset = *std::move(loaded);
      c->source = TextPath();
      return c;
    }
    // Generated stand-in: 1 MB of lines of lowercase words.
    c->source = "generated";
    Rng rng(2);
    std::string text;
    while (text.size() < (1 << 20)) {
      text += static_cast<char>('a' + rng.UniformInt(26));
      if (rng.UniformInt(6) == 0) text += rng.UniformInt(8) == 0 ? '\n' : ' ';
    }
    c->dataset = TextDataset(std::move(text));
    return c;
  }();
  return *corpus;
}

const Corpus& Documents() {
  static const Corpus* corpus = [] {
    auto* c = new Corpus;
    auto loaded = LoadDataset(DataPath(), DatasetFormat::kDocuments);
    if (loaded.ok()) {
      c->documents = std::move(loaded->documents);
      c->source = DataPath();
      return c;
    }
    // Generated stand-in: 32k lowercase "names" of 3-8 letters.
    c->source = "generated";
    Rng rng(1);
    for (int i = 0; i < 32000; ++i) {
      std::string name;
      const int len = 3 + static_cast<int>(rng.UniformInt(6));
      for (int j = 0; j < len; ++j)
        name += static_cast<char>('a' + rng.UniformInt(26));
      c->documents.push_back(name);
    }
    return c;
  }();
  return *corpus;
}

void BM_Train(benchmark::State& state, const Reference& r) {
  FlushDenormalsOnThisThread();  // as the trainer's job thread
  TrainingOptions options;
  options.config = ConfigOf(r, 2);  // vocab_size comes from the documents
  options.batch_size = r.batch;
  options.steps = 1 << 30;  // never done within a benchmark
  // As the trainer runs it (common/blas_threads.h): the wide models' batches
  // split over two threads (TrainingGraph's shards), each running
  // single-threaded sgemm, faster than OpenBLAS's own threads, which hand off
  // once per product; the narrow ones on one thread (a step of (b) is ~130 us
  // of CPU, too short to pay for the hand-offs).
  options.threads = TrainingThreadsFor(options.config);
  auto run = TrainingRun::Start(options,
                                r.format == DatasetFormat::kText
                                    ? Text().dataset
                                    : DocumentsDataset(Documents().documents));
  if (!run.ok()) {
    state.SkipWithError(std::string(run.status().message()).c_str());
    return;
  }
  const int default_blas_threads = openblas_get_num_threads();
  const int blas_threads = ConfigureBlasThreads(
      EngineWork::kTraining, options.config, options.threads);
  int64_t tokens = 0;
  float loss = 0;
  for (auto _ : state) {
    const StepStats stats = (*run)->Step();
    tokens += stats.tokens;
    loss = stats.loss;
  }
  openblas_set_num_threads(default_blas_threads);
  state.counters["batch"] = r.batch;
  state.counters["threads"] = options.threads;
  state.counters["blas_threads"] = blas_threads;
  state.counters["last_loss"] = loss;
  state.counters["steps_per_s"] =
      benchmark::Counter(state.iterations(), benchmark::Counter::kIsRate);
  state.counters["tokens_per_s"] =
      benchmark::Counter(tokens, benchmark::Counter::kIsRate);
}

// One compute worker's share of the streams, as in Scheduler::RunTask: its
// own Decoder, one Decoder::StepBatch over its streams (a single stream is a
// batch of one), then each stream's own seeded Sampler (temperature 0.5) on
// its row of logits. A stream restarts from BOS when its cache is full.
class DecodeSlice {
 public:
  DecodeSlice(const Model& model, int streams, int first_seed)
      : vocab_(model.config().vocab_size),
        decoder_(model, streams),
        caches_(streams, KVCache(model.config())),
        tokens_(streams, vocab_ - 1),
        logits_(static_cast<size_t>(streams) * vocab_) {
    for (int s = 0; s < streams; ++s) {
      cache_ptrs_.push_back(&caches_[s]);
      samplers_.emplace_back(SamplingParams{}, first_seed + s);
    }
  }

  void Step() {
    decoder_.StepBatch(tokens_, cache_ptrs_, logits_.data());
    for (size_t s = 0; s < tokens_.size(); ++s) {
      tokens_[s] = samplers_[s]
                       .Sample({logits_.data() + s * vocab_,
                                static_cast<size_t>(vocab_)})
                       .id;
      if (caches_[s].full()) {
        caches_[s].Clear();
        tokens_[s] = vocab_ - 1;
      }
    }
  }

 private:
  const int vocab_;
  Decoder decoder_;
  std::vector<KVCache> caches_;
  std::vector<KVCache*> cache_ptrs_;
  std::vector<Sampler> samplers_;
  std::vector<int> tokens_;
  std::vector<float> logits_;
};

// Runs every slice once per Step: slice 0 on the calling thread, the others
// on helper threads that block between steps (no spinning), like the
// scheduler's worker pool.
class SlicePool {
 public:
  explicit SlicePool(std::vector<std::unique_ptr<DecodeSlice>>* slices)
      : slices_(*slices) {
    for (size_t k = 1; k < slices_.size(); ++k) {
      helpers_.emplace_back([this, k] { HelperLoop(k); });
    }
  }
  ~SlicePool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& helper : helpers_) helper.join();
  }

  void Step() {
    if (!helpers_.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      pending_ = static_cast<int>(helpers_.size());
      ++generation_;
    }
    wake_.notify_all();
    slices_[0]->Step();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  void HelperLoop(size_t k) {
    FlushDenormalsOnThisThread();  // as the generator's workers
    int64_t seen = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      slices_[k]->Step();
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::vector<std::unique_ptr<DecodeSlice>>& slices_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  int64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::vector<std::thread> helpers_;
};

// Decoding the way the generator's scheduler does it: `streams` sequences
// advanced one token per step, split over `workers` compute workers
// (Scheduler::RunStep's slices). An iteration is one step: `streams` tokens.
void BM_Decode(benchmark::State& state, const Reference& r, int streams,
               int workers) {
  FlushDenormalsOnThisThread();  // as the generator's workers
  const Model model = Model::Initialize(ConfigOf(r, VocabOf(r)), 1);
  std::vector<std::unique_ptr<DecodeSlice>> slices;
  const int per_slice = (streams + workers - 1) / workers;
  for (int begin = 0; begin < streams; begin += per_slice) {
    slices.push_back(std::make_unique<DecodeSlice>(
        model, std::min(per_slice, streams - begin), /*first_seed=*/1 + begin));
  }
  const int default_blas_threads = openblas_get_num_threads();
  const int blas_threads = ConfigureBlasThreads(
      EngineWork::kDecoding, model.config(), static_cast<int>(slices.size()));
  {
    SlicePool pool(&slices);
    for (auto _ : state) pool.Step();
  }
  openblas_set_num_threads(default_blas_threads);
  state.counters["streams"] = streams;
  state.counters["workers"] = static_cast<double>(slices.size());
  state.counters["blas_threads"] = blas_threads;
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * streams,
                         benchmark::Counter::kIsRate);
}

// Time to first token of a 255-character prompt on config r with a block of
// at least 256: BOS and the prompt fed in chunks of `chunk` tokens with
// Decoder::Prefill (the scheduler's prefill_chunk, 64 by default), then one
// token sampled. Chunk 1 is the token-by-token feeding of a single-row
// forward. An iteration is one prompt; ms_per_prompt is the row of the
// PyTorch port's prefill_f_255 (one batched forward of the prompt).
void BM_FirstToken(benchmark::State& state, const Reference& r, int chunk) {
  FlushDenormalsOnThisThread();  // as the generator's workers
  constexpr int kFed = 256;      // BOS and 255 characters
  ModelConfig config = ConfigOf(r, VocabOf(r));
  config.block_size = std::max(config.block_size, kFed);
  const Model model = Model::Initialize(config, 1);
  Decoder decoder(model, chunk);
  KVCache cache(config);
  Sampler sampler(SamplingParams{}, 1);
  std::vector<int> context(kFed, config.vocab_size - 1);
  Rng rng(3);
  for (int t = 1; t < kFed; ++t) {
    context[t] = static_cast<int>(rng.UniformInt(config.vocab_size - 1));
  }
  std::vector<float> logits(config.vocab_size);
  const int default_blas_threads = openblas_get_num_threads();
  const int blas_threads =
      ConfigureBlasThreads(EngineWork::kDecoding, config, 1);
  for (auto _ : state) {
    cache.Clear();
    for (int begin = 0; begin < kFed; begin += chunk) {
      decoder.Prefill(absl::MakeConstSpan(context.data() + begin,
                                          std::min(chunk, kFed - begin)),
                      &cache, Decoder::PrefillLogits::kLast, logits.data());
    }
    benchmark::DoNotOptimize(sampler.Sample(logits).id);
  }
  openblas_set_num_threads(default_blas_threads);
  state.counters["chunk"] = chunk;
  state.counters["blas_threads"] = blas_threads;
  state.counters["ms_per_prompt"] = benchmark::Counter(
      1e-3 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// One text-model stream generating past config r's block_size, a token per
// iteration: when a token does not fit in the full cache, the context's last
// block_size / 2 tokens are fed again from position 0 in one Prefill (the
// scheduler's refill), so its cost is spread over the tokens.
void BM_DecodePastBlock(benchmark::State& state, const Reference& r) {
  FlushDenormalsOnThisThread();  // as the generator's workers
  const ModelConfig config = ConfigOf(r, VocabOf(r));
  const Model model = Model::Initialize(config, 1);
  const int keep = std::max(1, config.block_size / 2);
  Decoder decoder(model, keep);
  KVCache cache(config);
  Sampler sampler(SamplingParams{}, 1);
  std::vector<int> context = {0};
  context.reserve(config.block_size + 1);
  std::vector<float> logits(config.vocab_size);
  const int default_blas_threads = openblas_get_num_threads();
  const int blas_threads =
      ConfigureBlasThreads(EngineWork::kDecoding, config, 1);
  for (auto _ : state) {
    // One token to feed, or the refill's `keep`.
    decoder.Prefill(absl::MakeConstSpan(context.data() + cache.length(),
                                        context.size() - cache.length()),
                    &cache, Decoder::PrefillLogits::kLast, logits.data());
    context.push_back(sampler.Sample(logits).id);
    if (cache.full()) {
      context.erase(context.begin(), context.end() - keep);
      cache.Clear();
    }
  }
  openblas_set_num_threads(default_blas_threads);
  state.counters["blas_threads"] = blas_threads;
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void RegisterAll() {
  for (const Reference& r : kConfigs) {
    benchmark::RegisterBenchmark((std::string("train_") + r.name).c_str(),
                                 BM_Train, r)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (const auto& row : kDecodeRows) {
    const Reference& r = kConfigs[row[0]];
    const int streams = row[1];
    // The workers the generator runs by default (--threads 0: one per core)
    // share a step as its scheduler shares it (common/blas_threads.h): a
    // wide model's batch is split, a narrow one's stays on one worker.
    const int cores =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    const int workers =
        streams > 1 ? DecodingWorkersFor(ConfigOf(r, 2), cores) : 1;
    benchmark::RegisterBenchmark(
        (std::string("decode_") + r.name + "_x" + std::to_string(streams))
            .c_str(),
        BM_Decode, r, streams, workers)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  // Generation on (f): the time to first token of a 255-character prompt in
  // the scheduler's chunks of 64 (the PyTorch port's prefill_f_255 row) and
  // token by token, and one text stream past block_size.
  const Reference& f = kConfigs[5];
  benchmark::RegisterBenchmark("prefill_f_255", BM_FirstToken, f, 64)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("first_token_f_chunk1", BM_FirstToken, f, 1)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("decode_past_block_f_x1", BM_DecodePastBlock, f)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace
}  // namespace microgpt

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  benchmark::AddCustomContext("openblas_coretype", coretype ? coretype : "");
  benchmark::AddCustomContext("openblas_corename", openblas_get_corename());
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
  benchmark::AddCustomContext("openblas_threads",
                              std::to_string(openblas_get_num_threads()));
  benchmark::AddCustomContext("data", microgpt::Documents().source);
  benchmark::AddCustomContext("text", microgpt::Text().source);
  microgpt::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
