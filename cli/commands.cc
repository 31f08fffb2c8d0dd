#include "cli/commands.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "cli/progress_reporter.h"

namespace microgpt {
namespace {

// "running", "max_tokens": the enum value's name without its prefix, as the
// CLI has always printed them.
std::string StateName(v1::JobState state) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::JobState_Name(state), "JOB_STATE_"));
}

std::string FinishReasonName(v1::FinishReason reason) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::FinishReason_Name(reason), "FINISH_REASON_"));
}

std::string TokenText(absl::string_view text) {
  return text.empty() ? "<bos>" : absl::StrCat("'", text, "'");
}

void PrintJob(const v1::TrainingJob& job) {
  std::string line =
      absl::StrFormat("%s  %-16s %-9s step %d/%d  loss %.4f  version %d",
                      job.job_id(), job.model(), StateName(job.state()),
                      job.progress().step(), job.progress().total_steps(),
                      job.progress().loss(), job.latest_version());
  if (!job.error().empty()) absl::StrAppend(&line, "  error: ", job.error());
  std::printf("%s\n", line.c_str());
}

// A finished job as the command's outcome.
absl::Status JobOutcome(const v1::TrainingJob& job) {
  switch (job.state()) {
    case v1::JOB_STATE_SUCCEEDED:
      return absl::OkStatus();
    case v1::JOB_STATE_CANCELLED:
      return absl::CancelledError(absl::StrCat("job ", job.job_id(),
                                               " was cancelled at step ",
                                               job.progress().step()));
    case v1::JOB_STATE_FAILED:
      return absl::AbortedError(
          absl::StrCat("job ", job.job_id(), " failed: ", job.error()));
    default:
      return absl::UnknownError(absl::StrCat(
          "job ", job.job_id(), " is in state ", StateName(job.state())));
  }
}

// One sample's tokens, collected for printing, and its last message (finish
// reason, model and version).
struct Sample {
  std::string text;
  std::vector<v1::GeneratedToken> prompt;  // with prompt_logprobs
  std::vector<v1::GeneratedToken> tokens;
  v1::GenerateResponse last;
};

// "  12 e          -1.2345   top: e -1.2345 a -2.0000"
void PrintTokenLogprob(const v1::GeneratedToken& token) {
  std::string line = absl::StrFormat("  %3d %-7s %9.4f", token.position(),
                                     TokenText(token.text()), token.logprob());
  if (token.top_logprobs_size() > 0) {
    absl::StrAppend(&line, "   top:");
    for (const v1::TokenLogprob& alt : token.top_logprobs()) {
      absl::StrAppendFormat(&line, " %s %.4f", TokenText(alt.text()),
                            alt.logprob());
    }
  }
  std::printf("%s\n", line.c_str());
}

void PrintLogprobs(const Sample& sample) {
  if (!sample.prompt.empty()) std::printf("  prompt:\n");
  for (const v1::GeneratedToken& token : sample.prompt) {
    PrintTokenLogprob(token);
  }
  if (!sample.prompt.empty()) std::printf("  generated:\n");
  for (const v1::GeneratedToken& token : sample.tokens) {
    PrintTokenLogprob(token);
  }
  if (!sample.tokens.empty()) {
    const v1::GenerateResponse& last = sample.last;
    std::printf("  (finish: %s, model %s version %lld)\n",
                FinishReasonName(last.finish_reason()).c_str(),
                last.model().c_str(), static_cast<long long>(last.version()));
  }
}

}  // namespace

absl::Status TrainCommand(TrainerClient& trainer,
                          const v1::StartTrainingRequest& request, bool detach,
                          bool tty) {
  absl::StatusOr<std::string> job_id = trainer.Start(request);
  if (!job_id.ok()) return job_id.status();
  std::printf("started job %s (model %s)\n", job_id->c_str(),
              request.model().c_str());
  std::fflush(stdout);
  if (detach) return absl::OkStatus();
  return WatchCommand(trainer, *job_id, tty);
}

