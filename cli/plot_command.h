// `microgpt plot`: draws a loss curve (the loss.csv a trainer stores in each
// published version) as an SVG chart a person can open.
//
//   microgpt plot --csv ckpt/names/1000/loss.csv --out curve.svg
#ifndef MICROGPT_CLI_PLOT_COMMAND_H_
#define MICROGPT_CLI_PLOT_COMMAND_H_

#include <string>

#include "absl/status/status.h"

namespace microgpt {

// Reads `csv_path`, writes the chart to `out_path` (atomically: a temporary
// file renamed into place) and prints where it went. An empty `title` names
// the chart after the CSV's version directory ("names/1000: training loss").
absl::Status PlotCommand(const std::string& csv_path,
                         const std::string& out_path, const std::string& title);

}  // namespace microgpt

#endif  // MICROGPT_CLI_PLOT_COMMAND_H_
