// Loss curves: the smoothing, the validation losses, the CSV the trainer
// stores (and the older forms it must still read), and the SVG chart (one
// polyline point per step, every point inside the plot area).
#include "common/loss_curve.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace microgpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

LossCurve Curve(const std::vector<double>& losses, int64_t first_step = 1) {
  LossCurve curve;
  for (size_t i = 0; i < losses.size(); ++i) {
    curve.Add(first_step + static_cast<int64_t>(i), losses[i]);
  }
  return curve;
}

// The value of attribute `name` of the first element with id="id".
std::string Attribute(const std::string& svg, const std::string& id,
                      const std::string& name) {
  const size_t element = svg.find("id=\"" + id + "\"");
  if (element == std::string::npos) return "";
  const size_t start = svg.rfind('<', element);
  const size_t end = svg.find('>', element);
  const std::string tag = svg.substr(start, end - start);
  const std::string key = " " + name + "=\"";
  const size_t at = tag.find(key);
  if (at == std::string::npos) return "";
  const size_t value = at + key.size();
  return tag.substr(value, tag.find('"', value) - value);
}

struct Point {
  double x, y;
};

std::vector<Point> PolylinePoints(const std::string& svg,
                                  const std::string& id) {
  std::vector<Point> points;
  for (absl::string_view pair :
       absl::StrSplit(Attribute(svg, id, "points"), ' ', absl::SkipEmpty())) {
    std::vector<absl::string_view> xy = absl::StrSplit(pair, ',');
    Point p{NAN, NAN};
    if (xy.size() == 2 && absl::SimpleAtod(xy[0], &p.x) &&
        absl::SimpleAtod(xy[1], &p.y)) {
      points.push_back(p);
    }
  }
  return points;
}

double Number(const std::string& text) {
  double value = NAN;
  EXPECT_TRUE(absl::SimpleAtod(text, &value)) << text;
  return value;
}

TEST(LossCurveTest, SmoothingIsABiasCorrectedMovingAverage) {
  const LossCurve constant = Curve({2, 2, 2, 2});
  for (const LossPoint& p : constant.points()) EXPECT_DOUBLE_EQ(p.smoothed, 2);

  const LossCurve curve = Curve({4, 2});
  EXPECT_DOUBLE_EQ(curve.points()[0].smoothed, 4);  // the first loss
  // (0.95 * 0.05 * 4 + 0.05 * 2) / (1 - 0.95^2)
  EXPECT_NEAR(curve.points()[1].smoothed,
              (0.95 * 0.05 * 4 + 0.05 * 2) / (1 - 0.95 * 0.95), 1e-12);
  EXPECT_LT(curve.points()[1].smoothed, 4);
  EXPECT_GT(curve.points()[1].smoothed, 2.9);  // heavier on the past
}

TEST(LossCurveTest, StepsMustAscend) {
  LossCurve curve = Curve({3, 2});
  curve.Add(2, 1);  // not after step 2: ignored
  curve.Add(1, 1);
  EXPECT_EQ(curve.points().size(), 2u);
  curve.Add(5, 1);
  EXPECT_EQ(curve.points().back().step, 5);
}

TEST(LossCurveTest, CsvRoundTrip) {
  const LossCurve curve = Curve({3.5, 3.25, 2.125});
  const std::string csv = FormatLossCsv(curve);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "step,loss,smoothed,val_loss");
  EXPECT_THAT(csv, HasSubstr("\n1,3.5,3.5,\n"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  absl::StatusOr<LossCurve> parsed = ParseLossCsv(csv);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->points().size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(parsed->points()[i].step, curve.points()[i].step);
    EXPECT_DOUBLE_EQ(parsed->points()[i].loss, curve.points()[i].loss);
    EXPECT_NEAR(parsed->points()[i].smoothed, curve.points()[i].smoothed, 1e-5);
  }
  // A header is optional, and so is the smoothed column.
  EXPECT_EQ(ParseLossCsv("1,2\n2,1\n")->points().size(), 2u);
  EXPECT_TRUE(ParseLossCsv("")->empty());
}

