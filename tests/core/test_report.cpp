// Number formatting, the four table formats, and gnuplot plots (PNG/SVG).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>
#include <nlohmann/json.hpp>
#include <string>

#include "report/format.h"
#include "report/plot.h"
#include "report/table.h"
#include "test_util.h"
#include "util/fs.h"

using namespace dr::report;
namespace fs = std::filesystem;
using dr::test::contains;
using dr::test::EnvGuard;
using dr::test::ScratchDir;

namespace {

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

#define REQUIRE_GNUPLOT() \
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed"

bool is_png(const std::string& path) {
  const std::string s = dr::util::read_file(path);
  return s.size() > 8 && s.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) == 0;
}

bool is_svg(const std::string& path) {
  const std::string s = dr::util::read_file(path);
  return s.size() > 100 && s.compare(0, 5, "<?xml") == 0 && contains(s, "<svg");
}

// Nothing but the plot itself next to the target (no leftover temp files).
size_t entries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

Table sample_table() {
  Table t({{"name", "network"}, {"relus", "ReLUs", true}, {"acc", "accuracy %", true}});
  t.add_row({"resnet18", 557056, 76.5});
  t.add_row({"resnet18:alpha=0.25", 139264, nullptr});
  return t;
}

}  // namespace

// --- formatting --------------------------------------------------------------

TEST(Format, ParseFormat) {
  EXPECT_EQ(parse_format("table"), Format::Table);
  EXPECT_EQ(parse_format("md"), Format::Markdown);
  EXPECT_EQ(parse_format("csv"), Format::Csv);
  EXPECT_EQ(parse_format("json"), Format::Json);
  EXPECT_EQ(parse_format("JSON"), Format::Json);
  try {
    parse_format("xml");
    FAIL() << "xml accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "unknown format 'xml' (accepted: table, md, csv, json)");
  }
  for (auto f : {Format::Table, Format::Markdown, Format::Csv, Format::Json})
    EXPECT_EQ(parse_format(format_name(f)), f);
}

TEST(Format, Thousands) {
  EXPECT_EQ(thousands(0), "0");
  EXPECT_EQ(thousands(999), "999");
  EXPECT_EQ(thousands(1000), "1,000");
  EXPECT_EQ(thousands(557056), "557,056");
  EXPECT_EQ(thousands(1000000), "1,000,000");
  EXPECT_EQ(thousands(-1234), "-1,234");
  EXPECT_EQ(thousands(-999), "-999");
  EXPECT_EQ(thousands(std::numeric_limits<int64_t>::min()), "-9,223,372,036,854,775,808");
  EXPECT_EQ(thousands(std::numeric_limits<int64_t>::max()), "9,223,372,036,854,775,807");
}

TEST(Format, Si) {
  EXPECT_EQ(si(557056), "557.1K");
  EXPECT_EQ(si(1.2e6), "1.2M");
  EXPECT_EQ(si(3.4e9), "3.4G");
  EXPECT_EQ(si(950), "950");
  EXPECT_EQ(si(0), "0");
  EXPECT_EQ(si(12.5), "12.5");
  EXPECT_EQ(si(1000), "1.0K");
  EXPECT_EQ(si(999960), "1.0M");  // rounding carries into the next unit
  EXPECT_EQ(si(999.7), "1.0K");
  EXPECT_EQ(si(-1500), "-1.5K");
  EXPECT_EQ(si(557056, 0), "557K");
  EXPECT_EQ(si(557056, 2), "557.06K");
  EXPECT_EQ(si(std::nan("")), "nan");
}

TEST(Format, Bytes) {
  EXPECT_EQ(bytes(2.9e9), "2.90 GB");
  EXPECT_EQ(bytes(330e6), "330 MB");
  EXPECT_EQ(bytes(4096), "4.10 KB");
  EXPECT_EQ(bytes(512), "512 B");
  EXPECT_EQ(bytes(0), "0 B");
  EXPECT_EQ(bytes(27852800), "27.9 MB");
  EXPECT_EQ(bytes(999.7e6), "1.00 GB");  // no "1000 MB"
  EXPECT_EQ(bytes(1.5e12), "1.50 TB");
}

