// microgpt-bench: a gRPC load generator for microgpt.v1.Generator.
//
// Keeps --streams Generate calls in flight (gRPC's callback API, no thread
// per stream): each slot starts its next call as soon as the previous one
// ends, until --warmup + --duration have passed; calls in flight then run to
// their end (each is at most block_size tokens, and has a --deadline). Only
// the measured window (after the warm-up) is reported:
//   - aggregate tokens/s: tokens received in the window / its length, and
//     the messages that carried them;
//   - time to first token (calls started in the window): from the call's
//     start to its first message, p50 / p99 / max;
//   - inter-token latency: gaps between consecutive tokens of one call that
//     end in the window, p50 / p99 / max (a token is received with its
//     message: with --pack_tokens the tokens after the first of a message
//     have a gap of 0);
//   - calls completed, and errors by gRPC status code (RESOURCE_EXHAUSTED
//     is the server's admission limit).
//
//   microgpt-bench --target localhost:50051 --streams 64 --duration 10s
//   microgpt-bench --target localhost:50051 --streams 64 --pack_tokens
//   microgpt-bench --target localhost:50051 --streams 256 --duration 10s
//       --model names --prompt a --temperature 0.5 --max_tokens 0 --seed 1
//       --json
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "microgpt/v1/microgpt.pb.h"

ABSL_FLAG(std::string, target, "localhost:50051",
          "Generator address, host:port.");
ABSL_FLAG(int, streams, 64, "Concurrent Generate calls kept in flight.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "Length of the measured window.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1),
          "Load before the measured window, not reported.");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(30),
          "Deadline of each call (DEADLINE_EXCEEDED past it).");
ABSL_FLAG(int64_t, max_calls, 0,
          "Stop starting calls after this many (0: only the time bounds).");
ABSL_FLAG(int, channels, 1,
          "gRPC channels (HTTP/2 connections) the streams are spread over.");
ABSL_FLAG(std::string, model, "",
          "GenerateRequest.model (empty: the only one).");
ABSL_FLAG(std::string, prompt, "", "GenerateRequest.prompt.");
ABSL_FLAG(double, temperature, -1,
          "GenerateRequest.temperature; negative leaves it unset (0.5).");
ABSL_FLAG(int, max_tokens, 0, "GenerateRequest.max_tokens (0: block_size).");
ABSL_FLAG(int64_t, seed, -1,
          "Seed of the first call, call k uses seed + k; negative leaves it "
          "unset (the server picks).");
ABSL_FLAG(bool, pack_tokens, false,
          "GenerateRequest.pack_tokens: let the server put every token a "
          "sample has buffered into one message.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File holding a bearer token sent with every call, for a generator "
          "started with --require_auth.");
ABSL_FLAG(bool, json, false,
          "Print one JSON object instead of the text report.");

namespace microgpt {
namespace {

using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// Latencies in microseconds: 1 us bins below 10 ms, 100 us bins up to 10 s,
// then one overflow bin. The largest value is kept exactly.
class Histogram {
 public:
  Histogram() : counts_(kFine + kCoarse + 1, 0) {}

  void Add(double us) {
    const int64_t v = us < 0 ? 0 : static_cast<int64_t>(us);
    size_t bin;
    if (v < kFine) {
      bin = static_cast<size_t>(v);
    } else {
      bin = static_cast<size_t>(
          std::min<int64_t>(kFine + (v - kFine) / 100, kFine + kCoarse));
    }
    ++counts_[bin];
    ++total_;
    max_ = std::max(max_, us);
  }
  void Merge(const Histogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }
  uint64_t count() const { return total_; }
  double max() const { return max_; }
  // The upper edge of the bin holding the q-quantile, in microseconds.
  double Quantile(double q) const {
    if (total_ == 0) return 0;
    const uint64_t rank =
        std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * total_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const double edge =
            i < kFine ? i + 1.0 : kFine + (i - kFine + 1) * 100.0;
        return std::min(edge, max_);
      }
    }
    return max_;
  }

