// Loss curves: the per-step training loss of a run, with the validation loss
// at the steps the trainer evaluated it, as the CSV the trainer stores with
// each published version (loss.csv, listed in its manifest) and as an SVG
// line chart a person can open.
//
// The CSV has a header and one row per step, ascending:
//   step,loss,smoothed,val_loss
//   1,3.30412,3.30412,
//   ...
//   250,2.31544,2.35171,2.40187
// `smoothed` is an exponential moving average with decay kLossSmoothing,
// bias-corrected (the first value is the first loss, as in TensorBoard), so
// the curve starts where the run starts. `val_loss` is the loss on the
// held-out split, empty at the steps where the trainer did not evaluate it
// (it does every eval_every steps and at each publish). Files written before
// validation existed have no val_loss column (step,loss,smoothed) and still
// parse, as curves without validation.
//
//   LossCurve curve;
//   curve.Add(step, loss);  // for each step
//   curve.AddValidation(step, val_loss);  // after Add, at evaluated steps
//   std::string csv = FormatLossCsv(curve);
//   std::string svg = RenderLossCurveSvg(curve, "names: training loss");
#ifndef MICROGPT_COMMON_LOSS_CURVE_H_
#define MICROGPT_COMMON_LOSS_CURVE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microgpt {

inline constexpr double kLossSmoothing = 0.95;
// The name of the curve's file in a published version directory.
inline constexpr absl::string_view kLossCurveFile = "loss.csv";

struct LossPoint {
  int64_t step = 0;
  double loss = 0;
  double smoothed = 0;
  // Only at the steps where the trainer evaluated the validation split.
  std::optional<double> val_loss;
};

class LossCurve {
 public:
  // Appends a step; `step` must be greater than the last one (earlier or
  // equal steps are ignored). The smoothed value is computed here.
  void Add(int64_t step, double loss);
  // Sets the validation loss of `step`'s point. The trainer evaluates a step
  // after adding it; a step not in the curve is ignored, as Add ignores a
  // step out of order.
  void AddValidation(int64_t step, double val_loss);
  // Drops the steps after `step` (a run resumed from an earlier version);
  // the kept steps keep their validation losses.
  void TruncateAfter(int64_t step);

  const std::vector<LossPoint>& points() const { return points_; }
  bool empty() const { return points_.empty(); }

 private:
  std::vector<LossPoint> points_;
  double ema_ = 0;     // the raw (biased) moving average
  double weight_ = 0;  // 1 - kLossSmoothing^n, the bias correction
};

// The CSV above: losses and validation losses with 9 significant digits (a
// float32 loss parses back exactly), smoothed values with 6.
std::string FormatLossCsv(const LossCurve& curve);

// Parses FormatLossCsv's output (the smoothed column is recomputed), and the
// older step,loss,smoothed and step,loss forms. INVALID_ARGUMENT naming the
// line for a malformed row, a non-finite loss or val_loss, or steps that do
// not ascend.
absl::StatusOr<LossCurve> ParseLossCsv(absl::string_view csv);

struct LossChartOptions {
  int width = 800;
  int height = 480;
  std::string title = "Training loss";
};

// An SVG document: a polyline with one point per step for the loss (light)
// and one for the smoothed loss (dark), inside axes with "nice" ticks and
// labels ("step", "loss"), a legend and the title. When any step has a
// validation loss, a third series "validation" (orange) joins those steps
// with a marker at each, since they are sparse (a single one would be an
// invisible line); the y axis covers it too. An empty curve gives a chart
// with axes and a "no data" note.
std::string RenderLossCurveSvg(const LossCurve& curve,
                               const LossChartOptions& options);

// "Nice" tick values (1, 2 or 5 times a power of ten) covering [lo, hi]
// with about `target` ticks, for axes. Exposed for tests.
std::vector<double> NiceTicks(double lo, double hi, int target);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_LOSS_CURVE_H_
