// microgpt: the command-line client of the microgpt services.
//
//   microgpt train --model names --data names.txt --steps 1000
//   microgpt generate --model names --num_samples 5
//   microgpt models
//
// Servers: --generator and --trainer, else $MICROGPT_GENERATOR and
// $MICROGPT_TRAINER, else localhost:50051 and localhost:50052.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/plot_command.h"
#include "common/dataset.h"
#include "common/usage.h"
#include "microgpt/client.h"
#include "trainer/training_flags.h"

ABSL_FLAG(
    std::string, generator, "",
    "Generator address (default $MICROGPT_GENERATOR or localhost:50051).");
ABSL_FLAG(std::string, trainer, "",
          "Trainer address (default $MICROGPT_TRAINER or localhost:50052).");
// train, generate, checkpoints
ABSL_FLAG(std::string, model, "", "Model name.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File holding the bearer token sent to the servers (else "
          "$MICROGPT_AUTH_TOKEN).");
ABSL_FLAG(bool, tls, false, "Connect with TLS (system root certificates).");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA certificates to verify the servers with (implies --tls).");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM client certificate, for servers that verify clients.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM key of --tls_cert_file.");
// train
ABSL_FLAG(std::string, data, "",
          "train: dataset file, relative to the trainer's --data_root.");
ABSL_FLAG(std::string, data_file, "",
          "train: local dataset file, sent with the request in its --format.");
ABSL_FLAG(bool, detach, false, "train: print the job id and return at once.");
// train, generate
ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt,
          "train: initialisation seed (default 42); generate: sampling seed "
          "(default random).");
// generate
ABSL_FLAG(int64_t, version, 0,
          "generate: model version (0: the latest); score: the same.");
ABSL_FLAG(std::string, prompt, "", "generate: text to continue.");
ABSL_FLAG(int32_t, max_tokens, 0,
          "generate: most tokens per sample (0: block_size).");
ABSL_FLAG(std::optional<float>, temperature, std::nullopt,
          "generate: softmax temperature (default 0.5; 0 = greedy).");
ABSL_FLAG(int32_t, top_k, 0,
          "generate: sample from the k likeliest tokens (0: all).");
ABSL_FLAG(std::optional<float>, top_p, std::nullopt,
          "generate: nucleus sampling threshold in (0, 1] (default 1).");
ABSL_FLAG(int32_t, num_samples, 1, "generate: independent samples (1..64).");
ABSL_FLAG(int32_t, top_logprobs, 0,
          "generate: alternatives reported per token (implies "
          "--show_logprobs); score: the same.");
ABSL_FLAG(std::vector<std::string>, stop, {},
          "generate: stop sequences, comma-separated (a sample ends when its "
          "text ends with one).");
ABSL_FLAG(bool, include_stop, false,
          "generate: print the stop sequence that ended a sample.");
ABSL_FLAG(int32_t, min_tokens, 0,
          "generate: tokens before BOS or a stop sequence can end a sample.");
ABSL_FLAG(int32_t, time_limit_ms, 0,
          "generate: end each sample after this many ms (0: no limit).");
ABSL_FLAG(float, min_p, 0,
          "generate: drop tokens less likely than min_p times the likeliest.");
ABSL_FLAG(std::optional<float>, repetition_penalty, std::nullopt,
          "generate: > 1 discourages the tokens already in the sample "
          "(default 1).");
ABSL_FLAG(float, presence_penalty, 0,
          "generate: subtracted from the logit of every token already in the "
          "sample.");
ABSL_FLAG(float, frequency_penalty, 0,
          "generate: times a token's count, subtracted from its logit.");
ABSL_FLAG(std::vector<std::string>, logit_bias, {},
          "generate: CHAR=BIAS pairs, comma-separated (BOS=BIAS for the end), "
          "added to the logits.");
ABSL_FLAG(std::string, regex, "",
          "generate: a PCRE2 pattern every sample's text must match as a "
          "whole.");
ABSL_FLAG(bool, prompt_logprobs, false,
          "generate: print the prompt's tokens' logprobs before each sample's "
          "(implies --show_logprobs).");
ABSL_FLAG(bool, show_usage, false,
          "generate: print each sample's finish reason, token counts and "
          "seed after it.");
// plot
ABSL_FLAG(std::string, csv, "",
          "plot: a loss curve, the loss.csv of a published version.");
ABSL_FLAG(std::string, out, "", "plot: the SVG file to write.");
ABSL_FLAG(std::string, title, "",
          "plot: chart title (default: MODEL/VERSION: training loss).");
