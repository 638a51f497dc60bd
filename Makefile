# anyrtpproxy - run ./configure first (it writes config.mk).
-include config.mk

CXX ?= g++
PREFIX ?= /usr/local
DESTDIR ?=
WARN = -Wall -Wextra -Werror

# make check SANITIZE=1: the daemon and the unit tests built with ASan and
# UBSan in build/san (never mixed with the normal objects in build). UBSan's
# vptr check is left out: it probes memory through a pipe, which fails in a
# process out of descriptors (tests make the daemon so), and then misreports
# Boost.System's error categories as objects of the wrong type.
ifeq ($(SANITIZE),1)
B = build/san
SAN = -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer
DAEMON = build/san/anyrtpproxy
HELPER = build/san/anyrtpproxy-health
else
B = build
SAN =
DAEMON = anyrtpproxy
HELPER = anyrtpproxy-health
endif
ALL_CXXFLAGS = -std=c++17 $(WARN) $(CXXFLAGS) $(SAN) -MMD -MP
ALL_CPPFLAGS = -Isrc $(CPPFLAGS)

# The layers are the folders of src (tests/layers.sh checks who includes whom):
# core is pure (no I/O, clock or logging), io touches sockets, files and the
# kernel, app parses the command line and composes the daemon.
CORE_SRC = $(wildcard src/core/*.cpp)
IO_SRC = $(wildcard src/io/*.cpp)
APP_SRC = $(filter-out src/app/main.cpp src/app/health_main.cpp,$(wildcard src/app/*.cpp))
CORE_OBJ = $(CORE_SRC:src/%.cpp=$(B)/%.o)
IO_OBJ = $(IO_SRC:src/%.cpp=$(B)/%.o)
APP_OBJ = $(APP_SRC:src/%.cpp=$(B)/%.o)
UNIT_SRC = $(wildcard tests/unit/*.cpp)
UNIT_OBJ = $(UNIT_SRC:tests/unit/%.cpp=$(B)/unit/%.o)

all: anyrtpproxy anyrtpproxy-health

# The kernel fast path (configure sets BPF=1 when clang, libbpf and bpftool
# are there): the eBPF object is built by clang and linked into the binary
# (object.S includes it), so the daemon carries its own program.
ifeq ($(BPF),1)
ALL_CPPFLAGS += -DANYRTPPROXY_BPF=1
IO_OBJ += $(B)/offload_object.o $(B)/catch_all_object.o
$(B)/%.bpf.o: src/io/bpf/%.bpf.c | config.mk
	@mkdir -p $(@D)
	$(BPF_CLANG) -O2 -g -target bpf -I/usr/include/$(shell uname -m)-linux-gnu $(WARN) -c -o $@ $<
$(B)/%_object.o: src/io/bpf/object.S $(B)/%.bpf.o
	$(CXX) -DOBJECT='"$(B)/$*.bpf.o"' -DNAME=anyrtpproxy_$*_object -c -o $@ $<
endif

config.mk:
	@echo "run ./configure first" >&2; exit 1

$(DAEMON): $(CORE_OBJ) $(IO_OBJ) $(APP_OBJ) $(B)/app/main.o
	$(CXX) $(LDFLAGS) $(SAN) -o $@ $^ $(LIBS)

# anyrtpproxy-health: follows the daemon's --health socket for a routing daemon.
$(HELPER): $(B)/app/health_main.o $(B)/core/route_decider.o
	$(CXX) $(LDFLAGS) $(SAN) -o $@ $^ -lboost_program_options

$(B)/%.o: src/%.cpp | config.mk
	@mkdir -p $(@D)
	$(CXX) $(ALL_CPPFLAGS) $(ALL_CXXFLAGS) -c -o $@ $<

$(B)/unit/%.o: tests/unit/%.cpp | config.mk
	@mkdir -p $(@D)
	$(CXX) $(ALL_CPPFLAGS) -DBOOST_TEST_DYN_LINK $(ALL_CXXFLAGS) -c -o $@ $<

# The unit tests link the core and the option parser only: a core module (or
# the parser) that needed I/O would not link.
$(B)/unit_tests: $(UNIT_OBJ) $(CORE_OBJ) $(B)/app/options.o
	$(CXX) $(LDFLAGS) $(SAN) -o $@ $^ -lboost_unit_test_framework $(LIBS)

bench/forwarder bench/loadgen: %: %.cpp | config.mk
	$(CXX) -std=c++17 $(WARN) -O2 -o $@ $<

bench: anyrtpproxy bench/forwarder bench/loadgen
	bash bench/run.sh

# The kernel fast path, offload off against on (as root: network namespaces).
bench-offload: anyrtpproxy bench/loadgen
	bash bench/offload.sh

# Under SANITIZE=1: the unit and integration tests (not the end-to-end ones).
check: $(DAEMON) $(HELPER) $(B)/unit_tests
	ANYRTPPROXY=$(CURDIR)/$(DAEMON) ANYRTPPROXY_HEALTH=$(CURDIR)/$(HELPER) UNIT_TESTS=$(CURDIR)/$(B)/unit_tests SANITIZE=$(SANITIZE) bash tests/run.sh

# libFuzzer harnesses (clang; Debian: clang, libclang-rt-14-dev) for one
# control request, command sequences through the controller, and the sync
# stream decoder applying what it decodes. Seeds: tests/fuzz/corpus.
FUZZ_CXX ?= clang++
FUZZ_SECONDS ?= 60
FUZZERS = request controller sync
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ = $(CORE_SRC:src/%.cpp=build/fuzz/%.o)
fuzz: $(FUZZERS:%=build/fuzz/fuzz_%)

build/fuzz/%.o: src/%.cpp
	@mkdir -p $(@D)
	$(FUZZ_CXX) -std=c++17 -g -O1 -Isrc $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.cpp $(FUZZ_OBJ) tests/unit/fakes.h
	$(FUZZ_CXX) -std=c++17 -g -O1 -Isrc $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) -lboost_serialization

.SECONDARY: $(FUZZ_OBJ)
-include $(FUZZ_OBJ:.o=.d)

fuzz-run: fuzz
	bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZERS)

# The daemon without the kernel fast path, as configure builds it where clang,
# libbpf or bpftool are missing; tests/integration/test_offload.py runs it.
nobpf: config.mk
	$(MAKE) BPF=0 B=build/nobpf DAEMON=build/nobpf/anyrtpproxy LIBS="$(filter-out -lbpf,$(LIBS))" build/nobpf/anyrtpproxy

# Everything .ci/run runs: make check, make check SANITIZE=1 and 60 s of each
# fuzzer, ending with one summary line for all of them.
check-all:
	bash tests/check-all.sh

# The seeded random fault test on more seeds and rounds than make check
# runs (tests/e2e/test_chaos.py; root, nftables): make chaos SEED=7 ROUNDS=30
SEED ?= 1
ROUNDS ?= 20
chaos: $(DAEMON) $(HELPER) $(B)/unit_tests
	CHAOS_SEEDS=$(SEED) CHAOS_ROUNDS=$(ROUNDS) ANYRTPPROXY=$(CURDIR)/$(DAEMON) ANYRTPPROXY_HEALTH=$(CURDIR)/$(HELPER) \
	  UNIT_TESTS=$(CURDIR)/$(B)/unit_tests bash tests/run.sh -s -k random_faults

install: anyrtpproxy anyrtpproxy-health
	install -D -m 0755 anyrtpproxy $(DESTDIR)$(PREFIX)/sbin/anyrtpproxy
	install -D -m 0755 anyrtpproxy-health $(DESTDIR)$(PREFIX)/bin/anyrtpproxy-health
	install -D -m 0644 examples/exabgp.conf $(DESTDIR)$(PREFIX)/share/doc/anyrtpproxy/examples/exabgp.conf
	install -D -m 0644 examples/bird.conf $(DESTDIR)$(PREFIX)/share/doc/anyrtpproxy/examples/bird.conf
	install -D -m 0644 man/anyrtpproxy.8 $(DESTDIR)$(PREFIX)/share/man/man8/anyrtpproxy.8

# The roff page is committed, so building never needs AsciiDoc; after editing
# the source run `make man` (Debian: apt-get install asciidoctor).
man:
	asciidoctor -b manpage -o man/anyrtpproxy.8 man/anyrtpproxy.8.adoc

clean:
	rm -rf build anyrtpproxy anyrtpproxy-health bench/forwarder bench/loadgen

distclean: clean
	rm -f config.mk

.PHONY: all check check-all chaos fuzz fuzz-run install clean distclean man bench bench-offload nobpf
-include $(wildcard $(B)/*/*.d $(B)/unit/*.d)