namespace {

// What Ctrl-C during a watch prints: the job is the trainer's and goes on.
// Written by the signal handler, so prepared before and kept in a buffer.
char interrupt_message[512];
size_t interrupt_message_size = 0;

void OnInterrupt(int) {
  // Only async-signal-safe calls here.
  ssize_t ignored =
      write(STDERR_FILENO, interrupt_message, interrupt_message_size);
  (void)ignored;
  _exit(130);
}

// Installs OnInterrupt for SIGINT while it lives, with the message for
// `job_id`.
class InterruptNotice {
 public:
  explicit InterruptNotice(absl::string_view job_id) {
    const std::string message = absl::StrCat(
        "\ninterrupted: job ", job_id,
        " keeps running on the trainer; follow it with `microgpt watch ",
        job_id, "`, stop it with `microgpt cancel ", job_id, "`\n");
    interrupt_message_size =
        std::min(message.size(), sizeof(interrupt_message));
    std::memcpy(interrupt_message, message.data(), interrupt_message_size);
    struct sigaction action = {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_);
  }
  ~InterruptNotice() { sigaction(SIGINT, &previous_, nullptr); }
  InterruptNotice(const InterruptNotice&) = delete;
  InterruptNotice& operator=(const InterruptNotice&) = delete;

 private:
  struct sigaction previous_ = {};
};

}  // namespace

absl::Status WatchCommand(TrainerClient& trainer, absl::string_view job_id,
                          bool tty) {
  const InterruptNotice notice(job_id);
  ProgressReporter reporter(stdout, tty);
  bool finished = false;
  v1::TrainingJob final_job;
  absl::Status status =
      trainer.Watch(job_id, [&](const v1::TrainingEvent& event) {
        if (event.has_progress()) {
          reporter.OnProgress(event.progress());
        } else if (event.has_checkpoint_published()) {
          reporter.OnCheckpoint(event.checkpoint_published());
        } else if (event.has_finished()) {
          finished = true;
          final_job = event.finished();
        }
        return true;
      });
  reporter.Done();
  if (!status.ok()) return status;
  if (!finished) {
    return absl::UnavailableError("the watch ended before the job did");
  }
  if (final_job.state() == v1::JOB_STATE_SUCCEEDED) {
    std::printf("job %s succeeded: %s version %lld, trained for %.2f s\n",
                final_job.job_id().c_str(), final_job.model().c_str(),
                static_cast<long long>(final_job.latest_version()),
                final_job.progress().elapsed_seconds());
  }
  return JobOutcome(final_job);
}

absl::Status JobsCommand(TrainerClient& trainer) {
  absl::StatusOr<std::vector<v1::TrainingJob>> jobs = trainer.List();
  if (!jobs.ok()) return jobs.status();
  if (jobs->empty()) std::printf("no training jobs\n");
  for (const v1::TrainingJob& job : *jobs) PrintJob(job);
  return absl::OkStatus();
}

absl::Status CancelCommand(TrainerClient& trainer, absl::string_view job_id) {
  absl::StatusOr<v1::TrainingJob> job = trainer.Cancel(job_id);
  if (!job.ok()) return job.status();
  PrintJob(*job);
  return absl::OkStatus();
}

absl::Status CheckpointsCommand(TrainerClient& trainer,
                                absl::string_view model) {
  absl::StatusOr<std::vector<v1::CheckpointInfo>> checkpoints =
      trainer.ListCheckpoints(model);
  if (!checkpoints.ok()) return checkpoints.status();
  if (checkpoints->empty()) std::printf("no checkpoints\n");
  for (const v1::CheckpointInfo& c : *checkpoints) {
    std::string line =
        absl::StrFormat("%-16s version %-8d step %-8d loss %.4f  %s", c.model(),
                        c.version(), c.step(), c.loss(), c.path());
    if (c.has_val_loss())
      absl::StrAppendFormat(&line, "  val %.4f", c.val_loss());
    if (c.format() == v1::DATASET_FORMAT_TEXT) absl::StrAppend(&line, "  text");
    std::printf("%s\n", line.c_str());
  }
  return absl::OkStatus();
}

namespace {

// "[0] finish stop_sequence "\n\n" | prompt 5 | generated 12 | seed 42"
void PrintUsage(int index, const v1::GenerateResponse& last) {
  std::string reason = absl::AsciiStrToLower(absl::StripPrefix(
      v1::FinishReason_Name(last.finish_reason()), "FINISH_REASON_"));
  if (!last.stop_sequence().empty()) {
    absl::StrAppend(&reason, " \"", absl::CEscape(last.stop_sequence()), "\"");
  }
  std::printf("[%d] finish %s | prompt %d | generated %d | seed %llu\n", index,
              reason.c_str(), last.prompt_tokens(), last.generated_tokens(),
              static_cast<unsigned long long>(last.seed()));
}

}  // namespace