TEST(Format, Fixed) {
  EXPECT_EQ(fixed(3.14159, 2), "3.14");
  EXPECT_EQ(fixed(2, 0), "2");
  EXPECT_EQ(fixed(-0.001, 2), "0.00");  // never "-0.00"
  EXPECT_EQ(fixed(-1.25, 1), "-1.2");   // printf rounding (binary 1.25 is exact: to even)
  EXPECT_EQ(fixed(std::numeric_limits<double>::infinity(), 1), "inf");
}

// --- tables ------------------------------------------------------------------

TEST(Table, PlainText) {
  const std::string expected =
      "network                ReLUs  accuracy %\n"
      "----------------------------------------\n"
      "resnet18             557,056        76.5\n"
      "resnet18:alpha=0.25  139,264           -\n";
  EXPECT_EQ(sample_table().render(Format::Table), expected);
}

TEST(Table, Markdown) {
  const std::string expected =
      "| network | ReLUs | accuracy % |\n"
      "| --- | ---: | ---: |\n"
      "| resnet18 | 557,056 | 76.5 |\n"
      "| resnet18:alpha=0.25 | 139,264 | - |\n";
  EXPECT_EQ(sample_table().render(Format::Markdown), expected);
}

TEST(Table, MarkdownEscapesPipes) {
  Table t({Column{"k", "a|b"}});
  t.add_row({"x|y"});
  EXPECT_EQ(t.render(Format::Markdown), "| a\\|b |\n| --- |\n| x\\|y |\n");
}

TEST(Table, CsvRawValuesAndQuoting) {
  Table t({{"name", "Name"}, {"note", "Note"}, {"n", "N", true}, {"x", "X", true}});
  t.add_row({"plain", "a,b", 557056, 0.1});
  t.add_row({"say \"hi\"", "two\nlines", -3, nullptr});
  t.add_row({"cr\rhere", "", 0, 2.5});
  t.set_display("n", [](const nlohmann::json&) { return "ignored in CSV"; });
  const std::string expected =
      "name,note,n,x\n"
      "plain,\"a,b\",557056,0.1\n"
      "\"say \"\"hi\"\"\",\"two\nlines\",-3,\n"
      "\"cr\rhere\",,0,2.5\n";
  EXPECT_EQ(t.render(Format::Csv), expected);
}

TEST(Table, JsonKeyedByColumnInColumnOrder) {
  Table t = sample_table();
  t.set_display("acc", [](const nlohmann::json& v) { return fixed(v.get<double>(), 2); });
  const std::string out = t.render(Format::Json);
  const auto j = nlohmann::json::parse(out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["name"], "resnet18");
  EXPECT_EQ(j[0]["relus"], 557056);
  EXPECT_DOUBLE_EQ(j[0]["acc"].get<double>(), 76.5);  // raw, not "76.50"
  EXPECT_TRUE(j[1]["acc"].is_null());
  // Pretty-printed, keys in column order (not alphabetical).
  EXPECT_TRUE(contains(out, "\n  {\n    \"name\""));
  EXPECT_LT(out.find("\"name\""), out.find("\"relus\""));
  EXPECT_LT(out.find("\"relus\""), out.find("\"acc\""));
  EXPECT_EQ(t.to_json(), j);
}

TEST(Table, DisplayFormatterOnlyForTextFormats) {
  Table t({{"k", "key"}, {"pct", "%", true}});
  t.add_row({"a", 12.345});
  t.add_row({"b", nullptr});
  t.set_display("pct", [](const nlohmann::json& v) { return fixed(v.get<double>(), 1); });  // never sees null
  EXPECT_EQ(t.render(Format::Table), "key     %\n---------\na    12.3\nb       -\n");
  EXPECT_TRUE(contains(t.render(Format::Markdown), "| a | 12.3 |"));
  EXPECT_TRUE(contains(t.render(Format::Csv), "a,12.345\n"));
  EXPECT_THROW(t.set_display("nope", nullptr), std::invalid_argument);
}

