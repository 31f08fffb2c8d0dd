// Loss curves: the smoothing, the CSV the trainer stores, and the SVG chart
// (one polyline point per step, every point inside the plot area).
#include "common/loss_curve.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
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
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "step,loss,smoothed");
  EXPECT_THAT(csv, HasSubstr("\n1,3.5,3.5\n"));
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
      if (i > 0) EXPECT_GT(points[i].x, points[i - 1].x) << id;
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