 private:
  static constexpr int64_t kFine = 10'000;    // 1 us bins up to 10 ms
  static constexpr int64_t kCoarse = 99'900;  // 100 us bins up to 10 s
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  double max_ = 0;
};

class Runner;

// One Generate call. Reactions of one call never run concurrently, so its
// own fields need no lock; they are merged into the Runner in OnDone.
class Call final : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  Call(Runner* runner, int slot, int64_t index);
  void Start();
  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  friend class Runner;
  Runner* const runner_;
  const int slot_;
  grpc::ClientContext context_;
  v1::GenerateRequest request_;
  v1::GenerateResponse response_;
  Clock::time_point start_, last_;
  bool got_first_ = false;
  int64_t tokens_in_window_ = 0;
  int64_t messages_in_window_ = 0;
  int64_t tokens_ = 0;
  std::vector<float> ttft_us_;  // 0 or 1 entries
  std::vector<float> gaps_us_;  // inter-token gaps ending in the window
};

class Runner {
 public:
  Runner(std::vector<std::unique_ptr<v1::Generator::Stub>> stubs,
         v1::GenerateRequest request, int64_t base_seed, int streams,
         absl::Duration warmup, absl::Duration duration,
         absl::Duration deadline, int64_t max_calls)
      : stubs_(std::move(stubs)),
        request_(std::move(request)),
        base_seed_(base_seed),
        streams_(streams),
        deadline_(absl::ToChronoMilliseconds(deadline)),
        max_calls_(max_calls),
        warmup_(absl::ToChronoNanoseconds(warmup)),
        duration_(absl::ToChronoNanoseconds(duration)) {}

