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
	ocserv openconnect prometheus dante-server openssh-server openssh-client libnss3-tools
export DEBIAN_FRONTEND := noninteractive

.PHONY: install deb venv run test lint samples bench stress fuzz clean

install: deb venv

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
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,live,dask,zeek-test]'
	@touch $@

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

samples: install
	$(PY) sample_pcaps/generate.py --all

bench: install
	$(PY) bench/run.py

stress: install
	$(VENV)/bin/pytest -q -rP -m slow tests/test_stress.py

fuzz: install
	$(PY) tests/fuzz/run.py --minutes 15

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
