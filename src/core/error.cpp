// Scorch's user-facing error path (see error.h).
#include "core/error.h"

namespace scorch {

void fail(const std::string& message) { throw Error(message); }

}  // namespace scorch
