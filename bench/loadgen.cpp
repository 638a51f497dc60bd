// loadgen: the benchmark's load generator (not a test).
//
// Sets up N sessions over the rtpproxy control protocol (U + L, pipelined),
// then streams RTP through both legs of every session at a total packet rate,
// timestamping each packet, and reports setup rate, relayed packets per
// second, loss, one-way latency percentiles (generator -> relay -> generator),
// and the relay's CPU time and RSS read from /proc/PID.
//
//   loadgen --control 127.0.0.1:22222 --pid PID --sessions 200 --pps 20000 --seconds 5
//           [--media ADDR] [--relay ADDR]
//
// --media: the generator's own address (its sockets, and what U and L
// signal; default 127.0.0.1); --relay: where the media goes (default the
// control address). It also reports the CPU the whole machine spent per
// relayed packet (all cores, /proc/stat, minus the generator's own), which
// counts what a relay's kernel does outside the relay's process (the
// kernel fast path's softirq work).
//
// All caller legs share one local socket and all callee legs another: sessions
// are told apart by the payload, so the generator needs two sockets, not 2N.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

struct Args {
  std::string host = "127.0.0.1";
  int control_port = 22222;
  std::string media = "127.0.0.1", relay;
  int pid = 0;
  int sessions = 200;
  double pps = 20000;
  double seconds = 5;
  int window = 64;
  bool setup_only = false;
};

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "loadgen: %s\n", m.c_str());
  std::exit(1);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto v = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + k);
      return argv[++i];
    };
    if (k == "--control") {
      std::string s = v();
      auto c = s.rfind(':');
      if (c == std::string::npos) die("--control host:port");
      a.host = s.substr(0, c);
      a.control_port = std::atoi(s.c_str() + c + 1);
    } else if (k == "--pid") a.pid = std::atoi(v().c_str());
    else if (k == "--sessions") a.sessions = std::atoi(v().c_str());
    else if (k == "--pps") a.pps = std::atof(v().c_str());
    else if (k == "--seconds") a.seconds = std::atof(v().c_str());
    else if (k == "--window") a.window = std::atoi(v().c_str());
    else if (k == "--setup-only") a.setup_only = true;
    else if (k == "--media") a.media = v();
    else if (k == "--relay") a.relay = v();
    else die("unknown argument " + k);
  }
  if (a.sessions < 1 || a.sessions > 20000) die("--sessions 1..20000");
  if (a.relay.empty()) a.relay = a.host;
  return a;
}

sockaddr_in addr(const std::string& host, int port) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &s.sin_addr) != 1) die("bad address " + host);
  return s;
}

int udp_socket(int rcvbuf, const std::string& local = "127.0.0.1") {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in any = addr(local, 0);
  if (bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) die("bind");
  return fd;
}

int port_of(int fd) {
  sockaddr_in s{};
  socklen_t l = sizeof s;
  getsockname(fd, reinterpret_cast<sockaddr*>(&s), &l);
  return ntohs(s.sin_port);
}

struct ProcSample { double cpu_s = 0; long rss_kb = 0; };
ProcSample sample(int pid) {
  ProcSample p;
  if (!pid) return p;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto rp = all.rfind(')');
  if (rp != std::string::npos) {
    std::istringstream ss(all.substr(rp + 2));
    std::string f;
    std::vector<std::string> fields;
    while (ss >> f) fields.push_back(f);
    if (fields.size() > 13) p.cpu_s = (std::atof(fields[11].c_str()) + std::atof(fields[12].c_str())) / sysconf(_SC_CLK_TCK);
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) p.rss_kb = std::atol(line.c_str() + 6);
  return p;
}

// The machine's busy CPU time (all cores, /proc/stat: everything but idle and iowait), in seconds.
double machine_busy_s() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  stat >> cpu;
  double busy = 0, v = 0;
  for (int i = 0; stat >> v && i < 8; ++i)
    if (i != 3 && i != 4) busy += v;  // idle, iowait
  return busy / sysconf(_SC_CLK_TCK);
}

struct Session { int p = 0, q = 0; };  // p: callee-facing relay port (B sends there), q: caller-facing

