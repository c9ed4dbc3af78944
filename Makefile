# softrelay: `make run` and `make test` do all the set-up on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUILT := $(VENV)/.built

.PHONY: all venv build run test lint bench clean system-deps arm-deps test-arm test-arm64 test-armhf

all: build

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "setuptools>=77" wheel "Cython>=3.0.10" "numpy>=1.26"
	$(PY) -m pip install --no-build-isolation -e '.[test]'
	touch $@

venv: $(STAMP)

# Rebuild the compiled core whenever its sources change.
$(BUILT): $(STAMP) setup.py $(wildcard ext/softrelay/*.pyx ext/softrelay/*.pxd ext/softrelay/*.h)
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

test: build system-deps
	$(PY) -m ruff check runtime tests benchmarks setup.py
	$(PY) -m pytest

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
	$(PY) -m ruff check runtime tests benchmarks setup.py

clean:
	rm -rf build $(VENV) runtime/softrelay/*.so ext/softrelay/*.c ext/softrelay/*.html
