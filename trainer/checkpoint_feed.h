// CheckpointFeed: what the Trainer's WatchCheckpoints and DownloadCheckpoint
// RPCs serve, so that generators on other nodes (no ReadWriteMany volume) can
// follow the versions published into this trainer's checkpoint root.
//
// The feed rescans the root on a thread of its own (every poll_interval), so
// it sees versions this trainer publishes and versions any other process
// publishes into the same root alike. Each watcher has its own queue: on
// subscribing it gets every version known so far (by model, then version
// ascending), then each new one. Versions are never retracted.
//
//   CheckpointFeed feed(&store, CheckpointFeedOptions{});
//   feed.Start();                          // first scan, synchronously
//   return NewWatchCheckpointsReactor(&feed, request);   // in the service
//   return NewDownloadCheckpointReactor(&store, &reader, chunk_bytes, request);
//   feed.Stop();                           // watch streams end UNAVAILABLE
#ifndef MICROGPT_TRAINER_CHECKPOINT_FEED_H_
#define MICROGPT_TRAINER_CHECKPOINT_FEED_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/checkpoint_store.h"
#include "microgpt/v1/microgpt.pb.h"
#include "server/stream_queue.h"
#include "server/work_thread.h"

namespace microgpt {

struct CheckpointFeedOptions {
  // How often the root is rescanned for versions.
  absl::Duration poll_interval = absl::Seconds(1);
  // Bytes of file data per CheckpointChunk (at most 1 MiB).
  size_t chunk_bytes = 1 << 20;
};

// One watcher's queue of checkpoint events.
using CheckpointEvents = StreamQueue<v1::CheckpointEvent>;

class CheckpointFeed {
 public:
  CheckpointFeed(const CheckpointStore* store, CheckpointFeedOptions options);
  ~CheckpointFeed();  // Stop()s

  CheckpointFeed(const CheckpointFeed&) = delete;
  CheckpointFeed& operator=(const CheckpointFeed&) = delete;

  const CheckpointFeedOptions& options() const { return options_; }

  // Scans once now, then every poll_interval on a thread. Call at most once.
  void Start();
  // Stops the thread and closes every subscription (idempotent).
  void Stop();

  // Scans the root once; new versions go to every matching subscription.
  // Serialised with concurrent calls.
  void PollOnce();

  // A new watcher's queue (model "" = every model), holding every version
  // known so far; set its listener, then pop. Later versions are pushed on
  // the feed's thread with the feed's lock held, so the listener must be
  // quick and must not call into the feed. Stop() closes it UNAVAILABLE;
  // after Stop(), it comes closed.
  std::shared_ptr<CheckpointEvents> Subscribe(std::string model);
  void Unsubscribe(const CheckpointEvents* events);

 private:
  const CheckpointStore* const store_;
  const CheckpointFeedOptions options_;

  absl::Mutex poll_mu_;  // held for a whole PollOnce; taken before mu_
  // Versions whose metadata could not be read: not announced, not retried.
  std::set<std::pair<std::string, int64_t>> unreadable_
      ABSL_GUARDED_BY(poll_mu_);

  absl::Mutex mu_;
  std::set<std::pair<std::string, int64_t>> known_set_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::CheckpointInfo> known_ ABSL_GUARDED_BY(mu_);
  struct Subscriber {
    std::string model;  // "" = every model
    std::shared_ptr<CheckpointEvents> events;
  };
  std::vector<Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;

  absl::Notification stop_;
  std::thread thread_;
};

// The reactors of the two RPCs. WatchCheckpoints: INVALID_ARGUMENT for an
// invalid model name; otherwise the feed's events until the client cancels or
// the feed stops (UNAVAILABLE). DownloadCheckpoint: see the proto.
grpc::ServerWriteReactor<v1::CheckpointEvent>* NewWatchCheckpointsReactor(
    CheckpointFeed* feed, const v1::WatchCheckpointsRequest& request);
// The files are read on `reader` (which must outlive the call), at most a
// chunk ahead of the one being written.
grpc::ServerWriteReactor<v1::CheckpointChunk>* NewDownloadCheckpointReactor(
    const CheckpointStore* store, WorkThread* reader, size_t chunk_bytes,
    const v1::DownloadCheckpointRequest& request);

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_CHECKPOINT_FEED_H_
