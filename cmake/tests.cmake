# The tests, included from CMakeLists.txt unless LATTICE_BUILD_TESTS is off.
# ctest runs them; `sh setup.sh test` is the command that does.

# ---- tests ----
find_program(LUA_EXECUTABLE NAMES lua5.4 REQUIRED)
# One ctest test per spec file, each run by busted inside the lattice command.
file(GLOB SPEC_FILES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/spec/*_spec.lua)
foreach(spec ${SPEC_FILES})
  get_filename_component(name ${spec} NAME_WE)
  add_test(NAME ${name}
    COMMAND ${CMAKE_BINARY_DIR}/bin/lattice ${CMAKE_CURRENT_SOURCE_DIR}/spec/run.lua ${spec}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  # a hang must not eat CI's time
  set_tests_properties(${name} PROPERTIES TIMEOUT 900)
endforeach()
# Every Lua file returns one table and sets no globals (STYLE.md).
find_program(LUACHECK luacheck)
if(LUACHECK)
  add_test(NAME luacheck COMMAND ${LUACHECK} --no-color lua bench spec examples
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
endif()
add_test(NAME embed_two_threads COMMAND embed_example --threads
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/examples/embed)
set_tests_properties(embed_two_threads PROPERTIES TIMEOUT 900)

# ---- tests in C: spec/c/<name>.c, one ctest entry c_<name> each ----
# Hosts that drive lattice as an application would (through lattice/lua.h,
# linked as examples/embed is), and tests of the core's internals, which see
# core/'s private headers. Each runs for a bounded time.
foreach(name abandoned_gradient core_internals shell_kernels embed_api embed_locale blas_states blas_lock)
  add_executable(spec_${name} spec/c/${name}.c)
  target_include_directories(spec_${name} PRIVATE core)
  target_link_libraries(spec_${name} PRIVATE lattice_lua ${LUA_LIBRARY} OpenMP::OpenMP_C ${OPENBLAS_LIBRARY} pthread)
  add_test(NAME c_${name} COMMAND spec_${name} WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(c_${name} PROPERTIES TIMEOUT 60)
endforeach()
# four states at 1, 2, 1, 2 threads for 5 s; 77: no shape shows a mix-up here
set_tests_properties(c_blas_states PROPERTIES SKIP_RETURN_CODE 77)
# 77: no locale with a decimal comma could be set or made
set_tests_properties(c_embed_locale PROPERTIES SKIP_RETURN_CODE 77)

# A C++ host (spec/c/embed_cxx.cpp): the public headers as C++, their
# functions linked by C names. Registered when a C++ compiler is found.
include(CheckLanguage)
check_language(CXX)
if(CMAKE_CXX_COMPILER)
  enable_language(CXX)
  add_executable(spec_embed_cxx spec/c/embed_cxx.cpp)
  target_link_libraries(spec_embed_cxx PRIVATE lattice_lua ${LUA_LIBRARY})
  add_test(NAME c_embed_cxx COMMAND spec_embed_cxx WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(c_embed_cxx PROPERTIES TIMEOUT 60)
endif()

# ---- REPL test ----
# spec/c/repl_pty.c drives
# build/bin/lattice through a pseudo-terminal: Tab completion, Ctrl-C at the
# prompt and while code runs, printed tables, history in a temporary $HOME.
# Its terminal behaviour comes from readline, so without readline the test
# is not registered.
if(READLINE_LIBRARY AND READLINE_INCLUDE_DIR)
  find_library(UTIL_LIBRARY util) # forkpty; part of libc since glibc 2.34
  add_executable(spec_repl_pty spec/c/repl_pty.c)
  if(UTIL_LIBRARY)
    target_link_libraries(spec_repl_pty PRIVATE ${UTIL_LIBRARY})
  endif()
  add_test(NAME repl_pty COMMAND spec_repl_pty ${CMAKE_BINARY_DIR}/bin/lattice
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(repl_pty PROPERTIES TIMEOUT 60)
endif()

# ---- quickstart and setup.sh tests ----
# `sh setup.sh quickstart` ends with the learned values beside the true ones;
# the example must run and learn them (within 0.01, ten times the noise).
add_test(NAME quickstart COMMAND ${CMAKE_BINARY_DIR}/bin/lattice examples/quickstart.lua
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(quickstart PROPERTIES TIMEOUT 120 PASS_REGULAR_EXPRESSION "largest difference: 0\\.00[0-9]")
# Each setup.sh command asks for its own packages, checked without root or apt.
add_test(NAME setup_packages COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/spec/c/setup_packages.sh
  ${CMAKE_CURRENT_SOURCE_DIR}/setup.sh)
set_tests_properties(setup_packages PROPERTIES TIMEOUT 60)

# ---- fuzzing ----
# A libFuzzer target for the safetensors reader (fuzz/), built when clang is
# installed. libFuzzer's coverage feedback needs clang, which the rest of the
# build may not use: the reader's sources (core/io) and the harness are
# compiled here by clang with -fsanitize=fuzzer,address,undefined, and the
# rest of the core is linked from the core's objects as built (with the OpenMP
# runtime its compiler uses). A build that is
# itself sanitized (-fsanitize in CMAKE_C_FLAGS) would bring a second
# sanitizer runtime, so it skips the fuzzer. ctest runs it for 20 seconds from
# the committed corpus (fuzz/corpus) and the spec fixtures; new inputs go to
# build/fuzz/corpus, crashes to build/fuzz/.
option(LATTICE_FUZZ "Build the libFuzzer target when clang is present" ON)
find_program(LATTICE_CLANG NAMES clang clang-14)
if(LATTICE_FUZZ AND LATTICE_CLANG AND NOT CMAKE_C_FLAGS MATCHES "-fsanitize")
  if(NOT DEFINED LATTICE_CLANG_LINKS_FUZZER)
    # clang without its sanitizer runtimes (compiler-rt) cannot link a fuzzer
    set(probe ${CMAKE_BINARY_DIR}/CMakeFiles/fuzz_probe)
    file(WRITE ${probe}.c "#include <stddef.h>\n#include <stdint.h>\n"
      "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
    execute_process(COMMAND ${LATTICE_CLANG} -fsanitize=fuzzer,address,undefined ${probe}.c -o ${probe}
      RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
    if(probe_rc EQUAL 0)
      set(LATTICE_CLANG_LINKS_FUZZER ON CACHE INTERNAL "clang links a libFuzzer target")
    else()
      set(LATTICE_CLANG_LINKS_FUZZER OFF CACHE INTERNAL "clang links a libFuzzer target")
      message(STATUS "${LATTICE_CLANG} cannot link a libFuzzer target: no safetensors_fuzz")
    endif()
  endif()
endif()
if(LATTICE_FUZZ AND LATTICE_CLANG AND NOT CMAKE_C_FLAGS MATCHES "-fsanitize" AND LATTICE_CLANG_LINKS_FUZZER)
  # an archive of the core's objects: the linker takes from it only what
  # clang's build of core/io leaves undefined
  add_library(lattice_core_static STATIC $<TARGET_OBJECTS:lattice_core_objects>)
  file(GLOB FUZZ_IO_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/core/io/*.c)
  file(GLOB_RECURSE FUZZ_HEADERS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/core/*.h)
  set(FUZZ_DIR ${CMAKE_BINARY_DIR}/fuzz)
  set(FUZZ_SRC ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
  file(MAKE_DIRECTORY ${FUZZ_DIR}/corpus)
  add_custom_command(OUTPUT ${FUZZ_DIR}/safetensors_fuzz
    COMMAND ${LATTICE_CLANG} -std=gnu11 -g -O1 -Wall -Wextra
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
      -I${CMAKE_CURRENT_SOURCE_DIR}/core/include -I${CMAKE_CURRENT_SOURCE_DIR}/core -I${CJSON_INCLUDE_DIR}
      ${FUZZ_IO_SOURCES} ${FUZZ_SRC}/safetensors_fuzz.c $<TARGET_FILE:lattice_core_static>
      ${CJSON_LIBRARY} ${OPENBLAS_LIBRARY} ${OpenMP_C_LIBRARIES} -lm -o ${FUZZ_DIR}/safetensors_fuzz
    DEPENDS lattice_core_static ${FUZZ_IO_SOURCES} ${FUZZ_HEADERS} ${FUZZ_SRC}/safetensors_fuzz.c
    COMMENT "Building the safetensors fuzzer with clang" VERBATIM)
  add_custom_target(safetensors_fuzz ALL DEPENDS ${FUZZ_DIR}/safetensors_fuzz)
  add_test(NAME safetensors_fuzz
    COMMAND ${FUZZ_DIR}/safetensors_fuzz -max_total_time=20 -timeout=10 -print_final_stats=1
      -dict=${FUZZ_SRC}/safetensors.dict -artifact_prefix=${FUZZ_DIR}/
      ${FUZZ_DIR}/corpus ${FUZZ_SRC}/corpus ${CMAKE_CURRENT_SOURCE_DIR}/spec/fixtures
    WORKING_DIRECTORY ${FUZZ_DIR})
  set_tests_properties(safetensors_fuzz PROPERTIES TIMEOUT 300)
endif()

# ---- install and packaging ----
# cmake --install into a temporary prefix (then moved), plain lua5.4 on it,
# hosts built with pkg-config and with find_package (spec/install/check.sh);
# luarocks make into a temporary tree (spec/install/rock.sh), when Debian's
# luarocks is there (`sh setup.sh test` installs it).
add_test(NAME install COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/spec/install/check.sh
  ${CMAKE_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(install PROPERTIES TIMEOUT 600)
find_program(LUAROCKS luarocks)
if(LUAROCKS)
  add_test(NAME luarocks_make COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/spec/install/rock.sh ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(luarocks_make PROPERTIES TIMEOUT 900)
endif()
