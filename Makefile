# tls-handshake-analyzer: set-up, main job, tests.
# Every target that needs tools runs `install` first, so each works as the first command
# on a fresh Debian 12 machine (as root; uses sudo when not root).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := tshark tcpdump iptables iproute2 ethtool openssl curl nginx-light \
	squid-openssl gnutls-bin tcpreplay stunnel4 haproxy ssldump procps postfix chromium time \
	ocserv openconnect prometheus dante-server openssh-server openssh-client libnss3-tools \
	gcc libc6-dev python3-dev
export DEBIAN_FRONTEND := noninteractive

.PHONY: install deb venv native run test lint samples bench stress fuzz clean

install: deb venv native

# Debian packages: daemons must not start on install (policy-rc.d), tshark's debconf
# question is answered in advance, so nothing waits for a person.
deb:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  printf '%s\n' "wireshark-common wireshark-common/install-setuid boolean false" \
	    "postfix postfix/main_mailer_type select No configuration" \
	    "postfix postfix/mailname string localhost" | $(SUDO) debconf-set-selections; \
	  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; $(SUDO) chmod +x /usr/sbin/policy-rc.d; }; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=77'
	$(PY) -m pip install -q -e '.[dev,live,dask,zeek-test]'
	@touch $@

# The compiled hot path: mypyc builds the modules listed in analyzer/_build.py in place,
# beside their sources, when a C compiler and the Python headers are there; the package
# runs as pure Python otherwise (and when a source changed since, until the next build).
# TLSA_COMPILE=0 skips the build, TLSA_COMPILE=1 makes a failed build an error.
TLSA_COMPILE ?= auto
NATIVE_SOURCES := $(shell sed -n 's/^    "analyzer\.\([a-z_.]*\)",$$/\1/p' analyzer/_build.py \
	| tr . / | sed 's|^|analyzer/|; s|$$|.py|')

native: $(VENV)/.installed
	@[ "$(TLSA_COMPILE)" = 0 ] || $(MAKE) --no-print-directory analyzer/_native.json

analyzer/_native.json: $(VENV)/.installed setup.py analyzer/_build.py $(NATIVE_SOURCES)
	@echo "compiling the hot path ($(words $(NATIVE_SOURCES)) modules; TLSA_COMPILE=0 skips this)"
	@rm -f $@
	@TLSA_COMPILE=$(TLSA_COMPILE) $(PY) setup.py -q build_ext --inplace >build-native.log 2>&1 \
	  || { echo "compiled build failed (see build-native.log): pure Python"; \
	       [ "$(TLSA_COMPILE)" != 1 ] || exit 1; }
	@[ -e $@ ] || echo "no compiled build (no C compiler or Python headers): pure Python"

# Tests that run a second time on the pure-Python build when the compiled one is in use.
PURE_TESTS := tests/test_tls_hello.py tests/test_tls_records.py tests/test_tls_stream.py \
	tests/test_reassembly.py tests/test_decode.py tests/test_engine_real.py \
	tests/test_engine_icmp.py tests/test_golden_samples.py tests/test_build.py

# The sample clients trusted the samples' own test root CA: give the analyzer the same trust.
SAMPLE_TRUST := --ca-bundle sample_pcaps/test-ca.pem

run: install
	$(VENV)/bin/tlsa analyze sample_pcaps/ $(SAMPLE_TRUST)
	$(VENV)/bin/tlsa summary sample_pcaps/ $(SAMPLE_TRUST)
	$(VENV)/bin/tlsa report sample_pcaps/ -o out/report $(SAMPLE_TRUST) >/dev/null
	@echo "HTML report: $(CURDIR)/out/report/index.html"

lint: install
	$(VENV)/bin/ruff check analyzer tests bench sample_pcaps
	$(VENV)/bin/mypy --strict analyzer

test: lint
	$(VENV)/bin/pytest -q
	@if $(PY) -c 'import sys, analyzer; sys.exit(not analyzer.COMPILED)'; then \
	  echo "the same parser, engine and golden-output tests on the pure-Python build:"; \
	  TLSA_PURE=1 $(VENV)/bin/pytest -q -p no:cacheprovider $(PURE_TESTS); \
	fi

samples: install
	$(PY) sample_pcaps/generate.py --all

bench: install
	$(PY) bench/run.py

stress: install
	$(VENV)/bin/pytest -q -rP -m slow tests/test_stress.py

fuzz: install
	$(PY) tests/fuzz/run.py --minutes 15

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build build-native.log analyzer/_native.json
	find analyzer -name '*.so' -delete
