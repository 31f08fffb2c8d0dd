// StreamQueue: one consumer's queue of messages from a producer, ended by the
// producer with a status: the queue behind every server-streaming RPC that
// drains one (server/stream_reactor.h writes it to the wire).
//
// The producer (a training job, the checkpoint feed, a file reader) pushes at
// its own pace and never blocks; the consumer pops at its own. A bounded
// queue drops by its policy when a push finds it full (a newer progress event
// supersedes an older one), so a slow consumer costs the producer a bounded
// amount of memory. Close(status) is the producer's last word: the consumer
// sees the status once it has popped every message before it. Cancel() is the
// consumer's: it goes away, later pushes are dropped.
//
// Hooks: the consumer's listener runs after each push and on close (a
// reactor's "write the next one"); the producer's on_room runs when a pop
// makes room in a full queue (a reader's "read the next one",
// server/read_ahead.h). Both run on the thread that caused them, with no lock
// of the queue held.
//
//   auto queue = std::make_shared<StreamQueue<v1::TrainingEvent>>();
//   producer:  queue->Push(event); ... queue->Close(absl::OkStatus());
//   consumer:  while (auto event = queue->PopWithTimeout(absl::Seconds(1)))
//                Print(*event);
#ifndef MICROGPT_SERVER_STREAM_QUEUE_H_
#define MICROGPT_SERVER_STREAM_QUEUE_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace microgpt {

template <typename Message>
class StreamQueue {
 public:
  using Queued = std::deque<Message>;
  // Picks the queued message a full queue drops for a new one; queued.end()
  // keeps them all (the queue then grows past its capacity). Runs under the
  // queue's lock: it must not call the queue.
  using DropPolicy = std::function<typename Queued::iterator(Queued& queued)>;

  struct Options {
    // Messages held before the drop policy applies; 0: unbounded.
    size_t capacity = 0;
    // Without one, a full queue grows (the producer keeps to the capacity
    // itself, as ReadAhead does by waiting for on_room).
    DropPolicy drop;
    // The producer's hook (see the file comment).
    std::function<void()> on_room;
  };

  StreamQueue() : StreamQueue(Options{}) {}
  explicit StreamQueue(Options options) : options_(std::move(options)) {}

  StreamQueue(const StreamQueue&) = delete;
  StreamQueue& operator=(const StreamQueue&) = delete;
  virtual ~StreamQueue() = default;

  // ---- Consumer side.

  // Called after each later Push and on Close; replaces any earlier
  // listener (nullptr: none). Messages pushed before were not announced: pop
  // them after setting it. Once SetListener returns, an earlier listener is
  // not running and is not called again.
  void SetListener(std::function<void()> listener)
      ABSL_LOCKS_EXCLUDED(listener_mu_) {
    absl::MutexLock lock(&listener_mu_);
    listener_ = std::move(listener);
  }

  // The oldest queued message, or nullopt when there is none.
  std::optional<Message> Pop() ABSL_LOCKS_EXCLUDED(mu_) {
    std::optional<Message> message;
    bool made_room;
    {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) return std::nullopt;
      made_room = Full();
      message = std::move(queue_.front());
      queue_.pop_front();
    }
    if (made_room && options_.on_room) options_.on_room();
    return message;
  }

  // Like Pop, waiting up to `timeout` for a message (not for the end).
  std::optional<Message> PopWithTimeout(absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      auto nonempty = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty();
      };
      if (!mu_.AwaitWithTimeout(absl::Condition(&nonempty), timeout)) {
        return std::nullopt;
      }
    }
    return Pop();  // this consumer is the only one that pops
  }

  // How the stream ended, once the producer closed it and every message was
  // popped; nullopt before.
  std::optional<absl::Status> End() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (!queue_.empty()) return std::nullopt;
    return end_;
  }

  // The consumer goes away: the queue is emptied, later pushes are dropped
  // and the listener is removed (as SetListener(nullptr)). Idempotent.
  void Cancel() ABSL_LOCKS_EXCLUDED(mu_, listener_mu_) {
    SetListener(nullptr);
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    queue_.clear();
  }

  // ---- Producer side.

  // Queues a message (dropping by the policy when full) and calls the
  // listener; false, and nothing queued, once the queue was closed or
  // cancelled.
  bool Push(Message message) ABSL_LOCKS_EXCLUDED(mu_, listener_mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (end_.has_value() || cancelled_) return false;
      if (Full() && options_.drop) {
        auto victim = options_.drop(queue_);
        if (victim != queue_.end()) queue_.erase(victim);
      }
      queue_.push_back(std::move(message));
    }
    Notify();
    return true;
  }

  // Ends the stream with `status` (OK: it is complete) after the messages
  // queued so far; later calls are ignored.
  void Close(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_, listener_mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (end_.has_value()) return;
      end_ = std::move(status);
    }
    Notify();
  }

  // Whether one more Push stays within the capacity (false once closed or
  // cancelled: nothing more is wanted).
  bool HasRoom() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return !end_.has_value() && !cancelled_ && !Full();
  }

 private:
  bool Full() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return options_.capacity > 0 && queue_.size() >= options_.capacity;
  }

  // The listener runs under listener_mu_ (never under mu_: it pops), so that
  // SetListener and Cancel can promise it is not running once they return.
  void Notify() ABSL_LOCKS_EXCLUDED(listener_mu_) {
    absl::MutexLock lock(&listener_mu_);
    if (listener_) listener_();
  }

  const Options options_;
  absl::Mutex listener_mu_;  // taken before mu_
  std::function<void()> listener_ ABSL_GUARDED_BY(listener_mu_);
  mutable absl::Mutex mu_;
  Queued queue_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace microgpt

#endif  // MICROGPT_SERVER_STREAM_QUEUE_H_
