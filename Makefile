# latentgen: the two commands of the README, and their parts.
#   make book   install, prepare data, execute every chapter (profile: $LATENTGEN_PROFILE, else gpu on CUDA / quick elsewhere)
#               and render the book into _build/html
#   make test   install, prepare data, unit tests + toolbox notebooks (nbval) + the book build with -W
#               (LATENTGEN_RETRAIN=1: every chapter run trains from scratch, whatever runs/ holds)
PY ?= python3
SHARED_DATA ?= ../shared/data
export LATENTGEN_DATA ?= $(CURDIR)/data
# no MPLBACKEND here: the notebooks' kernels would inherit it and show no figure (their setup cell selects the
# inline backend anyway); the unit tests pick Agg for their own process (conftest.py)

.PHONY: install data book test unit bench gpu-check browser book-from-results gpu-kit

install:
	$(PY) -m pip install -e ".[dev]"

# offline copies in $(SHARED_DATA) are used when that folder exists; otherwise torchvision downloads on first use
data:
	@if [ -d "$(SHARED_DATA)" ]; then latentgen data prepare --source "$(SHARED_DATA)" && latentgen data check; \
	else echo "no offline copies at $(SHARED_DATA): the chapters download their data on first use"; fi

book: install data
	jupyter-book build . --all -W -n --keep-going

# the book of a profile whose chapters ran elsewhere (a GPU): executed notebooks committed under
# results/<chapter>/<profile>/ are shown as they are (with the commit that made them, flagged where the code changed
# since), the toolbox pages run here; trains nothing. PROFILE=gpu|cpu|paper, or best (gpu, then cpu per chapter; a
# chapter with neither and the dashboard are executed here under quick: what the Pages workflow publishes)
PROFILE ?= gpu
book-from-results: install data
	$(PY) tools/book_from_results.py --profile $(PROFILE)

# nbval runs the cheap toolbox notebooks; the metrics notebook (its calibration trains two VAEs) and the chapters are
# executed once, by the book build (test_book_builds_without_warnings: raise_on_error, -W)
NBVAL := $(filter-out nbs/07_metrics.ipynb,$(wildcard nbs/0*.ipynb))

test: install data browser
	LATENTGEN_PROGRESS=0 LATENTGEN_RETRAIN=1 $(PY) -m pytest --nbval-lax tests $(NBVAL)

# Chromium (a system package) for tests/test_rendered_pages.py, which opens every built page in a headless browser;
# installed with apt where this runs as root, else the test is skipped with a message
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: no Chromium here; tests/test_rendered_pages.py will be skipped (apt-get install chromium)"

# fast loop while developing: unit tests only (no notebooks, no book)
unit:
	LATENTGEN_PROGRESS=0 $(PY) -m pytest tests -m "not book"

bench:
	$(PY) benchmarks/train_loop.py

# on a CUDA machine: every chapter's models at the gpu profile (images/s, peak memory), exact resume with the CUDA
# random state, sample metrics on the GPU; results in benchmarks/results/gpu_check_cuda.json. Without CUDA: tiny sizes
gpu-check:
	LATENTGEN_PROGRESS=0 $(PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

# for a GPU machine without internet (book page nbs/guide_gpu_offline.md): .gpu-kit/ (git-ignored) with the wheels it
# lacks (CPython 3.12, manylinux x86_64, the versions installed here) and the offline MNIST and CIFAR-10, with a
# manifest; prints the size of checkout + kit. Copy both there, then, on the GPU machine:
#   bash tools/gpu_run.sh check|ch1..ch4|dashboard|bench --out DIR [--deadline-s N]
gpu-kit:
	$(PY) tools/gpu_kit.py build --source "$(SHARED_DATA)"
