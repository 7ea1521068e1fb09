# LibTorch for deepreduce, from Debian's libtorch-dev, a LibTorch archive or a
# pip PyTorch (CMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')).
#
# Two ways in (DEEPREDUCE_TORCH_MODE):
#   config  find_package(Torch), Torch's own CMake files. For a pip PyTorch
#           with CUDA they also want the CUDA toolkit (nvcc, headers, cuDNN).
#   files   a pip PyTorch's files alone: torch/include and torch/lib (libtorch,
#           libtorch_cpu, libc10, and libtorch_cuda + libc10_cuda when it has
#           CUDA). The CUDA runtime libraries come with the wheel
#           (site-packages/nvidia/*/lib, found by libtorch_cuda's RUNPATH), so
#           no CUDA toolkit is needed to build or run.
#   auto    (default) files for a pip PyTorch with CUDA when no CUDA toolkit is
#           found, config otherwise.
#
# Sets TORCH_LIBRARIES (what the torch libraries link), DR_TORCH_VERSION
# (e.g. 2.11.0), DR_TORCH_CUDA (this LibTorch has CUDA), DR_TORCH_MODE,
# DR_TORCH_INCLUDE_DIRS and DR_TORCH_ROOT (the wheel's torch/ folder, or "").

set(DEEPREDUCE_TORCH_MODE auto CACHE STRING "How to find LibTorch: auto, config (find_package) or files (a pip wheel's files)")
set_property(CACHE DEEPREDUCE_TORCH_MODE PROPERTY STRINGS auto config files)

# The TorchConfig.cmake that find_package(Torch) would read first: Torch_DIR,
# then CMAKE_PREFIX_PATH entries (a pip PyTorch gives .../torch/share/cmake).
set(_dr_cfg "")
set(_dr_cands)
if(Torch_DIR)
  list(APPEND _dr_cands "${Torch_DIR}")
endif()
string(REPLACE ":" ";" _dr_env_prefix "$ENV{CMAKE_PREFIX_PATH}")
foreach(_p ${CMAKE_PREFIX_PATH} ${_dr_env_prefix})
  list(APPEND _dr_cands "${_p}" "${_p}/Torch" "${_p}/share/cmake/Torch" "${_p}/lib/cmake/Torch")
endforeach()
foreach(_c ${_dr_cands})
  if(EXISTS "${_c}/TorchConfig.cmake")
    get_filename_component(_dr_cfg "${_c}" ABSOLUTE)
    break()
  endif()
endforeach()

# A pip wheel's layout: torch/share/cmake/Torch, torch/include, torch/lib.
set(DR_TORCH_ROOT "")
if(_dr_cfg)
  get_filename_component(_root "${_dr_cfg}/../../.." ABSOLUTE)
  if(EXISTS "${_root}/include/torch/csrc/api/include/torch/version.h" AND EXISTS "${_root}/lib")
    set(DR_TORCH_ROOT "${_root}")
  endif()
endif()

set(DR_TORCH_MODE "${DEEPREDUCE_TORCH_MODE}")
if(DR_TORCH_MODE STREQUAL "auto")
  set(DR_TORCH_MODE config)
  if(DR_TORCH_ROOT AND EXISTS "${DR_TORCH_ROOT}/lib/libtorch_cuda.so")
    find_package(CUDAToolkit QUIET)
    if(NOT CUDAToolkit_FOUND)
      set(DR_TORCH_MODE files)
      message(STATUS "LibTorch: a pip PyTorch with CUDA and no CUDA toolkit here: using its files directly "
                     "(DEEPREDUCE_TORCH_MODE=files)")
    endif()
  endif()
elseif(NOT DR_TORCH_MODE MATCHES "^(config|files)$")
  message(FATAL_ERROR "DEEPREDUCE_TORCH_MODE='${DR_TORCH_MODE}': expected auto, config or files")
endif()

if(DR_TORCH_MODE STREQUAL "config")
  find_package(Torch REQUIRED)
  set(DR_TORCH_INCLUDE_DIRS ${TORCH_INCLUDE_DIRS})
  set(DR_TORCH_CUDA OFF)
  if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
    set(DR_TORCH_CUDA ON)
  endif()
  string(REGEX MATCH "_GLIBCXX_USE_CXX11_ABI=([01])" _abi "${TORCH_CXX_FLAGS}")
  set(DR_TORCH_ABI "${CMAKE_MATCH_1}")
