// Typed config: the key table (config_table.h: path, member, help, range or
// choices) drives YAML reading, overrides, validation, printing and the reference.
#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>

#include "core/config_table.h"
#include "core/error.h"
#include "core/suggest.h"

namespace scorch {

using config_table::Field;
using config_table::fields;
using config_table::find_field;
using config_table::kInf;

void unknown_choice(const std::string& key, const std::string& name,
                    const std::vector<std::string>& allowed) {
  std::string all;
  for (const auto& ch : allowed) all += (all.empty() ? "" : ", ") + ch;
  fail(key + " = '" + name + "' is not one of {" + all + "}; did you mean '" +
       closest(name, allowed) + "'?");
}

namespace {

[[noreturn]] void unknown_key(const std::string& origin, const std::string& path) {
  std::vector<std::string> paths;
  for (const auto& f : fields()) paths.push_back(f.path);
  fail(origin + ": unknown key '" + path + "'; did you mean '" + closest(path, paths) + "'?");
}

std::string kind_name(char kind) {
  switch (kind) {
    case 'i':
      return "integer";
    case 'd':
      return "number";
    case 'b':
      return "boolean";
    case 's':
    case 'e':
      return "string";
    case 'I':
      return "list of integers";
    default:
      return "list of numbers";
  }
}

template <typename T>
T convert_scalar(const YAML::Node& node, const std::string& origin, const Field& f) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    std::ostringstream v;
    v << node;
    fail(origin + ": key '" + f.path + "' must be a " + kind_name(f.kind) + ", got '" + v.str() +
         "'");
  }
}

// Every number becomes a float32 tensor value or a factor of one somewhere
// (a learning rate, a noise level), so beyond its own range a real-valued key
// must be finite and representable in float32, unless its use handles
// overflow itself (Field::float32 = false: the fp16 loss scale backs off).
constexpr double kFloat32Max = std::numeric_limits<float>::max();

void check_range(double v, const std::string& origin, const Field& f) {
  const bool real = f.kind == 'd' || f.kind == 'D';
  if (real && f.float32 && std::isfinite(v) && std::abs(v) > kFloat32Max) {
    std::ostringstream m;
    m << origin << ": key '" << f.path << "' = " << v
      << " is out of range; it must be representable in float32 (|value| <= " << kFloat32Max
      << ")";
    fail(m.str());
  }
  if (!std::isfinite(v) || v < f.min || v > f.max) {
    std::ostringstream m;
    m << origin << ": key '" << f.path << "' = " << v << " is out of range; expected ";
    if (f.max == kInf)
      m << ">= " << f.min;
    else if (f.min == -kInf)
      m << "<= " << f.max;
    else
      m << "in [" << f.min << ", " << f.max << "]";
    fail(m.str());
  }
}

void set_field(Config& c, const Field& f, const YAML::Node& node, const std::string& origin) {
  void* p = f.ref(c);
  const bool is_list = f.kind == 'I' || f.kind == 'D';
  if (is_list != node.IsSequence() || (!is_list && !node.IsScalar())) {
    std::ostringstream v;
    v << node;
    fail(origin + ": key '" + f.path + "' must be a " + kind_name(f.kind) + ", got '" + v.str() +
         "'");
  }
  switch (f.kind) {
    case 'i': {
      auto v = convert_scalar<int64_t>(node, origin, f);
      check_range(static_cast<double>(v), origin, f);
      *static_cast<int64_t*>(p) = v;
      break;
    }
    case 'd': {
      auto v = convert_scalar<double>(node, origin, f);
      check_range(v, origin, f);
      *static_cast<double*>(p) = v;
      break;
    }
    case 'b': {
      // yaml-cpp accepts y/n/on/off too; insist on true/false for clarity.
      const std::string s = node.Scalar();
      if (s != "true" && s != "false" && s != "True" && s != "False")
        fail(origin + ": key '" + f.path + "' must be true or false, got '" + s + "'");
      *static_cast<bool*>(p) = s == "true" || s == "True";
      break;
    }
    case 's': {
      auto v = node.Scalar();
      *static_cast<std::string*>(p) = v;
      break;
    }
    case 'e': {
      const auto v = node.Scalar();
      const auto it = std::find(f.choices.begin(), f.choices.end(), v);
      if (it == f.choices.end()) unknown_choice(origin + ": key '" + f.path + "'", v, f.choices);
      *static_cast<int*>(p) = static_cast<int>(it - f.choices.begin());
      break;
    }
    case 'I': {
      std::vector<int64_t> out;
      for (const auto& e : node) {
        auto v = convert_scalar<int64_t>(e, origin, f);
        check_range(static_cast<double>(v), origin, f);
        out.push_back(v);
      }
      *static_cast<std::vector<int64_t>*>(p) = out;
      break;
    }
    default: {
      std::vector<double> out;
      for (const auto& e : node) {
        auto v = convert_scalar<double>(e, origin, f);
        check_range(v, origin, f);
        out.push_back(v);
      }
      *static_cast<std::vector<double>*>(p) = out;
    }
  }
}

