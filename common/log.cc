#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace microgpt {
namespace {

std::atomic<bool> json_logs{false};
absl::Mutex write_mutex(absl::kConstInit);

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

std::string JsonEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrCat("\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace

void SetJsonLogs(bool json) { json_logs = json; }

void Log(LogLevel level, absl::string_view message) {
  const std::string time = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                            absl::UTCTimeZone());
  std::string line;
  if (json_logs) {
    line = absl::StrCat("{\"ts\":\"", time, "\",\"level\":\"", LevelName(level),
                        "\",\"msg\":\"", JsonEscape(message), "\"}\n");
  } else {
    line = absl::StrCat(time, " ", LevelName(level), " ", message, "\n");
  }
  absl::MutexLock lock(&write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace microgpt
