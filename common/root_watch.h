// RootWatch: tells a reader of a checkpoint root (the generator's model
// manager) that something may have been published, so that it rescans at
// once instead of at its next poll. Linux inotify: a watch on the root (a new
// model directory) and on each model directory (a version renamed into
// place), added as model directories appear. A wake-up is a hint, never the
// only path: the reader keeps polling, which also covers file systems that
// send no events (NFS, some FUSE mounts).
//
//   auto watch = RootWatch::Open(root);     // UNAVAILABLE without inotify
//   while ((*watch)->Wait(poll_interval) != RootWatch::kInterrupted) Rescan();
//   watch->Interrupt();                     // from another thread: stop
#ifndef MICROGPT_COMMON_ROOT_WATCH_H_
#define MICROGPT_COMMON_ROOT_WATCH_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace microgpt {

class RootWatch {
 public:
  enum WaitResult { kChanged, kTimedOut, kInterrupted };

  // Watches `root` and the model directories in it. A root that does not
  // exist yet is watched from the first Wait after it appears.
  static absl::StatusOr<std::unique_ptr<RootWatch>> Open(std::string root);
  ~RootWatch();
  RootWatch(const RootWatch&) = delete;
  RootWatch& operator=(const RootWatch&) = delete;

  // Waits until something under the root changed (kChanged; the events are
  // consumed and new model directories watched), `timeout` passed, or
  // Interrupt() was called (kInterrupted, from then on at once). One thread
  // at a time.
  WaitResult Wait(absl::Duration timeout);
  // Makes the current and every later Wait return kInterrupted. Thread-safe.
  void Interrupt();

 private:
  RootWatch(std::string root, int inotify_fd, int interrupt_fd);
  // Watches the root (when it exists) and every model directory in it that
  // has no watch yet.
  void AddWatches();

  const std::string root_;
  const int inotify_fd_;
  const int interrupt_fd_;  // an eventfd
  int root_watch_ = -1;     // watch descriptor of the root, -1: none yet
  std::map<std::string, int> model_watches_;  // model name -> descriptor
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_ROOT_WATCH_H_
