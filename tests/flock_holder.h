// Holds an exclusive flock on a directory from a child process, the way a
// publisher in another process holds its temporary directory, until
// Release() or destruction.
//
//   FlockHolder holder(temp_dir);
//   ASSERT_TRUE(holder.locked());
//   ...  // temp_dir is held by a live process
//   holder.Release();  // the holder exits: temp_dir is an orphan
#ifndef MICROGPT_TESTS_FLOCK_HOLDER_H_
#define MICROGPT_TESTS_FLOCK_HOLDER_H_

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace microgpt {
namespace testing {

class FlockHolder {
 public:
  explicit FlockHolder(const std::string& path) {
    int ready[2];
    int release[2];
    if (::pipe(ready) != 0) return;
    if (::pipe(release) != 0) {
      ::close(ready[0]);
      ::close(ready[1]);
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls: the parent may have threads.
      ::close(ready[0]);
      ::close(release[1]);
      const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
      const char locked = fd >= 0 && ::flock(fd, LOCK_EX) == 0 ? 1 : 0;
      (void)!::write(ready[1], &locked, 1);
      char byte;
      (void)!::read(release[0], &byte, 1);  // EOF when the parent releases
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(release[0]);
    if (pid_ < 0) {
      ::close(ready[0]);
      ::close(release[1]);
      return;
    }
    release_ = release[1];
    char locked = 0;
    locked_ = ::read(ready[0], &locked, 1) == 1 && locked == 1;
    ::close(ready[0]);
  }
  ~FlockHolder() { Release(); }
  FlockHolder(const FlockHolder&) = delete;
  FlockHolder& operator=(const FlockHolder&) = delete;

  bool locked() const { return locked_; }

  // Ends the child process, and with it the lock.
  void Release() {
    if (pid_ <= 0) return;
    ::close(release_);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    locked_ = false;
  }

 private:
  pid_t pid_ = -1;
  int release_ = -1;
  bool locked_ = false;
};

}  // namespace testing
}  // namespace microgpt

#endif  // MICROGPT_TESTS_FLOCK_HOLDER_H_
