// Training options shared by train, criticality and reduce.
#include <charconv>
#include <climits>
#include <type_traits>
#include <variant>

#include "train/settings.h"
#include "train/snl.h"

#include "commands.h"

namespace dr::cli {

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        // Decimal digits with an optional minus sign, checked on the text: CLI11's own
        // conversion saturates (9223372036854775808 -> 9223372036854775807), wraps
        // negatives of unsigned options and reads 010 as octal.
        int64_t v = 0;
        const char* b = text.data();
        const char* e = b + text.size();
        const bool digits = !text.empty() && text.find_first_not_of("0123456789", text[0] == '-' ? 1 : 0) ==
                                                 std::string::npos && text != "-";
        if (!digits) return "'" + text + "' is not a whole number (accepted: " + range + ")";
        const auto [end, ec] = std::from_chars(b, e, v);
        if (ec != std::errc() || end != e || v < lo || v > hi) return "must be in " + range + " (got '" + text + "')";
        return std::string();
      },
      "INT in " + range);
}

// Every row of the settings table (train/settings.h) with a flag, in its
// order, under its group's heading; integers are checked on the text typed.
void add_training_options(CLI::App* cmd, train::TrainConfig& c) {
  for (const train::Setting& f : train::train_settings()) {
    if (!*f.flag) continue;
    const std::string group = train::group_name(f.group);
    std::visit(
        [&](auto m) {
          using T = std::decay_t<decltype(c.*m)>;
          if constexpr (std::is_same_v<T, bool>) {
            const std::string names = std::string(f.flag) + ",!--no-" + (f.flag + 2);
            cmd->add_flag(names, c.*m, std::string(f.help) + " (default " + (c.*m ? "on" : "off") + ")")->group(group);
          } else {
            CLI::Option* o = cmd->add_option(f.flag, c.*m, f.help)->capture_default_str()->group(group);
            if constexpr (std::is_integral_v<T>)
              if (f.int_lo <= f.int_hi) o->check(integer_in(f.int_lo, f.int_hi));
          }
        },
        f.member);
  }
}

void add_search_options(CLI::App* cmd, train::SnlOptions& o, const std::string& prefix, const std::string& help_prefix,
                        const std::string& group, bool per_method) {
  for (const train::SearchSetting& s : train::search_settings())
    if (!per_method || !s.per_method) std::visit(
        [&](auto m) {
          auto& v = train::setting_value(o, m);
          CLI::Option* opt = cmd->add_option(prefix + s.flag, v, help_prefix + s.help)->capture_default_str()->group(group);
          if constexpr (std::is_integral_v<std::decay_t<decltype(v)>>)
            opt->check(integer_in(static_cast<int64_t>(s.lo), static_cast<int64_t>(s.hi)));
        },
        s.member);
}

}  // namespace dr::cli
