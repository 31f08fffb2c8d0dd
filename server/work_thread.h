// WorkThread: a thread of the service's own that runs posted tasks one after
// another, for work that blocks (reading files) and so must not run on
// gRPC's reaction threads.
//
//   WorkThread reader;
//   reader.Post([chunks] { chunks->ReadNext(); });
//   // ~WorkThread runs every task posted so far, then joins the thread.
#ifndef MICROGPT_SERVER_WORK_THREAD_H_
#define MICROGPT_SERVER_WORK_THREAD_H_

#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace microgpt {

class WorkThread {
 public:
  WorkThread();
  ~WorkThread();

  WorkThread(const WorkThread&) = delete;
  WorkThread& operator=(const WorkThread&) = delete;

  // Queues `task` to run on the thread after the tasks posted before it.
  // Thread-safe; tasks may post more.
  void Post(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace microgpt

#endif  // MICROGPT_SERVER_WORK_THREAD_H_
