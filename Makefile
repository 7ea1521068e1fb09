# Two commands do all set-up on a fresh Debian 12 machine:
#   make demo   installs what is missing, builds, runs the main job on Fashion-MNIST
#   make test   installs what is missing, builds, runs every test
BUILD_DIR ?= build
JOBS      ?= $(shell nproc)
DEMO_DIR  ?= runs/demo

.PHONY: all deps configure build test demo bench clean

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release > $(BUILD_DIR).configure.log 2>&1 \
	  || (cat $(BUILD_DIR).configure.log; exit 1)

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

demo: build
	@scripts/demo.sh $(BUILD_DIR)/deepreduce $(DEMO_DIR)

# deepreduce vs Python PyTorch eager (bench/run.sh; ~4 minutes on 2 cores, docs/performance.md)
bench: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target deepreduce deepreduce_bench
	@bench/run.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log