TEST(Table, DefaultNumberDisplay) {
  Table t({{"v", "v", true}});
  for (nlohmann::json v : {nlohmann::json(1234567), nlohmann::json(0.5), nlohmann::json(71.0),
                           nlohmann::json(1.0 / 3.0), nlohmann::json(-2.5e-7), nlohmann::json(true)})
    t.add_row({v});
  EXPECT_EQ(t.render(Format::Table),
            "        v\n"
            "---------\n"
            "1,234,567\n"
            "      0.5\n"
            "       71\n"
            " 0.333333\n"
            " -2.5e-07\n"
            "     true\n");
}

TEST(Table, WrongRowSizeAndBadCells) {
  Table t({{"a", "A"}, {"b", "B"}});
  EXPECT_THROW(t.add_row({1}), std::invalid_argument);
  EXPECT_THROW(t.add_row({1, 2, 3}), std::invalid_argument);
  try {
    t.add_row({1});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "1 cells, expected 2")) << e.what();
  }
  EXPECT_THROW(t.add_row({1, nlohmann::json::array({1, 2})}), std::invalid_argument);
  EXPECT_THROW(t.add_row({nlohmann::json::object(), 1}), std::invalid_argument);
  EXPECT_EQ(t.rows(), 0u);
  t.add_row({1, "x"});
  EXPECT_EQ(t.rows(), 1u);
  EXPECT_THROW(Table({{"a", "A"}, {"a", "again"}}), std::invalid_argument);
  EXPECT_THROW(Table(std::vector<Column>{}), std::invalid_argument);
}

TEST(Table, EmptyTableRendersHeaders) {
  Table t({{"a", "A"}, {"b", "Bee", true}});
  EXPECT_EQ(t.render(Format::Table), "A  Bee\n------\n");
  EXPECT_EQ(t.render(Format::Csv), "a,b\n");
  EXPECT_EQ(nlohmann::json::parse(t.render(Format::Json)), nlohmann::json::array());
}

TEST(Table, AlignsUtf8ByCodePoints) {
  Table t({{"a", "α"}, {"n", "µs", true}});
  t.add_row({"x", 1});
  t.add_row({"ααα", 22});
  EXPECT_EQ(t.render(Format::Table), "α    µs\n-------\nx     1\nααα  22\n");
}

// --- plots -------------------------------------------------------------------

TEST(Plot, GroupedBarsPngAndSvg) {
  REQUIRE_GNUPLOT();
  ScratchDir dir;
  const std::vector<std::string> cats = {"conv1", "layer1.0.conv_1", "layer1.0.conv2", "fc"};
  const std::vector<BarSeries> series = {{"params", {0.1, 5.0, 5.0, 0.5}},
                                         {"FLOPs", {1.0, 20.0, 20.0, 0.01}},
                                         {"ReLUs", {12.0, 47.0, 41.0, std::nan("")}}};
  const std::string png = dir.path + "/sub/bars.png";  // missing parent is created
  plot_grouped_bars(png, "Title with \"quotes\", back\\slash and under_score", cats, series, "% of total");
  EXPECT_TRUE(is_png(png));
  EXPECT_EQ(entries(dir.path + "/sub"), 1u);
  const std::string svg = dir.path + "/bars.svg";
  plot_grouped_bars(svg, "bars", cats, series, "%");
  EXPECT_TRUE(is_svg(svg));
  EXPECT_TRUE(contains(dr::util::read_file(svg), "layer1.0.conv_1"));  // underscore drawn literally
}

TEST(Plot, ManyCategoriesRotateLabels) {
  REQUIRE_GNUPLOT();
  ScratchDir dir;
  std::vector<std::string> cats;
  BarSeries s{"ReLUs", {}};
  for (int i = 0; i < 60; ++i) {
    cats.push_back("layer" + std::to_string(i / 10) + "." + std::to_string(i % 10) + ".conv1");
    s.values.push_back(i % 7);
  }
  const std::string png = dir.path + "/many.png";
  plot_grouped_bars(png, "many", cats, {s}, "%");
  EXPECT_TRUE(is_png(png));
}

