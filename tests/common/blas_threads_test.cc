#include "common/blas_threads.h"

#include <cblas.h>

#include "gtest/gtest.h"

namespace microgpt {
namespace {

ModelConfig Width(int n_embd) {
  ModelConfig config;
  config.n_embd = n_embd;
  return config;
}

TEST(BlasThreadsTest, EveryCoreOnlyForWideTrainingOnOneEngineThread) {
  const int cores = openblas_get_num_procs();
  EXPECT_EQ(BlasThreadsFor(EngineWork::kDecoding, Width(16), 1), 1);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kDecoding, Width(128), 1), 1);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kDecoding, Width(128), 2), 1);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kTraining, Width(16), 1), 1);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kTraining, Width(64), 1), cores);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kTraining, Width(128), 2), 1);
}

TEST(BlasThreadsTest, ConfigureSetsOpenBlas) {
  const int before = openblas_get_num_threads();
  EXPECT_EQ(ConfigureBlasThreads(EngineWork::kDecoding, Width(16), 1), 1);
  EXPECT_EQ(openblas_get_num_threads(), 1);
  const int wide = ConfigureBlasThreads(EngineWork::kTraining, Width(128), 1);
  EXPECT_EQ(wide, openblas_get_num_procs());
  EXPECT_EQ(openblas_get_num_threads(), wide);
  openblas_set_num_threads(before);
}

}  // namespace
}  // namespace microgpt