  // Runs the load; returns once every call has ended.
  void Run() {
    t0_ = Clock::now();
    window_start_ = t0_ + warmup_;
    window_end_ = window_start_ + duration_;
    std::vector<Call*> first;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int slot = 0; slot < streams_; ++slot) {
        if (Call* call = NewCallLocked(slot)) first.push_back(call);
      }
    }
    for (Call* call : first) call->Start();  // outside mu_: may react inline
    std::unique_lock<std::mutex> lock(mu_);
    // Calls left after the window end by themselves (<= block_size tokens);
    // past their deadline plus a margin they are cancelled.
    const auto hard_stop = window_end_ + deadline_ + std::chrono::seconds(5);
    if (!done_.wait_until(lock, hard_stop,
                          [&] { return in_flight_.empty(); })) {
      for (Call* call : in_flight_) call->Cancel();
      done_.wait(lock, [&] { return in_flight_.empty(); });
    }
    finished_ = Clock::now();
  }

  bool InWindow(Clock::time_point t) const {
    return t >= window_start_ && t < window_end_;
  }
  Clock::time_point window_start() const { return window_start_; }
  std::chrono::milliseconds deadline() const { return deadline_; }
  v1::Generator::Stub* stub(int slot) const {
    return stubs_[slot % stubs_.size()].get();
  }
  const v1::GenerateRequest& request() const { return request_; }
  int64_t base_seed() const { return base_seed_; }
  // "Bearer <token>", or empty.
  const std::string& authorization() const { return authorization_; }
  void set_authorization(std::string value) {
    authorization_ = std::move(value);
  }

  void Finished(Call* call, const grpc::Status& status) {
    const auto now = Clock::now();
    Call* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      next = FinishedLocked(call, status, now);
    }
    if (next != nullptr) next->Start();
  }

  Call* FinishedLocked(Call* call, const grpc::Status& status,
                       Clock::time_point now) {
    in_flight_.erase(call);
    tokens_total_ += call->tokens_;
    tokens_in_window_ += call->tokens_in_window_;
    messages_in_window_ += call->messages_in_window_;
    for (float v : call->ttft_us_) ttft_.Add(v);
    for (float v : call->gaps_us_) itl_.Add(v);
    const bool counted = call->start_ >= window_start_;
    if (counted) {
      ++calls_in_window_;
      if (status.ok()) {
        ++completed_;
      } else {
        ++errors_[status.error_code()];
        if (last_error_.empty()) last_error_ = status.error_message();
      }
    } else if (!status.ok()) {
      ++warmup_errors_;
    }
    Call* next = now < window_end_ ? NewCallLocked(call->slot_) : nullptr;
    if (in_flight_.empty()) done_.notify_all();
    return next;
  }

  void Report(bool json) const {
    std::lock_guard<std::mutex> lock(mu_);
    // The window ends early when --max_calls ran out before its end.
    const double window_s =
        std::max(0.0, std::chrono::duration<double>(
                          std::min(window_end_, finished_) - window_start_)
                          .count());
    const double tokens_per_s =
        window_s > 0 ? tokens_in_window_ / window_s : 0.0;
    int64_t errors = 0;
    for (const auto& [code, n] : errors_) errors += n;
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    const double cpu_s =
        usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
        (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    const double wall_s =
        std::chrono::duration<double>(finished_ - t0_).count();
    auto ms = [](double us) { return us / 1000.0; };
    if (json) {
      std::string errs;
      for (const auto& [code, n] : errors_) {
        absl::StrAppend(
            &errs, errs.empty() ? "" : ", ", "\"",
            absl::StatusCodeToString(static_cast<absl::StatusCode>(code)),
            "\": ", n);
      }
      std::printf(
          "{\"streams\": %d, \"pack_tokens\": %s, \"window_s\": %.3f, "
          "\"tokens\": %lld, \"messages\": %lld, \"tokens_per_s\": %.1f, "
          "\"ttft_ms\": {\"p50\": %.3f, \"p99\": %.3f, "
          "\"max\": %.3f, \"n\": %llu}, \"itl_ms\": {\"p50\": %.3f, \"p99\": "
          "%.3f, \"max\": %.3f, \"n\": %llu}, \"calls\": %lld, \"completed\": "
          "%lld, \"errors\": {%s}, \"client_cpu_s\": %.3f, \"wall_s\": %.3f}\n",
          streams_, request_.pack_tokens() ? "true" : "false", window_s,
          static_cast<long long>(tokens_in_window_),
          static_cast<long long>(messages_in_window_), tokens_per_s,
          ms(ttft_.Quantile(0.5)), ms(ttft_.Quantile(0.99)), ms(ttft_.max()),
          static_cast<unsigned long long>(ttft_.count()),
          ms(itl_.Quantile(0.5)), ms(itl_.Quantile(0.99)), ms(itl_.max()),
          static_cast<unsigned long long>(itl_.count()),
          static_cast<long long>(calls_in_window_),
          static_cast<long long>(completed_), errs.c_str(), cpu_s, wall_s);
      return;
    }
    std::printf("streams             %d (over %zu channel(s))\n", streams_,
                stubs_.size());
    std::printf("window              %.2f s after %.2f s of warm-up\n",
                window_s, std::chrono::duration<double>(warmup_).count());
    std::printf("tokens              %lld in the window (%lld in all)\n",
                static_cast<long long>(tokens_in_window_),
                static_cast<long long>(tokens_total_));
    std::printf(
        "messages            %lld in the window (%.2f tokens per message%s)\n",
        static_cast<long long>(messages_in_window_),
        messages_in_window_ > 0
            ? static_cast<double>(tokens_in_window_) / messages_in_window_
            : 0.0,
        request_.pack_tokens() ? ", --pack_tokens" : "");
    std::printf("aggregate tokens/s  %.0f\n", tokens_per_s);
    std::printf(
        "time to first token p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%llu "
        "calls)\n",
        ms(ttft_.Quantile(0.5)), ms(ttft_.Quantile(0.99)), ms(ttft_.max()),
        static_cast<unsigned long long>(ttft_.count()));
    std::printf(
        "inter-token latency p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%llu "
        "gaps)\n",
        ms(itl_.Quantile(0.5)), ms(itl_.Quantile(0.99)), ms(itl_.max()),
        static_cast<unsigned long long>(itl_.count()));
    std::printf(
        "calls               %lld started in the window: %lld completed, %lld "
        "errors\n",
        static_cast<long long>(calls_in_window_),
        static_cast<long long>(completed_), static_cast<long long>(errors));
    for (const auto& [code, n] : errors_) {
      std::printf(
          "  %-19s %lld\n",
          absl::StatusCodeToString(static_cast<absl::StatusCode>(code)).c_str(),
          static_cast<long long>(n));
    }
    if (!last_error_.empty())
      std::printf("  first error: %s\n", last_error_.c_str());
    if (warmup_errors_ > 0) {
      std::printf("  (%lld errors during the warm-up)\n",
                  static_cast<long long>(warmup_errors_));
    }
    std::printf(
        "client cpu          %.2f s over %.2f s wall (%.0f%% of one core)\n",
        cpu_s, wall_s, 100.0 * cpu_s / wall_s);
  }

  int64_t completed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return completed_;
  }
  int64_t errors() const {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t errors = warmup_errors_;
    for (const auto& [code, n] : errors_) errors += n;
    return errors;
  }

 private:
  // The next call of `slot`, registered as in flight but not started yet;
  // nullptr once --max_calls calls were made.
  Call* NewCallLocked(int slot) {
    if (max_calls_ > 0 && started_ >= max_calls_) return nullptr;
    auto* call = new Call(this, slot, started_++);
    in_flight_.insert(call);
    return call;
  }

  const std::vector<std::unique_ptr<v1::Generator::Stub>> stubs_;
  const v1::GenerateRequest request_;
  const int64_t base_seed_;
  const int streams_;
  const std::chrono::milliseconds deadline_;
  const int64_t max_calls_;
  const Clock::duration warmup_, duration_;
  std::string authorization_;
  Clock::time_point t0_, window_start_, window_end_, finished_;

  mutable std::mutex mu_;
  std::condition_variable done_;
  std::set<Call*> in_flight_;
  int64_t started_ = 0;
  int64_t tokens_total_ = 0, tokens_in_window_ = 0, messages_in_window_ = 0;
  int64_t calls_in_window_ = 0, completed_ = 0, warmup_errors_ = 0;
  std::map<grpc::StatusCode, int64_t> errors_;
  std::string last_error_;
  Histogram ttft_, itl_;
};

