#include "cli/plot_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/loss_curve.h"

namespace microgpt {
namespace {

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "names/1000: training loss" for .../names/1000/loss.csv.
std::string DefaultTitle(const std::string& csv_path) {
  const std::filesystem::path dir =
      std::filesystem::path(csv_path).parent_path();
  const std::string version = dir.filename().string();
  const std::string model = dir.parent_path().filename().string();
  if (model.empty() || version.empty()) return "Training loss";
  return absl::StrCat(model, "/", version, ": training loss");
}

}  // namespace

absl::Status PlotCommand(const std::string& csv_path,
                         const std::string& out_path,
                         const std::string& title) {
  if (csv_path.empty() || out_path.empty()) {
    return absl::InvalidArgumentError(
        "usage: microgpt plot --csv LOSS.CSV --out CURVE.SVG");
  }
  absl::StatusOr<std::string> csv = ReadAll(csv_path);
  if (!csv.ok()) return csv.status();
  absl::StatusOr<LossCurve> curve = ParseLossCsv(*csv);
  if (!curve.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(csv_path, ": ", curve.status().message()));
  }
  LossChartOptions options;
  options.title = title.empty() ? DefaultTitle(csv_path) : title;
  const std::string svg = RenderLossCurveSvg(*curve, options);

  const std::string temp = out_path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << svg;
    out.close();
    if (!out) {
      return absl::UnavailableError(absl::StrCat("cannot write ", temp));
    }
  }
  std::error_code error;
  std::filesystem::rename(temp, out_path, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot rename ", temp, ": ", error.message()));
  }
  std::printf("wrote %s (%zu steps)\n", out_path.c_str(),
              curve->points().size());
  return absl::OkStatus();
}

}  // namespace microgpt
