// The subcommands of the `microgpt` command-line tool, over microgpt_client.
// Each prints its results to stdout and returns the status to report.
#ifndef MICROGPT_CLI_COMMANDS_H_
#define MICROGPT_CLI_COMMANDS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "microgpt/client.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

// Starts a job and, unless `detach`, watches it to its end (see WatchJob).
absl::Status TrainCommand(TrainerClient& trainer,
                          const v1::StartTrainingRequest& request, bool detach,
                          bool tty);
// Shows a job's progress and checkpoints until it ends; an error unless it
// succeeded (ABORTED for a failed job, CANCELLED for a cancelled one).
absl::Status WatchCommand(TrainerClient& trainer, absl::string_view job_id,
                          bool tty);
absl::Status JobsCommand(TrainerClient& trainer);
absl::Status CancelCommand(TrainerClient& trainer, absl::string_view job_id);
absl::Status CheckpointsCommand(TrainerClient& trainer,
                                absl::string_view model);

// What GenerateCommand prints after each sample's text.
struct GenerateOutput {
  bool logprobs = false;  // each token's log-probability and alternatives
  bool usage = false;     // finish reason, prompt and generated tokens, seed
};

// Prints generated text as it arrives: one sample streams token by token;
// several are printed one per line, in index order, as each finishes.
absl::Status GenerateCommand(GeneratorClient& generator,
                             const v1::GenerateRequest& request,
                             const GenerateOutput& output);
absl::Status ModelsCommand(GeneratorClient& generator);
// One line per text: "sum -8.1234 | mean -1.6247 | perplexity 5.08 | 5 tokens
// | TEXT", then with `show_logprobs` each token's logprob.
absl::Status ScoreCommand(GeneratorClient& generator,
                          const v1::ScoreRequest& request, bool show_logprobs);

}  // namespace microgpt

#endif  // MICROGPT_CLI_COMMANDS_H_
