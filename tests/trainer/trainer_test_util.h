// Helpers shared by the trainer tests: temporary directories, small datasets
// and requests, status matchers (Debian's Abseil has none).
#ifndef MICROGPT_TESTS_TRAINER_TRAINER_TEST_UTIL_H_
#define MICROGPT_TESTS_TRAINER_TRAINER_TEST_UTIL_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "microgpt/v1/microgpt.pb.h"
#include "tests/temp_dir.h"

namespace microgpt::testing {

inline void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream file(path, std::ios::binary);
  file << contents;
  ASSERT_TRUE(file.good()) << path;
}

inline std::vector<std::string> SmallDocuments() {
  return {"emma",  "olivia", "ava",       "isabella", "sophia",
          "mia",   "amelia", "harper",    "evelyn",   "abigail",
          "emily", "ella",   "elizabeth", "camila"};
}

// A request for a tiny, fast model on SmallDocuments().
inline v1::StartTrainingRequest SmallRequest(const std::string& model,
                                             int64_t steps) {
  v1::StartTrainingRequest request;
  request.set_model(model);
  for (const std::string& d : SmallDocuments()) {
    request.mutable_inline_dataset()->add_documents(d);
  }
  request.mutable_config()->set_n_embd(8);
  request.mutable_config()->set_n_head(2);
  request.mutable_config()->set_n_layer(1);
  request.mutable_config()->set_block_size(8);
  request.set_steps(steps);
  return request;
}

// The numeric (published version) directories of a model, ascending.
inline std::vector<int64_t> VersionsOnDisk(const std::string& root,
                                           const std::string& model) {
  std::vector<int64_t> versions;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(root + "/" + model, error)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() &&
        name.find_first_not_of("0123456789") == std::string::npos) {
      versions.push_back(std::stoll(name));
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

MATCHER_P2(StatusIs, code, substring,
           std::string("has code ") + absl::StatusCodeToString(code) +
               " and a message containing \"" + substring + "\"") {
  if (arg.code() != code) {
    *result_listener << "code is " << absl::StatusCodeToString(arg.code())
                     << ": " << arg.message();
    return false;
  }
  if (std::string(arg.message()).find(substring) == std::string::npos) {
    *result_listener << "message is \"" << arg.message() << "\"";
    return false;
  }
  return true;
}

}  // namespace microgpt::testing

#endif  // MICROGPT_TESTS_TRAINER_TRAINER_TEST_UTIL_H_
