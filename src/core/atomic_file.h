// Durable, atomic file writes: a file is either the old one or the whole new
// one, even if the process or the machine dies part-way. Every writer of a
// file that must survive a crash (checkpoints, configs, reports, sample
// previews, reference statistics, scrape targets) goes through here.
//
//   write_file_atomic("w/config.yaml", yaml_text);
//   write_file_atomic("w/samples.png", [&](const std::string& tmp) { write_png_to(tmp); });
#pragma once

#include <functional>
#include <string>

namespace scorch {

// Writes `bytes` to `path`: a temporary file beside it (path + ".tmp"),
// fsync, rename over `path`, fsync of the directory. The directory must
// exist. On failure throws scorch::Error naming `path` and the cause; the
// temporary file is removed and an existing `path` is left as it was.
void write_file_atomic(const std::string& path, const std::string& bytes);

// The same protocol for writers that need a file name of their own (libzip,
// stb, an fd): `write(tmp)` creates the temporary file `tmp` (and may throw);
// then fsync, rename and directory fsync as above.
void write_file_atomic(const std::string& path,
                       const std::function<void(const std::string& tmp)>& write);

// fsync of a directory, so that a rename or a new entry in it survives a
// crash. Throws scorch::Error naming `dir`.
void fsync_directory(const std::string& dir);

// fsync of a written file by name. Throws scorch::Error naming `path`.
void fsync_file(const std::string& path);

}  // namespace scorch