TEST(Plot, XyLogxPngAndSvg) {
  REQUIRE_GNUPLOT();
  ScratchDir dir;
  XYSeries frontier{"DeepReDuce", {{12900, 68.7, "12.9K"}, {28700, 69.5, "28.7K"}, {197000, 76.2, "S2+S3_thin"}},
                    true, true, ""};
  XYSeries baseline{"ResNet18 (all ReLUs)", {{557056, 78.1, "baseline"}}, false, true, "baseline"};
  XYSeries empty{"no points", {}, false, false, ""};
  const std::string png = dir.path + "/pareto.png";
  plot_xy(png, "Accuracy vs ReLUs", "ReLU count", "top-1 accuracy (%)", true, {frontier, baseline, empty});
  EXPECT_TRUE(is_png(png));
  EXPECT_EQ(entries(dir.path), 1u);
  const std::string svg = dir.path + "/pareto.svg";
  plot_xy(svg, "linear", "x", "y", false, {frontier});
  EXPECT_TRUE(is_svg(svg));
  EXPECT_TRUE(contains(dr::util::read_file(svg), "S2+S3_thin"));
}

// Every marker series its own point type and colour; the frontier a line
// without markers, so that it hides no method's points.
TEST(Plot, EachSeriesItsOwnMarkerAndColour) {
  const std::vector<XYSeries> series = {{"DeepReDuce", {{1, 1, ""}}, false, true, ""},
                                        {"SNL", {{2, 2, ""}}, true, false, ""},
                                        {"DeepReDuce + SNL", {{3, 3, ""}}, true, false, ""},
                                        {"Pareto frontier", {{1, 1, ""}}, true, false, "frontier"},
                                        {"baseline", {{4, 4, ""}}, false, false, "baseline"}};
  const auto styles = xy_series_styles(series);
  ASSERT_EQ(styles.size(), series.size());
  auto field = [](const std::string& with, const std::string& key) {
    const size_t p = with.find(" " + key + " ");
    if (p == std::string::npos) return std::string();
    const size_t b = p + key.size() + 2;
    const size_t e = key == "lc" ? with.find('"', with.find('"', b) + 1) + 1 : with.find(' ', b);
    return with.substr(b, e == std::string::npos ? std::string::npos : e - b);
  };
  std::set<std::string> points, colours;
  for (size_t i : {0, 1, 2, 4}) {
    EXPECT_FALSE(field(styles[i], "pt").empty()) << styles[i];
    points.insert(field(styles[i], "pt"));
    colours.insert(field(styles[i], "lc"));
  }
  EXPECT_EQ(points.size(), 4u);
  EXPECT_EQ(colours.size(), 4u);
  // Blue, vermillion, green: no two near alike (vermillion and orange not neighbours).
  EXPECT_TRUE(contains(styles[0], "#0072B2")) << styles[0];
  EXPECT_TRUE(contains(styles[1], "#D55E00")) << styles[1];
  EXPECT_TRUE(contains(styles[2], "#009E73")) << styles[2];
  EXPECT_EQ(styles[3].rfind("lines ", 0), 0u) << styles[3];
  EXPECT_FALSE(contains(styles[3], " pt ")) << styles[3];
  EXPECT_EQ(colours.count(field(styles[3], "lc")), 0u) << styles[3];
  EXPECT_THROW(xy_series_styles({{"s", {}, false, false, "fancy"}}), std::invalid_argument);
  REQUIRE_GNUPLOT();
  ScratchDir dir;
  plot_xy(dir.path + "/f.png", "t", "x", "y", true, series);
  EXPECT_TRUE(is_png(dir.path + "/f.png"));
}

TEST(Plot, PlotFormatIsCheckedInOnePlace) {
  EXPECT_EQ(plot_formats(), (std::vector<std::string>{"png", "svg"}));
  EXPECT_NO_THROW(check_plot_format("png"));
  EXPECT_NO_THROW(check_plot_format("svg"));
  try {
    check_plot_format("pdf");
    FAIL() << "pdf accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "--plot-format 'pdf' is not accepted (accepted: png, svg)");
  }
  EXPECT_THROW(check_plot_format("PNG "), std::invalid_argument);
}

