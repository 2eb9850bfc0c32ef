# Two entry points on a fresh Debian machine, as root:
#   make demo   installs everything, starts the sandbox, applies examples/, shows status
#   make test   installs everything, runs lint, types and the test suite
# Both are idempotent; the install steps are skipped when already done.

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := postfix dovecot-imapd dovecot-lmtpd swaks openssl ca-certificates \
                knot knot-dnsutils unbound prometheus postgresql zbar-tools librsvg2-bin \
                libsasl2-modules
BENCH_APT := isync offlineimap
# The console's tests: a real OpenID provider (npm oidc-provider on node) and Debian's
# Chromium driven by Playwright (never `playwright install`: it downloads a browser).
TEST_APT := chromium nodejs
OP_DIR := tests/fixtures/oidc_op
EXAMPLE := examples/mailctl.yaml

.PHONY: deps apt apt-install venv test-deps test lint typecheck pytest demo demo-down bench clean

deps: apt venv

apt:
	@$(MAKE) --no-print-directory apt-install PKGS="$(APT_PACKAGES)"

apt-install:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  echo "postfix postfix/mailname string localhost" | debconf-set-selections; \
	  apt-get update -qq -o DPkg::Lock::Timeout=600 && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
	    --no-install-recommends $$missing >/dev/null; \
	  for s in knot unbound prometheus prometheus-node-exporter postgresql; do systemctl disable --now $$s >/dev/null 2>&1 || true; done; \
	fi

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

test-deps: apt
	@$(MAKE) --no-print-directory apt-install PKGS="$(TEST_APT)"
	@command -v npm >/dev/null || $(MAKE) --no-print-directory apt-install PKGS=npm
	@test -d $(OP_DIR)/node_modules/oidc-provider || \
	  (cd $(OP_DIR) && npm ci --no-audit --no-fund --loglevel=error)

# mailadm 1.0.0 in its own venv, for tests/accounts/test_import.py (and the accounts bench):
# made by tests/accounts/mailadm_peer.py, the one place that knows its path and packages
# (the test fails under CI=true without it). $(MAILADM_VENV) is that module's default.
.PHONY: mailadm-venv
MAILADM_VENV ?= .state/mailadm-venv

mailadm-venv: $(MAILADM_VENV)/.complete

$(MAILADM_VENV)/.complete: $(BIN)/.installed
	MAILADM_VENV=$(MAILADM_VENV) $(BIN)/python -m tests.accounts.mailadm_peer

lint: venv
	$(BIN)/ruff check src tests bench examples

typecheck: venv
	$(BIN)/mypy

pytest: deps test-deps mailadm-venv
	$(BIN)/pytest -q -n 2 --dist loadfile

test: deps lint typecheck pytest

demo: deps
	$(BIN)/mailctl validate -f $(EXAMPLE)
	$(BIN)/mailctl sandbox up -f $(EXAMPLE)
	$(BIN)/mailctl plan -f $(EXAMPLE)
	@mkdir -p -m 700 examples/.mailctl
	$(BIN)/mailctl apply -f $(EXAMPLE) --secrets-out examples/.mailctl/secrets.tsv
	$(BIN)/mailctl apply -f $(EXAMPLE)
	$(BIN)/mailctl status -f $(EXAMPLE)
	$(BIN)/python examples/smoke.py -f $(EXAMPLE) --secrets examples/.mailctl/secrets.tsv
	@# the probe route reads its password from here (examples/mailctl.yaml, probe:)
	@umask 077; awk -F'\t' '$$1=="probe@acme.test" {pw=$$2} END {print pw}' \
	  examples/.mailctl/secrets.tsv > examples/.mailctl/probe.pw
	$(BIN)/mailctl probe run -f $(EXAMPLE)
	@echo "The sandbox keeps running: make demo-down (or mailctl sandbox down -f $(EXAMPLE)) stops it."

demo-down: venv
	$(BIN)/mailctl sandbox down -f $(EXAMPLE)

# Each benchmark prints ratios against its named peer, measured in the same run
# (docs/benchmarks.md). Peers: docker-mailserver's setup loop, checkdmarc (own venv), octodns-sync,
# mailadm (own venv), mbsync/offlineimap/dsync, a raw smtplib+imaplib roundtrip,
# parsedmarc (own venv), imapsync.
bench: deps imapsync
	@$(MAKE) --no-print-directory apt-install PKGS="$(BENCH_APT)"
	$(BIN)/python bench/provision_bench.py
	$(BIN)/python bench/providers_bench.py
	$(BIN)/python bench/dns_bench.py
	$(BIN)/python bench/dns_publish_bench.py
	$(BIN)/python bench/accounts_bench.py
	$(BIN)/python bench/sync_bench.py
	$(BIN)/python bench/probe_bench.py
	$(BIN)/python bench/reports_bench.py
	$(BIN)/python bench/domain_move_bench.py --imapsync $(IMAPSYNC)
	$(BIN)/python bench/jobs_bench.py --accounts 200 --messages 20  # the full size: no flags

# imapsync, the peer of bench/domain_move_bench.py: not packaged for Debian, so the script
# comes from the imapsync repository at a pinned commit (2.229), checked against its
# sha256, into .state/ (never committed); its Perl modules and GNU parallel (the FAQ's
# way to run many accounts) come from Debian. Without access to that host, point
# IMAPSYNC_SRC at a copy of the same file (e.g. a checkout of that commit): the
# checksum is verified either way.
IMAPSYNC_COMMIT := 023535075cbfb4b364fee419330a1910cd57ec95
IMAPSYNC_SHA256 := 225aee11da6e9d4cad90421a9a7b3e895d16d2c414ea8def415ada7226e90662
IMAPSYNC := .state/imapsync/imapsync
IMAPSYNC_SRC ?=
IMAPSYNC_APT := parallel libmail-imapclient-perl libio-socket-ssl-perl libterm-readkey-perl \
  libdigest-hmac-perl liburi-perl libfile-copy-recursive-perl libio-tee-perl \
  libunicode-string-perl libreadonly-perl libsys-meminfo-perl libregexp-common-perl \
  libfile-tail-perl libencode-imaputf7-perl libjson-webtoken-perl libcrypt-openssl-rsa-perl \
  libdata-uniqid-perl libauthen-ntlm-perl libproc-processtable-perl libmodule-scandeps-perl \
  libparse-recdescent-perl libhtml-parser-perl libcgi-pm-perl libio-socket-inet6-perl \
  libwww-perl
.PHONY: imapsync
imapsync: $(IMAPSYNC)
	@$(MAKE) --no-print-directory apt-install PKGS="$(IMAPSYNC_APT)"
	@perl $(IMAPSYNC) --version >/dev/null

$(IMAPSYNC):
	@mkdir -p $(@D)
	@if [ -n "$(IMAPSYNC_SRC)" ]; then cp "$(IMAPSYNC_SRC)" $@.part; \
	else curl -fsSL --retry 3 -o $@.part \
	  https://raw.githubusercontent.com/imapsync/imapsync/$(IMAPSYNC_COMMIT)/imapsync; fi
	@echo "$(IMAPSYNC_SHA256)  $@.part" | sha256sum -c --quiet - || \
	  { echo "$@: not imapsync at $(IMAPSYNC_COMMIT) (sha256 differs)" >&2; rm -f $@.part; exit 1; }
	@mv $@.part $@

clean:
	-$(BIN)/mailctl sandbox down -f $(EXAMPLE) 2>/dev/null
	rm -rf $(VENV) examples/.mailctl examples/dms build *.egg-info $(OP_DIR)/node_modules
