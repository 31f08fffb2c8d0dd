// JobWatcher: one subscriber's queue of a training job's events, a
// StreamQueue (server/stream_queue.h) with the job's drop policy.
//
// The job pushes events from its thread and closes the queue (OK) after the
// final `finished` event; the subscriber pops them at its own pace (a gRPC
// stream, a terminal). The queue is bounded: when it is full, the oldest
// progress event is dropped first (a newer one supersedes it), then the
// oldest checkpoint event; the final `finished` event is never dropped. So a
// slow watcher costs the job a bounded amount of memory and never blocks it.
//
//   auto watcher = std::make_shared<JobWatcher>();
//   job.Subscribe(watcher);
//   while (auto event = watcher->PopWithTimeout(absl::Seconds(1)))
//     Print(*event);
#ifndef MICROGPT_TRAINER_JOB_WATCHER_H_
#define MICROGPT_TRAINER_JOB_WATCHER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "microgpt/v1/microgpt.pb.h"
#include "server/stream_queue.h"

namespace microgpt {

class JobWatcher final : public StreamQueue<v1::TrainingEvent> {
 public:
  static constexpr size_t kDefaultCapacity = 256;

  // `on_event` (optional) is the queue's listener: it runs after each push,
  // on the pushing thread, while the job holds its lock, so it must be quick
  // and must not call into the job.
  explicit JobWatcher(std::function<void()> on_event = nullptr,
                      size_t capacity = kDefaultCapacity);

  // Checkpoint events dropped because the queue was full (progress events
  // are superseded, not counted).
  int64_t dropped_checkpoints() const { return dropped_checkpoints_.load(); }

 private:
  // Written by the drop policy, under the queue's lock.
  std::atomic<int64_t> dropped_checkpoints_{0};
};

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_JOB_WATCHER_H_
