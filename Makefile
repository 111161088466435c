# Two set-up commands for a fresh machine: `make demo` and `make test`.
# `make demo` deblurs the real photos of examples/real_blur with the default, the classical
# pipeline (blind kernel estimation + non-blind deconvolution), into out/demo/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean browser

# Debian's Chromium drives the web app's page tests (tests/test_webapp_browser.py, Playwright with
# executable_path; Playwright never downloads a browser). Installed once, skipped when present.
CHROMIUM ?= /usr/bin/chromium
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deblurkit deblur examples/real_blur -o out/demo --compare --save-kernel

browser:
	@if [ -n "$$DEBLURKIT_NO_BROWSER" ] || [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the page tests"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else \
	  echo "WARNING: no Chromium at $(CHROMIUM): the page tests will fail (as root: apt-get install chromium;" \
	       "or set DEBLURKIT_NO_BROWSER=1 to skip them)" >&2; \
	fi

test: $(STAMP) browser
	$(PY) -m pytest -q -n 2 tests

clean:
	rm -rf $(VENV) out
