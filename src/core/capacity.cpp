// capacity: see capacity.h.
#include "core/capacity.h"

#include <algorithm>

namespace anyrtpproxy {

Headroom headroom(std::uint64_t fd_limit, std::optional<std::size_t> open_fds, std::uint64_t free_pairs,
                  std::size_t unbound_legs, std::uint64_t sessions_left) {
  Headroom h;
  const std::uint64_t used = open_fds ? *open_fds : 0;
  const std::uint64_t spare = fd_limit > used + descriptor_reserve ? fd_limit - used - descriptor_reserve : 0;
  const std::uint64_t table_legs = sessions_left > UINT64_MAX / 2 ? UINT64_MAX : 2 * sessions_left;
  h.legs = std::min({spare / 2, free_pairs, table_legs});
  if (unbound_legs > 0) {
    h.reason = "unbound_legs";
    h.problem = std::to_string(unbound_legs) + " legs of peers' sessions are not bound here: it cannot take them over";
  } else if (spare / 2 < 2) {
    h.reason = "file_limit";
    h.problem = "the open-file limit is reached (" + std::to_string(used) + " of " + std::to_string(fd_limit) +
                " descriptors in use)";
  } else if (free_pairs < 2) {
    h.reason = "port_range";
    h.problem = "the port range is used up (" + std::to_string(free_pairs) + " port pairs left)";
  } else if (sessions_left < 1) {
    h.reason = "table_full";
    h.problem = "the session table is full (its count or memory bound): peers' new sessions are refused";
  }
  return h;
}

std::uint64_t sessions_left(const TableConfig& c, std::size_t sessions, std::size_t bytes) {
  const std::size_t per = sessions ? std::max<std::size_t>(bytes / sessions, 1) : 600;
  const std::uint64_t by_count = c.max_sessions > sessions ? c.max_sessions - sessions : 0;
  const std::uint64_t by_memory = c.max_bytes > bytes ? (c.max_bytes - bytes) / per : 0;
  return std::min(by_count, by_memory);
}

TableConfig scaled_for(TableConfig c, std::size_t served) {
  const std::size_t scale = std::max<std::size_t>(1, (served + 1) / 2);
  c.max_sessions *= scale;
  c.max_bytes *= scale;
  return c;
}

std::vector<Member> members(const std::string& self, const Capacity& own,
                            const std::map<std::string, ClusterView::Announced>& announced, Clock::time_point now,
                            std::string state, std::string why) {
  std::vector<Member> out{{self, own, 0, std::move(state), std::move(why)}};
  for (const auto& [instance, a] : announced)
    out.push_back({instance, a.capacity, std::chrono::duration<double>(now - a.at).count(), "", ""});
  return out;
}

std::string capacity_lines(const std::vector<Member>& members, const std::string& self) {
  std::string out;
  for (const auto& m : members)
    out += "# capacity: instance " + m.instance + " headroom=" + std::to_string(m.capacity.headroom_legs) +
           " relays=" + std::to_string(m.capacity.relayed_legs) + " parks=" + std::to_string(m.capacity.parked_legs) +
           " " + (!m.state.empty()            ? m.state
                  : !m.capacity.state.empty() ? m.capacity.state  // a peer of wire version 7 or newer says it
                  : m.capacity.healthy        ? "healthy"
                                              : "unhealthy") +
           (m.instance == self ? " (this instance)"
                               : " (announced " + std::to_string(static_cast<long>(m.age)) + "s ago)") +
           (m.why.empty() ? "" : "; " + m.why) + "\n";
  return out;
}

std::vector<Event> TakeoverWatch::check(const Headroom& h, const std::map<std::string, ClusterView::Announced>& announced,
                                        Clock::time_point now) {
  std::vector<Event> out;
  for (const auto& [instance, a] : announced) {
    const bool fresh = now - a.at < std::chrono::seconds(10);
    const bool short_of = fresh && a.capacity.relayed_legs > h.legs;
    const bool warned = short_.count(instance) != 0;
    if (short_of && !warned) {
      out.emplace_back(Level::warning, "capacity: cannot take over instance " + instance +
                                           " should its route move here: it relays " +
                                           std::to_string(a.capacity.relayed_legs) + " legs, this instance has room for " +
                                           std::to_string(h.legs) + (h.healthy() ? "" : " (" + h.problem + ")") +
                                           "; raise the file limit, add relay addresses or instances");
      short_.insert(instance);
    } else if (!short_of && warned && fresh) {
      out.emplace_back(Level::notice, "capacity: can take over instance " + instance + " again (" +
                                          std::to_string(a.capacity.relayed_legs) + " legs, room for " +
                                          std::to_string(h.legs) + ")");
      short_.erase(instance);
    }
  }
  return out;
}

std::vector<Event> HealthWatch::check(const Headroom& h) {
  std::vector<Event> out;
  const bool ok = h.healthy();
  if (!ok && healthy_.value_or(true))
    out.emplace_back(Level::warning, "health: cannot take over its share, " + file_ + " removed: " + h.problem);
  if (ok && healthy_ && !*healthy_) out.emplace_back(Level::notice, "health: headroom again, " + file_ + " is back");
  healthy_ = ok;
  return out;
}

}  // namespace anyrtpproxy