TEST(LossCurveTest, AddValidationSetsThatStep) {
  LossCurve curve = Curve({3, 2, 1});
  curve.AddValidation(3, 2.5);
  curve.AddValidation(1, 3.5);
  curve.AddValidation(7, 9);  // not in the curve: ignored
  curve.AddValidation(0, 9);
  ASSERT_EQ(curve.points().size(), 3u);
  EXPECT_EQ(curve.points()[0].val_loss, 3.5);
  EXPECT_EQ(curve.points()[1].val_loss, std::nullopt);
  EXPECT_EQ(curve.points()[2].val_loss, 2.5);
  // Validation leaves the training loss and its smoothing as they were.
  const LossCurve plain = Curve({3, 2, 1});
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(curve.points()[i].loss, plain.points()[i].loss);
    EXPECT_EQ(curve.points()[i].smoothed, plain.points()[i].smoothed);
  }
}

TEST(LossCurveTest, CsvRoundTripWithValidation) {
  LossCurve curve;
  for (int step = 1; step <= 20; ++step) {
    curve.Add(step, static_cast<float>(4.0 / step + 1));
    if (step % 5 == 0) {
      curve.AddValidation(step, static_cast<float>(4.3 / step + 1.1));
    }
  }
  const std::string csv = FormatLossCsv(curve);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "step,loss,smoothed,val_loss");
  EXPECT_THAT(csv, HasSubstr("\n4,2,"));
  EXPECT_THAT(csv, HasSubstr(",\n5,1.79999995,"));
  // float32 1.96 (4.3 / 5 + 1.1) with 9 significant digits.
  EXPECT_THAT(csv, HasSubstr(",1.96000004\n6,"));
  absl::StatusOr<LossCurve> parsed = ParseLossCsv(csv);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->points().size(), 20u);
  // 9 digits give back the float32 value (not the double it was widened to).
  for (size_t i = 0; i < 20; ++i) {
    const std::optional<double>& want = curve.points()[i].val_loss;
    const std::optional<double>& got = parsed->points()[i].val_loss;
    ASSERT_EQ(got.has_value(), want.has_value()) << i;
    if (want.has_value()) {
      EXPECT_EQ(static_cast<float>(*got), static_cast<float>(*want)) << i;
    }
  }
  EXPECT_EQ(FormatLossCsv(*parsed), csv);
}

TEST(LossCurveTest, OlderCsvFormsParseWithoutValidation) {
  // loss.csv of versions published before validation existed.
  absl::StatusOr<LossCurve> three =
      ParseLossCsv("step,loss,smoothed\n1,3.5,3.5\n2,3.25,3.37179\n");
  ASSERT_TRUE(three.ok()) << three.status();
  ASSERT_EQ(three->points().size(), 2u);
  EXPECT_EQ(three->points()[1].loss, 3.25);
  for (const LossPoint& p : three->points()) {
    EXPECT_EQ(p.val_loss, std::nullopt);
  }
  EXPECT_EQ(FormatLossCsv(*three),
            "step,loss,smoothed,val_loss\n1,3.5,3.5,\n2,3.25,3.37179,\n");
  absl::StatusOr<LossCurve> two = ParseLossCsv("1,2\n2,1\n");
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->points()[1].val_loss, std::nullopt);
}

TEST(LossCurveTest, BadValLossNamesTheLine) {
  for (const char* bad : {"x", "nan", "inf", "-inf", "2.5x", "1e999"}) {
    const std::string csv = absl::StrCat(
        "step,loss,smoothed,val_loss\n1,3,3,\n2,2,2.5,2.75\n3,1,2,", bad, "\n");
    absl::StatusOr<LossCurve> parsed = ParseLossCsv(csv);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("line 4")) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("val_loss")) << bad;
  }
}

TEST(LossCurveTest, FloatLossesRoundTripExactly) {
  // Training losses are float32: parsing the CSV back (a resumed run) must
  // give the same curve, and so the same file, as the run that wrote it.
  LossCurve curve;
  for (int step = 1; step <= 50; ++step) {
    curve.Add(step, static_cast<float>(3.0 / step + 0.123456789 * step));
  }
  absl::StatusOr<LossCurve> parsed = ParseLossCsv(FormatLossCsv(curve));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(FormatLossCsv(*parsed), FormatLossCsv(curve));
}

TEST(LossCurveTest, MalformedCsvNamesTheLine) {
  for (const char* bad :
       {"step,loss\n1,2\nx,3\n", "step,loss\n1,2\n2\n", "step,loss\n1,nan\n",
        "step,loss\n1,2\n1,3\n", "step,loss\n2,2\n1,3\n"}) {
    absl::StatusOr<LossCurve> parsed = ParseLossCsv(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("line ")) << bad;
  }
}

