#include "trainer/job_watcher.h"

#include <algorithm>
#include <utility>

namespace microgpt {

JobWatcher::JobWatcher(std::function<void()> on_event, size_t capacity)
    : on_event_(std::move(on_event)),
      capacity_(std::max<size_t>(capacity, 2)) {}

void JobWatcher::Push(v1::TrainingEvent event) {
  {
    absl::MutexLock lock(&mu_);
    if (queue_.size() >= capacity_) {
      auto victim =
          std::find_if(queue_.begin(), queue_.end(),
                       [](const auto& e) { return e.has_progress(); });
      if (victim == queue_.end()) {
        victim = std::find_if(queue_.begin(), queue_.end(), [](const auto& e) {
          return e.has_checkpoint_published();
        });
        if (victim != queue_.end()) ++dropped_checkpoints_;
      }
      if (victim != queue_.end()) queue_.erase(victim);
    }
    queue_.push_back(std::move(event));
  }
  if (on_event_) on_event_();
}

std::optional<v1::TrainingEvent> JobWatcher::Pop() {
  absl::MutexLock lock(&mu_);
  if (queue_.empty()) return std::nullopt;
  v1::TrainingEvent event = std::move(queue_.front());
  queue_.pop_front();
  return event;
}

std::optional<v1::TrainingEvent> JobWatcher::PopWithTimeout(
    absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto nonempty = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&nonempty), timeout)) {
    return std::nullopt;
  }
  v1::TrainingEvent event = std::move(queue_.front());
  queue_.pop_front();
  return event;
}

int64_t JobWatcher::dropped_checkpoints() const {
  absl::MutexLock lock(&mu_);
  return dropped_checkpoints_;
}

}  // namespace microgpt
