// StartReadAhead: a source that blocks (one that reads files) feeding a
// StreamQueue from a WorkThread, kept at most `depth` messages ahead of the
// stream that drains the queue. The source is asked for its next message only
// when a pop leaves room, so a client that stops reading stops the reads:
// the server holds `depth` queued messages plus the one gRPC is writing,
// never the whole source. The source's error, or its end (nullopt: OK),
// closes the queue.
//
//   auto chunks = std::make_shared<ChunkReader>(files);
//   auto queue = StartReadAhead<v1::CheckpointChunk>(
//       &reader_thread, /*depth=*/1, [chunks] { return chunks->Next(); });
//   return new QueueStreamReactor<v1::CheckpointChunk>(queue, "the download");
#ifndef MICROGPT_SERVER_READ_AHEAD_H_
#define MICROGPT_SERVER_READ_AHEAD_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/stream_queue.h"
#include "server/work_thread.h"

namespace microgpt {

// The next message of a source, nullopt after its last one, or why it cannot
// go on. Runs on the WorkThread, one call at a time.
template <typename Message>
using NextMessage = std::function<absl::StatusOr<std::optional<Message>>()>;

namespace read_ahead_internal {

// Reads while the queue has room, on the thread; a pop that makes room again
// schedules the next round. The queue owns the reader (through its on_room
// hook) and the reader only watches the queue, so both go when the stream's
// reactor lets go of the queue.
template <typename Message>
class Reader : public std::enable_shared_from_this<Reader<Message>> {
 public:
  Reader(WorkThread* thread, NextMessage<Message> next)
      : thread_(thread), next_(std::move(next)) {}

  void Watch(const std::shared_ptr<StreamQueue<Message>>& queue) {
    queue_ = queue;
  }

  // At most one round is posted or running at a time.
  void Schedule() {
    if (scheduled_.exchange(true)) return;
    thread_->Post([self = this->shared_from_this()] { self->Fill(); });
  }

 private:
  void Fill() {
    const std::shared_ptr<StreamQueue<Message>> queue = queue_.lock();
    if (queue == nullptr) return;  // the stream is gone
    while (true) {
      while (queue->HasRoom()) {  // false too once cancelled or closed
        absl::StatusOr<std::optional<Message>> message = next_();
        if (!message.ok()) {
          queue->Close(message.status());
          return;  // scheduled_ stays set: nothing more to read
        }
        if (!message->has_value()) {
          queue->Close(absl::OkStatus());
          return;
        }
        queue->Push(**std::move(message));
      }
      scheduled_ = false;
      // A pop since the last HasRoom found scheduled_ still set and left the
      // read to this round: look again.
      if (!queue->HasRoom() || scheduled_.exchange(true)) return;
    }
  }

  WorkThread* const thread_;
  const NextMessage<Message> next_;
  std::weak_ptr<StreamQueue<Message>> queue_;  // set before the first round
  std::atomic<bool> scheduled_{false};
};

}  // namespace read_ahead_internal

// The queue of a new read-ahead stream; the first read is posted at once.
// `thread` must outlive the queue. depth >= 1.
template <typename Message>
std::shared_ptr<StreamQueue<Message>> StartReadAhead(
    WorkThread* thread, size_t depth, NextMessage<Message> next) {
  auto reader = std::make_shared<read_ahead_internal::Reader<Message>>(
      thread, std::move(next));
  typename StreamQueue<Message>::Options options;
  options.capacity = depth < 1 ? 1 : depth;
  options.on_room = [reader] { reader->Schedule(); };
  auto queue = std::make_shared<StreamQueue<Message>>(std::move(options));
  reader->Watch(queue);
  reader->Schedule();
  return queue;
}

}  // namespace microgpt

#endif  // MICROGPT_SERVER_READ_AHEAD_H_