TEST(Plot, BadExtension) {
  // Checked before gnuplot is needed.
  try {
    plot_xy("/tmp/out.pdf", "t", "x", "y", false, {{"s", {{1, 2, ""}}, false, false, ""}});
    FAIL() << "pdf accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "/tmp/out.pdf")) << e.what();
    EXPECT_TRUE(contains(e.what(), ".png, .svg")) << e.what();
  }
  EXPECT_THROW(plot_grouped_bars("noext", "t", {"a"}, {{"s", {1}}}, "y"), std::invalid_argument);
}

TEST(Plot, BadInput) {
  ScratchDir dir;
  const std::string png = dir.path + "/x.png";
  EXPECT_THROW(plot_grouped_bars(png, "t", {"a", "b"}, {{"s", {1}}}, "y"), std::invalid_argument);
  EXPECT_THROW(plot_grouped_bars(png, "t", {}, {}, "y"), std::invalid_argument);
  EXPECT_THROW(plot_xy(png, "t", "x", "y", true, {{"s", {{0, 1, ""}}, false, false, ""}}), std::invalid_argument);
  EXPECT_THROW(plot_xy(png, "t", "x", "y", false, {{"s", {{1, 1, ""}}, false, false, "fancy"}}),
               std::invalid_argument);
  EXPECT_THROW(plot_xy(png, "t", "x", "y", false, {}), std::invalid_argument);
  EXPECT_FALSE(dr::util::file_exists(png));
}

TEST(Plot, GnuplotMissingOrFailing) {
  ScratchDir dir;
  const std::string png = dir.path + "/x.png";
  {
    EnvGuard g("DEEPREDUCE_GNUPLOT", (dir.path + "/no-such-gnuplot").c_str());
    try {
      plot_grouped_bars(png, "t", {"a"}, {{"s", {1}}}, "y");
      FAIL() << "missing gnuplot not reported";
    } catch (const std::runtime_error& e) {
      EXPECT_TRUE(contains(e.what(), "no-such-gnuplot")) << e.what();
      EXPECT_TRUE(contains(e.what(), "install")) << e.what();
    }
  }
  {
    // A "gnuplot" that fails with a message on stderr.
    const std::string fake = dir.path + "/fake-gnuplot";
    dr::util::write_file_atomic(fake, "#!/bin/sh\necho 'line 3: undefined variable: boom' >&2\nexit 1\n");
    fs::permissions(fake, fs::perms::owner_all);
    EnvGuard g("DEEPREDUCE_GNUPLOT", fake.c_str());
    try {
      plot_xy(png, "t", "x", "y", false, {{"s", {{1, 2, ""}}, false, false, ""}});
      FAIL() << "failing gnuplot not reported";
    } catch (const std::runtime_error& e) {
      EXPECT_TRUE(contains(e.what(), "undefined variable: boom")) << e.what();
      EXPECT_TRUE(contains(e.what(), png)) << e.what();
    }
  }
  EXPECT_FALSE(dr::util::file_exists(png));
}

TEST(Plot, GnuplotQuote) {
  EXPECT_EQ(gnuplot_quote("a_b"), "\"a_b\"");
  EXPECT_EQ(gnuplot_quote("say \"x\"\\n"), "\"say \\\"x\\\"\\\\n\"");
  EXPECT_EQ(gnuplot_quote("two\nlines"), "\"two\\nlines\"");
}

TEST(Format, OneListOfFormatNames) {
  using namespace dr::report;
  EXPECT_EQ(format_names(), "table, md, csv, json");
  EXPECT_EQ(format_option_help(), "Output format: table, md, csv, json");
  for (const char* name : {"table", "md", "csv", "json"}) EXPECT_STREQ(format_name(parse_format(name)), name);
  EXPECT_EQ(parse_format("MarkDown"), Format::Markdown);
  EXPECT_EQ(parse_format("JSON"), Format::Json);
  try {
    parse_format("xml");
    ADD_FAILURE() << "xml accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "unknown format 'xml' (accepted: table, md, csv, json)");
  }
}
