# agentsync_fleet — set-up, tests, demo and benchmarks on a fresh Debian/Ubuntu machine.
# Every target installs what it needs first: apt packages (as root, or with sudo) and the venv.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
BIN     = $(VENV)/bin
APT_PACKAGES = openssh-server openssh-client rsync git git-lfs procps util-linux iproute2 ca-certificates tmux zsh fish tcsh busybox faketime
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_ROOT ?= $(HOME)/.local/share/agentsync/sandbox
DEMO_SUBNET ?= 77

# One test host runs Debian 11's git 2.30, the oldest agentsync supports: its package, unpacked here only
# (nothing is installed system-wide). tests/conftest.py finds it in $(OLD_GIT).
OLD_GIT = .cache/git-2.30
# The package comes from the Debian mirror this machine's apt already uses (its pool keeps older releases).
DEBIAN_MIRROR ?= $(shell sed -n 's|^URIs: *\([^ ]*/debian\)/*$$|\1|p; s|^deb  *\([^ ]*/debian\)/*  *[a-z].*|\1|p' \
                   /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1)
OLD_GIT_DEB = $(DEBIAN_MIRROR)/pool/main/g/git/git_2.30.2-1+deb11u2_$(shell dpkg --print-architecture).deb

.PHONY: setup system-deps venv venv-test test lint demo demo-down bench clean

# setup: a development set-up (the package and the test tools). `make demo` installs only the package.
setup: system-deps venv-test $(OLD_GIT)/usr/bin/git

# Debian 11's git package, unpacked for the old-git test host.
$(OLD_GIT)/usr/bin/git:
	@test -n "$(DEBIAN_MIRROR)" || { echo "no Debian mirror found in /etc/apt/sources.list*: run make with DEBIAN_MIRROR=<your mirror's /debian URL>" >&2; exit 2; }
	@mkdir -p $(OLD_GIT)
	@$(PYTHON) -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
	  '$(OLD_GIT_DEB)' $(OLD_GIT).deb
	@dpkg -x $(OLD_GIT).deb $(OLD_GIT) && rm -f $(OLD_GIT).deb

# Install the system tools the sandbox fleet and the tests use, only when something is missing.
system-deps:
	@missing=""; \
	for tool in /usr/sbin/sshd ssh ssh-keygen rsync git git-lfs pgrep unshare tmux zsh fish tcsh busybox faketime; do \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages (missing:$$missing)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is required")'
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv >/dev/null; }

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

# The package alone (fabric, invoke, paramiko, PyYAML, rich): all the demo runs.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e .
	@touch $@

# The test extras on top (pytest, ruff, moto, boto3, awscli).
$(VENV)/.installed-test: $(VENV)/.installed
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

# ruff, then the house's import contract (pyproject.toml [tool.importlinter]): layers, never-arrows, no cycles.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/pytest -q

demo: system-deps venv
	$(BIN)/agentsync sandbox.up --root $(DEMO_ROOT) --subnet $(DEMO_SUBNET)
	@echo; echo "== sync-all: publish both commits, converge every host, merge main into the gpu worktree =="
	$(BIN)/agentsync sync-all --inventory $(DEMO_ROOT)/fleet.yaml
	@echo; echo "== health: the deploy gate =="
	$(BIN)/agentsync health --inventory $(DEMO_ROOT)/fleet.yaml
	@echo
	@echo "The sandbox fleet keeps running. Try: export AGENTSYNC_INVENTORY=$(DEMO_ROOT)/fleet.yaml; $(BIN)/agentsync --list"
	@echo "Stop it with: make demo-down DEMO_ROOT=$(DEMO_ROOT)"

demo-down: system-deps venv
	$(BIN)/agentsync sandbox.down --root $(DEMO_ROOT)

BENCH_VENV = bench/.work/venv

# Peers (Ansible, pyinfra) live in a bench-only venv; matplotlib (the plot) joins the project venv.
$(BENCH_VENV)/.installed:
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check ansible-core pyinfra
	@touch $@

bench: setup $(BENCH_VENV)/.installed
	@$(PY) -c 'import matplotlib' 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check -e '.[bench]'
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
