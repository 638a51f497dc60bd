#define BOOST_TEST_MODULE anyrtpproxy
#include <boost/test/unit_test.hpp>
