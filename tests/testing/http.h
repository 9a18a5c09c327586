// Loopback helpers for the monitoring tests: an HTTP/1.0 GET over a plain
// socket (the metrics endpoints and Prometheus's HTTP API both speak it), free
// TCP ports, and a socket that holds a port.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace scorch::testing {

struct HttpResponse {
  int status = 0;    // 0: no connection or no HTTP answer
  std::string body;
};

// GET http://127.0.0.1:port/target (target starts with '/', URL-encoded).
inline HttpResponse http_get(int port, const std::string& target) {
  HttpResponse r;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return r;
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return r;
  }
  const std::string request = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return r;
  }
  std::string raw;
  char buf[8192];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  // "HTTP/1.x 200 OK\r\n...headers...\r\n\r\nbody"
  const auto header_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/", 0) != 0 || header_end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(raw.find(' ') + 1, 3));
  r.body = raw.substr(header_end + 4);
  return r;
}

// A socket bound (and listening) on 127.0.0.1:port; port 0 picks a free one.
struct PortHolder {
  int fd = -1;
  int port = 0;
  explicit PortHolder(int wanted = 0) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(wanted));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, 4) != 0) {
      ::close(fd);
      fd = -1;
      return;
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~PortHolder() {
    if (fd >= 0) ::close(fd);
  }
  PortHolder(const PortHolder&) = delete;
  PortHolder& operator=(const PortHolder&) = delete;
  bool ok() const { return fd >= 0; }
};

// A port p with p .. p + count - 1 all free on 127.0.0.1 right now (another
// process may take them later; tests use them at once). 0 if none was found.
inline int free_port_range(int count) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    int first;
    {
      PortHolder probe;
      if (!probe.ok()) return 0;
      first = probe.port;
    }
    if (first + count - 1 > 65535) continue;
    bool all_free = true;
    for (int i = 0; i < count && all_free; ++i) all_free = PortHolder(first + i).ok();
    if (all_free) return first;
  }
  return 0;
}

}  // namespace scorch::testing
