#include "cli/progress_reporter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace microgpt {
namespace {

constexpr int kBarWidth = 20;
constexpr double kPlainLineSeconds = 10;

}  // namespace

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const int64_t total = static_cast<int64_t>(std::llround(seconds));
  const int64_t h = total / 3600, m = total / 60 % 60, s = total % 60;
  if (h > 0) return absl::StrFormat("%d:%02d:%02d", h, m, s);
  return absl::StrFormat("%d:%02d", m, s);
}

std::string FormatRate(double per_second) {
  if (per_second >= 1e6) return absl::StrFormat("%.2fM", per_second / 1e6);
  if (per_second >= 1e3) return absl::StrFormat("%.1fk", per_second / 1e3);
  return absl::StrFormat("%.0f", per_second);
}

std::string ProgressReporter::Describe(const v1::TrainingProgress& p) {
  if (!have_base_) {
    have_base_ = true;
    base_step_ = p.step();
    base_seconds_ = p.elapsed_seconds();
  }
  double eta = -1;
  const int64_t steps_seen = p.step() - base_step_;
  const double seconds_seen = p.elapsed_seconds() - base_seconds_;
  if (p.step() >= p.total_steps()) {
    eta = 0;
  } else if (steps_seen > 0 && seconds_seen > 0) {
    eta = (p.total_steps() - p.step()) * seconds_seen / steps_seen;
  }
  // The job's progress before its first step (what a watch starts with).
  if (p.loss() == 0 && p.tokens_per_second() == 0) {
    return absl::StrFormat("step %d/%d | starting", p.step(), p.total_steps());
  }
  std::string val;
  if (p.has_val_loss()) {
    val = absl::StrFormat(" | val %.4f @%d", p.val_loss(), p.val_step());
  }
  return absl::StrFormat(
      "step %d/%d | loss %.4f%s | %s tok/s | ETA %s", p.step(), p.total_steps(),
      p.loss(), val, FormatRate(p.tokens_per_second()), FormatDuration(eta));
}

void ProgressReporter::OnProgress(const v1::TrainingProgress& p) {
  last_ = p;
  const std::string text = Describe(p);
  if (tty_) {
    const double fraction =
        p.total_steps() > 0
            ? std::clamp(static_cast<double>(p.step()) / p.total_steps(), 0.0,
                         1.0)
            : 0.0;
    const int filled = static_cast<int>(fraction * kBarWidth);
    absl::FPrintF(out_, "\r[%s%s] %3d%% %s\x1b[K", std::string(filled, '#'),
                  std::string(kBarWidth - filled, '.'),
                  static_cast<int>(fraction * 100), text);
    line_drawn_ = true;
    std::fflush(out_);
    return;
  }
  const int64_t tenth = std::max<int64_t>(1, p.total_steps() / 10);
  const bool due =
      last_printed_step_ < 0 || p.step() == p.total_steps() ||
      p.step() / tenth != last_printed_step_ / tenth ||
      p.elapsed_seconds() - last_printed_seconds_ >= kPlainLineSeconds;
  if (!due || p.step() == last_printed_step_) return;
  last_printed_step_ = p.step();
  last_printed_seconds_ = p.elapsed_seconds();
  absl::FPrintF(out_, "%s\n", text);
  std::fflush(out_);
}

void ProgressReporter::OnCheckpoint(const v1::CheckpointInfo& c) {
  ClearLine();
  std::string val;
  if (c.has_val_loss()) val = absl::StrFormat(", val %.4f", c.val_loss());
  absl::FPrintF(out_, "published %s version %d (step %d, loss %.4f%s): %s\n",
                c.model(), c.version(), c.step(), c.loss(), val, c.path());
  if (tty_ && last_.total_steps() > 0) {
    OnProgress(last_);  // redraw the bar below
  } else {
    std::fflush(out_);
  }
}

void ProgressReporter::Done() {
  if (tty_ && line_drawn_) {
    absl::FPrintF(out_, "\n");
    line_drawn_ = false;
  }
  std::fflush(out_);
}

void ProgressReporter::ClearLine() {
  if (tty_ && line_drawn_) {
    absl::FPrintF(out_, "\r\x1b[K");
    line_drawn_ = false;
  }
}

}  // namespace microgpt
