// Test helpers for Prometheus endpoints: a plain-socket HTTP GET of /metrics
// and a lookup of one sample in the text exposition format.
#ifndef MICROGPT_TESTS_METRICS_SCRAPE_H_
#define MICROGPT_TESTS_METRICS_SCRAPE_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace microgpt {
namespace testing {

// The body of GET http://127.0.0.1:port/metrics; empty on any failure.
inline std::string ScrapeMetrics(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    ::close(fd);
    return "";
  }
  const std::string request =
      "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), 0) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return "";
  }
  std::string response;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  if (!absl::StartsWith(response, "HTTP/1.") ||
      !absl::StrContains(response.substr(0, response.find('\n')), " 200")) {
    return "";
  }
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of the sample whose name and labels are exactly `series` (as
// written in the exposition: `name` or `name{a="x",b="y"}`); nullopt when
// the page has no such line.
inline std::optional<double> SampleValue(absl::string_view page,
                                         absl::string_view series) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (!absl::StartsWith(line, series)) continue;
    absl::string_view rest = line.substr(series.size());
    if (rest.empty() || rest[0] != ' ') continue;
    rest.remove_prefix(1);
    rest = rest.substr(0, rest.find(' '));  // an optional timestamp follows
    double value = 0;
    if (absl::SimpleAtod(rest, &value)) return value;
  }
  return std::nullopt;
}

// What operators look at on every server (server/process_metrics.h): the
// process series, positive, and build_info for `component`, 1.
inline void ExpectProcessMetrics(absl::string_view page,
                                 absl::string_view component) {
  for (const char* series :
       {"process_cpu_seconds_total", "process_resident_memory_bytes",
        "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
        "process_start_time_seconds"}) {
    EXPECT_GT(SampleValue(page, series).value_or(0), 0) << series;
  }
  EXPECT_EQ(SampleValue(page, absl::StrCat("microgpt_build_info{component=\"",
                                           component, "\",version=\"",
                                           MICROGPT_VERSION, "\"}")),
            1.0);
}

}  // namespace testing
}  // namespace microgpt

#endif  // MICROGPT_TESTS_METRICS_SCRAPE_H_