Call::Call(Runner* runner, int slot, int64_t index)
    : runner_(runner), slot_(slot), request_(runner->request()) {
  if (runner->base_seed() >= 0) {
    request_.set_seed(static_cast<uint64_t>(runner->base_seed() + index));
  }
  context_.set_deadline(std::chrono::system_clock::now() + runner->deadline());
  if (!runner->authorization().empty()) {
    context_.AddMetadata("authorization", runner->authorization());
  }
  gaps_us_.reserve(64);
}

void Call::Start() {
  runner_->stub(slot_)->async()->Generate(&context_, &request_, this);
  StartRead(&response_);
  start_ = Clock::now();
  StartCall();
}

void Call::OnReadDone(bool ok) {
  if (!ok) return;  // end of stream; OnDone follows
  const auto now = Clock::now();
  // A packed message lists its tokens; an unpacked one is one token, unless
  // it is a CANCELLED end, which has none.
  const int tokens = response_.tokens_size() > 0 ? response_.tokens_size()
                     : response_.finish_reason() == v1::FINISH_REASON_CANCELLED
                         ? 0
                         : 1;
  tokens_ += tokens;
  if (runner_->InWindow(now)) {
    tokens_in_window_ += tokens;
    ++messages_in_window_;
    for (int i = 0; i < tokens; ++i) {
      if (got_first_ || i > 0) {
        gaps_us_.push_back(i == 0 ? static_cast<float>(Micros(now - last_))
                                  : 0.0f);
      }
    }
  }
  if (!got_first_) {
    got_first_ = true;
    if (start_ >= runner_->window_start()) {
      ttft_us_.push_back(static_cast<float>(Micros(now - start_)));
    }
  }
  last_ = now;
  StartRead(&response_);
}

