#include "common/root_watch.h"

#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/checkpoint_store.h"
#include "common/file_io.h"

namespace microgpt {
namespace {

// A new model directory in the root; a version renamed into a model
// directory (publishers rename a finished temporary directory into place);
// a watched directory removed (its watch is then dropped, IN_IGNORED).
constexpr uint32_t kEvents =
    IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_ONLYDIR;

}  // namespace

absl::StatusOr<std::unique_ptr<RootWatch>> RootWatch::Open(std::string root) {
  const int inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("inotify is not available: ", strerror(errno)));
  }
  const int interrupt_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (interrupt_fd < 0) {
    const int error = errno;
    ::close(inotify_fd);
    return absl::UnavailableError(
        absl::StrCat("eventfd failed: ", strerror(error)));
  }
  std::unique_ptr<RootWatch> watch(
      new RootWatch(std::move(root), inotify_fd, interrupt_fd));
  watch->AddWatches();
  return watch;
}

RootWatch::RootWatch(std::string root, int inotify_fd, int interrupt_fd)
    : root_(std::move(root)),
      inotify_fd_(inotify_fd),
      interrupt_fd_(interrupt_fd) {}

RootWatch::~RootWatch() {
  ::close(inotify_fd_);
  ::close(interrupt_fd_);
}

void RootWatch::AddWatches() {
  if (root_watch_ < 0) {
    root_watch_ = inotify_add_watch(inotify_fd_, root_.c_str(), kEvents);
    if (root_watch_ < 0) return;  // not there yet
  }
  DIR* dir = ::opendir(root_.c_str());
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    // Model names only: not ".", "..", ".leases" or temporary directories.
    if (!ValidateModelName(name).ok() || model_watches_.count(name) > 0) {
      continue;
    }
    const int wd =
        inotify_add_watch(inotify_fd_, JoinPath(root_, name).c_str(), kEvents);
    if (wd >= 0) model_watches_[name] = wd;
  }
  ::closedir(dir);
}

RootWatch::WaitResult RootWatch::Wait(absl::Duration timeout) {
  pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {interrupt_fd_, POLLIN, 0}};
  const int ms = static_cast<int>(
      absl::ToInt64Milliseconds(std::max(timeout, absl::ZeroDuration())));
  int ready;
  do {
    ready = ::poll(fds, 2, ms);
  } while (ready < 0 && errno == EINTR);
  if (fds[1].revents != 0) return kInterrupted;
  if (ready <= 0) {
    AddWatches();  // a root that appeared meanwhile
    return kTimedOut;
  }
  // Consume every pending event; which ones does not matter, only that the
  // root changed. A removed or replaced directory drops its watch, and it is
  // added again below if it is back.
  alignas(inotify_event) char buffer[4096];
  ssize_t n;
  while ((n = ::read(inotify_fd_, buffer, sizeof(buffer))) > 0) {
    for (ssize_t offset = 0; offset < n;) {
      const auto* event =
          reinterpret_cast<const inotify_event*>(buffer + offset);
      if (event->mask & IN_IGNORED) {
        if (event->wd == root_watch_) root_watch_ = -1;
        for (auto it = model_watches_.begin(); it != model_watches_.end();
             ++it) {
          if (it->second == event->wd) {
            model_watches_.erase(it);
            break;
          }
        }
      }
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  AddWatches();
  return kChanged;
}

void RootWatch::Interrupt() {
  const uint64_t one = 1;
  ssize_t ignored = ::write(interrupt_fd_, &one, sizeof(one));
  (void)ignored;
}

}  // namespace microgpt
