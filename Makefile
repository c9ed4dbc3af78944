# softrelay: `make run` and `make test` do all the set-up on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUILT := $(VENV)/.built

.PHONY: all venv build run test lint bench clean system-deps asan-test fuzz arm-deps test-arm \
	test-arm64 test-armhf test-fast

all: build

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "setuptools>=77" wheel "Cython>=3.0.10" "numpy>=1.26"
	$(PY) -m pip install --no-build-isolation -e '.[test]'
	touch $@

venv: $(STAMP)

# Rebuild the compiled core whenever its sources change.
$(BUILT): $(STAMP) setup.py $(wildcard ext/softrelay/*.pyx ext/softrelay/*.pxd ext/softrelay/*.h) \
		ext/softrelay/mbserver.c
	$(PY) setup.py -q build_ext --inplace --build-lib runtime
	touch $@

build: $(BUILT)

run: build
	$(PY) -m softrelay run

# Programs the tests use (program:Debian package): socat makes the pty pairs of the Modbus RTU
# tests; mbpoll (libmodbus) is the independent client the Modbus slave is tested with;
# systemd-analyze verifies the service's unit file; mosquitto is the broker of the MQTT tests,
# snmptrapd (net-snmp) the receiver that decrypts their SNMPv3 traps; the real-systemd test
# (tests/test_systemd_real.py) boots /usr/lib/systemd/systemd in namespaces made with
# unshare/nsenter (util-linux) and reads the port it binds with ss (iproute2). (Daemons live
# in /usr/sbin, not on every user's PATH.)
SYSTEM_TOOLS := socat:socat mbpoll:mbpoll systemd-analyze:systemd mosquitto:mosquitto \
	snmptrapd:snmptrapd unshare:util-linux nsenter:util-linux ss:iproute2
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do prog=$${pair%%:*}; \
		command -v $$prog >/dev/null || test -x /usr/sbin/$$prog || \
		missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q $$missing; \
		else echo "missing:$$missing: sudo apt-get install$$missing" >&2; exit 1; fi; fi

# The lint: ruff, and mypy over the runtime package ([tool.mypy] in pyproject.toml: the pydantic
# plugin, the compiled modules typed by their .pyi stubs); both must be clean.
LINT = $(PY) -m ruff check runtime tests benchmarks setup.py && $(PY) -m mypy

test: build system-deps
	$(LINT)
	$(PY) -m pytest
	$(MAKE) asan-test

# The fast subset while working: the lint, and every test but the slow end-to-end ones
# (marked e2e); under 30 s on a quiet 2-core machine. `make test` runs them all.
test-fast: build system-deps
	$(LINT)
	$(PY) -m pytest -q -m "not e2e"

# The Modbus server built with AddressSanitizer and UndefinedBehaviorSanitizer (gcc's), beside
# a copy of the package, and run under the server's robustness tests and the 100 000-frame
# fuzz (about 40 s). A missing sanitizer runtime fails here, loudly: it is never skipped.
ASAN_DIR := build/asan
asan-test: build
	@libasan=$$(gcc -print-file-name=libasan.so); \
	if [ ! -f "$$libasan" ]; then echo "asan-test: gcc's AddressSanitizer runtime" \
		"(libasan.so) is missing: apt-get install gcc" >&2; exit 1; fi; \
	set -e; rm -rf $(ASAN_DIR); mkdir -p $(ASAN_DIR); cp -rL runtime/softrelay $(ASAN_DIR)/; \
	SOFTRELAY_SANITIZE=1 $(PY) setup.py -q build_ext --build-lib $(ASAN_DIR) \
		--build-temp $(ASAN_DIR)/tmp; \
	export LD_PRELOAD=$$libasan PYTHONPATH=$(ASAN_DIR) \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1; \
	$(PY) -c "import softrelay._mbserver as m, sys; \
		assert m.__file__.startswith('$(abspath $(ASAN_DIR))'), m.__file__; \
		assert 'libasan' in open('/proc/self/maps').read(), 'ASan not loaded'; \
		print('asan-test:', m.__file__)"; \
	$(PY) -m pytest -q -p no:cacheprovider tests/test_modbus_server_robustness.py \
		"tests/test_modbus_slave.py::test_fuzz_100000_frames_the_server_answers_by_the_specification" \
		tests/test_modbus_tls.py -k "robustness or fuzz_100000 or adopted or adoption"

# libFuzzer (clang) on the frame parser and the server loop, ASan and UBSan on, for FUZZ_SECONDS
# (10 minutes unless told; tests/fuzz/fuzz_mbserver.c says what it does). Needs clang, which
# `make test` does not: on demand only.
FUZZ_SECONDS ?= 600
FUZZ_DIR := build/fuzz
fuzz:
	@command -v clang >/dev/null || if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y -q clang; \
		else echo "fuzz: clang (libFuzzer) is missing: sudo apt-get install clang" >&2; exit 1; fi
	mkdir -p $(FUZZ_DIR)/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-Iext/softrelay tests/fuzz/fuzz_mbserver.c -o $(FUZZ_DIR)/fuzz_mbserver -lpthread
	cp tests/fuzz/seeds/* $(FUZZ_DIR)/corpus/
	@echo "fuzzing $(FUZZ_SECONDS) s (progress in $(FUZZ_DIR)/fuzz.log)"; \
	$(FUZZ_DIR)/fuzz_mbserver -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-max_len=2048 $(FUZZ_DIR)/corpus > $(FUZZ_DIR)/fuzz.log 2>&1; status=$$?; \
	grep -v "^#" $(FUZZ_DIR)/fuzz.log | tail -40; grep "DONE" $(FUZZ_DIR)/fuzz.log; \
	exit $$status
	@# the coverage the corpus reached, per line and branch of the server (llvm-cov)
	clang -O1 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping -Iext/softrelay \
		tests/fuzz/fuzz_mbserver.c -o $(FUZZ_DIR)/fuzz_coverage -lpthread
	LLVM_PROFILE_FILE=$(FUZZ_DIR)/fuzz.profraw $(FUZZ_DIR)/fuzz_coverage -runs=0 \
		$(FUZZ_DIR)/corpus >/dev/null 2>&1
	llvm-profdata merge -o $(FUZZ_DIR)/fuzz.profdata $(FUZZ_DIR)/fuzz.profraw
	llvm-cov report $(FUZZ_DIR)/fuzz_coverage -instr-profile=$(FUZZ_DIR)/fuzz.profdata \
		ext/softrelay/mbserver.c

# ARM under emulation (tools/arm/): Debian bookworm arm64 and armhf root filesystems made by
# debootstrap, run through qemu-user-static and binfmt_misc, cached in /var/cache/softrelay-arm
# (SOFTRELAY_ARM_CACHE) so that only the first run bootstraps; softrelay is built there with
# the ARM compiler and the ARM proofs run (tools/arm/run.sh lists them; ARM_TESTS="..." for
# others). Needs root. Times on a shared 2-core x86 machine: benchmarks/README.md.
ARM_TOOLS := debootstrap:debootstrap qemu-aarch64-static:qemu-user-static \
	qemu-arm-static:qemu-user-static update-binfmts:binfmt-support
arm-deps:
	@missing=""; for pair in $(ARM_TOOLS); do prog=$${pair%%:*}; \
		command -v $$prog >/dev/null || test -x /usr/sbin/$$prog || \
		missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q $$missing; \
		else echo "missing:$$missing: sudo apt-get install$$missing" >&2; exit 1; fi; fi

test-arm64: arm-deps
	tools/arm/run.sh arm64

test-armhf: arm-deps
	tools/arm/run.sh armhf

test-arm: test-arm64 test-armhf

bench: build
	mkdir -p benchmarks/results
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest benchmarks --benchmark-only -q \
		--benchmark-columns=min,median,rounds --benchmark-json=benchmarks/results/core.json
	$(PY) benchmarks/report.py benchmarks/results/core.json

lint: venv
	$(LINT)

clean:
	rm -rf build $(VENV) runtime/softrelay/*.so ext/softrelay/*.html \
		$(patsubst %.pyx,%.c,$(wildcard ext/softrelay/*.pyx))  # the generated C, not mbserver.c
