// One copy per (table, device) (see device_cache.h).
#include "core/device_cache.h"

#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace scorch {

torch::Tensor on_device(const torch::Tensor& table, const torch::Device& device) {
  if (device.is_cpu() || table.device() == device) return table;
  struct Entry {
    torch::Tensor source, copy;
  };
  static std::mutex mutex;
  static std::map<std::pair<const void*, std::string>, Entry> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  auto& entry = cache[{table.unsafeGetTensorImpl(), device.str()}];
  if (!entry.copy.defined()) entry = {table, table.to(device)};
  return entry.copy;
}

}  // namespace scorch
