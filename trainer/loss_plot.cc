#include "trainer/loss_plot.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint_store.h"
#include "common/loss_curve.h"

namespace microgpt {

absl::Status WriteLossPlot(const std::string& checkpoint_root,
                           const std::string& model,
                           const std::string& out_path) {
  const CheckpointStore store(checkpoint_root);
  absl::StatusOr<std::vector<int64_t>> versions = store.ListVersions(model);
  if (!versions.ok()) return versions.status();
  if (versions->empty()) {
    return absl::NotFoundError(
        absl::StrCat("model \"", model, "\" has no published version"));
  }
  const int64_t version = versions->back();
  absl::StatusOr<std::string> csv =
      store.LoadExtraFile(model, version, kLossCurveFile);
  if (!csv.ok()) return csv.status();
  absl::StatusOr<LossCurve> curve = ParseLossCsv(*csv);
  if (!curve.ok()) return curve.status();
  LossChartOptions options;
  options.title = absl::StrCat(model, "/", version, ": training loss");
  const std::string svg = RenderLossCurveSvg(*curve, options);

  const std::string temp = out_path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << svg;
    out.close();
    if (!out)
      return absl::UnavailableError(absl::StrCat("cannot write ", temp));
  }
  std::error_code error;
  std::filesystem::rename(temp, out_path, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot rename ", temp, ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace microgpt
