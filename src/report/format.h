#pragma once
// Number formatting for reports, and the output formats every command accepts
// (--format table|md|csv|json). No torch headers here.

#include <cstdint>
#include <string>

namespace dr::report {

enum class Format { Table, Markdown, Csv, Json };

// "table", "md", "csv", "json" (also "markdown"), in any case. Throws
// std::invalid_argument "unknown format 'x' (accepted: table, md, csv, json)".
Format parse_format(const std::string& s);
// The accepted names, one source for every help text and message:
// "table, md, csv, json".
std::string format_names();
// The --format help of the commands that print a table:
// "Output format: table, md, csv, json".
std::string format_option_help();
// The name parse_format accepts for `f`: "table", "md", "csv", "json".
const char* format_name(Format f);

// 557056 -> "557,056"; -1234 -> "-1,234".
std::string thousands(int64_t v);

// Short form with an SI suffix: 557056 -> "557.1K", 1.2e6 -> "1.2M",
// 3.4e9 -> "3.4G", 950 -> "950", 12.5 -> "12.5". Rounding carries into the
// next unit (999,960 -> "1.0M"). Non-finite values print as "nan"/"inf".
std::string si(double v, int digits = 1);

// Traffic in decimal units with three significant figures:
// 2.9e9 -> "2.90 GB", 330e6 -> "330 MB", 4096 -> "4.10 KB", 512 -> "512 B".
std::string bytes(double b);

// printf("%.*f"); never prints "-0.0".
std::string fixed(double v, int digits);

}  // namespace dr::report
