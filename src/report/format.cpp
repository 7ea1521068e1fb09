#include "report/format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "util/strings.h"

namespace dr::report {

namespace {

constexpr Format kFormats[] = {Format::Table, Format::Markdown, Format::Csv, Format::Json};

}  // namespace

Format parse_format(const std::string& s) {
  const std::string k = util::lower(s);
  if (k == "markdown") return Format::Markdown;
  for (Format f : kFormats)
    if (k == format_name(f)) return f;
  throw std::invalid_argument("unknown format '" + s + "' (accepted: " + format_names() + ")");
}

const char* format_name(Format f) {
  switch (f) {
    case Format::Table: return "table";
    case Format::Markdown: return "md";
    case Format::Csv: return "csv";
    case Format::Json: return "json";
  }
  return "?";
}

std::string format_names() {
  std::vector<std::string> names;
  for (Format f : kFormats) names.push_back(format_name(f));
  return util::join(names);
}

std::string format_option_help() { return "Output format: " + format_names(); }

std::string thousands(int64_t v) {
  // Work on the magnitude as unsigned so INT64_MIN is fine too.
  const bool neg = v < 0;
  uint64_t m = neg ? uint64_t(0) - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  std::string digits = std::to_string(m);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3 + 1);
  const size_t n = digits.size();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && (n - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return neg ? "-" + out : out;
}

namespace {

std::string printf_fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", std::max(0, digits), v);
  std::string s = buf;
  // "-0.0" / "-0" -> "0.0" / "0"
  if (!s.empty() && s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

std::string non_finite(double v) {
  if (std::isnan(v)) return "nan";
  return v < 0 ? "-inf" : "inf";
}

}  // namespace

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return non_finite(v);
  return printf_fixed(v, digits);
}

std::string si(double v, int digits) {
  if (!std::isfinite(v)) return non_finite(v);
  digits = std::max(0, digits);
  const double a = std::fabs(v);
  if (std::round(a) < 1000.0) {
    if (v == std::floor(v)) return printf_fixed(v, 0);
    return printf_fixed(v, digits);
  }
  static const char* units[] = {"K", "M", "G", "T", "P", "E"};
  const double scale = std::pow(10.0, digits);
  double x = a / 1000.0;
  int u = 0;
  // Round at the shown precision; carry into the next unit when that reaches 1000.
  while (u < 5 && std::round(x * scale) / scale >= 1000.0) {
    x /= 1000.0;
    ++u;
  }
  return (v < 0 ? "-" : "") + printf_fixed(x, digits) + units[u];
}

std::string bytes(double b) {
  if (!std::isfinite(b)) return non_finite(b) + " B";
  const double a = std::fabs(b);
  const std::string sign = b < 0 ? "-" : "";
  if (std::round(a) < 1000.0) return sign + printf_fixed(a, 0) + " B";
  static const char* units[] = {"KB", "MB", "GB", "TB", "PB", "EB"};
  double x = a / 1000.0;
  int u = 0;
  // Three significant figures: decimals so that x shows as d.dd, dd.d or ddd.
  auto decimals = [](double y) { return y < 9.995 ? 2 : (y < 99.95 ? 1 : 0); };
  while (u < 5 && x >= 999.5) {  // 999.5 would print as "1000"
    x /= 1000.0;
    ++u;
  }
  return sign + printf_fixed(x, decimals(x)) + " " + units[u];
}

}  // namespace dr::report
