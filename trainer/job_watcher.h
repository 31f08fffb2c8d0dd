// JobWatcher: one subscriber's queue of a training job's events.
//
// The job pushes events from its thread; the subscriber pops them at its own
// pace (a gRPC stream, a terminal). The queue is bounded: when it is full, the
// oldest progress event is dropped first (a newer one supersedes it), then the
// oldest checkpoint event; the final `finished` event is never dropped. So a
// slow watcher costs the job a bounded amount of memory and never blocks it.
//
//   auto watcher =
//       std::make_shared<JobWatcher>(/*on_event=*/[&] { cv.Signal(); });
//   job.Subscribe(watcher);
//   while (auto event = watcher->Pop()) Print(*event);
#ifndef MICROGPT_TRAINER_JOB_WATCHER_H_
#define MICROGPT_TRAINER_JOB_WATCHER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

class JobWatcher {
 public:
  static constexpr size_t kDefaultCapacity = 256;

  // `on_event` (optional) runs after each Push, on the pushing thread, while
  // the job holds its lock: it must be quick and must not call into the job.
  explicit JobWatcher(std::function<void()> on_event = nullptr,
                      size_t capacity = kDefaultCapacity);

  JobWatcher(const JobWatcher&) = delete;
  JobWatcher& operator=(const JobWatcher&) = delete;

  // Producer side.
  void Push(v1::TrainingEvent event);

  // Consumer side: the oldest queued event, or nullopt when there is none.
  std::optional<v1::TrainingEvent> Pop();
  // Like Pop, waiting up to `timeout` for an event.
  std::optional<v1::TrainingEvent> PopWithTimeout(absl::Duration timeout);

  // Checkpoint events dropped because the queue was full (progress events
  // are superseded, not counted).
  int64_t dropped_checkpoints() const;

 private:
  const std::function<void()> on_event_;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<v1::TrainingEvent> queue_ ABSL_GUARDED_BY(mu_);
  int64_t dropped_checkpoints_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_JOB_WATCHER_H_
