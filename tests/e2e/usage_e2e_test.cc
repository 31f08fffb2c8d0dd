// The binaries' usage texts: --help lists the flags (not "No flags
// matched"), a subcommand's --help its own flags, unknown commands and stray
// arguments are named, and the default ports are the clients' defaults.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/child_process.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

struct Outcome {
  int code;
  std::string out;  // stdout and stderr together
};

// How --help lists a flag (the usage text above the list names them too).
std::string Listed(const std::string& flag) {
  return absl::StrCat("    ", flag, " (");
}

Outcome RunBinary(std::vector<std::string> argv) {
  const fs::path log =
      fs::path(::testing::TempDir()) /
      absl::StrCat(
          "usage-", getpid(), "-",
          ::testing::UnitTest::GetInstance()->current_test_info()->name(),
          ".log");
  ChildProcess child(argv, log.string());
  const int code = child.Wait(absl::Seconds(20)).value_or(-1);
  std::ifstream in(log);
  std::string text = child.output();
  text.append(std::istreambuf_iterator<char>(in), {});
  fs::remove(log);
  return {code, text};
}

TEST(UsageTest, HelpListsTheFlagsOfEveryBinary) {
  for (const auto& [binary, flag] :
       {std::pair<std::string, std::string>{MICROGPT_GENERATOR_BIN,
                                            "--checkpoint_root"},
        {MICROGPT_TRAINER_BIN, "--checkpoint_root"},
        {MICROGPT_CLI_BIN, "--generator"}}) {
    const Outcome help = RunBinary({binary, "--help"});
    EXPECT_THAT(help.out,
                AllOf(HasSubstr(flag), Not(HasSubstr("No flags matched"))))
        << binary;
  }
  const Outcome generator = RunBinary({MICROGPT_GENERATOR_BIN, "--help"});
  EXPECT_THAT(generator.out,
              HasSubstr("microgpt-generator --checkpoint_root DIR"));
  EXPECT_THAT(generator.out, HasSubstr("default: 50051"));
  const Outcome trainer = RunBinary({MICROGPT_TRAINER_BIN, "--helpfull"});
  EXPECT_THAT(trainer.out, HasSubstr("default: 50052"));
}

TEST(UsageTest, ASubcommandsHelpListsItsOwnFlags) {
  const Outcome generate = RunBinary({MICROGPT_CLI_BIN, "generate", "--help"});
  EXPECT_THAT(generate.out, AllOf(HasSubstr(Listed("--num_samples")),
                                  HasSubstr(Listed("--top_logprobs")),
                                  Not(HasSubstr(Listed("--data_file"))),
                                  Not(HasSubstr("No flags matched"))));
  const Outcome train = RunBinary({MICROGPT_CLI_BIN, "train", "--help"});
  EXPECT_THAT(train.out, AllOf(HasSubstr(Listed("--data_file")),
                               HasSubstr(Listed("--format")),
                               HasSubstr(Listed("--resume_if_exists")),
                               Not(HasSubstr(Listed("--num_samples")))));
  const Outcome trainer_train =
      RunBinary({MICROGPT_TRAINER_BIN, "train", "--help"});
  EXPECT_THAT(trainer_train.out, AllOf(HasSubstr(Listed("--val_fraction")),
                                       Not(HasSubstr(Listed("--data_root")))));
  const Outcome trainer_serve =
      RunBinary({MICROGPT_TRAINER_BIN, "serve", "--help"});
  EXPECT_THAT(trainer_serve.out,
              AllOf(HasSubstr(Listed("--data_root")),
                    Not(HasSubstr(Listed("--val_fraction")))));
}

TEST(UsageTest, EverySubcommandHasAUsageTextOfItsOwn) {
  // (binary, command, words of its own usage text)
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {MICROGPT_CLI_BIN, "train", "Ctrl-C stops\nfollowing"},
      {MICROGPT_CLI_BIN, "watch", "microgpt watch JOB_ID"},
      {MICROGPT_CLI_BIN, "jobs", "Lists the trainer's training jobs"},
      {MICROGPT_CLI_BIN, "cancel", "microgpt cancel JOB_ID"},
      {MICROGPT_CLI_BIN, "checkpoints", "microgpt checkpoints [--model NAME]"},
      {MICROGPT_CLI_BIN, "generate", "Streams samples"},
      {MICROGPT_CLI_BIN, "models", "Lists the models and versions"},
      {MICROGPT_CLI_BIN, "plot", "microgpt plot --csv"},
      {MICROGPT_TRAINER_BIN, "train", "Trains one model in this process"},
      {MICROGPT_TRAINER_BIN, "serve", "Serves the Trainer API"}};
  for (const auto& [binary, command, words] : cases) {
    const Outcome help = RunBinary({binary, command, "--help"});
    EXPECT_THAT(help.out,
                AllOf(HasSubstr(absl::StrCat("the ", command, " command.\n")),
                      HasSubstr(words)))
        << binary << " " << command;
    // Only its own synopsis: not the other commands'.
    for (const auto& [other_binary, other, unused] : cases) {
      if (other_binary != binary || other == command) continue;
      EXPECT_THAT(help.out,
                  Not(HasSubstr(absl::StrCat(" ", other, " command."))));
    }
  }
  const Outcome cli = RunBinary({MICROGPT_CLI_BIN, "--help"});
  EXPECT_THAT(cli.out, HasSubstr("`microgpt COMMAND --help` describes"));
}

TEST(UsageTest, UnknownCommandsAndStrayArgumentsAreNamed) {
  const Outcome trainer = RunBinary({MICROGPT_TRAINER_BIN, "bogus"});
  EXPECT_EQ(trainer.code, 2);
  EXPECT_THAT(trainer.out, HasSubstr("unknown command \"bogus\""));
  const Outcome cli = RunBinary({MICROGPT_CLI_BIN, "bogus"});
  EXPECT_NE(cli.code, 0);
  EXPECT_THAT(cli.out, HasSubstr("unknown command \"bogus\""));
  const Outcome generator = RunBinary({MICROGPT_GENERATOR_BIN, "serve"});
  EXPECT_EQ(generator.code, 2);
  EXPECT_THAT(generator.out, HasSubstr("unexpected argument \"serve\""));
}

}  // namespace
}  // namespace microgpt