absl::Status GenerateCommand(GeneratorClient& generator,
                             const v1::GenerateRequest& request,
                             const GenerateOutput& output) {
  const bool show_logprobs = output.logprobs;
  const bool streaming = request.num_samples() <= 1;
  std::map<int, Sample> samples;
  // Several samples print whole, in index order whatever order they finish
  // in, so that a seeded command prints the same output every time.
  int next_to_print = 0;
  auto print = [&](int index) {
    const Sample& sample = samples[index];
    if (show_logprobs) std::printf("[%d] ", index);
    std::printf("%s%s\n", request.prompt().c_str(), sample.text.c_str());
    if (show_logprobs) PrintLogprobs(sample);
    if (output.usage) PrintUsage(index, sample.last);
  };
  absl::Status status =
      generator.Generate(request, [&](const v1::GenerateResponse& message) {
        if (streaming && samples.empty()) {
          std::printf(
              "%s", request.prompt().c_str());  // once the request is accepted
        }
        Sample& sample = samples[message.sample_index()];
        // The text of all the message's tokens, packed or not.
        sample.text += message.text();
        if (show_logprobs) {
          sample.prompt.insert(sample.prompt.end(),
                               message.prompt_logprobs().begin(),
                               message.prompt_logprobs().end());
          for (v1::GeneratedToken& token : TokensOf(message)) {
            sample.tokens.push_back(std::move(token));
          }
        }
        if (streaming) {
          std::printf("%s", message.text().c_str());
          std::fflush(stdout);
        }
        if (message.finish_reason() == v1::FINISH_REASON_UNSPECIFIED) {
          return true;
        }
        sample.last = message;
        if (message.finish_reason() == v1::FINISH_REASON_CANCELLED) {
          std::fprintf(stderr, "%ssample %d was cancelled by the server\n",
                       streaming ? "\n" : "", message.sample_index());
        }
        if (streaming) {
          std::printf("\n");
          if (show_logprobs) PrintLogprobs(sample);
          if (output.usage) PrintUsage(message.sample_index(), message);
        } else {
          while (samples.count(next_to_print) > 0 &&
                 samples[next_to_print].last.finish_reason() !=
                     v1::FINISH_REASON_UNSPECIFIED) {
            print(next_to_print++);
          }
        }
        std::fflush(stdout);
        return true;
      });
  if (!status.ok() && streaming && !samples.empty()) std::printf("\n");
  // A call that failed part-way: the samples that did finish, still in order.
  for (const auto& [index, sample] : samples) {
    if (!streaming && index >= next_to_print &&
        sample.last.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      print(index);
    }
  }
  return status;
}

absl::Status ScoreCommand(GeneratorClient& generator,
                          const v1::ScoreRequest& request, bool show_logprobs) {
  absl::StatusOr<v1::ScoreResponse> response = generator.Score(request);
  if (!response.ok()) return response.status();
  for (int i = 0; i < response->scores_size(); ++i) {
    const v1::TextScore& score = response->scores(i);
    std::printf("sum %.4f | mean %.4f | perplexity %.2f | %d tokens | %s\n",
                score.sum_logprob(), score.mean_logprob(), score.perplexity(),
                score.tokens_size(), request.texts(i).c_str());
    if (!show_logprobs) continue;
    for (const v1::GeneratedToken& token : score.tokens()) {
      PrintTokenLogprob(token);
    }
  }
  return absl::OkStatus();
}

absl::Status ModelsCommand(GeneratorClient& generator) {
  absl::StatusOr<v1::ListModelsResponse> models = generator.ListModels();
  if (!models.ok()) return models.status();
  if (models->models().empty()) std::printf("no models loaded\n");
  // One line per version (newest first), so that `grep MODEL.*VERSION` works;
  // the newest line also shows the model's sizes.
  for (const v1::ModelInfo& model : models->models()) {
    const v1::ModelConfig& c = model.config();
    bool newest = true;
    for (const v1::ModelVersion& v : model.versions()) {
      std::string line =
          absl::StrFormat("%-16s version %-8d step %-8d loss %.4f",
                          model.name(), v.version(), v.step(), v.loss());
      if (v.has_val_loss())
        absl::StrAppendFormat(&line, "  val %.4f", v.val_loss());
      if (v.format() == v1::DATASET_FORMAT_TEXT)
        absl::StrAppend(&line, "  text");
      if (newest) {
        absl::StrAppendFormat(
            &line,
            "  (n_embd %d, n_head %d, n_layer %d, block_size %d, vocab %d)",
            c.n_embd(), c.n_head(), c.n_layer(), c.block_size(),
            c.vocab_size());
        newest = false;
      }
      std::printf("%s\n", line.c_str());
    }
  }
  return absl::OkStatus();
}

}  // namespace microgpt
