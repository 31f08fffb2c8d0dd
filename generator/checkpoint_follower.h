// CheckpointFollower: the generator's `--trainer ADDRESS --cache_dir DIR`
// mode. Generators on other nodes than the trainer cannot mount its
// ReadWriteOnce volume, so they follow it over gRPC instead.
//
// A thread keeps a Trainer.WatchCheckpoints stream open. For each announced
// version not yet in the cache it calls DownloadCheckpoint and publishes the
// files into <cache_dir>/<model>/<version> the way the trainer publishes
// (common/checkpoint_dir.h): written into a locked temporary directory, each
// file checked against the chunks' size and SHA-256 (the trainer's manifest)
// as it arrives, the directory verified against the received manifest.json,
// then fsynced and renamed into place. Then it calls on_new_version (the
// server runs ModelManager::PollOnce, which loads it, verifying the manifest
// once more, and hot-swaps it). A failed download leaves nothing in the cache
// and is retried on the next announcement (after a reconnect). When the
// stream breaks (trainer restarting or away), it reconnects with exponential
// backoff up to max_backoff; the versions in the cache keep being served
// meanwhile.
//
//   CheckpointFollowerOptions options;
//   options.trainer_address = "microgpt-trainer:50052";
//   options.cache_dir = "/var/cache/microgpt";
//   options.on_new_version = [&] { manager.PollOnce(); };
//   CheckpointFollower follower(options);
//   MICROGPT_RETURN_IF_ERROR(follower.Start());
//   ...
//   follower.Stop();
#ifndef MICROGPT_GENERATOR_CHECKPOINT_FOLLOWER_H_
#define MICROGPT_GENERATOR_CHECKPOINT_FOLLOWER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "microgpt/v1/microgpt.grpc.pb.h"

namespace microgpt {

struct CheckpointFollowerOptions {
  std::string trainer_address;  // host:port of the Trainer API
  std::string cache_dir;        // created if missing
  // Only this model; empty means every model.
  std::string model;
  // Reconnect backoff: doubles from initial_backoff up to max_backoff.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // Deadline of one version's download.
  absl::Duration download_timeout = absl::Minutes(10);
  // Called on the follower's thread after a version landed in the cache.
  std::function<void()> on_new_version;
  // Versions kept in the cache per model, the newest (the generator's
  // --versions_to_keep: what it can serve); older ones are removed after
  // each download (and at start), once on_new_version has returned. 0 keeps
  // every version.
  int64_t keep_versions = 0;
  // Channel credentials; insecure when null.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Bearer token for a trainer that requires one (sent as
  // "authorization: Bearer <token>"); empty sends none.
  std::string auth_token;
};

// Downloads one version into <cache_dir>/<model>/<version> atomically and
// verified (see above). ALREADY_EXISTS if the version is in the cache,
// DATA_LOSS on a size or SHA-256 mismatch, the RPC's error otherwise; on any
// error nothing is left in the cache.
absl::Status DownloadVersion(v1::Trainer::StubInterface* stub,
                             absl::string_view cache_dir,
                             absl::string_view model, int64_t version,
                             absl::Duration timeout,
                             grpc::ClientContext* context = nullptr);

class CheckpointFollower {
 public:
  explicit CheckpointFollower(CheckpointFollowerOptions options);
  ~CheckpointFollower();  // Stop()s

  CheckpointFollower(const CheckpointFollower&) = delete;
  CheckpointFollower& operator=(const CheckpointFollower&) = delete;

  // Creates the cache directory, removes the temporary directories no live
  // process holds (a download that died) and starts the thread.
  // INVALID_ARGUMENT when the cache cannot be created.
  absl::Status Start();
  // Cancels the stream or download in flight and joins (idempotent).
  void Stop();

  int64_t downloads() const;         // versions downloaded
  int64_t failed_downloads() const;  // downloads rejected or broken

 private:
  void Run();
  // One WatchCheckpoints stream until it breaks; true if it got any event.
  bool FollowOnce(v1::Trainer::Stub* stub);
  // Registers a call for Stop() to cancel; false (and cancelled) if stopping.
  bool Track(grpc::ClientContext* context);
  void Untrack(grpc::ClientContext* context);
  // Removes the cache's versions of `model` beyond keep_versions.
  void Prune(absl::string_view model);

  const CheckpointFollowerOptions options_;
  absl::Notification stop_;
  absl::Mutex stop_mu_;  // serialises Stop()
  std::thread thread_;

  mutable absl::Mutex mu_;
  // Calls in flight, cancelled by Stop().
  std::set<grpc::ClientContext*> active_contexts_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t downloads_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_downloads_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace microgpt

#endif  // MICROGPT_GENERATOR_CHECKPOINT_FOLLOWER_H_
