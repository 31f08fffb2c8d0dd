// A small structured logger: one line per event with a timestamp and a level.
// Debian's Abseil has no absl/log. Lines go to stderr; SetJsonLogs(true)
// switches every line to a JSON object for log collectors.
//
//   LogInfo(absl::StrCat("published ", model, "/", version));
#ifndef MICROGPT_COMMON_LOG_H_
#define MICROGPT_COMMON_LOG_H_

#include "absl/strings/string_view.h"

namespace microgpt {

enum class LogLevel { kInfo, kWarning, kError };

void SetJsonLogs(bool json);
void Log(LogLevel level, absl::string_view message);

inline void LogInfo(absl::string_view message) {
  Log(LogLevel::kInfo, message);
}
inline void LogWarning(absl::string_view message) {
  Log(LogLevel::kWarning, message);
}
inline void LogError(absl::string_view message) {
  Log(LogLevel::kError, message);
}

}  // namespace microgpt

#endif  // MICROGPT_COMMON_LOG_H_
