#pragma once
// Plots through gnuplot: a script and its data go to a temporary directory,
// `gnuplot script` renders to a temporary file next to the target, which is
// then renamed into place (a failed or killed run never leaves a half-written
// image). Output format by extension: .png (pngcairo, 1400x700) or .svg.
// No torch headers here.
//
// Errors: std::invalid_argument for a bad extension or inconsistent input;
// std::runtime_error when gnuplot is missing (message says how to install it)
// or fails (message carries gnuplot's stderr). The gnuplot binary is
// `gnuplot` on PATH unless the environment variable DEEPREDUCE_GNUPLOT names
// another.
//
// All titles and labels are drawn literally (noenhanced): "layer2.0.conv_1"
// shows its underscore.

#include <string>
#include <vector>

namespace dr::report {

struct BarSeries {
  std::string title;
  std::vector<double> values;  // one per category; NaN = no bar
};

// Grouped vertical bars, one group per category, one bar per series (e.g.
// appendix Figure 7: per layer, % of params, FLOPs and ReLUs). x tick labels
// are rotated 90 degrees when they would not fit side by side. Throws
// std::invalid_argument when there are no categories or series, or a series
// has a different number of values than there are categories.
void plot_grouped_bars(const std::string& file, const std::string& title,
                       const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                       const std::string& ylabel);

struct XYPoint {
  double x = 0, y = 0;
  std::string label;
};

struct XYSeries {
  std::string title;
  std::vector<XYPoint> points;
  bool lines = false;   // connect the points in the given order
  bool labels = false;  // draw each point's label next to it
  // "" a marker of its own (each such series gets its own point type and
  // colour, in order), "baseline" = a big star, "frontier" = a black dashed
  // line without markers, drawn beneath every other series so that it hides
  // none of their points.
  std::string style;
};

// The gnuplot `with ...` clause (line/point type, colour) of each series of
// plot_xy, in order: every marker series its own point type (filled circle,
// square, triangle, diamond, ...) and its own colour of the Okabe-Ito
// colour-blind-safe palette (blue, vermillion, bluish green, reddish purple,
// orange, sky blue, ...), the frontier style a black dashed line. Throws
// std::invalid_argument on an unknown style.
std::vector<std::string> xy_series_styles(const std::vector<XYSeries>& series);

// Scatter/line plot (e.g. a Pareto frontier: accuracy vs ReLU count with
// logx). With logx, x ticks sit at 1, 2, 5 x 10^k and read "50K", "100K".
// Throws std::invalid_argument when there is no point at all, on an unknown
// style, or (logx) on an x <= 0.
void plot_xy(const std::string& file, const std::string& title, const std::string& xlabel,
             const std::string& ylabel, bool logx, const std::vector<XYSeries>& series);

// Refuses (std::invalid_argument) a file name plot_xy/plot_grouped_bars
// cannot write (an extension other than .png or .svg), before any work.
void check_plot_file(const std::string& file);

// The plot formats (file extensions without the dot): png, svg.
const std::vector<std::string>& plot_formats();
// Refuses (std::invalid_argument) a --plot-format value other than those,
// naming `option` and what is accepted. Every command's one check.
void check_plot_format(const std::string& ext, const std::string& option = "--plot-format");

// A double-quoted gnuplot string literal with `s` escaped (\\ \" \n ...).
std::string gnuplot_quote(const std::string& s);

}  // namespace dr::report
