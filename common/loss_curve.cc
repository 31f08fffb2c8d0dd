#include "common/loss_curve.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace microgpt {
namespace {

// Orange stands apart from the training loss's two blues, also for readers
// who do not tell red from green.
constexpr char kValidationColor[] = "#d95f02";

std::string XmlEscape(absl::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A tick label without trailing zeros: 0.5, 2, 1000, 2.25.
std::string TickLabel(double value, double spacing) {
  if (std::fabs(value) < spacing * 1e-9) value = 0;
  int decimals = 0;
  if (spacing < 1) {
    decimals = static_cast<int>(std::ceil(-std::log10(spacing) - 1e-9));
  }
  return absl::StrFormat("%.*f", decimals, value);
}

}  // namespace

void LossCurve::Add(int64_t step, double loss) {
  if (!points_.empty() && step <= points_.back().step) return;
  ema_ = kLossSmoothing * ema_ + (1 - kLossSmoothing) * loss;
  weight_ = kLossSmoothing * weight_ + (1 - kLossSmoothing);
  points_.push_back({step, loss, ema_ / weight_, std::nullopt});
}

void LossCurve::AddValidation(int64_t step, double val_loss) {
  const auto point = std::lower_bound(
      points_.begin(), points_.end(), step,
      [](const LossPoint& p, int64_t s) { return p.step < s; });
  if (point != points_.end() && point->step == step) point->val_loss = val_loss;
}

void LossCurve::TruncateAfter(int64_t step) {
  std::vector<LossPoint> kept = std::move(points_);
  *this = LossCurve();
  for (const LossPoint& point : kept) {
    if (point.step > step) break;
    Add(point.step, point.loss);
    points_.back().val_loss = point.val_loss;
  }
}

std::string FormatLossCsv(const LossCurve& curve) {
  std::string csv = "step,loss,smoothed,val_loss\n";
  for (const LossPoint& point : curve.points()) {
    // 9 significant digits read a float32 loss back exactly: a resumed run
    // recomputes the same smoothed values and writes the same file as an
    // uninterrupted one.
    absl::StrAppendFormat(&csv, "%d,%.9g,%.6g,", point.step, point.loss,
                          point.smoothed);
    if (point.val_loss.has_value()) {
      absl::StrAppendFormat(&csv, "%.9g", *point.val_loss);
    }
    csv += '\n';
  }
  return csv;
}

absl::StatusOr<LossCurve> ParseLossCsv(absl::string_view csv) {
  LossCurve curve;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(csv, '\n')) {
    ++line_number;
    line = absl::StripTrailingAsciiWhitespace(line);
    if (line.empty()) continue;
    if (line_number == 1 && absl::StartsWith(line, "step")) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    int64_t step = 0;
    double loss = 0;
    if (fields.size() < 2 || !absl::SimpleAtoi(fields[0], &step) ||
        !absl::SimpleAtod(fields[1], &loss) || !std::isfinite(loss)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number,
          ": expected step,loss[,smoothed[,val_loss]], got \"", line, "\""));
    }
    // An empty val_loss is a step without evaluation; files written before
    // validation existed have no such column.
    std::optional<double> val_loss;
    if (fields.size() >= 4 && !fields[3].empty()) {
      double value = 0;
      if (!absl::SimpleAtod(fields[3], &value) || !std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number, ": val_loss \"", fields[3],
                         "\" is not a finite number"));
      }
      val_loss = value;
    }
    if (!curve.empty() && step <= curve.points().back().step) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": step ", step,
                       " does not follow step ", curve.points().back().step));
    }
    curve.Add(step, loss);
    if (val_loss.has_value()) curve.AddValidation(step, *val_loss);
  }
  return curve;
}

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!(hi > lo)) {  // one value (or none): a unit range around it
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double spacing = magnitude;
  for (double factor : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    spacing = factor * magnitude;
    if (spacing >= raw) break;
  }
  const double first = std::floor(lo / spacing + 1e-9) * spacing;
  const double last = std::ceil(hi / spacing - 1e-9) * spacing;
  std::vector<double> ticks;
  for (int i = 0;; ++i) {
    const double tick = first + i * spacing;
    if (tick > last + spacing * 1e-6) break;
    ticks.push_back(tick);
  }
  return ticks;
}

