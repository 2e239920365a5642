#pragma once
// Line charts as SVG files, for `mqtrain sweep`'s figures: one line per series (the mean over
// trials) with a shaded band from the minimum to the maximum, axes with ticks, a legend. No
// plotting library: the file is written as text.
#include <string>
#include <vector>

namespace mq::tools {

struct ChartSeries {
  std::string label;
  std::vector<double> x, mean, lo, hi;  // lo/hi may be empty (no band)
};

struct ChartText {
  std::string title, x_label, y_label;
};

std::string svg_line_chart(const ChartText& text, const std::vector<ChartSeries>& series);

}  // namespace mq::tools
