#include "common/usage.h"

#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace microgpt {
namespace {

bool IsProjectFile(absl::string_view path) {
  return !absl::StrContains(path, "absl/");
}

// The synopsis after the command's name.
std::string Synopsis(const SubcommandUsage& command) {
  return command.synopsis.empty() ? "" : absl::StrCat(" ", command.synopsis);
}

}  // namespace

void InitUsage(absl::string_view usage) {
  absl::SetProgramUsageMessage(usage);
  absl::FlagsUsageConfig config;
  config.contains_helpshort_flags = IsProjectFile;
  config.contains_help_flags = IsProjectFile;
  absl::SetFlagsUsageConfig(config);
}

void ScopeHelpToCommand(absl::string_view command, std::vector<char*>* args,
                        std::string* storage) {
  *storage = absl::StrCat("--help=", command, ":");
  for (char*& arg : *args) {
    const absl::string_view value(arg);
    if (value == "--help" || value == "-help") arg = storage->data();
  }
}

std::string ProgramUsage(absl::string_view program, absl::string_view about,
                         const std::vector<SubcommandUsage>& commands,
                         absl::string_view footer) {
  std::string usage = absl::StrCat(about, "\n\n");
  for (const SubcommandUsage& command : commands) {
    absl::StrAppend(&usage, "  ", program, " ", command.name, Synopsis(command),
                    "\n");
  }
  absl::StrAppend(&usage, "\n", footer, "\n", "`", program,
                  " COMMAND --help` describes a command.\n");
  return usage;
}

const SubcommandUsage* FindSubcommand(
    const std::vector<SubcommandUsage>& commands, absl::string_view name) {
  for (const SubcommandUsage& command : commands) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

std::string SubcommandUsageText(absl::string_view program,
                                const SubcommandUsage& command,
                                absl::string_view footer) {
  // Abseil prints "PROGRAM: " before it.
  return absl::StrCat("the ", command.name, " command.\n\n  ", program, " ",
                      command.name, Synopsis(command), "\n\n", command.summary,
                      "\n\n", footer, "\n");
}

}  // namespace microgpt
