// TempDir: a fresh directory for one test, removed with everything in it
// when the object goes. Under gtest's ::testing::TempDir() ($TEST_TMPDIR, else
// $TMPDIR, else /tmp).
#ifndef MICROGPT_TESTS_TEMP_DIR_H_
#define MICROGPT_TESTS_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace microgpt::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "/microgpt-test-XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
    EXPECT_FALSE(path_.empty()) << "mkdtemp failed";
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace microgpt::testing

#endif  // MICROGPT_TESTS_TEMP_DIR_H_
