#include "trainer/job_watcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace microgpt {
namespace {

v1::TrainingEvent Progress(int64_t step) {
  v1::TrainingEvent event;
  event.mutable_progress()->set_step(step);
  return event;
}

v1::TrainingEvent Checkpoint(int64_t version) {
  v1::TrainingEvent event;
  event.mutable_checkpoint_published()->set_version(version);
  return event;
}

v1::TrainingEvent Finished() {
  v1::TrainingEvent event;
  event.mutable_finished()->set_state(v1::JOB_STATE_SUCCEEDED);
  return event;
}

TEST(JobWatcherTest, DeliversInOrderAndCallsOnEvent) {
  int notified = 0;
  JobWatcher watcher([&] { ++notified; });
  EXPECT_FALSE(watcher.Pop().has_value());
  watcher.Push(Progress(1));
  watcher.Push(Checkpoint(1));
  watcher.Push(Finished());
  EXPECT_EQ(notified, 3);
  EXPECT_EQ(watcher.Pop()->progress().step(), 1);
  EXPECT_EQ(watcher.Pop()->checkpoint_published().version(), 1);
  EXPECT_TRUE(watcher.Pop()->has_finished());
  EXPECT_FALSE(watcher.Pop().has_value());
}

TEST(JobWatcherTest, FullQueueDropsTheOldestProgressFirst) {
  JobWatcher watcher(nullptr, /*capacity=*/4);
  watcher.Push(Progress(1));
  watcher.Push(Checkpoint(10));
  for (int step = 2; step <= 20; ++step) watcher.Push(Progress(step));
  // Capacity 4: the checkpoint survives, with the three newest progress events.
  EXPECT_EQ(watcher.Pop()->checkpoint_published().version(), 10);
  EXPECT_EQ(watcher.Pop()->progress().step(), 18);
  EXPECT_EQ(watcher.Pop()->progress().step(), 19);
  EXPECT_EQ(watcher.Pop()->progress().step(), 20);
  EXPECT_FALSE(watcher.Pop().has_value());
  EXPECT_EQ(watcher.dropped_checkpoints(), 0);
}

TEST(JobWatcherTest, FinishedIsNeverDropped) {
  JobWatcher watcher(nullptr, /*capacity=*/3);
  for (int v = 1; v <= 5; ++v) watcher.Push(Checkpoint(v));
  watcher.Push(Finished());
  EXPECT_EQ(watcher.dropped_checkpoints(), 3);
  EXPECT_EQ(watcher.Pop()->checkpoint_published().version(), 4);
  EXPECT_EQ(watcher.Pop()->checkpoint_published().version(), 5);
  EXPECT_TRUE(watcher.Pop()->has_finished());
}

TEST(JobWatcherTest, PopWithTimeoutWaitsForAnotherThread) {
  JobWatcher watcher;
  EXPECT_FALSE(watcher.PopWithTimeout(absl::Milliseconds(10)).has_value());
  std::thread producer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    watcher.Push(Progress(7));
  });
  auto event = watcher.PopWithTimeout(absl::Seconds(10));
  producer.join();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->progress().step(), 7);
}

}  // namespace
}  // namespace microgpt
