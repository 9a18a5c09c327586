// Expects a call to throw scorch::Error (the project's error for what a user
// can get wrong) with a message that names every one of a list of parts.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace scorch::testing {

// Expects `fn` to throw scorch::Error whose message holds every one of `parts`.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no scorch::Error thrown; expected one mentioning " << parts.at(0);
  } catch (const scorch::Error& e) {
    const std::string message = e.what();
    for (const auto& p : parts)
      EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
  }
}

}  // namespace scorch::testing