TEST(LossCurveTest, TruncateAfterKeepsAPrefix) {
  LossCurve curve = Curve({5, 4, 3, 2, 1});
  const LossCurve prefix = Curve({5, 4, 3});
  curve.TruncateAfter(3);
  ASSERT_EQ(curve.points().size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_DOUBLE_EQ(curve.points()[i].smoothed, prefix.points()[i].smoothed);
  }
  curve.Add(4, 10);  // the smoothing continues from the prefix
  EXPECT_DOUBLE_EQ(curve.points()[3].smoothed,
                   Curve({5, 4, 3, 10}).points()[3].smoothed);
}

TEST(LossCurveTest, TruncateAfterKeepsValidation) {
  LossCurve curve = Curve({5, 4, 3, 2, 1});
  curve.AddValidation(2, 4.5);
  curve.AddValidation(3, 3.5);
  curve.AddValidation(5, 1.5);
  curve.TruncateAfter(3);
  ASSERT_EQ(curve.points().size(), 3u);
  EXPECT_EQ(curve.points()[0].val_loss, std::nullopt);
  EXPECT_EQ(curve.points()[1].val_loss, 4.5);
  EXPECT_EQ(curve.points()[2].val_loss, 3.5);
  curve.Add(4, 2);  // a resumed run's new step starts without one
  EXPECT_EQ(curve.points()[3].val_loss, std::nullopt);
}

TEST(LossCurveTest, NiceTicksCoverTheRange) {
  EXPECT_THAT(NiceTicks(0, 1000, 8), ElementsAre(0, 200, 400, 600, 800, 1000));
  EXPECT_THAT(NiceTicks(1.7, 3.3, 6), ElementsAre(1.5, 2, 2.5, 3, 3.5));
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{
           {0, 1}, {2.31, 2.32}, {0.001, 7}, {5, 5}, {-3, 12}, {1, 123456}}) {
    const std::vector<double> ticks = NiceTicks(lo, hi, 6);
    ASSERT_GE(ticks.size(), 2u) << lo << " " << hi;
    EXPECT_LE(ticks.front(), lo);
    EXPECT_GE(ticks.back(), hi);
    EXPECT_LE(ticks.size(), 13u) << lo << " " << hi;
  }
}

