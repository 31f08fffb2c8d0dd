// StreamState: the life of a server-streaming call that keeps one write in
// flight, for every reactor that streams so (QueueStreamReactor in
// server/stream_reactor.h, the generator's GenerateReactor). Every change
// goes through Become, which aborts on one that kTransitions does not list.
// Not thread-safe: the reactor holds its lock around each call.
//
//   OnWriteDone:  if (state_.WriteDone(ok)) Finish(CANCELLED); else next();
//   OnCancel:     if (state_.Cancel()) Finish(CANCELLED);
//
// After kFinished gRPC calls OnDone, which deletes the reactor.
#ifndef MICROGPT_SERVER_STREAM_STATE_H_
#define MICROGPT_SERVER_STREAM_STATE_H_

#include "common/check.h"

namespace microgpt {

class StreamState {
 public:
  enum class State { kStarting, kStreaming, kWriting, kCancelling, kFinished };
  static constexpr Transition<State> kTransitions[] = {
      // The call is set up (a reactor with nothing to set up starts in
      // kStreaming). Messages that come before wait for it.
      {State::kStarting, State::kStreaming},
      // The call was refused: Finish with why.
      {State::kStarting, State::kFinished},
      // A message to send: StartWrite.
      {State::kStreaming, State::kWriting},
      // The source's end: Finish with its status, possibly together with its
      // last message (StartWriteAndFinish). OnCancel: Finish(CANCELLED).
      {State::kStreaming, State::kFinished},
      // OnWriteDone(ok): the next message, if any.
      {State::kWriting, State::kStreaming},
      // OnCancel during the write.
      {State::kWriting, State::kCancelling},
      // OnWriteDone(!ok), the stream broke: Finish(CANCELLED).
      {State::kWriting, State::kFinished},
      // OnWriteDone: Finish(CANCELLED).
      {State::kCancelling, State::kFinished},
  };

  explicit StreamState(State initial) : state_(initial) {}

  State get() const { return state_; }

  void Become(State to) {
    CheckTransition("StreamState", kTransitions, state_, to);
    state_ = to;
  }

  // For OnWriteDone: true when the call is now kFinished and must Finish
  // CANCELLED (the stream broke, or OnCancel came during the write); else
  // back to kStreaming.
  bool WriteDone(bool ok) {
    const bool finish = !ok || state_ == State::kCancelling;
    Become(finish ? State::kFinished : State::kStreaming);
    return finish;
  }

  // For OnCancel: true when the call is now kFinished and must Finish
  // CANCELLED; during a write, kCancelling (WriteDone finishes); after
  // kFinished, nothing. gRPC calls OnCancel only once the method has
  // returned the reactor, so never in kStarting.
  bool Cancel() {
    if (state_ == State::kWriting) {
      Become(State::kCancelling);
    } else if (state_ == State::kStreaming) {
      Become(State::kFinished);
      return true;
    }
    return false;
  }

 private:
  State state_;
};

}  // namespace microgpt

#endif  // MICROGPT_SERVER_STREAM_STATE_H_
