// recording: what R writes, as pure functions (man page: RECORDING).
// File names from call-ids and tags (which come from the network, so they are
// made safe: no path separator, no leading dot, no control character, bounded
// length), and the two formats: rtpproxy's own per-direction format
// ("adhoc": a small header before each packet) and pcap (one file per
// session, RTP and RTCP of both directions with IP and UDP headers, so that
// Wireshark shows the real addresses). The recorder (recorder.h) writes them
// on its own thread.
#pragma once

#include "core/session.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace anyrtpproxy {

// "<call-id>=<from-tag without its ;N>", as rtpproxy names recordings, made
// safe for a file name: '/', control characters and a leading '.' become
// '_', and it is cut to 200 bytes.
std::string recording_base(const std::string& call_id, const std::string& from_tag);

// rtpproxy's per-direction files: ".o" for what the caller sent (leg 1, the
// caller-facing leg, receives it), ".a" for the callee; ".rtp" or ".rtcp".
std::string adhoc_suffix(int leg, Kind kind);

constexpr std::size_t pcap_file_header_size = 24;
// The pcap file header: version 2.4, link type raw IP (101), native byte order.
std::array<unsigned char, pcap_file_header_size> pcap_file_header();

// The largest header one packet gets: a pcap record (16), IPv6 (40), UDP (8).
constexpr std::size_t max_record_header = 64;
// The headers of one packet from `from` to `to` with `size` payload bytes
// (`kept` of them stored: a recording keeps at most the recorder's slot),
// written to `out`; returns their size. IP and UDP checksums are filled.
std::size_t pcap_record_header(unsigned char* out, const udp::endpoint& from, const udp::endpoint& to,
                               const unsigned char* payload, std::size_t size, std::size_t kept,
                               std::chrono::system_clock::time_point when);

// rtpproxy's adhoc header: the sender's address (family, port, address;
// 20 bytes), the arrival time (a double, seconds since the epoch) and the
// packet's length, packed, in this host's byte order (the port and address in
// network order), as rtpproxy writes it.
constexpr std::size_t adhoc_header_size = 30;
std::size_t adhoc_record_header(unsigned char* out, const udp::endpoint& from, std::size_t size,
                                std::chrono::system_clock::time_point when);

}  // namespace anyrtpproxy