void apply_node(Config& c, const YAML::Node& node, const std::string& prefix,
                const std::string& origin) {
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    if (const Field* f = find_field(path)) {
      set_field(c, *f, kv.second, origin);
    } else if (kv.second.IsMap()) {
      bool is_section = false;
      for (const auto& f : fields()) is_section |= f.path.rfind(path + ".", 0) == 0;
      if (!is_section) unknown_key(origin, path);
      apply_node(c, kv.second, path, origin);
    } else {
      unknown_key(origin, path);
    }
  }
}

std::string format_double(double v) {
  std::ostringstream o;
  o.precision(17);
  o << v;
  std::string s = o.str();
  // Keep it a YAML float, not an integer, so round trips stay typed.
  if (s.find_first_of(".eE") == std::string::npos && s.find("inf") == std::string::npos) s += ".0";
  return s;
}

std::string value_text(Config& c, const Field& f) {
  void* p = f.ref(c);
  std::ostringstream o;
  switch (f.kind) {
    case 'i':
      o << *static_cast<int64_t*>(p);
      break;
    case 'd':
      o << format_double(*static_cast<double*>(p));
      break;
    case 'b':
      o << (*static_cast<bool*>(p) ? "true" : "false");
      break;
    case 's':
    case 'e': {
      YAML::Emitter e;
      e << YAML::DoubleQuoted
        << (f.kind == 's' ? *static_cast<std::string*>(p)
                          : f.choices[static_cast<size_t>(*static_cast<int*>(p))]);
      o << e.c_str();
      break;
    }
    case 'I': {
      o << "[";
      const auto& v = *static_cast<std::vector<int64_t>*>(p);
      for (size_t k = 0; k < v.size(); ++k) o << (k ? ", " : "") << v[k];
      o << "]";
      break;
    }
    default: {
      o << "[";
      const auto& v = *static_cast<std::vector<double>*>(p);
      for (size_t k = 0; k < v.size(); ++k) o << (k ? ", " : "") << format_double(v[k]);
      o << "]";
    }
  }
  return o.str();
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& origin,
                    const std::vector<std::string>& overrides) {
  Config c;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    fail(origin + ": not valid YAML (line " + std::to_string(e.mark.line + 1) + "): " + e.msg);
  }
  if (root.IsDefined() && !root.IsNull()) {
    if (!root.IsMap()) fail(origin + ": expected a mapping of config sections at the top level");
    apply_node(c, root, "", origin);
  }
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      fail("override '" + o + "': expected key.path=value, e.g. training.batch_size=64");
    const std::string path = o.substr(0, eq);
    const Field* f = find_field(path);
    if (!f) unknown_key("override '" + o + "'", path);
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      fail("override '" + o + "': value is not valid YAML: " + e.msg);
    }
    if ((f->kind == 's' || f->kind == 'e') && !value.IsScalar()) value = YAML::Node(o.substr(eq + 1));
    set_field(c, *f, value, "override '" + o + "'");
  }
  validate(c);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) fail("config file '" + path + "' cannot be read (missing or no permission)");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
}

std::string to_yaml(const Config& config) {
  Config c = config;
  std::ostringstream out;
  std::string section;
  for (const auto& f : fields()) {
    const auto dot = f.path.find('.');
    if (dot == std::string::npos) {
      out << f.path << ": " << value_text(c, f) << "\n";
      continue;
    }
    const std::string s = f.path.substr(0, dot);
    if (s != section) out << s << ":\n", section = s;
    out << "  " << f.path.substr(dot + 1) << ": " << value_text(c, f) << "\n";
  }
  return out.str();
}

namespace {

std::string allowed_text(const Field& f) {
  if (!f.choices.empty()) {
    std::string all;
    for (const auto& ch : f.choices) all += (all.empty() ? "" : ", ") + ch;
    return all;
  }
  if (f.kind == 'b' || f.kind == 's') return f.kind == 'b' ? "true, false" : "";
  std::ostringstream m;
  const bool real = f.kind == 'd' || f.kind == 'D';
  m.precision(real ? 10 : 19);  // integers in full, reals as written in the table
  if (f.min != -kInf && f.max != kInf)
    m << "[" << f.min << ", " << f.max << "]";
  else if (f.min != -kInf)
    m << ">= " << f.min;
  else if (f.max != kInf)
    m << "<= " << f.max;
  if (real) m << (m.tellp() > 0 ? ", " : "") << (f.float32 ? "finite float32" : "finite");
  return m.str();
}

}  // namespace

std::vector<ConfigKey> config_keys() {
  Config c;
  std::vector<ConfigKey> out;
  for (const auto& f : fields())
    out.push_back({f.path, kind_name(f.kind), value_text(c, f), allowed_text(f), f.help});
  return out;
}

}  // namespace scorch
