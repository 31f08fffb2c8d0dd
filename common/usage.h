// Usage texts for the binaries. Abseil's --help lists the flags of a file
// named after the binary, of which the project has none (each binary is a
// main.cc over libraries), so by default it prints "No flags matched";
// InitUsage makes it list every flag the project defines. Subcommands
// (`microgpt generate --help`, `microgpt-trainer train --help`) list the
// flags whose help text starts with "COMMAND:", after a usage text of the
// command's own (SubcommandUsageText).
//
//   InitUsage(kUsage);
//   std::vector<char*> args = ...;  // the command's arguments
//   ScopeHelpToCommand("generate", &args, &storage);
#ifndef MICROGPT_COMMON_USAGE_H_
#define MICROGPT_COMMON_USAGE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace microgpt {

// Sets the program's usage message and has --help and --helpshort list the
// flags of the project's own files (not Abseil's).
void InitUsage(absl::string_view usage);

// Replaces each --help (or -help) in `args` with --help=COMMAND: so that
// Abseil lists the command's flags; `storage` keeps the new argument alive.
void ScopeHelpToCommand(absl::string_view command, std::vector<char*>* args,
                        std::string* storage);

// One subcommand of a binary with subcommands (microgpt, microgpt-trainer).
struct SubcommandUsage {
  std::string name;      // "generate"
  std::string synopsis;  // the arguments after the name; lines after the
                         // first indented by six spaces
  std::string summary;   // what it does: sentences, lines of at most 80
                         // characters
};

// The binary's usage: "ABOUT\n\n" and each command's synopsis, then
// `footer`. Abseil prints it after "PROGRAM: ".
std::string ProgramUsage(absl::string_view program, absl::string_view about,
                         const std::vector<SubcommandUsage>& commands,
                         absl::string_view footer);

// One command's usage, for `PROGRAM COMMAND --help`: its synopsis, its
// summary and `footer`; Abseil lists the command's flags after it. Null
// when `name` is none of `commands`.
const SubcommandUsage* FindSubcommand(
    const std::vector<SubcommandUsage>& commands, absl::string_view name);
std::string SubcommandUsageText(absl::string_view program,
                                const SubcommandUsage& command,
                                absl::string_view footer);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_USAGE_H_
