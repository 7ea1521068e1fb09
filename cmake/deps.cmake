# The libraries deepreduce needs besides LibTorch: nlohmann-json and CLI11
# (header-only), zlib, libjpeg, OpenSSL's libcrypto, and GoogleTest for the
# tests. On Debian they come from the -dev packages (scripts/install-deps.sh).
#
# A machine without those packages (a GPU machine with only a pip PyTorch)
# takes them from DEEPREDUCE_DEPS_DIR, a folder scripts/vendor-deps.sh fills
# on a Debian 12 machine: include/ (the headers), lib/ (libcrypto.a, libz.a,
# libjpeg.a: static, so nothing has to be installed to run), googletest/ (the
# sources, built here). That folder is searched before the system.

set(DEEPREDUCE_DEPS_DIR "" CACHE PATH
    "Folder made by scripts/vendor-deps.sh (headers, static libraries, GoogleTest sources), searched first")
if(DEEPREDUCE_DEPS_DIR)
  get_filename_component(DR_DEPS "${DEEPREDUCE_DEPS_DIR}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${DR_DEPS}/manifest.txt")
    message(FATAL_ERROR "DEEPREDUCE_DEPS_DIR='${DEEPREDUCE_DEPS_DIR}' has no manifest.txt: make it with "
                        "scripts/vendor-deps.sh on a Debian 12 machine with the packages of scripts/install-deps.sh")
  endif()
  message(STATUS "Dependencies from ${DR_DEPS} first (scripts/vendor-deps.sh)")
  list(PREPEND CMAKE_PREFIX_PATH "${DR_DEPS}")
  set(OPENSSL_ROOT_DIR "${DR_DEPS}")
  set(OPENSSL_USE_STATIC_LIBS TRUE)
  set(ZLIB_ROOT "${DR_DEPS}")
else()
  set(DR_DEPS "")
endif()

# A header-only library: its CMake package where installed, else an
# interface target on the header found (the deps folder carries headers only).
function(dr_header_only target package header)
  find_package(${package} QUIET)
  if(TARGET ${target})
    return()
  endif()
  find_path(DR_${package}_INCLUDE_DIR ${header})
  if(NOT DR_${package}_INCLUDE_DIR)
    message(FATAL_ERROR "${package}: ${header} not found (Debian: scripts/install-deps.sh; elsewhere: "
                        "-DDEEPREDUCE_DEPS_DIR=<folder made by scripts/vendor-deps.sh>)")
  endif()
  add_library(${target} INTERFACE IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${DR_${package}_INCLUDE_DIR}")
  message(STATUS "${package}: headers in ${DR_${package}_INCLUDE_DIR}")
endfunction()

dr_header_only(nlohmann_json::nlohmann_json nlohmann_json nlohmann/json.hpp)
dr_header_only(CLI11::CLI11 CLI11 CLI/CLI.hpp)
find_package(ZLIB REQUIRED)
find_package(JPEG REQUIRED)
find_package(OpenSSL REQUIRED)
if(OPENSSL_USE_STATIC_LIBS)
  # A static libcrypto needs what its shared library would have brought.
  set_property(TARGET OpenSSL::Crypto APPEND PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads ${CMAKE_DL_LIBS})
endif()

# GoogleTest: installed, or built from the deps folder's sources.
macro(dr_find_gtest)
  find_package(GTest QUIET)
  if(NOT TARGET GTest::gtest_main AND DR_DEPS AND EXISTS "${DR_DEPS}/googletest/CMakeLists.txt")
    set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    add_subdirectory("${DR_DEPS}/googletest" "${CMAKE_BINARY_DIR}/googletest" EXCLUDE_FROM_ALL)
    if(NOT TARGET GTest::gtest_main)
      add_library(GTest::gtest_main ALIAS gtest_main)
    endif()
    message(STATUS "GoogleTest: built from ${DR_DEPS}/googletest")
  endif()
  if(NOT TARGET GTest::gtest_main)
    message(FATAL_ERROR "GoogleTest not found (Debian: libgtest-dev; elsewhere: "
                        "-DDEEPREDUCE_DEPS_DIR=<folder made by scripts/vendor-deps.sh>)")
  endif()
endmacro()
