#pragma once
// The one table of a training's settings (TrainConfig): one row per setting
// with its config.json key, its flag and help, its group, whether it decides
// the result, what a config recorded before it existed reads as, whether an
// SNL search shares it with its fine-tunes, and its check. config.json
// (to_json, from_json, result_settings), validate(), the training command
// line (apps/deepreduce/train_options.cpp), share_settings and the search's
// settings (snl.cpp) are all made from it. Adding a setting: a TrainConfig
// field and its row.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "train/config.h"

namespace dr::train {

struct Setting {
  using Member = std::variant<std::string TrainConfig::*, int64_t TrainConfig::*, int TrainConfig::*,
                              uint64_t TrainConfig::*, double TrainConfig::*, bool TrainConfig::*>;
  // Sgd: the SGD-only settings, which a search with Adam leaves out.
  enum Group { Run, Training, Sgd, Augmentation, Distillation, Init, Execution };

  const char* key;   // config.json
  Member member;
  Group group = Run;
  const char* flag = "";  // the training command line's ("" = set by each command, e.g. --model)
  const char* help = "";
  bool result = true;     // decides where the run ends (result_settings); false: only how fast
  bool required = false;  // from_json refuses a config without it
  // What a config recorded before the setting existed reads as (null: the
  // TrainConfig default).
  nlohmann::json before = nullptr;
  bool shared = false;    // an SNL search and its fine-tunes use the same (share_settings)
  // Integer flags: the range the command line checks on the text typed.
  int64_t int_lo = 0, int_hi = -1;
  // The check validate() runs (std::invalid_argument naming the flag); null: none.
  using Check = std::function<void(const TrainConfig&)>;
  Check check;

  // A row reads as its key, member, group, flag and help, then what differs
  // from the defaults above, named: Setting("lr", ...).required().checked(...).
  Setting(const char* key_, Member member_, Group group_, const char* flag_ = "", const char* help_ = "")
      : key(key_), member(member_), group(group_), flag(flag_), help(help_) {}
  Setting& speed_only() { result = false; return *this; }
  Setting& must_be_recorded() { required = true; return *this; }
  Setting& before_it_existed(nlohmann::json v) { before = std::move(v); return *this; }
  Setting& shared_with_search() { shared = true; return *this; }
  // The command line's range for an integer flag (the text typed); the check is separate.
  Setting& typed_range(int64_t lo, int64_t hi) { int_lo = lo, int_hi = hi; return *this; }
  // The range on the command line and in validate(): lo..hi, named by the flag.
  Setting& integer_in(int64_t lo, int64_t hi);
  Setting& checked(Check c) { check = std::move(c); return *this; }
};

const std::vector<Setting>& train_settings();
// Every setting newer than some runs, with the value the runs made before it
// had (Setting::before): what a checkpoint or config.json without the key
// compares as (first_difference's b_missing_means).
nlohmann::json settings_before_they_existed();
const char* group_name(Setting::Group g);  // "Training", "Augmentation", ... (help headings)

}  // namespace dr::train
