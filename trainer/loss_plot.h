// The loss curve of a model's latest published version as an SVG file, for
// `microgpt-trainer train --plot curve.svg`.
#ifndef MICROGPT_TRAINER_LOSS_PLOT_H_
#define MICROGPT_TRAINER_LOSS_PLOT_H_

#include <string>

#include "absl/status/status.h"

namespace microgpt {

// Reads loss.csv of the latest version of `model` under `checkpoint_root`
// (verified against its manifest) and writes its chart to `out_path`
// (a temporary file renamed into place). NOT_FOUND when the version has no
// loss curve.
absl::Status WriteLossPlot(const std::string& checkpoint_root,
                           const std::string& model,
                           const std::string& out_path);

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_LOSS_PLOT_H_