ABSL_FLAG(bool, show_logprobs, false,
          "generate: print each token's log-probability after its sample; "
          "score: after its text.");

namespace microgpt {
namespace {

// The commands, with the training flags both train commands take
// (trainer/training_flags.h).
const std::vector<SubcommandUsage>& Commands() {
  static const auto* commands = new std::vector<SubcommandUsage>{
      {"train",
       absl::StrCat("--model NAME (--data PATH | --data_file FILE)\n",
                    kTrainingFlagsUsage, " --detach]"),
       "Starts a training job on the trainer and follows its progress\n"
       "until it ends (--detach: prints the job id and returns). Ctrl-C stops\n"
       "following; the job keeps running."},
      {"watch", "JOB_ID",
       "Follows a training job's progress and published versions until it "
       "ends."},
      {"jobs", "", "Lists the trainer's training jobs and their states."},
      {"cancel", "JOB_ID",
       "Cancels a training job after its current step, which it publishes\n"
       "(unless the job was started with --discard_on_cancel)."},
      {"checkpoints", "[--model NAME]",
       "Lists the versions published in the trainer's checkpoint root."},
      {"generate",
       "[--model NAME --version N --prompt TEXT --max_tokens N\n"
       "      --temperature X --top_k N --top_p X --min_p X --seed N\n"
       "      --num_samples N --stop S,... --include_stop --min_tokens N\n"
       "      --time_limit_ms N --repetition_penalty X --presence_penalty X\n"
       "      --frequency_penalty X --logit_bias C=B,... --regex PATTERN\n"
       "      --top_logprobs N --prompt_logprobs --show_logprobs --show_usage]",
       "Streams samples from a model the generator serves, printed in\n"
       "sample order."},
      {"score", "[--model NAME --version N --top_logprobs N] TEXT...",
       "Prints the log-likelihood the model gives each text (Score): the\n"
       "sum and mean of its tokens' logprobs and the perplexity, one line per\n"
       "text (--show_logprobs: each token's logprob too)."},
      {"models", "",
       "Lists the models and versions the generator serves, with their "
       "sizes."},
      {"plot",
       "--csv CKPT/MODEL/VERSION/loss.csv --out curve.svg [--title TEXT]",
       "Draws a version's loss curve as SVG (no server)."},
  };
  return *commands;
}

constexpr absl::string_view kServersUsage =
    "Servers: --generator / --trainer, else $MICROGPT_GENERATOR /\n"
    "$MICROGPT_TRAINER, else localhost:50051 / localhost:50052; a token with\n"
    "--auth_token_file or $MICROGPT_AUTH_TOKEN, TLS with --tls, "
    "--tls_ca_file,\n"
    "--tls_cert_file and --tls_key_file (microgpt --help lists them).";

const std::string& Usage() {
  static const std::string* usage = new std::string(
      ProgramUsage("microgpt", "the microgpt command-line client.", Commands(),
                   kServersUsage));
  return *usage;
}

std::string Address(const std::string& flag, const char* env,
                    const char* fallback) {
  if (!flag.empty()) return flag;
  const char* value = std::getenv(env);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// The contents of `path`; exits with a usage error when unreadable.
std::string ReadFlagFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "error: %s: cannot read %s\n", flag, path.c_str());
    std::exit(2);
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Token (--auth_token_file, else $MICROGPT_AUTH_TOKEN) and TLS flags.
ClientOptions SecurityOptions() {
  ClientOptions options;
  const std::string token_file = absl::GetFlag(FLAGS_auth_token_file);
  if (!token_file.empty()) {
    options.auth_token = std::string(absl::StripAsciiWhitespace(
        ReadFlagFile(token_file, "--auth_token_file")));
  } else if (const char* env = std::getenv("MICROGPT_AUTH_TOKEN")) {
    options.auth_token = std::string(absl::StripAsciiWhitespace(env));
  }
  const std::string ca = absl::GetFlag(FLAGS_tls_ca_file);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert_file);
  const std::string key = absl::GetFlag(FLAGS_tls_key_file);
  options.use_tls = absl::GetFlag(FLAGS_tls) || !ca.empty() || !cert.empty();
  if (!ca.empty()) {
    options.tls_root_certs_pem = ReadFlagFile(ca, "--tls_ca_file");
  }
  if (!cert.empty()) {
    options.tls_client_cert_pem = ReadFlagFile(cert, "--tls_cert_file");
    options.tls_client_key_pem = ReadFlagFile(key, "--tls_key_file");
  }
  return options;
}

TrainerClient Trainer() {
  return TrainerClient(Address(absl::GetFlag(FLAGS_trainer), "MICROGPT_TRAINER",
                               "localhost:50052"),
                       SecurityOptions());
}

GeneratorClient Generator() {
  return GeneratorClient(Address(absl::GetFlag(FLAGS_generator),
                                 "MICROGPT_GENERATOR", "localhost:50051"),
                         SecurityOptions());
}

absl::StatusOr<v1::StartTrainingRequest> TrainRequestFromFlags() {
  v1::StartTrainingRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  const std::string data = absl::GetFlag(FLAGS_data);
  const std::string data_file = absl::GetFlag(FLAGS_data_file);
  if (data.empty() == data_file.empty()) {
    return absl::InvalidArgumentError(
        "give exactly one of --data and --data_file");
  }
  if (absl::Status status = TrainingRequestFromFlags(&request); !status.ok()) {
    return status;
  }
  if (auto seed = absl::GetFlag(FLAGS_seed)) request.set_seed(*seed);
  if (!data.empty()) {
    request.set_dataset_path(data);
    return request;
  }
  // The trainer's own parsing (strict UTF-8; documents: stripped lines, no
  // empty ones): a file it would refuse is refused here, naming the line and
  // byte, before anything is sent.
  const DatasetFormat format = request.format() == v1::DATASET_FORMAT_TEXT
                                   ? DatasetFormat::kText
                                   : DatasetFormat::kDocuments;
  absl::StatusOr<Dataset> dataset = LoadDataset(data_file, format);
  if (!dataset.ok()) {
    return absl::Status(
        dataset.status().code(),
        absl::StrCat("--data_file ", dataset.status().message()));
  }
  v1::InlineDataset* inline_dataset = request.mutable_inline_dataset();
  inline_dataset->set_text(std::move(dataset->text));
  for (std::string& d : dataset->documents) {
    inline_dataset->add_documents(std::move(d));
  }
  return request;
}

absl::StatusOr<v1::GenerateRequest> GenerateRequestFromFlags() {
  v1::GenerateRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_version(absl::GetFlag(FLAGS_version));
  request.set_prompt(absl::GetFlag(FLAGS_prompt));
  request.set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  if (auto t = absl::GetFlag(FLAGS_temperature)) request.set_temperature(*t);
  request.set_top_k(absl::GetFlag(FLAGS_top_k));
  if (auto p = absl::GetFlag(FLAGS_top_p)) request.set_top_p(*p);
  if (auto seed = absl::GetFlag(FLAGS_seed)) request.set_seed(*seed);
  request.set_num_samples(absl::GetFlag(FLAGS_num_samples));
  request.set_top_logprobs(absl::GetFlag(FLAGS_top_logprobs));
  for (const std::string& stop : absl::GetFlag(FLAGS_stop)) {
    request.add_stop(stop);
  }
  request.set_include_stop(absl::GetFlag(FLAGS_include_stop));
  request.set_regex(absl::GetFlag(FLAGS_regex));
  request.set_prompt_logprobs(absl::GetFlag(FLAGS_prompt_logprobs));
  request.set_min_tokens(absl::GetFlag(FLAGS_min_tokens));
  request.set_time_limit_ms(absl::GetFlag(FLAGS_time_limit_ms));
  request.set_min_p(absl::GetFlag(FLAGS_min_p));
  if (auto p = absl::GetFlag(FLAGS_repetition_penalty)) {
    request.set_repetition_penalty(*p);
  }
  request.set_presence_penalty(absl::GetFlag(FLAGS_presence_penalty));
  request.set_frequency_penalty(absl::GetFlag(FLAGS_frequency_penalty));
  for (const std::string& pair : absl::GetFlag(FLAGS_logit_bias)) {
    const size_t eq = pair.rfind('=');
    float bias;
    if (eq == std::string::npos ||
        !absl::SimpleAtof(pair.substr(eq + 1), &bias)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--logit_bias: \"", pair,
                       "\" is not CHAR=BIAS (BOS=BIAS for the end)"));
    }
    const std::string key = pair.substr(0, eq);
    (*request.mutable_logit_bias())[key == "BOS" ? "" : key] = bias;
  }
  // Fewer messages for the same tokens; GenerateCommand reads packed and
  // unpacked messages alike (a server that predates packing sends the
  // latter).
  request.set_pack_tokens(true);
  return request;
}

