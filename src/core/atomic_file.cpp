// The temporary-file / fsync / rename / fsync-directory protocol (see
// atomic_file.h). POSIX rename() within one directory is atomic; the two
// fsyncs make the new contents and the new name durable in that order.
#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace scorch {
namespace {

std::string parent_dir(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

void fsync_path(const std::string& path, int flags, const char* what) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail(detail::concat("cannot open ", what, " '", path, "': ", std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  SCORCH_CHECK(rc == 0, "cannot fsync ", what, " '", path, "': ", std::strerror(err));
}

}  // namespace

void fsync_directory(const std::string& dir) { fsync_path(dir, O_RDONLY | O_DIRECTORY, "directory"); }

void fsync_file(const std::string& path) { fsync_path(path, O_RDONLY, "file"); }

void write_file_atomic(const std::string& path,
                       const std::function<void(const std::string& tmp)>& write) {
  const std::string tmp = path + ".tmp";
  try {
    write(tmp);
    fsync_file(tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail(detail::concat("cannot rename '", tmp, "' to '", path, "': ", std::strerror(err)));
  }
  fsync_directory(parent_dir(path));
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, [&](const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      fail(detail::concat("cannot create '", tmp, "' (writing '", path, "'): ",
                          std::strerror(errno)));
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = errno;
        ::close(fd);
        fail(detail::concat("cannot write '", path, "': ", std::strerror(err)));
      }
      done += static_cast<size_t>(n);
    }
    SCORCH_CHECK(::close(fd) == 0, "cannot write '", path, "': close: ", std::strerror(errno));
  });
}

}  // namespace scorch
