#include "core/port_allocator.h"

#include <boost/test/unit_test.hpp>

#include <set>

using anyrtpproxy::PortAllocator;

BOOST_AUTO_TEST_SUITE(port_allocator)

BOOST_AUTO_TEST_CASE(even_pairs_inside_the_range) {
  BOOST_TEST(PortAllocator::pairs_in(35000, 35010) == 5u);
  BOOST_TEST(PortAllocator::pairs_in(35000, 35009) == 4u);  // 35008/35009 would use the end port
  BOOST_TEST(PortAllocator::pairs_in(35001, 35004) == 1u);  // 35002/35003
  BOOST_TEST(PortAllocator::pairs_in(35001, 35002) == 0u);
  BOOST_TEST(PortAllocator::pairs_in(35000, 35000) == 0u);
  BOOST_TEST(PortAllocator::pairs_in(65532, 65535) == 1u);
  BOOST_TEST(PortAllocator::pairs_in(65534, 65535) == 0u);
  // the original manual's cluster example: ranges that share an end are disjoint
  PortAllocator one(20000, 25000, 1), two(25000, 30000, 2);
  BOOST_TEST(one.capacity() == 2500u);
  BOOST_TEST(!one.owns(25000));
  BOOST_TEST(two.owns(25000));
  PortAllocator a(35001, 35010, 7);
  std::set<std::uint16_t> seen;
  while (auto p = a.take()) {
    BOOST_TEST(*p % 2 == 0);
    BOOST_TEST(*p >= 35002);
    BOOST_TEST(*p + 1 < 35010);
    BOOST_TEST(seen.insert(*p).second);
  }
  BOOST_TEST(seen.size() == 4u);
  BOOST_TEST(a.available() == 0u);
}

BOOST_AUTO_TEST_CASE(freed_ports_wait_behind_the_others) {
  PortAllocator a(40000, 40010, 3);
  const auto first = *a.take();
  a.give_back(first);
  for (int i = 0; i < 4; ++i) BOOST_TEST(*a.take() != first);
  BOOST_TEST(*a.take() == first);
  BOOST_TEST(!a.take());
}

BOOST_AUTO_TEST_CASE(shuffled_by_seed) {
  PortAllocator a(20000, 29999, 1), b(20000, 29999, 2);
  int same = 0;
  for (int i = 0; i < 50; ++i) same += *a.take() == *b.take();
  BOOST_TEST(same < 10);
}

BOOST_AUTO_TEST_CASE(give_back_ignores_foreign_and_double_frees) {
  PortAllocator a(40000, 40004, 1);
  const auto p = *a.take();
  a.give_back(p);
  a.give_back(p);
  a.give_back(50000);
  a.give_back(static_cast<std::uint16_t>(p + 1));
  BOOST_TEST(a.available() == 2u);
}

BOOST_AUTO_TEST_CASE(reserved_pairs_are_never_handed_out) {
  PortAllocator a(22220, 22228, 5);
  a.reserve(22222);
  a.reserve(22225);  // the RTCP half reserves its pair too
  BOOST_TEST(a.available() == 2u);
  std::set<std::uint16_t> got{*a.take(), *a.take()};
  BOOST_TEST((got == std::set<std::uint16_t>{22220, 22226}));
  a.give_back(22222);
  BOOST_TEST(a.available() == 0u);
  BOOST_TEST(a.owns(22221));
  BOOST_TEST(!a.owns(22228));
}

BOOST_AUTO_TEST_SUITE_END()
