#include "report/table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>

namespace dr::report {

namespace {

// Display width: UTF-8 code points (titles such as "us/ReLU" or "α" must not
// throw alignment off by their byte count).
size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string pad(const std::string& s, size_t w, bool right) {
  const size_t n = width(s);
  if (n >= w) return s;
  const std::string fill(w - n, ' ');
  return right ? fill + s : s + fill;
}

// Default display of a float: up to 6 significant digits, no exponent for
// ordinary magnitudes, trailing zeros dropped.
std::string default_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  const double a = std::fabs(v);
  char buf[64];
  if (a != 0 && (a < 1e-4 || a >= 1e15)) {
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
  }
  if (a >= 1e6 && v == std::floor(v)) return thousands(static_cast<int64_t>(v));
  // Enough decimals for 6 significant digits, at least 0.
  const int lead = a == 0 ? 1 : static_cast<int>(std::floor(std::log10(a))) + 1;  // digits before the point
  const int decimals = std::max(0, 6 - lead);
  std::string s = fixed(v, decimals);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return s;
}

std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : one_line(s)) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// Raw value for CSV: strings as they are, numbers in JSON's shortest
// round-trip form, null as an empty field.
std::string raw(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float() && !std::isfinite(v.get<double>())) return default_float(v.get<double>());
  return v.dump();
}

// Cells are scalars (add_row checks), so this copies every possible kind.
nlohmann::ordered_json to_ordered(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::string: return v.get<std::string>();
    case nlohmann::json::value_t::boolean: return v.get<bool>();
    case nlohmann::json::value_t::number_integer: return v.get<int64_t>();
    case nlohmann::json::value_t::number_unsigned: return v.get<uint64_t>();
    case nlohmann::json::value_t::number_float: return v.get<double>();
    default: return nullptr;
  }
}

}  // namespace

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {
  if (columns_.empty()) throw std::invalid_argument("a table needs at least one column");
  std::set<std::string> seen;
  for (const auto& c : columns_) {
    if (c.key.empty()) throw std::invalid_argument("table column with an empty key");
    if (!seen.insert(c.key).second)
      throw std::invalid_argument("duplicate table column key '" + c.key + "'");
  }
}

void Table::add_row(std::vector<nlohmann::json> cells) {
  if (cells.size() != columns_.size())
    throw std::invalid_argument("table row has " + std::to_string(cells.size()) + " cells, expected " +
                                std::to_string(columns_.size()) + " (one per column)");
  for (size_t i = 0; i < cells.size(); ++i)
    if (cells[i].is_structured() || cells[i].is_binary())
      throw std::invalid_argument("table cell '" + columns_[i].key +
                                  "' must be a number, string, boolean or null, got " +
                                  cells[i].type_name());
  rows_.push_back(std::move(cells));
}

void Table::set_display(const std::string& key, std::function<std::string(const nlohmann::json&)> f) {
  const bool known = std::any_of(columns_.begin(), columns_.end(),
                                 [&](const Column& c) { return c.key == key; });
  if (!known) {
    std::string keys;
    for (const auto& c : columns_) keys += (keys.empty() ? "" : ", ") + c.key;
    throw std::invalid_argument("set_display: no column '" + key + "' (columns: " + keys + ")");
  }
  display_[key] = std::move(f);
}

std::string Table::display(size_t col, const nlohmann::json& v) const {
  if (v.is_null()) return "-";
  auto it = display_.find(columns_[col].key);
  if (it != display_.end() && it->second) return one_line(it->second(v));
  if (v.is_string()) return one_line(v.get<std::string>());
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    return u <= static_cast<uint64_t>(INT64_MAX) ? thousands(static_cast<int64_t>(u)) : v.dump();
  }
  if (v.is_number_integer()) return thousands(v.get<int64_t>());
  if (v.is_number_float()) return default_float(v.get<double>());
  return v.dump();
}

std::string Table::render(Format f) const {
  switch (f) {
    case Format::Table: return render_text();
    case Format::Markdown: return render_markdown();
    case Format::Csv: return render_csv();
    case Format::Json: return render_json();
  }
  throw std::invalid_argument("unknown table format");
}

std::string Table::render_text() const {
  const size_t n = columns_.size();
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> w(n, 0);
  for (size_t c = 0; c < n; ++c) w[c] = width(columns_[c].title);
  for (const auto& row : rows_) {
    std::vector<std::string> line;
    for (size_t c = 0; c < n; ++c) {
      line.push_back(display(c, row[c]));
      w[c] = std::max(w[c], width(line.back()));
    }
    cells.push_back(std::move(line));
  }
  auto emit = [&](const std::vector<std::string>& line) {
    std::string out;
    for (size_t c = 0; c < n; ++c) {
      if (c) out += "  ";
      out += pad(line[c], w[c], columns_[c].numeric);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::vector<std::string> titles;
  size_t total = 0;
  for (size_t c = 0; c < n; ++c) {
    titles.push_back(columns_[c].title);
    total += w[c] + (c ? 2 : 0);
  }
  std::string out = emit(titles);
  out += std::string(total, '-') + "\n";
  for (const auto& line : cells) out += emit(line);
  return out;
}

std::string Table::render_markdown() const {
  const size_t n = columns_.size();
  std::string out = "|";
  for (const auto& c : columns_) out += " " + md_escape(c.title) + " |";
  out += "\n|";
  for (const auto& c : columns_) out += c.numeric ? " ---: |" : " --- |";
  out += "\n";
  for (const auto& row : rows_) {
    out += "|";
    for (size_t c = 0; c < n; ++c) out += " " + md_escape(display(c, row[c])) + " |";
    out += "\n";
  }
  return out;
}

std::string Table::render_csv() const {
  std::string out;
  for (size_t c = 0; c < columns_.size(); ++c) out += (c ? "," : "") + csv_field(columns_[c].key);
  out += "\n";
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) out += (c ? "," : "") + csv_field(raw(row[c]));
    out += "\n";
  }
  return out;
}

std::string Table::render_json() const {
  // ordered_json keeps the column order in the printed objects.
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const auto& row : rows_) {
    nlohmann::ordered_json obj = nlohmann::ordered_json::object();
    for (size_t c = 0; c < row.size(); ++c) obj[columns_[c].key] = to_ordered(row[c]);
    arr.push_back(std::move(obj));
  }
  return arr.dump(2) + "\n";
}

nlohmann::json Table::to_json() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& row : rows_) {
    nlohmann::json obj = nlohmann::json::object();
    for (size_t c = 0; c < row.size(); ++c) obj[columns_[c].key] = row[c];
    arr.push_back(std::move(obj));
  }
  return arr;
}

}  // namespace dr::report