void Call::OnDone(const grpc::Status& status) {
  runner_->Finished(this, status);
  delete this;
}

int Main() {
  const int streams = absl::GetFlag(FLAGS_streams);
  const int channels = absl::GetFlag(FLAGS_channels);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  if (streams < 1 || streams > 100000) {
    std::fprintf(stderr, "--streams must be in [1, 100000]\n");
    return 2;
  }
  if (channels < 1 || channels > streams) {
    std::fprintf(stderr, "--channels must be in [1, --streams]\n");
    return 2;
  }
  if (duration <= absl::ZeroDuration() ||
      absl::GetFlag(FLAGS_warmup) < absl::ZeroDuration() ||
      absl::GetFlag(FLAGS_deadline) <= absl::ZeroDuration()) {
    std::fprintf(stderr,
                 "--duration and --deadline must be > 0, --warmup >= 0\n");
    return 2;
  }
  std::vector<std::unique_ptr<v1::Generator::Stub>> stubs;
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    // A connection of its own per channel, not a shared subchannel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("microgpt.bench.channel", i);
    stubs.push_back(v1::Generator::NewStub(
        grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                  grpc::InsecureChannelCredentials(), args)));
  }
  std::string authorization;
  if (const std::string path = absl::GetFlag(FLAGS_auth_token_file);
      !path.empty()) {
    std::ifstream file(path);
    std::string token;
    if (!file || !std::getline(file, token) || token.empty()) {
      std::fprintf(stderr, "microgpt-bench: cannot read a token from %s\n",
                   path.c_str());
      return 2;
    }
    authorization = "Bearer " + token;
  }
  // Fail fast when the server is not there (or serves no such model).
  {
    grpc::ClientContext context;
    if (!authorization.empty())
      context.AddMetadata("authorization", authorization);
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    context.set_wait_for_ready(true);
    v1::ListModelsResponse models;
    const grpc::Status status =
        stubs[0]->ListModels(&context, v1::ListModelsRequest(), &models);
    if (!status.ok()) {
      std::fprintf(stderr, "microgpt-bench: ListModels on %s failed: %s\n",
                   absl::GetFlag(FLAGS_target).c_str(),
                   status.error_message().c_str());
      return 1;
    }
  }
  v1::GenerateRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_prompt(absl::GetFlag(FLAGS_prompt));
  request.set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  request.set_pack_tokens(absl::GetFlag(FLAGS_pack_tokens));
  if (absl::GetFlag(FLAGS_temperature) >= 0) {
    request.set_temperature(
        static_cast<float>(absl::GetFlag(FLAGS_temperature)));
  }
  Runner runner(std::move(stubs), request, absl::GetFlag(FLAGS_seed), streams,
                absl::GetFlag(FLAGS_warmup), duration,
                absl::GetFlag(FLAGS_deadline), absl::GetFlag(FLAGS_max_calls));
  runner.set_authorization(authorization);
  runner.Run();
  runner.Report(absl::GetFlag(FLAGS_json));
  // Non-zero when nothing got through.
  return runner.completed() == 0 && runner.errors() > 0 ? 1 : 0;
}

}  // namespace
}  // namespace microgpt

int main(int argc, char** argv) {
  // Debian's Abseil checks lock order on every Mutex gRPC creates and takes
  // (~5% of this client's CPU, which shares the machine with the server).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "gRPC load generator for microgpt.v1.Generator: N concurrent Generate "
      "streams for a duration; reports tokens/s, time to first token, "
      "inter-token latency and errors by code.\n"
      "  microgpt-bench --target HOST:PORT --streams 64 --duration 10s");
  absl::ParseCommandLine(argc, argv);
  return microgpt::Main();
}
