// Check: aborts the process, naming what broke on stderr, when the code
// relies on something that does not hold: a contract violation that would
// read or write out of bounds, or a change of a life-cycle state that its
// table of transitions does not list. Not for bad input or failed I/O: those
// are an absl::Status. (Debian's Abseil has no absl/log and so no CHECK.)
//
//   Check(tokens.size() == caches.size(), "Decoder: one cache per token");
//
//   enum class State { kIdle, kBusy };
//   static constexpr Transition<State> kTransitions[] = {
//       {State::kIdle, State::kBusy},  // Start()
//       {State::kBusy, State::kIdle},  // the work is done
//   };
//   CheckTransition("Worker", kTransitions, state_, to);
//   state_ = to;
#ifndef MICROGPT_COMMON_CHECK_H_
#define MICROGPT_COMMON_CHECK_H_

#include <cstddef>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace microgpt {

[[noreturn]] inline void CheckFailed(absl::string_view what) {
  std::fprintf(stderr, "%.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

inline void Check(bool ok, absl::string_view what) {
  if (!ok) CheckFailed(what);
}

// One allowed change of a life-cycle state.
template <typename State>
struct Transition {
  State from;
  State to;
};

// Aborts unless from -> to is in `table` (`machine` names the state's owner).
template <typename State, size_t N>
void CheckTransition(absl::string_view machine,
                     const Transition<State> (&table)[N], State from,
                     State to) {
  for (const Transition<State>& allowed : table) {
    if (allowed.from == from && allowed.to == to) return;
  }
  CheckFailed(absl::StrCat(machine, ": no transition ", static_cast<int>(from),
                           " -> ", static_cast<int>(to)));
}

}  // namespace microgpt

#endif  // MICROGPT_COMMON_CHECK_H_