// Sends commands with at most `window` outstanding; returns the replies by index.
// Cookies are "<base>_<index>" with a base unique per call: a reused cookie would be
// answered from the relay's reply cache.
std::vector<std::string> run_commands(int fd, const sockaddr_in& to, const std::vector<std::string>& cmds, int window) {
  static unsigned round = 0;
  const std::string base = std::to_string(getpid()) + "." + std::to_string(++round) + "_";
  std::vector<std::string> replies(cmds.size());
  std::vector<std::uint64_t> sent_at(cmds.size(), 0);
  size_t next = 0, done = 0;
  int outstanding = 0;
  char buf[2048];
  std::uint64_t last_progress = now_ns();
  while (done < cmds.size()) {
    while (outstanding < window && next < cmds.size()) {
      std::string m = base + std::to_string(next) + " " + cmds[next];
      sendto(fd, m.data(), m.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
      sent_at[next] = now_ns();
      ++next;
      ++outstanding;
    }
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
      buf[n] = 0;
      char* sp = std::strchr(buf, ' ');
      if (!sp || std::strncmp(buf, base.c_str(), base.size()) != 0) continue;
      size_t idx = std::strtoul(buf + base.size(), nullptr, 10);
      if (idx < cmds.size() && replies[idx].empty()) {
        replies[idx].assign(sp + 1, buf + n);
        ++done;
        --outstanding;
        last_progress = now_ns();
      }
      continue;
    }
    const std::uint64_t t = now_ns();
    if (t - last_progress > 1000000000ull) {  // retransmit whatever is still unanswered (same cookie)
      for (size_t i = 0; i < next; ++i)
        if (replies[i].empty()) {
          std::string m = base + std::to_string(i) + " " + cmds[i];
          sendto(fd, m.data(), m.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
        }
      last_progress = t;
      static int retries = 0;
      if (++retries > 5) die("the relay stopped answering commands");
    }
  }
  return replies;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  const sockaddr_in control = addr(a.host, a.control_port);
  const int ctl = udp_socket(4 << 20, a.media);
  const int side_a = udp_socket(8 << 20, a.media), side_b = udp_socket(8 << 20, a.media);
  const int pa = port_of(side_a), pb = port_of(side_b);
  const std::string tag = std::to_string(getpid());

  const ProcSample before_setup = sample(a.pid);
  std::vector<std::string> offers, answers;
  for (int i = 0; i < a.sessions; ++i) {
    offers.push_back("U bench-" + tag + "-" + std::to_string(i) + " " + a.media + " " + std::to_string(pa) + " A;1");
    answers.push_back("L bench-" + tag + "-" + std::to_string(i) + " " + a.media + " " + std::to_string(pb) + " A;1 B;1");
  }
  const std::uint64_t t0 = now_ns();
  // U before L for each call: run all offers, then all answers (each batch pipelined).
  auto u = run_commands(ctl, control, offers, a.window);
  auto l = run_commands(ctl, control, answers, a.window);
  const double setup_s = (now_ns() - t0) / 1e9;
  const ProcSample after_setup = sample(a.pid);
  std::vector<Session> sessions(a.sessions);
  for (int i = 0; i < a.sessions; ++i) {
    sessions[i].p = std::atoi(u[i].c_str());
    sessions[i].q = std::atoi(l[i].c_str());
    if (sessions[i].p <= 0 || sessions[i].q <= 0) die("session " + std::to_string(i) + ": U '" + u[i] + "' L '" + l[i] + "'");
  }
  std::printf("setup: %d sessions, %d commands in %.3f s = %.0f commands/s\n", a.sessions, 2 * a.sessions, setup_s,
              2 * a.sessions / setup_s);
  if (a.pid)
    std::printf("rss: %ld KiB before, %ld KiB after = %.0f bytes per session\n", before_setup.rss_kb, after_setup.rss_kb,
                (after_setup.rss_kb - before_setup.rss_kb) * 1024.0 / a.sessions);
  if (a.setup_only) {
    std::vector<std::string> del;
    for (int i = 0; i < a.sessions; ++i) del.push_back("D bench-" + tag + "-" + std::to_string(i) + " A");
    run_commands(ctl, control, del, a.window);
    return 0;
  }

  // Stream: packets alternate caller->relay(q) and callee->relay(p) over all sessions.
  constexpr unsigned batch = 64;
  constexpr size_t pkt_size = 172;
  struct Payload { std::uint32_t session, dir; std::uint64_t ts; };
  std::vector<std::uint64_t> latencies;
  latencies.reserve(static_cast<size_t>(a.pps * a.seconds * 1.1) + 1024);
  std::vector<sockaddr_in> dest_q(a.sessions), dest_p(a.sessions);
  for (int i = 0; i < a.sessions; ++i) {
    dest_q[i] = addr(a.relay, sessions[i].q);
    dest_p[i] = addr(a.relay, sessions[i].p);
  }
  std::vector<std::array<unsigned char, pkt_size>> txbuf(batch), rxbuf(batch);
  std::array<mmsghdr, batch> tx{}, rx{};
  std::array<iovec, batch> txv{}, rxv{};
  std::uint64_t sent = 0, received = 0, send_errors = 0;
  std::vector<std::uint16_t> seq(2 * a.sessions, 0);
  const double total = a.pps * a.seconds;
  const ProcSample before = sample(a.pid);
  const ProcSample self_before = sample(getpid());
  const double busy_before = machine_busy_s();
  const std::uint64_t start = now_ns();
  const std::uint64_t end = start + static_cast<std::uint64_t>(a.seconds * 1e9);
  std::array<std::uint64_t, 2> cursor{0, 0};
  int turn = 0;
  auto drain = [&](int fd) {
    for (;;) {
      for (unsigned i = 0; i < batch; ++i) {
        rxv[i] = iovec{rxbuf[i].data(), pkt_size};
        rx[i].msg_hdr = msghdr{};
        rx[i].msg_hdr.msg_iov = &rxv[i];
        rx[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(fd, rx.data(), batch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;
      const std::uint64_t t = now_ns();
      for (int i = 0; i < n; ++i) {
        if (rx[i].msg_len < 12 + sizeof(Payload)) continue;
        Payload pl;
        std::memcpy(&pl, rxbuf[i].data() + 12, sizeof pl);
        ++received;
        if (latencies.size() < latencies.capacity()) latencies.push_back(t - pl.ts);
      }
      if (static_cast<unsigned>(n) < batch) return;
    }
  };
  for (;;) {
    const std::uint64_t t = now_ns();
    if (t >= end) break;
    const double due = std::min(total, a.pps * (t - start) / 1e9);
    // batches alternate between the caller side (to q) and the callee side (to p)
    while (sent < due) {
      const int dir = turn;
      turn ^= 1;
      const unsigned k = static_cast<unsigned>(std::min<double>(batch, due - sent));
      if (k == 0) break;
      for (unsigned j = 0; j < k; ++j) {
        const int s = static_cast<int>(cursor[dir]++ % static_cast<std::uint64_t>(a.sessions));
        auto& b = txbuf[j];
        const std::uint16_t sq = seq[2 * s + dir]++;
        b[0] = 0x80;
        b[1] = 8;
        b[2] = static_cast<unsigned char>(sq >> 8);
        b[3] = static_cast<unsigned char>(sq);
        std::uint32_t ssrc = htonl(static_cast<std::uint32_t>(2 * s + dir + 1));
        std::memcpy(&b[8], &ssrc, 4);
        Payload pl{static_cast<std::uint32_t>(s), static_cast<std::uint32_t>(dir), now_ns()};
        std::memcpy(&b[12], &pl, sizeof pl);
        txv[j] = iovec{b.data(), pkt_size};
        tx[j].msg_hdr = msghdr{};
        tx[j].msg_hdr.msg_name = dir == 0 ? &dest_q[s] : &dest_p[s];
        tx[j].msg_hdr.msg_namelen = sizeof(sockaddr_in);
        tx[j].msg_hdr.msg_iov = &txv[j];
        tx[j].msg_hdr.msg_iovlen = 1;
      }
      int n = sendmmsg(dir == 0 ? side_a : side_b, tx.data(), k, MSG_DONTWAIT);
      if (n < 0) n = 0;
      send_errors += k - static_cast<unsigned>(n);
      sent += k;
      if (k < batch) break;
    }
    drain(side_a);
    drain(side_b);
  }
  const std::uint64_t stop_send = now_ns();
  while (now_ns() - stop_send < 300000000ull) {  // late packets
    drain(side_a);
    drain(side_b);
  }
  const ProcSample after = sample(a.pid);
  const ProcSample self_after = sample(getpid());
  const double busy = machine_busy_s() - busy_before - (self_after.cpu_s - self_before.cpu_s);
  const double secs = (stop_send - start) / 1e9;
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))] / 1000.0;
  };
  const double loss = sent ? 100.0 * (static_cast<double>(sent) - static_cast<double>(received)) / sent : 0;
  std::printf("stream: offered %.0f pps for %.2f s, sent %llu (%llu refused locally), received %llu\n", a.pps, secs,
              static_cast<unsigned long long>(sent), static_cast<unsigned long long>(send_errors),
              static_cast<unsigned long long>(received));
  std::printf("relayed: %.0f pps, loss %.3f %%\n", received / secs, loss);
  std::printf("latency: p50 %.1f us, p90 %.1f us, p99 %.1f us\n", pct(0.5), pct(0.9), pct(0.99));
  if (a.pid)
    std::printf("relay: cpu %.1f %% of one core, rss %ld KiB\n", 100.0 * (after.cpu_s - before.cpu_s) / secs, after.rss_kb);
  // the machine's CPU per relayed packet: all cores, without the generator's own (its process)
  const double machine_us = received ? 1e6 * busy / static_cast<double>(received) : 0.0;
  std::printf("machine: %.2f us of CPU per relayed packet (all cores, without the generator)\n", machine_us);
  // the generator's own CPU: near 100 % always, as it busy-polls its sockets between sends
  const double gen_pct = 100.0 * (self_after.cpu_s - self_before.cpu_s) / secs;
  std::printf("RESULT sessions=%d setup_cps=%.0f offered_pps=%.0f relayed_pps=%.0f loss_pct=%.3f p50_us=%.1f p90_us=%.1f p99_us=%.1f cpu_pct=%.1f rss_kb=%ld machine_us_per_pkt=%.2f gen_cpu_pct=%.1f\n",
              a.sessions, 2 * a.sessions / setup_s, a.pps, received / secs, loss, pct(0.5), pct(0.9), pct(0.99),
              a.pid ? 100.0 * (after.cpu_s - before.cpu_s) / secs : 0.0, after.rss_kb, machine_us, gen_pct);
  std::vector<std::string> del;
  for (int i = 0; i < a.sessions; ++i) del.push_back("D bench-" + tag + "-" + std::to_string(i) + " A");
  run_commands(ctl, control, del, a.window);
  return 0;
}
