# anyrtpproxy - run ./configure first (it writes config.mk).
-include config.mk

CXX ?= g++
PREFIX ?= /usr/local
DESTDIR ?=
WARN = -Wall -Wextra -Werror
ALL_CXXFLAGS = -std=c++17 $(WARN) $(CXXFLAGS) -MMD -MP
ALL_CPPFLAGS = -Isrc $(CPPFLAGS)

# The pure core: no I/O, clock or logging (tests/run.sh checks it, and which
# core module may include which). event.h is header-only core.
CORE = text protocol port_allocator session session_table controller sync_codec cluster stats
IO = fd options log relay_sockets packet_path control_server notify sync proxy daemon
CORE_OBJ = $(CORE:%=build/%.o)
IO_OBJ = $(IO:%=build/%.o)
UNIT_SRC = $(wildcard tests/unit/*.cpp)
UNIT_OBJ = $(UNIT_SRC:tests/unit/%.cpp=build/unit/%.o)

all: anyrtpproxy

config.mk:
	@echo "run ./configure first" >&2; exit 1

anyrtpproxy: $(CORE_OBJ) $(IO_OBJ) build/main.o
	$(CXX) $(LDFLAGS) -o $@ $^ $(LIBS)

build/%.o: src/%.cpp | config.mk
	@mkdir -p $(@D)
	$(CXX) $(ALL_CPPFLAGS) $(ALL_CXXFLAGS) -c -o $@ $<

build/unit/%.o: tests/unit/%.cpp | config.mk
	@mkdir -p $(@D)
	$(CXX) $(ALL_CPPFLAGS) -DBOOST_TEST_DYN_LINK $(ALL_CXXFLAGS) -c -o $@ $<

# The unit tests link the core only: a core module that needed I/O would not link.
build/unit_tests: $(UNIT_OBJ) $(CORE_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ -lboost_unit_test_framework $(LIBS)

bench/forwarder bench/loadgen: %: %.cpp | config.mk
	$(CXX) -std=c++17 $(WARN) -O2 -o $@ $<

bench: anyrtpproxy bench/forwarder bench/loadgen
	bash bench/run.sh

check: anyrtpproxy build/unit_tests
	bash tests/run.sh

install: anyrtpproxy
	install -D -m 0755 anyrtpproxy $(DESTDIR)$(PREFIX)/sbin/anyrtpproxy
	install -D -m 0644 man/anyrtpproxy.8 $(DESTDIR)$(PREFIX)/share/man/man8/anyrtpproxy.8

# The roff page is committed, so building never needs AsciiDoc; after editing
# the source run `make man` (Debian: apt-get install asciidoctor).
man:
	asciidoctor -b manpage -o man/anyrtpproxy.8 man/anyrtpproxy.8.adoc

clean:
	rm -rf build anyrtpproxy bench/forwarder bench/loadgen

distclean: clean
	rm -f config.mk

.PHONY: all check install clean distclean man bench
-include $(wildcard build/*.d build/unit/*.d)
