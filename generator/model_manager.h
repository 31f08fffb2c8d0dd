// ModelManager: the versioned models a generator serves, loaded from a
// CheckpointStore root (<root>/<model>/<version>/, TensorFlow Serving's
// base-path layout).
//
// A loaded version is a ServableModel: immutable, shared by reference count.
// Readers take a std::shared_ptr snapshot with Get() and keep using it for as
// long as they like (a stream started on version 1 finishes on version 1); the
// poller builds new versions on the side and swaps the per-model version list
// under a lock, so an unloaded version is freed when its last reader lets go.
//
// Version policy: per model, the newest `versions_to_keep` versions among
// those loaded and those on disk that have not failed to load. A version that
// fails to load (bad manifest, SHA-256 mismatch, bad config) is logged,
// remembered and never retried; the versions already loaded keep serving.
// Versions are only unloaded when newer ones replace them, never because
// their directory disappeared.
//
// Leases: with a lease_holder, the manager names the versions it has loaded
// in <root>/.leases/<holder> (CheckpointStore::WriteLease) after every poll
// that changed them and at least every lease_refresh, and removes the lease
// on Stop(). A trainer applying retention (--keep_versions) on the same root
// never deletes a version named in a lease younger than its --lease_ttl, so a
// served version stays on disk for new replicas and restarts. A version being
// loaded is not leased yet: if retention deletes it meanwhile, the load fails
// (logged, skipped) and the next poll loads the newer one. A lease that
// cannot be written (read-only root) is logged, and serving goes on.
//
// Follow mode (--trainer, --cache_dir) takes no lease: the root is then this
// generator's own cache, which the trainer's retention never touches (it
// deletes only under its own root), and nothing else deletes from it, so
// every version copied there stays. A version the trainer deleted before the
// follower downloaded it is simply not announced any more. In either mode, a
// loaded version lives in memory: deleting its files never interrupts
// serving it; leases are what keep it loadable by new replicas and restarts.
//
//   ModelManagerOptions options;
//   options.root = "/ckpt";
//   ModelManager manager(options);
//   MICROGPT_RETURN_IF_ERROR(manager.PollOnce());  // tests call this directly
//   manager.StartPolling(absl::Seconds(2));        // servers poll on a thread
//
// The polling thread rescans at once when something is published under the
// root (common/root_watch.h, inotify), so a new version is served within
// milliseconds of its publish; the interval is the fallback for file systems
// that send no events.
//   MICROGPT_ASSIGN_OR_RETURN(auto servable, manager.Get("names", 0));
#ifndef MICROGPT_GENERATOR_MODEL_MANAGER_H_
#define MICROGPT_GENERATOR_MODEL_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/checkpoint_store.h"
#include "common/dataset.h"
#include "common/model.h"
#include "common/root_watch.h"
#include "common/tokenizer.h"

namespace microgpt {

// One loaded model version. Immutable; shared read-only by every thread.
struct ServableModel {
  std::string name;
  int64_t version = 0;
  int64_t step = 0;   // training step recorded at publication
  double loss = 0.0;  // mean training loss recorded at publication
  Model model;
  Tokenizer tokenizer;
  DatasetFormat format = DatasetFormat::kDocuments;  // of its training data
  std::optional<double> val_loss;  // recorded at publication, if held out
};

struct ModelManagerOptions {
  std::string root;          // the CheckpointStore root
  int versions_to_keep = 2;  // loaded versions per model, >= 1
  // Called after each version is loaded, on the polling thread, without any
  // lock of the manager held. The service uses it to turn health SERVING.
  std::function<void(const ServableModel&)> on_load;
  // This reader's lease name under <root>/.leases (a valid model name, e.g.
  // DefaultLeaseHolder()); empty: no lease.
  std::string lease_holder;
  // The lease is rewritten at least this often; the trainer's --lease_ttl
  // must be longer (it is at least 15 s).
  absl::Duration lease_refresh = absl::Seconds(10);
};

// "<host name>-<pid>", restricted to [A-Za-z0-9._-] and 64 characters: unique
// per process on a host, and per pod in Kubernetes.
std::string DefaultLeaseHolder();

class ModelManager {
 public:
  explicit ModelManager(ModelManagerOptions options);
  ~ModelManager();  // Stop()s the poll thread

  ModelManager(const ModelManager&) = delete;
  ModelManager& operator=(const ModelManager&) = delete;

  // Scans the root once and loads and unloads versions by the policy above.
  // An error only when the root itself cannot be listed; a model or version
  // that fails is logged and skipped. Serialised with concurrent calls.
  absl::Status PollOnce();

  // A snapshot of a loaded version. An empty name means the only model
  // (INVALID_ARGUMENT when several are loaded, UNAVAILABLE when none is yet);
  // version 0 means the newest loaded. NOT_FOUND for an unknown model or a
  // version that is not loaded (for a model published but not loaded yet,
  // saying so), INVALID_ARGUMENT for a negative version.
  absl::StatusOr<std::shared_ptr<const ServableModel>> Get(
      absl::string_view name, int64_t version) const;

  struct LoadedModel {
    std::string name;
    // Newest first; never empty.
    std::vector<std::shared_ptr<const ServableModel>> versions;
  };
  // Every loaded model, sorted by name.
  std::vector<LoadedModel> List() const;

  // Counters, for health and metrics.
  int num_loaded_versions() const;
  int64_t loads() const;         // versions loaded since start
  int64_t failed_loads() const;  // versions that failed to load

  // Calls PollOnce now and then every `interval` on a thread of its own until
  // Stop(). Call at most once.
  void StartPolling(absl::Duration interval);
  // Stops the poll thread and removes the lease (idempotent, thread-safe).
  // Loaded versions stay served.
  void Stop() ABSL_LOCKS_EXCLUDED(stop_mu_);

 private:
  // Get among the loaded models only.
  absl::StatusOr<std::shared_ptr<const ServableModel>> GetLoaded(
      absl::string_view name, int64_t version) const;
  using Versions = std::vector<std::shared_ptr<const ServableModel>>;

  absl::StatusOr<std::shared_ptr<const ServableModel>> Load(
      absl::string_view name, int64_t version) const;
  // Loads and unloads one model's versions; returns the versions loaded.
  std::vector<std::shared_ptr<const ServableModel>> PollModel(
      const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_);
  // Rewrites the lease when the loaded versions changed or it is due.
  void RenewLease() ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_);

  const ModelManagerOptions options_;
  const CheckpointStore store_;

  // Held for a whole PollOnce; taken before mu_.
  absl::Mutex poll_mu_;
  std::set<std::pair<std::string, int64_t>> failed_ ABSL_GUARDED_BY(poll_mu_);
  // The lease last written, when, and whether the last write failed.
  std::map<std::string, std::vector<int64_t>> leased_ ABSL_GUARDED_BY(poll_mu_);
  absl::Time lease_written_ ABSL_GUARDED_BY(poll_mu_) = absl::InfinitePast();
  bool lease_failing_ ABSL_GUARDED_BY(poll_mu_) = false;

  mutable absl::Mutex mu_;
  std::map<std::string, Versions> models_ ABSL_GUARDED_BY(mu_);
  int64_t loads_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_loads_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex stop_mu_;  // serialises Stop()
  absl::Notification stop_;
  // Wakes the polling thread when something is published under the root
  // (null where inotify is not available); set before the thread starts.
  std::unique_ptr<RootWatch> watch_;
  std::thread poll_thread_;
};

}  // namespace microgpt

#endif  // MICROGPT_GENERATOR_MODEL_MANAGER_H_
