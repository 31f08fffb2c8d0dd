// Teaches ThreadSanitizer about Debian's Abseil synchronization (TSan builds
// only; tests/CMakeLists.txt links it into every test binary when
// MICROGPT_SANITIZE_THREAD is on).
//
// Debian's libabsl is not built with -fsanitize=thread, so TSan never sees an
// absl::Mutex being locked: every access guarded by one looks like a data
// race. These definitions interpose the library's exported Mutex, CondVar and
// Notification functions (the executable's definition wins at dynamic link
// time, for our code and for gRPC's, which uses absl::Mutex too), tell TSan
// about each lock, unlock and wait through its mutex annotation interface,
// and call the library's own function, found with dlsym(RTLD_NEXT).
//
// Waits (Await, CondVar::Wait, ...) release the mutex inside the library and
// take it again before returning; they are annotated as an unlock before the
// call and a lock after it. Some of the library's functions call others of
// this set (CondVar::WaitWithTimeout calls WaitWithDeadline, LockWhen calls
// Lock, ...): only the outermost call on a thread is annotated.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace {

// The library's definition of `symbol` (a mangled name), cast to F.
template <typename F>
F Real(const char* symbol) {
  void* fn = dlsym(RTLD_NEXT, symbol);
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_sync_annotations: %s not found: %s\n", symbol,
                 dlerror());
    std::abort();
  }
  return reinterpret_cast<F>(fn);
}

// Depth of interposed calls on this thread; annotations happen at depth 1.
thread_local int interposed_depth = 0;

class Interposed {
 public:
  Interposed() { ++interposed_depth; }
  ~Interposed() { --interposed_depth; }
  Interposed(const Interposed&) = delete;
  Interposed& operator=(const Interposed&) = delete;
  bool outermost() const { return interposed_depth == 1; }
};

void AnnotateLock(const Interposed& call, void* mu, unsigned flags) {
  if (!call.outermost()) return;
  __tsan_mutex_pre_lock(mu, flags);
  __tsan_mutex_post_lock(mu, flags, 0);
}

void AnnotateUnlock(const Interposed& call, void* mu, unsigned flags) {
  if (!call.outermost()) return;
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
}

}  // namespace

namespace absl {

// Locks and unlocks.
#define MICROGPT_TSAN_LOCK(method, symbol, flags)                 \
  void Mutex::method() {                                          \
    static auto real = Real<void (*)(Mutex*)>(symbol);            \
    Interposed call;                                              \
    if (call.outermost()) __tsan_mutex_pre_lock(this, flags);     \
    real(this);                                                   \
    if (call.outermost()) __tsan_mutex_post_lock(this, flags, 0); \
  }
MICROGPT_TSAN_LOCK(Lock, "_ZN4absl7debian35Mutex4LockEv", 0)
MICROGPT_TSAN_LOCK(ReaderLock, "_ZN4absl7debian35Mutex10ReaderLockEv",
                   __tsan_mutex_read_lock)
#undef MICROGPT_TSAN_LOCK

#define MICROGPT_TSAN_UNLOCK(method, symbol, flags)              \
  void Mutex::method() {                                         \
    static auto real = Real<void (*)(Mutex*)>(symbol);           \
    Interposed call;                                             \
    if (call.outermost()) __tsan_mutex_pre_unlock(this, flags);  \
    real(this);                                                  \
    if (call.outermost()) __tsan_mutex_post_unlock(this, flags); \
  }
MICROGPT_TSAN_UNLOCK(Unlock, "_ZN4absl7debian35Mutex6UnlockEv", 0)
MICROGPT_TSAN_UNLOCK(ReaderUnlock, "_ZN4absl7debian35Mutex12ReaderUnlockEv",
                     __tsan_mutex_read_lock)
#undef MICROGPT_TSAN_UNLOCK

#define MICROGPT_TSAN_TRY_LOCK(method, symbol, flags)                         \
  bool Mutex::method() {                                                      \
    static auto real = Real<bool (*)(Mutex*)>(symbol);                        \
    Interposed call;                                                          \
    if (call.outermost()) {                                                   \
      __tsan_mutex_pre_lock(this, flags | __tsan_mutex_try_lock);             \
    }                                                                         \
    const bool locked = real(this);                                           \
    if (call.outermost()) {                                                   \
      __tsan_mutex_post_lock(this,                                            \
                             flags | __tsan_mutex_try_lock |                  \
                                 (locked ? 0 : __tsan_mutex_try_lock_failed), \
                             0);                                              \
    }                                                                         \
    return locked;                                                            \
  }
MICROGPT_TSAN_TRY_LOCK(TryLock, "_ZN4absl7debian35Mutex7TryLockEv", 0)
MICROGPT_TSAN_TRY_LOCK(ReaderTryLock, "_ZN4absl7debian35Mutex13ReaderTryLockEv",
                       __tsan_mutex_read_lock)
#undef MICROGPT_TSAN_TRY_LOCK

// Lock once the condition holds: a lock.
void Mutex::LockWhen(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  Interposed call;
  real(this, cond);
  AnnotateLock(call, this, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Interposed call;
  real(this, cond);
  AnnotateLock(call, this, __tsan_mutex_read_lock);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_"
      "8DurationE");
  Interposed call;
  const bool result = real(this, cond, timeout);
  AnnotateLock(call, this, 0);  // held on return either way
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_"
      "8DurationE");
  Interposed call;
  const bool result = real(this, cond, timeout);
  AnnotateLock(call, this, __tsan_mutex_read_lock);
  return result;
}

// Waits with the mutex held: unlocked inside, held again on return.
void Mutex::Await(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  Interposed call;
  AnnotateUnlock(call, this, 0);
  real(this, cond);
  AnnotateLock(call, this, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_"
      "8DurationE");
  Interposed call;
  AnnotateUnlock(call, this, 0);
  const bool result = real(this, cond, timeout);
  AnnotateLock(call, this, 0);
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Interposed call;
  AnnotateUnlock(call, this, 0);
  const bool result = real(this, cond, deadline);
  AnnotateLock(call, this, 0);
  return result;
}

void CondVar::Wait(Mutex* mu) {
  static auto real = Real<void (*)(CondVar*, Mutex*)>(
      "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  Interposed call;
  AnnotateUnlock(call, mu, 0);
  real(this, mu);
  AnnotateLock(call, mu, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Interposed call;
  AnnotateUnlock(call, mu, 0);
  const bool result = real(this, mu, timeout);
  AnnotateLock(call, mu, 0);
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Interposed call;
  AnnotateUnlock(call, mu, 0);
  const bool result = real(this, mu, deadline);
  AnnotateLock(call, mu, 0);
  return result;
}

// Notify happens before every wait that sees it.
void Notification::Notify() {
  static auto real =
      Real<void (*)(Notification*)>("_ZN4absl7debian312Notification6NotifyEv");
  Interposed call;
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  static auto real = Real<void (*)(const Notification*)>(
      "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  Interposed call;
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static auto real = Real<bool (*)(const Notification*, Duration)>(
      "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_"
      "8DurationE");
  Interposed call;
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static auto real = Real<bool (*)(const Notification*, Time)>(
      "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_"
      "4TimeE");
  Interposed call;
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

}  // namespace absl
