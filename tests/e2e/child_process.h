// ChildProcess: runs one of the project's binaries for an end-to-end test and
// talks to it the way an operator would: reads its stdout (the "listening on"
// line), sends signals, and reads its exit status.
#ifndef MICROGPT_TESTS_E2E_CHILD_PROCESS_H_
#define MICROGPT_TESTS_E2E_CHILD_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace microgpt {

class ChildProcess {
 public:
  // Starts `argv`; its stdout is captured, its stderr goes to `log_path`.
  ChildProcess(const std::vector<std::string>& argv,
               const std::string& log_path) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      const int log =
          open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (log >= 0) dup2(log, STDERR_FILENO);
      close(fds[0]);
      std::vector<char*> args;
      for (const std::string& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    stdout_fd_ = fds[0];
  }
  ~ChildProcess() {
    if (pid_ > 0 && !exit_status_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stdout_fd_ >= 0) close(stdout_fd_);
  }

  // Reads stdout until a "listening on HOST:PORT" line; 0 on timeout or exit.
  int WaitForPort(absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      const size_t at = output_.find("listening on ");
      if (at != std::string::npos) {
        const size_t end = output_.find('\n', at);
        if (end != std::string::npos) {
          const size_t colon = output_.rfind(':', end);
          int port = 0;
          if (absl::SimpleAtoi(
                  absl::string_view(output_).substr(colon + 1, end - colon - 1),
                  &port)) {
            return port;
          }
        }
      }
      if (!ReadSome(absl::Milliseconds(100))) return 0;
    }
    return 0;
  }

  void Signal(int signal) { kill(pid_, signal); }

  // The exit code after a normal exit, or 128 + signal; nullopt on timeout.
  std::optional<int> Wait(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!exit_status_ && absl::Now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_status_ =
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      } else {
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
    return exit_status_;
  }

  // Everything the child has written to stdout so far (reads what is ready).
  const std::string& output() {
    while (ReadSome(absl::ZeroDuration())) {
    }
    return output_;
  }

 private:
  // False at end of file (or error).
  bool ReadSome(absl::Duration wait) {
    pollfd p{stdout_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait))) <= 0) {
      return wait > absl::ZeroDuration();  // nothing yet: not the end
    }
    char buffer[4096];
    const ssize_t n = read(stdout_fd_, buffer, sizeof(buffer));
    if (n <= 0) return false;
    output_.append(buffer, n);
    return true;
  }

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string output_;
  std::optional<int> exit_status_;
};

}  // namespace microgpt

#endif  // MICROGPT_TESTS_E2E_CHILD_PROCESS_H_
