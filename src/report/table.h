#pragma once
// A small table that renders as aligned text, GitHub Markdown, CSV or JSON:
// every command that prints rows goes through it, so --format works the same
// everywhere. No torch headers here.

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report/format.h"

namespace dr::report {

struct Column {
  std::string key;    // CSV header and JSON key
  std::string title;  // Table/Markdown header
  bool numeric = false;  // right-aligned in Table/Markdown
};

class Table {
 public:
  // Keys must be non-empty and unique (std::invalid_argument otherwise).
  explicit Table(std::vector<Column> columns);

  // One cell per column, in column order. Cells are numbers, strings, booleans
  // or null (a missing value: "-" in Table/Markdown, empty in CSV, null in
  // JSON). Throws std::invalid_argument on a wrong cell count or an
  // array/object cell.
  void add_row(std::vector<nlohmann::json> cells);

  // Per-column display formatter for Table/Markdown (e.g. fixed(v, 1));
  // CSV/JSON use the raw values. Never called for null cells. Throws
  // std::invalid_argument for an unknown key.
  void set_display(const std::string& key, std::function<std::string(const nlohmann::json&)> f);

  // Table: aligned plain text, a title row, a dashed rule, numeric columns
  //   right-aligned; integers with thousands separators, other numbers with up
  //   to 6 significant digits, unless set_display says otherwise.
  // Markdown: GitHub table, numeric columns right-aligned (---:), '|' escaped.
  // CSV: header = keys, RFC 4180 quoting (fields with , " CR LF quoted, "
  //   doubled), LF line ends, raw values (null = empty field).
  // JSON: array of objects keyed by column key in column order, raw values,
  //   pretty-printed.
  // Every format ends with a newline.
  std::string render(Format f) const;

  // Array of objects keyed by column key (raw values).
  nlohmann::json to_json() const;

  size_t rows() const { return rows_.size(); }
  const std::vector<Column>& columns() const { return columns_; }

 private:
  std::string display(size_t col, const nlohmann::json& v) const;
  std::string render_text() const;
  std::string render_markdown() const;
  std::string render_csv() const;
  std::string render_json() const;

  std::vector<Column> columns_;
  std::vector<std::vector<nlohmann::json>> rows_;
  std::map<std::string, std::function<std::string(const nlohmann::json&)>> display_;
};

}  // namespace dr::report