std::string RenderLossCurveSvg(const LossCurve& curve,
                               const LossChartOptions& options) {
  const double width = options.width, height = options.height;
  const double left = 72, right = 24, top = 48, bottom = 56;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  const std::vector<LossPoint>& points = curve.points();

  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  if (!points.empty()) {
    x_lo = points.front().step;
    x_hi = points.back().step;
    y_lo = std::numeric_limits<double>::infinity();
    y_hi = -y_lo;
    for (const LossPoint& p : points) {
      y_lo = std::min({y_lo, p.loss, p.smoothed});
      y_hi = std::max({y_hi, p.loss, p.smoothed});
      if (p.val_loss.has_value()) {
        y_lo = std::min(y_lo, *p.val_loss);
        y_hi = std::max(y_hi, *p.val_loss);
      }
    }
  }
  // Steps start at 0 on the axis when the run does (from step 1).
  if (x_lo <= 1) x_lo = 0;
  const std::vector<double> x_ticks = NiceTicks(x_lo, x_hi, 8);
  const std::vector<double> y_ticks = NiceTicks(y_lo, y_hi, 6);
  x_lo = x_ticks.front();
  x_hi = x_ticks.back();
  y_lo = y_ticks.front();
  y_hi = y_ticks.back();
  const auto sx = [&](double x) {
    return left + (x - x_lo) / (x_hi - x_lo) * plot_w;
  };
  const auto sy = [&](double y) {
    return top + (y_hi - y) / (y_hi - y_lo) * plot_h;
  };

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      options.width, options.height, options.width, options.height);
  absl::StrAppendFormat(&svg,
                        "<text id=\"title\" x=\"%.1f\" y=\"28\" "
                        "text-anchor=\"middle\" font-size=\"16\" "
                        "font-weight=\"bold\">%s</text>\n",
                        width / 2, XmlEscape(options.title));

  // Grid lines and ticks.
  const double x_spacing = x_ticks.size() > 1 ? x_ticks[1] - x_ticks[0] : 1;
  const double y_spacing = y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1;
  svg += "<g id=\"x-axis\" stroke=\"#dddddd\">\n";
  for (double tick : x_ticks) {
    const double x = sx(tick);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" "
                          "y2=\"%.2f\"/>\n<text x=\"%.2f\" y=\"%.2f\" "
                          "stroke=\"none\" fill=\"#333333\" "
                          "text-anchor=\"middle\">%s</text>\n",
                          x, top, x, top + plot_h + 5, x, top + plot_h + 20,
                          TickLabel(tick, x_spacing));
  }
  svg += "</g>\n<g id=\"y-axis\" stroke=\"#dddddd\">\n";
  for (double tick : y_ticks) {
    const double y = sy(tick);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" "
                          "y2=\"%.2f\"/>\n<text x=\"%.2f\" y=\"%.2f\" "
                          "stroke=\"none\" fill=\"#333333\" "
                          "text-anchor=\"end\">%s</text>\n",
                          left - 5, y, left + plot_w, y, left - 8, y + 4,
                          TickLabel(tick, y_spacing));
  }
  svg += "</g>\n";
  // The axes themselves and their labels.
  absl::StrAppendFormat(
      &svg,
      "<rect id=\"plot-area\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
      "height=\"%.2f\" fill=\"none\" stroke=\"#333333\"/>\n"
      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step</text>\n"
      "<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" "
      "transform=\"rotate(-90 18 %.1f)\">loss</text>\n",
      left, top, plot_w, plot_h, left + plot_w / 2, height - 14,
      top + plot_h / 2, top + plot_h / 2);

  if (points.empty()) {
    absl::StrAppendFormat(&svg,
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                          "fill=\"#888888\">no data</text>\n",
                          left + plot_w / 2, top + plot_h / 2);
  } else {
    std::string raw, smooth, validation, markers;
    for (const LossPoint& p : points) {
      absl::StrAppendFormat(&raw, "%.2f,%.2f ", sx(p.step), sy(p.loss));
      absl::StrAppendFormat(&smooth, "%.2f,%.2f ", sx(p.step), sy(p.smoothed));
      if (p.val_loss.has_value()) {
        absl::StrAppendFormat(&validation, "%.2f,%.2f ", sx(p.step),
                              sy(*p.val_loss));
        absl::StrAppendFormat(&markers,
                              "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\"/>\n",
                              sx(p.step), sy(*p.val_loss));
      }
    }
    raw.pop_back();
    smooth.pop_back();
    absl::StrAppendFormat(
        &svg,
        "<polyline id=\"loss\" fill=\"none\" stroke=\"#9ecae1\" "
        "stroke-width=\"1\" points=\"%s\"/>\n"
        "<polyline id=\"smoothed\" fill=\"none\" stroke=\"#08519c\" "
        "stroke-width=\"2\" points=\"%s\"/>\n",
        raw, smooth);
    const bool has_validation = !validation.empty();
    // Drawn last, on top: its few points would hide under the dense loss.
    if (has_validation) {
      validation.pop_back();
      absl::StrAppendFormat(
          &svg,
          "<polyline id=\"validation\" fill=\"none\" stroke=\"%s\" "
          "stroke-width=\"2\" points=\"%s\"/>\n"
          "<g id=\"validation-markers\" fill=\"%s\">\n%s</g>\n",
          kValidationColor, validation, kValidationColor, markers);
    }
    // Legend, top right inside the plot.
    const double lx = left + plot_w - 190, ly = top + 12;
    absl::StrAppendFormat(
        &svg,
        "<g id=\"legend\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"180\" "
        "height=\"%d\" fill=\"white\" fill-opacity=\"0.85\" "
        "stroke=\"#cccccc\"/>\n"
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
        "stroke=\"#9ecae1\" stroke-width=\"2\"/>\n"
        "<text x=\"%.1f\" y=\"%.1f\">loss per step</text>\n"
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
        "stroke=\"#08519c\" stroke-width=\"2\"/>\n"
        "<text x=\"%.1f\" y=\"%.1f\">smoothed (EMA %.2f)</text>\n",
        lx, ly - 4, has_validation ? 62 : 44, lx + 8, ly + 10, lx + 32, ly + 10,
        lx + 40, ly + 14, lx + 8, ly + 28, lx + 32, ly + 28, lx + 40, ly + 32,
        kLossSmoothing);
    if (has_validation) {
      absl::StrAppendFormat(
          &svg,
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
          "stroke=\"%s\" stroke-width=\"2\"/>\n"
          "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n"
          "<text x=\"%.1f\" y=\"%.1f\">validation</text>\n",
          lx + 8, ly + 46, lx + 32, ly + 46, kValidationColor, lx + 20, ly + 46,
          kValidationColor, lx + 40, ly + 50);
    }
    svg += "</g>\n";
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace microgpt
