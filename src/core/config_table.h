// The config's key table (core/config.cpp reads, prints and documents the
// config through it): one Field per key, in section order, with its path,
// the member it sets, its kind, help text and range or choices. Internal to
// core/config*.cpp.
#pragma once

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/config.h"

namespace scorch::config_table {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Field {
  std::string path;
  std::function<void*(Config&)> ref;  // address of the value
  char kind;                          // i d b s e (choice) I D
  std::string help;
  double min = -kInf;  // numbers (each element for lists)
  double max = kInf;
  std::vector<std::string> choices;  // enums (t.e): the names, in enumerator order
  bool float32 = true;  // real numbers: must be representable in float32 (see check_range)
};

// Every key, in section order (the order of to_yaml and the reference).
const std::vector<Field>& fields();
// The key at `path` ("training.batch_size"), or nullptr.
const Field* find_field(const std::string& path);

}  // namespace scorch::config_table
