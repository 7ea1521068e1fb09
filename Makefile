# Two commands do all set-up on a fresh Debian 12 machine:
#   make demo   installs what is missing, builds, runs the main job on Fashion-MNIST
#   make test   installs what is missing, builds, runs every test
#
# Against another LibTorch (a pip PyTorch, a LibTorch archive), in its own build folder:
#   make test TORCH_DIR=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
# TORCH_DIR is the CMake prefix of that LibTorch; DEPS_DIR a folder made by
# scripts/vendor-deps.sh for a machine without Debian's -dev packages;
# GENERATOR a CMake generator for a new build folder (e.g. Ninja); CMAKE_ARGS
# anything else for cmake (README, "Building against another LibTorch").
TORCH_DIR  ?=
DEPS_DIR   ?=
CMAKE_ARGS ?=
BUILD_DIR  ?= $(if $(TORCH_DIR),build-torch,build)
JOBS       ?= $(shell nproc)
DEMO_DIR   ?= runs/demo
GENERATOR  ?=

CONFIGURE_ARGS = -DCMAKE_BUILD_TYPE=Release \
  $(if $(TORCH_DIR),-DCMAKE_PREFIX_PATH=$(TORCH_DIR)) \
  $(if $(DEPS_DIR),-DDEEPREDUCE_DEPS_DIR=$(abspath $(DEPS_DIR))) \
  $(if $(GENERATOR),-G "$(GENERATOR)") $(CMAKE_ARGS)

.PHONY: all deps configure build test demo bench clean

all: build

# Debian packages; with TORCH_DIR not LibTorch's; none with DEPS_DIR or where
# there is no dpkg (scripts/install-deps.sh says what it skips).
deps:
	@DEEPREDUCE_TORCH_DIR="$(TORCH_DIR)" DEEPREDUCE_DEPS_DIR="$(DEPS_DIR)" scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) $(CONFIGURE_ARGS) > $(BUILD_DIR).configure.log 2>&1 \
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