absl::Status Dispatch(const std::string& command,
                      const std::vector<std::string>& args) {
  const bool tty = isatty(STDOUT_FILENO) != 0;
  // A wrong count of positional arguments: the command's synopsis.
  auto expect_args = [&](size_t n) -> absl::Status {
    if (args.size() == n) return absl::OkStatus();
    const SubcommandUsage* usage = FindSubcommand(Commands(), command);
    return absl::InvalidArgumentError(
        absl::StrCat("usage: microgpt ", command, " ",
                     usage == nullptr ? "" : usage->synopsis));
  };
  if (command == "train") {
    if (absl::Status s = expect_args(0); !s.ok()) {
      return s;
    }
    absl::StatusOr<v1::StartTrainingRequest> request = TrainRequestFromFlags();
    if (!request.ok()) return request.status();
    TrainerClient trainer = Trainer();
    return TrainCommand(trainer, *request, absl::GetFlag(FLAGS_detach), tty);
  }
  if (command == "watch" || command == "cancel") {
    if (absl::Status s = expect_args(1); !s.ok()) return s;
    TrainerClient trainer = Trainer();
    return command == "watch" ? WatchCommand(trainer, args[0], tty)
                              : CancelCommand(trainer, args[0]);
  }
  if (command == "jobs") {
    if (absl::Status s = expect_args(0); !s.ok()) return s;
    TrainerClient trainer = Trainer();
    return JobsCommand(trainer);
  }
  if (command == "checkpoints") {
    if (absl::Status s = expect_args(0); !s.ok()) return s;
    TrainerClient trainer = Trainer();
    return CheckpointsCommand(trainer, absl::GetFlag(FLAGS_model));
  }
  if (command == "generate") {
    if (absl::Status s = expect_args(0); !s.ok()) {
      return s;
    }
    absl::StatusOr<v1::GenerateRequest> request = GenerateRequestFromFlags();
    if (!request.ok()) return request.status();
    GeneratorClient generator = Generator();
    GenerateOutput output;
    output.logprobs = absl::GetFlag(FLAGS_show_logprobs) ||
                      absl::GetFlag(FLAGS_top_logprobs) > 0 ||
                      absl::GetFlag(FLAGS_prompt_logprobs);
    output.usage = absl::GetFlag(FLAGS_show_usage);
    return GenerateCommand(generator, *request, output);
  }
  if (command == "plot") {
    if (absl::Status s = expect_args(0); !s.ok()) {
      return s;
    }
    return PlotCommand(absl::GetFlag(FLAGS_csv), absl::GetFlag(FLAGS_out),
                       absl::GetFlag(FLAGS_title));
  }
  if (command == "score") {
    if (args.empty()) {
      return absl::InvalidArgumentError(
          "usage: microgpt score [--model NAME --version N --top_logprobs N] "
          "TEXT...");
    }
    v1::ScoreRequest request;
    request.set_model(absl::GetFlag(FLAGS_model));
    request.set_version(absl::GetFlag(FLAGS_version));
    request.set_top_logprobs(absl::GetFlag(FLAGS_top_logprobs));
    for (const std::string& text : args) request.add_texts(text);
    GeneratorClient generator = Generator();
    return ScoreCommand(generator, request,
                        absl::GetFlag(FLAGS_show_logprobs) ||
                            absl::GetFlag(FLAGS_top_logprobs) > 0);
  }
  if (command == "models") {
    if (absl::Status s = expect_args(0); !s.ok()) return s;
    GeneratorClient generator = Generator();
    return ModelsCommand(generator);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command \"", command, "\"; see microgpt --help"));
}

int Main(int argc, char** argv) {
  const SubcommandUsage* known =
      argc < 2 ? nullptr : FindSubcommand(Commands(), argv[1]);
  InitUsage(known == nullptr
                ? Usage()
                : SubcommandUsageText("microgpt", *known, kServersUsage));
  if (argc < 2 || argv[1][0] == '-') {
    absl::ParseCommandLine(argc, argv);  // --help and friends
    std::fprintf(stderr, "usage: %s", Usage().c_str());
    return 2;
  }
  const std::string command = argv[1];
  std::vector<char*> flag_args = {argv[0]};
  flag_args.insert(flag_args.end(), argv + 2, argv + argc);
  // `microgpt generate --help` lists generate's flags.
  std::string help;
  ScopeHelpToCommand(command, &flag_args, &help);
  const std::vector<char*> positional = absl::ParseCommandLine(
      static_cast<int>(flag_args.size()), flag_args.data());
  const std::vector<std::string> args(positional.begin() + 1, positional.end());
  const absl::Status status = Dispatch(command, args);
  if (!status.ok()) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s: %s\n",
                 absl::StatusCodeToString(status.code()).c_str(),
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace microgpt

int main(int argc, char** argv) { return microgpt::Main(argc, argv); }
