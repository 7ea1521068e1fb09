#include "report/plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "report/format.h"
#include "util/fs.h"
#include "util/strings.h"

extern char** environ;

namespace dr::report {

namespace fs = std::filesystem;

std::string gnuplot_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) break;  // other control characters
        out += c;
    }
  }
  return out + "\"";
}

namespace {

// A scratch directory removed on scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/deepreduce-plot-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data()))
      throw std::runtime_error("cannot create a temporary directory '" + tmpl + "': " + std::strerror(errno));
    path = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// "png" or "svg" from the file name; anything else is a caller error.
std::string output_kind(const std::string& file) {
  const std::string ext = fs::path(file).extension().string(), lower = util::lower(ext);
  for (const auto& f : plot_formats())
    if (lower == "." + f) return f;
  throw std::invalid_argument("cannot plot to '" + file + "': " +
                              (ext.empty() ? std::string("no extension") : "unknown extension '" + ext + "'") +
                              " (accepted: ." + util::join(plot_formats(), ", .") + ")");
}

std::string terminal(const std::string& kind) {
  if (kind == "png") return "set terminal pngcairo size 1400,700 font \"DejaVu Sans,11\" noenhanced\n";
  return "set terminal svg size 1400,700 dynamic font \"DejaVu Sans,11\" noenhanced background rgb \"white\"\n";
}

std::string num(double v) {
  if (!std::isfinite(v)) return "NaN";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

constexpr int kColours = 8;
const char* const colours[kColours] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                       "#E69F00", "#56B4E9", "#F0E442", "#000000"};

// Common preamble: terminal, output, colours, title.
std::string preamble(const std::string& kind, const std::string& out, const std::string& title) {
  std::ostringstream s;
  s << "set encoding utf8\n" << terminal(kind) << "set output " << gnuplot_quote(out) << "\n";
  // Colour-blind-friendly palette (Okabe-Ito), one per series, ordered so
  // that neighbours differ most (vermillion and orange, blue and sky blue far apart).
  for (int i = 0; i < kColours; ++i) s << "set linetype " << i + 1 << " lc rgb \"" << colours[i] << "\" lw 1.5\n";
  s << "set linetype cycle 8\n";
  s << "set title " << gnuplot_quote(title) << " noenhanced font \",13\"\n";
  s << "set key below center horizontal Left reverse samplen 2 height 0.6 noenhanced\n";
  return s.str();
}

// Runs gnuplot on `script` (inside `dir`), then moves the rendered `rendered`
// file to `file` atomically.
void run_gnuplot(const TempDir& dir, const std::string& script, const std::string& rendered,
                 const std::string& file) {
  const std::string script_path = dir.path + "/plot.gp";
  util::write_file_atomic(script_path, script);
  const std::string err_path = dir.path + "/stderr.txt";

  const char* env = std::getenv("DEEPREDUCE_GNUPLOT");
  const std::string bin = env && *env ? env : "gnuplot";

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv = {const_cast<char*>(bin.c_str()), const_cast<char*>(script_path.c_str()), nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, bin.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    throw std::runtime_error("plot '" + file + "': cannot run gnuplot ('" + bin + "'): " + std::strerror(rc) +
                             "; install it (Debian: apt-get install gnuplot-nox) or set DEEPREDUCE_GNUPLOT "
                             "to its path");
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waiting for gnuplot: ") + std::strerror(errno));
  }
  std::string err;
  try {
    err = util::read_file(err_path);
  } catch (const std::exception&) {
  }
  while (!err.empty() && std::isspace(static_cast<unsigned char>(err.back()))) err.pop_back();
  const bool exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  std::string why;
  if (!exited_ok) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
      why = "gnuplot ('" + bin + "') could not be run (exit 127); install it (Debian: apt-get install gnuplot-nox)";
    else if (WIFEXITED(status))
      why = "gnuplot exited with status " + std::to_string(WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
      why = "gnuplot was killed by signal " + std::to_string(WTERMSIG(status));
    else
      why = "gnuplot failed";
  } else {
    std::error_code ec;
    const auto size = fs::file_size(rendered, ec);
    if (ec || size == 0) why = "gnuplot produced no output";
  }
  if (!why.empty())
    throw std::runtime_error("plot '" + file + "': " + why + (err.empty() ? "" : ":\n" + err));
  util::write_file_atomic(file, util::read_file(rendered));
}

int display_width(const std::string& s) {
  int n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string tick_label(double t) {
  if (std::fabs(t) >= 1000) {
    // Ticks are m x 10^k with m in {1, 1.5, 2, 2.5, ...}: one decimal at most.
    const std::string s0 = si(t, 0), s1 = si(t, 1);
    const bool whole = s1.size() >= 3 && s1.compare(s1.size() - 3, 2, ".0") == 0;
    return whole ? s0 : s1;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", t);
  return buf;
}

// Ticks at m x 10^k within [lo, hi]: m in {1, 2, 5}, or finer when that gives
// fewer than three.
std::vector<double> log_ticks(double lo, double hi) {
  auto gen = [&](const std::vector<double>& ms) {
    std::vector<double> out;
    for (int k = static_cast<int>(std::floor(std::log10(lo))) - 1; k <= static_cast<int>(std::ceil(std::log10(hi)));
         ++k)
      for (double m : ms) {
        const double t = m * std::pow(10.0, k);
        if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) out.push_back(t);
      }
    return out;
  };
  auto ticks = gen({1, 2, 5});
  if (ticks.size() > 16) ticks = gen({1});
  if (ticks.size() < 3) ticks = gen({1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9});
  return ticks;
}

}  // namespace

void plot_grouped_bars(const std::string& file, const std::string& title,
                       const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                       const std::string& ylabel) {
  const std::string kind = output_kind(file);
  if (categories.empty()) throw std::invalid_argument("plot '" + file + "': no categories to plot");
  if (series.empty()) throw std::invalid_argument("plot '" + file + "': no series to plot");
  for (const auto& s : series)
    if (s.values.size() != categories.size())
      throw std::invalid_argument("plot '" + file + "': series '" + s.title + "' has " +
                                  std::to_string(s.values.size()) + " values for " +
                                  std::to_string(categories.size()) + " categories");

  TempDir dir;
  const std::string data = dir.path + "/bars.dat";
  {
    std::ostringstream d;
    d << "# index";
    for (size_t j = 0; j < series.size(); ++j) d << " s" << j;
    d << "\n";
    for (size_t i = 0; i < categories.size(); ++i) {
      d << i;
      for (const auto& s : series) d << " " << num(s.values[i]);
      d << "\n";
    }
    util::write_file_atomic(data, d.str());
  }
  bool nonneg = true;
  for (const auto& s : series)
    for (double v : s.values)
      if (std::isfinite(v) && v < 0) nonneg = false;

  const std::string rendered = dir.path + "/out." + kind;
  std::ostringstream s;
  s << preamble(kind, rendered, title);
  const int n = static_cast<int>(categories.size());
  int longest = 0;
  for (const auto& c : categories) longest = std::max(longest, display_width(c));
  // ~1250 px of plot width; ~7 px per character at 11 pt.
  const bool rotate = longest * 7.0 > 0.9 * 1250.0 / n;
  const std::string tick_font = n > 60 ? ",7" : (n > 30 ? ",9" : ",11");
  s << "set style data histograms\n"
    << "set style histogram clustered gap 1\n"
    << "set style fill solid 0.9 border -1\n"
    << "set grid ytics\n"
    << "set ylabel " << gnuplot_quote(ylabel) << "\n"
    << "set xrange [-0.6:" << n - 0.4 << "]\n"
    << (nonneg ? "set yrange [0:*]\n" : "")
    << "set xtics () nomirror scale 0 font \"" << tick_font << "\""
    << (rotate ? " rotate by 90 right" : "") << "\n";
  for (int i = 0; i < n; ++i) s << "set xtics add (" << gnuplot_quote(categories[i]) << " " << i << ")\n";
  s << "plot ";
  for (size_t j = 0; j < series.size(); ++j) {
    if (j) s << ", \\\n     ";
    s << gnuplot_quote(data) << " using " << j + 2 << " title " << gnuplot_quote(series[j].title)
      << " lt " << (j % 8) + 1;
  }
  s << "\nunset output\n";
  run_gnuplot(dir, s.str(), rendered, file);
}

void plot_xy(const std::string& file, const std::string& title, const std::string& xlabel,
             const std::string& ylabel, bool logx, const std::vector<XYSeries>& series) {
  const std::string kind = output_kind(file);
  double xmin = INFINITY, xmax = -INFINITY;
  size_t points = 0;
  std::vector<std::string> styles;
  try {
    styles = xy_series_styles(series);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("plot '" + file + "': " + e.what());
  }
  for (const auto& sr : series) {
    for (const auto& p : sr.points) {
      if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
      if (logx && p.x <= 0)
        throw std::invalid_argument("plot '" + file + "': series '" + sr.title + "' has x = " + num(p.x) +
                                    ", which a log-scale x axis cannot show");
      xmin = std::min(xmin, p.x);
      xmax = std::max(xmax, p.x);
      ++points;
    }
  }
  if (points == 0) throw std::invalid_argument("plot '" + file + "': no points to plot");

  TempDir dir;
  const std::string rendered = dir.path + "/out." + kind;
  std::ostringstream s;
  s << preamble(kind, rendered, title);
  s << "set grid\n"
    << "set xlabel " << gnuplot_quote(xlabel) << "\n"
    << "set ylabel " << gnuplot_quote(ylabel) << "\n";
  if (logx) {
    double lo = xmin / 1.25, hi = xmax * 1.25;
    if (xmin == xmax) lo = xmin / 2, hi = xmax * 2;
    s << "set logscale x 10\n"
      << "set xrange [" << num(lo) << ":" << num(hi) << "]\n"
      << "set xtics ()\n"
      << "set mxtics default\n";
    for (double t : log_ticks(lo, hi))
      s << "set xtics add (" << gnuplot_quote(tick_label(t)) << " " << num(t) << ")\n";
    s << "set offsets 0, 0, graph 0.08, graph 0.08\n";
  } else {
    s << "set offsets graph 0.04, graph 0.04, graph 0.08, graph 0.08\n";
  }

  // The frontier lines first, so that every marker is drawn over them.
  std::vector<std::string> clauses, under;
  int label_id = 0;
  for (size_t j = 0; j < series.size(); ++j) {
    const auto& sr = series[j];
    std::ostringstream d;
    size_t kept = 0;
    for (const auto& p : sr.points) {
      if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
      d << num(p.x) << " " << num(p.y) << "\n";
      ++kept;
      if (sr.labels && !p.label.empty())
        s << "set label " << ++label_id << " " << gnuplot_quote(p.label) << " at first " << num(p.x)
          << ", first " << num(p.y) << " offset char 0.8,0.6 font \",9\" textcolor rgb \"#333333\""
          << " noenhanced front\n";
    }
    if (kept == 0) continue;
    const std::string data = dir.path + "/series" + std::to_string(j) + ".dat";
    util::write_file_atomic(data, d.str());
    (sr.style == "frontier" ? under : clauses)
        .push_back(gnuplot_quote(data) + " using 1:2 with " + styles[j] + " title " + gnuplot_quote(sr.title));
  }
  clauses.insert(clauses.begin(), under.begin(), under.end());
  s << "plot ";
  for (size_t i = 0; i < clauses.size(); ++i) s << (i ? ", \\\n     " : "") << clauses[i];
  s << "\nunset output\n";
  run_gnuplot(dir, s.str(), rendered, file);
}

std::vector<std::string> xy_series_styles(const std::vector<XYSeries>& series) {
  // Filled circle, square, upward triangle, diamond, downward triangle,
  // pentagon; then the open ones.
  static const int point_types[] = {7, 5, 9, 13, 11, 15, 6, 4, 8, 12};
  constexpr int kPoints = sizeof point_types / sizeof point_types[0];
  std::vector<std::string> out;
  int k = 0;  // the marker series so far: each its own point type and colour
  for (const auto& sr : series) {
    if (sr.style == "frontier") {
      out.push_back(std::string("lines dt 2 lw 1.5 lc rgb \"#000000\""));
      continue;
    }
    if (!sr.style.empty() && sr.style != "baseline")
      throw std::invalid_argument("series '" + sr.title + "' has unknown style '" + sr.style +
                                  "' (accepted: \"\", baseline, frontier)");
    const std::string lc = " lc rgb \"" + std::string(colours[k % kColours]) + "\"";
    // Later series a little smaller and thinner, so that where two coincide
    // (two methods at the same point) the earlier one shows around the later.
    char size[48];
    std::snprintf(size, sizeof size, " ps %.2f lw %.1f", std::max(1.0, 2.0 - 0.25 * k), std::max(1.5, 3.0 - 0.6 * k));
    std::string with;
    if (sr.style == "baseline")
      with = std::string(sr.lines ? "linespoints" : "points") + " pt 3 ps 3.5 lw 2.5";
    else
      with = std::string(sr.lines ? "linespoints" : "points") + " pt " + std::to_string(point_types[k % kPoints]) + size;
    out.push_back(with + lc);
    ++k;
  }
  return out;
}

void check_plot_file(const std::string& file) { output_kind(file); }

const std::vector<std::string>& plot_formats() {
  static const std::vector<std::string> formats = {"png", "svg"};
  return formats;
}

void check_plot_format(const std::string& ext, const std::string& option) {
  for (const auto& f : plot_formats())
    if (ext == f) return;
  throw std::invalid_argument(option + " '" + ext + "' is not accepted (accepted: " + util::join(plot_formats()) + ")");
}

}  // namespace dr::report
