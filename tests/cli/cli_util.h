// Helpers for tests that run the scorch binary: run a command line and
// capture its exit code and combined output; fresh temporary directories.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace scorch::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout + stderr
  std::string stdout_only;
};

// Runs a shell command line; stdout and stderr captured apart.
inline CommandResult run_command(const std::string& command) {
  const auto err = std::filesystem::temp_directory_path() /
                   ("scorch_stderr_" + std::to_string(::getpid()) + ".txt");
  const std::string cmd = command + " 2>" + err.string();
  CommandResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.stdout_only.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err);
  std::stringstream e;
  e << in.rdbuf();
  r.output = r.stdout_only + e.str();
  std::filesystem::remove(err);
  return r;
}

// Runs `args` after the scorch binary.
inline CommandResult run_scorch(const std::string& args) {
  return run_command(std::string(SCORCH_BINARY) + " " + args);
}

#ifdef SCORCH_MPIRUN
// The scorch binary under `mpirun --oversubscribe -np N` (and
// --allow-run-as-root when the tests run as root).
inline std::string mpirun_scorch_command(int ranks) {
  return std::string(SCORCH_MPIRUN) + " -np " + std::to_string(ranks) + " " + SCORCH_BINARY;
}
inline CommandResult mpirun_scorch(int ranks, const std::string& args) {
  return run_command(mpirun_scorch_command(ranks) + " " + args);
}
#endif

// A new empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("scorch_" + tag + "_" + std::to_string(::getpid()) + "_" +
            std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string str() const { return path.string(); }
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace scorch::testing
