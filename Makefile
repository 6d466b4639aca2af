# Set-up and entry points.  Every target creates .venv if missing, installs the
# pinned dependencies and builds the C kernel; all are safe to re-run.
#   make run    train the bundled MNIST pair under mpirun, write runs/mnist_model.h5
#   make test   the whole test suite (with the plotting extra, which the report tests use, and the
#               interop extra, whose runtimes check the MOJO and ONNX exports):
#               serial tests (one pytest worker a core), the kernel's tests under the
#               sanitizers (test-sanitize), then
#               MPI tests under mpirun -n 2 and -n 3
#   make test-sanitize  the C kernel built with AddressSanitizer + UBSan into build/sanitize/
#               (never h2odl_mpi/_kernel*.so) and its tests run on it: tests/sanitize/run.py
#   make bench  the benchmarks under benchmarks/ (slow; installs the peers)

VENV    ?= .venv
PY      := $(VENV)/bin/python
MPIRUN  := $(VENV)/bin/mpirun
PYTHON3 ?= python3
DATA    := h2odl_mpi/datasets
KERNEL_SRC := $(wildcard csrc/*.c csrc/*.h) csrc/build_ffi.py setup.py

.PHONY: all venv build run test test-serial test-mpi test-sanitize bench clean

all: build

$(VENV)/.deps: requirements.txt
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.deps

# the plotting extra (report, search_progress.png): installed for the tests that draw
$(VENV)/.deps-report: $(VENV)/.deps requirements-report.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-report.txt
	touch $@

# the interop extra (export --onnx; the tests' real runtimes: h2o-genmodel in the h2o package's
# jar, ONNX Runtime): installed for the tests of the MOJO and ONNX exports
$(VENV)/.deps-interop: $(VENV)/.deps requirements-interop.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-interop.txt
	touch $@

$(VENV)/.built: $(VENV)/.deps $(KERNEL_SRC)
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
	touch $@

build: $(VENV)/.built

# the sanitizer build of the kernel: csrc/build_ffi.py's ffibuilder with -O1 -g
# -fsanitize=address,undefined ..., into build/sanitize/obj/ (the normal extension is untouched)
SANITIZE_BUILT := build/sanitize/.built
$(SANITIZE_BUILT): $(VENV)/.deps $(KERNEL_SRC) tests/sanitize/run.py
	$(PY) tests/sanitize/run.py build
	touch $@

# the kernel's tests, on a copy of the package with that extension, libasan preloaded;
# fails on any ASan/UBSan report
test-sanitize: $(SANITIZE_BUILT)
	$(PY) tests/sanitize/run.py test

run: build
	mkdir -p runs
	$(MPIRUN) -n 2 $(PY) -m h2odl_mpi train \
	    --train $(DATA)/mnist/train.csv.gz --validation $(DATA)/mnist/test.csv.gz \
	    --response C785 --hidden 200,200 --epochs 2 --threads 1 \
	    --model-out runs/mnist_model.h5 --summary-json runs/mnist_summary.json

test: build $(VENV)/.deps-report $(VENV)/.deps-interop $(SANITIZE_BUILT)
	$(PY) -m pytest -q -p no:cacheprovider -n auto tests
	$(PY) tests/sanitize/run.py test
	$(MPIRUN) -n 2 $(PY) -m pytest -q -p no:cacheprovider --with-mpi -m mpi tests/mpi
	$(MPIRUN) -n 3 $(PY) -m pytest -q -p no:cacheprovider --with-mpi -m mpi tests/mpi

bench: build
	$(PY) -m pip install -q --disable-pip-version-check -r benchmarks/requirements.txt
	$(PY) benchmarks/kernel_throughput.py
	$(PY) benchmarks/ingest.py

clean:
	rm -rf build *.egg-info h2odl_mpi/_kernel*.so h2odl_mpi/_kernel.c $(VENV)/.built
