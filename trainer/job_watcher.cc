#include "trainer/job_watcher.h"

#include <algorithm>
#include <utility>

namespace microgpt {
namespace {

StreamQueue<v1::TrainingEvent>::Options WatcherOptions(
    size_t capacity, std::atomic<int64_t>* dropped_checkpoints) {
  StreamQueue<v1::TrainingEvent>::Options options;
  options.capacity = std::max<size_t>(capacity, 2);
  options.drop = [dropped_checkpoints](auto& queued) {
    auto victim = std::find_if(queued.begin(), queued.end(),
                               [](const auto& e) { return e.has_progress(); });
    if (victim == queued.end()) {
      victim = std::find_if(queued.begin(), queued.end(), [](const auto& e) {
        return e.has_checkpoint_published();
      });
      if (victim != queued.end()) ++*dropped_checkpoints;
    }
    return victim;
  };
  return options;
}

}  // namespace

JobWatcher::JobWatcher(std::function<void()> on_event, size_t capacity)
    : StreamQueue(WatcherOptions(capacity, &dropped_checkpoints_)) {
  SetListener(std::move(on_event));
}

}  // namespace microgpt
