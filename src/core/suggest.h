// "Did you mean": the valid word nearest to a mistyped key or choice.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace scorch {

// Levenshtein distance: insertions, deletions and substitutions.
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate at the smallest edit distance from `word` (the first of
// equals); "" when there are none.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace scorch
