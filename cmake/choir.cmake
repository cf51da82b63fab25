# Build helpers shared by every layer.

# Warnings live in one INTERFACE target that every ChoirOS target links.
add_library(choir_warnings INTERFACE)
target_compile_options(choir_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
  -Wimplicit-fallthrough -Wformat=2
  -Wno-missing-field-initializers)  # designated initializers may omit members
if(CHOIR_WARNINGS_AS_ERRORS)
  target_compile_options(choir_warnings INTERFACE -Werror)
endif()
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # g++ 12 reports false positives inside libstdc++ and nlohmann::json at -O2/-O3.
  target_compile_options(choir_warnings INTERFACE -Wno-maybe-uninitialized -Wno-dangling-reference
    -Wno-array-bounds -Wno-stringop-overflow -Wno-restrict)
endif()
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  target_compile_options(choir_warnings INTERFACE -Wno-unknown-warning-option)
endif()

if(CHOIR_SANITIZERS)
  string(REPLACE "," ";" _choir_san_list "${CHOIR_SANITIZERS}")
  foreach(_san IN LISTS _choir_san_list)
    add_compile_options(-fsanitize=${_san})
    add_link_options(-fsanitize=${_san})
  endforeach()
  add_compile_options(-fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  if(CHOIR_SANITIZERS MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # Asio's handler allocator uses std::atomic_thread_fence, which g++ warns TSan cannot see.
    add_compile_options(-Wno-tsan)
  endif()
  add_link_options(-fno-sanitize-recover=undefined)
endif()

# choir_add_component(NAME <layer> SOURCES ... [TESTS ...] [DEPENDS ...] [TEST_DEPENDS ...])
# makes the library choir_<layer>, the test executable choir_<layer>_test and one ctest entry per
# GoogleTest case, labelled with the layer.
function(choir_add_component)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;TESTS;DEPENDS;TEST_DEPENDS" ${ARGN})
  set(lib choir_${ARG_NAME})
  add_library(${lib} STATIC ${ARG_SOURCES})
  target_include_directories(${lib} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${lib} PUBLIC ${ARG_DEPENDS} PRIVATE choir_warnings)
  if(CHOIR_BUILD_TESTS AND ARG_TESTS)
    add_executable(${lib}_test ${ARG_TESTS})
    target_link_libraries(${lib}_test PRIVATE ${lib} ${ARG_TEST_DEPENDS} GTest::gtest GTest::gmock
      GTest::gtest_main choir_warnings)
    gtest_discover_tests(${lib}_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS ${ARG_NAME}
      DISCOVERY_TIMEOUT 60)
  endif()
endfunction()
