#pragma once
// String helpers every part uses: one join, one split, one trim.
#include <string>
#include <vector>

namespace dr::util {

// join({"a","b"}, ", ") -> "a, b".
std::string join(const std::vector<std::string>& parts, const std::string& sep = ", ");

// split("a,,b", ',') -> {"a", "", "b"}; split("", ',') -> {""}; a trailing
// separator gives a trailing empty part ("a," -> {"a", ""}).
std::vector<std::string> split(const std::string& text, char sep);

// Without leading and trailing whitespace.
std::string trim(const std::string& s);

// ASCII lower case.
std::string lower(std::string s);

}  // namespace dr::util