else()
  if(NOT DR_TORCH_ROOT)
    message(FATAL_ERROR "DEEPREDUCE_TORCH_MODE=files needs a pip PyTorch: pass "
                        "-DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)') "
                        "(found TorchConfig.cmake: '${_dr_cfg}')")
  endif()
  set(DR_TORCH_INCLUDE_DIRS "${DR_TORCH_ROOT}/include" "${DR_TORCH_ROOT}/include/torch/csrc/api/include")
  set(_libs)
  foreach(_l torch torch_cpu c10)
    find_library(DR_TORCH_LIB_${_l} ${_l} PATHS "${DR_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
    if(NOT DR_TORCH_LIB_${_l})
      message(FATAL_ERROR "LibTorch files: lib${_l}.so is not in ${DR_TORCH_ROOT}/lib")
    endif()
  endforeach()
  # libtorch_cpu and libtorch_cuda register their kernels when loaded, and no
  # symbol of libtorch_cuda is used directly: link them even where the
  # compiler's default is --as-needed (Ubuntu), as Torch's own targets do.
  set(_libs "-Wl,--no-as-needed,\"${DR_TORCH_LIB_torch_cpu}\" -Wl,--as-needed" "${DR_TORCH_LIB_torch}"
            "${DR_TORCH_LIB_c10}")
  set(DR_TORCH_CUDA OFF)
  if(EXISTS "${DR_TORCH_ROOT}/lib/libtorch_cuda.so")
    set(DR_TORCH_CUDA ON)
    list(APPEND _libs "-Wl,--no-as-needed,\"${DR_TORCH_ROOT}/lib/libtorch_cuda.so\" -Wl,--as-needed")
    if(EXISTS "${DR_TORCH_ROOT}/lib/libc10_cuda.so")
      list(APPEND _libs "${DR_TORCH_ROOT}/lib/libc10_cuda.so")
    endif()
  endif()
  # The wheel's libstdc++ ABI, as its TorchConfig.cmake records it (1 since PyTorch 2.7).
  file(STRINGS "${_dr_cfg}/TorchConfig.cmake" _abi_line REGEX "_GLIBCXX_USE_CXX11_ABI=[01]")
  string(REGEX MATCH "_GLIBCXX_USE_CXX11_ABI=([01])" _abi "${_abi_line}")
  set(DR_TORCH_ABI "${CMAKE_MATCH_1}")
  if(DR_TORCH_ABI STREQUAL "")
    set(DR_TORCH_ABI 1)
  endif()
  add_library(dr_torch INTERFACE)
  target_include_directories(dr_torch SYSTEM INTERFACE ${DR_TORCH_INCLUDE_DIRS})
  target_compile_definitions(dr_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${DR_TORCH_ABI})
  target_link_libraries(dr_torch INTERFACE ${_libs} Threads::Threads ${CMAKE_DL_LIBS})
  # The linker resolves the wheel's own dependencies (libgomp, the CUDA
  # runtime of site-packages/nvidia) where the loader will.
  get_filename_component(_site "${DR_TORCH_ROOT}/.." ABSOLUTE)
  file(GLOB _nvlibs LIST_DIRECTORIES true "${_site}/nvidia/*/lib")
  foreach(_d "${DR_TORCH_ROOT}/lib" ${_nvlibs})
    target_link_options(dr_torch INTERFACE "LINKER:-rpath-link,${_d}")
  endforeach()
  set(TORCH_LIBRARIES dr_torch)
endif()

# The version, from the headers this build compiles against.
set(DR_TORCH_VERSION "")
foreach(_d ${DR_TORCH_INCLUDE_DIRS})
  if(EXISTS "${_d}/torch/version.h")
    file(STRINGS "${_d}/torch/version.h" _v REGEX "define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
    string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3" DR_TORCH_VERSION "${_v}")
    break()
  endif()
endforeach()
if(NOT DR_TORCH_VERSION)
  message(FATAL_ERROR "LibTorch: no torch/version.h in ${DR_TORCH_INCLUDE_DIRS}")
endif()
# A libstdc++ ABI other than the compiler's default must hold for every
# target, torch-free ones included, or std::string crosses libraries in two layouts.
if(DR_TORCH_ABI STREQUAL "0")
  add_compile_definitions(_GLIBCXX_USE_CXX11_ABI=0)
endif()
message(STATUS "LibTorch ${DR_TORCH_VERSION} (DEEPREDUCE_TORCH_MODE ${DR_TORCH_MODE}: ${DR_TORCH_INCLUDE_DIRS}), CUDA ${DR_TORCH_CUDA}")
