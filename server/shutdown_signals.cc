#include "server/shutdown_signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

namespace microgpt {
namespace {

std::atomic<int> signals_received{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void OnShutdownSignal(int) {
  if (signals_received.fetch_add(1) > 0) _exit(130);
}

}  // namespace

void InstallShutdownSignalHandlers() {
  struct sigaction action = {};
  action.sa_handler = OnShutdownSignal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

bool ShutdownSignalReceived() { return signals_received.load() > 0; }

}  // namespace microgpt
