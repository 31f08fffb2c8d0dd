// GoogleTest matchers for absl::Status and absl::StatusOr<T> (this Abseil has
// none of its own):
//
//   EXPECT_THAT(LoadDataset(path), StatusIs(absl::StatusCode::kNotFound,
//                                           HasSubstr("missing.txt")));
//   EXPECT_THAT(store.Publish(...), IsOk());
#ifndef MICROGPT_TESTS_STATUS_MATCHERS_H_
#define MICROGPT_TESTS_STATUS_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace microgpt {

template <typename T>
absl::Status GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
inline absl::Status GetStatus(const absl::Status& s) { return s; }

// The status has `code` and a message matching `message_matcher` (a string
// is an exact match; use HasSubstr for part of it).
MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + absl::StatusCodeToString(code) +
               " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  const absl::Status status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(
             message_matcher, std::string(status.message()), result_listener);
}

MATCHER(IsOk, "is OK") {
  const absl::Status status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.ok();
}

}  // namespace microgpt

#endif  // MICROGPT_TESTS_STATUS_MATCHERS_H_
