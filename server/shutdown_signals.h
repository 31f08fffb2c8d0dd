// Process-wide SIGTERM and SIGINT handling for the servers and the one-shot
// trainer. A handler that counts, not sigwait: OpenBLAS starts threads before
// main() that do not block signals, so any thread may receive them. The first
// signal asks for a drain; a second one exits at once (status 130).
#ifndef MICROGPT_SERVER_SHUTDOWN_SIGNALS_H_
#define MICROGPT_SERVER_SHUTDOWN_SIGNALS_H_

namespace microgpt {

// Installs the handlers (idempotent). Call early in main().
void InstallShutdownSignalHandlers();

// Whether SIGTERM or SIGINT has arrived since the handlers were installed.
bool ShutdownSignalReceived();

}  // namespace microgpt

#endif  // MICROGPT_SERVER_SHUTDOWN_SIGNALS_H_
