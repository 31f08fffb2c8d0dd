// The server-streaming reactors of every RPC that drains a queue
// (WatchTraining, WatchCheckpoints, DownloadCheckpoint), and the one for a
// call refused before its stream began.
//
// QueueStreamReactor writes a StreamQueue (server/stream_queue.h) to the
// wire: one write in flight, each OnWriteDone starting the next, and Finish
// with the status the producer closed the queue with once every message
// before it went out (its states: server/stream_state.h). A call the client
// cancels (or whose deadline passes, or that the server cancels at the end of
// its shutdown grace) finishes CANCELLED. Reactions only move queued messages;
// the producer works on threads of its own. OnDone cancels the queue, runs
// `on_done` (unsubscribe from the producer) and deletes the reactor.
//
//   auto watcher = std::make_shared<JobWatcher>();  // a StreamQueue
//   job->Subscribe(watcher);
//   return new QueueStreamReactor<v1::TrainingEvent>(
//       watcher, "the watch",
//       [job, watcher] { job->Unsubscribe(watcher.get()); });
//
//   return new FailedStreamReactor<v1::TrainingEvent>(status);
#ifndef MICROGPT_SERVER_STREAM_REACTOR_H_
#define MICROGPT_SERVER_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/grpc_status.h"
#include "server/stream_queue.h"
#include "server/stream_state.h"

namespace microgpt {

template <typename Message>
class QueueStreamReactor final : public grpc::ServerWriteReactor<Message> {
 public:
  using State = StreamState::State;

  // `what` names the stream in the CANCELLED status ("the watch" -> "the
  // watch was cancelled"). `on_done` (optional) runs in OnDone, after the
  // queue was cancelled. Messages already queued go out first.
  QueueStreamReactor(std::shared_ptr<StreamQueue<Message>> queue,
                     absl::string_view what,
                     std::function<void()> on_done = nullptr)
      : queue_(std::move(queue)),
        cancelled_status_(grpc::StatusCode::CANCELLED,
                          absl::StrCat(what, " was cancelled")),
        on_done_(std::move(on_done)) {
    queue_->SetListener([this] { WriteNext(); });
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      finish = state_.WriteDone(ok);
    }
    if (finish) {
      this->Finish(cancelled_status_);
    } else {
      WriteNext();
    }
  }

  void OnCancel() override {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      finish = state_.Cancel();
    }
    if (finish) this->Finish(cancelled_status_);
  }

  void OnDone() override {
    queue_->Cancel();  // the listener no longer runs once this returns
    if (on_done_) on_done_();
    delete this;
  }

 private:
  // Starts the next write, or finishes at the queue's end; nothing when a
  // write is in flight or nothing is queued yet. StartWrite and Finish are
  // called without mu_ held.
  void WriteNext() ABSL_LOCKS_EXCLUDED(mu_) {
    std::optional<absl::Status> end;
    {
      absl::MutexLock lock(&mu_);
      if (state_.get() != State::kStreaming) return;
      if (std::optional<Message> message = queue_->Pop()) {
        current_ = *std::move(message);
        state_.Become(State::kWriting);
      } else {
        end = queue_->End();
        if (!end.has_value()) return;  // the listener calls again
        state_.Become(State::kFinished);
      }
    }
    if (end.has_value()) {
      this->Finish(ToGrpcStatus(*end));
    } else {
      this->StartWrite(&current_);
    }
  }

  const std::shared_ptr<StreamQueue<Message>> queue_;
  const grpc::Status cancelled_status_;
  const std::function<void()> on_done_;
  absl::Mutex mu_;
  StreamState state_ ABSL_GUARDED_BY(mu_){State::kStreaming};
  Message current_;  // owned by the write in flight in kWriting/kCancelling
};

// A streaming call that ends at once with `status` (not OK), before any
// message: a request refused by validation or lookup.
template <typename Message>
class FailedStreamReactor final : public grpc::ServerWriteReactor<Message> {
 public:
  explicit FailedStreamReactor(const absl::Status& status) {
    this->Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace microgpt

#endif  // MICROGPT_SERVER_STREAM_REACTOR_H_
