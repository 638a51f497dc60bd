// forwarder: the benchmark's baseline, a bare single-threaded UDP forwarder.
//
// It answers just enough of the control protocol for loadgen's session setup
// (U: allocate a port towards the callee, L: one towards the caller; replies
// "<cookie> <port>") and then forwards every datagram from one leg's socket to
// the other party with recvmmsg/sendmmsg, with no latching, no counters, no
// timers. What it costs is the kernel's cost of moving a packet; anyrtpproxy's
// throughput and latency are quoted relative to it.
//
//   forwarder CONTROL_PORT FIRST_PORT LAST_PORT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct Leg { int fd = -1; int peer_fd = -1; sockaddr_in dest{}; };  // dest: where packets leaving this leg go

int bind_udp(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: forwarder CONTROL_PORT FIRST_PORT LAST_PORT\n");
    return 2;
  }
  const int control = bind_udp(std::atoi(argv[1]));
  int next_port = std::atoi(argv[2]);
  const int last_port = std::atoi(argv[3]);
  if (control < 0) {
    std::perror("control");
    return 1;
  }
  const int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = control;
  epoll_ctl(ep, EPOLL_CTL_ADD, control, &ev);

  struct Call { int s0 = -1, s1 = -1; sockaddr_in a{}, b{}; };
  std::unordered_map<std::string, Call> calls;
  std::unordered_map<int, Leg> legs;  // by fd
  auto port_of = [](int fd) {
    sockaddr_in a{};
    socklen_t l = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
    return ntohs(a.sin_port);
  };
  std::vector<int> freed;  // ports of deleted calls, reused first
  auto open_port = [&]() {
    while (!freed.empty() || next_port + 1 <= last_port) {
      int port = next_port;
      if (!freed.empty()) {
        port = freed.back();
        freed.pop_back();
      } else {
        next_port += 2;
      }
      const int fd = bind_udp(port);
      if (fd >= 0) {
        epoll_event e{};
        e.events = EPOLLIN;
        e.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        return fd;
      }
    }
    return -1;
  };

  constexpr unsigned batch = 64;
  std::vector<std::array<char, 2048>> buf(batch);
  std::array<mmsghdr, batch> msgs{};
  std::array<iovec, batch> iov{};
  std::array<epoll_event, 256> events{};
  for (;;) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int e = 0; e < n; ++e) {
      const int fd = events[e].data.fd;
      if (fd == control) {
        char cmd[2048];
        sockaddr_in from{};
        socklen_t fl = sizeof from;
        ssize_t len;
        while ((len = recvfrom(control, cmd, sizeof cmd - 1, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl)) > 0) {
          cmd[len] = 0;
          std::istringstream in(cmd);
          std::string cookie, op, id, addr, port, reply = "E1";
          in >> cookie >> op >> id >> addr >> port;
          sockaddr_in remote{};
          remote.sin_family = AF_INET;
          remote.sin_port = htons(static_cast<uint16_t>(std::atoi(port.c_str())));
          inet_pton(AF_INET, addr.c_str(), &remote.sin_addr);
          if (op == "U" || op == "L") {
            Call& c = calls[id];
            int& mine = op == "U" ? c.s0 : c.s1;
            (op == "U" ? c.a : c.b) = remote;
            if (mine < 0) mine = open_port();
            if (mine < 0) {
              reply = "E72";
            } else {
              reply = std::to_string(port_of(mine));
              if (c.s0 >= 0 && c.s1 >= 0) {  // S0 faces the callee, S1 the caller
                legs[c.s0] = Leg{c.s0, c.s1, c.a};
                legs[c.s1] = Leg{c.s1, c.s0, c.b};
              }
            }
          } else if (op == "D") {
            auto it = calls.find(id);
            if (it != calls.end()) {
              for (int s : {it->second.s0, it->second.s1})
                if (s >= 0) {
                  legs.erase(s);
                  freed.push_back(port_of(s));
                  close(s);
                }
              calls.erase(it);
              reply = "0";
            } else {
              reply = "E50";
            }
          } else if (op == "V") {
            reply = "20040107";
          }
          const std::string out = cookie + " " + reply + "\n";
          sendto(control, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), fl);
          fl = sizeof from;
        }
        continue;
      }
      auto it = legs.find(fd);
      if (it == legs.end()) {
        char drop[2048];
        while (recv(fd, drop, sizeof drop, MSG_DONTWAIT) > 0) {
        }
        continue;
      }
      const Leg& leg = it->second;
      // a packet on S0 (from the callee) leaves S1 towards the caller, and the other way round
      const Leg& out = legs[leg.peer_fd];
      for (;;) {
        for (unsigned i = 0; i < batch; ++i) {
          iov[i] = iovec{buf[i].data(), buf[i].size()};
          msgs[i].msg_hdr = msghdr{};
          msgs[i].msg_hdr.msg_iov = &iov[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
        }
        const int got = recvmmsg(fd, msgs.data(), batch, MSG_DONTWAIT, nullptr);
        if (got <= 0) break;
        for (int i = 0; i < got; ++i) {
          iov[i].iov_len = msgs[i].msg_len;
          msgs[i].msg_hdr.msg_name = const_cast<sockaddr_in*>(&leg.dest);
          msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
        }
        sendmmsg(out.fd, msgs.data(), static_cast<unsigned>(got), MSG_DONTWAIT);
        if (static_cast<unsigned>(got) < batch) break;
      }
    }
  }
}