TEST(LossCurveTest, SvgHasOnePointPerStepInsideTheAxes) {
  std::vector<double> losses;
  for (int i = 0; i < 250; ++i) {
    losses.push_back(3.3 * std::exp(-i / 80.0) + 1.8 + 0.3 * std::sin(i));
  }
  const LossCurve curve = Curve(losses);
  LossChartOptions options;
  options.title = "names <1000> & co";
  const std::string svg = RenderLossCurveSvg(curve, options);

  EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
  EXPECT_THAT(svg, HasSubstr("</svg>"));
  EXPECT_THAT(svg, HasSubstr(">names &lt;1000&gt; &amp; co</text>"));
  EXPECT_THAT(svg, HasSubstr(">step</text>"));
  EXPECT_THAT(svg, HasSubstr(">loss</text>"));

  const double left = Number(Attribute(svg, "plot-area", "x"));
  const double top = Number(Attribute(svg, "plot-area", "y"));
  const double right = left + Number(Attribute(svg, "plot-area", "width"));
  const double bottom = top + Number(Attribute(svg, "plot-area", "height"));
  ASSERT_GT(right, left);
  ASSERT_GT(bottom, top);
  EXPECT_LE(right, options.width);
  EXPECT_LE(bottom, options.height);

  for (const char* id : {"loss", "smoothed"}) {
    const std::vector<Point> points = PolylinePoints(svg, id);
    ASSERT_EQ(points.size(), losses.size()) << id;
    for (size_t i = 0; i < points.size(); ++i) {
      EXPECT_GE(points[i].x, left - 0.01) << id << " " << i;
      EXPECT_LE(points[i].x, right + 0.01) << id << " " << i;
      EXPECT_GE(points[i].y, top - 0.01) << id << " " << i;
      EXPECT_LE(points[i].y, bottom + 0.01) << id << " " << i;
      if (i > 0) {
        EXPECT_GT(points[i].x, points[i - 1].x) << id;
      }
    }
  }
  // SVG's y grows downwards: the first (largest) loss is the highest point.
  const std::vector<Point> raw = PolylinePoints(svg, "loss");
  EXPECT_LT(raw.front().y, raw.back().y);
  // The raw curve is light and thin, the smoothed one dark and thick.
  EXPECT_EQ(Attribute(svg, "loss", "stroke-width"), "1");
  EXPECT_EQ(Attribute(svg, "smoothed", "stroke-width"), "2");

  // Tick labels: 0 .. 250 by 50 on x, 1 .. 6 on y (losses 1.5 .. 5.4).
  for (const char* label :
       {">0</text>", ">50</text>", ">250</text>", ">1</text>", ">6</text>"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
  EXPECT_EQ(svg.find(">7</text>"), std::string::npos);
  // No validation data, no validation series or legend entry.
  EXPECT_THAT(svg, Not(HasSubstr("validation")));
  EXPECT_THAT(svg, Not(HasSubstr("<circle")));
}

TEST(LossCurveTest, SvgDrawsValidationWhereThereIsSome) {
  LossCurve curve;
  for (int step = 1; step <= 2000; ++step) {
    curve.Add(step,
              1.5 + 2.7 * std::exp(-step / 400.0) + 0.1 * std::sin(step * 0.7));
  }
  // Every 250 steps, and above every training loss at the first one: the y
  // axis must reach it.
  std::vector<int64_t> val_steps;
  for (int64_t step = 250; step <= 2000; step += 250) val_steps.push_back(step);
  for (int64_t step : val_steps) {
    curve.AddValidation(
        step, step == 250 ? 5.6 : 1.7 + 2.7 * std::exp(-step / 400.0));
  }
  const std::string svg = RenderLossCurveSvg(curve, LossChartOptions());

  const double left = Number(Attribute(svg, "plot-area", "x"));
  const double top = Number(Attribute(svg, "plot-area", "y"));
  const double right = left + Number(Attribute(svg, "plot-area", "width"));
  const double bottom = top + Number(Attribute(svg, "plot-area", "height"));
  const std::vector<Point> validation = PolylinePoints(svg, "validation");
  ASSERT_EQ(validation.size(), val_steps.size());
  const std::vector<Point> loss = PolylinePoints(svg, "loss");
  ASSERT_EQ(loss.size(), 2000u);
  for (size_t i = 0; i < validation.size(); ++i) {
    // At the x of its step, inside the plot.
    EXPECT_NEAR(validation[i].x, loss[val_steps[i] - 1].x, 0.01) << i;
    EXPECT_GE(validation[i].y, top - 0.01) << i;
    EXPECT_LE(validation[i].y, bottom + 0.01) << i;
  }
  EXPECT_GE(validation.front().x, left);
  EXPECT_LE(validation.back().x, right);
  EXPECT_THAT(svg, HasSubstr(">6</text>"));  // the tick above 5.6
  // A colour of its own, a marker per point, and a legend entry.
  const std::string color = Attribute(svg, "validation", "stroke");
  EXPECT_FALSE(color.empty());
  EXPECT_NE(color, Attribute(svg, "loss", "stroke"));
  EXPECT_NE(color, Attribute(svg, "smoothed", "stroke"));
  EXPECT_EQ(Attribute(svg, "validation-markers", "fill"), color);
  const size_t markers = svg.find("id=\"validation-markers\"");
  ASSERT_NE(markers, std::string::npos);
  const std::string marker_group =
      svg.substr(markers, svg.find("</g>", markers) - markers);
  size_t circles = 0;
  for (size_t at = marker_group.find("<circle"); at != std::string::npos;
       at = marker_group.find("<circle", at + 1)) {
    ++circles;
  }
  EXPECT_EQ(circles, val_steps.size());
  const size_t legend = svg.find("id=\"legend\"");
  ASSERT_NE(legend, std::string::npos);
  EXPECT_NE(svg.find(">validation</text>", legend), std::string::npos);
}

TEST(LossCurveTest, SvgOfOneStepAndOfNothing) {
  const std::string one = RenderLossCurveSvg(Curve({2.5}), LossChartOptions());
  EXPECT_EQ(PolylinePoints(one, "loss").size(), 1u);
  EXPECT_THAT(one, Not(HasSubstr("nan")));
  EXPECT_THAT(one, Not(HasSubstr("inf")));
  const std::string none = RenderLossCurveSvg(LossCurve(), LossChartOptions());
  EXPECT_THAT(none, HasSubstr("no data"));
  EXPECT_THAT(none, Not(HasSubstr("<polyline")));
}

}  // namespace
}  // namespace microgpt
