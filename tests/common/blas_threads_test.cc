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

TEST(BlasThreadsTest, EveryCoreOnlyForWideModelsOnOneEngineThread) {
  const int cores = openblas_get_num_procs();
  EXPECT_EQ(BlasThreadsFor(EngineWork::kDecoding, Width(16), 1), 1);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kDecoding, Width(128), 1), 1);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kDecoding, Width(128), 2), 1);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kDecoding, Width(256), 1), cores);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kDecoding, Width(384), 2), 1);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kTraining, Width(16), 1), 1);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kTraining, Width(64), 1), cores);
  EXPECT_EQ(BlasThreadsFor(EngineWork::kTraining, Width(128), 2), 1);
}

TEST(BlasThreadsTest, WideModelsSplitTheirWorkNarrowOnesDoNot) {
  EXPECT_EQ(TrainingThreadsFor(Width(16)), 1);
  EXPECT_EQ(TrainingThreadsFor(Width(63)), 1);
  EXPECT_EQ(TrainingThreadsFor(Width(64)), 2);
  EXPECT_EQ(TrainingThreadsFor(Width(128)), 2);
  EXPECT_EQ(DecodingWorkersFor(Width(16), 4), 1);
  EXPECT_EQ(DecodingWorkersFor(Width(64), 4), 4);
  EXPECT_EQ(DecodingWorkersFor(Width(128), 1), 1);
  // Together: the trainer's and the generator's wide-model work runs on its
  // own threads, so OpenBLAS stays single-threaded.
  EXPECT_EQ(BlasThreadsFor(EngineWork::kTraining, Width(128),
                           TrainingThreadsFor(Width(128))),
            1);
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
