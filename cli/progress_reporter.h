// ProgressReporter: shows a training job's events in a terminal.
//
// On a TTY, progress is one line redrawn in place:
//   [##########..........]  50% step 500/1000 | loss 2.4102 | 123.4k tok/s |
//   ETA 0:04
// elsewhere (a pipe, a log file) it prints plain lines, one per 10% of the run
// or per 10 seconds. Published checkpoints get a line of their own.
#ifndef MICROGPT_CLI_PROGRESS_REPORTER_H_
#define MICROGPT_CLI_PROGRESS_REPORTER_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

// "0:07", "12:34", "1:02:03"; "--:--" for a negative or non-finite value.
std::string FormatDuration(double seconds);
// "950", "12.3k", "4.56M".
std::string FormatRate(double per_second);

class ProgressReporter {
 public:
  ProgressReporter(std::FILE* out, bool tty) : out_(out), tty_(tty) {}

  void OnProgress(const v1::TrainingProgress& progress);
  void OnCheckpoint(const v1::CheckpointInfo& checkpoint);
  // Ends the progress line (on a TTY).
  void Done();

  // The progress line without bar, ETA from the events seen so far:
  // "step 500/1000 | loss 2.4102 | 123.4k tok/s | ETA 0:04".
  std::string Describe(const v1::TrainingProgress& progress);

 private:
  void ClearLine();

  std::FILE* const out_;
  const bool tty_;
  bool line_drawn_ = false;
  // The first progress seen: the ETA's base.
  bool have_base_ = false;
  int64_t base_step_ = 0;
  double base_seconds_ = 0;
  // Plain output: when the last line was printed.
  int64_t last_printed_step_ = -1;
  double last_printed_seconds_ = 0;
  v1::TrainingProgress last_;
};

}  // namespace microgpt

#endif  // MICROGPT_CLI_PROGRESS_REPORTER_H_
