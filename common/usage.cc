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

}  // namespace microgpt
